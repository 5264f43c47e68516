//! What leaves the records: domain events, webhooks, the email outbox and wake-ups.

pub mod domain_event;
pub mod outbox;
pub mod wake;
pub mod webhook;
