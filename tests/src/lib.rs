//! Test harness for the end-to-end tests: the real api on a random loopback port, a fresh
//! database per test (SQLite file, or a database in a throwaway PostgreSQL cluster), and
//! a small typed HTTP client.

pub mod client;
pub mod hooks;
pub mod pg;
pub mod smtp;

use std::net::TcpListener;
use std::sync::Arc;

use api::app::{ServerOptions, build_server};
use api::bootstrap::{BootstrapRequest, bootstrap};
use api::config::DatabaseArgs;
use api::state::AppState;
use entity::clock::{Clock, ManualClock};
use sea_orm::DatabaseConnection;

pub use client::{Client, Reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running api with a bootstrapped sponsor org ("Acme Bio") and its admin.
pub struct TestApp {
    pub base_url: String,
    /// The database the app runs on (for extra connections: workers, benches).
    pub database_url: String,
    pub db: DatabaseConnection,
    pub backend: Backend,
    /// The api's clock: tests move it to expire tokens and the like.
    pub clock: ManualClock,
    pub admin_token: String,
    pub admin_id: i64,
    pub org_id: i64,
    server: actix_web::dev::ServerHandle,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// The api's current time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub fn client(&self, token: &str) -> Client {
        Client::new(&self.base_url, Some(token))
    }

    /// Takes a registered CMO from prospect to qualified (what a program needs), as the
    /// sponsor's admin.
    pub async fn qualify_cmo(&self, cmo_org_id: i64) {
        for event in ["start_evaluation", "qualify"] {
            self.admin()
                .post(
                    &format!("/api/v1/cmos/{cmo_org_id}/qualification"),
                    serde_json::json!({"event": event}),
                )
                .await
                .expect(200);
        }
    }

    pub fn admin(&self) -> Client {
        self.client(&self.admin_token)
    }

    pub fn anonymous(&self) -> Client {
        Client::new(&self.base_url, None)
    }

    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

/// Starts the api against a fresh database of `backend`. Returns `None` (after printing
/// why) when PostgreSQL is not installed, unless `CMO_REQUIRE_POSTGRES=1`, where that
/// is a failure.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("cmo.db").display()),
        Backend::Postgres => pg::fresh_database_url().await?,
    };
    Some(spawn_app_on(url, backend, dir, 10_000).await)
}

/// Starts the api on a database the caller chose (e.g. in a private PostgreSQL cluster).
/// `acquire_timeout_ms`: how long a request waits for a connection before its 503.
pub async fn spawn_app_on(
    url: String,
    backend: Backend,
    dir: tempfile::TempDir,
    acquire_timeout_ms: u64,
) -> TestApp {
    let args = DatabaseArgs {
        database_url: url.clone(),
        db_max_connections: None,
        no_migrate: false,
        db_acquire_timeout_ms: acquire_timeout_ms,
    };
    if std::env::var_os("TEST_LOG").is_some() {
        api::telemetry::init(&api::config::TelemetryArgs {
            log_format: api::config::LogFormat::Pretty,
            log_filter: "info,sqlx=warn".to_string(),
        });
    }
    let db = api::db::connect_and_migrate(&args)
        .await
        .expect("connect and migrate");
    let clock = ManualClock::new(chrono::Utc::now());
    let boot = bootstrap(
        &db,
        BootstrapRequest {
            org_name: "Acme Bio".to_string(),
            admin_email: "admin@acme.test".to_string(),
            admin_name: "Ada Admin".to_string(),
            time_zone: "Europe/Berlin".to_string(),
            now: clock.now(),
        },
    )
    .await
    .expect("bootstrap");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("local addr").port();
    let state = AppState {
        db: db.clone(),
        clock: Arc::new(clock.clone()),
        metrics: Arc::default(),
        public_base_url: format!("http://127.0.0.1:{port}").into(),
    };
    let server = build_server(
        state,
        listener,
        ServerOptions {
            workers: Some(1),
            shutdown_timeout: std::time::Duration::from_secs(1),
        },
    )
    .expect("server");
    let handle = server.handle();
    actix_web::rt::spawn(server);
    TestApp {
        base_url: format!("http://127.0.0.1:{port}"),
        database_url: url,
        db,
        backend,
        clock,
        admin_token: boot.secret,
        admin_id: boot.admin.id,
        org_id: boot.organization.id,
        server: handle,
        _dir: dir,
    }
}

/// For a scenario `async fn name(app: &TestApp)`, declares `mod name { sqlite, postgres }`:
/// the same scenario against both databases.
#[macro_export]
macro_rules! on_both_databases {
    ($scenario:ident) => {
        mod $scenario {
            #[actix_web::test]
            async fn sqlite() {
                let app = $crate::spawn_app($crate::Backend::Sqlite)
                    .await
                    .expect("sqlite app");
                super::$scenario(&app).await;
                app.stop().await;
            }

            #[actix_web::test]
            async fn postgres() {
                if let Some(app) = $crate::spawn_app($crate::Backend::Postgres).await {
                    super::$scenario(&app).await;
                    app.stop().await;
                }
            }
        }
    };
}
