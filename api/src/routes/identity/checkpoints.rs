//! Signed checkpoints of the organization's audit chain: the list, the published public
//! keys that check them, and checking a checkpoint someone kept.

use actix_web::{get, post, web};
use entity::audit::checkpoint::{self, CheckpointVerdict, KeptCheckpoint};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{AuthContext, scoped};
use crate::error::ApiResult;
use crate::extract::{ApiJson, Checks, Validate};
use crate::pagination::{Keyset, Paging};
use crate::routes::{Page, fetch_page};
use crate::state::AppState;

/// A checkpoint as the API shows it: what to keep, and how it came about.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 12, "kind": "daily", "reason": null,
    "checkpoint": {"org_id": 1, "seq": 42,
        "head_hash": "4e7a1c0b9f3d2e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
        "at": "2026-12-01T00:30:00.000000Z", "key_id": "3f9a0c1d2b4e5f60",
        "public_key": "8f2c…", "signature": "5d1e…"},
    "statement": "cmo-orchestrator audit checkpoint v1\norganization: 1\nseq: 42\nhead_hash: 4e7a…\nat: 2026-12-01T00:30:00.000000Z\nkey_id: 3f9a0c1d2b4e5f60\n"}))]
pub struct CheckpointView {
    pub id: i64,
    /// `daily` (the worker's schedule) or `manual` (the operator's, e.g. after a restore).
    pub kind: String,
    pub reason: Option<String>,
    /// What to keep outside the system, and later hand to `POST /audit-checkpoints/verify`.
    pub checkpoint: KeptCheckpoint,
    /// The exact text the Ed25519 signature covers.
    pub statement: String,
}

impl From<&checkpoint::Model> for CheckpointView {
    fn from(c: &checkpoint::Model) -> Self {
        let kept = KeptCheckpoint::from(c);
        CheckpointView {
            id: c.id,
            kind: c.kind.clone(),
            reason: c.reason.clone(),
            statement: kept.statement(),
            checkpoint: kept,
        }
    }
}

/// The organization's audit chain checkpoints, newest first.
#[utoipa::path(
    tag = "audit",
    params(Paging),
    responses((status = 200, description = "One page of checkpoints", body = Page<CheckpointView>))
)]
#[get("/audit-checkpoints")]
pub async fn list_checkpoints(
    state: web::Data<AppState>,
    ctx: AuthContext,
    paging: web::Query<Paging>,
) -> ApiResult<web::Json<Page<CheckpointView>>> {
    let select = scoped::<checkpoint::Entity>(&ctx);
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::desc([checkpoint::Column::Id]),
        &paging,
    )
    .await?;
    let items = &page.items;
    let items = items.iter().map(CheckpointView::from).collect();
    Ok(web::Json(page.with_items(items)))
}

/// Compare a checkpoint you kept with the organization's chain as it is now: whether
/// its signature holds, whether this installation signed it, and whether the chain
/// still holds the row it names with the same hash.
#[utoipa::path(
    tag = "audit",
    request_body = KeptCheckpoint,
    responses(
        (status = 200, description = "The verdict (also when the checkpoint does not match)", body = CheckpointVerdict),
        (status = 422, description = "Not a checkpoint (a field missing or malformed)", body = crate::error::Problem)
    )
)]
#[post("/audit-checkpoints/verify")]
pub async fn verify_checkpoint(
    state: web::Data<AppState>,
    ctx: AuthContext,
    body: ApiJson<KeptCheckpoint>,
) -> ApiResult<web::Json<CheckpointVerdict>> {
    let verdict =
        checkpoint::check_kept(&state.db, &state.chain_keys, ctx.org_id(), &body.0).await?;
    Ok(web::Json(verdict))
}

impl Validate for KeptCheckpoint {
    fn validate(&self, checks: &mut Checks) {
        for (field, value, digits) in [
            ("head_hash", &self.head_hash, 64),
            ("key_id", &self.key_id, 16),
            ("public_key", &self.public_key, 64),
            ("signature", &self.signature, 128),
        ] {
            if value.len() != digits || !value.chars().all(|c| c.is_ascii_hexdigit()) {
                checks.fail(
                    field,
                    "invalid_format",
                    format!("{digits} hex digits (0-9, a-f), as the checkpoint gave them"),
                );
            }
        }
        if self.seq < 0 {
            checks.fail("seq", "out_of_range", "a whole number 0 or more, e.g. 42");
        }
    }
}

/// A public key that checks checkpoint signatures.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"key_id": "3f9a0c1d2b4e5f60", "current": true,
    "public_key": "8f2c9e4d1a0b3c5e7f6a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e",
    "public_key_pem": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAjyyeTRoLPF5/aoucDR4vOktcbX6PmgscLT5Pprx8jZ4=\n-----END PUBLIC KEY-----\n"}))]
pub struct CheckpointKeyView {
    pub key_id: String,
    /// Whether new checkpoints are signed with it.
    pub current: bool,
    /// Ed25519 public key, 64 hex digits.
    pub public_key: String,
    /// The same key as PEM (SubjectPublicKeyInfo), for `openssl pkeyutl -verify`.
    pub public_key_pem: String,
}

/// The public keys that check this installation's checkpoints (published: no sign-in
/// needed, and no secret in them).
#[utoipa::path(
    tag = "audit",
    security(()),
    params(Paging),
    responses(
        (status = 200, description = "One page of the keys, oldest first", body = Page<CheckpointKeyView>),
        (status = 422, description = "Invalid limit or offset", body = crate::error::Problem)
    )
)]
#[get("/audit-checkpoint-keys")]
pub async fn checkpoint_keys(
    state: web::Data<AppState>,
    paging: web::Query<Paging>,
) -> ApiResult<web::Json<Page<CheckpointKeyView>>> {
    let current = state.chain_keys.current().id().to_string();
    let keys = state
        .chain_keys
        .keys()
        .iter()
        .map(|k| {
            let public_key = k.checkpoint_public_key();
            CheckpointKeyView {
                key_id: k.id().to_string(),
                current: k.id() == current,
                public_key_pem: ed25519_pem(&public_key),
                public_key,
            }
        })
        .collect();
    Ok(web::Json(Page::of_all(keys, &paging)?))
}

/// An Ed25519 public key (hex) as PEM: the fixed SubjectPublicKeyInfo prefix of RFC 8410,
/// then the 32 bytes.
fn ed25519_pem(public_key_hex: &str) -> String {
    use base64::Engine;
    let mut der = hex::decode("302a300506032b6570032100").unwrap_or_default();
    der.extend(hex::decode(public_key_hex).unwrap_or_default());
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}
