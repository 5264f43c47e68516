//! The cmo-orchestrator worker: the email outbox dispatcher, overdue-action reminders,
//! weekly digests, agreement expiry reminders, escalation paging, webhook deliveries,
//! `action_item.overdue` events, and a heartbeat that shows each instance in the database.

pub mod jobs;
pub mod metrics;
pub mod outbound;
pub mod runner;
pub mod ticks;
mod wakes;
