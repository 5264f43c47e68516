//! The cmo-orchestrator worker: the email outbox dispatcher, overdue-action reminders,
//! weekly digests, and a heartbeat that shows each running instance in the database.

pub mod http;
pub mod jobs;
pub mod mailer;
pub mod runner;
pub mod smtp;
