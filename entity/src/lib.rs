//! Persistence models, status enums and the pure domain rules shared by the api and the
//! worker. Nothing in here knows about HTTP.

pub mod access;
pub mod action_item;
pub mod api_token;
pub mod audit;
pub mod audit_chain_head;
pub mod audit_event;
pub mod audit_trail;
pub mod capa;
pub mod change_request;
pub mod clock;
pub mod cmo;
pub mod db;
pub mod deviation;
pub mod digest;
pub mod domain_event;
pub mod enums;
pub mod escalation;
pub mod escalation_policy;
pub mod extension_request;
pub mod gate;
pub mod idempotency_key;
pub mod job_run;
pub mod link_secret;
pub mod link_token;
pub mod milestone;
pub mod milestone_dependency;
pub mod milestone_rules;
pub mod organization;
pub mod outbox;
pub mod overview;
pub mod plan_template;
pub mod program;
pub mod quality_summary;
pub mod schedule;
pub mod scorecard;
pub mod selection;
pub mod signature;
pub mod team_member;
pub mod user;
pub mod wake;
pub mod webhook;
pub mod worker_heartbeat;
pub mod workflow;

pub use enums::{OrgKind, Role, SignatureMeaning, SignedRecordType};
