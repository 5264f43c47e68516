//! A small pool of SMTP connections whose sockets have `TCP_NODELAY` set: the worker's
//! mail path, and the api's check of the relay (`cmo-api verify-install`).
//!
//! lettre writes the message body and the final dot in small writes; with Nagle's
//! algorithm on, each message then waits for the peer's delayed ACK (~40 ms), so one
//! lettre connection delivers about 23 messages/s on loopback. Opening the `TcpStream`
//! here, with `set_nodelay(true)`, and handing it to
//! `AsyncSmtpConnection::connect_with_transport` removes that wait (STARTTLS upgrades
//! the same socket). Implicit TLS (`smtps://`) goes through lettre's own connect, which
//! cannot set the option: prefer STARTTLS (`?tls=required`) where throughput matters.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::sync::{Mutex, Semaphore};

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain text (local relays, test sinks).
    None,
    /// STARTTLS if offered, else plain (`?tls=opportunistic`).
    Opportunistic,
    /// STARTTLS or fail (`?tls=required`).
    Required,
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

/// Where and how to connect, from a URL like lettre's: `smtp://host:25`,
/// `smtp://user:pass@host:587?tls=required`, `smtps://host`, optional `/ehlo-name`.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub credentials: Option<Credentials>,
    pub hello: ClientId,
    pub timeout: Duration,
    /// Connections kept open at most.
    pub max_connections: usize,
    /// An idle connection older than this is closed rather than reused (servers drop
    /// idle clients after a while).
    pub max_idle: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("auth", &self.credentials.is_some())
            .finish()
    }
}

impl SmtpConfig {
    pub fn from_url(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
        let host = url
            .host_str()
            .ok_or("the SMTP URL has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls_param = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let (tls, default_port) = match (url.scheme(), tls_param.as_deref()) {
            ("smtp", None | Some("none")) => (TlsMode::None, 25),
            ("smtp", Some("opportunistic")) => (TlsMode::Opportunistic, 587),
            ("smtp", Some("required")) => (TlsMode::Required, 587),
            ("smtps", _) => (TlsMode::Implicit, 465),
            (scheme, tls) => {
                return Err(format!(
                    "unknown scheme {scheme:?} or tls={tls:?} (use smtp://, smtps://, ?tls=required or ?tls=opportunistic)"
                ));
            }
        };
        let decode = |s: &str| -> Result<String, String> {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(Cow::into_owned)
                .map_err(|e| e.to_string())
        };
        let credentials = match url.password() {
            Some(password) => Some(Credentials::new(decode(url.username())?, decode(password)?)),
            None => None,
        };
        let hello = match url.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_string()),
        };
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            tls,
            credentials,
            hello,
            timeout: Duration::from_secs(30),
            max_connections: 4,
            max_idle: Duration::from_secs(50),
        })
    }
}

/// Why a message was not accepted.
#[derive(Debug)]
pub struct SmtpFailure {
    /// 5xx: the server refused this message for good.
    pub permanent: bool,
    pub message: String,
}

impl From<lettre::transport::smtp::Error> for SmtpFailure {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        SmtpFailure {
            permanent: e.is_permanent(),
            message: e.to_string(),
        }
    }
}

pub struct SmtpPool {
    config: SmtpConfig,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    slots: Semaphore,
}

impl SmtpPool {
    pub fn new(config: SmtpConfig) -> Self {
        let slots = Semaphore::new(config.max_connections.max(1));
        Self {
            config,
            idle: Mutex::new(Vec::new()),
            slots,
        }
    }

    /// How many messages can be in flight at once.
    pub fn max_connections(&self) -> usize {
        self.config.max_connections.max(1)
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SmtpFailure> {
        let c = &self.config;
        let tls = || {
            TlsParameters::new(c.host.clone()).map_err(|e| SmtpFailure {
                permanent: false,
                message: format!("TLS set-up: {e}"),
            })
        };
        let mut conn = if c.tls == TlsMode::Implicit {
            AsyncSmtpConnection::connect_tokio1(
                (c.host.as_str(), c.port),
                Some(c.timeout),
                &c.hello,
                Some(tls()?),
                None,
            )
            .await?
        } else {
            let io = |what: &str, e: std::io::Error| SmtpFailure {
                permanent: false,
                message: format!("{what} {}:{}: {e}", c.host, c.port),
            };
            let stream = tokio::time::timeout(
                c.timeout,
                tokio::net::TcpStream::connect((c.host.as_str(), c.port)),
            )
            .await
            .map_err(|_| SmtpFailure {
                permanent: false,
                message: format!("connecting to {}:{} timed out", c.host, c.port),
            })?
            .map_err(|e| io("cannot connect to", e))?;
            stream
                .set_nodelay(true)
                .map_err(|e| io("cannot set TCP_NODELAY on", e))?;
            let mut conn = tokio::time::timeout(
                c.timeout,
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &c.hello),
            )
            .await
            .map_err(|_| SmtpFailure {
                permanent: false,
                message: "the SMTP greeting timed out".to_string(),
            })??;
            match c.tls {
                TlsMode::Required => conn.starttls(tls()?, &c.hello).await?,
                TlsMode::Opportunistic if conn.can_starttls() => {
                    conn.starttls(tls()?, &c.hello).await?
                }
                _ => {}
            }
            conn
        };
        if let Some(credentials) = &c.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await?;
        }
        Ok(conn)
    }

    /// Connects; any failure here (refused connection, TLS, a 535 on AUTH) is about the
    /// relay or our configuration, not the message, so it is retried later rather than
    /// failing the email for good: mail flows again once the relay or password is fixed.
    async fn connect_for_retry(&self) -> Result<AsyncSmtpConnection, SmtpFailure> {
        self.connect().await.map_err(|e| SmtpFailure {
            permanent: false,
            message: e.message,
        })
    }

    async fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().await;
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < self.config.max_idle && !conn.has_broken() {
                return Some(conn);
            }
            // Too old: the server may have dropped it already; just close our side.
            drop(conn);
        }
        None
    }

    /// Sends one message over a pooled (or new) connection. A pooled connection the
    /// server closed meanwhile gets one retry on a fresh connection; any failed
    /// connection is dropped, never reused.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), SmtpFailure> {
        let _slot = self.slots.acquire().await.map_err(|_| SmtpFailure {
            permanent: false,
            message: "the SMTP pool is closed".to_string(),
        })?;
        let (mut conn, reused) = match self.take_idle().await {
            Some(conn) => (conn, true),
            None => (self.connect_for_retry().await?, false),
        };
        let result = tokio::time::timeout(self.config.timeout, conn.send(envelope, message)).await;
        match result {
            Ok(Ok(_)) => {
                self.idle.lock().await.push((conn, Instant::now()));
                Ok(())
            }
            Ok(Err(e)) if reused && !e.is_permanent() && !e.is_transient() => {
                // Most likely the server closed the idle connection.
                conn.abort().await;
                let mut fresh = self.connect_for_retry().await?;
                let outcome =
                    tokio::time::timeout(self.config.timeout, fresh.send(envelope, message)).await;
                match outcome {
                    Ok(Ok(_)) => {
                        self.idle.lock().await.push((fresh, Instant::now()));
                        Ok(())
                    }
                    Ok(Err(e)) => {
                        fresh.abort().await;
                        Err(e.into())
                    }
                    Err(_) => Err(SmtpFailure {
                        permanent: false,
                        message: "the SMTP server did not answer in time".to_string(),
                    }),
                }
            }
            Ok(Err(e)) => {
                conn.abort().await;
                Err(e.into())
            }
            Err(_) => Err(SmtpFailure {
                permanent: false,
                message: "the SMTP server did not answer in time".to_string(),
            }),
        }
    }
}

/// Connects as a send would (TCP, greeting, TLS, AUTH) and says QUIT: whether the relay
/// would take mail from this configuration, asked by `cmo-api verify-install`.
pub async fn check_relay(config: &SmtpConfig) -> Result<(), SmtpFailure> {
    let pool = SmtpPool::new(config.clone());
    let mut conn = pool.connect().await?;
    conn.quit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_read_like_lettres() {
        let c = SmtpConfig::from_url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.tls),
            ("127.0.0.1", 2525, TlsMode::None)
        );
        assert!(c.credentials.is_none());
        let c =
            SmtpConfig::from_url("smtp://ana%40x.test:p%3Ass@mail.x.test?tls=required").unwrap();
        assert_eq!((c.port, c.tls), (587, TlsMode::Required));
        assert!(c.credentials.is_some());
        let c = SmtpConfig::from_url("smtps://mail.x.test/relay.x.test").unwrap();
        assert_eq!((c.port, c.tls), (465, TlsMode::Implicit));
        assert_eq!(c.hello, ClientId::Domain("relay.x.test".into()));
        assert!(SmtpConfig::from_url("http://x").is_err());
        assert!(SmtpConfig::from_url("smtp://x?tls=maybe").is_err());
        assert!(SmtpConfig::from_url("not a url").is_err());
    }
}
