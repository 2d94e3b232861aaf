//! Pages as people see them: a headless Chromium (Debian's `chromium` and `chromium-driver`)
//! driven over WebDriver, at a phone's width, with axe-core (from npm) judging accessibility.
//! Each [`Browser`] runs its own `chromedriver` on a free port, so tests run in parallel.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
pub use fantoccini::Locator;
use fantoccini::{Client, ClientBuilder};
use serde_json::json;

use crate::repository_root;

/// The axe-core release the accessibility checks run.
const AXE_CORE: &str = "axe-core@4.14.1";

pub struct Browser {
    pub client: Client,
    driver: Child,
    /// The viewport's width in CSS pixels.
    width: u32,
    /// Where files the pages offer for download land, one folder a browser.
    downloads: PathBuf,
}

impl Browser {
    /// A fresh headless Chromium with a window of `width` × `height` CSS pixels.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (apt-get install chromium chromium-driver)");
        let downloads = std::env::temp_dir().join(format!("drawbridge-downloads-{port}"));
        std::fs::create_dir_all(&downloads).expect("a downloads folder");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            // A window cannot be narrower than 500 px: the page's viewport is set instead.
            json!({
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
                "mobileEmulation": { "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0 } },
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                },
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let url = format!("http://127.0.0.1:{port}");
        let mut client = None;
        for _ in 0..100 {
            match ClientBuilder::new(connector.clone())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(connected) => {
                    client = Some(connected);
                    break;
                }
                // The driver is still starting.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let client = client.expect("chromedriver answers within 10 s");
        Browser {
            client,
            driver,
            width,
            downloads,
        }
    }

    /// The file `name` the browser downloaded, once it is complete (within 20 s).
    pub async fn downloaded(&self, name: &str) -> Vec<u8> {
        let file = self.downloads.join(name);
        for _ in 0..200 {
            if let Ok(body) = std::fs::read(&file) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{name} was not downloaded within 20 s");
    }

    /// The serious and critical violations axe-core finds on the current page, one line each.
    pub async fn accessibility_violations(&self) -> Vec<String> {
        self.client
            .execute(&axe_source(), Vec::new())
            .await
            .expect("axe-core loads");
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] }).then(result => done(
                   result.violations
                     .filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.map(n => n.target.join(' ')).join(', ')}`)));",
                Vec::new(),
            )
            .await
            .expect("axe-core runs");
        serde_json::from_value(found).expect("a list of violations")
    }

    /// Whether the page is wider than the screen, so that it scrolls sideways. (Measured
    /// against the screen: a phone's browser widens its window to a page that overflows.)
    /// Asked of the browser, not the page, so it holds with the page's scripts off too.
    pub async fn scrolls_sideways(&self) -> bool {
        let metrics = self.devtools("Page.getLayoutMetrics", json!({})).await;
        let wide = metrics["cssContentSize"]["width"].as_f64().expect("a width");
        wide > f64::from(self.width)
    }

    /// Turns the pages' scripts off or on, for this and every later page, as a person may in
    /// their browser's settings. WebDriver's own commands keep working, except clicking:
    /// with scripts off, press keys instead (Enter on a button or link, Space on a box).
    pub async fn allow_scripts(&self, allowed: bool) {
        self.devtools(
            "Emulation.setScriptExecutionDisabled",
            json!({ "value": !allowed }),
        )
        .await;
    }

    /// Cuts the browser off the network, or connects it again, as a door device losing its
    /// connection: requests fail and `navigator.onLine` turns false (and back, with the
    /// page's `online` event).
    pub async fn set_offline(&self, offline: bool) {
        self.devtools("Network.enable", json!({})).await;
        self.devtools(
            "Network.emulateNetworkConditions",
            json!({ "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1 }),
        )
        .await;
    }

    /// Runs a Chrome DevTools Protocol command through chromedriver.
    async fn devtools(&self, command: &'static str, params: serde_json::Value) -> serde_json::Value {
        self.client
            .issue_cmd(DevTools { command, params })
            .await
            .unwrap_or_else(|error| panic!("{command}: {error}"))
    }

    /// Presses `keys` on whatever has the focus, as a keyboard would.
    pub async fn press(&self, keys: &str) {
        let focused = self
            .client
            .active_element()
            .await
            .expect("something has the focus");
        focused.send_keys(keys).await.expect("the keys are pressed");
    }

    /// Presses Tab until the element `css` selects has the focus; `None` if it never gets it
    /// (not reachable by keyboard), else the number of Tabs.
    pub async fn tab_to(&self, css: &str) -> Option<usize> {
        let wanted = self.client.find(fantoccini::Locator::Css(css)).await.ok()?;
        for tabs in 1..=60 {
            self.press(&Key::Tab.to_string()).await;
            let focused = self.client.active_element().await.ok()?;
            if focused.element_id() == wanted.element_id() {
                return Some(tabs);
            }
        }
        None
    }

    /// Writes a screenshot of the current page to `target/screenshots/<name>.png`, for people
    /// to look at; not compared with anything.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let directory = repository_root().join("target/screenshots");
        std::fs::create_dir_all(&directory).expect("target/screenshots");
        std::fs::write(directory.join(format!("{name}.png")), png).expect("the screenshot is written");
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.downloads);
    }
}

/// chromedriver's door to the DevTools Protocol, which WebDriver itself lacks.
#[derive(Debug)]
struct DevTools {
    command: &'static str,
    params: serde_json::Value,
}

impl WebDriverCompatibleCommand for DevTools {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.command, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// The text of `axe.min.js`, fetched from npm into `target/axe-core` the first time.
fn axe_source() -> String {
    let directory = repository_root().join("target/axe-core");
    let script: PathBuf = directory.join("package/axe.min.js");
    if !script.exists() {
        std::fs::create_dir_all(&directory).expect("target/axe-core");
        let packed = Command::new("npm")
            .args(["pack", AXE_CORE, "--silent", "--pack-destination"])
            .arg(&directory)
            .output()
            .expect("npm runs");
        assert!(packed.status.success(), "npm pack {AXE_CORE}: {packed:?}");
        let tarball = String::from_utf8(packed.stdout).expect("a file name");
        let unpacked = Command::new("tar")
            .arg("-xzf")
            .arg(directory.join(tarball.trim()))
            .arg("-C")
            .arg(&directory)
            .status()
            .expect("tar runs");
        assert!(unpacked.success(), "unpacking {AXE_CORE}");
    }
    std::fs::read_to_string(&script).expect("axe.min.js")
}
