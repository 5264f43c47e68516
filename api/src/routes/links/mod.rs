//! Pages people reach from email links (HTML, never JSON).

pub mod ack;
pub mod unsubscribe;
