//! Test harness for the end-to-end tests: the real api on a random loopback port, a fresh
//! database per test (SQLite file, or a database in a throwaway PostgreSQL cluster), and
//! a small typed HTTP client.

pub mod api_process;
pub mod browser;
pub mod client;
pub mod hooks;
pub mod pdf;
pub mod pg;
pub mod smtp;
pub mod worker_process;

use std::net::TcpListener;
use std::sync::Arc;

use api::app::{ServerOptions, build_server};
use api::bootstrap::{BootstrapRequest, bootstrap};
use api::state::AppState;
use entity::clock::{Clock, ManualClock};
use migration::startup::DatabaseArgs;
use sea_orm::DatabaseConnection;

pub use client::{Client, Reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where every test's clock starts unless it chooses another instant: a Wednesday at
/// 10:00 UTC in winter, far from midnight, from Monday schedules and from daylight-saving
/// switches in every zone the tests use. Never the machine's clock: the suite must mean the
/// same thing at any hour of any day (and under a shifted clock).
pub fn start_instant() -> chrono::DateTime<chrono::Utc> {
    utc("2026-11-18T10:00:00Z")
}

/// An RFC 3339 instant (test data; panics on a typo).
pub fn utc(rfc3339: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|e| panic!("instant {rfc3339:?}: {e}"))
}

/// The instants time-dependent scenarios are run through: where schedules, dates and
/// weeks turn over. Each is named for the failure it would catch.
pub fn tricky_instants() -> Vec<(&'static str, chrono::DateTime<chrono::Utc>)> {
    vec![
        // Monday in Zurich (CET, UTC+1): just before and at the 07:00 digest, and the
        // 08:00 reminder.
        ("Mon 06:59 Zurich", utc("2026-11-30T05:59:00Z")),
        ("Mon 07:00 Zurich", utc("2026-11-30T06:00:00Z")),
        ("Mon 08:00 Zurich", utc("2026-11-30T07:00:00Z")),
        // Daylight-saving switch days: Europe (last Sunday of March / October) and the
        // US (second Sunday of March, first Sunday of November), and the Monday after.
        ("EU spring forward", utc("2027-03-28T01:30:00Z")),
        (
            "Mon after EU spring forward 07:30 UTC",
            utc("2027-03-29T07:30:00Z"),
        ),
        ("EU fall back", utc("2027-10-31T00:30:00Z")),
        ("US spring forward", utc("2027-03-14T10:30:00Z")),
        ("US fall back", utc("2026-11-01T06:30:00Z")),
        // Year end: 31 December late evening UTC is already 1 January in UTC+13, and
        // 2026 has an ISO week 53.
        ("31 Dec 23:30 UTC", utc("2026-12-31T23:30:00Z")),
        ("1 Jan 00:30 UTC", utc("2027-01-01T00:30:00Z")),
        ("23:30 UTC", utc("2026-11-24T23:30:00Z")),
    ]
}

/// Zones whose local date differs most from UTC's: Auckland in summer is UTC+13,
/// Honolulu UTC-10, Kolkata a half-hour zone, Sydney southern-hemisphere DST.
pub const FAR_ZONES: [&str; 4] = [
    "Pacific/Auckland",
    "Pacific/Honolulu",
    "Asia/Kolkata",
    "Australia/Sydney",
];

/// A running api with a bootstrapped sponsor org ("Acme Bio") and its admin.
pub struct TestApp {
    pub base_url: String,
    /// The database the app runs on (for extra connections: workers, benches).
    pub database_url: String,
    pub db: DatabaseConnection,
    /// The api's reads: on SQLite its read-only pool beside `db`; else the same as `db`.
    pub reads: DatabaseConnection,
    pub backend: Backend,
    /// The api's clock: tests move it to expire tokens and the like.
    pub clock: ManualClock,
    pub admin_token: String,
    pub admin_id: i64,
    pub org_id: i64,
    server: actix_web::dev::ServerHandle,
    /// The app's audit chain keys (its worker contexts use the same).
    pub chain_keys: entity::audit::ChainKeys,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// The api's current time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The api's date in the time zone `zone` (a program's "today").
    pub fn today_in(&self, zone: &str) -> chrono::NaiveDate {
        let tz: chrono_tz::Tz = zone.parse().expect("IANA zone");
        self.now().with_timezone(&tz).date_naive()
    }

    /// The ids of the workers that ran against this database (each left a heartbeat),
    /// sorted: how a test proves that every worker it started really worked.
    pub async fn workers_that_ran(&self) -> Vec<String> {
        use sea_orm::EntityTrait;
        let mut ids: Vec<String> = entity::worker_heartbeat::Entity::find()
            .all(&self.db)
            .await
            .expect("heartbeats")
            .into_iter()
            .map(|b| b.worker_id)
            .collect();
        ids.sort();
        ids
    }

    /// A worker's job context on this app's database and clock (the worker's `now` is
    /// the api's: one clock).
    pub fn job_context(&self, worker_id: &str) -> worker::jobs::JobContext {
        worker::jobs::JobContext {
            db: self.db.clone(),
            clock: Arc::new(self.clock.clone()),
            worker_id: worker_id.to_string(),
            hostname: "test".to_string(),
            started_at: self.now(),
            public_base_url: self.base_url.clone(),
            chain_keys: self.chain_keys.clone(),
        }
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

    /// A qualified CMO registered by the admin and a program with it (UTC, named `name`),
    /// as the benches set up their load: returns (CMO org id, program id).
    pub async fn program_with_new_cmo(&self, name: &str) -> (i64, i64) {
        let admin = self.admin();
        let cmo = admin
            .post("/api/v1/organizations", serde_json::json!({"name": format!("CMO of {name}"), "kind": "cmo", "admin": {"email": "a@cmo.test", "display_name": "A"}}))
            .await
            .expect(201)
            .body["organization"]["id"]
            .as_i64()
            .unwrap_or_default();
        self.qualify_cmo(cmo).await;
        let program = admin
            .post(
                "/api/v1/programs",
                serde_json::json!({"name": name, "product_name": name, "cmo_org_id": cmo, "modality": "biologic", "stage": "clinical", "time_zone": "UTC"}),
            )
            .await
            .expect(201)
            .body["id"]
            .as_i64()
            .unwrap_or_default();
        (cmo, program)
    }

    /// The link (with its `?token=`) to `path` in the newest email queued for `to`: what
    /// the person would click. The outbox row is the email the worker sends.
    pub async fn emailed_link(&self, to: &str, path: &str) -> String {
        use sea_orm::{EntityTrait, QueryOrder};
        let emails = entity::outbox::Entity::find()
            .order_by_desc(entity::outbox::Column::Id)
            .all(&self.db)
            .await
            .expect("outbox");
        let needle = format!("{}{path}?token=", self.base_url);
        for email in emails {
            let recipients: Vec<String> = serde_json::from_str(&email.to_addrs).expect("to");
            if !recipients.iter().any(|r| r == to) {
                continue;
            }
            if let Some(at) = email.text_body.find(&needle) {
                let rest = &email.text_body[at..];
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                return rest[..end].to_string();
            }
        }
        panic!("no email to {to} links to {path}");
    }

    /// The form token a browser gets with the page at `path` (its `cmo_csrf` cookie, the
    /// same value the page's forms carry in their hidden `csrf` field).
    pub async fn form_token(&self, path: &str) -> String {
        let page = self.anonymous().get(path).await.expect(200);
        let cookie = page.header("set-cookie").expect("form token cookie");
        cookie
            .split(';')
            .next()
            .and_then(|c| c.strip_prefix("cmo_csrf="))
            .expect("cmo_csrf")
            .to_string()
    }

    /// POSTs a form as a browser that opened its page: the form token as cookie and field.
    pub async fn post_form(
        &self,
        path: &str,
        token: &str,
        fields: &str,
        session: Option<&str>,
    ) -> client::Reply {
        let client = self.anonymous();
        let cookie = match session {
            Some(s) => format!("cmo_csrf={token}; cmo_session={s}"),
            None => format!("cmo_csrf={token}"),
        };
        client
            .send_raw(
                client
                    .request(awc::http::Method::POST, path)
                    .content_type("application/x-www-form-urlencoded")
                    .insert_header(("Cookie", cookie)),
                format!("{fields}&csrf={token}"),
            )
            .await
    }

    /// Signs `email` in on the sign-in page, as a browser does: the session cookie.
    pub async fn browser_session(&self, email: &str, password: &str) -> String {
        let token = self.form_token("/sign-in").await;
        let form = format!(
            "email={}&password={}&next=%2Faccount",
            email.replace('@', "%40").replace('+', "%2B"),
            password.replace(' ', "+")
        );
        let signed = self
            .post_form("/sign-in", &token, &form, None)
            .await
            .expect(303);
        let cookie = signed.header("set-cookie").expect("session cookie");
        cookie
            .split(';')
            .next()
            .and_then(|c| c.strip_prefix("cmo_session="))
            .expect("cmo_session")
            .to_string()
    }

    /// GETs a page (a path with its query) as a browser: with the session cookie when
    /// given, without following redirects.
    pub async fn page(&self, path_and_query: &str, session: Option<&str>) -> client::Reply {
        let client = self.anonymous();
        let mut req = client.request(awc::http::Method::GET, path_and_query);
        if let Some(s) = session {
            req = req.insert_header(("Cookie", format!("cmo_session={s}")));
        }
        client.send(req, None).await
    }

    /// A personal link to a record's page, as an email would carry it (path and query),
    /// valid for `ttl`.
    pub async fn page_link(
        &self,
        record: entity::link_token::PageRecord,
        id: i64,
        user_id: i64,
        ttl: chrono::TimeDelta,
    ) -> String {
        let key = entity::link_secret::get_or_create(&self.db, self.now())
            .await
            .expect("link key");
        entity::link_token::Link::View {
            record,
            id,
            user_id,
        }
        .url(&key, "", Some(self.now() + ttl))
    }

    /// The `token` of the newest emailed link to `path` for `to`.
    pub async fn emailed_token(&self, to: &str, path: &str) -> String {
        let link = self.emailed_link(to, path).await;
        link.split("?token=").nth(1).expect("token").to_string()
    }

    /// What an invitee does: opens the invitation email's link and chooses `password`.
    /// Returns the new user's id. The invitation email is then taken out of the outbox
    /// (it was read), so tests that count the emails a scenario sends count only those.
    pub async fn accept_invitation(&self, email: &str, password: &str) -> i64 {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let token = self.emailed_token(email, "/invitations/accept").await;
        entity::outbox::Entity::delete_many()
            .filter(entity::outbox::Column::TextBody.contains(&token))
            .exec(&self.db)
            .await
            .expect("outbox");
        self.anonymous()
            .post(
                "/api/v1/invitations/accept",
                serde_json::json!({"token": token, "password": password, "certify_signature": true}),
            )
            .await
            .expect(201)
            .body["id"]
            .as_i64()
            .expect("user id")
    }

    /// What an API client does: signs in with the person's own password and creates
    /// their own personal token. Returns its secret.
    pub async fn own_token(&self, email: &str, password: &str) -> String {
        let signed = self
            .anonymous()
            .post(
                "/api/v1/sign-in",
                serde_json::json!({"email": email, "password": password}),
            )
            .await
            .expect(201)
            .body;
        let session = signed["secret"].as_str().expect("secret");
        self.client(session)
            .post("/api/v1/tokens", serde_json::json!({"name": "test"}))
            .await
            .expect(201)
            .body["secret"]
            .as_str()
            .expect("secret")
            .to_string()
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

/// Worker settings for tests that run the real loops: emails to the SMTP server at
/// `smtp_url`, and reminder and digest schedules that never come due (an occurrence a
/// year away, with no catch-up), so only the work a test creates is sent.
pub fn quiet_job_settings(smtp_url: &str) -> worker::runner::JobSettings {
    let never = "0 0 0 29 2 *".to_string();
    worker::runner::JobSettings {
        mailer: worker::outbound::mailer::Mailer::new(Some(smtp_url), std::env::temp_dir())
            .expect("mailer"),
        from: "cmo <noreply@cmo.test>".parse().expect("from address"),
        batch: 50,
        outbox_claim_ttl: entity::outbox::CLAIM_TTL,
        reminders: worker::jobs::reminders::ReminderSettings {
            schedule: never.clone(),
            catch_up: chrono::TimeDelta::zero(),
            ..Default::default()
        },
        digests: worker::jobs::digests::DigestSettings {
            schedule: never.clone(),
            catch_up: chrono::TimeDelta::zero(),
        },
        agreements: worker::jobs::agreement_expiry::AgreementSettings {
            schedule: never.clone(),
            catch_up: chrono::TimeDelta::zero(),
        },
        checkpoints: worker::jobs::checkpoints::CheckpointSettings {
            schedule: never,
            catch_up: chrono::TimeDelta::zero(),
        },
        escalations: Default::default(),
        webhooks: Default::default(),
        retention: Default::default(),
        http: worker::outbound::http::HttpClient::new(std::time::Duration::from_secs(5))
            .expect("http client")
            .with_policy(entity::webhook::AddressPolicy::LOOPBACK_ALLOWED),
        metrics: Default::default(),
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
        db_acquire_timeout_ms: acquire_timeout_ms,
        // PostgreSQL needs the key configured (as every replica would have it); SQLite
        // generates its key file beside the database, as on a first start.
        audit_key: (backend == Backend::Postgres).then(|| TEST_AUDIT_KEY.to_string()),
        ..DatabaseArgs::for_url(url.clone())
    };
    if std::env::var_os("TEST_LOG").is_some() {
        migration::startup::init_logging(&migration::startup::TelemetryArgs {
            log_format: migration::startup::LogFormat::Pretty,
            log_filter: "info,sqlx=warn".to_string(),
        });
    }
    let (db, chain_keys) = api::operator::open(&args)
        .await
        .expect("connect, migrate and load the audit keys");
    // As the binary serves: SQLite's reads on read-only connections beside the writer.
    let readers = migration::startup::connect_readers(&args)
        .await
        .expect("connect the SQLite readers");
    let db_read_connections = if readers.is_some() {
        args.db_read_connections
    } else {
        0
    };
    let reads = readers.unwrap_or_else(|| db.clone());
    let app_reads = reads.clone();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("local addr").port();
    let clock = ManualClock::new(start_instant());
    let boot = bootstrap(
        &db,
        &chain_keys,
        BootstrapRequest {
            org_name: "Acme Bio".to_string(),
            admin_email: "admin@acme.test".to_string(),
            admin_name: "Ada Admin".to_string(),
            time_zone: "Europe/Berlin".to_string(),
            now: clock.now(),
            public_base_url: format!("http://127.0.0.1:{port}"),
        },
    )
    .await
    .expect("bootstrap");
    let reads_for_wakes = reads.clone();
    let state = AppState {
        db: db.clone(),
        reads,
        clock: Arc::new(clock.clone()),
        metrics: Arc::default(),
        public_base_url: format!("http://127.0.0.1:{port}").into(),
        passwords: api::secrets::Passwords::cheap_for_tests(),
        // As behind a reverse proxy on the same machine: its X-Forwarded-For names
        // the client (tests without the header are the proxy's own requests).
        trusted_proxies: std::sync::Arc::new("127.0.0.1".parse().expect("loopback")),
        // The tests' receivers listen on loopback.
        webhook_policy: entity::webhook::AddressPolicy::LOOPBACK_ALLOWED,
        metrics_token: None,
        ready_timeout: std::time::Duration::from_secs(1),
        chain_keys: chain_keys.clone(),
        request_timeout: std::time::Duration::from_secs(30),
        draining: Arc::default(),
        started_at: clock.now(),
        db_max_connections: 8,
        db_read_connections,
        token_use: Arc::default(),
        worker_wakes: api::wake::WorkerWakes::for_database(
            &reads_for_wakes,
            Arc::new(clock.clone()),
        )
        .expect("wake socket"),
    };
    let server = build_server(
        state,
        listener,
        ServerOptions {
            workers: Some(1),
            shutdown_timeout: std::time::Duration::from_secs(1),
            handle_signals: false,
            ..Default::default()
        },
    )
    .expect("server");
    let handle = server.handle();
    actix_web::rt::spawn(server);
    TestApp {
        base_url: format!("http://127.0.0.1:{port}"),
        database_url: url,
        db,
        reads: app_reads,
        backend,
        clock,
        admin_token: boot.secret,
        admin_id: boot.admin.id,
        org_id: boot.organization.id,
        server: handle,
        chain_keys,
        _dir: dir,
    }
}

/// The audit chain key of every test app on PostgreSQL (and of the worker processes
/// tests start on it): configured, as production must.
pub const TEST_AUDIT_KEY: &str = "7e57a0d17c4a1b2e3f405162738495a6b7c8d9eaf00112233445566778899aab";

/// For a scenario `async fn name(app: &TestApp)`, declares `mod name { sqlite, postgres }`:
/// the same scenario against both databases.
// REQ: ARCH-BOTH-DATABASES
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
