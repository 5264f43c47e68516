//! A person (or service account) belonging to exactly one organization.

use crate::enums::Role;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    /// Lower-cased; unique within the organization.
    pub email: String,
    pub display_name: String,
    pub role: Role,
    /// IANA time zone name used for the emails this user receives.
    pub time_zone: String,
    /// For the escalation call tree (E.164 or local format, as the person gives it).
    pub phone: Option<String>,
    /// Argon2 PHC string of the password the person chose themselves (at their
    /// invitation or a reset); `None` until then. Nobody else ever sets it.
    pub password_hash: Option<String>,
    pub active: bool,
    /// An integration (ERP, LIMS, dashboard), not a person: holds tokens an admin
    /// creates, never signs, never signs in.
    pub is_service_account: bool,
    /// Set when the person must be told how their access changed (`tokens_revoked`,
    /// `password_expired`); the worker emails them and clears it.
    pub access_notice: Option<String>,
    /// When the person certified that their electronic signature is the legally binding
    /// equivalent of their handwritten one (once; needed before their first signature).
    pub signature_certified_at: Option<DateTimeUtc>,
    /// The generation of the person's calendar feed URL: rotating moves past it, and
    /// only a URL of the current generation opens the feed.
    pub calendar_generation: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id"
    )]
    Organization,
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// Emails compare case-insensitively; store them trimmed and lower-cased.
pub fn normalize_email(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// A deliberately simple shape check: one `@`, a non-empty local part, a domain with a dot,
/// no whitespace. Deliverability is the SMTP server's business.
pub fn is_plausible_email(email: &str) -> bool {
    // A bare addr-spec in its dot-atom form, as mail is sent to it: `a,b@x.test` or
    // `x.test<redirect@evil.test>` would be read by the mailer as other addresses.
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let dot_atom = |s: &str, allowed: &dyn Fn(char) -> bool| {
        !s.is_empty()
            && s.split('.')
                .all(|part| !part.is_empty() && part.chars().all(allowed))
    };
    let label = |c: char| c.is_ascii_alphanumeric() || c == '-';
    email.len() <= 254
        && local.len() <= 64
        && dot_atom(local, &atext)
        && domain.contains('.')
        && dot_atom(domain, &label)
        && domain
            .split('.')
            .all(|l| !l.starts_with('-') && !l.ends_with('-'))
}

/// Accounts whose stored email is not a bare address (written before addresses were
/// checked strictly): mail to them is refused or misrouted. Both binaries report them at
/// start, so an admin corrects them; nothing is changed automatically.
pub async fn unmailable<C: sea_orm::ConnectionTrait>(
    conn: &C,
) -> Result<Vec<(i64, String)>, DbErr> {
    use sea_orm::QuerySelect;
    let all: Vec<(i64, String)> = Entity::find()
        .select_only()
        .column(Column::Id)
        .column(Column::Email)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(all
        .into_iter()
        .filter(|(_, email)| !is_plausible_email(email))
        .collect())
}

/// Minimum password policy for signing passwords.
pub const MIN_PASSWORD_LEN: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_to_lower_case() {
        assert_eq!(normalize_email("  QA.Lead@Acme.Test "), "qa.lead@acme.test");
    }

    #[test]
    fn plausible_emails_are_accepted_and_garbage_is_not() {
        assert!(is_plausible_email("qa@acme.test"));
        assert!(!is_plausible_email("qa@acme"));
        assert!(!is_plausible_email("@acme.test"));
        assert!(!is_plausible_email("qa@@acme.test"));
        assert!(!is_plausible_email("q a@acme.test"));
        assert!(!is_plausible_email("qa@.test"));
        assert!(!is_plausible_email("no-at-sign"));
        assert!(!is_plausible_email("nul\u{0}@acme.test"));
        for smuggled in [
            "a,b@x.test",
            "victim.test<redirect@evil.test>",
            "\"quoted\"@x.test",
            "a;b@x.test",
            "a@x.test,b@y.test",
            "(comment)a@x.test",
            ".a@x.test",
            "a..b@x.test",
            "a@-x.test",
            "a@x_y.test",
        ] {
            assert!(!is_plausible_email(smuggled), "{smuggled}");
        }
        assert!(is_plausible_email("first.o'brien+cmo@sub.acme-bio.test"));
    }
}
