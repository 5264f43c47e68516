//! The write transaction of a request, and the answer it commits with.
//!
//! A POST made with an `Idempotency-Key` is remembered in the same transaction as the
//! change it makes: [`WriteTxn::begin`] inserts the key's record first (so a concurrent
//! duplicate waits on it and then replays the answer), and [`WriteTxn::respond`] stores
//! the answer and commits both at once. A request killed before its commit leaves no
//! trace, so its retry runs at once and runs the change once; a request killed after it
//! left its answer, so the retry replays it. There is no moment where the change is
//! stored and its key is not.
//!
//! The wrapper has no plain `commit`: a handler that began it can only end with an
//! answer (or drop it, which rolls back).

use std::ops::Deref;
use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, Statement,
};
use serde::Serialize;

use crate::auth::AuthContext;
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{self, Claim};
use crate::state::AppState;

pub struct WriteTxn {
    txn: DatabaseTransaction,
    /// The request's `Idempotency-Key`, when this transaction holds it.
    claim: Option<Arc<Claim>>,
}

impl WriteTxn {
    /// Begins the request's write transaction (one writer at a time on SQLite); with an
    /// `Idempotency-Key` not yet taken, its record is the first row written.
    pub async fn begin(state: &AppState, ctx: &AuthContext) -> ApiResult<Self> {
        let txn = entity::db::begin_write(&state.db).await?;
        let claim = match ctx.idempotency.clone() {
            Some(claim) if claim.take() => {
                idempotency::hold(&txn, &claim).await?;
                Some(claim)
            }
            _ => None,
        };
        Ok(Self { txn, claim })
    }

    /// Commits the change with `body` as its answer (remembered for a retry when the
    /// request carries a key) and returns that answer.
    pub async fn respond<T: Serialize>(
        self,
        status: StatusCode,
        body: &T,
    ) -> ApiResult<HttpResponse> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ApiError::internal(format!("unserializable answer: {e}")))?;
        self.commit_answer(status, Some(&bytes)).await?;
        Ok(HttpResponse::build(status)
            .content_type(mime_json())
            .body(bytes))
    }

    /// Commits the change with an answer that has no body (204).
    pub async fn respond_empty(self, status: StatusCode) -> ApiResult<HttpResponse> {
        self.commit_answer(status, None).await?;
        Ok(HttpResponse::build(status).finish())
    }

    async fn commit_answer(self, status: StatusCode, body: Option<&[u8]>) -> ApiResult<()> {
        let Self { txn, claim } = self;
        if let Some(claim) = &claim {
            let content_type = body.map(|_| mime_json());
            idempotency::answer(&txn, claim, status, content_type, body).await?;
        }
        entity::ops::fault::point("request_before_commit");
        txn.commit().await?;
        entity::ops::fault::point("request_after_commit");
        if let Some(claim) = claim {
            claim.answered();
        }
        Ok(())
    }
}

fn mime_json() -> &'static str {
    "application/json"
}

impl Deref for WriteTxn {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

/// Queries run in the transaction, as on a `DatabaseTransaction`.
#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }
    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }
    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }
    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }
    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }
}
