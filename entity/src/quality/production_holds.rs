//! When a program's production was on hold: its periods read back from the program's
//! domain events (`production.held`, `production.released`), so the page and the
//! digest say since when and for how long, from the same record.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use crate::domain_event::{self, Event};

/// One period on hold; `released_at` is `None` while it lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldPeriod {
    pub held_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
    /// Why it was held.
    pub reason: String,
    /// Why it was released.
    pub release_reason: Option<String>,
}

impl HoldPeriod {
    /// How long it lasted, or has lasted by `now`.
    pub fn length(&self, now: DateTime<Utc>) -> TimeDelta {
        self.released_at.unwrap_or(now) - self.held_at
    }

    /// Whether any of it falls within `[from, to]` (a hold that starts at `to`, the
    /// moment a digest is gathered, counts).
    pub fn overlaps(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.held_at <= to && self.released_at.is_none_or(|r| r > from)
    }
}

/// Folds hold and release events (oldest first) into periods. A second hold while on
/// hold (another critical deviation) extends the period; its reason is kept.
pub fn periods(events: &[(DateTime<Utc>, Event)]) -> Vec<HoldPeriod> {
    let mut out: Vec<HoldPeriod> = Vec::new();
    for (at, event) in events {
        match event {
            Event::ProductionHeld(p)
                if out.last().is_none_or(|last| last.released_at.is_some()) =>
            {
                out.push(HoldPeriod {
                    held_at: *at,
                    released_at: None,
                    reason: p.reason.clone(),
                    release_reason: None,
                });
            }
            Event::ProductionReleased(p) => {
                if let Some(last) = out.last_mut().filter(|l| l.released_at.is_none()) {
                    last.released_at = Some(*at);
                    last.release_reason = Some(p.reason.clone());
                }
            }
            _ => {}
        }
    }
    out
}

/// The program's hold periods, oldest first.
pub async fn of_program<C: ConnectionTrait>(
    conn: &C,
    program_id: i64,
) -> Result<Vec<HoldPeriod>, DbErr> {
    let rows = domain_event::Entity::find()
        .filter(domain_event::Column::ProgramId.eq(program_id))
        .filter(domain_event::Column::EventType.is_in(["production.held", "production.released"]))
        // In the order written: both change the program row, so they commit in that
        // order too, and an event still waiting for its cursor is in its place.
        .order_by_asc(domain_event::Column::Id)
        .all(conn)
        .await?;
    let events: Vec<(DateTime<Utc>, Event)> = rows
        .iter()
        .filter_map(|r| {
            Event::from_stored(&r.event_type, &r.payload)
                .ok()
                .map(|e| (r.occurred_at, e))
        })
        .collect();
    Ok(periods(&events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain_event::ProductionChanged;
    use crate::program::ProductionStatus;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
    }

    fn change(status: ProductionStatus, reason: &str) -> ProductionChanged {
        ProductionChanged {
            program_id: 1,
            production_status: status,
            reason: reason.into(),
        }
    }

    #[test]
    fn holds_and_releases_fold_into_periods() {
        let events = vec![
            (
                at(1),
                Event::ProductionHeld(change(ProductionStatus::OnHold, "deviation #4")),
            ),
            (
                at(2),
                Event::ProductionHeld(change(ProductionStatus::OnHold, "deviation #5")),
            ),
            (
                at(5),
                Event::ProductionReleased(change(ProductionStatus::Running, "contained")),
            ),
            (
                at(7),
                Event::ProductionHeld(change(ProductionStatus::OnHold, "deviation #6")),
            ),
        ];
        let p = periods(&events);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].held_at, p[0].released_at), (at(1), Some(at(5))));
        assert_eq!(p[0].reason, "deviation #4");
        assert_eq!(p[0].length(at(9)), TimeDelta::hours(4));
        assert_eq!(p[1].released_at, None);
        assert_eq!(p[1].length(at(9)), TimeDelta::hours(2));
        assert!(p[0].overlaps(at(4), at(6)));
        assert!(!p[0].overlaps(at(5), at(6)));
        assert!(p[1].overlaps(at(8), at(23)));
    }
}
