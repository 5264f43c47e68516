//! The migration from admin-held credentials (issue 16), on both databases: a database
//! as the previous release left it is migrated, then the worker tells each person how
//! their access changed.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use e2e::pg;
use entity::{api_token, outbox, user};
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::SimpleExpr;
use sea_orm::sea_query::{Alias, Query};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait};

/// Migrations before the accounts model.
const BEFORE_ACCOUNTS: u32 = 23;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap()
}

async fn insert(db: &DatabaseConnection, table: &str, columns: &[&str], values: Vec<SimpleExpr>) {
    let stmt = Query::insert()
        .into_table(Alias::new(table))
        .columns(columns.iter().map(|c| Alias::new(*c)))
        .values_panic(values)
        .to_owned();
    db.execute(&stmt).await.expect("insert");
}

async fn org(db: &DatabaseConnection, id: i64, name: &str, kind: &str, parent: Option<i64>) {
    insert(
        db,
        "organizations",
        &[
            "id",
            "name",
            "kind",
            "parent_org_id",
            "created_at",
            "updated_at",
            "version",
        ],
        vec![
            id.into(),
            name.into(),
            kind.into(),
            parent.into(),
            at().into(),
            at().into(),
            1.into(),
        ],
    )
    .await;
}

async fn person(
    db: &DatabaseConnection,
    id: i64,
    org: i64,
    email: &str,
    password: Option<&str>,
    temporary: bool,
) {
    insert(
        db,
        "users",
        &[
            "id",
            "org_id",
            "email",
            "display_name",
            "role",
            "time_zone",
            "password_hash",
            "password_is_temporary",
            "active",
            "created_at",
            "updated_at",
            "version",
        ],
        vec![
            id.into(),
            org.into(),
            email.into(),
            email.into(),
            "admin".into(),
            "UTC".into(),
            password.map(str::to_string).into(),
            temporary.into(),
            true.into(),
            at().into(),
            at().into(),
            1.into(),
        ],
    )
    .await;
}

async fn token(
    db: &DatabaseConnection,
    id: i64,
    org: i64,
    owner: i64,
    issuer: Option<i64>,
    name: &str,
) {
    insert(
        db,
        "api_tokens",
        &[
            "id",
            "org_id",
            "user_id",
            "issued_by_user_id",
            "name",
            "token_prefix",
            "token_hash",
            "created_at",
        ],
        vec![
            id.into(),
            org.into(),
            owner.into(),
            issuer.into(),
            name.into(),
            format!("cmo_{id:08}").into(),
            format!("{id:064}").into(),
            at().into(),
        ],
    )
    .await;
}

async fn admin_held_credentials_end_and_their_holders_are_told(url: String) {
    // REQ: SEC-OWN-CREDENTIALS
    let db = Database::connect(&url).await.expect("connect");
    Migrator::up(&db, Some(BEFORE_ACCOUNTS))
        .await
        .expect("old schema");
    org(&db, 1, "Acme Bio", "sponsor", None).await;
    org(&db, 2, "Lonza Visp", "cmo", Some(1)).await;
    person(&db, 1, 1, "admin@acme.test", Some("$argon2id$own"), false).await;
    person(
        &db,
        2,
        1,
        "qa@acme.test",
        Some("$argon2id$admin-chosen"),
        true,
    )
    .await;
    person(&db, 3, 2, "pm@lonza.test", None, false).await;
    person(&db, 4, 2, "qa@lonza.test", Some("$argon2id$own"), false).await;
    person(
        &db,
        5,
        1,
        "viewer@acme.test",
        Some("$argon2id$admin-chosen"),
        true,
    )
    .await;
    token(&db, 1, 1, 1, None, "bootstrap").await;
    token(&db, 2, 1, 2, Some(1), "minted for qa by the admin").await;
    token(&db, 3, 1, 1, Some(1), "the admin's own").await;
    token(&db, 4, 2, 3, Some(1), "initial admin token").await;
    token(
        &db,
        5,
        2,
        4,
        Some(4),
        "the CMO qa's own, minted after the hand-over",
    )
    .await;
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        // Explicit ids leave the sequences behind; later inserts must not collide.
        for table in ["organizations", "users", "api_tokens"] {
            db.execute_unprepared(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), 100)"
            ))
            .await
            .unwrap();
        }
    }

    migration::migrate_up(&db)
        .await
        .expect("migrate to the accounts model");

    let tokens = api_token::Entity::find().all(&db).await.unwrap();
    let reason = |id: i64| {
        let t = tokens.iter().find(|t| t.id == id).unwrap();
        (t.revoked_at.is_some(), t.revoked_reason.clone())
    };
    assert_eq!(
        reason(1),
        (false, None),
        "the bootstrap token is the admin's own"
    );
    assert_eq!(
        reason(3),
        (false, None),
        "a token one made for oneself stays"
    );
    assert_eq!(reason(2), (true, Some("minted_for_someone_else".into())));
    assert_eq!(reason(4), (true, Some("minted_for_someone_else".into())));
    assert_eq!(reason(5), (true, Some("descends_from_hand_over".into())));
    assert!(
        tokens
            .iter()
            .all(|t| t.kind == api_token::TokenKind::Personal)
    );

    let users = user::Entity::find().all(&db).await.unwrap();
    let state = |id: i64| {
        let u = users.iter().find(|u| u.id == id).unwrap();
        (u.password_hash.is_some(), u.access_notice.clone())
    };
    assert_eq!(state(1), (true, None));
    assert_eq!(
        state(2),
        (false, Some("password_expired_tokens_revoked".into()))
    );
    assert_eq!(state(3), (false, Some("tokens_revoked".into())));
    assert_eq!(state(4), (true, Some("tokens_revoked".into())));
    assert_eq!(state(5), (false, Some("password_expired".into())));

    // The worker tells each of them, once, how to get their own access.
    let ctx = worker::jobs::JobContext {
        db: db.clone(),
        clock: Arc::new(entity::clock::ManualClock::new(at())),
        worker_id: "w1".to_string(),
        hostname: "test".to_string(),
        started_at: at(),
        public_base_url: "https://cmo.example.com".to_string(),
        chain_keys: Arc::new(entity::audit::KeyRing::generate()),
    };
    let report = worker::jobs::access_notices::access_notices(&ctx, at())
        .await
        .unwrap();
    assert_eq!(report.told, 4);
    let again = worker::jobs::access_notices::access_notices(&ctx, at())
        .await
        .unwrap();
    assert_eq!(again.told, 0, "told once");
    let emails = outbox::Entity::find().all(&db).await.unwrap();
    assert_eq!(emails.len(), 4);
    let to_qa = emails
        .iter()
        .find(|e| e.to_addrs.contains("qa@acme.test"))
        .unwrap();
    assert!(
        to_qa
            .text_body
            .contains("https://cmo.example.com/password-reset")
    );
    assert!(to_qa.text_body.contains("no longer works") && to_qa.text_body.contains("revoked"));
    assert!(
        !emails
            .iter()
            .any(|e| e.to_addrs.contains("admin@acme.test"))
    );
    let _ = db.close().await;
}

#[actix_web::test]
async fn admin_held_credentials_end_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    admin_held_credentials_end_and_their_holders_are_told(url).await;
}

#[actix_web::test]
async fn admin_held_credentials_end_on_postgres() {
    if let Some(url) = pg::fresh_database_url().await {
        admin_held_credentials_end_and_their_holders_are_told(url).await;
    }
}
