//! Organizations, people, their credentials (invitations, password resets, API tokens,
//! browser sessions) and who may do what.

pub mod access;
pub mod api_token;
pub mod invitation;
pub mod organization;
pub mod password_reset;
pub mod sign_in_failure;
pub mod user;
