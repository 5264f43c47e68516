//! The emails people receive and the small landing pages their links open. Each email is
//! a folder under `templates/` (`subject.txt`, `body.txt`, `body.html`) rendered with
//! minijinja: HTML auto-escaped, plain text readable in any mail client. Both binaries
//! render: the api queues notices inside the transaction of a change and previews the
//! digest; the worker queues pages, reminders and digests. Domain queries stay in
//! `entity`; this crate only words and lays out what they found.

pub mod digest;
pub mod escalation;
pub mod notification;
pub mod reader;
pub mod record_page;
pub mod reminder;
pub mod smtp;
pub mod words;

pub use reader::Reader;
pub use record_page::{PAGE_CSS, RecordPage, record_page};

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use entity::outbox::{self, Draft, Email};
use minijinja::Environment;
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;

pub use entity::schedule::local_time;

/// Every template, compiled into the binary. A test renders each email.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "digest/subject.txt",
        include_str!("../templates/digest/subject.txt"),
    ),
    (
        "digest/body.txt",
        include_str!("../templates/digest/body.txt"),
    ),
    (
        "digest/body.html",
        include_str!("../templates/digest/body.html"),
    ),
    (
        "reminder/subject.txt",
        include_str!("../templates/reminder/subject.txt"),
    ),
    (
        "reminder/body.txt",
        include_str!("../templates/reminder/body.txt"),
    ),
    (
        "reminder/body.html",
        include_str!("../templates/reminder/body.html"),
    ),
    (
        "notice/subject.txt",
        include_str!("../templates/notice/subject.txt"),
    ),
    (
        "notice/body.txt",
        include_str!("../templates/notice/body.txt"),
    ),
    (
        "notice/body.html",
        include_str!("../templates/notice/body.html"),
    ),
    (
        "escalation_page/subject.txt",
        include_str!("../templates/escalation_page/subject.txt"),
    ),
    (
        "escalation_page/body.txt",
        include_str!("../templates/escalation_page/body.txt"),
    ),
    (
        "escalation_page/body.html",
        include_str!("../templates/escalation_page/body.html"),
    ),
    (
        "escalation_notice/subject.txt",
        include_str!("../templates/escalation_notice/subject.txt"),
    ),
    (
        "escalation_notice/body.txt",
        include_str!("../templates/escalation_notice/body.txt"),
    ),
    (
        "escalation_notice/body.html",
        include_str!("../templates/escalation_notice/body.html"),
    ),
    (
        "notification/subject.txt",
        include_str!("../templates/notification/subject.txt"),
    ),
    (
        "notification/body.txt",
        include_str!("../templates/notification/body.txt"),
    ),
    (
        "notification/body.html",
        include_str!("../templates/notification/body.html"),
    ),
    (
        "pages/landing.html",
        include_str!("../templates/pages/landing.html"),
    ),
    (
        "pages/form.html",
        include_str!("../templates/pages/form.html"),
    ),
    (
        "pages/account.html",
        include_str!("../templates/pages/account.html"),
    ),
    (
        "pages/record.html",
        include_str!("../templates/pages/record.html"),
    ),
];

static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();

fn environment() -> &'static Environment<'static> {
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        // Auto-escaping follows the extension: `.html` escapes, `.txt` does not.
        for (name, source) in TEMPLATES {
            if let Err(err) = env.add_template(name, source) {
                tracing::error!(%err, name, "template does not compile");
            }
        }
        env
    })
}

#[derive(Debug, thiserror::Error)]
#[error("template {name}: {source}")]
pub struct RenderError {
    name: String,
    source: minijinja::Error,
}

pub(crate) fn render_template<S: Serialize>(
    name: &str,
    context: &S,
) -> Result<String, RenderError> {
    environment()
        .get_template(name)
        .and_then(|t| t.render(context))
        .map_err(|source| RenderError {
            name: name.to_string(),
            source,
        })
}

/// Renders the email in folder `name` with `context`. The subject is one line whatever
/// the data holds (a title with a line break must not add a header).
pub fn render<S: Serialize>(name: &str, context: &S) -> Result<Email, RenderError> {
    let subject = render_template(&format!("{name}/subject.txt"), context)?;
    Ok(Email {
        subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
        text_body: render_template(&format!("{name}/body.txt"), context)?,
        html_body: render_template(&format!("{name}/body.html"), context)?,
    })
}

/// The domain of every Message-ID this installation writes: the host of its public base
/// URL, the same for the api and the worker, so one escalation's emails thread alike.
pub fn message_domain(base_url: &str) -> String {
    let host = base_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ':']).next())
        .filter(|h| !h.is_empty());
    host.unwrap_or("localhost").to_string()
}

/// Queues `draft` in the caller's transaction (see [`outbox::enqueue`]), its Message-ID
/// in this installation's [`message_domain`]. Returns whether a row was written.
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    draft: Draft,
    now: DateTime<Utc>,
    base_url: &str,
) -> Result<bool, DbErr> {
    outbox::enqueue(conn, draft, now, &message_domain(base_url)).await
}

/// Queues `email` to one reader (in the caller's transaction), with the link that stops
/// this kind of email as its `List-Unsubscribe` header when there is one. Returns
/// whether a row was written (`dedupe` not queued before).
pub async fn enqueue_to<C: ConnectionTrait>(
    conn: &C,
    reader: &Reader,
    email: Email,
    unsubscribe: Option<String>,
    dedupe: String,
    (now, base_url): (DateTime<Utc>, &str),
) -> Result<bool, DbErr> {
    let draft = Draft {
        list_unsubscribe: unsubscribe,
        ..Draft::new(dedupe, vec![reader.email.clone()], email)
    };
    enqueue(conn, draft, now, base_url).await
}

/// A short notice email: subject, headline, paragraphs, a link.
pub fn notice(
    subject: &str,
    headline: &str,
    paragraphs: &[String],
    link: Option<&str>,
) -> Result<Email, RenderError> {
    #[derive(Serialize)]
    struct Context<'a> {
        subject: &'a str,
        headline: &'a str,
        paragraphs: &'a [String],
        link: Option<&'a str>,
    }
    render(
        "notice",
        &Context {
            subject,
            headline,
            paragraphs,
            link,
        },
    )
}

/// A small standalone HTML page, the landing of an email link (unsubscribe,
/// acknowledgement): a title, a message and optionally a confirming form.
pub fn page(title: &str, message: &str, form: Option<(&str, &str)>) -> String {
    page_with_link(title, message, form, None)
}

/// [`page`] with a link under the message (`href`, text).
pub fn page_with_link(
    title: &str,
    message: &str,
    form: Option<(&str, &str)>,
    link: Option<(&str, &str)>,
) -> String {
    #[derive(Serialize)]
    struct Page<'a> {
        title: &'a str,
        message: &'a str,
        form_action: Option<&'a str>,
        button: Option<&'a str>,
        link_href: Option<&'a str>,
        link_text: Option<&'a str>,
    }
    let context = Page {
        title,
        message,
        form_action: form.map(|f| f.0),
        button: form.map(|f| f.1),
        link_href: link.map(|l| l.0),
        link_text: link.map(|l| l.1),
    };
    render_template("pages/landing.html", &context).unwrap_or_else(|err| {
        tracing::error!(%err, "page template failed");
        format!(
            "<!DOCTYPE html><title>{0}</title><p>{0}</p>",
            title.replace('<', "&lt;")
        )
    })
}

/// One input of a [`form_page`].
#[derive(Debug, Clone, Serialize)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    /// `email`, `password`, `text`, `textarea` (up to 500 characters), `checkbox` or `hidden`.
    pub kind: &'static str,
    pub value: String,
    pub autocomplete: &'static str,
    pub required: bool,
    pub minlength: Option<usize>,
}

/// A link under a [`form_page`]'s button.
#[derive(Debug, Clone, Serialize)]
pub struct PageLink {
    pub href: String,
    pub text: String,
}

/// A page with a form people fill in (sign-in, choosing a password): plain HTML that
/// works without JavaScript, on a phone too.
#[derive(Debug, Clone, Serialize)]
pub struct FormPage {
    pub title: String,
    pub intro: Option<String>,
    pub error: Option<String>,
    pub action: String,
    pub fields: Vec<Field>,
    pub button: &'static str,
    pub links: Vec<PageLink>,
}

pub fn form_page(form: &FormPage) -> String {
    render_template("pages/form.html", form).unwrap_or_else(|err| {
        tracing::error!(%err, "form template failed");
        page(&form.title, "This page cannot be shown right now.", None)
    })
}

/// One of a person's tokens on their account page.
#[derive(Debug, Clone, Serialize)]
pub struct AccountToken {
    pub name: String,
    pub prefix: String,
    pub created: String,
    pub expires: String,
    pub scope: &'static str,
}

/// The signed-in person's account page.
#[derive(Debug, Clone, Serialize)]
pub struct AccountPage {
    pub name: String,
    pub email: String,
    pub role: String,
    pub organization: String,
    pub time_zone: String,
    pub tokens: Vec<AccountToken>,
    /// The browser's form token, for the sign-out form.
    pub csrf: String,
}

pub fn account_page(account: &AccountPage) -> String {
    render_template("pages/account.html", account).unwrap_or_else(|err| {
        tracing::error!(%err, "account template failed");
        page("Your account", "This page cannot be shown right now.", None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        for (name, _) in TEMPLATES {
            assert!(environment().get_template(name).is_ok(), "{name}");
        }
    }

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

    #[test]
    fn subjects_stay_on_one_line() {
        let email = notice("Agreement\r\nBcc: x@evil.test expires", "h", &[], None).unwrap();
        assert_eq!(email.subject, "Agreement Bcc: x@evil.test expires");
    }

    #[test]
    fn message_domains_come_from_the_base_url() {
        assert_eq!(
            message_domain("https://cmo.example.com/x"),
            "cmo.example.com"
        );
        assert_eq!(message_domain("http://127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(message_domain("nonsense"), "localhost");
    }
}
