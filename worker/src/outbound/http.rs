//! A small HTTP/1.1 client for webhook deliveries: one POST per connection
//! (`Connection: close`), https through rustls with the webpki roots, a deadline for the
//! whole exchange, redirects not followed. Only the status, `Retry-After` and the first
//! bytes of the answer matter to a delivery, so that is all it reads.

use std::sync::Arc;
use std::time::Duration;

use entity::webhook::AddressPolicy;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

/// Bytes of the receiver's answer kept for the delivery log.
pub const EXCERPT_BYTES: usize = 512;
/// Longest status line and headers accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;

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

#[derive(Clone)]
pub struct HttpClient {
    tls: TlsConnector,
    timeout: Duration,
    user_agent: String,
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
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            timeout,
            user_agent: format!("cmo-orchestrator-webhooks/{}", env!("CARGO_PKG_VERSION")),
            wall: Arc::new(entity::clock::SystemClock),
            policy: AddressPolicy::default(),
        })
    }

    /// The same client under `policy` (`CMO_WEBHOOK_ALLOW_LOOPBACK`; tests allow
    /// loopback receivers).
    pub fn with_policy(mut self, policy: AddressPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The address to connect to: the host's own, or the first its name resolves to
    /// that the policy allows. Every address is checked; none refused is ever used.
    async fn checked_address(
        &self,
        host: &url::Host<&str>,
        port: u16,
    ) -> Result<std::net::SocketAddr, HttpError> {
        self.policy.check_host(host).map_err(HttpError::Refused)?;
        let candidates: Vec<std::net::SocketAddr> = match host {
            url::Host::Ipv4(ip) => vec![(*ip, port).into()],
            url::Host::Ipv6(ip) => vec![(*ip, port).into()],
            url::Host::Domain(d) => tokio::net::lookup_host((*d, port))
                .await
                .map_err(|e| HttpError::Connect(format!("cannot resolve {d}: {e}")))?
                .collect(),
        };
        let mut refused = None;
        for addr in &candidates {
            match self.policy.refusal(addr.ip()) {
                None => return Ok(*addr),
                Some(why) => refused = Some(format!("{} is {why}", addr.ip())),
            }
        }
        Err(HttpError::Refused(refused.unwrap_or_else(|| {
            format!("{host} resolves to no address")
        })))
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
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(HttpError::Url(format!("scheme {other}"))),
        };
        let host = url
            .host()
            .ok_or_else(|| HttpError::Url("no host".to_string()))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| HttpError::Url("no port".to_string()))?;
        let address = self.checked_address(&host, port).await?;
        // Connected to the address just checked, never resolved again: a name cannot
        // turn into an inner address between the check and the request.
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|e| HttpError::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let host_header = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let mut request = format!(
            "POST {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.user_agent,
            body.len()
        );
        for (name, value) in headers {
            // Values are ours (digits, hex, event types); refuse anything that could
            // split the header block.
            if value.contains(['\r', '\n']) {
                return Err(HttpError::Protocol(format!(
                    "header {name} has a line break"
                )));
            }
            request.push_str(name);
            request.push_str(": ");
            request.push_str(value);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        if tls {
            let name = rustls::pki_types::ServerName::try_from(
                url.host_str()
                    .unwrap_or_default()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
            .map_err(|e| HttpError::Url(e.to_string()))?;
            let stream = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| HttpError::Tls(e.to_string()))?;
            exchange_on(stream, request.as_bytes(), body, self.wall.now()).await
        } else {
            exchange_on(tcp, request.as_bytes(), body, self.wall.now()).await
        }
    }
}

async fn exchange_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    head: &[u8],
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Answer, HttpError> {
    let io = |e: std::io::Error| HttpError::Io(e.to_string());
    stream.write_all(head).await.map_err(io)?;
    stream.write_all(body).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 4096];
    let (status, retry_after, content_length, chunked, head_len) = loop {
        let mut parsed_headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut parsed_headers);
        match response.parse(&buf) {
            // Interim answers (100 Continue, 103 Early Hints) come before the real one
            // (RFC 9110 §15.2): skipped.
            Ok(httparse::Status::Complete(len))
                if response
                    .code
                    .is_some_and(|c| (100..200).contains(&c) && c != 101) =>
            {
                buf.drain(..len);
                continue;
            }
            Ok(httparse::Status::Complete(len)) => {
                let code = response.code.unwrap_or(0);
                let header = |name: &str| {
                    response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .map(|v| v.trim().to_string())
                };
                let retry_after = header("retry-after").and_then(|v| retry_after_secs(&v, now));
                let content_length = header("content-length").and_then(|v| v.parse::<usize>().ok());
                let chunked = header("transfer-encoding")
                    .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
                break (code, retry_after, content_length, chunked, len);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => {}
            Ok(httparse::Status::Partial) => {
                return Err(HttpError::Protocol("answer headers too long".to_string()));
            }
            Err(e) => return Err(HttpError::Protocol(e.to_string())),
        }
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return Err(HttpError::Protocol(
                "connection closed before a complete answer".to_string(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    // The excerpt: what the answer says, as far as it arrives promptly.
    // A chunked answer carries its chunk-size lines too: read a little more, decode below.
    let want = match (chunked, content_length) {
        (true, _) => EXCERPT_BYTES + 64,
        (false, Some(n)) => n.min(EXCERPT_BYTES),
        (false, None) => EXCERPT_BYTES,
    };
    let mut excerpt = buf[head_len..].to_vec();
    let more = async {
        while excerpt.len() < want {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => excerpt.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(200), more).await;
    if chunked {
        excerpt = dechunk(&excerpt);
    }
    excerpt.truncate(want);
    Ok(Answer {
        status,
        retry_after,
        excerpt: String::from_utf8_lossy(&excerpt).into_owned(),
    })
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

/// The data of a chunked body, as far as `raw` holds it (the excerpt is a prefix).
fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        let data = &rest[line_end + 2..];
        let take = size.min(data.len());
        out.extend_from_slice(&data[..take]);
        if take < size || data.len() < size + 2 {
            break;
        }
        rest = &data[size + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert!(request.contains("\r\nX-Cmo-Event-Id: 7\r\n"));
        assert!(request.contains("\r\nContent-Length: 2\r\n"));
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
        let sent = server.await.unwrap();
        assert!(
            !String::from_utf8_lossy(&sent).contains("X-B"),
            "nothing of it was sent"
        );
        assert!(matches!(
            client().post_json("ftp://127.0.0.1/", &[], b"{}").await,
            Err(HttpError::Url(_))
        ));
    }

    #[test]
    fn dechunk_stops_at_what_it_has() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
        assert_eq!(dechunk(b"5\r\nab"), b"ab");
        assert_eq!(dechunk(b"zz\r\nab"), b"");
    }
}
