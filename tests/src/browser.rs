//! A real browser for the pages people see: Debian's Chromium driven through its
//! ChromeDriver (W3C WebDriver). One browser at a time in the whole test binary.
//!
//! The WebDriver calls are a handful of JSON requests over the `awc` client the tests
//! already use. A WebDriver crate (fantoccini) would bring a second HTTP stack (hyper 1)
//! and a second version of the `cookie` crate into a build that keeps one of each; for
//! the nine calls below that is not worth it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// Where Debian puts them (`apt-get install chromium chromium-driver`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The W3C WebDriver element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A headless Chromium session, ended (and its driver stopped) on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: awc::Client,
    _profile: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// Starts a browser, or `None` when Chromium is not installed and the run does not
/// require one (`CMO_REQUIRE_BROWSER=1`, as in CI, makes a missing browser a failure).
pub async fn start() -> Option<Browser> {
    let installed =
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if !installed {
        assert!(
            std::env::var_os("CMO_REQUIRE_BROWSER").is_none(),
            "CMO_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!("SKIPPED: browser test: install chromium and chromium-driver to run it");
        return None;
    }
    let turn = ONE_AT_A_TIME.lock().await;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("address").port()
    };
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let base = format!("http://127.0.0.1:{port}");
    let http = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .disable_redirects()
        .finish();
    // Bounded wait for the driver to listen.
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(mut r) = http.get(format!("{base}/status")).send().await
            && let Ok(v) = r.json::<Value>().await
            && v["value"]["ready"] == true
        {
            ready = true;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "chromedriver did not come up on {base}");
    let profile = tempfile::tempdir().expect("profile dir");
    let args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".to_string(),
        "--disable-gpu".to_string(),
        "--disable-dev-shm-usage".to_string(),
        "--disable-background-networking".to_string(),
        "--disable-component-update".to_string(),
        "--disable-sync".to_string(),
        "--disable-quic".to_string(),
        "--no-first-run".to_string(),
        // Loopback only: every other name fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1".to_string(),
        "--window-size=420,900".to_string(),
        format!("--user-data-dir={}", profile.path().display()),
    ];
    let mut browser = Browser {
        driver,
        base,
        session: String::new(),
        http,
        _profile: profile,
        _turn: turn,
    };
    let created = browser
        .call(
            "POST",
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
            }}})),
        )
        .await;
    browser.session = created["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
        .to_string();
    Some(browser)
}

impl Browser {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{}", self.base, path);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url),
        };
        let mut response = match body {
            Some(b) => req.send_json(&b).await,
            None if method == "POST" => req.send_json(&json!({})).await,
            None => req.send().await,
        }
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let value: Value = response
            .json()
            .limit(64 * 1024 * 1024)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        assert!(
            response.status().is_success(),
            "WebDriver {method} {path} answered {}: {value}",
            response.status()
        );
        value["value"].clone()
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{}", self.session, path)
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({"url": url})))
            .await;
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                "POST",
                &self.at("/element"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    /// Types `text` into the input matched by `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call("POST", &self.at(&format!("/element/{id}/clear")), None)
            .await;
        self.call(
            "POST",
            &self.at(&format!("/element/{id}/value")),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Clicks the element matched by `css` (a submit button: the browser posts the form
    /// and follows the answer, redirects included).
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call("POST", &self.at(&format!("/element/{id}/click")), None)
            .await;
    }

    /// The page as rendered now.
    pub async fn source(&self) -> String {
        self.call("GET", &self.at("/source"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's text as rendered (what a person reads: no markup, no hidden
    /// elements, styles applied).
    pub async fn text(&self) -> String {
        let body = self.element("body").await;
        self.call("GET", &self.at(&format!("/element/{body}/text")), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Whether the page loaded its stylesheet and laid out as styled: the computed
    /// value of CSS `property` on the element matched by `css`.
    pub async fn css_value(&self, css: &str, property: &str) -> String {
        let id = self.element(css).await;
        self.call(
            "GET",
            &self.at(&format!("/element/{id}/css/{property}")),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The page once it shows `text` (a form post navigates after the click returns):
    /// a bounded wait, then a failure naming what the page showed instead.
    pub async fn wait_for(&self, text: &str) -> String {
        let mut page = String::new();
        for _ in 0..100 {
            page = self.source().await;
            if page.contains(text) {
                return page;
            }
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page never showed {text:?}; it shows: {page}");
    }

    pub async fn url(&self) -> String {
        self.call("GET", &self.at("/url"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The cookies of the current page, as the browser keeps them.
    pub async fn cookies(&self) -> Vec<Value> {
        self.call("GET", &self.at("/cookie"), None)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A PNG of the viewport, written to `$CMO_SCREENSHOTS/name.png` when that is set
    /// (to look at a page); returns its size in bytes.
    pub async fn screenshot(&self, name: &str) -> usize {
        use base64::Engine;
        let encoded = self.call("GET", &self.at("/screenshot"), None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .expect("a base64 PNG");
        if let Some(dir) = std::env::var_os("CMO_SCREENSHOTS") {
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), &png)
                .expect("write screenshot");
        }
        png.len()
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let path = self.at("");
        self.call("DELETE", &path, None).await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test still stops its driver and its browser. Killing the driver does
        // not end the browser it started (its processes outlived it, a core each, until
        // this was added): every process of this session names its own profile folder.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        kill_processes_naming(&self._profile.path().display().to_string());
    }
}

/// Kills (SIGKILL) every process whose command line contains `needle`: read from /proc,
/// killed with the shell's `kill` (no process-tools package needed).
fn kill_processes_naming(needle: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let own = std::process::id().to_string();
    let pids: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()) && *pid != own)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect();
    if !pids.is_empty() {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -9 {} 2>/dev/null", pids.join(" ")))
            .status();
    }
}
