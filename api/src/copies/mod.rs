//! Accurate and complete copies of a record for an inspector (21 CFR 11.10(b), EU Annex
//! 11 §8): a deviation, CAPA or change request as a PDF or a CSV file, with every field
//! the API serves, its signatures as 11.50 requires them shown (printed name, date and
//! time, meaning), its audit trail from the sponsor's and the CMO's chains (the record's
//! entries, its signatures', its action items' and their extension requests'; failed
//! signature attempts stay with their organization's security review, as in the
//! program's trail), the verification of both chains, and the time zone of every time.
//!
//! The copy is gathered once ([`RecordCopy`]) from the same views the API answers, then
//! laid out as PDF ([`pdf`]) or CSV ([`csv`]).

pub mod csv;
pub mod pdf;

use std::collections::HashMap;

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use entity::action_item::{self, ActionSource};
use entity::enums::SignedRecordType;
use entity::{
    audit_event, audit_trail, capa, change_request, deviation, extension_request, program,
    signature,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped};
use crate::error::{ApiError, ApiResult};
use crate::routes::identity::audit::ChainVerification;
use crate::state::AppState;
use crate::transition::answer;

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum CopyFormat {
    /// A PDF document (A4, an embedded Unicode font), for reading and printing.
    #[default]
    Pdf,
    /// CSV: one row per field, signature and audit entry, with a `section` column.
    Csv,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CopyQuery {
    /// `pdf` (default) or `csv`.
    #[param(inline)]
    pub format: Option<CopyFormat>,
}

/// A PDF file, in the OpenAPI document (a binary string).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary, example = json!("%PDF-1.7 …"))]
pub struct PdfFile(pub Vec<u8>);

/// A time as the copy shows it: in the reader's zone with the zone's name and offset,
/// and in UTC, so nobody has to guess which clock it was.
#[derive(Debug, Clone)]
pub struct CopyTime {
    pub utc: DateTime<Utc>,
    pub local: String,
}

impl CopyTime {
    pub fn new(zone: &str, utc: DateTime<Utc>) -> Self {
        let tz = entity::schedule::zone(zone);
        Self {
            utc,
            local: utc
                .with_timezone(&tz)
                .format(&format!("%Y-%m-%d %H:%M:%S %Z (UTC%:z, {zone})"))
                .to_string(),
        }
    }

    /// In UTC to the microsecond, as the audit trail keeps it (the program trail's export
    /// shows the same value).
    pub fn utc_text(&self) -> String {
        self.utc
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }
}

/// A signature as 11.50 requires it to be shown, and whether the record still matches.
#[derive(Debug, Clone)]
pub struct SignatureLine {
    pub id: i64,
    pub printed_name: String,
    pub meaning: String,
    pub signed_at: CopyTime,
    pub reason: Option<String>,
    /// "matches the record", or what changed since.
    pub record_state: String,
}

/// One entry of the record's audit trail.
#[derive(Debug, Clone)]
pub struct TrailLine {
    /// `sponsor` or `cmo`: whose chain holds it.
    pub side: &'static str,
    pub seq: i64,
    pub at: CopyTime,
    pub actor: String,
    pub entity: String,
    pub action: String,
    pub reason: Option<String>,
    /// The fields the entry changed, `field: before → after`; all of them on creation.
    pub changes: Vec<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub hash: String,
}

/// Everything a copy shows, gathered once for both formats.
#[derive(Debug, Clone)]
pub struct RecordCopy {
    /// "Deviation DEV-2026-0001".
    pub heading: String,
    pub title: String,
    pub program: String,
    pub generated_at: CopyTime,
    /// "Ana Quality (Acme Biologics)".
    pub generated_for: String,
    pub zone: String,
    /// Every field of the record as the API serves it (`a.b`, `list[0]`).
    pub fields: Vec<(String, String)>,
    pub signatures: Vec<SignatureLine>,
    pub trail: Vec<TrailLine>,
    /// Per chain (`sponsor`, `cmo`): its verification in words.
    pub chains: Vec<(String, String)>,
    /// A file name without extension.
    pub file_stem: String,
}

/// Which record a copy is of.
struct Subject {
    heading: String,
    title: String,
    program_id: i64,
    entity_type: &'static str,
    id: i64,
    /// Its action items (`source`): their entries, and their extension requests', are
    /// part of its trail.
    action_source: ActionSource,
    signed_as: &'static [SignedRecordType],
    view: Value,
    file_stem: String,
}

async fn gather(state: &AppState, ctx: &AuthContext, subject: Subject) -> ApiResult<RecordCopy> {
    let conn = &state.reads;
    let now = state.clock.now();
    let zone = ctx.user.time_zone.clone();
    let prog = find_scoped::<program::Entity, _>(conn, ctx, subject.program_id).await?;
    let signatures = signature::Entity::find()
        .filter(signature::Column::RecordType.is_in(subject.signed_as.iter().copied()))
        .filter(signature::Column::RecordId.eq(subject.id.to_string()))
        .filter(signature::Column::OrgId.is_in([prog.sponsor_org_id, prog.cmo_org_id]))
        .order_by_asc(signature::Column::SignedAt)
        .order_by_asc(signature::Column::Id)
        .all(conn)
        .await?;
    let mut signature_lines = Vec::with_capacity(signatures.len());
    for sig in &signatures {
        let checked = crate::signed_records::checked(conn, ctx, sig, now).await?;
        signature_lines.push(SignatureLine {
            id: sig.id,
            printed_name: sig.signer_name.clone(),
            // The meaning and what it was given to: "Approved (deviation closure)".
            meaning: format!(
                "{} ({})",
                mail::words::label_of(&sig.meaning),
                mail::words::label_of(&sig.record_type).to_lowercase()
            ),
            signed_at: CopyTime::new(&zone, sig.signed_at),
            reason: sig.reason.clone(),
            record_state: match checked.record_state {
                signature::RecordState::Matching => "matches the record".to_string(),
                signature::RecordState::NoLongerMatching => format!(
                    "no longer matches the record: {} changed since",
                    checked.changed_fields.join(", ")
                ),
                signature::RecordState::NotCheckable => "not compared (signed before signed \
                     fields were kept, or the signed record is not yours to read): bound by its \
                     record hash"
                    .to_string(),
            },
        });
    }
    let actions: Vec<i64> = action_item::Entity::find()
        .select_only()
        .column(action_item::Column::Id)
        .filter(action_item::Column::ProgramId.eq(prog.id))
        .filter(action_item::Column::Source.eq(subject.action_source))
        .filter(action_item::Column::SourceId.eq(subject.id))
        .into_tuple()
        .all(conn)
        .await?;
    let extensions: Vec<i64> = if actions.is_empty() {
        Vec::new()
    } else {
        extension_request::Entity::find()
            .select_only()
            .column(extension_request::Column::Id)
            .filter(extension_request::Column::ActionItemId.is_in(actions.clone()))
            .into_tuple()
            .all(conn)
            .await?
    };
    let as_text = |ids: &[i64]| ids.iter().map(i64::to_string).collect::<Vec<_>>();
    let signature_ids: Vec<i64> = signatures.iter().map(|s| s.id).collect();
    let events = entity::digest::changes::record_trail(
        conn,
        &[
            (subject.entity_type, vec![subject.id.to_string()]),
            ("signature", as_text(&signature_ids)),
            ("action_item", as_text(&actions)),
            ("extension_request", as_text(&extensions)),
        ],
        now,
    )
    .await?;
    let actors =
        crate::routes::record_pages::names(conn, events.iter().filter_map(|e| e.actor_user_id))
            .await?;
    let trail = events
        .iter()
        .map(|e| trail_line(e, &prog, &zone, &actors))
        .collect();
    let mut chains = Vec::new();
    for (side, org_id) in [("sponsor", prog.sponsor_org_id), ("cmo", prog.cmo_org_id)] {
        let result = audit_trail::verify(conn, &state.chain_keys, org_id).await?;
        let v = ChainVerification::new(result, &state.chain_keys);
        let mut text = v.summary();
        for caveat in &v.caveats {
            text.push_str(&format!("; {caveat}"));
        }
        chains.push((side.to_string(), text));
    }
    let org_name = &ctx.org.name;
    Ok(RecordCopy {
        heading: subject.heading,
        title: subject.title,
        program: format!("{} ({})", prog.name, prog.product_name),
        generated_at: CopyTime::new(&zone, now),
        generated_for: format!("{} ({org_name})", ctx.user.display_name),
        zone,
        fields: flatten(&subject.view),
        signatures: signature_lines,
        trail,
        chains,
        file_stem: format!("{}-{}", subject.file_stem, now.format("%Y%m%dT%H%MZ")),
    })
}

fn trail_line(
    e: &audit_event::Model,
    prog: &program::Model,
    zone: &str,
    actors: &HashMap<i64, String>,
) -> TrailLine {
    let parse = |s: &Option<String>| s.as_deref().and_then(|s| serde_json::from_str(s).ok());
    let before: Option<Value> = parse(&e.before);
    let after: Option<Value> = parse(&e.after);
    TrailLine {
        side: crate::routes::plan::audit_trail::side_of(prog, e.org_id),
        seq: e.seq,
        at: CopyTime::new(zone, e.occurred_at),
        actor: match e.actor_user_id {
            Some(id) => actors
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("user {id}")),
            None => "the system".to_string(),
        },
        entity: format!("{} {}", e.entity_type, e.entity_id),
        action: e.action.clone(),
        reason: e.reason.clone(),
        changes: changes(before.as_ref(), after.as_ref()),
        before: e.before.clone(),
        after: e.after.clone(),
        hash: e.hash.clone(),
    }
}

/// What an entry changed, field by field (`field: before → after`); every field of a
/// record created (no before) or removed (no after).
pub fn changes(before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    let empty = serde_json::Map::new();
    let fields = |v: Option<&Value>| v.and_then(Value::as_object).unwrap_or(&empty).clone();
    let (b, a) = (fields(before), fields(after));
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| b.get(*k) != a.get(*k))
        .map(|k| match (b.get(k), a.get(k)) {
            (None, Some(new)) => format!("{k}: {}", scalar(new)),
            (Some(old), None) => format!("{k}: {} → (removed)", scalar(old)),
            (Some(old), Some(new)) => format!("{k}: {} → {}", scalar(old), scalar(new)),
            (None, None) => k.to_string(),
        })
        .collect()
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "(none)".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The API view as labelled fields; what a caller may do next (`allowed_events`,
/// `blocked_events`) is about the reader, not the record, and stays out.
pub fn flatten(view: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "allowed_events" || k == "blocked_events" {
                        continue;
                    }
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for (i, v) in items.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), v, out);
                }
            }
            Value::Array(_) => out.push((prefix.to_string(), "(none)".to_string())),
            other => out.push((prefix.to_string(), scalar(other))),
        }
    }
    let mut out = Vec::new();
    walk("", view, &mut out);
    out
}

fn respond(copy: &RecordCopy, format: CopyFormat) -> ApiResult<HttpResponse> {
    let (content_type, body, ext) = match format {
        CopyFormat::Pdf => (
            "application/pdf",
            pdf::render(copy).map_err(ApiError::internal)?,
            "pdf",
        ),
        CopyFormat::Csv => (
            "text/csv; charset=utf-8",
            csv::render(copy).into_bytes(),
            "csv",
        ),
    };
    Ok(crate::routes::attachment(
        content_type,
        &format!("{}.{ext}", copy.file_stem),
        body,
    ))
}

/// The CAPA's own fields at the top (the API nests them under `capa`, beside `actions`).
fn capa_fields(mut detail: Value) -> Value {
    if let Some(map) = detail.as_object_mut()
        && let Some(Value::Object(capa)) = map.remove("capa")
    {
        map.extend(capa);
    }
    detail
}

fn view_value<T: serde::Serialize>(view: &T) -> ApiResult<Value> {
    serde_json::to_value(view).map_err(ApiError::internal)
}

/// A deviation as a PDF or CSV copy.
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "Deviation id"), CopyQuery),
    responses(
        (status = 200, description = "The copy, as an attachment: every field, the signatures (printed name, meaning, date and time with zone), the whole audit trail of both organizations and both chains' verification",
            content(
                (PdfFile = "application/pdf"),
                (String = "text/csv", example = json!("\"section\",\"side\",\"seq\",\"time_utc\",\"time_local\",\"who\",\"what\",\"reason\",\"value\",\"before\",\"after\",\"hash\"\r\n\"field\",\"\",\"\",\"\",\"\",\"\",\"number\",\"\",\"DEV-2026-0001\",\"\",\"\",\"\"\r\n\"signature\",\"\",\"7\",\"2026-12-01T10:00:00Z\",\"2026-12-01 11:00:00 CET (UTC+01:00, Europe/Zurich)\",\"Quinn Quality\",\"Approved (deviation closure)\",\"\",\"matches the record\",\"\",\"\",\"\"\r\n"))
            )),
        (status = 404, description = "No such deviation visible to the caller", body = crate::error::Problem),
        (status = 422, description = "Unknown format", body = crate::error::Problem)
    )
)]
#[get("/deviations/{id}/copy")]
pub async fn deviation_copy(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    query: web::Query<CopyQuery>,
) -> ApiResult<HttpResponse> {
    let d = find_scoped::<deviation::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let now = state.clock.now();
    let view = answer::<entity::workflow::deviation::Step>(&state.reads, &ctx, &d, now).await?;
    let subject = Subject {
        heading: format!("Deviation {}", d.reference()),
        title: d.title.clone(),
        program_id: d.program_id,
        entity_type: "deviation",
        id: d.id,
        action_source: ActionSource::Deviation,
        // A production release is signed on the program, not on a deviation.
        signed_as: &[SignedRecordType::DeviationClosure],
        view: view_value(&view)?,
        file_stem: format!("deviation-{}", d.reference()),
    };
    respond(
        &gather(&state, &ctx, subject).await?,
        query.format.unwrap_or_default(),
    )
}

/// A CAPA as a PDF or CSV copy.
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "CAPA id"), CopyQuery),
    responses(
        (status = 200, description = "The copy, as an attachment (see the deviation's copy)",
            content((PdfFile = "application/pdf"), (String = "text/csv"))),
        (status = 404, description = "No such CAPA visible to the caller", body = crate::error::Problem),
        (status = 422, description = "Unknown format", body = crate::error::Problem)
    )
)]
#[get("/capas/{id}/copy")]
pub async fn capa_copy(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    query: web::Query<CopyQuery>,
) -> ApiResult<HttpResponse> {
    let c = find_scoped::<capa::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let prog = find_scoped::<program::Entity, _>(&state.reads, &ctx, c.program_id).await?;
    let now = state.clock.now();
    let detail = crate::views::quality::capa_detail(&state.reads, &c, prog.today(now)).await?;
    let subject = Subject {
        heading: format!("CAPA {}", c.reference()),
        title: c.title.clone(),
        program_id: c.program_id,
        entity_type: "capa",
        id: c.id,
        action_source: ActionSource::Capa,
        signed_as: &[SignedRecordType::Capa],
        view: capa_fields(view_value(&detail)?),
        file_stem: format!("capa-{}", c.reference()),
    };
    respond(
        &gather(&state, &ctx, subject).await?,
        query.format.unwrap_or_default(),
    )
}

/// A change request as a PDF or CSV copy.
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "Change request id"), CopyQuery),
    responses(
        (status = 200, description = "The copy, as an attachment (see the deviation's copy)",
            content((PdfFile = "application/pdf"), (String = "text/csv"))),
        (status = 404, description = "No such change request visible to the caller", body = crate::error::Problem),
        (status = 422, description = "Unknown format", body = crate::error::Problem)
    )
)]
#[get("/change-requests/{id}/copy")]
pub async fn change_copy(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    query: web::Query<CopyQuery>,
) -> ApiResult<HttpResponse> {
    let c = find_scoped::<change_request::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let now = state.clock.now();
    let view = answer::<entity::workflow::change::Step>(&state.reads, &ctx, &c, now).await?;
    let subject = Subject {
        heading: format!("Change request {}", c.reference()),
        title: c.title.clone(),
        program_id: c.program_id,
        entity_type: "change_request",
        id: c.id,
        action_source: ActionSource::Change,
        signed_as: &[SignedRecordType::ChangeRequest],
        view: view_value(&view)?,
        file_stem: format!("change-request-{}", c.reference()),
    };
    respond(
        &gather(&state, &ctx, subject).await?,
        query.format.unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entry_lists_what_it_changed() {
        let before = json!({"status": "open", "title": "T", "version": 1});
        let after = json!({"status": "closed", "title": "T", "version": 2, "closed_at": "x"});
        assert_eq!(
            changes(Some(&before), Some(&after)),
            ["closed_at: x", "status: open → closed", "version: 1 → 2"]
        );
        assert_eq!(changes(None, Some(&json!({"a": null}))), ["a: (none)"]);
    }

    #[test]
    fn the_view_flattens_without_the_readers_affordances() {
        let view = json!({"id": 4, "tags": [], "actions": [{"title": "A"}],
            "hold": {"on": true}, "allowed_events": ["close"], "blocked_events": []});
        assert_eq!(
            flatten(&view),
            [
                ("actions[0].title".to_string(), "A".to_string()),
                ("hold.on".to_string(), "true".to_string()),
                ("id".to_string(), "4".to_string()),
                ("tags".to_string(), "(none)".to_string()),
            ]
        );
    }

    #[test]
    fn a_time_names_its_zone_and_utc() {
        let at = "2026-03-29T01:30:00Z".parse().unwrap();
        let t = CopyTime::new("Europe/Berlin", at);
        assert_eq!(
            t.local,
            "2026-03-29 03:30:00 CEST (UTC+02:00, Europe/Berlin)"
        );
        assert_eq!(t.utc_text(), "2026-03-29T01:30:00.000000Z");
    }
}
