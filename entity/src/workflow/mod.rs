//! The one transition engine. Every state-changing step of a record with a state machine
//! (deviation, CAPA, change control, milestone, gate decision, action item, CMO
//! qualification and connection, CMO merge, selection decision) runs
//! [`transition`] inside the caller's transaction: lock and re-read, version
//! precondition, guards, the pure machine, the step's effects, the signature row (its id
//! written by the same compare-and-set), the audit row, the domain event and the
//! follow-ups on other records. HTTP-free: the api adds password checks and problem+json
//! around it; the worker can call it as the system.
//!
//! A [`Workflow`] is implemented by the *step* (the event with its arguments), so what
//! an event does sits next to its machine, in one `impl` per record type.

pub mod action;
pub mod capa;
pub mod change;
pub mod cmo_merge;
pub mod connection;
pub mod deviation;
pub mod escalation;
pub mod gate;
pub mod milestone;
pub mod production;
pub mod qualification;
pub mod selection;
mod signed_steps;

pub use signed_steps::{SIGNED_STEPS, Signing, signed_fields_markdown};

use std::borrow::Cow;
use std::future::Future;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    IntoActiveModel, Iterable, PrimaryKeyToColumn, PrimaryKeyTrait, QueryFilter, QuerySelect,
};
use serde::Serialize;
use serde_json::Value;

use crate::audit_trail::{self, Actor, Entry};
use crate::domain_event::{self, Event};
use crate::enums::{Role, wire_name};
use crate::signature::{self, SignatureRecord, Signer};

/// A row with an optimistic-concurrency `version` and an `updated_at`.
pub trait Versioned {
    fn version(&self) -> i32;
    /// Marks a change written at `now`: the next version.
    fn stamp(&mut self, now: DateTime<Utc>);
}

macro_rules! versioned {
    ($($model:path),*) => {
        $(impl Versioned for $model {
            fn version(&self) -> i32 {
                self.version
            }
            fn stamp(&mut self, now: DateTime<Utc>) {
                self.version += 1;
                self.updated_at = now;
            }
        })*
    };
}
versioned!(
    crate::user::Model,
    crate::program::Model,
    crate::team_member::Model,
    crate::milestone::Model,
    crate::action_item::Model,
    crate::gate::item::Model,
    crate::deviation::Model,
    crate::capa::Model,
    crate::change_request::Model,
    crate::cmo::Model,
    crate::relationship::Model,
    crate::cmo_merge::Model,
    crate::selection::Model,
    crate::webhook::Model
);

/// An invitation has no `updated_at`: `sent_at`, `accepted_at` and `revoked_at` say when.
impl Versioned for crate::invitation::Model {
    fn version(&self) -> i32 {
        self.version
    }
    fn stamp(&mut self, _now: DateTime<Utc>) {
        self.version += 1;
    }
}

/// An escalation has no `updated_at`: its timeline events say when.
impl Versioned for crate::escalation::Model {
    fn version(&self) -> i32 {
        self.version
    }
    fn stamp(&mut self, _now: DateTime<Utc>) {
        self.version += 1;
    }
}

/// How the caller should read a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Not possible from this state (409 with the allowed events).
    Illegal,
    /// Possible, but the request lacks this field (422 `required`).
    MissingField(&'static str),
    /// A field of the request has a value the step cannot take (422 with `code`).
    Invalid {
        field: &'static str,
        code: &'static str,
    },
    /// Possible, but not for this caller (403).
    Forbidden,
}

/// A state machine's refusal of a step.
pub trait Refusal: std::fmt::Display {
    fn kind(&self) -> RefusalKind {
        RefusalKind::Illegal
    }
    /// The problem code of an illegal step.
    fn conflict_code(&self) -> &'static str {
        "illegal_transition"
    }
}

/// Consequences of a step that the caller completes after the engine ran: emails need the
/// `mail` crate, which stands on this one.
#[derive(Debug, Clone)]
pub enum FollowUp {
    /// Tell everyone paged so far what happened to the escalation.
    TellPaged {
        escalation: Box<crate::escalation::Model>,
        told: escalation::Told,
    },
    /// A deviation that waited for this CAPA closes with it (SPEC §4): the caller runs
    /// [`deviation::Step`] `close` on it, signed by the same signer, in the same
    /// transaction (its signature binds the deviation as people see it).
    CloseWaitingDeviation { deviation_id: i64, capa_id: i64 },
    /// Work the step spawns (a no-go's failed checklist items): the caller creates each
    /// action item with its audit row.
    CreateActionItems(Vec<crate::action_item::NewAction>),
}

/// A record type's state machine, implemented by its step (event plus arguments).
pub trait Workflow: Sized + Sync {
    type Entity: EntityTrait<Model = Self::Model>;
    type Model: Versioned
        + Clone
        + Send
        + Sync
        + IntoActiveModel<<Self::Entity as EntityTrait>::ActiveModel>;
    type Status: Copy + Eq + Serialize;
    type Event: Copy + Eq + Serialize;
    type Guards: Send;
    type Refusal: Refusal;

    /// The record's name in the audit trail (`deviation`, `capa`, `cmo_profile`, …).
    const RECORD: &'static str;

    fn id(m: &Self::Model) -> i64;
    /// The id the audit trail and signatures name the record by (default: its id). A
    /// sponsor's qualification of a CMO is kept on their relationship but named by the
    /// CMO's id, as before there were relationships, so its history reads as one.
    fn audit_id(m: &Self::Model) -> i64 {
        Self::id(m)
    }
    fn status(m: &Self::Model) -> Self::Status;
    fn event(&self) -> Self::Event;
    /// Events the machine offers from this record's state, guards aside.
    fn allowed_events(m: &Self::Model) -> Vec<Self::Event>;
    /// The step a client would send for `event` on `m`, every optional argument given,
    /// so [`offered`] can ask the guards whether it is possible now (`role`: the
    /// caller's, for rules that depend on who decides).
    fn probe(event: Self::Event, m: &Self::Model, role: Role) -> Self;
    /// The step's reason (kept in the audit trail and on the signature).
    fn reason(&self) -> Option<String>;
    /// The audit action (default: the event's wire name).
    fn audit_action(&self) -> Cow<'static, str> {
        Cow::Owned(wire_name(&self.event()))
    }

    /// Facts the guards need beyond the record (counts of linked rows, …). May lock
    /// related rows: it runs after the record is locked.
    fn guards<C: ConnectionTrait>(
        &self,
        conn: &C,
        m: &Self::Model,
    ) -> impl Future<Output = Result<Self::Guards, DbErr>> + Send;
    /// The pure machine: the next status, or why not.
    fn decide(&self, m: &Self::Model, g: &Self::Guards) -> Result<Self::Status, Self::Refusal>;
    /// What the event does to the record (status included; version and `updated_at` are
    /// the engine's).
    fn apply(
        &self,
        m: &mut Self::Model,
        next: Self::Status,
        guards: &Self::Guards,
        now: DateTime<Utc>,
    );

    /// Whether (and how) the step is e-signed.
    fn signing(&self) -> Option<Signing> {
        None
    }
    /// When the signature binds a record of its own rather than the machine's row (a gate
    /// decision signs its decision row): writes that record, before the signature, and
    /// returns its canonical id and its content as people see it. Default: the machine's
    /// row, as the caller's snapshot shows it.
    fn signed_record(
        &self,
        _txn: &DatabaseTransaction,
        _actor: &Actor,
        _after: &Self::Model,
        _guards: &Self::Guards,
    ) -> impl Future<Output = Result<Option<(String, Value)>, DbErr>> + Send {
        async { Ok(None) }
    }
    /// Writes the signature's id where the step keeps it (a column of the record, by
    /// default nowhere).
    fn sign(
        &self,
        _txn: &DatabaseTransaction,
        _m: &mut Self::Model,
        _signature: &signature::Model,
    ) -> impl Future<Output = Result<(), DbErr>> + Send {
        async { Ok(()) }
    }
    /// The canonical record id a signature names (default: the audit id).
    fn signed_record_id(m: &Self::Model) -> String {
        Self::audit_id(m).to_string()
    }

    /// The domain event the step emits, if any.
    fn domain_event(&self, _before: &Self::Model, _after: &Self::Model) -> Option<Emitted> {
        None
    }
    /// Changes to other records that the step causes, in the same transaction.
    fn follow_ups(
        &self,
        _conn: &DatabaseTransaction,
        _actor: &Actor,
        _before: &Self::Model,
        _after: &Self::Model,
    ) -> impl Future<Output = Result<Vec<FollowUp>, DbErr>> + Send {
        async { Ok(Vec::new()) }
    }
}

/// A domain event and who may read it.
#[derive(Debug, Clone)]
pub enum Emitted {
    /// About a program's record: its sponsor and CMO read it.
    Program { program_id: i64, event: Event },
    /// Not about a program: only these organizations read it.
    Organizations {
        program_id: Option<i64>,
        sponsor_org_id: i64,
        cmo_org_id: Option<i64>,
        event: Event,
    },
}

/// The step as written.
#[derive(Debug, Clone)]
pub struct Transitioned<M> {
    pub before: M,
    pub after: M,
    pub signature: Option<signature::Model>,
    pub follow_ups: Vec<FollowUp>,
}

/// Why a step was not written. Nothing was changed.
#[derive(Debug)]
pub enum TransitionError<R> {
    /// No such record in the caller's scope.
    NotFound,
    /// The caller saw another version.
    Stale {
        current: i32,
    },
    /// The machine refused.
    Refused {
        refusal: R,
        current_state: String,
        allowed_events: Vec<String>,
        version: i32,
    },
    /// A signed step without a signer.
    SignerRequired,
    /// The caller's view of the record (its snapshot) failed; its own error, handed back.
    View(Box<dyn std::error::Error + Send + Sync>),
    Db(DbErr),
}

impl<R> From<DbErr> for TransitionError<R> {
    fn from(e: DbErr) -> Self {
        TransitionError::Db(e)
    }
}

fn refused<W: Workflow>(m: &W::Model, refusal: W::Refusal) -> TransitionError<W::Refusal> {
    TransitionError::Refused {
        refusal,
        current_state: wire_name(&W::status(m)),
        allowed_events: W::allowed_events(m).iter().map(wire_name).collect(),
        version: m.version(),
    }
}

/// An event the record's state offers, why it cannot be taken now (a guard's refusal,
/// e.g. "dependencies not completed: Tech transfer"), and how it would be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered<E> {
    pub event: E,
    pub blocked: Option<String>,
    pub signing: Option<Signing>,
}

/// An event the record's state offers that a caller cannot take now, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"event": "complete", "reason": "the gate has no go decision"}))]
pub struct BlockedEvent {
    pub event: String,
    /// Why not now, as people read it (a guard, or who may take the step).
    pub reason: String,
}

/// Each event the record's state offers, with the guards' verdict now. Read-only (the
/// guards may take row locks, released with the caller's transaction).
pub async fn offered<W: Workflow>(
    conn: &impl ConnectionTrait,
    m: &W::Model,
    role: Role,
) -> Result<Vec<Offered<W::Event>>, DbErr> {
    let mut out = Vec::new();
    for event in W::allowed_events(m) {
        let step = W::probe(event, m, role);
        let guards = step.guards(conn, m).await?;
        out.push(Offered {
            event,
            blocked: blocked_by(step.decide(m, &guards)),
            signing: step.signing(),
        });
    }
    Ok(out)
}

/// Whether a verdict blocks the event now. A missing or invalid argument does not: the
/// client supplies it with the step.
pub fn blocked_by<S, R: Refusal>(verdict: Result<S, R>) -> Option<String> {
    match verdict {
        Ok(_) => None,
        Err(refusal) => match refusal.kind() {
            RefusalKind::MissingField(_) | RefusalKind::Invalid { .. } => None,
            RefusalKind::Illegal | RefusalKind::Forbidden => Some(refusal.to_string()),
        },
    }
}

/// Runs the guards and the machine on a record read outside the write transaction: a
/// cheap refusal before a password is checked. [`transition`] checks again under lock.
pub async fn precheck<W: Workflow>(
    conn: &impl ConnectionTrait,
    m: &W::Model,
    step: &W,
) -> Result<W::Status, TransitionError<W::Refusal>> {
    let guards = step.guards(conn, m).await?;
    step.decide(m, &guards).map_err(|r| refused::<W>(m, r))
}

/// Runs `step` on record `id` within `scope`, in `txn`. `snapshot` is the record as
/// people see it: hashed by the signature and kept before/after in the audit trail.
#[allow(clippy::too_many_arguments)]
pub async fn transition<W, S, SE>(
    txn: &DatabaseTransaction,
    actor: &Actor,
    scope: Condition,
    id: i64,
    step: &W,
    expected_version: Option<i32>,
    signer: Option<&Signer>,
    snapshot: S,
) -> Result<Transitioned<W::Model>, TransitionError<W::Refusal>>
where
    W: Workflow,
    S: AsyncFn(&W::Model) -> Result<Value, SE>,
    SE: std::error::Error + Send + Sync + 'static,
    <<W::Entity as EntityTrait>::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
{
    let now = actor.at;
    let snapshot = async |m: &W::Model| {
        snapshot(m)
            .await
            .map_err(|e| TransitionError::<W::Refusal>::View(Box::new(e)))
    };
    // Locked: the guards count rows that a concurrent step on this record could change.
    let before = W::Entity::find_by_id(id)
        .filter(scope)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(TransitionError::NotFound)?;
    if expected_version.is_some_and(|v| v != before.version()) {
        return Err(TransitionError::Stale {
            current: before.version(),
        });
    }
    let guards = step.guards(txn, &before).await?;
    let next = step
        .decide(&before, &guards)
        .map_err(|r| refused::<W>(&before, r))?;
    let mut after = before.clone();
    step.apply(&mut after, next, &guards, now);
    after.stamp(now);

    let mut signed = None;
    if let Some(signing) = step.signing() {
        let signer = signer.ok_or(TransitionError::SignerRequired)?;
        // What is signed: the record's signed fields as written (its signature column
        // is not one of them), kept with the signature and bound by their hash.
        let (record_id, record) = match step.signed_record(txn, actor, &after, &guards).await? {
            Some(own) => own,
            None => (W::signed_record_id(&after), snapshot(&after).await?),
        };
        debug_assert!(
            signing.covers.iter().all(|f| record.get(*f).is_some()),
            "{:?} signs fields the record does not have: {:?} of {record}",
            signing.record_type,
            signing.covers
        );
        let sig = signature::record(
            txn,
            signer,
            now,
            SignatureRecord::covering(
                signing.record_type,
                record_id,
                signature::signed_fields(&record, signing.covers),
                signing.meaning,
                step.reason(),
            ),
        )
        .await?;
        step.sign(txn, &mut after, &sig).await?;
        signed = Some(sig);
    }

    compare_and_set::<W::Entity>(txn, after.clone(), W::id(&before), before.version())
        .await?
        .ok_or_else(|| TransitionError::Stale {
            current: before.version(),
        })?;
    audit_trail::append(
        txn,
        actor,
        Entry::new(W::RECORD, W::audit_id(&after), step.audit_action())
            .before(snapshot(&before).await?)
            .after(snapshot(&after).await?)
            .reason(step.reason()),
    )
    .await?;
    if let Some(emitted) = step.domain_event(&before, &after) {
        emit(txn, emitted, now).await?;
    }
    let follow_ups = step.follow_ups(txn, actor, &before, &after).await?;
    Ok(Transitioned {
        before,
        after,
        signature: signed,
        follow_ups,
    })
}

/// Appends an emitted domain event (its webhook deliveries are queued with its cursor).
pub async fn emit<C: ConnectionTrait>(
    conn: &C,
    emitted: Emitted,
    at: DateTime<Utc>,
) -> Result<i64, DbErr> {
    match emitted {
        Emitted::Program { program_id, event } => {
            domain_event::emit(conn, program_id, event, at).await
        }
        Emitted::Organizations {
            program_id,
            sponsor_org_id,
            cmo_org_id,
            event,
        } => {
            domain_event::emit_to(
                conn,
                domain_event::Audience {
                    program_id,
                    sponsor_org_id,
                    cmo_org_id,
                },
                event,
                at,
            )
            .await
        }
    }
}

/// Writes `current` changed by `change` as its next version (stamped at `now`) if the
/// stored row still has `current`'s version; `None` when another writer came first.
pub async fn write_next<E>(
    conn: &impl ConnectionTrait,
    id: i64,
    current: &E::Model,
    now: DateTime<Utc>,
    change: impl FnOnce(&mut E::Model),
) -> Result<Option<E::Model>, DbErr>
where
    E: EntityTrait,
    E::Model: Versioned + Clone + IntoActiveModel<E::ActiveModel>,
{
    let mut next = current.clone();
    change(&mut next);
    next.stamp(now);
    compare_and_set::<E>(conn, next, id, current.version()).await
}

/// Writes `row` (all columns) only if the stored row still has `version`: of two
/// concurrent writers exactly one wins, across any number of processes. `None` when the
/// version moved on.
pub async fn compare_and_set<E>(
    conn: &impl ConnectionTrait,
    row: E::Model,
    id: i64,
    version: i32,
) -> Result<Option<E::Model>, DbErr>
where
    E: EntityTrait,
    E::Model: IntoActiveModel<E::ActiveModel> + Clone,
{
    let pk = E::PrimaryKey::iter()
        .next()
        .ok_or_else(|| DbErr::Custom("entity without primary key".into()))?;
    let pk_column = pk.into_column();
    let mut active = row.clone().into_active_model().reset_all();
    active.not_set(pk_column);
    let result = E::update_many()
        .set(active)
        .filter(Expr::col(pk_column).eq(id))
        .filter(Expr::col(Alias::new("version")).eq(version))
        .exec(conn)
        .await?;
    Ok((result.rows_affected == 1).then_some(row))
}
