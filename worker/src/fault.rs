//! Crash points for tests: a test that must kill a real worker at an exact step (a tick
//! claimed, its work not yet done) names the step in `CMO_TEST_ABORT_AT`, and the process
//! aborts there: no cleanup, no commit, as a power cut would. Honoured only with the
//! test-only `CMO_ALLOW_TEST_CLOCK=1`, like the test clock; inert otherwise.

use std::sync::OnceLock;

static ABORT_AT: OnceLock<Option<String>> = OnceLock::new();

/// Aborts the process when a test asked for a crash at `point`.
pub fn point(point: &str) {
    let armed = ABORT_AT.get_or_init(|| {
        entity::clock::test_clock_allowed()
            .then(|| std::env::var("CMO_TEST_ABORT_AT").ok())
            .flatten()
    });
    if armed.as_deref() == Some(point) {
        eprintln!("cmo-worker: test crash point {point:?} reached; aborting");
        std::process::abort();
    }
}
