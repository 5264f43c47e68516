//! Integrations: the event feed, webhooks and the calendar feed.

pub mod calendar;
pub mod events;
pub mod webhooks;
