//! Email contents shared by the api (previews, unsubscribe pages) and the worker (what it
//! queues): templates rendered with minijinja, HTML auto-escaped, plain text readable in
//! any mail client.

pub mod digest;
pub mod escalation;
pub mod reminder;

use std::sync::OnceLock;

use minijinja::Environment;
use serde::Serialize;

static TEMPLATES: OnceLock<Environment<'static>> = OnceLock::new();

fn templates() -> &'static Environment<'static> {
    TEMPLATES.get_or_init(|| {
        let mut env = Environment::new();
        // Auto-escaping follows the extension: `.html` escapes, `.txt` does not.
        for (name, source) in [
            ("digest.txt", include_str!("../../templates/digest.txt")),
            ("digest.html", include_str!("../../templates/digest.html")),
            ("reminder.txt", include_str!("../../templates/reminder.txt")),
            (
                "reminder.html",
                include_str!("../../templates/reminder.html"),
            ),
            ("page.html", include_str!("../../templates/page.html")),
            ("notice.txt", include_str!("../../templates/notice.txt")),
            ("notice.html", include_str!("../../templates/notice.html")),
            (
                "escalation_page.txt",
                include_str!("../../templates/escalation_page.txt"),
            ),
            (
                "escalation_page.html",
                include_str!("../../templates/escalation_page.html"),
            ),
            (
                "escalation_notice.txt",
                include_str!("../../templates/escalation_notice.txt"),
            ),
            (
                "escalation_notice.html",
                include_str!("../../templates/escalation_notice.html"),
            ),
        ] {
            if let Err(err) = env.add_template(name, source) {
                // Templates are compiled into the binary; a test renders each one.
                tracing::error!(%err, name, "email template does not compile");
            }
        }
        env
    })
}

#[derive(Debug, thiserror::Error)]
#[error("template {name}: {source}")]
pub struct RenderError {
    name: &'static str,
    source: minijinja::Error,
}

/// A time as email readers see it: in the program's zone, e.g. `Mon 30 Nov 2026 07:00`.
pub fn local_time(tz: chrono_tz::Tz, at: chrono::DateTime<chrono::Utc>) -> String {
    at.with_timezone(&tz)
        .format("%a %d %b %Y %H:%M")
        .to_string()
}

/// Renders template `name` with `context`.
pub fn render<S: Serialize>(name: &'static str, context: &S) -> Result<String, RenderError> {
    templates()
        .get_template(name)
        .and_then(|t| t.render(context))
        .map_err(|source| RenderError { name, source })
}

/// The response for a page reached from an email link: no caching and no referrer, since
/// the URL holds a token.
pub fn html_response(status: actix_web::http::StatusCode, body: String) -> actix_web::HttpResponse {
    actix_web::HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(body)
}

/// 503: the change could not be made now; nothing was changed.
pub fn try_again(detail: &str) -> actix_web::HttpResponse {
    html_response(
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        page(
            "Please try again",
            &format!("{detail} Nothing was changed."),
            None,
        ),
    )
}

/// A short notice email: headline, paragraphs, a link. `(text, html)`.
pub fn notice(
    headline: &str,
    paragraphs: &[String],
    link: Option<&str>,
) -> Result<(String, String), RenderError> {
    #[derive(Serialize)]
    struct Context<'a> {
        headline: &'a str,
        paragraphs: &'a [String],
        link: Option<&'a str>,
    }
    let c = Context {
        headline,
        paragraphs,
        link,
    };
    Ok((render("notice.txt", &c)?, render("notice.html", &c)?))
}

/// A small standalone HTML page (unsubscribe and, later, acknowledgement links).
pub fn page(title: &str, message: &str, form: Option<(&str, &str)>) -> String {
    #[derive(Serialize)]
    struct Page<'a> {
        title: &'a str,
        message: &'a str,
        form_action: Option<&'a str>,
        button: Option<&'a str>,
    }
    let context = Page {
        title,
        message,
        form_action: form.map(|f| f.0),
        button: form.map(|f| f.1),
    };
    render("page.html", &context).unwrap_or_else(|err| {
        tracing::error!(%err, "page template failed");
        format!(
            "<!DOCTYPE html><title>{0}</title><p>{0}</p>",
            title.replace('<', "&lt;")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let html = page(
            "Unsubscribed",
            "<script>alert(1)</script> & more",
            Some(("/x?a=1&b=2", "Confirm")),
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; more"));
        assert!(html.contains("action=\"&#x2f;x?a=1&amp;b=2\""));
        assert!(!html.contains("<script>"));
    }
}
