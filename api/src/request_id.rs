//! The request id of the request being served, readable anywhere on its task.

use std::future::Future;

tokio::task_local! {
    static REQUEST_ID: String;
}

pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

pub async fn scope<F: Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// Accepts a caller's `X-Request-Id` when it is at most 128 characters of letters,
/// digits and `-_.:` (what request ids, UUIDs and trace ids are made of), else makes
/// one: it is written into the audit trail and logs, which must not carry markup,
/// quotes or separators from outside.
pub fn accept_or_generate(incoming: Option<&str>) -> String {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.:".contains(&b);
    match incoming {
        Some(id) if !id.is_empty() && id.len() <= 128 && id.bytes().all(allowed) => id.to_string(),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_incoming_id_is_kept() {
        assert_eq!(accept_or_generate(Some("abc-123")), "abc-123");
    }

    #[test]
    fn a_missing_or_hostile_id_is_replaced() {
        assert_eq!(accept_or_generate(None).len(), 36);
        assert_eq!(accept_or_generate(Some("a b")).len(), 36);
        assert_eq!(accept_or_generate(Some(&"x".repeat(500))).len(), 36);
        for hostile in ["<script>", "a\"b", "a,b", "x;y", "id'--"] {
            assert_eq!(accept_or_generate(Some(hostile)).len(), 36, "{hostile}");
        }
    }
}
