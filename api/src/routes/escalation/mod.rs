//! 24/7 escalation: policies and the escalations they page.

pub mod escalations;
