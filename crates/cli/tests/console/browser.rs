//! A real browser for the console's tests: Debian's headless Chromium driven through
//! chromedriver (WebDriver, `fantoccini`), with axe-core (npm, `package-lock.json` here)
//! run inside each page checked, and a screenshot of each page written under
//! `target/console-screenshots/`.
//!
//! Chromium, chromedriver and axe-core must be there when `AUTOLOG_REQUIRE_BROWSER` is set
//! (`.ci/run` installs them); otherwise a test without them prints that it was skipped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The axe-core script, installed by `npm ci` in this folder.
fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/node_modules/axe-core/axe.min.js")
}

/// Where the screenshots go: `<target>/console-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("console-screenshots")
}

/// Why the browser tests cannot run here, if they cannot. With `AUTOLOG_REQUIRE_BROWSER`
/// set, a missing part fails the test instead.
pub fn missing() -> Option<String> {
    let mut missing = Vec::new();
    for (path, what) in [
        (
            PathBuf::from(CHROMIUM),
            "Chromium (apt-get install chromium)",
        ),
        (
            PathBuf::from(CHROMEDRIVER),
            "chromedriver (apt-get install chromium-driver)",
        ),
        (
            axe_path(),
            "axe-core (npm ci --prefix crates/cli/tests/console)",
        ),
    ] {
        if !path.exists() {
            missing.push(format!("{what}: {} not found", path.display()));
        }
    }
    if missing.is_empty() {
        return None;
    }
    let why = missing.join("; ");
    if std::env::var_os("AUTOLOG_REQUIRE_BROWSER").is_some() {
        panic!("AUTOLOG_REQUIRE_BROWSER is set but {why}");
    }
    Some(why)
}

/// chromedriver, killed when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless Chromium session at 1280x800 with a fresh profile.
pub struct Browser {
    pub client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
    axe: String,
    /// The test's name, the prefix of its screenshots.
    name: String,
    /// The window's size: 1280x800 (a desktop) unless a test chose another.
    size: (u32, u32),
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    pub async fn start(name: &str) -> Browser {
        let port = free_port();
        let driver = Driver(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver"),
        );
        let profile = tempfile::tempdir().expect("a profile directory");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,800",
        ];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        let url = format!("http://127.0.0.1:{port}");
        let mut client = None;
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let client = client.expect("chromedriver answers and starts Chromium");
        let axe = std::fs::read_to_string(axe_path()).expect("read axe-core");
        std::fs::create_dir_all(screenshot_dir()).expect("the screenshot folder");
        Browser {
            client,
            _driver: driver,
            _profile: profile,
            axe,
            name: name.to_string(),
            size: (1280, 800),
        }
    }

    /// Resizes the window (a tablet at the bedside: 820x1180).
    pub async fn resize(&mut self, width: u32, height: u32) {
        self.size = (width, height);
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize the window");
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("url")
            .path()
            .to_string()
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .expect("body")
            .text()
            .await
            .expect("text")
    }

    /// What `css` finds, waiting up to 10 s for it to appear.
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} on the page: {e}"))
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.element(css).await;
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    /// Clicks what `css` finds and waits for the page it leads to.
    pub async fn click(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.expect("html");
        self.element(css).await.click().await.expect("click");
        self.wait_for_next_page(old, css).await;
    }

    /// Types `keys` into the focused element (as a person at a keyboard would, Tab and
    /// Enter included: `fantoccini::key::Key`) and waits for the page it leads to.
    pub async fn type_and_submit(&self, keys: &str) {
        let old = self.client.find(Locator::Css("html")).await.expect("html");
        self.client
            .active_element()
            .await
            .expect("a focused element")
            .send_keys(keys)
            .await
            .expect("type");
        self.wait_for_next_page(old, "the keys typed").await;
    }

    /// Waits until the old page's root goes stale, then until the new one has loaded.
    async fn wait_for_next_page(&self, old: fantoccini::elements::Element, what: &str) {
        for _ in 0..200 {
            if old.tag_name().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..200 {
            let state = self
                .client
                .execute("return document.readyState;", vec![])
                .await
                .ok();
            if state.as_ref().and_then(Value::as_str) == Some("complete") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the page after {what} did not load within 10 s");
    }

    /// Runs axe-core in the page (WCAG 2.0, 2.1 and 2.2, A and AA) and fails on any
    /// violation, listing each rule with the elements it found; then takes the page's
    /// screenshot.
    pub async fn check_page(&self, page: &str) {
        self.client
            .execute(&format!("{}\nreturn true;", self.axe), vec![])
            .await
            .expect("inject axe-core");
        let script = r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, {runOnly: {type: 'tag', values:
                ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa']}})
              .then(r => done(JSON.stringify({passes: r.passes.length, violations: r.violations.map(v => ({
                  id: v.id, impact: v.impact, help: v.help,
                  nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}))})))
              .catch(e => done('axe failed: ' + e));
        "#;
        let answer = self
            .client
            .execute_async(script, vec![])
            .await
            .expect("run axe-core");
        let answer = answer.as_str().unwrap_or_default().to_string();
        let report: Value = serde_json::from_str(&answer)
            .unwrap_or_else(|_| panic!("axe-core on {page}: {answer}"));
        self.screenshot(page).await;
        assert!(
            report["passes"].as_u64().unwrap_or(0) > 0,
            "axe-core checked the {page} page: {report}"
        );
        assert_eq!(
            report["violations"],
            json!([]),
            "axe-core found WCAG 2 A/AA violations on the {page} page"
        );
    }

    /// A screenshot of the whole page (the window stretched to its height, then put back).
    pub async fn screenshot(&self, page: &str) {
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .ok()
            .and_then(|h| h.as_u64())
            .unwrap_or(800);
        let (width, shown) = self.size;
        let height = u32::try_from(height.clamp(u64::from(shown), 6000)).unwrap_or(shown);
        let _ = self.client.set_window_size(width, height + 140).await;
        let png = self.client.screenshot().await.expect("screenshot");
        let _ = self.client.set_window_size(width, shown).await;
        let file = screenshot_dir().join(format!("{}-{page}.png", self.name));
        std::fs::write(&file, png).expect("write the screenshot");
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
