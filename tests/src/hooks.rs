//! A webhook receiver for the tests: a real HTTP/1.1 server on a loopback port that
//! records every request and answers from a script (status, headers, body, delay), then
//! a default answer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request as it arrived.
#[derive(Debug, Clone)]
pub struct Hook {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub received_at: std::time::Instant,
}

impl Hook {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Checks `X-Cmo-Signature` the way a receiver would (README recipe): HMAC-SHA256
    /// keyed with the secret over `"{X-Cmo-Timestamp}.{raw body}"`, hex, `sha256=`.
    pub fn signature_valid(&self, secret: &str) -> bool {
        use hmac::{Hmac, KeyInit, Mac};
        let (Some(ts), Some(sig)) = (
            self.header("x-cmo-timestamp"),
            self.header("x-cmo-signature"),
        ) else {
            return false;
        };
        let Some(hex_sig) = sig.strip_prefix("sha256=") else {
            return false;
        };
        let Ok(expected) = hex::decode(hex_sig) else {
            return false;
        };
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
            .expect("any key length");
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        mac.verify_slice(&expected).is_ok()
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub struct HookReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering (to provoke timeouts).
    pub delay: Duration,
}

impl HookReply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = body.to_string();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Clone)]
pub struct HookReceiver {
    pub port: u16,
    received: Arc<Mutex<Vec<Hook>>>,
    script: Arc<Mutex<VecDeque<HookReply>>>,
    default: Arc<Mutex<HookReply>>,
    accept: tokio::task::AbortHandle,
}

impl HookReceiver {
    /// Starts on a free loopback port, answering 204 unless scripted otherwise.
    pub async fn start() -> HookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let received: Arc<Mutex<Vec<Hook>>> = Arc::default();
        let script: Arc<Mutex<VecDeque<HookReply>>> = Arc::default();
        let default = Arc::new(Mutex::new(HookReply::status(204)));
        let (r, s, d) = (received.clone(), script.clone(), default.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (r, s, d) = (r.clone(), s.clone(), d.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, r, s, d).await;
                });
            }
        })
        .abort_handle();
        HookReceiver {
            port,
            received,
            script,
            default,
            accept,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answers the next requests with these, in order, then the default.
    pub fn then(&self, reply: HookReply) -> &Self {
        self.script.lock().expect("script").push_back(reply);
        self
    }

    /// The answer once the script is used up.
    pub fn always(&self, reply: HookReply) {
        *self.default.lock().expect("default") = reply;
    }

    pub fn received(&self) -> Vec<Hook> {
        self.received.lock().expect("received").clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().expect("received").len()
    }

    /// Waits (bounded: 10 s) until `n` requests have arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Hook> {
        for _ in 0..1000 {
            if self.count() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.received()
    }

    pub fn stop(&self) {
        self.accept.abort();
    }
}

/// Serves the requests of one connection in turn, keeping it open between them (as
/// receivers behind any web server do) until the client closes it.
async fn serve(
    mut stream: tokio::net::TcpStream,
    received: Arc<Mutex<Vec<Hook>>>,
    script: Arc<Mutex<VecDeque<HookReply>>>,
    default: Arc<Mutex<HookReply>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 8192];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 64 * 1024 {
                return Ok(());
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf[head_end..head_end + length].to_vec();
        // What follows is the next request on this connection.
        buf.drain(..head_end + length);
        let reply = script
            .lock()
            .expect("script")
            .pop_front()
            .unwrap_or_else(|| default.lock().expect("default").clone());
        received.lock().expect("received").push(Hook {
            method,
            path,
            headers,
            body,
            received_at: std::time::Instant::now(),
        });
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let mut answer = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        for (n, v) in &reply.headers {
            answer.push_str(&format!("{n}: {v}\r\n"));
        }
        answer.push_str("\r\n");
        answer.push_str(&reply.body);
        stream.write_all(answer.as_bytes()).await?;
    }
}
