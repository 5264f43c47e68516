//! Flags only `cmo-api` reads; the ones every binary reads are in `migration::startup`.

use clap::Args;

use crate::client_address::TrustedProxies;

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

    /// Reverse proxies or load balancers whose `X-Forwarded-For` names the client
    /// (comma-separated addresses or CIDR ranges, e.g. `10.0.0.0/8`). Sign-in
    /// throttling per client address and the audit trail use that address; without it
    /// every client behind a proxy shares the proxy's. Empty: the header is ignored.
    #[arg(long, env = "CMO_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: TrustedProxies,

    /// Accept webhook receivers on loopback addresses (127.0.0.0/8, ::1, localhost): for
    /// tests and a receiver on the same host. Private, link-local and other inner
    /// addresses are refused whatever this says. The worker has the same setting.
    #[arg(long, env = "CMO_WEBHOOK_ALLOW_LOOPBACK", default_value_t = false)]
    pub webhook_allow_loopback: bool,

    /// A token the metrics scraper sends (`Authorization: Bearer …`); without it
    /// `/metrics` is open to whoever reaches the api (then bind or firewall it).
    #[arg(long, env = "CMO_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// How long (milliseconds) `/readyz` waits for the database before answering 503: a
    /// probe answers promptly even when connecting would wait for the pool's timeout.
    #[arg(long, env = "CMO_READY_TIMEOUT_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(50..=30_000))]
    pub ready_timeout_ms: u64,

    /// Seconds an idle client connection is kept open: more than the load balancer's idle
    /// timeout (60 s on the common ones), so that it closes first.
    #[arg(long, env = "CMO_KEEP_ALIVE_SECS", default_value_t = 75, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub keep_alive_secs: u64,

    /// Seconds to let in-flight requests finish after SIGTERM.
    #[arg(long, env = "CMO_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,

    /// Seconds between SIGTERM and closing the listener, while `/readyz` answers 503 so
    /// that a load balancer stops sending new requests first (set it to the balancer's
    /// health-check interval times its unhealthy threshold). 0: close at once.
    #[arg(long, env = "CMO_SHUTDOWN_DELAY_SECS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub shutdown_delay_secs: u64,

    /// Seconds a request may take before it is stopped with 503 `request_timeout` (what
    /// it had not committed is rolled back). Keep it below the load balancer's timeout.
    #[arg(long, env = "CMO_REQUEST_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub request_timeout_secs: u64,
}
