//! Running it: the clock, schedules, database transactions, job claims, heartbeats, idempotency keys and signed links.

pub mod clock;
pub mod db;
pub mod fault;
pub mod idempotency_key;
pub mod job_run;
pub mod link_secret;
pub mod link_token;
pub mod schedule;
pub mod telemetry;
pub mod trace;
pub mod worker_heartbeat;
