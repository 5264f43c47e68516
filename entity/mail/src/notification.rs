//! Notification emails (triage to the SMEs, minor closure, assignment, due soon,
//! production held or released, gate decision): one per reader, with a link to the
//! record's page that opens as them, times in their zone, and a link that switches off
//! that kind of email for their team membership.

use chrono::{DateTime, Utc};
use entity::link_token::{Link, PageRecord};
use entity::notification::{self, NotificationKind};
use entity::outbox::Email;
use entity::{team_member, user};
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;

use crate::{Reader, RenderError};

/// What a notification says; the words that depend on the reader (times) are made by
/// `paragraphs` for each one.
pub struct Notice<'a> {
    pub kind: NotificationKind,
    pub program_name: &'a str,
    pub subject: String,
    pub headline: String,
    pub paragraphs: &'a (dyn Fn(&Reader) -> Vec<String> + Sync),
    /// The record's page and the button's words ("Open the deviation").
    pub page: (PageRecord, i64),
    pub link_text: &'a str,
}

/// One reader's email; `mute_url` switches this kind off for their membership.
pub fn render(
    n: &Notice<'_>,
    reader: &Reader,
    mute_url: Option<&str>,
) -> Result<Email, RenderError> {
    #[derive(Serialize)]
    struct Context<'a> {
        subject: &'a str,
        headline: &'a str,
        program_name: &'a str,
        paragraphs: Vec<String>,
        page_url: String,
        link_text: &'a str,
        mute_url: Option<&'a str>,
        kind_description: &'static str,
    }
    crate::render(
        "notification",
        &Context {
            subject: &n.subject,
            headline: &n.headline,
            program_name: n.program_name,
            paragraphs: (n.paragraphs)(reader),
            page_url: reader.page(n.page.0, n.page.1),
            link_text: n.link_text,
            mute_url,
            kind_description: n.kind.describe(),
        },
    )
}

/// A person to notify, with their membership of the program when they have one (its
/// preferences apply and it carries the switch-off link).
pub type Recipient = (Option<team_member::Model>, user::Model);

/// Queues one email per recipient who wants this kind (in the caller's transaction);
/// `dedupe` names the occasion, the user id is added. Returns how many were queued.
pub async fn queue<C: ConnectionTrait>(
    conn: &C,
    n: &Notice<'_>,
    recipients: &[Recipient],
    dedupe: &str,
    (key, base_url): (&[u8], &str),
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let mut queued = 0;
    for (member, person) in recipients {
        if !person.active
            || member
                .as_ref()
                .is_some_and(|m| !notification::wants(m, n.kind))
        {
            continue;
        }
        let mute = member.as_ref().map(|m| {
            Link::Mute {
                member_id: m.id,
                kind: n.kind,
            }
            .url(key, base_url, None)
        });
        let reader = Reader::personal(person, key, base_url, now);
        let email =
            render(n, &reader, mute.as_deref()).map_err(|e| DbErr::Custom(e.to_string()))?;
        let key = format!("{dedupe}:user:{}", person.id);
        if crate::enqueue_to(conn, &reader, email, mute, key, (now, base_url)).await? {
            queued += 1;
        }
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::tests::user;
    use chrono::TimeZone;

    #[test]
    fn a_notice_links_its_page_and_its_switch_off() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 5, 40, 0).unwrap();
        let paragraphs = |r: &Reader| vec![format!("Held since {}.", r.time(at))];
        let n = Notice {
            kind: NotificationKind::Production,
            program_name: "ACM <101>",
            subject: "Production of ACM-101 held".into(),
            headline: "Production held".into(),
            paragraphs: &paragraphs,
            page: (PageRecord::Program, 3),
            link_text: "Open the program",
        };
        let reader = Reader::personal(&user(4, "America/Los_Angeles"), b"k", "http://h", at);
        let email = render(&n, &reader, Some("http://h/api/v1/unsubscribe?token=x")).unwrap();
        assert_eq!(email.subject, "Production of ACM-101 held");
        assert!(
            email
                .text_body
                .contains("Held since Mon 30 Nov 2026 21:40 PST.")
        );
        assert!(
            email
                .text_body
                .contains("Open the program: http://h/programs/3?token=")
        );
        assert!(email.text_body.contains(
            "You receive notices of production held or released as a member of the ACM <101> team. Stop them: http://h/api/v1/unsubscribe?token=x"
        ));
        assert!(email.html_body.contains("ACM &lt;101&gt;"));
    }
}
