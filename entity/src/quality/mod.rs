//! Deviations, CAPA, change control: the quality events and their rules.

pub mod capa;
pub mod change_request;
pub mod deviation;
pub mod extension_request;
pub mod production_holds;
pub mod quality_summary;
pub mod record_number;
