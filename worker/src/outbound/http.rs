//! The webhook sender: reqwest (hyper, HTTP/1.1 with keep-alive, one connection pool
//! per receiver) over rustls with the webpki roots, a deadline for the whole exchange,
//! redirects not followed. Only the status, `Retry-After` and the first bytes of the
//! answer matter to a delivery, so that is all it reads.
//!
//! Receivers are checked twice: the literal address in the URL before sending, and every
//! address a name resolves to in the client's own resolver, which hands the connector only
//! the addresses the policy allows, so a connection goes to an address that was checked
//! and a pooled one was checked when it was opened.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use entity::webhook::AddressPolicy;
use tokio_rustls::rustls;

/// Bytes of the receiver's answer kept for the delivery log.
pub const EXCERPT_BYTES: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After` in seconds: the delta-seconds form, or an HTTP date (read against
    /// the wall clock, which is what the receiver wrote it against).
    pub retry_after: Option<u64>,
    pub excerpt: String,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HttpError {
    #[error("invalid URL: {0}")]
    Url(String),
    #[error("connect: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("no answer within {0} ms")]
    Timeout(u128),
    #[error("I/O: {0}")]
    Io(String),
    #[error("not an HTTP answer: {0}")]
    Protocol(String),
    #[error("refused: {0}")]
    Refused(String),
}

/// A receiver's name resolved only to addresses the policy refuses.
#[derive(Debug)]
struct AddressRefused(String);

impl std::fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AddressRefused {}

/// The client's resolver: the system's answer, less every address the policy refuses.
struct CheckedResolver {
    policy: AddressPolicy,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match policy.refusal(addr.ip()) {
                    None => true,
                    Some(why) => {
                        refused = Some(format!("{host} resolves to {}, {why}", addr.ip()));
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = refused.unwrap_or_else(|| format!("{host} resolves to no address"));
                return Err(
                    Box::new(AddressRefused(why)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    timeout: Duration,
    /// The clock a receiver's `Retry-After` date is read against: the wall clock (the
    /// receiver wrote it against its own), injectable so tests can set it.
    wall: Arc<dyn entity::clock::Clock>,
    /// Which receiver addresses may be reached (inner addresses never; loopback when
    /// allowed).
    policy: AddressPolicy,
}

impl HttpClient {
    /// `timeout` bounds connect, TLS, sending and reading the answer together.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let policy = AddressPolicy::default();
        Ok(Self {
            client: build(timeout, policy)?,
            timeout,
            wall: Arc::new(entity::clock::SystemClock),
            policy,
        })
    }

    /// The same client under `policy` (`CMO_WEBHOOK_ALLOW_LOOPBACK`; tests allow
    /// loopback receivers), with a pool of its own.
    pub fn with_policy(mut self, policy: AddressPolicy) -> Self {
        if let Ok(client) = build(self.timeout, policy) {
            self.client = client;
            self.policy = policy;
        }
        self
    }

    /// The same client reading `Retry-After` dates against `clock` (tests).
    pub fn with_wall_clock(mut self, clock: Arc<dyn entity::clock::Clock>) -> Self {
        self.wall = clock;
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POSTs `body` as JSON with the extra `headers`.
    pub async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Answer, HttpError> {
        let deadline = self.timeout;
        match tokio::time::timeout(deadline, self.exchange(url, headers, body)).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::Timeout(deadline.as_millis())),
        }
    }

    async fn exchange(
        &self,
        raw_url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Answer, HttpError> {
        let url = url::Url::parse(raw_url).map_err(|e| HttpError::Url(e.to_string()))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(HttpError::Url(format!("scheme {}", url.scheme())));
        }
        let host = url
            .host()
            .ok_or_else(|| HttpError::Url("no host".to_string()))?;
        // A literal address never reaches the resolver: checked here.
        self.policy.check_host(&host).map_err(HttpError::Refused)?;
        let mut request = self
            .client
            .post(url.as_str())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            // Values are ours (digits, hex, event types); one that could split the header
            // block is refused before anything is sent.
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| HttpError::Protocol(format!("header {name} is not a header value")))?;
            request = request.header(*name, value);
        }
        let mut response = request.body(body.to_vec()).send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after_secs(v.trim(), self.wall.now()));
        // The excerpt: what the answer says, as far as it arrives promptly. A body read to
        // its end lets the connection go back to the pool.
        let mut excerpt = Vec::new();
        let more = async {
            while excerpt.len() < EXCERPT_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                    Ok(None) | Err(_) => break,
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(200), more).await;
        excerpt.truncate(EXCERPT_BYTES);
        Ok(Answer {
            status,
            retry_after,
            excerpt: String::from_utf8_lossy(&excerpt).into_owned(),
        })
    }
}

/// One pooled client: HTTP/1.1 only (webhook bodies are small, and h2 would be a
/// second protocol stack to build), no proxy from the environment, no redirects.
fn build(timeout: Duration, policy: AddressPolicy) -> Result<reqwest::Client, String> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS configuration: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .http1_only()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(CheckedResolver { policy }))
        // The whole exchange is bounded by `post_json`'s own deadline.
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(32)
        .tcp_nodelay(true)
        .user_agent(format!(
            "cmo-orchestrator-webhooks/{}",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// What went wrong, in the delivery log's terms.
fn classify(err: reqwest::Error) -> HttpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut chain = Vec::new();
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<AddressRefused>() {
            return HttpError::Refused(refused.0.clone());
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return HttpError::Tls(tls.to_string());
        }
        chain.push(e.to_string());
        source = e.source();
    }
    chain.dedup();
    let detail = chain.join(": ");
    if err.is_connect() {
        HttpError::Connect(detail)
    } else {
        HttpError::Protocol(detail)
    }
}

/// `Retry-After`: delta-seconds, or an HTTP date (IMF-fixdate, e.g. `Wed, 21 Oct 2026
/// 07:28:00 GMT`) turned into the seconds left at `now` (0 when past).
fn retry_after_secs(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<u64> {
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs);
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let left = at.with_timezone(&chrono::Utc) - now;
    Some(left.num_seconds().max(0).unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot server on loopback that reads the request and answers `answer` in
    /// `parts` (each written separately), then closes.
    async fn serve(parts: Vec<Vec<u8>>) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook?x=1", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut b = [0_u8; 4096];
            // Head and body (the client sends both before reading).
            while !String::from_utf8_lossy(&request).contains("\r\n\r\n{") {
                let n = s.read(&mut b).await.unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&b[..n]);
            }
            for p in parts {
                s.write_all(&p).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            request
        });
        (url, task)
    }

    fn client() -> HttpClient {
        HttpClient::new(Duration::from_secs(2))
            .unwrap()
            .with_policy(AddressPolicy::LOOPBACK_ALLOWED)
    }

    #[tokio::test]
    async fn a_plain_answer_gives_status_and_body() {
        let (url, server) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthanks".to_vec(),
        ])
        .await;
        let a = client()
            .post_json(&url, &[("X-Cmo-Event-Id", "7".into())], b"{}")
            .await
            .unwrap();
        assert_eq!(
            (a.status, a.retry_after, a.excerpt.as_str()),
            (200, None, "thank")
        );
        let request = String::from_utf8(server.await.unwrap()).unwrap();
        assert!(
            request.starts_with("POST /hook?x=1 HTTP/1.1\r\n"),
            "{request}"
        );
        // Header names are case-insensitive; hyper sends them in lower case.
        let lower = request.to_ascii_lowercase();
        assert!(lower.contains("\r\nx-cmo-event-id: 7\r\n"), "{request}");
        assert!(lower.contains("\r\ncontent-length: 2\r\n"), "{request}");
    }

    #[tokio::test]
    async fn interim_answers_are_skipped_and_headers_may_come_in_pieces() {
        let (url, _server) = serve(vec![
            b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(),
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 20".to_vec(),
            b"2 Accepted\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ])
        .await;
        let a = client().post_json(&url, &[], b"{}").await.unwrap();
        assert_eq!(a.status, 202);
    }

    #[tokio::test]
    async fn retry_after_in_seconds_or_as_an_http_date() {
        let (url, _s) = serve(vec![
            b"HTTP/1.1 503 Busy\r\nRetry-After: 120\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ])
        .await;
        assert_eq!(
            client()
                .post_json(&url, &[], b"{}")
                .await
                .unwrap()
                .retry_after,
            Some(120)
        );
        // Against a set clock: exactly the seconds between it and the date.
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-18T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let clock = Arc::new(entity::clock::ManualClock::new(now));
        let date = (now + chrono::TimeDelta::seconds(90))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let (url, _s) = serve(vec![
            format!("HTTP/1.1 429 Slow down\r\nRetry-After: {date}\r\nContent-Length: 0\r\n\r\n")
                .into_bytes(),
        ])
        .await;
        let after = client()
            .with_wall_clock(clock)
            .post_json(&url, &[], b"{}")
            .await
            .unwrap()
            .retry_after;
        assert_eq!(after, Some(90));
        let (url, _s) = serve(vec![
            b"HTTP/1.1 503 Busy\r\nRetry-After: soon\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ])
        .await;
        assert_eq!(
            client()
                .post_json(&url, &[], b"{}")
                .await
                .unwrap()
                .retry_after,
            None
        );
    }

    #[tokio::test]
    async fn a_chunked_body_is_logged_without_its_chunk_lines() {
        let (url, _s) = serve(vec![
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            b"6\r\nbad si\r\n".to_vec(),
            b"8;ext=1\r\ngnature.\r\n0\r\n\r\n".to_vec(),
        ])
        .await;
        let a = client().post_json(&url, &[], b"{}").await.unwrap();
        assert_eq!((a.status, a.excerpt.as_str()), (400, "bad signature."));
    }

    #[tokio::test]
    async fn broken_answers_and_silence_are_errors() {
        let (url, _s) = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Le".to_vec()]).await;
        assert!(matches!(
            client().post_json(&url, &[], b"{}").await,
            Err(HttpError::Protocol(_))
        ));
        let (url, _s) = serve(vec![b"SMTP 220 hello\r\n\r\n".to_vec()]).await;
        assert!(matches!(
            client().post_json(&url, &[], b"{}").await,
            Err(HttpError::Protocol(_))
        ));
        // Accepts, reads, never answers: the deadline ends it.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let _held = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let quick = HttpClient::new(Duration::from_millis(200))
            .unwrap()
            .with_policy(AddressPolicy::LOOPBACK_ALLOWED);
        assert!(matches!(
            quick.post_json(&url, &[], b"{}").await,
            Err(HttpError::Timeout(200))
        ));
        // A header value that could split the request is refused before sending.
        let (url, server) = serve(vec![]).await;
        assert!(matches!(
            client()
                .post_json(&url, &[("X-A", "1\r\nX-B: 2".into())], b"{}")
                .await,
            Err(HttpError::Protocol(_))
        ));
        // Refused before connecting: the receiver is still waiting for anyone.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), server)
                .await
                .is_err(),
            "nothing of it was sent"
        );
        assert!(matches!(
            client().post_json("ftp://127.0.0.1/", &[], b"{}").await,
            Err(HttpError::Url(_))
        ));
    }

    /// Deliveries to one receiver share a kept-alive connection (one accept for three
    /// POSTs); a name is resolved through the policy, so one that resolves only to a
    /// refused address is never connected to.
    #[tokio::test]
    async fn connections_are_kept_alive_and_names_resolve_through_the_policy() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    break;
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut b = [0_u8; 4096];
                    let mut seen = Vec::new();
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 {
                            break;
                        }
                        seen.extend_from_slice(&b[..n]);
                        // One request is complete when its 2-byte body "{}" arrived.
                        while let Some(end) = seen.windows(6).position(|w| w == b"\r\n\r\n{}") {
                            seen.drain(..end + 6);
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                                .await;
                        }
                    }
                });
            }
        });
        let c = client();
        for _ in 0..3 {
            let a = c
                .post_json(&format!("http://localhost:{port}/hook"), &[], b"{}")
                .await
                .unwrap();
            assert_eq!((a.status, a.excerpt.as_str()), (200, "ok"));
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Without the loopback allowance, the name's only addresses are refused.
        let strict = HttpClient::new(Duration::from_secs(2)).unwrap();
        let refused = strict
            .post_json(&format!("http://localhost:{port}/hook"), &[], b"{}")
            .await;
        assert!(
            matches!(&refused, Err(HttpError::Refused(why)) if why.contains("loopback")),
            "{refused:?}"
        );
        assert!(matches!(
            strict
                .post_json(&format!("http://127.0.0.1:{port}/"), &[], b"{}")
                .await,
            Err(HttpError::Refused(_))
        ));
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "never connected"
        );
    }
}
