//! Identity and evidence: organizations, users, tokens, signatures and the audit trail.

pub mod account_pages;
pub mod audit;
pub mod checkpoints;
pub mod invitations;
pub mod me;
pub mod organizations;
pub mod service_accounts;
pub mod sign_in;
pub mod signatures;
pub mod tokens;
pub mod users;
