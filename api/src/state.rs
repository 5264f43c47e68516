//! What every handler can reach.

use std::sync::Arc;

use entity::clock::Clock;
use sea_orm::DatabaseConnection;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    /// Writes, and reads inside a write (SQLite: the one writer connection).
    pub db: DatabaseConnection,
    /// Reads that are not part of a write: GET handlers and token look-ups. On SQLite a
    /// pool of read-only connections beside the writer (`--db-read-connections`); on
    /// PostgreSQL, and on an in-memory SQLite database, the same pool as `db`.
    pub reads: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub public_base_url: Arc<str>,
    /// Password hashing and its per-organization bounds.
    pub passwords: crate::secrets::Passwords,
    /// Whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<crate::client_address::TrustedProxies>,
    /// Which webhook receiver addresses are accepted.
    pub webhook_policy: entity::webhook::AddressPolicy,
    /// When set, `/metrics` answers only requests carrying it as a bearer token.
    pub metrics_token: Option<Arc<str>>,
    /// How long `/readyz` waits for the database.
    pub ready_timeout: std::time::Duration,
    /// The audit chain keys (kept outside the database).
    pub chain_keys: entity::audit::ChainKeys,
    /// How long a request may take before it is stopped (503 `request_timeout`).
    pub request_timeout: std::time::Duration,
    /// Set on SIGTERM: `/readyz` answers 503 while the listener still serves.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// When the process started and its pool's size, for `/metrics`.
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub db_max_connections: u32,
    /// The size of `reads` when it is a pool of its own (SQLite readers), else 0.
    pub db_read_connections: u32,
    /// Token use this process has recorded (see `crate::auth`).
    pub token_use: Arc<crate::token_use::TokenUse>,
    /// SQLite: wakes the workers when a request commits work for them (`crate::wake`).
    pub worker_wakes: Option<Arc<crate::wake::WorkerWakes>>,
}
