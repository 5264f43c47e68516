//! Releasing a program's production hold (SPEC §4): a quality decision, e-signed, refused
//! while the hold has no reason to end (not on hold) or a critical deviation is not yet
//! under investigation. The hold itself is the floor rule of a deviation (see
//! [`super::deviation::hold_production`]).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;

use super::{Emitted, Refusal, RefusalKind, Signing, Workflow};
use crate::deviation;
use crate::domain_event::{Event, ProductionChanged};
use crate::enums::{Role, SignatureMeaning, SignedRecordType};
use crate::program::{self, ProductionStatus};

/// The one event of a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductionEvent {
    Release,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseRefusal {
    #[error("production is not on hold")]
    NotOnHold,
    #[error("{0} critical deviation(s) are not yet under investigation")]
    CriticalNotInvestigated(u64),
}

impl Refusal for ReleaseRefusal {
    fn kind(&self) -> RefusalKind {
        RefusalKind::Illegal
    }
    fn conflict_code(&self) -> &'static str {
        match self {
            Self::NotOnHold => "not_on_hold",
            Self::CriticalNotInvestigated(_) => "critical_deviation_not_investigated",
        }
    }
}

/// What a release signs: which product's production runs again.
pub const RELEASE_SIGNED_FIELDS: &[&str] = &["id", "product_name", "production_status"];

/// The pure rule.
pub fn release(
    status: ProductionStatus,
    uninvestigated_critical: u64,
) -> Result<ProductionStatus, ReleaseRefusal> {
    if status != ProductionStatus::OnHold {
        return Err(ReleaseRefusal::NotOnHold);
    }
    if uninvestigated_critical > 0 {
        return Err(ReleaseRefusal::CriticalNotInvestigated(
            uninvestigated_critical,
        ));
    }
    Ok(ProductionStatus::Running)
}

/// Release, with the reason quality signs.
#[derive(Debug, Clone)]
pub struct Release {
    pub reason: String,
}

impl Workflow for Release {
    type Entity = program::Entity;
    type Model = program::Model;
    type Status = ProductionStatus;
    type Event = ProductionEvent;
    /// Critical deviations not yet under investigation.
    type Guards = u64;
    type Refusal = ReleaseRefusal;

    const RECORD: &'static str = "program";

    fn id(m: &program::Model) -> i64 {
        m.id
    }
    fn status(m: &program::Model) -> ProductionStatus {
        m.production_status
    }
    fn event(&self) -> ProductionEvent {
        ProductionEvent::Release
    }
    fn allowed_events(m: &program::Model) -> Vec<ProductionEvent> {
        match m.production_status {
            ProductionStatus::OnHold => vec![ProductionEvent::Release],
            ProductionStatus::Running => Vec::new(),
        }
    }
    fn probe(_: ProductionEvent, _: &program::Model, _: Role) -> Self {
        Release {
            reason: String::new(),
        }
    }
    fn reason(&self) -> Option<String> {
        Some(self.reason.clone())
    }
    fn audit_action(&self) -> Cow<'static, str> {
        Cow::Borrowed("release_production")
    }

    async fn guards<C: ConnectionTrait>(&self, conn: &C, m: &program::Model) -> Result<u64, DbErr> {
        deviation::uninvestigated_critical_count(conn, m.id).await
    }

    fn decide(
        &self,
        m: &program::Model,
        waiting: &u64,
    ) -> Result<ProductionStatus, ReleaseRefusal> {
        release(m.production_status, *waiting)
    }

    fn apply(
        &self,
        m: &mut program::Model,
        next: ProductionStatus,
        _: &Self::Guards,
        _now: DateTime<Utc>,
    ) {
        m.production_status = next;
    }

    fn signing(&self) -> Option<Signing> {
        Some(Signing {
            record_type: SignedRecordType::ProductionRelease,
            meaning: SignatureMeaning::Approved,
            covers: RELEASE_SIGNED_FIELDS,
        })
    }

    fn domain_event(&self, _before: &program::Model, after: &program::Model) -> Option<Emitted> {
        Some(Emitted::Program {
            program_id: after.id,
            event: Event::ProductionReleased(ProductionChanged {
                program_id: after.id,
                production_status: after.production_status,
                reason: self.reason.clone(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_ends_only_when_every_critical_deviation_is_under_investigation() {
        assert_eq!(
            release(ProductionStatus::OnHold, 0),
            Ok(ProductionStatus::Running)
        );
        assert_eq!(
            release(ProductionStatus::OnHold, 2),
            Err(ReleaseRefusal::CriticalNotInvestigated(2))
        );
        assert_eq!(
            release(ProductionStatus::Running, 0),
            Err(ReleaseRefusal::NotOnHold)
        );
    }
}
