//! Webhook subscriptions: an organization's endpoint for domain events. The rules for
//! an acceptable URL live here (pure, tested).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_subscriptions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    pub url: String,
    /// JSON array of event types.
    pub event_types: String,
    /// HMAC key for `X-Cmo-Signature`; shown once at creation.
    pub secret: String,
    pub active: bool,
    pub consecutive_failures: i32,
    pub disabled_reason: Option<String>,
    pub created_by_user_id: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub const MAX_URL_LEN: usize = 2000;

/// Checks a receiver URL: absolute `https://` (plain `http://` only to a loopback host,
/// for development and tests), no credentials, no fragment, at most 2000 characters.
pub fn check_url(raw: &str) -> Result<(), String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!("at most {MAX_URL_LEN} characters"));
    }
    let parsed = url::Url::parse(raw).map_err(|e| format!("not an absolute URL: {e}"))?;
    let host = parsed.host_str().ok_or("the URL has no host")?;
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err("https is required (plain http only to a loopback address)".into()),
        other => return Err(format!("{other}: only https (or http to loopback)")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("no credentials in the URL: verify the X-Cmo-Signature instead".into());
    }
    if parsed.fragment().is_some() {
        return Err("no fragment (#…) in the URL".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_must_be_https_except_on_loopback() {
        assert!(check_url("https://erp.example.com/hooks/cmo").is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("http://[::1]:9000/hook").is_ok());
        assert!(check_url("http://localhost/hook").is_ok());
        assert!(check_url("http://erp.example.com/hook").is_err());
        assert!(check_url("ftp://erp.example.com/hook").is_err());
        assert!(check_url("https://user:pw@erp.example.com/").is_err());
        assert!(check_url("https://erp.example.com/#x").is_err());
        assert!(check_url("/relative").is_err());
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(2000))).is_err());
    }
}
