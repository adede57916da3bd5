//! Debian's headless Chromium for the browser tests, driven over WebDriver with `fantoccini`.
//!
//! The protocol is fantoccini's; what stays here are our own rules, each where it applies:
//! - where chromedriver and Chromium are (`CHROMEDRIVER`, `CHROMIUM`, else Debian's paths), and
//!   the flags a container without a display, GPU or sandbox needs;
//! - one chromedriver per test on a free port, and a throwaway profile (`tempfile`), so tests
//!   run side by side;
//! - elements are looked for only on a page that has finished loading, and looked for again
//!   when the page replaced them (a stale reference under a redirect or a reload);
//! - text is read in one script call on a loaded page, and a page that does not show what is
//!   awaited yet is reloaded (the order page does not refresh itself when a webhook lands);
//! - the session is ended when the test ends, passed or failed, so no Chromium outlives it.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::time::{sleep, Instant};

/// How long an element may take to appear once its page has loaded.
const FIND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long chromedriver may take to listen, on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a page may take to load (a form post waits on DHMAD), on a busy machine.
const PAGE_LOAD_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Browser {
    client: Client,
    driver: Child,
    port: u16,
    session: String,
    // Dropped after `Drop::drop` has ended the session, so Chromium is gone when it is removed.
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where chromedriver is (Debian's `chromium-driver` package), unless `CHROMEDRIVER` says.
fn driver_path() -> Option<String> {
    let candidates = [
        std::env::var("CHROMEDRIVER").ok(),
        Some("/usr/bin/chromedriver".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| std::path::Path::new(p).exists())
}

/// Where Chromium is (Debian's `chromium` package), unless `CHROMIUM` says.
fn chromium_path() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Whether chromedriver answers on `port` (its `GET /status`).
async fn is_chromedriver(port: u16) -> bool {
    if TcpStream::connect(("127.0.0.1", port)).is_err() {
        return false;
    }
    let status = async {
        reqwest::get(format!("http://127.0.0.1:{port}/status"))
            .await
            .ok()?
            .text()
            .await
            .ok()
    };
    tokio::time::timeout(Duration::from_secs(5), status)
        .await
        .ok()
        .flatten()
        .is_some_and(|body| body.contains("ChromeDriver"))
}

/// Starts chromedriver on a free port and waits until it listens. The port is free when
/// picked but could be taken before chromedriver binds it: a chromedriver that exits at once
/// is started again on another port.
async fn spawn_driver(path: &str) -> (Child, u16) {
    for _ in 0..3 {
        let port = free_port();
        let mut driver = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // chromedriver's own answer, not only a listener: another test's server may have
            // taken the port first (chromedriver then exits, and is started again).
            if is_chromedriver(port).await {
                return (driver, port);
            }
            if driver.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                let _ = driver.kill();
                let _ = driver.wait();
                break;
            }
            sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("chromedriver ({path}) did not start listening");
}

impl Browser {
    /// Starts chromedriver and opens a headless Chromium session with a fresh profile.
    pub async fn start() -> Browser {
        let path = driver_path().expect(
            "chromedriver not found: install Debian's chromium and chromium-driver \
             (scripts/ensure-chromium does), or set CHROMEDRIVER",
        );
        let profile = tempfile::Builder::new()
            .prefix("storefront-e2e-")
            .tempdir()
            .expect("Chromium profile directory");
        let (driver, port) = spawn_driver(&path).await;
        let caps = json!({
            "browserName": "chrome",
            "timeouts": { "pageLoad": PAGE_LOAD_TIMEOUT.as_secs() * 1000 },
            "goog:chromeOptions": {
                "binary": chromium_path(),
                // No display, no GPU, no setuid sandbox (root in a container), a small /dev/shm,
                // and no background traffic to Google that could slow a test or make it flaky.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", "--window-size=1100,900",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        });
        let caps = caps.as_object().unwrap().clone();
        // Plain HTTP to a chromedriver on this machine: no TLS connector needed.
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("could not start Chromium: {e}"));
        let session = client
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("a WebDriver session id");
        Browser {
            client,
            driver,
            port,
            session,
            _profile: profile,
        }
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .unwrap_or_else(|e| panic!("current url: {e}"))
            .into()
    }

    async fn source(&self) -> String {
        self.client.source().await.unwrap_or_default()
    }

    /// Whether the current page has finished loading and has a body; `false` too when the
    /// script could not run (the page is being replaced).
    async fn loaded(&self) -> bool {
        self.client
            .execute(
                "return document.readyState === 'complete' && !!document.body;",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    /// The visible text of the page once it has fully loaded, read in one script call so that
    /// no element reference can go stale under a navigation; `None` while a page is loading.
    async fn text(&self) -> Option<String> {
        self.client
            .execute(
                "return document.readyState === 'complete' && document.body \
                 ? document.body.innerText : null;",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
    }

    /// The first element matching a CSS selector on a loaded page, waiting up to
    /// `FIND_TIMEOUT` for it (panics with the page source when it never comes). A page still
    /// loading is not searched: the element found there could be the previous page's.
    async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + FIND_TIMEOUT;
        loop {
            if self.loaded().await {
                // Short rounds, so that a page that navigates meanwhile is checked again for
                // having loaded before it is searched.
                let found = self
                    .client
                    .wait()
                    .at_most(Duration::from_secs(1))
                    .every(Duration::from_millis(100))
                    .for_element(Locator::Css(css))
                    .await;
                if let Ok(el) = found {
                    return el;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "no element `{css}` on {}:\n{}",
                    self.url().await,
                    self.source().await
                );
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// Finds an element and does one thing with it, finding it again if the page replaced it
    /// in between (a reload or a redirect landing). Returns the root element of the page the
    /// action was done on, so that a caller can tell when the browser has left that page.
    async fn on_element<F, Fut>(&self, css: &str, what: &str, act: F) -> Element
    where
        F: Fn(Element) -> Fut,
        Fut: std::future::Future<Output = Result<(), CmdError>>,
    {
        let deadline = Instant::now() + FIND_TIMEOUT;
        loop {
            let el = self.find(css).await;
            // Taken after `el`: if the page changed in between, acting on `el` fails as stale
            // and both are found again.
            let page = self.client.find(Locator::Css("html")).await;
            let done = match page {
                Ok(page) => act(el).await.map(|()| page),
                Err(e) => Err(e),
            };
            match done {
                Ok(page) => return page,
                Err(e) if gone(&e) && Instant::now() <= deadline => {}
                Err(e) => panic!("{what} `{css}`: {e}"),
            }
        }
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        self.on_element(
            css,
            "type into",
            |el| async move { el.send_keys(text).await },
        )
        .await;
    }

    /// Presses a button that submits a form, then waits until the browser has left the page.
    /// Until then the page is still the one with the button, complete: `wait_for_text` would
    /// read it, and could reload it, cancelling the submission.
    pub async fn click(&self, css: &str) {
        let page = self
            .on_element(css, "click", |el| async move { el.click().await })
            .await;
        let deadline = Instant::now() + PAGE_LOAD_TIMEOUT;
        loop {
            match page.tag_name().await {
                Err(e) if gone(&e) => return,
                _ if Instant::now() > deadline => {
                    panic!("clicking `{css}` never left {}", self.url().await)
                }
                _ => sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Waits for the page to show `needle` without ever reloading it: what the page does by
    /// itself (a `<meta http-equiv="refresh">`, a redirect) is all that may change it.
    pub async fn wait_untouched_for_text(&self, needle: &str, secs: u64) -> String {
        self.wait_text(needle, secs, false).await
    }

    /// Polls until the page text contains `needle`, reloading between looks; returns the text.
    pub async fn wait_for_text(&self, needle: &str, secs: u64) -> String {
        self.wait_text(needle, secs, true).await
    }

    async fn wait_text(&self, needle: &str, secs: u64, reload: bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let loaded = self.text().await;
            let text = loaded.clone().unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!(
                    "page {} never showed `{needle}`{}; it shows:\n{text}",
                    self.url().await,
                    if reload { "" } else { " by itself" }
                );
            }
            sleep(Duration::from_millis(200)).await;
            // Reload only a page that has finished loading, so that an in-flight navigation (a
            // form post and its redirects) is never cut short.
            if reload && loaded.is_some() {
                let _ = self.client.refresh().await;
            }
        }
    }
}

impl Drop for Browser {
    /// Ends the WebDriver session, which makes chromedriver quit its Chromium, then stops
    /// chromedriver: killing chromedriver alone would leave Chromium running. Done on drop so
    /// that a test that panicked cleans up too. fantoccini's `close` is async and the test's
    /// runtime is single-threaded and blocked here, so the session is ended from a thread of
    /// its own, through a second handle on the same session.
    fn drop(&mut self) {
        let url = format!("http://127.0.0.1:{}", self.port);
        let session = self.session.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let Ok(c) =
                    Client::with_existing_session(&url, &session, HttpConnector::new()).await
                else {
                    return;
                };
                let _ = tokio::time::timeout(Duration::from_secs(20), c.close()).await;
            });
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Whether an element reference belongs to a page that is no longer shown. chromedriver says
/// "stale element reference"; "no such element", which WebDriver also allows for an element
/// of a discarded document, is taken the same way.
fn gone(e: &CmdError) -> bool {
    e.is_stale_element_reference() || e.is_no_such_element()
}
