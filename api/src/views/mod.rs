//! Response views shared by several route modules and the provisioning code, kept apart
//! from the handlers so that no route module imports another.

pub mod identity;
pub mod partners;
pub mod plan;
pub mod quality;

use serde::Serialize;

/// Serializes a view for the audit trail.
pub fn snapshot<T: Serialize>(view: &T) -> serde_json::Value {
    serde_json::to_value(view).unwrap_or(serde_json::Value::Null)
}
