//! A request's `Idempotency-Key` while it is served (carried by its `AuthContext` to the
//! write transaction that records it), apart from the middleware so that the context
//! does not depend on the middleware.

use std::sync::atomic::{AtomicU8, Ordering};

/// A request's key while it is served: which transaction holds it, and how it ended.
#[derive(Debug)]
pub struct Claim {
    pub(super) user_id: i64,
    pub(super) key: String,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) request_hash: String,
    pub(super) at: chrono::DateTime<chrono::Utc>,
    pub(super) state: AtomicU8,
}

pub(super) const OPEN: u8 = 0;
const TAKEN: u8 = 1;
pub(super) const ANSWERED: u8 = 2;
pub(super) const DUPLICATE: u8 = 3;

impl Claim {
    /// The first write transaction of the request takes the key; later ones do not.
    pub(crate) fn take(&self) -> bool {
        self.state
            .compare_exchange(OPEN, TAKEN, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    pub(crate) fn answered(&self) {
        self.state.store(ANSWERED, Ordering::SeqCst);
    }
}
