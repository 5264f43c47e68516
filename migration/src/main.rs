//! `cmo-migrate`: apply, roll back or inspect schema migrations.

use std::time::Duration;

use clap::{Parser, Subcommand};
use migration::startup::{self, DEFAULT_DATABASE_URL};
use migration::{Migrator, MigratorTrait};

#[derive(Parser)]
#[command(name = "cmo-migrate", about = "Schema migrations for cmo-orchestrator")]
struct Cli {
    /// Database URL (sqlite://cmo.db?mode=rwc or postgres://user:pass@host/db).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply all pending migrations (the default).
    Up,
    /// Roll back the given number of migrations (default 1).
    Down {
        #[arg(default_value_t = 1)]
        steps: u32,
    },
    /// List migrations that are not applied yet.
    Status,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cmo-migrate: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), sea_orm::DbErr> {
    // The same connection as the api and the worker (SQLite pragmas), and the same lock
    // file, so a migration never meets a starting api half-way.
    let _lock = startup::sqlite_migration_lock(&cli.database_url).await?;
    let db = startup::connect_with(&cli.database_url, Some(1), Duration::from_secs(10)).await?;
    match cli.command.unwrap_or(Command::Up) {
        Command::Up => match migration::compat::standing(&db).await? {
            migration::compat::Standing::Known => {
                migration::migrate_up(&db).await?;
                for index in migration::build_concurrent_indexes(&db).await? {
                    println!("index built concurrently: {index}");
                }
                println!("all migrations applied");
            }
            migration::compat::Standing::AheadCompatible(newer) => {
                println!(
                    "nothing to apply: the database is ahead of this release by expand-only migrations ({})",
                    newer.join(", ")
                );
            }
            migration::compat::Standing::AheadIncompatible(blocking) => {
                return Err(sea_orm::DbErr::Custom(format!(
                    "the database has migration(s) {} from a newer release that this release cannot run with",
                    blocking.join(", ")
                )));
            }
        },
        Command::Down { steps } => {
            Migrator::down(&db, Some(steps)).await?;
            println!("rolled back {steps} migration(s)");
        }
        Command::Status => {
            let pending = migration::pending(&db).await?;
            if pending.is_empty() {
                println!("no pending migrations");
            }
            for name in pending {
                println!("pending: {name}");
            }
        }
    }
    Ok(())
}
