//! A program's audit trail for an inspector: who changed what on the program's records,
//! on the sponsor's side and the CMO's, with the signatures made on them, in one list;
//! readable by both parties and exportable as one JSON or CSV file that carries the
//! verification of both organizations' chains. Sign-ins, failed signature attempts and
//! other security events stay with their own organization.

use actix_web::{HttpResponse, get, web};
use entity::audit::checkpoint::{self, KeptCheckpoint};
use entity::{audit_trail, program};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped};
use crate::error::ApiResult;
use crate::routes::identity::audit::{ChainVerification, service_accounts};
use crate::state::AppState;
use crate::views::identity::AuditEventView;

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TrailFormat {
    /// JSON (`ProgramAuditTrail`), as a file.
    #[default]
    Json,
    /// CSV: the verification in `#` lines, then one row per entry.
    Csv,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrailQuery {
    /// `json` (default) or `csv`.
    #[param(inline)]
    pub format: Option<TrailFormat>,
}

/// One entry, with whose chain it sits in.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"side": "cmo", "org_id": 2, "id": 311, "seq": 48, "actor_user_id": 9,
    "actor_kind": "person", "entity_type": "deviation", "entity_id": "41", "action": "report",
    "before": null, "after": {"id": 41, "title": "Torn label roll", "status": "reported"},
    "reason": null, "request_id": "5f0c2a8e-7d1b-4f7e-9a55-3c1d0e6b2a90",
    "occurred_at": "2026-12-01T09:14:00Z", "prev_hash": "9b1c…", "hash": "4e7a…"}))]
pub struct ProgramAuditEntry {
    /// `sponsor` or `cmo`: the organization whose chain holds the entry.
    pub side: String,
    pub org_id: i64,
    #[serde(flatten)]
    pub event: AuditEventView,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"program_id": 3, "program_name": "ACM-101 clinical supply",
    "generated_at": "2026-12-01T10:00:00Z",
    "sponsor_chain": {"intact": true, "status": "intact", "checked": 120, "head_seq": 120,
        "keyed_rows": 120, "unkeyed_rows": 0, "unchecked_rows": 0, "unknown_key_ids": [],
        "current_key_id": "3f9a0c1d2b4e5f60", "caveats": [], "first_broken_link": null},
    "cmo_chain": {"intact": true, "status": "intact", "checked": 48, "head_seq": 48,
        "keyed_rows": 48, "unkeyed_rows": 0, "unchecked_rows": 0, "unknown_key_ids": [],
        "current_key_id": "3f9a0c1d2b4e5f60", "caveats": [], "first_broken_link": null},
    "sponsor_checkpoint": {"org_id": 1, "seq": 118, "head_hash": "77c0…", "at": "2026-12-01T00:30:00.000000Z",
        "key_id": "3f9a0c1d2b4e5f60", "public_key": "8f2c…", "signature": "5d1e…"},
    "cmo_checkpoint": null,
    "entries": [{"side": "cmo", "org_id": 2, "id": 311, "seq": 48, "actor_user_id": 9,
        "actor_kind": "person", "entity_type": "deviation", "entity_id": "41", "action": "report",
        "before": null, "after": {"id": 41, "title": "Torn label roll", "status": "reported"},
        "reason": null, "request_id": null, "occurred_at": "2026-12-01T09:14:00Z",
        "prev_hash": "9b1c…", "hash": "4e7a…"}]}))]
pub struct ProgramAuditTrail {
    pub program_id: i64,
    pub program_name: String,
    pub generated_at: chrono::DateTime<chrono::Utc>,
    /// The sponsor's chain, verified when the file was made.
    pub sponsor_chain: ChainVerification,
    /// The CMO's chain, verified when the file was made.
    pub cmo_chain: ChainVerification,
    /// The sponsor chain's newest signed checkpoint (`null` before the first): checks
    /// with the published public key, and against the chain later.
    pub sponsor_checkpoint: Option<KeptCheckpoint>,
    /// The CMO chain's newest signed checkpoint.
    pub cmo_checkpoint: Option<KeptCheckpoint>,
    /// Oldest first.
    pub entries: Vec<ProgramAuditEntry>,
}

/// The program's audit trail across the sponsor and the CMO, as a file to take away.
#[utoipa::path(
    tag = "audit",
    params(("id" = i64, Path, description = "Program id"), TrailQuery),
    responses(
        (status = 200, description = "The trail with both chains' verification (JSON; or CSV with `format=csv`), as an attachment",
            content(
                (ProgramAuditTrail = "application/json"),
                (String = "text/csv", example = json!("# program 3: ACM-101 clinical supply\n# sponsor chain: intact (120 checked)\nside,org_id,seq,occurred_at,actor_user_id,entity_type,entity_id,action,reason,hash\n"))
            )),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem),
        (status = 422, description = "Unknown format", body = crate::error::Problem)
    )
)]
#[get("/programs/{id}/audit-trail")]
pub async fn program_audit_trail(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    query: web::Query<TrailQuery>,
) -> ApiResult<HttpResponse> {
    let prog = find_scoped::<program::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let now = state.clock.now();
    let events = entity::digest::changes::program_trail(&state.reads, &prog, now).await?;
    let services = service_accounts(&state.reads, &events).await?;
    let sponsor_chain =
        audit_trail::verify(&state.reads, &state.chain_keys, prog.sponsor_org_id).await?;
    let cmo_chain = audit_trail::verify(&state.reads, &state.chain_keys, prog.cmo_org_id).await?;
    let kept = |c: Option<checkpoint::Model>| c.as_ref().map(KeptCheckpoint::from);
    let sponsor_checkpoint = kept(checkpoint::latest(&state.reads, prog.sponsor_org_id).await?);
    let cmo_checkpoint = kept(checkpoint::latest(&state.reads, prog.cmo_org_id).await?);
    let trail = ProgramAuditTrail {
        program_id: prog.id,
        program_name: prog.name.clone(),
        generated_at: now,
        sponsor_chain: ChainVerification::new(sponsor_chain, &state.chain_keys),
        cmo_chain: ChainVerification::new(cmo_chain, &state.chain_keys),
        sponsor_checkpoint,
        cmo_checkpoint,
        entries: events
            .iter()
            .map(|e| ProgramAuditEntry {
                side: side_of(&prog, e.org_id).to_string(),
                org_id: e.org_id,
                event: AuditEventView::new(e, &services),
            })
            .collect(),
    };
    let stamp = now.format("%Y%m%dT%H%MZ");
    let (content_type, body, ext) = match query.format.unwrap_or_default() {
        TrailFormat::Json => (
            "application/json",
            serde_json::to_string_pretty(&trail).map_err(crate::error::ApiError::internal)?,
            "json",
        ),
        TrailFormat::Csv => ("text/csv; charset=utf-8", csv(&trail), "csv"),
    };
    Ok(crate::routes::attachment(
        content_type,
        &format!("program-{}-audit-trail-{stamp}.{ext}", prog.id),
        body,
    ))
}

/// `sponsor` or `cmo`: whose chain an entry of the program's trail sits in.
pub fn side_of(prog: &program::Model, org_id: i64) -> &'static str {
    if org_id == prog.sponsor_org_id {
        "sponsor"
    } else {
        "cmo"
    }
}

fn csv(trail: &ProgramAuditTrail) -> String {
    let chain = |name: &str, c: &ChainVerification, kept: &Option<KeptCheckpoint>| {
        let mut line = format!("# {name} chain: {}\r\n", c.summary());
        for caveat in &c.caveats {
            line.push_str(&format!("# {name} chain: {caveat}\r\n"));
        }
        if let Some(k) = kept {
            line.push_str(&format!(
                "# {name} checkpoint: seq {} hash {} at {} key {} public key {} signature {}\r\n",
                k.seq,
                k.head_hash,
                k.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                k.key_id,
                k.public_key,
                k.signature
            ));
        }
        line
    };
    let mut out = format!(
        "# Audit trail of program {} \"{}\", generated {} (times UTC)\r\n",
        trail.program_id,
        trail.program_name.replace(['\r', '\n'], " "),
        trail.generated_at.to_rfc3339()
    );
    out.push_str(&chain(
        "sponsor",
        &trail.sponsor_chain,
        &trail.sponsor_checkpoint,
    ));
    out.push_str(&chain("cmo", &trail.cmo_chain, &trail.cmo_checkpoint));
    out.push_str(&crate::csv::row([
        "side",
        "seq",
        "occurred_at",
        "actor_user_id",
        "actor_kind",
        "entity_type",
        "entity_id",
        "action",
        "reason",
        "before",
        "after",
        "request_id",
        "prev_hash",
        "hash",
    ]));
    for e in &trail.entries {
        let v = &e.event;
        let json =
            |j: &Option<serde_json::Value>| j.as_ref().map(|j| j.to_string()).unwrap_or_default();
        out.push_str(&crate::csv::row([
            e.side.clone(),
            v.seq.to_string(),
            v.occurred_at.to_rfc3339(),
            v.actor_user_id.map(|a| a.to_string()).unwrap_or_default(),
            entity::enums::wire_name(&v.actor_kind),
            v.entity_type.clone(),
            v.entity_id.clone(),
            v.action.clone(),
            v.reason.clone().unwrap_or_default(),
            json(&v.before),
            json(&v.after),
            v.request_id.clone().unwrap_or_default(),
            v.prev_hash.clone(),
            v.hash.clone(),
        ]));
    }
    out
}
