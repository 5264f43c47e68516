//! The signed go/no-go on a milestone in gate review (SPEC §3). A step of the milestone's
//! machine: a `go` keeps the milestone in review (completing it is then possible), a
//! `no_go` sends it back to work. The signature binds the decision row (written here,
//! with the checklist it was decided on); the program row is locked first, so a new
//! critical deviation and the go are ordered. A no-go turns every failed item into an
//! action item ([`gate::no_go_actions`]).

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;

use super::{Emitted, FollowUp, Refusal, Signing, Workflow, emit};
use crate::audit_trail::{self, Actor, Entry};
use crate::deviation;
use crate::domain_event::{Event, GateDecided};
use crate::enums::{Role, SignatureMeaning, SignedRecordType};
use crate::gate::{self, Decision, GateDecisionView, GateError, ItemState};
use crate::milestone::{self, MilestoneStatus};
use crate::program;
use crate::signature;

/// A gate decision, with its notes.
#[derive(Debug, Clone)]
pub struct Decide {
    pub decision: Decision,
    pub notes: Option<String>,
}

/// What a decision is taken on.
#[derive(Debug, Clone)]
pub struct Checklist {
    pub items: Vec<gate::item::Model>,
    /// This review round already has its decision.
    pub already_decided: bool,
    /// The program's open critical deviations, by number and title.
    pub open_critical_deviations: Vec<String>,
}

/// Why a gate decision is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateRefusal {
    #[error("this review round is already decided")]
    AlreadyDecided,
    #[error(transparent)]
    Rule(#[from] GateError),
}

impl Refusal for GateRefusal {
    fn conflict_code(&self) -> &'static str {
        match self {
            Self::AlreadyDecided => "already_decided",
            Self::Rule(GateError::NotInReview) => "not_in_gate_review",
            Self::Rule(GateError::UndecidedItems(_)) => "gate_items_undecided",
            Self::Rule(GateError::FailedMandatory(_)) => "gate_items_failed",
            Self::Rule(GateError::OpenCriticalDeviations(_)) => "open_critical_deviations",
        }
    }
}

/// The milestone's checklist in order.
pub async fn checklist<C: ConnectionTrait>(
    conn: &C,
    milestone_id: i64,
) -> Result<Vec<gate::item::Model>, DbErr> {
    gate::item::Entity::find()
        .filter(gate::item::Column::MilestoneId.eq(milestone_id))
        .order_by_asc(gate::item::Column::Position)
        .all(conn)
        .await
}

/// The decision of the milestone's current review round, if taken.
pub async fn round_decision<C: ConnectionTrait>(
    conn: &C,
    m: &milestone::Model,
) -> Result<Option<gate::decision::Model>, DbErr> {
    gate::decision::Entity::find()
        .filter(gate::decision::Column::MilestoneId.eq(m.id))
        .filter(gate::decision::Column::GateRound.eq(m.gate_round))
        .one(conn)
        .await
}

impl Workflow for Decide {
    type Entity = milestone::Entity;
    type Model = milestone::Model;
    type Status = MilestoneStatus;
    type Event = Decision;
    type Guards = Checklist;
    type Refusal = GateRefusal;

    const RECORD: &'static str = "milestone";

    fn id(m: &milestone::Model) -> i64 {
        m.id
    }
    fn status(m: &milestone::Model) -> MilestoneStatus {
        m.status
    }
    fn event(&self) -> Decision {
        self.decision
    }
    fn allowed_events(m: &milestone::Model) -> Vec<Decision> {
        if m.status == MilestoneStatus::GateReview {
            vec![Decision::Go, Decision::NoGo]
        } else {
            Vec::new()
        }
    }
    fn probe(decision: Decision, _: &milestone::Model, _: Role) -> Self {
        Decide {
            decision,
            notes: None,
        }
    }
    fn reason(&self) -> Option<String> {
        self.notes.clone()
    }

    async fn guards<C: ConnectionTrait>(
        &self,
        conn: &C,
        m: &milestone::Model,
    ) -> Result<Checklist, DbErr> {
        // A critical deviation raised concurrently waits for this decision (it locks the
        // program row too), so a go never passes one unseen.
        program::Entity::find_by_id(m.program_id)
            .lock_exclusive()
            .one(conn)
            .await?;
        Ok(Checklist {
            items: checklist(conn, m.id).await?,
            already_decided: round_decision(conn, m).await?.is_some(),
            open_critical_deviations: deviation::open_critical_titles(conn, m.program_id).await?,
        })
    }

    fn decide(&self, m: &milestone::Model, c: &Checklist) -> Result<MilestoneStatus, GateRefusal> {
        let in_review = m.status == MilestoneStatus::GateReview;
        if in_review && c.already_decided {
            return Err(GateRefusal::AlreadyDecided);
        }
        let states: Vec<ItemState<'_>> = c
            .items
            .iter()
            .map(|i| ItemState {
                title: &i.title,
                mandatory: i.mandatory,
                result: i.result,
            })
            .collect();
        gate::check_decision(
            self.decision,
            in_review,
            &states,
            &c.open_critical_deviations,
        )?;
        Ok(match self.decision {
            Decision::Go => MilestoneStatus::GateReview,
            Decision::NoGo => MilestoneStatus::InProgress,
        })
    }

    fn apply(
        &self,
        m: &mut milestone::Model,
        next: MilestoneStatus,
        _: &Checklist,
        _: DateTime<Utc>,
    ) {
        m.status = next;
    }

    fn signing(&self) -> Option<Signing> {
        Some(Signing {
            record_type: SignedRecordType::GateDecision,
            meaning: match self.decision {
                Decision::Go => SignatureMeaning::Approved,
                Decision::NoGo => SignatureMeaning::Rejected,
            },
            covers: gate::SIGNED_FIELDS,
        })
    }
    /// Until the decision row exists (a failed password attempt names this).
    fn signed_record_id(m: &milestone::Model) -> String {
        format!("milestone-{}", m.id)
    }

    async fn signed_record(
        &self,
        txn: &DatabaseTransaction,
        actor: &Actor,
        after: &milestone::Model,
        checklist: &Checklist,
    ) -> Result<Option<(String, Value)>, DbErr> {
        let decided_by = actor
            .user_id
            .ok_or_else(|| DbErr::Custom("a gate decision is taken by a person".into()))?;
        let decision = gate::decision::ActiveModel {
            id: NotSet,
            milestone_id: Set(after.id),
            gate_round: Set(after.gate_round),
            decision: Set(self.decision),
            notes: Set(self.notes.clone()),
            signature_id: Set(0),
            decided_by_user_id: Set(decided_by),
            decided_at: Set(actor.at),
        }
        .insert(txn)
        .await?;
        Ok(Some((
            decision.id.to_string(),
            gate::signed_content(&decision, Some(&checklist.items)),
        )))
    }

    async fn sign(
        &self,
        txn: &DatabaseTransaction,
        m: &mut milestone::Model,
        signature: &signature::Model,
    ) -> Result<(), DbErr> {
        gate::decision::Entity::update_many()
            .col_expr(
                gate::decision::Column::SignatureId,
                Expr::value(signature.id),
            )
            .filter(gate::decision::Column::MilestoneId.eq(m.id))
            .filter(gate::decision::Column::GateRound.eq(m.gate_round))
            .exec(txn)
            .await?;
        Ok(())
    }

    /// The decision row's audit entry and `gate.decided` (both name the decision); a
    /// no-go's action items.
    async fn follow_ups(
        &self,
        txn: &DatabaseTransaction,
        actor: &Actor,
        _before: &milestone::Model,
        after: &milestone::Model,
    ) -> Result<Vec<FollowUp>, DbErr> {
        let decision = round_decision(txn, after)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("the gate decision just written".into()))?;
        audit_trail::append(
            txn,
            actor,
            Entry::new("gate_decision", decision.id, "decide")
                .after(serde_json::to_value(GateDecisionView::from(&decision)).unwrap_or_default())
                .reason(self.notes.clone()),
        )
        .await?;
        emit(
            txn,
            Emitted::Program {
                program_id: after.program_id,
                event: Event::GateDecided(GateDecided {
                    milestone_id: after.id,
                    name: after.name.clone(),
                    decision: self.decision,
                    decision_id: decision.id,
                    notes: self.notes.clone(),
                }),
            },
            actor.at,
        )
        .await?;
        if self.decision == Decision::Go {
            return Ok(Vec::new());
        }
        let prog = program::Entity::find_by_id(after.program_id)
            .one(txn)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("program {}", after.program_id)))?;
        let items = checklist(txn, after.id).await?;
        Ok(vec![FollowUp::CreateActionItems(gate::no_go_actions(
            after.program_id,
            after.owner_user_id.unwrap_or(decision.decided_by_user_id),
            prog.today(actor.at),
            &items,
        ))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{CheckResult, CheckType};
    use crate::workflow::milestone::tests::milestone_in;
    use chrono::NaiveDate;

    fn item(id: i64, title: &str, mandatory: bool, result: CheckResult) -> gate::item::Model {
        let at = DateTime::from_timestamp(1_795_100_000, 0).unwrap_or_default();
        gate::item::Model {
            id,
            milestone_id: 12,
            check_type: CheckType::Other,
            title: title.into(),
            mandatory,
            result,
            evidence: Some(format!("evidence {id}")),
            decided_by_user_id: None,
            decided_at: None,
            position: id as i32,
            created_at: at,
            updated_at: at,
            version: 1,
        }
    }

    fn on(items: Vec<gate::item::Model>, already_decided: bool, open: u64) -> Checklist {
        Checklist {
            items,
            already_decided,
            open_critical_deviations: (0..open).map(|n| format!("#{n} critical")).collect(),
        }
    }

    fn decide(d: Decision) -> Decide {
        Decide {
            decision: d,
            notes: None,
        }
    }

    #[test]
    fn a_go_keeps_the_review_open_for_completion_and_a_no_go_sends_it_back() {
        let m = milestone_in(MilestoneStatus::GateReview);
        let passed = on(vec![item(1, "MBR", true, CheckResult::Pass)], false, 0);
        assert_eq!(
            decide(Decision::Go).decide(&m, &passed),
            Ok(MilestoneStatus::GateReview)
        );
        let failed = on(vec![item(1, "MBR", true, CheckResult::Fail)], false, 0);
        assert_eq!(
            decide(Decision::NoGo).decide(&m, &failed),
            Ok(MilestoneStatus::InProgress)
        );
    }

    #[test]
    fn each_refusal_has_its_problem_code() {
        let code = |m: &milestone::Model, d, c: &Checklist| {
            decide(d).decide(m, c).map_err(|r| r.conflict_code())
        };
        let review = milestone_in(MilestoneStatus::GateReview);
        let passed = on(vec![item(1, "MBR", true, CheckResult::Pass)], false, 0);
        assert_eq!(
            code(
                &milestone_in(MilestoneStatus::InProgress),
                Decision::Go,
                &passed
            ),
            Err("not_in_gate_review")
        );
        assert_eq!(
            code(&review, Decision::Go, &on(passed.items.clone(), true, 0)),
            Err("already_decided")
        );
        assert_eq!(
            code(
                &review,
                Decision::NoGo,
                &on(vec![item(1, "MBR", true, CheckResult::Pending)], false, 0)
            ),
            Err("gate_items_undecided")
        );
        assert_eq!(
            code(
                &review,
                Decision::Go,
                &on(vec![item(1, "MBR", true, CheckResult::Fail)], false, 0)
            ),
            Err("gate_items_failed")
        );
        assert_eq!(
            code(&review, Decision::Go, &on(passed.items.clone(), false, 1)),
            Err("open_critical_deviations")
        );
        // A critical deviation does not stop a no-go.
        assert_eq!(
            code(&review, Decision::NoGo, &on(passed.items, false, 1)),
            Ok(MilestoneStatus::InProgress)
        );
    }

    #[test]
    fn a_no_go_turns_each_failed_item_into_an_action_due_in_a_week() {
        let today = NaiveDate::from_ymd_opt(2027, 4, 12).unwrap_or_default();
        let long = "x".repeat(250);
        let items = vec![
            item(1, "MBR", true, CheckResult::Pass),
            item(2, &long, false, CheckResult::Fail),
            item(3, "SOPs", true, CheckResult::Fail),
        ];
        let actions = gate::no_go_actions(3, 5, today, &items);
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[0].title.chars().count(), 200);
        assert_eq!(actions[1].title, "Resolve gate item: SOPs");
        assert_eq!(actions[1].source_id, Some(3));
        assert_eq!(actions[1].description.as_deref(), Some("evidence 3"));
        assert_eq!((actions[1].owner_user_id, actions[1].program_id), (5, 3));
        assert_eq!(actions[1].due_date, today + chrono::TimeDelta::days(7));
    }

    #[test]
    fn go_and_no_go_sign_with_their_meanings_and_only_in_review_offer_both() {
        let meaning = |d| decide(d).signing().map(|s| s.meaning);
        assert_eq!(meaning(Decision::Go), Some(SignatureMeaning::Approved));
        assert_eq!(meaning(Decision::NoGo), Some(SignatureMeaning::Rejected));
        assert_eq!(
            Decide::allowed_events(&milestone_in(MilestoneStatus::GateReview)),
            vec![Decision::Go, Decision::NoGo]
        );
        assert!(Decide::allowed_events(&milestone_in(MilestoneStatus::OnHold)).is_empty());
    }
}
