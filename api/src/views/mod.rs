//! Response views shared by several route modules and the provisioning code, kept apart
//! from the handlers so that no route module imports another.

pub mod identity;
pub mod partners;
pub mod plan;
pub mod quality;

use serde::Serialize;

/// Serializes a view for the audit trail and for what a signature binds: the record's
/// facts, without the hints about what can be done with it next (`allowed_events`,
/// `blocked_events`), which depend on who asks and when.
pub fn snapshot<T: Serialize>(view: &T) -> serde_json::Value {
    let mut value = serde_json::to_value(view).unwrap_or(serde_json::Value::Null);
    if let Some(fields) = value.as_object_mut() {
        fields.remove("allowed_events");
        fields.remove("blocked_events");
    }
    value
}

pub use entity::workflow::BlockedEvent;
