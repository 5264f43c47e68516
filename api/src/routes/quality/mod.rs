//! Quality records: deviations and production holds, CAPA with extension requests, change control.

pub mod capas;
pub mod changes;
pub mod deviations;
pub mod extension_requests;
pub mod production;
