//! HTTP responses for pages people reach from email links (the page bodies themselves
//! are rendered by the `mail` crate, next to the emails that carry the links).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

pub use mail::page;

/// The response for a page reached from an email link: no caching and no referrer, since
/// the URL holds a token.
pub fn html_response(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(body)
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
