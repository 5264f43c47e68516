//! Sending email: SMTP (a pool of lettre connections with `TCP_NODELAY`, see
//! [`crate::outbound::smtp`]), `.eml` files in a folder (the zero-set-up default), or memory (job
//! tests that assert on what went out). One enum, so jobs do not care which.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use entity::outbox;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, header};
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

use mail::smtp::{SmtpConfig, SmtpPool};

pub enum Mailer {
    Smtp(Box<SmtpPool>),
    File(AsyncFileTransport<Tokio1Executor>),
    Memory(SentMail),
}

/// What a memory mailer sent: each message as it would go on the wire (RFC 5322).
#[derive(Debug, Clone, Default)]
pub struct SentMail(Arc<Mutex<Vec<String>>>);

impl SentMail {
    pub fn messages(&self) -> Vec<String> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("invalid SMTP URL: {0}")]
    Url(String),
    #[error("cannot create the outbox folder {0}: {1}")]
    Folder(String, std::io::Error),
}

/// Why one message was not sent.
#[derive(Debug)]
pub struct SendError {
    /// The server refused it for good (5xx) or it cannot be built: do not retry.
    pub permanent: bool,
    pub message: String,
}

impl Mailer {
    /// SMTP when `smtp_url` is given (`smtp://user:pass@host:587?tls=required`,
    /// `smtps://host:465`, `smtp://127.0.0.1:2525` for plain), else files in `folder`.
    pub fn new(smtp_url: Option<&str>, folder: PathBuf) -> Result<Self, MailerError> {
        match smtp_url {
            Some(url) => Ok(Mailer::Smtp(Box::new(SmtpPool::new(
                SmtpConfig::from_url(url).map_err(MailerError::Url)?,
            )))),
            None => {
                std::fs::create_dir_all(&folder)
                    .map_err(|e| MailerError::Folder(folder.display().to_string(), e))?;
                Ok(Mailer::File(AsyncFileTransport::<Tokio1Executor>::new(
                    folder,
                )))
            }
        }
    }

    /// A mailer that keeps what it sends, and the handle to read it.
    pub fn memory() -> (Self, SentMail) {
        let sent = SentMail::default();
        (Mailer::Memory(sent.clone()), sent)
    }

    /// How many sends may run at once (the pool size; files and memory: a few).
    pub fn parallelism(&self) -> usize {
        match self {
            Mailer::Smtp(pool) => pool.max_connections(),
            Mailer::File(_) | Mailer::Memory(_) => 4,
        }
    }

    pub async fn send(&self, from: &Mailbox, row: &outbox::Model) -> Result<(), SendError> {
        let message = build(from, row).map_err(|message| SendError {
            permanent: true,
            message,
        })?;
        match self {
            Mailer::Smtp(pool) => pool
                .send(message.envelope(), &message.formatted())
                .await
                .map_err(|e| SendError {
                    permanent: e.permanent,
                    message: e.message,
                }),
            Mailer::File(t) => t.send(message).await.map(|_| ()).map_err(|e| SendError {
                permanent: false,
                message: e.to_string(),
            }),
            Mailer::Memory(sent) => {
                let text = String::from_utf8_lossy(&message.formatted()).into_owned();
                sent.0
                    .lock()
                    .map(|mut m| m.push(text))
                    .map_err(|_| SendError {
                        permanent: false,
                        message: "memory mailer poisoned".to_string(),
                    })
            }
        }
    }
}

/// The MIME message of an outbox row: multipart plain text + HTML, its stable Message-ID.
pub fn build(from: &Mailbox, row: &outbox::Model) -> Result<Message, String> {
    let to: Vec<String> =
        serde_json::from_str(&row.to_addrs).map_err(|e| format!("bad recipient list: {e}"))?;
    let cc: Vec<String> = serde_json::from_str(&row.cc_addrs).unwrap_or_default();
    if to.is_empty() {
        return Err("no recipient".to_string());
    }
    let mut builder = Message::builder()
        .message_id(Some(row.message_id.clone()))
        .from(from.clone())
        .subject(row.subject.clone())
        .header(header::MIME_VERSION_1_0);
    for addr in &to {
        builder = builder.to(addr
            .parse::<Mailbox>()
            .map_err(|e| format!("bad recipient {addr}: {e}"))?);
    }
    for addr in &cc {
        builder = builder.cc(addr
            .parse::<Mailbox>()
            .map_err(|e| format!("bad cc {addr}: {e}"))?);
    }
    if let Some(url) = &row.list_unsubscribe {
        // RFC 2369 link plus RFC 8058 one-click: mail clients POST to the link.
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_string(),
            ));
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            row.text_body.clone(),
            row.html_body.clone(),
        ))
        .map_err(|e| e.to_string())
}
