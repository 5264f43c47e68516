//! `cmo-api`: serve the API, bootstrap an empty database, or print the OpenAPI document.

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use api::app::{ServerOptions, build_server};
use api::bootstrap::{BootstrapRequest, bootstrap};
use api::config::ServeArgs;
use api::state::AppState;
use clap::{Parser, Subcommand};
use entity::clock::Clock;
use migration::startup::{ClockArgs, DatabaseArgs, TelemetryArgs};

#[derive(Parser)]
#[command(name = "cmo-api", version, about = "cmo-orchestrator HTTP API")]
struct Cli {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    telemetry: TelemetryArgs,
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    clock: ClockArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Create the first sponsor organization, its admin user and an API token.
    /// Refuses when the database already holds data.
    Bootstrap {
        /// Name of the sponsor organization.
        #[arg(long)]
        org: String,
        /// Email of the first admin.
        #[arg(long)]
        email: String,
        /// Display name of the first admin (default: the email's local part).
        #[arg(long)]
        name: Option<String>,
        /// IANA time zone of the admin.
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// Print the result as JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Add a sponsor organization to a running installation (the installation operator's
    /// act; sponsors cannot create each other). Its first admin is invited by email.
    CreateSponsor {
        /// Name of the sponsor organization (unique on the installation).
        #[arg(long)]
        org: String,
        /// Email of its first admin.
        #[arg(long)]
        email: String,
        /// Display name of the first admin (default: the email's local part).
        #[arg(long)]
        name: Option<String>,
        /// IANA time zone of the admin.
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// Print the result as JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Copy the SQLite database to a new file while the product runs (a consistent
    /// snapshot, `VACUUM INTO`). On PostgreSQL use `pg_dump` (see the README).
    Backup {
        /// The file to write; it must not exist yet.
        to: std::path::PathBuf,
    },
    /// Verify every organization's audit chain and print the result as JSON (after a
    /// restore, or any time); exits non-zero when a chain is broken or could not be
    /// checked completely. With --checkpoint, compares a kept checkpoint with its
    /// organization's chain instead.
    VerifyAudit {
        /// A checkpoint's JSON as kept from its email or the API.
        #[arg(long)]
        checkpoint: Option<std::path::PathBuf>,
    },
    /// Take a signed checkpoint of every organization's chain now (after verifying it),
    /// e.g. to re-anchor after a restore from backup; quality users get it by email.
    AuditCheckpoint {
        /// Why, kept with the checkpoint and said in its email.
        #[arg(long)]
        reason: String,
    },
    /// The audit chain keys: generate, rotate, show.
    #[command(subcommand)]
    AuditKey(AuditKeyCommand),
    /// Installation check (IQ): version and binary checksum, database reachable and
    /// migrated to this release, configuration (secrets masked), audit keys and the SMTP
    /// relay. Reads only; exits non-zero when a check fails.
    VerifyInstall {
        /// The worker's SMTP relay, checked by connecting (and logging in) without sending.
        #[arg(long, env = "CMO_SMTP_URL", hide_env_values = true)]
        smtp_url: Option<String>,
        /// The worker's folder for `.eml` files when no SMTP relay is set.
        #[arg(long, env = "CMO_OUTBOX_DIR", default_value = "outbox")]
        outbox_dir: std::path::PathBuf,
        /// Print the report as JSON (to keep with the installation record).
        #[arg(long)]
        json: bool,
    },
    /// Operational qualification (OQ) against this installation's running api: creates
    /// a scratch sponsor and CMO marked as a validation run, exercises the API over HTTP,
    /// deactivates both (their records stay) and writes a dated report (Markdown and
    /// JSON). Exits non-zero when a check fails.
    Qualify {
        /// The api's own address as seen from this host, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        base_url: String,
        /// Where the report is written.
        #[arg(long, default_value = ".")]
        report_dir: std::path::PathBuf,
    },
    /// Print the OpenAPI document to stdout.
    Openapi,
}

#[derive(Subcommand)]
enum AuditKeyCommand {
    /// A new key: written to a new file (for CMO_AUDIT_KEY_FILE), or printed in hex (for
    /// CMO_AUDIT_KEY) without --file.
    Generate {
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
    /// Add a new key to the configured key file (the default beside a SQLite database,
    /// or CMO_AUDIT_KEY_FILE); it keys new rows once the replicas restart.
    Rotate,
    /// Each key's id and its checkpoint public key (no secret).
    Show,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        print!("{}", api::openapi::document_json());
        return ExitCode::SUCCESS;
    }
    migration::startup::init_logging(&cli.telemetry);
    let clock = match entity::clock::process_clock(cli.clock.test_clock_start) {
        Ok(clock) => clock,
        Err(message) => {
            eprintln!("cmo-api: {message}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::Bootstrap {
            org,
            email,
            name,
            time_zone,
            json,
        }) => run_bootstrap(
            &cli.database,
            &*clock,
            BootstrapArgs {
                org,
                email,
                name,
                time_zone,
                json,
                public_base_url: cli.serve.public_base_url.clone(),
            },
        ),
        Some(Command::CreateSponsor {
            org,
            email,
            name,
            time_zone,
            json,
        }) => run_create_sponsor(
            &cli.database,
            &*clock,
            BootstrapArgs {
                org,
                email,
                name,
                time_zone,
                json,
                public_base_url: cli.serve.public_base_url.clone(),
            },
        ),
        Some(Command::Backup { to }) => run_backup(&cli.database, &to),
        Some(Command::VerifyAudit { checkpoint }) => {
            run_verify_audit(&cli.database, checkpoint.as_deref())
        }
        Some(Command::AuditCheckpoint { reason }) => {
            run_audit_checkpoint(&cli.database, &*clock, &reason)
        }
        Some(Command::VerifyInstall {
            smtp_url,
            outbox_dir,
            json,
        }) => api::verify_install::run(
            &cli.database,
            &*clock,
            &api::verify_install::Options {
                smtp_url,
                outbox_dir,
                json,
            },
        ),
        Some(Command::Qualify {
            base_url,
            report_dir,
        }) => api::oq::run(
            &cli.database,
            &*clock,
            &api::oq::Options {
                base_url,
                report_dir,
            },
        ),
        Some(Command::AuditKey(AuditKeyCommand::Generate { file })) => {
            api::operator::generate(file.as_deref())
        }
        Some(Command::AuditKey(AuditKeyCommand::Rotate)) => api::operator::rotate(&cli.database),
        Some(Command::AuditKey(AuditKeyCommand::Show)) => api::operator::show(&cli.database),
        _ => serve(cli.database, cli.serve, clock),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cmo-api: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(database: DatabaseArgs, serve: ServeArgs, clock: Arc<dyn Clock>) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let (db, chain_keys) = api::operator::open(&database).await?;
        let readers = migration::startup::connect_readers(&database)
            .await
            .map_err(|e| e.to_string())?;
        let db_read_connections = if readers.is_some() {
            database.db_read_connections
        } else {
            0
        };
        let reads = readers.unwrap_or_else(|| db.clone());
        match entity::user::unmailable(&db).await {
            Ok(bad) => {
                for (id, email) in bad {
                    tracing::warn!(
                        user_id = id,
                        email = %email.escape_debug(),
                        "this account's email is not a bare address, so mail to it is refused: correct it"
                    );
                }
            }
            Err(err) => tracing::warn!(%err, "cannot check the stored email addresses"),
        }
        // Records from before record numbers (or from an older replica) get theirs in
        // creation order, in the background: the api serves meanwhile.
        let numbering = db.clone();
        actix_web::rt::spawn(async move {
            match entity::record_number::number_unnumbered(&numbering).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "numbered records that had no number"),
                Err(err) => tracing::warn!(%err, "numbering records failed; the worker tries again"),
            }
        });
        let listener = TcpListener::bind(&serve.bind)
            .map_err(|e| format!("cannot bind {}: {e}", serve.bind))?;
        // The address actually bound: with port 0 the system chose it, and whoever
        // started the process (a test, a script) reads it here.
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| serve.bind.clone());
        tracing::info!(%address, "cmo-api listening");
        let started_at = clock.now();
        let worker_wakes = api::wake::WorkerWakes::for_database(&reads, clock.clone())
            .map_err(|e| format!("cannot open the worker wake socket: {e}"))?;
        let state = AppState {
            db: db.clone(),
            reads: reads.clone(),
            clock,
            metrics: Arc::default(),
            public_base_url: serve.public_base_url.trim_end_matches('/').into(),
            passwords: api::secrets::Passwords::default(),
            trusted_proxies: Arc::new(serve.trusted_proxies.clone()),
            webhook_policy: entity::webhook::AddressPolicy {
                allow_loopback: serve.webhook_allow_loopback,
            },
            metrics_token: serve
                .metrics_token
                .clone()
                .filter(|t| !t.is_empty())
                .map(Arc::from),
            ready_timeout: Duration::from_millis(serve.ready_timeout_ms),
            chain_keys,
            request_timeout: Duration::from_secs(serve.request_timeout_secs),
            draining: Arc::default(),
            started_at,
            db_max_connections: database
                .pool(migration::startup::API_POSTGRES_POOL)
                .max_connections,
            db_read_connections,
            token_use: Arc::default(),
            worker_wakes,
        };
        let options = ServerOptions {
            workers: serve.http_workers,
            shutdown_timeout: Duration::from_secs(serve.shutdown_timeout_secs),
            keep_alive: Duration::from_secs(serve.keep_alive_secs),
            shutdown_delay: Duration::from_secs(serve.shutdown_delay_secs),
            handle_signals: true,
        };
        build_server(state, listener, options)
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        // Events this process wrote but had no turn to sequence are not left for a
        // release that does not sequence (a rollback starts the previous one).
        entity::domain_event::catch_up(&db).await;
        tracing::info!("cmo-api stopped");
        let _ = reads.close().await;
        let _ = db.close().await;
        Ok(())
    })
}

struct BootstrapArgs {
    org: String,
    email: String,
    name: Option<String>,
    time_zone: String,
    json: bool,
    public_base_url: String,
}

fn run_bootstrap(
    database: &DatabaseArgs,
    clock: &dyn Clock,
    args: BootstrapArgs,
) -> Result<(), String> {
    let BootstrapArgs {
        org,
        email,
        name,
        time_zone,
        json,
        public_base_url,
    } = args;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let (db, chain_keys) = api::operator::open(database).await?;
        let admin_name =
            name.unwrap_or_else(|| email.split('@').next().unwrap_or(&email).to_string());
        let done = bootstrap(
            &db,
            &chain_keys,
            BootstrapRequest {
                org_name: org,
                admin_email: email,
                admin_name,
                time_zone,
                now: clock.now(),
                public_base_url,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "organization_id": done.organization.id,
                    "user_id": done.admin.id,
                    "token": done.secret,
                    "password_link": done.password_link,
                })
            );
        } else {
            println!(
                "Created sponsor organization \"{}\" (id {}) with admin {} (id {}).",
                done.organization.name, done.organization.id, done.admin.email, done.admin.id
            );
            println!("API token (shown once, keep it safe):");
            println!("{}", done.secret);
            println!(
                "Choose your password (to sign in and to sign records) at this one-time link, valid 7 days:"
            );
            println!("{}", done.password_link);
        }
        Ok(())
    })
}

fn current_thread() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn run_backup(database: &DatabaseArgs, to: &std::path::Path) -> Result<(), String> {
    use sea_orm::ConnectionTrait;
    if to.exists() {
        return Err(format!("{} exists: name a new file", to.display()));
    }
    current_thread()?.block_on(async move {
        let db = migration::startup::connect_and_migrate(
            database,
            migration::startup::API_POSTGRES_POOL,
        )
        .await
        .map_err(|e| e.to_string())?;
        if db.get_database_backend() != sea_orm::DbBackend::Sqlite {
            return Err(
                "backup copies the SQLite database; on PostgreSQL use pg_dump (see the README)"
                    .to_string(),
            );
        }
        let target = to.to_str().ok_or("the backup path is not UTF-8")?;
        // VACUUM INTO writes a consistent copy while others keep reading and writing.
        db.execute_unprepared(&format!("VACUUM INTO '{}'", target.replace('\'', "''")))
            .await
            .map_err(|e| format!("backup failed: {e}"))?;
        println!("Backed up to {}", to.display());
        if let Some(key_file) = api::operator::key_source(database).key_file() {
            println!(
                "The audit chain key file {} is not in the backup: keep a copy of it apart \
                 (the restored chain cannot be verified or extended without it).",
                key_file.display()
            );
        }
        Ok(())
    })
}

fn run_verify_audit(
    database: &DatabaseArgs,
    checkpoint: Option<&std::path::Path>,
) -> Result<(), String> {
    current_thread()?.block_on(async move {
        let (db, keys) = api::operator::open(database).await?;
        match checkpoint {
            Some(file) => api::operator::verify_kept_checkpoint(&db, &keys, file).await,
            None => api::operator::verify_audit(&db, &keys).await,
        }
    })
}

fn run_audit_checkpoint(
    database: &DatabaseArgs,
    clock: &dyn Clock,
    reason: &str,
) -> Result<(), String> {
    if reason.trim().is_empty() {
        return Err("--reason must say why (e.g. \"restored from the backup of …\")".to_string());
    }
    current_thread()?.block_on(async move {
        let (db, keys) = api::operator::open(database).await?;
        api::operator::take_checkpoints(&db, &keys, reason.trim(), clock.now()).await
    })
}

fn run_create_sponsor(
    database: &DatabaseArgs,
    clock: &dyn Clock,
    args: BootstrapArgs,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let (db, chain_keys) = api::operator::open(database).await?;
        let admin_name = args
            .name
            .unwrap_or_else(|| args.email.split('@').next().unwrap_or(&args.email).to_string());
        let (org, invitation) = api::bootstrap::create_sponsor(
            &db,
            &chain_keys,
            api::bootstrap::SponsorRequest {
                org_name: args.org,
                admin_email: args.email,
                admin_name,
                time_zone: args.time_zone,
                now: clock.now(),
                public_base_url: args.public_base_url,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "organization_id": org.id,
                    "invitation_id": invitation.id,
                    "expires_at": invitation.expires_at,
                })
            );
        } else {
            println!(
                "Created sponsor organization \"{}\" (id {}); its admin {} is invited by email (the worker sends it), valid until {} UTC.",
                org.name,
                org.id,
                invitation.email,
                invitation.expires_at.format("%Y-%m-%d %H:%M")
            );
        }
        Ok(())
    })
}
