//! A small HTTP/1.1 client for webhook deliveries: one POST per connection
//! (`Connection: close`), https through rustls with the webpki roots, a deadline for the
//! whole exchange, redirects not followed. Only the status, `Retry-After` and the first
//! bytes of the answer matter to a delivery, so that is all it reads.

use std::sync::Arc;
use std::time::Duration;

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
    /// `Retry-After` in seconds (the delta-seconds form; an HTTP date is ignored).
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
}

#[derive(Clone)]
pub struct HttpClient {
    tls: TlsConnector,
    timeout: Duration,
    user_agent: String,
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
        })
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
        let tcp = match &host {
            url::Host::Domain(d) => TcpStream::connect((*d, port)).await,
            url::Host::Ipv4(ip) => TcpStream::connect((*ip, port)).await,
            url::Host::Ipv6(ip) => TcpStream::connect((*ip, port)).await,
        }
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
            exchange_on(stream, request.as_bytes(), body).await
        } else {
            exchange_on(tcp, request.as_bytes(), body).await
        }
    }
}

async fn exchange_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    head: &[u8],
    body: &[u8],
) -> Result<Answer, HttpError> {
    let io = |e: std::io::Error| HttpError::Io(e.to_string());
    stream.write_all(head).await.map_err(io)?;
    stream.write_all(body).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 4096];
    let (status, retry_after, content_length, head_len) = loop {
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return Err(HttpError::Protocol(
                "connection closed before a complete answer".to_string(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut parsed_headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut parsed_headers);
        match response.parse(&buf) {
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
                let retry_after = header("retry-after").and_then(|v| v.parse::<u64>().ok());
                let content_length = header("content-length").and_then(|v| v.parse::<usize>().ok());
                break (code, retry_after, content_length, len);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => continue,
            Ok(httparse::Status::Partial) => {
                return Err(HttpError::Protocol("answer headers too long".to_string()));
            }
            Err(e) => return Err(HttpError::Protocol(e.to_string())),
        }
    };
    // The excerpt: what the answer says, as far as it arrives promptly.
    let want = content_length.unwrap_or(EXCERPT_BYTES).min(EXCERPT_BYTES);
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
    excerpt.truncate(want);
    Ok(Answer {
        status,
        retry_after,
        excerpt: String::from_utf8_lossy(&excerpt).into_owned(),
    })
}
