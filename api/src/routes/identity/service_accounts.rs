//! Service accounts: the identity of an integration (ERP, LIMS, a dashboard). An admin
//! creates one and its tokens (scoped, expiring); it never signs in, never signs, and
//! the audit trail marks what it does (`actor_kind: service_account`).

use actix_web::{HttpResponse, post, web};
use entity::Role;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::AuthContext;
use crate::error::ApiResult;
use crate::provisioning::{self, NewUser};
use crate::routes::{ApiJson, Checks, Validate};
use crate::state::AppState;
use crate::views::identity::UserView;
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"display_name": "LIMS (LabWare) integration", "role": "contributor"}))]
pub struct CreateServiceAccount {
    /// What the integration is, as the audit trail names it.
    #[schema(min_length = 1, max_length = 200)]
    pub display_name: String,
    /// What it may do; never `admin`.
    pub role: Role,
}

impl Validate for CreateServiceAccount {
    fn validate(&self, c: &mut Checks) {
        c.text("display_name", &self.display_name, 1, 200);
        if self.role == Role::Admin {
            c.fail(
                "role",
                "not_for_service_accounts",
                "an integration does not administer: give it program_manager, quality, contributor or viewer",
            );
        }
    }
}

/// Create a service account (admins only); then create its tokens with `POST /tokens`
/// and its `user_id`. It has no password: it cannot sign in or sign.
#[utoipa::path(
    tag = "users",
    request_body = CreateServiceAccount,
    responses(
        (status = 201, description = "The service account", body = UserView),
        (status = 403, description = "Caller is not an admin", body = crate::error::Problem)
    )
)]
#[post("/service-accounts")]
pub async fn create_service_account(
    state: web::Data<AppState>,
    ctx: AuthContext,
    body: ApiJson<CreateServiceAccount>,
) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    let b = body.into_inner();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    // A unique, undeliverable address: nothing is ever emailed to an integration.
    let handle = crate::secrets::new_link_secret();
    let created = provisioning::create_user(
        &txn,
        &ctx.actor(state.clock.now()),
        NewUser {
            email: format!("service-{}@{}.service.invalid", &handle[..16], ctx.org_id()),
            display_name: b.display_name,
            role: b.role,
            time_zone: "UTC".to_string(),
            phone: None,
            password_hash: None,
            is_service_account: true,
        },
    )
    .await?;
    txn.respond(StatusCode::CREATED, &UserView::from(&created))
        .await
}
