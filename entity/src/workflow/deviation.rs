//! What each deviation event does (SPEC §4): triage stamps and may change criticality
//! (with a reason), closure is e-signed by quality, cancellation keeps its reason; acting
//! on a deviation ends its escalation; raised to major or critical at triage, it holds
//! production (the floor rule).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QuerySelect,
};

use super::{Emitted, FollowUp, Signing, TransitionError, Workflow, escalation as escalation_flow};
use crate::audit_trail::{self, Actor, Entry};
use crate::capa::{self, CapaStatus, EffectivenessOutcome};
use crate::deviation::{
    self, Criticality, DeviationEvent, DeviationStatus, DeviationTransitionError, Guards,
};
use crate::domain_event::{DeviationChanged, Event, ProductionChanged};
use crate::enums::{Role, SignatureMeaning, SignedRecordType, wire_name};
use crate::escalation;
use crate::program::{self, ProductionStatus};
use crate::signature;

/// One step of a deviation's workflow.
#[derive(Debug, Clone)]
pub struct Step {
    pub event: DeviationEvent,
    /// Triage only: the confirmed criticality (default: as reported).
    pub criticality: Option<Criticality>,
    pub reason: Option<String>,
    /// Closure caused by this CAPA closing effective (SPEC §4).
    pub by_capa: Option<i64>,
}

impl Step {
    pub fn new(
        event: DeviationEvent,
        criticality: Option<Criticality>,
        reason: Option<String>,
    ) -> Step {
        Step {
            event,
            criticality,
            reason,
            by_capa: None,
        }
    }

    fn criticality_after(&self, d: &deviation::Model) -> Criticality {
        match self.event {
            DeviationEvent::Triage => self.criticality.unwrap_or(d.criticality),
            _ => d.criticality,
        }
    }

    /// The pure rules: the machine plus "a criticality change needs a reason".
    pub fn decide_with(
        &self,
        d: &deviation::Model,
        capa_effective: bool,
    ) -> Result<DeviationStatus, DeviationTransitionError> {
        let criticality = self.criticality_after(d);
        if self.event == DeviationEvent::Triage
            && criticality != d.criticality
            && self.reason.is_none()
        {
            return Err(DeviationTransitionError::CriticalityChangeNeedsReason);
        }
        let guards = Guards {
            criticality,
            has_root_cause: d.has_root_cause(),
            has_short_term_fix: d.short_term_fix.is_some(),
            capa_effective,
            has_reason: self.reason.is_some(),
        };
        deviation::transition(d.status, self.event, &guards)
    }
}

impl Workflow for Step {
    type Entity = deviation::Entity;
    type Model = deviation::Model;
    type Status = DeviationStatus;
    type Event = DeviationEvent;
    /// A linked CAPA is closed effective.
    type Guards = bool;
    type Refusal = DeviationTransitionError;

    const RECORD: &'static str = "deviation";

    fn id(m: &deviation::Model) -> i64 {
        m.id
    }
    fn status(m: &deviation::Model) -> DeviationStatus {
        m.status
    }
    fn event(&self) -> DeviationEvent {
        self.event
    }
    fn allowed_events(m: &deviation::Model) -> Vec<DeviationEvent> {
        deviation::allowed_events(m.status, m.criticality)
    }
    fn probe(event: DeviationEvent, _: &deviation::Model, _: Role) -> Self {
        Step::new(event, None, Some(String::new()))
    }
    fn reason(&self) -> Option<String> {
        self.reason.clone()
    }

    async fn guards<C: ConnectionTrait>(
        &self,
        conn: &C,
        m: &deviation::Model,
    ) -> Result<bool, DbErr> {
        // Ordered against production release and other changes of the program's hold.
        program::Entity::find_by_id(m.program_id)
            .lock_exclusive()
            .one(conn)
            .await?;
        has_effective_capa(conn, m.id).await
    }

    fn decide(
        &self,
        m: &deviation::Model,
        capa_effective: &bool,
    ) -> Result<DeviationStatus, DeviationTransitionError> {
        self.decide_with(m, *capa_effective)
    }

    fn apply(
        &self,
        d: &mut deviation::Model,
        next: DeviationStatus,
        _: &Self::Guards,
        now: DateTime<Utc>,
    ) {
        d.criticality = self.criticality_after(d);
        d.status = next;
        match self.event {
            DeviationEvent::Triage => d.triaged_at = Some(now),
            DeviationEvent::Close => d.closed_at = Some(now),
            DeviationEvent::Cancel => {
                d.cancel_reason = self.reason.clone();
                d.closed_at = Some(now);
            }
            DeviationEvent::StartInvestigation | DeviationEvent::AwaitCapa => {}
        }
    }

    fn signing(&self) -> Option<Signing> {
        deviation::needs_signature(self.event).then_some(Signing {
            record_type: SignedRecordType::DeviationClosure,
            meaning: SignatureMeaning::Approved,
            covers: deviation::CLOSURE_SIGNED_FIELDS,
        })
    }
    async fn sign(
        &self,
        _txn: &DatabaseTransaction,
        d: &mut deviation::Model,
        signature: &signature::Model,
    ) -> Result<(), DbErr> {
        d.closure_signature_id = Some(signature.id);
        Ok(())
    }

    fn domain_event(&self, before: &deviation::Model, after: &deviation::Model) -> Option<Emitted> {
        let change = DeviationChanged {
            deviation_id: after.id,
            event: self.event,
            from: before.status,
            to: after.status,
            criticality: after.criticality,
            capa_id: self.by_capa,
        };
        let event = match self.event {
            DeviationEvent::Triage => Event::DeviationTriaged(change),
            DeviationEvent::Close => Event::DeviationClosed(change),
            _ => Event::DeviationTransitioned(change),
        };
        Some(Emitted::Program {
            program_id: after.program_id,
            event,
        })
    }

    async fn follow_ups(
        &self,
        conn: &sea_orm::DatabaseTransaction,
        actor: &Actor,
        before: &deviation::Model,
        after: &deviation::Model,
    ) -> Result<Vec<FollowUp>, DbErr> {
        let mut follow_ups = Vec::new();
        // Acting on the deviation (triage, closure, cancellation) ends its escalation.
        if matches!(
            self.event,
            DeviationEvent::Triage | DeviationEvent::Close | DeviationEvent::Cancel
        ) {
            follow_ups = resolve_escalations(conn, actor, after).await?;
        }
        // Raised at triage to major or critical: production holds too.
        if self.event == DeviationEvent::Triage
            && after.criticality.holds_production()
            && !before.criticality.holds_production()
        {
            floor_rule(conn, actor, after, false).await?;
        }
        Ok(follow_ups)
    }
}

/// Is any CAPA linked to this deviation closed with an effective check?
pub async fn has_effective_capa<C: ConnectionTrait>(
    conn: &C,
    deviation_id: i64,
) -> Result<bool, DbErr> {
    let capa_ids: Vec<i64> = capa::deviation_link::Entity::find()
        .filter(capa::deviation_link::Column::DeviationId.eq(deviation_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|l| l.capa_id)
        .collect();
    if capa_ids.is_empty() {
        return Ok(false);
    }
    let effective = capa::Entity::find()
        .filter(capa::Column::Id.is_in(capa_ids))
        .filter(capa::Column::Status.eq(CapaStatus::Closed))
        .filter(capa::Column::EffectivenessOutcome.eq(EffectivenessOutcome::Effective))
        .count(conn)
        .await?;
    Ok(effective > 0)
}

/// Ends the escalations of a deviation, each through its own machine (audited, on its
/// timeline); the callers tell the people paged.
pub async fn resolve_escalations(
    txn: &DatabaseTransaction,
    actor: &Actor,
    deviation: &deviation::Model,
) -> Result<Vec<FollowUp>, DbErr> {
    let open = escalation::Entity::find()
        .filter(escalation::Column::SourceType.eq("deviation"))
        .filter(escalation::Column::SourceId.eq(deviation.id))
        .filter(escalation::Column::Status.ne(escalation::EscalationStatus::Resolved))
        .all(txn)
        .await?;
    let mut follow_ups = Vec::new();
    for e in open {
        let step = escalation_flow::Step::ended_by_source(
            actor,
            format!("deviation {}", deviation.reference()),
        );
        match super::transition(
            txn,
            actor,
            Condition::all(),
            e.id,
            &step,
            None,
            None,
            async |m| crate::audit::record_snapshot(&escalation::EscalationView::from(m)),
        )
        .await
        {
            Ok(done) => follow_ups.extend(done.follow_ups),
            // Resolved meanwhile.
            Err(TransitionError::Refused { .. } | TransitionError::NotFound) => {}
            Err(TransitionError::Db(err)) => return Err(err),
            Err(other) => return Err(DbErr::Custom(format!("{other:?}"))),
        }
    }
    Ok(follow_ups)
}

/// Puts a program's production on hold (if it runs) and records why; in the caller's
/// transaction. Returns whether the status changed.
pub async fn hold_production<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    program_id: i64,
    reason: &str,
) -> Result<bool, DbErr> {
    let now = actor.at;
    // One atomic UPDATE: concurrent holds cannot lose each other or a program edit.
    let changed = program::Entity::update_many()
        .col_expr(
            program::Column::ProductionStatus,
            Expr::value(ProductionStatus::OnHold.to_value()),
        )
        .col_expr(
            program::Column::Version,
            sea_orm::sea_query::ExprTrait::add(Expr::col(program::Column::Version), 1),
        )
        .col_expr(program::Column::UpdatedAt, Expr::value(now))
        .filter(program::Column::Id.eq(program_id))
        .filter(program::Column::ProductionStatus.eq(ProductionStatus::Running))
        .exec(conn)
        .await?;
    if changed.rows_affected == 1 {
        audit_trail::append(
            conn,
            actor,
            Entry::new("program", program_id, "hold_production")
                .after(serde_json::json!({"production_status": ProductionStatus::OnHold}))
                .reason(Some(reason.to_string())),
        )
        .await?;
        crate::domain_event::emit(
            conn,
            program_id,
            Event::ProductionHeld(ProductionChanged {
                program_id,
                production_status: ProductionStatus::OnHold,
                reason: reason.to_string(),
            }),
            now,
        )
        .await?;
    }
    Ok(changed.rows_affected == 1)
}

/// The floor rule for a deviation that is (now) critical or major: hold production and,
/// when reported so, open an escalation.
pub async fn floor_rule<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    d: &deviation::Model,
    open_escalation: bool,
) -> Result<(), DbErr> {
    if !d.criticality.holds_production() {
        return Ok(());
    }
    let reason = format!(
        "{} deviation {}: {}",
        format!("{:?}", d.criticality).to_lowercase(),
        d.reference(),
        d.title
    );
    hold_production(conn, actor, d.program_id, &reason).await?;
    if open_escalation {
        let criticality = wire_name(&d.criticality);
        let category = wire_name(&d.category);
        let esc = escalation::open(
            conn,
            escalation::Opening {
                program_id: d.program_id,
                source_type: "deviation",
                source_id: Some(d.id),
                reason: &reason,
                title: &d.title,
                criticality: Some(&criticality),
                category: Some(&category),
                opened_by_user_id: actor.user_id,
            },
            actor.at,
        )
        .await?;
        audit_trail::append(
            conn,
            actor,
            Entry::new("escalation", esc.id, "open").after(serde_json::json!({
                "program_id": esc.program_id, "source_type": esc.source_type, "source_id": esc.source_id, "reason": esc.reason,
            })),
        )
        .await?;
    }
    Ok(())
}

/// How the caller reads each refusal of the machine.
impl super::Refusal for DeviationTransitionError {
    fn kind(&self) -> super::RefusalKind {
        match self {
            Self::ReasonRequired | Self::CriticalityChangeNeedsReason => {
                super::RefusalKind::MissingField("reason")
            }
            _ => super::RefusalKind::Illegal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deviation::Category;

    fn reported(criticality: Criticality) -> deviation::Model {
        let at = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        deviation::Model {
            id: 4,
            record_number: Some("DEV-2026-0004".into()),
            program_id: 1,
            milestone_id: None,
            title: "Bioburden".into(),
            description: "d".into(),
            detected_at: at,
            reported_by_user_id: 1,
            criticality,
            category: Category::Equipment,
            batch_lot: None,
            process_step: None,
            status: DeviationStatus::Reported,
            triaged_at: None,
            root_cause_method: None,
            root_cause_category: None,
            root_cause_narrative: None,
            short_term_fix: None,
            cancel_reason: None,
            closed_at: None,
            closure_signature_id: None,
            created_at: at,
            updated_at: at,
            version: 1,
        }
    }

    #[test]
    fn a_criticality_change_at_triage_needs_a_reason() {
        let d = reported(Criticality::Minor);
        let raise = Step::new(DeviationEvent::Triage, Some(Criticality::Critical), None);
        assert_eq!(
            raise.decide_with(&d, false),
            Err(DeviationTransitionError::CriticalityChangeNeedsReason)
        );
        let confirm = Step::new(DeviationEvent::Triage, Some(Criticality::Minor), None);
        assert_eq!(confirm.decide_with(&d, false), Ok(DeviationStatus::Triaged));
        let raise = Step::new(
            DeviationEvent::Triage,
            Some(Criticality::Critical),
            Some("sterility at risk".into()),
        );
        assert_eq!(raise.decide_with(&d, false), Ok(DeviationStatus::Triaged));
    }

    #[test]
    fn triage_stamps_and_sets_the_confirmed_criticality_and_cancel_keeps_its_reason() {
        let now = DateTime::from_timestamp(1_795_100_000, 0).unwrap_or_default();
        let mut d = reported(Criticality::Minor);
        let step = Step::new(
            DeviationEvent::Triage,
            Some(Criticality::Major),
            Some("batch impact".into()),
        );
        step.apply(&mut d, DeviationStatus::Triaged, &false, now);
        assert_eq!(
            (d.status, d.criticality, d.triaged_at),
            (DeviationStatus::Triaged, Criticality::Major, Some(now))
        );
        let mut d = reported(Criticality::Minor);
        Step::new(DeviationEvent::Cancel, None, Some("duplicate".into())).apply(
            &mut d,
            DeviationStatus::Cancelled,
            &false,
            now,
        );
        assert_eq!(d.cancel_reason.as_deref(), Some("duplicate"));
        assert_eq!(d.closed_at, Some(now));
    }

    #[test]
    fn only_closure_is_signed() {
        for event in deviation::ALL_EVENTS {
            let signed = Step::new(event, None, None).signing();
            assert_eq!(
                signed.is_some(),
                event == DeviationEvent::Close,
                "{event:?}"
            );
        }
    }
}
