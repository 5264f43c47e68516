//! Organizations, people, API tokens and who may do what.

pub mod access;
pub mod api_token;
pub mod organization;
pub mod user;
