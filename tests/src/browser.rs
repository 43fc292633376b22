//! A real browser for the console tests: Debian's `chromium`, headless,
//! driven over the W3C WebDriver protocol by `chromedriver`, which this
//! harness starts on a free loopback port and stops (with the browser it
//! started) when the test ends. The protocol is a handful of JSON requests,
//! spoken here with the HTTP client the tests already use.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

/// The key WebDriver names element references with.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long to wait for an element or a text to show up.
pub const WAIT: Duration = Duration::from_secs(10);

/// One headless Chromium session. Dropping it stops chromedriver and the
/// browser, then lets the next browser test start.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
    /// Where the router under test serves the console.
    pub base: String,
    // Fields drop in this order, after `Drop::drop`: the processes are
    // gone before the profile is deleted and the turn passes on.
    _driver: Driver,
    _profile: tempfile::TempDir,
    _turn: BrowserTurn,
}

/// chromedriver and the Chromium it starts, in a process group of their
/// own: stopped together, by the id of the one we started, on every path
/// (a panic while starting included).
struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let pgid = self.0.id();
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .status();
        let _ = self.0.wait();
    }
}

/// Where screenshots go: `target/console-screenshots` of the workspace.
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("console-screenshots")
}

/// Browser tests run one at a time: a Chromium each in parallel would
/// starve the two cores the suite runs on.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Holds the browser lock for a test.
pub type BrowserTurn = tokio::sync::MutexGuard<'static, ()>;

impl Browser {
    /// A browser opened on `base` (`http://127.0.0.1:<port>`), or `None`
    /// with NOT RUN printed when chromium or chromedriver is missing (a
    /// failure under CI, which installs both). Other browser tests wait
    /// until this one is dropped.
    pub async fn start(base: &str) -> Option<Browser> {
        if !crate::tool_available("chromedriver", "--version", "chromium-driver")
            || !crate::tool_available("chromium", "--version", "chromium")
        {
            return None;
        }
        let turn = ONE_AT_A_TIME.lock().await;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Driver(
            std::process::Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                // Its own process group, so that the browser it starts can be
                // stopped with it even if the test panics.
                .process_group(0)
                .spawn()
                .expect("start chromedriver"),
        );
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{root}/status")).send().await {
                if r.status().is_success() {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not start");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let resp: Value = http
            .post(format!("{root}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {resp}"))
            .to_owned();
        Some(Browser {
            http,
            session: format!("{root}/session/{id}"),
            base: base.trim_end_matches('/').to_owned(),
            _driver: driver,
            _profile: profile,
            _turn: turn,
        })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp: Value = req.send().await.unwrap().json().await.unwrap();
        resp["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    /// Opens a path of the router (`/console/#/plugins`).
    pub async fn open(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.post("/url", json!({ "url": url })).await;
    }

    /// Sets the window size (phone width, say).
    pub async fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    /// The element matching `css`, waiting up to [`WAIT`] for it.
    pub async fn find(&self, css: &str) -> String {
        let until = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self
                .post("/element", json!({"using": "css selector", "value": css}))
                .await;
            if let Some(id) = v[ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(
                tokio::time::Instant::now() < until,
                "no element `{css}` on the page: {}",
                self.body_text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    /// Clicks the button whose text is `text`.
    pub async fn click_button(&self, text: &str) {
        let until = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self
                .post(
                    "/element",
                    json!({"using": "xpath", "value": format!("//button[normalize-space(.)='{text}']")}),
                )
                .await;
            if let Some(id) = v[ELEMENT].as_str() {
                self.post(&format!("/element/{id}/click"), json!({})).await;
                return;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "no button `{text}`: {}",
                self.body_text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Accepts an open `confirm()` dialog.
    pub async fn accept_dialog(&self) {
        self.post("/alert/accept", json!({})).await;
    }

    /// Types `text` into the field matching `css`, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await;
    }

    /// Picks `value` in the `<select>` matching `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value=\"{value}\"]"))
            .await;
    }

    /// The visible text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's visible text.
    pub async fn body_text(&self) -> String {
        self.script("return document.body.innerText", json!([]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits up to [`WAIT`] for the page's text to contain `needle`.
    pub async fn wait_for_text(&self, needle: &str) -> bool {
        let until = tokio::time::Instant::now() + WAIT;
        loop {
            if self.body_text().await.contains(needle) {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs a script in the page; its result.
    pub async fn script(&self, js: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": js, "args": args}))
            .await
    }

    /// Runs an async script (its last argument is the callback).
    pub async fn script_async(&self, js: &str, args: Value) -> Value {
        self.post("/execute/async", json!({"script": js, "args": args}))
            .await
    }

    /// The cookies the browser holds for the page, as WebDriver lists them.
    pub async fn cookies(&self) -> Value {
        self.cmd(reqwest::Method::GET, "/cookie", None).await
    }

    /// Writes a PNG of the page to [`screenshot_dir`]`/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Logs in through the console's login form.
    pub async fn log_in(&self, login: &str, password: &str) {
        self.open("/console/").await;
        self.fill("input[name=domain]", crate::DOMAIN).await;
        self.fill("input[name=login]", login).await;
        self.fill("input[name=password]", password).await;
        self.click("form.login button[type=submit]").await;
        self.find("#logout:not([hidden])").await;
    }
}
