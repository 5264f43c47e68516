//! What leaves the records: domain events, webhooks, notifications, the email outbox and
//! wake-ups.

pub mod domain_event;
mod event_schema;
pub mod notification;
pub mod outbox;
pub mod receiver_address;
pub mod wake;
pub mod webhook;
