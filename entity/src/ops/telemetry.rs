//! What both binaries report to Prometheus beside their own counters: the build and the
//! process, the connection pool, and the work waiting in the database (the outbox, the
//! webhook deliveries, the escalations not yet acknowledged and how late their pages
//! are). The queries count across all organizations: they are for the operator.
//!
//! The text exposition format is written here by hand: it is a few lines per metric, and
//! a metrics crate would bring a registry that both binaries' existing counters bypass.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};

use crate::escalation::{self, EscalationStatus};
use crate::outbox::{self, OutboxStatus};
use crate::webhook::{DeliveryStatus, delivery};

/// Prometheus text exposition, one metric family at a time.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        self.family(name, help, "gauge", &[(String::new(), value)])
    }

    pub fn counter(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        self.family(name, help, "counter", &[(String::new(), value)])
    }

    /// A family with one sample per label set (`labels` already rendered, e.g.
    /// `job="digests"`; empty for none).
    pub fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: &str,
        samples: &[(String, f64)],
    ) -> &mut Self {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(self.text, "{name} {value}");
            } else {
                let _ = writeln!(self.text, "{name}{{{labels}}} {value}");
            }
        }
        self
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

/// A label value as the exposition format wants it.
pub fn label(name: &str, value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("{name}=\"{escaped}\"")
}

/// Build and process: which binary and version runs, since when, how much memory and
/// how many file descriptors it holds (Linux `/proc`; absent elsewhere).
pub fn process(out: &mut Exposition, binary: &str, started_at: DateTime<Utc>) {
    out.family(
        "cmo_build_info",
        "The running binary and its version (always 1).",
        "gauge",
        &[(
            format!(
                "{},{}",
                label("binary", binary),
                label("version", env!("CARGO_PKG_VERSION"))
            ),
            1.0,
        )],
    );
    out.gauge(
        "cmo_process_start_time_seconds",
        "When the process started, in seconds since the Unix epoch.",
        started_at.timestamp() as f64,
    );
    if let Some(bytes) = resident_bytes() {
        out.gauge(
            "cmo_process_resident_memory_bytes",
            "Resident memory of the process.",
            bytes as f64,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        out.gauge(
            "cmo_process_open_fds",
            "Open file descriptors (sockets included).",
            fds.count() as f64,
        );
    }
}

/// `VmRSS` of `/proc/self/status` (in kB there, whatever the page size).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The connection pool: its size now (it grows to its maximum under load and shrinks
/// back when idle), the idle part of it, and the maximum.
pub fn pool(out: &mut Exposition, db: &DatabaseConnection, max_connections: u32) {
    pool_gauges(out, "cmo_db_pool", "the pool", db, max_connections);
}

/// SQLite's read-only connections beside the writer (when the api has them).
pub fn readers(out: &mut Exposition, readers: &DatabaseConnection, max_connections: u32) {
    pool_gauges(
        out,
        "cmo_db_readers",
        "SQLite's read-only pool",
        readers,
        max_connections,
    );
}

fn pool_gauges(
    out: &mut Exposition,
    prefix: &str,
    what: &str,
    db: &DatabaseConnection,
    max_connections: u32,
) {
    let (size, idle) = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
    };
    out.gauge(
        &format!("{prefix}_connections"),
        &format!("Open connections of {what}."),
        f64::from(size),
    );
    out.gauge(
        &format!("{prefix}_idle_connections"),
        &format!("Open connections of {what} not in use."),
        idle as f64,
    );
    out.gauge(
        &format!("{prefix}_max_connections"),
        &format!("The most connections {what} opens."),
        f64::from(max_connections),
    );
}

/// Work waiting in the database at `now`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Backlog {
    /// Emails queued or being sent.
    pub outbox_waiting: u64,
    /// Seconds since the oldest of them was queued (0 when none).
    pub outbox_oldest_seconds: f64,
    /// Emails given up after their retries.
    pub outbox_failed: u64,
    pub webhooks_waiting: u64,
    pub webhooks_oldest_seconds: f64,
    /// Escalations open and not acknowledged.
    pub escalations_unacknowledged: u64,
    /// How late the most overdue page of an open escalation is (0 when none is due).
    pub escalation_page_lag_seconds: f64,
    /// Domain events committed and still waiting for their feed cursor (PostgreSQL).
    pub events_unsequenced: u64,
    /// Seconds since the oldest of them happened (0 when none).
    pub events_unsequenced_oldest_seconds: f64,
}

pub async fn backlog(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<Backlog, DbErr> {
    let waiting = [OutboxStatus::Queued, OutboxStatus::Sending];
    let outbox_waiting = outbox::Entity::find()
        .filter(outbox::Column::Status.is_in(waiting))
        .count(db)
        .await?;
    let outbox_oldest: Option<DateTime<Utc>> = outbox::Entity::find()
        .select_only()
        .column_as(outbox::Column::CreatedAt.min(), "oldest")
        .filter(outbox::Column::Status.is_in(waiting))
        .into_tuple()
        .one(db)
        .await?
        .flatten();
    let outbox_failed = outbox::Entity::find()
        .filter(outbox::Column::Status.eq(OutboxStatus::Failed))
        .count(db)
        .await?;
    let pending = [DeliveryStatus::Pending, DeliveryStatus::Delivering];
    let webhooks_waiting = delivery::Entity::find()
        .filter(delivery::Column::Status.is_in(pending))
        .count(db)
        .await?;
    let webhooks_oldest: Option<DateTime<Utc>> = delivery::Entity::find()
        .select_only()
        .column_as(delivery::Column::CreatedAt.min(), "oldest")
        .filter(delivery::Column::Status.is_in(pending))
        .into_tuple()
        .one(db)
        .await?
        .flatten();
    let escalations_unacknowledged = escalation::Entity::find()
        .filter(escalation::Column::Status.eq(EscalationStatus::Open))
        .count(db)
        .await?;
    let most_overdue_page: Option<DateTime<Utc>> = escalation::Entity::find()
        .select_only()
        .column_as(escalation::Column::NextPageAt.min(), "due")
        .filter(escalation::Column::Status.eq(EscalationStatus::Open))
        .filter(escalation::Column::NextPageAt.lte(now))
        .into_tuple()
        .one(db)
        .await?
        .flatten();
    // The placeholder cursors' range of the cursor index (none on SQLite).
    let events_unsequenced = crate::domain_event::Entity::find()
        .filter(crate::domain_event::Column::Cursor.lt(0))
        .count(db)
        .await?;
    let events_oldest: Option<DateTime<Utc>> = crate::domain_event::Entity::find()
        .select_only()
        .column_as(crate::domain_event::Column::OccurredAt.min(), "oldest")
        .filter(crate::domain_event::Column::Cursor.lt(0))
        .into_tuple()
        .one(db)
        .await?
        .flatten();
    let age = |t: Option<DateTime<Utc>>| {
        t.map_or(0.0, |t| {
            ((now - t).num_milliseconds().max(0) as f64) / 1000.0
        })
    };
    Ok(Backlog {
        outbox_waiting,
        outbox_oldest_seconds: age(outbox_oldest),
        outbox_failed,
        webhooks_waiting,
        webhooks_oldest_seconds: age(webhooks_oldest),
        escalations_unacknowledged,
        escalation_page_lag_seconds: age(most_overdue_page),
        events_unsequenced,
        events_unsequenced_oldest_seconds: age(events_oldest),
    })
}

impl Backlog {
    pub fn render(&self, out: &mut Exposition) {
        out.gauge(
            "cmo_outbox_waiting",
            "Emails queued or being sent.",
            self.outbox_waiting as f64,
        )
        .gauge(
            "cmo_outbox_oldest_age_seconds",
            "Age of the oldest email waiting to be sent (0 when none).",
            self.outbox_oldest_seconds,
        )
        .gauge(
            "cmo_outbox_failed",
            "Emails given up after their retries.",
            self.outbox_failed as f64,
        )
        .gauge(
            "cmo_webhook_deliveries_waiting",
            "Webhook deliveries pending or being delivered.",
            self.webhooks_waiting as f64,
        )
        .gauge(
            "cmo_webhook_oldest_age_seconds",
            "Age of the oldest webhook delivery waiting (0 when none).",
            self.webhooks_oldest_seconds,
        )
        .gauge(
            "cmo_escalations_unacknowledged",
            "Escalations open and not yet acknowledged.",
            self.escalations_unacknowledged as f64,
        )
        .gauge(
            "cmo_escalation_page_lag_seconds",
            "How late the most overdue page of an open escalation is (0 when none is due).",
            self.escalation_page_lag_seconds,
        )
        .gauge(
            "cmo_domain_events_unsequenced",
            "Domain events committed and not yet given their feed cursor (PostgreSQL; they \
             reach the feed, webhooks and notifications once they have it).",
            self.events_unsequenced as f64,
        )
        .gauge(
            "cmo_domain_event_unsequenced_oldest_age_seconds",
            "Age of the oldest domain event waiting for its feed cursor (0 when none).",
            self.events_unsequenced_oldest_seconds,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_labels_are_written_in_the_text_format() {
        let mut out = Exposition::default();
        out.gauge("cmo_x", "An x.", 2.0).family(
            "cmo_y_total",
            "Ys.",
            "counter",
            &[(label("job", "di\"gest"), 3.0)],
        );
        assert_eq!(
            out.into_text(),
            "# HELP cmo_x An x.\n# TYPE cmo_x gauge\ncmo_x 2\n\
             # HELP cmo_y_total Ys.\n# TYPE cmo_y_total counter\ncmo_y_total{job=\"di\\\"gest\"} 3\n"
        );
    }
}
