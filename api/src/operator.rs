//! What the installation's operator runs besides the server: opening the database with
//! its audit chain keys, the key commands (`cmo-api audit-key …`) and `verify-audit`.

use entity::audit::key_store::{self, KeySource};
use entity::audit::{ChainKeys, KeyRing};
use migration::startup::DatabaseArgs;
use sea_orm::DatabaseConnection;

/// Where this process's audit chain keys come from.
pub fn key_source(database: &DatabaseArgs) -> KeySource {
    KeySource {
        keys: database.audit_key.clone().filter(|k| !k.trim().is_empty()),
        file: database.audit_key_file.clone(),
        sqlite_file: database.sqlite_file(),
        in_memory: database.in_memory(),
    }
}

/// Connects, migrates and loads the audit chain keys (generating them beside a new
/// SQLite file), reporting what an operator must know.
pub async fn open(database: &DatabaseArgs) -> Result<(DatabaseConnection, ChainKeys), String> {
    let db =
        migration::startup::connect_and_migrate(database, migration::startup::API_POSTGRES_POOL)
            .await
            .map_err(|e| e.to_string())?;
    let opened = key_store::open(&key_source(database), &db).await?;
    for notice in opened.notices() {
        tracing::warn!("{notice}");
    }
    Ok((db, opened.keys))
}

/// `cmo-api audit-key generate [--file F]`: a new key ring of one key, written to a new
/// file (owner-only) or printed in hex for `CMO_AUDIT_KEY`.
pub fn generate(file: Option<&std::path::Path>) -> Result<(), String> {
    let ring = KeyRing::generate();
    match file {
        Some(path) => {
            key_store::write_key_file(path, &ring, true)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            println!(
                "Wrote audit chain key {} to {}. Give every api and worker replica this file \
                 (CMO_AUDIT_KEY_FILE) and back it up apart from the database.",
                ring.current().id(),
                path.display()
            );
        }
        None => println!("{}", ring.current().to_hex()),
    }
    Ok(())
}

/// `cmo-api audit-key rotate`: adds a new key to the key file; it keys every row
/// written after the replicas restart, the earlier keys keep verifying older rows.
pub fn rotate(database: &DatabaseArgs) -> Result<(), String> {
    let source = key_source(database);
    if source.keys.is_some() {
        return Err(
            "the keys come from CMO_AUDIT_KEY: append a new key (cmo-api audit-key \
                    generate) to its end on every replica, keeping the earlier ones"
                .to_string(),
        );
    }
    let path = source
        .key_file()
        .ok_or("no key file is configured: set CMO_AUDIT_KEY_FILE")?;
    let rotated = key_store::read_key_file(&path)?.rotated();
    // Written beside, then renamed: a crash leaves the old file or the new one whole.
    let fresh = path.with_extension("audit-key-new");
    let _ = std::fs::remove_file(&fresh);
    key_store::write_key_file(&fresh, &rotated, true)
        .map_err(|e| format!("cannot write {}: {e}", fresh.display()))?;
    std::fs::rename(&fresh, &path)
        .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    println!(
        "Added audit chain key {} to {}; restart every api and worker replica with this file. \
         Rows keep verifying under the earlier keys, which stay in the file.",
        rotated.current().id(),
        path.display()
    );
    Ok(())
}

/// `cmo-api audit-key show`: each key's id and the public key that checks its
/// checkpoints (never a secret).
pub fn show(database: &DatabaseArgs) -> Result<(), String> {
    let source = key_source(database);
    let ring = match (&source.keys, source.key_file()) {
        (Some(list), _) => KeyRing::parse_list(list)?,
        (None, Some(path)) => key_store::read_key_file(&path)?,
        (None, None) => return Err("no audit key is configured".to_string()),
    };
    let keys: Vec<serde_json::Value> = ring
        .keys()
        .iter()
        .map(|k| {
            serde_json::json!({
                "key_id": k.id(),
                "current": k.id() == ring.current().id(),
                "checkpoint_public_key": k.checkpoint_public_key(),
            })
        })
        .collect();
    println!("{}", serde_json::Value::Array(keys));
    Ok(())
}

/// Every organization with its chain's verification.
async fn verify_every_chain(
    db: &DatabaseConnection,
    keys: &KeyRing,
) -> Result<
    Vec<(
        entity::organization::Model,
        entity::audit_trail::Verification,
    )>,
    String,
> {
    use sea_orm::EntityTrait;
    let orgs = entity::organization::Entity::find()
        .all(db)
        .await
        .map_err(|e| e.to_string())?;
    let mut verified = Vec::with_capacity(orgs.len());
    for org in orgs {
        let v = entity::audit_trail::verify(db, keys, org.id)
            .await
            .map_err(|e| e.to_string())?;
        verified.push((org, v));
    }
    Ok(verified)
}

/// `cmo-api verify-audit`: every organization's chain; an error when one is broken or
/// could not be checked completely.
pub async fn verify_audit(db: &DatabaseConnection, keys: &KeyRing) -> Result<(), String> {
    let mut not_intact = Vec::new();
    let mut report = Vec::new();
    for (org, v) in verify_every_chain(db, keys).await? {
        if !v.intact() {
            not_intact.push(format!("{} ({})", org.name, v.status()));
        }
        report.push(serde_json::json!({
            "org_id": org.id,
            "organization": org.name,
            "status": v.status(),
            "intact": v.intact(),
            "checked": v.checked(),
            "head_seq": v.head_seq,
            "keyed_rows": v.coverage.keyed,
            "unkeyed_rows": v.coverage.plain,
            "unchecked_rows": v.coverage.unchecked,
            "first_broken_seq": v.broken.as_ref().map(|b| b.seq),
            "first_broken_kind": v.broken.as_ref().map(|b| b.kind.as_str()),
            "caveats": v.caveats(),
        }));
    }
    println!("{}", serde_json::Value::Array(report));
    if not_intact.is_empty() {
        Ok(())
    } else {
        Err(format!("audit chain not intact: {}", not_intact.join(", ")))
    }
}

/// `cmo-api verify-audit --checkpoint FILE`: compares a kept checkpoint (its JSON, as the
/// email or the API gave it) with its organization's chain; an error unless its
/// signature holds and the chain still holds the row it names.
pub async fn verify_kept_checkpoint(
    db: &DatabaseConnection,
    keys: &KeyRing,
    file: &std::path::Path,
) -> Result<(), String> {
    use entity::audit::checkpoint::{self, ChainAgreement, KeptCheckpoint};
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let kept: KeptCheckpoint = serde_json::from_str(text.trim())
        .map_err(|e| format!("{} is not a checkpoint: {e}", file.display()))?;
    let verdict = checkpoint::check_kept(db, keys, kept.org_id, &kept)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string(&verdict).map_err(|e| e.to_string())?
    );
    if verdict.signature_valid && verdict.chain == ChainAgreement::Matches {
        Ok(())
    } else {
        Err(format!("the checkpoint does not hold: {}", verdict.detail))
    }
}

/// `cmo-api audit-checkpoint --reason …`: a signed checkpoint of every organization's
/// chain now (after verifying it), e.g. to re-anchor after a restore; the worker sends
/// each to the organization's quality users. Chains that do not verify are not anchored
/// and make the command fail.
pub async fn take_checkpoints(
    db: &DatabaseConnection,
    keys: &KeyRing,
    reason: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), String> {
    use sea_orm::TransactionTrait;
    let mut report = Vec::new();
    let mut not_intact = Vec::new();
    for (org, v) in verify_every_chain(db, keys).await? {
        if !v.intact() {
            not_intact.push(format!("{} ({})", org.name, v.status()));
            continue;
        }
        let txn = db.begin().await.map_err(|e| e.to_string())?;
        let taken = entity::audit::checkpoint::take(
            &txn,
            keys,
            org.id,
            now,
            "manual",
            Some(reason.to_string()),
        )
        .await
        .map_err(|e| e.to_string())?;
        txn.commit().await.map_err(|e| e.to_string())?;
        report.push(serde_json::json!({
            "organization": org.name,
            "checkpoint": entity::audit::checkpoint::KeptCheckpoint::from(&taken),
        }));
    }
    println!("{}", serde_json::Value::Array(report));
    if not_intact.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not anchored, the chain does not verify: {}",
            not_intact.join(", ")
        ))
    }
}
