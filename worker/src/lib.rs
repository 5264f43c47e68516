//! The cmo-orchestrator worker: scheduled jobs (reminders, digests, escalation ticks come
//! in later) and, for now, a heartbeat that shows each running instance in the database.

pub mod jobs;
pub mod mailer;
pub mod runner;
