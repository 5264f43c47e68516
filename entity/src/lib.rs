//! Persistence models, status enums and the pure domain rules shared by the api and the
//! worker. Nothing in here knows about HTTP.
//!
//! The records are grouped by area, as the api's routes are (`quality`, `plan`,
//! `partners`, `paging`, `identity`, plus the `audit` evidence, the `integration`
//! outputs and what `ops` needs to run). Each record's module is also named at the root,
//! by its domain word (`entity::deviation`), which is how the rest of the code says it.
//! State changes go through [`workflow`].

pub mod audit;
pub mod enums;
pub mod identity;
pub mod integration;
pub mod ops;
pub mod paging;
pub mod partners;
pub mod plan;
pub mod quality;
pub mod workflow;

pub use audit::{audit_chain_head, audit_event, audit_trail, signature};
pub use enums::{OrgKind, Role, SignatureMeaning, SignedRecordType};
pub use identity::{
    access, api_token, invitation, organization, password_reset, sign_in_failure, user,
};
pub use integration::{domain_event, notification, outbox, wake, webhook};
pub use ops::{
    clock, db, idempotency_key, job_run, link_secret, link_token, schedule, worker_heartbeat,
};
pub use paging::{escalation, escalation_policy};
pub use partners::{cmo, cmo_merge, merge_choice, relationship, scorecard, selection};
pub use plan::{
    action_item, digest, gate, milestone, milestone_dependency, milestone_rules, overview,
    plan_template, program, team_member,
};
pub use quality::{
    capa, change_request, deviation, extension_request, production_holds, quality_summary,
    record_number,
};
