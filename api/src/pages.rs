//! HTTP responses for pages people reach from email links (the page bodies themselves
//! are rendered by the `mail` crate, next to the emails that carry the links).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get};

pub use mail::page;

/// What a page may load and do: this site's stylesheet and nothing else (no script, no
/// inline style), forms posting here only, never inside a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The response for a page: no caching and no referrer (a link's URL holds its token),
/// the strict [`CONTENT_SECURITY_POLICY`], no framing, no content sniffing.
pub fn html_response(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}

/// The pages' stylesheet (a day in caches: it changes only with a release).
#[utoipa::path(
    tag = "pages",
    security(()),
    responses((status = 200, description = "The stylesheet of every page", body = String, content_type = "text/css"))
)]
#[get("/assets/page.css")]
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(mail::PAGE_CSS)
}

/// 503: the change could not be made now; nothing was changed.
pub fn try_again(detail: &str) -> HttpResponse {
    html_response(
        StatusCode::SERVICE_UNAVAILABLE,
        page(
            "Please try again",
            &format!("{detail} Nothing was changed."),
            None,
        ),
    )
}
