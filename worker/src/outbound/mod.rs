//! What leaves the worker: email over SMTP (or a folder, or memory in tests) and
//! webhook POSTs over HTTP.

pub mod http;
pub mod mailer;
