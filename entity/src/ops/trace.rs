//! W3C trace context: the trace a request belongs to, readable anywhere on its task
//! (the domain events it emits keep it, so the webhooks they cause carry it on).

use std::future::Future;

tokio::task_local! {
    static TRACE_ID: String;
}

/// The trace id of the request being served on this task, if any.
pub fn current() -> Option<String> {
    TRACE_ID.try_with(Clone::clone).ok()
}

pub async fn scope<F: Future>(trace_id: String, fut: F) -> F::Output {
    TRACE_ID.scope(trace_id, fut).await
}

/// The trace id of a `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), when it is
/// well formed and not all zeros; lower-case hex.
pub fn trace_id_of(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0')
        && (version != "00" || parts.next().is_none());
    valid.then(|| trace.to_ascii_lowercase())
}

/// A new random trace id (32 lower-case hex digits).
pub fn new_trace_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A `traceparent` header continuing `trace_id` with a new span (sampled).
pub fn traceparent(trace_id: &str) -> String {
    format!(
        "00-{trace_id}-{}-01",
        hex::encode(rand::random::<[u8; 8]>())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_gives_its_trace_id_and_bad_ones_none() {
        assert_eq!(
            trace_id_of("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id_of(bad), None, "{bad}");
        }
        let id = new_trace_id();
        assert_eq!(trace_id_of(&traceparent(&id)), Some(id));
    }
}
