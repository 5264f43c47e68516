//! Flags only `cmo-api` reads; the ones every binary reads are in `migration::startup`.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port the HTTP server listens on.
    #[arg(long, env = "CMO_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// Public base URL of the api, used for links in emails.
    #[arg(
        long,
        env = "CMO_PUBLIC_BASE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_base_url: String,

    /// HTTP worker threads (default: one per CPU core).
    #[arg(long, env = "CMO_HTTP_WORKERS")]
    pub http_workers: Option<usize>,

    /// Seconds to let in-flight requests finish after SIGTERM.
    #[arg(long, env = "CMO_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
}
