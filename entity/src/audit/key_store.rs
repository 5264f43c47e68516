//! Where a process finds the audit chain keys at start-up, and the checks that keep every
//! replica on the same ones.
//!
//! - `CMO_AUDIT_KEY` (keys in hex, comma-separated, oldest first) or
//!   `CMO_AUDIT_KEY_FILE` (the key file): used as given, on any database.
//! - Neither, on a SQLite file: `<database file>.audit-key`, generated on first start
//!   (readable by its owner only). Back it up apart from the database.
//! - Neither, on PostgreSQL: refused. Replicas cannot share a generated file, and a
//!   replica with a key of its own would write rows no other one can check.
//!
//! A process whose keys do not include the one the installation last wrote with refuses
//! to start, rather than fork the chain's keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::audit::{ChainKeys, KeyRing, audit_trail};

/// Where the keys come from, as configured.
#[derive(Debug, Clone, Default)]
pub struct KeySource {
    /// `CMO_AUDIT_KEY`: keys in hex, comma-separated, oldest first.
    pub keys: Option<String>,
    /// `CMO_AUDIT_KEY_FILE`: a key file (see [`KeyRing::parse`]).
    pub file: Option<PathBuf>,
    /// The database's file when it is SQLite on disk (the default key file sits beside).
    pub sqlite_file: Option<String>,
    /// An in-memory SQLite database: a key for the life of the process is enough.
    pub in_memory: bool,
}

impl KeySource {
    /// The key file `cmo-api audit-key rotate` extends, if the keys live in a file.
    pub fn key_file(&self) -> Option<PathBuf> {
        self.file
            .clone()
            .or_else(|| self.sqlite_file.as_deref().map(default_key_file))
    }
}

/// The key file beside a SQLite database file.
pub fn default_key_file(sqlite_file: &str) -> PathBuf {
    PathBuf::from(format!("{sqlite_file}.audit-key"))
}

pub fn read_key_file(path: &Path) -> Result<KeyRing, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the audit key file {}: {e}", path.display()))?;
    KeyRing::parse(&text).map_err(|e| format!("audit key file {}: {e}", path.display()))
}

/// Writes `ring` to `path`, readable by its owner only. With `create_new` the file
/// appears whole or not at all, and never replaces one that appeared meanwhile (the api
/// and the worker starting together on one new database): it is written beside, then
/// hard-linked into place, which fails with `AlreadyExists` when another process won.
pub fn write_key_file(path: &Path, ring: &KeyRing, create_new: bool) -> std::io::Result<()> {
    if !create_new {
        return write_private(path, ring);
    }
    let beside = path.with_extension(format!("audit-key-{}", std::process::id()));
    let _ = std::fs::remove_file(&beside);
    write_private(&beside, ring)?;
    let linked = std::fs::hard_link(&beside, path);
    let _ = std::fs::remove_file(&beside);
    linked
}

fn write_private(path: &Path, ring: &KeyRing) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(ring.to_file_text().as_bytes())?;
    file.sync_all()
}

/// The key ring for a process on `db`, after checking it
/// against what the installation last wrote; unsealed chain heads are sealed with it.
pub async fn open(source: &KeySource, db: &DatabaseConnection) -> Result<Opened, String> {
    let mut generated = None;
    let newest = audit_trail::newest_key_id(db)
        .await
        .map_err(|e| format!("cannot read the audit chain's key id: {e}"))?;
    let ring = if let Some(list) = &source.keys {
        KeyRing::parse_list(list).map_err(|e| format!("CMO_AUDIT_KEY: {e}"))?
    } else if let Some(path) = &source.file {
        read_key_file(path)?
    } else if let Some(file) = &source.sqlite_file {
        let path = default_key_file(file);
        if path.exists() {
            read_key_file(&path)?
        } else if let Some(id) = &newest {
            return Err(format!(
                "the audit chain of this database is keyed (key {id}) but its key file {} is \
                 missing: restore it from where it was backed up (or set CMO_AUDIT_KEY_FILE)",
                path.display()
            ));
        } else {
            let ring = KeyRing::generate();
            match write_key_file(&path, &ring, true) {
                Ok(()) => {
                    generated = Some(path.clone());
                    ring
                }
                // Another process starting on the same database wrote it first.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(&path)?,
                Err(e) => {
                    return Err(format!(
                        "cannot write the audit key file {}: {e}",
                        path.display()
                    ));
                }
            }
        }
    } else if source.in_memory {
        // An in-memory database lives as long as the process, and so does its key.
        KeyRing::generate()
    } else {
        return Err(
            "PostgreSQL needs the audit chain key: set CMO_AUDIT_KEY_FILE (or \
                    CMO_AUDIT_KEY) to the same key on every api and worker replica; \
                    `cmo-api audit-key generate` writes a new key file"
                .to_string(),
        );
    };
    if let Some(id) = newest
        && ring.get(&id).is_none()
    {
        return Err(format!(
            "the audit chain was last written with key {id}, which this process does not \
             hold (it holds {}): every api and worker replica needs the same key file, \
             with every earlier key kept",
            ring.keys()
                .iter()
                .map(|k| k.id())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let sealed_heads = audit_trail::seal_unsealed_heads(db, &ring)
        .await
        .map_err(|e| format!("cannot seal the audit chain heads: {e}"))?;
    Ok(Opened {
        keys: Arc::new(ring),
        generated,
        sealed_heads,
    })
}

/// What [`open`] found and did, for the process to report.
#[derive(Debug)]
pub struct Opened {
    pub keys: ChainKeys,
    /// The key file generated now (first start on a SQLite file): to be backed up.
    pub generated: Option<PathBuf>,
    /// Chain heads sealed now (first keyed start of an existing installation).
    pub sealed_heads: u64,
}

impl Opened {
    /// What an operator should hear about at start-up.
    pub fn notices(&self) -> Vec<String> {
        let mut notices = Vec::new();
        if let Some(path) = &self.generated {
            notices.push(format!(
                "generated the audit chain key {} in {}: back this file up apart from the \
                 database (without it the chain cannot be verified or extended)",
                self.keys.current().id(),
                path.display()
            ));
        }
        if self.sealed_heads > 0 {
            notices.push(format!(
                "sealed {} audit chain head(s) with key {}: rows written before keying stay \
                 verifiable, rows from now on are keyed",
                self.sealed_heads,
                self.keys.current().id()
            ));
        }
        notices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_two_processes_creating_the_key_file_one_wins_and_the_file_is_whole() {
        let dir = std::env::temp_dir().join(format!("cmo-key-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let path = dir.join("cmo.db.audit-key");
        let (a, b) = (KeyRing::generate(), KeyRing::generate());
        assert!(write_key_file(&path, &a, true).is_ok());
        let second = write_key_file(&path, &b, true);
        assert_eq!(
            second.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::AlreadyExists)
        );
        let kept = read_key_file(&path).unwrap_or_else(|_| KeyRing::generate());
        assert_eq!(kept.current().id(), a.current().id());
        // Nothing is left beside it.
        let files = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(files, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
