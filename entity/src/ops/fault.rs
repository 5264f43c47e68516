//! Crash points for tests: a test that must kill a real process at an exact step (a
//! worker's tick claimed, its work not yet done; a request's change written, not yet
//! committed) names the step in `CMO_TEST_ABORT_AT`, and the process aborts there: no
//! cleanup, no commit, as a power cut would. Honoured only with the test-only
//! `CMO_ALLOW_TEST_CLOCK=1`, like the test clock; inert otherwise.

use std::sync::OnceLock;

static ABORT_AT: OnceLock<Option<String>> = OnceLock::new();

/// Aborts the process when a test asked for a crash at `point`.
pub fn point(point: &str) {
    let armed = ABORT_AT.get_or_init(|| {
        crate::clock::test_clock_allowed()
            .then(|| std::env::var("CMO_TEST_ABORT_AT").ok())
            .flatten()
    });
    if armed.as_deref() == Some(point) {
        let process = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        eprintln!("{process}: test crash point {point:?} reached; aborting");
        std::process::abort();
    }
}
