//! The cmo-orchestrator HTTP API (library half of `cmo-api`; tests start it in-process).

pub mod accounts;
pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod error;
pub mod extract;
pub mod fallback;
pub mod idempotency;
pub mod local_dates;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod pages;
pub mod pagination;
pub mod provisioning;
pub mod records;
pub mod request_id;
pub mod routes;
pub mod secrets;
pub mod signed_records;
pub mod signing;
pub mod state;
pub mod transition;
pub mod views;
pub mod write;
