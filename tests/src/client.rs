//! A small JSON client over awc for the tests.

use std::time::Duration;

use awc::http::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;

#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    inner: awc::Client,
}

/// Status, headers and the body parsed as JSON (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
    /// The body as received (a PDF, a file).
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// An HTML body with the escapes the templates write read back (`&#x2f;` is `/`):
    /// the page's text as a reader sees it, tags aside.
    pub fn html_text(&self) -> String {
        self.text
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts an RFC 9457 problem with this status and code.
    #[track_caller]
    pub fn expect_problem(self, status: u16, code: &str) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        assert_eq!(self.body["status"], status, "{}", self.text);
        assert_eq!(self.body["code"], code, "{}", self.text);
        assert_eq!(
            self.body["type"],
            format!("urn:cmo-orchestrator:problem:{code}")
        );
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
        assert_eq!(
            self.body["request_id"].as_str(),
            self.header("x-request-id"),
            "the body's request id is the header's"
        );
        self
    }
}

impl Client {
    pub fn new(base: &str, token: Option<&str>) -> Self {
        Self {
            base: base.to_string(),
            token: token.map(str::to_string),
            inner: awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .disable_redirects()
                .finish(),
        }
    }

    /// The bearer token this client sends, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn request(&self, method: Method, path: &str) -> awc::ClientRequest {
        let mut req = self.inner.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.token {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        req
    }

    pub async fn send(&self, req: awc::ClientRequest, body: Option<&Value>) -> Reply {
        let result = match body {
            Some(b) => req.send_json(b).await,
            None => req.send().await,
        };
        read(result.expect("request sent")).await
    }

    pub async fn send_raw(&self, req: awc::ClientRequest, body: impl Into<Vec<u8>>) -> Reply {
        let bytes: Vec<u8> = body.into();
        read(req.send_body(bytes).await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.request(Method::POST, path), Some(&body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(self.request(Method::PUT, path), Some(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(self.request(Method::PATCH, path), Some(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.request(Method::DELETE, path), None).await
    }
}

async fn read<S>(mut res: awc::ClientResponse<S>) -> Reply
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
{
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res
        .body()
        .limit(16 * 1024 * 1024)
        .await
        .expect("response body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
        bytes: bytes.to_vec(),
    }
}
