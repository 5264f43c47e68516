//! 24/7 escalation: escalations and the policies that page them.

pub mod escalation;
pub mod escalation_policy;
pub mod page_delivery;
