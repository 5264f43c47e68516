//! Who an email is written for. Its links open record pages as that person (a personal
//! grant, [`Link::View`]), and its times read in that person's zone. One email goes to
//! one reader: a link carries the grant of the person it was sent to, so an email with
//! two recipients would let each open pages as the other.

use chrono::{DateTime, Utc};
use entity::link_token::{Link, PageRecord, VIEW_LINK_TTL};
use entity::user;

use crate::words;

/// How a reader's links open.
#[derive(Debug, Clone)]
enum Links {
    /// Sent: each page link carries a grant for this reader until `expires_at`.
    Personal {
        key: Vec<u8>,
        base_url: String,
        expires_at: DateTime<Utc>,
    },
    /// Shown to someone before sending (a preview): plain page addresses, which open
    /// only after sign-in, as whoever signs in. A preview never holds a live grant.
    Preview { base_url: String },
}

/// The person an email is rendered for.
#[derive(Debug, Clone)]
pub struct Reader {
    pub user_id: i64,
    pub name: String,
    pub email: String,
    /// IANA zone every time in the email is read in.
    pub time_zone: String,
    links: Links,
}

impl Reader {
    /// The reader of a sent email: personal page links valid for [`VIEW_LINK_TTL`].
    pub fn personal(user: &user::Model, key: &[u8], base_url: &str, now: DateTime<Utc>) -> Self {
        Self::of(
            user,
            Links::Personal {
                key: key.to_vec(),
                base_url: base_url.trim_end_matches('/').to_string(),
                expires_at: now + VIEW_LINK_TTL,
            },
        )
    }

    /// The reader of a preview: the same words and times, links without grants.
    pub fn preview(user: &user::Model, base_url: &str) -> Self {
        Self::of(
            user,
            Links::Preview {
                base_url: base_url.trim_end_matches('/').to_string(),
            },
        )
    }

    fn of(user: &user::Model, links: Links) -> Self {
        Self {
            user_id: user.id,
            name: user.display_name.clone(),
            email: user.email.clone(),
            time_zone: user.time_zone.clone(),
            links,
        }
    }

    /// The address of a record's page for this reader.
    pub fn page(&self, record: PageRecord, id: i64) -> String {
        match &self.links {
            Links::Personal {
                key,
                base_url,
                expires_at,
            } => Link::View {
                record,
                id,
                user_id: self.user_id,
            }
            .url(key, base_url, Some(*expires_at)),
            Links::Preview { base_url } => format!("{base_url}{}", record.path(id)),
        }
    }

    /// Whether the links carry grants (a sent email) or not (a preview).
    pub fn is_preview(&self) -> bool {
        matches!(self.links, Links::Preview { .. })
    }

    /// A time in the reader's zone: "Mon 30 Nov 2026 21:40 PST".
    pub fn time(&self, at: DateTime<Utc>) -> String {
        words::zoned(&self.time_zone, at)
    }

    /// A time in the reader's zone with the site's time beside it when the site is
    /// elsewhere (when something happened on the floor).
    pub fn time_at_site(&self, site_zone: &str, at: DateTime<Utc>) -> String {
        words::zoned_with_site(&self.time_zone, site_zone, at)
    }

    /// The reader's local date of `at`.
    pub fn date(&self, at: DateTime<Utc>) -> chrono::NaiveDate {
        at.with_timezone(&entity::schedule::zone(&self.time_zone))
            .date_naive()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;
    use entity::enums::Role;
    use entity::link_token::VIEW_PURPOSE;

    pub(crate) fn user(id: i64, tz: &str) -> user::Model {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        user::Model {
            id,
            org_id: 1,
            email: format!("u{id}@acme.test"),
            display_name: format!("User {id}"),
            role: Role::Contributor,
            time_zone: tz.into(),
            phone: None,
            password_hash: None,
            active: true,
            is_service_account: false,
            access_notice: None,
            signature_certified_at: None,
            calendar_generation: 0,
            created_at: at,
            updated_at: at,
            version: 1,
        }
    }

    #[test]
    fn sent_links_grant_the_reader_and_previews_grant_nobody() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 5, 40, 0).unwrap();
        let ana = user(9, "America/Los_Angeles");
        let sent = Reader::personal(&ana, b"k", "http://h/", now);
        let url = sent.page(PageRecord::Deviation, 41);
        assert!(url.starts_with("http://h/deviations/41?token="), "{url}");
        let token = url.split("token=").nth(1).unwrap_or_default();
        assert_eq!(
            Link::verify(b"k", token, VIEW_PURPOSE, now),
            Ok(Link::View {
                record: PageRecord::Deviation,
                id: 41,
                user_id: 9
            })
        );
        assert!(Link::verify(b"k", token, VIEW_PURPOSE, now + VIEW_LINK_TTL).is_err());
        let preview = Reader::preview(&ana, "http://h");
        assert_eq!(
            preview.page(PageRecord::Deviation, 41),
            "http://h/deviations/41"
        );
        assert_eq!(sent.time(now), "Mon 30 Nov 2026 21:40 PST");
    }
}
