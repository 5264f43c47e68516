//! Identity and evidence: organizations, users, tokens, signatures and the audit trail.

pub mod audit;
pub mod me;
pub mod organizations;
pub mod signatures;
pub mod tokens;
pub mod users;
