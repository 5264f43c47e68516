//! A small SMTP server for the tests, on a loopback port: it speaks enough SMTP for
//! lettre (EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT), serves
//! connections concurrently, keeps every message it accepts, and refuses recipients at a
//! chosen domain with a permanent 550 so failure paths can be tested against a real
//! exchange. With credentials set it requires AUTH before MAIL (530) and refuses wrong
//! ones (535).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The user the session authenticated as, if it did.
    pub auth_user: Option<String>,
    /// The message as sent, headers and body, with CRLF line ends.
    pub data: String,
}

impl Received {
    /// The message parsed as MIME (headers decoded, parts split, bodies decoded).
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(self.data.as_bytes())
            .expect("a parsable MIME message")
    }
}

#[derive(Clone, Default)]
pub struct SmtpSink {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    /// Every session, so [`SmtpSink::restart`] and [`SmtpSink::stop`] can cut them.
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    /// The accept loop ([`SmtpSink::stop`] ends it; a restart keeps it and the port).
    accept: Arc<Mutex<Option<tokio::task::AbortHandle>>>,
    /// Milliseconds spent on each message before accepting it (a slow server).
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

/// `(user, password)` the sink requires, if any.
type Required = Option<Arc<(String, String)>>;

/// A loopback port that refuses connections (bound, not listening) and stays this
/// test's: `SmtpSink::serve(socket.listen(1024)?)` brings a server up on it later,
/// without releasing and re-binding the port (which another process could take).
pub fn reserved_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind loopback");
    let port = socket.local_addr().expect("local addr").port();
    (socket, port)
}

impl SmtpSink {
    /// Starts on a free port; recipients `@refused.test` get `550`.
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        Self::serve(listener)
    }

    /// Starts on a listener the caller bound (to come up on a known port later).
    pub fn serve(listener: TcpListener) -> SmtpSink {
        Self::serve_with(listener, None)
    }

    /// Starts on a free port and requires AUTH PLAIN with these credentials.
    pub async fn start_with_auth(user: &str, password: &str) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        Self::serve_with(
            listener,
            Some(Arc::new((user.to_string(), password.to_string()))),
        )
    }

    fn serve_with(listener: TcpListener, required: Required) -> SmtpSink {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let sink = SmtpSink {
            port,
            received: Arc::default(),
            tasks: Arc::default(),
            accept: Arc::default(),
            delay_ms: Arc::default(),
        };
        let store = sink.received.clone();
        let delay = sink.delay_ms.clone();
        let tasks = sink.tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = store.clone();
                let required = required.clone();
                let delay = delay.clone();
                // Replies go out at once, like a real MTA's.
                let _ = stream.set_nodelay(true);
                let handle = tokio::spawn(async move {
                    let _ = session(stream, store, required, delay).await;
                });
                if let Ok(mut t) = tasks.lock() {
                    t.push(handle.abort_handle());
                }
            }
        });
        if let Ok(mut a) = sink.accept.lock() {
            *a = Some(accept.abort_handle());
        }
        sink
    }

    /// Takes `per_message` over each message before accepting it.
    pub fn slow_down(&self, per_message: std::time::Duration) {
        self.delay_ms.store(
            u64::try_from(per_message.as_millis()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// A restarted server: every open connection is dropped, new ones are served on the
    /// same port (kept bound throughout, so nothing else can take it meanwhile).
    pub fn restart(&self) {
        if let Ok(mut t) = self.tasks.lock() {
            for task in t.drain(..) {
                task.abort();
            }
        }
    }

    /// Stops listening and drops every open connection (a crashed server).
    pub fn stop(&self) {
        if let Ok(mut a) = self.accept.lock()
            && let Some(accept) = a.take()
        {
            accept.abort();
        }
        self.restart();
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// How many messages arrived (cheap: no copies).
    pub fn count(&self) -> usize {
        self.received.lock().map(|r| r.len()).unwrap_or_default()
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Waits (bounded: 10 s, like `HookReceiver::wait_for`) until `n` messages arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..1000 {
            if self.count() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.received()
    }
}

async fn session(
    stream: tokio::net::TcpStream,
    store: Arc<Mutex<Vec<Received>>>,
    required: Required,
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
) -> std::io::Result<()> {
    let mut auth_user: Option<String> = None;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut from = String::new();
    let mut to: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            if required.is_some() {
                b"250-sink.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
            } else {
                b"250-sink.test\r\n250 8BITMIME\r\n"
            }
        } else if upper.starts_with("AUTH PLAIN") {
            let given = line.trim_end().get(11..).unwrap_or_default().trim();
            let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, given)
                .unwrap_or_default();
            let parts: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
            match (&required, parts.as_slice()) {
                (Some(req), [_, user, pass])
                    if *user == req.0.as_bytes() && *pass == req.1.as_bytes() =>
                {
                    auth_user = Some(req.0.clone());
                    b"235 2.7.0 authenticated\r\n"
                }
                _ => b"535 5.7.8 authentication credentials invalid\r\n",
            }
        } else if required.is_some() && auth_user.is_none() && upper.starts_with("MAIL FROM:") {
            b"530 5.7.0 authentication required\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 OK\r\n"
        } else if upper.starts_with("RSET") {
            from.clear();
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&line);
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = address(&line);
            if rcpt.ends_with("@refused.test") {
                b"550 5.1.1 mailbox unavailable\r\n"
            } else {
                to.push(rcpt);
                b"250 OK\r\n"
            }
        } else if upper == "DATA" {
            write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(
                    line.strip_prefix('.')
                        .filter(|_| line.starts_with(".."))
                        .unwrap_or(&line),
                );
            }
            let delay = delay_ms.load(std::sync::atomic::Ordering::Relaxed);
            if delay > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            }
            if let Ok(mut r) = store.lock() {
                r.push(Received {
                    from: from.clone(),
                    to: to.clone(),
                    auth_user: auth_user.clone(),
                    data,
                });
            }
            b"250 OK queued\r\n"
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"500 unrecognized\r\n"
        };
        write.write_all(reply).await?;
    }
}

fn address(line: &str) -> String {
    match (line.find('<'), line.find('>')) {
        (Some(a), Some(b)) if b > a => line[a + 1..b].to_string(),
        _ => String::new(),
    }
}
