//! Signed tokens for links in emails (unsubscribe; acknowledgement later): a purpose, a
//! subject and an optional expiry, with an HMAC-SHA256 over all three so a token minted
//! for one purpose or one member cannot be edited into another. Pure functions; the key
//! comes from [`crate::link_secret`].

use chrono::{DateTime, Utc};
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
