//! Signed tokens for links in emails (record pages, unsubscribe, acknowledgement): a purpose, a
//! subject and an optional expiry, with an HMAC-SHA256 over all three so a token minted
//! for one purpose or one member cannot be edited into another. Pure functions; the key
//! comes from [`crate::link_secret`]. [`Link`] is the one place that knows each link's
//! format: the worker mints them, the api verifies them.

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub purpose: String,
    pub subject: String,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is malformed or incomplete")]
    Malformed,
    #[error("the link's signature does not match (it was altered or not issued here)")]
    BadSignature,
    #[error("the link is for something else")]
    WrongPurpose,
    #[error("the link expired at {0}")]
    Expired(DateTime<Utc>),
}

/// Purpose of digest unsubscribe links.
pub const UNSUBSCRIBE_PURPOSE: &str = "unsubscribe-digest";
/// Purpose of escalation acknowledgement links.
pub const ACK_PURPOSE: &str = "ack-escalation";
/// How long an acknowledgement link works.
pub const ACK_LINK_TTL: TimeDelta = TimeDelta::hours(24);
/// Purpose of personal links to a record's page.
pub const VIEW_PURPOSE: &str = "view-record";
/// How long a personal page link opens its page without signing in.
pub const VIEW_LINK_TTL: TimeDelta = TimeDelta::days(7);

/// A record with a page for people, which emails link to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageRecord {
    Program,
    Milestone,
    ActionItem,
    Deviation,
    Capa,
    ChangeRequest,
    Escalation,
}

impl PageRecord {
    pub const ALL: [PageRecord; 7] = [
        PageRecord::Program,
        PageRecord::Milestone,
        PageRecord::ActionItem,
        PageRecord::Deviation,
        PageRecord::Capa,
        PageRecord::ChangeRequest,
        PageRecord::Escalation,
    ];

    /// The first segment of its page's path (as in the API's paths).
    pub fn segment(self) -> &'static str {
        match self {
            PageRecord::Program => "programs",
            PageRecord::Milestone => "milestones",
            PageRecord::ActionItem => "action-items",
            PageRecord::Deviation => "deviations",
            PageRecord::Capa => "capas",
            PageRecord::ChangeRequest => "change-requests",
            PageRecord::Escalation => "escalations",
        }
    }

    pub fn from_segment(segment: &str) -> Option<PageRecord> {
        PageRecord::ALL.into_iter().find(|r| r.segment() == segment)
    }

    /// The page of record `id`: `/deviations/41`.
    pub fn path(self, id: i64) -> String {
        format!("/{}/{id}", self.segment())
    }
}

/// What a link in an email does, and for whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Stop the weekly digest of one team membership. Never expires: an old digest's
    /// link must still work.
    Unsubscribe { member_id: i64 },
    /// Switch off one kind of notification for one team membership. Never expires.
    Mute {
        member_id: i64,
        kind: crate::notification::NotificationKind,
    },
    /// Acknowledge an escalation as the paged person, from page number `page_seq`.
    Ack {
        escalation_id: i64,
        user_id: i64,
        page_seq: i32,
    },
    /// Open a record's page as the person the email was sent to, without signing in
    /// (until [`VIEW_LINK_TTL`]; then through sign-in, to the same page).
    View {
        record: PageRecord,
        id: i64,
        user_id: i64,
    },
}

impl Link {
    pub fn purpose(&self) -> &'static str {
        match self {
            Link::Unsubscribe { .. } | Link::Mute { .. } => UNSUBSCRIBE_PURPOSE,
            Link::Ack { .. } => ACK_PURPOSE,
            Link::View { .. } => VIEW_PURPOSE,
        }
    }

    fn subject(&self) -> String {
        match self {
            Link::Unsubscribe { member_id } => format!("member:{member_id}"),
            Link::Mute { member_id, kind } => format!("member:{member_id}:kind:{}", kind.wire()),
            Link::Ack {
                escalation_id,
                user_id,
                page_seq,
            } => format!("escalation:{escalation_id}:user:{user_id}:page:{page_seq}"),
            Link::View {
                record,
                id,
                user_id,
            } => format!("{}:{id}:user:{user_id}", record.segment()),
        }
    }

    fn path(&self) -> String {
        match self {
            Link::Unsubscribe { .. } | Link::Mute { .. } => "/api/v1/unsubscribe".to_string(),
            Link::Ack { .. } => "/api/v1/escalations/ack".to_string(),
            Link::View { record, id, .. } => record.path(*id),
        }
    }

    /// The link's subject read back, for a token of `purpose`.
    fn parse(purpose: &str, subject: &str) -> Option<Link> {
        let parts: Vec<&str> = subject.split(':').collect();
        match (purpose, parts.as_slice()) {
            (UNSUBSCRIBE_PURPOSE, ["member", m]) => Some(Link::Unsubscribe {
                member_id: m.parse().ok()?,
            }),
            (UNSUBSCRIBE_PURPOSE, ["member", m, "kind", k]) => Some(Link::Mute {
                member_id: m.parse().ok()?,
                kind: crate::notification::NotificationKind::from_wire(k)?,
            }),
            (ACK_PURPOSE, ["escalation", e, "user", u, "page", p]) => Some(Link::Ack {
                escalation_id: e.parse().ok()?,
                user_id: u.parse().ok()?,
                page_seq: p.parse().ok()?,
            }),
            (VIEW_PURPOSE, [segment, id, "user", u]) => Some(Link::View {
                record: PageRecord::from_segment(segment)?,
                id: id.parse().ok()?,
                user_id: u.parse().ok()?,
            }),
            _ => None,
        }
    }

    /// The signed URL under `base_url`.
    pub fn url(&self, key: &[u8], base_url: &str, expires_at: Option<DateTime<Utc>>) -> String {
        let token = sign(
            key,
            &Claims {
                purpose: self.purpose().to_string(),
                subject: self.subject(),
                expires_at,
            },
        );
        format!(
            "{}{}?token={token}",
            base_url.trim_end_matches('/'),
            self.path()
        )
    }

    /// Verifies `token` as a link of `purpose` (signature, purpose, expiry) and reads it.
    pub fn verify(
        key: &[u8],
        token: &str,
        purpose: &str,
        now: DateTime<Utc>,
    ) -> Result<Link, TokenError> {
        Link::verify_until(key, token, purpose, now).map(|(link, _)| link)
    }

    /// [`Link::verify`], also saying until when the link works.
    pub fn verify_until(
        key: &[u8],
        token: &str,
        purpose: &str,
        now: DateTime<Utc>,
    ) -> Result<(Link, Option<DateTime<Utc>>), TokenError> {
        let claims = verify(key, token, purpose, now)?;
        let link = Link::parse(&claims.purpose, &claims.subject).ok_or(TokenError::Malformed)?;
        Ok((link, claims.expires_at))
    }
}

fn mac(key: &[u8], payload: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    m.update(payload);
    m.finalize().into_bytes().to_vec()
}

/// `hex(payload).hex(mac)`, where payload is `purpose|subject|expiry-unix-seconds-or-0`.
pub fn sign(key: &[u8], claims: &Claims) -> String {
    let expires = claims.expires_at.map(|t| t.timestamp()).unwrap_or(0);
    let payload = format!("{}|{}|{expires}", claims.purpose, claims.subject);
    format!(
        "{}.{}",
        hex::encode(payload.as_bytes()),
        hex::encode(mac(key, payload.as_bytes()))
    )
}

/// Checks signature, purpose and expiry (in that order: nothing of a forged token is
/// trusted, not even its purpose).
pub fn verify(
    key: &[u8],
    token: &str,
    purpose: &str,
    now: DateTime<Utc>,
) -> Result<Claims, TokenError> {
    let (payload_hex, mac_hex) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = hex::decode(payload_hex).map_err(|_| TokenError::Malformed)?;
    let given = hex::decode(mac_hex).map_err(|_| TokenError::Malformed)?;
    // One spelling per token: lower-case hex as issued. Another case decodes to the same
    // bytes, and a single-use link remembered by its text would work once per spelling.
    if hex::encode(&payload) != payload_hex || hex::encode(&given) != mac_hex {
        return Err(TokenError::Malformed);
    }
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| TokenError::BadSignature)?;
    m.update(&payload);
    // Constant-time comparison.
    m.verify_slice(&given)
        .map_err(|_| TokenError::BadSignature)?;
    let payload = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
    let mut parts = payload.splitn(3, '|');
    let (Some(p), Some(subject), Some(expires)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    if p != purpose {
        return Err(TokenError::WrongPurpose);
    }
    let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
    let expires_at = if expires == 0 {
        None
    } else {
        Some(DateTime::from_timestamp(expires, 0).ok_or(TokenError::Malformed)?)
    };
    if let Some(at) = expires_at
        && now >= at
    {
        return Err(TokenError::Expired(at));
    }
    Ok(Claims {
        purpose: p.to_string(),
        subject: subject.to_string(),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn links_round_trip_and_junk_subjects_are_refused() {
        let now = at(1);
        for link in [
            Link::Unsubscribe { member_id: 42 },
            Link::Mute {
                member_id: 42,
                kind: crate::notification::NotificationKind::DueSoon,
            },
            Link::Ack {
                escalation_id: 4,
                user_id: 9,
                page_seq: 2,
            },
            Link::View {
                record: PageRecord::ChangeRequest,
                id: 12,
                user_id: 9,
            },
        ] {
            let url = link.url(b"k", "http://h/", Some(at(5)));
            let token = url.split("token=").nth(1).unwrap_or_default();
            assert!(url.starts_with(&format!("http://h{}?token=", link.path())));
            assert_eq!(Link::verify(b"k", token, link.purpose(), now), Ok(link));
        }
        for (purpose, subject) in [
            (ACK_PURPOSE, "escalation:x:user:9:page:2"),
            (ACK_PURPOSE, "member:4"),
            (UNSUBSCRIBE_PURPOSE, "member:4:extra"),
            (UNSUBSCRIBE_PURPOSE, "member:4:kind:nonsense"),
            (VIEW_PURPOSE, "invoices:4:user:9"),
            (VIEW_PURPOSE, "deviations:4:user"),
        ] {
            let token = sign(
                b"k",
                &Claims {
                    purpose: purpose.into(),
                    subject: subject.into(),
                    expires_at: None,
                },
            );
            assert_eq!(
                Link::verify(b"k", &token, purpose, now),
                Err(TokenError::Malformed),
                "{subject}"
            );
        }
    }

    #[test]
    fn a_token_has_one_spelling() {
        let link = Link::Ack {
            escalation_id: 4,
            user_id: 9,
            page_seq: 2,
        };
        let url = link.url(b"k", "http://h", None);
        let token = url.split("token=").nth(1).unwrap_or_default();
        assert!(Link::verify(b"k", token, ACK_PURPOSE, at(1)).is_ok());
        let (payload, mac) = token.split_once('.').unwrap_or_default();
        for respelled in [
            token.to_uppercase(),
            format!("{payload}.{}", mac.to_uppercase()),
            format!("{}.{mac}", payload.to_uppercase()),
        ] {
            assert_eq!(
                Link::verify(b"k", &respelled, ACK_PURPOSE, at(1)),
                Err(TokenError::Malformed),
                "{respelled}"
            );
        }
    }

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, h, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn claims(expires_at: Option<DateTime<Utc>>) -> Claims {
        Claims {
            purpose: "unsubscribe".into(),
            subject: "member:42".into(),
            expires_at,
        }
    }

    #[test]
    fn round_trip() {
        let t = sign(b"k", &claims(None));
        assert_eq!(verify(b"k", &t, "unsubscribe", at(1)), Ok(claims(None)));
        let t = sign(b"k", &claims(Some(at(5))));
        assert_eq!(
            verify(b"k", &t, "unsubscribe", at(4)),
            Ok(claims(Some(at(5))))
        );
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let m = mac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn forged_altered_expired_and_misused_tokens_are_refused() {
        let t = sign(b"k", &claims(Some(at(5))));
        assert_eq!(
            verify(b"other", &t, "unsubscribe", at(1)),
            Err(TokenError::BadSignature)
        );
        // Edit the subject inside the payload, keep the MAC.
        let (_, mac_hex) = t.split_once('.').unwrap_or_default();
        let edited = format!(
            "{}.{mac_hex}",
            hex::encode(format!("unsubscribe|member:43|{}", at(5).timestamp()))
        );
        assert_eq!(
            verify(b"k", &edited, "unsubscribe", at(1)),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(b"k", &t, "unsubscribe", at(5)),
            Err(TokenError::Expired(at(5)))
        );
        assert_eq!(
            verify(b"k", &t, "acknowledge", at(1)),
            Err(TokenError::WrongPurpose)
        );
        for junk in ["", "abc", "zz.zz", "00.", &t[..t.len() - 2]] {
            assert!(verify(b"k", junk, "unsubscribe", at(1)).is_err(), "{junk}");
        }
    }
}
