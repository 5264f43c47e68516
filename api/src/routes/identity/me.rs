//! Who am I?

use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthContext;
use crate::views::identity::{OrganizationView, TokenView, UserView};

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: UserView,
    pub organization: OrganizationView,
    /// The token this request was made with.
    pub token: TokenView,
}

/// The caller: user, organization and the token in use.
#[utoipa::path(
    tag = "users",
    responses((status = 200, description = "The authenticated caller", body = Me))
)]
#[get("/me")]
pub async fn get_me(ctx: AuthContext) -> web::Json<Me> {
    web::Json(Me {
        user: UserView::from(&ctx.user),
        organization: OrganizationView::from(&ctx.org),
        token: TokenView::from(&ctx.token),
    })
}
