//! A minimal W3C WebDriver client over reqwest, driving Debian's headless Chromium through
//! chromedriver: enough to click through the shop as a buyer would. No extra crate needed: the
//! protocol is a handful of JSON calls.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop (Chromium's throwaway profile).
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where chromedriver and Chromium are (Debian's `chromium-driver` and `chromium` packages).
pub fn driver_path() -> Option<String> {
    let candidates = [
        std::env::var("CHROMEDRIVER").ok(),
        Some("/usr/bin/chromedriver".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| std::path::Path::new(p).exists())
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session.
    pub async fn start() -> Browser {
        let path = driver_path().expect(
            "chromedriver not found: install Debian's chromium and chromium-driver \
             (scripts/ensure-chromium does), or set CHROMEDRIVER",
        );
        let port = free_port();
        let driver = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                let v: Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(format!("storefront-e2e-{}", uuid::Uuid::new_v4()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", "--window-size=1100,900",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("could not start Chromium: {}", r["value"]["message"]))
            .to_owned();
        Browser {
            driver,
            base,
            session,
            http,
            _profile: tempdir::Dir(profile),
        }
    }

    /// One WebDriver command; `Err` carries WebDriver's error object (e.g. a stale element while
    /// the page navigates), which the callers below retry until their deadline.
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        // WebDriver wants a JSON body (even `{}`) on every POST.
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("chromedriver answers JSON");
        match v["value"].get("error") {
            Some(_) => Err(v["value"].clone()),
            None => Ok(v["value"].clone()),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("webdriver {path}: {}", e["message"]))
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn source(&self) -> String {
        self.try_call(reqwest::Method::GET, "/source", None)
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Runs a script in the page; `None` when it could not (e.g. the page is being replaced).
    async fn script(&self, script: &str) -> Option<Value> {
        self.try_call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
        .ok()
    }

    /// Whether the current page has finished loading and has a body.
    async fn loaded(&self) -> bool {
        self.script("return document.readyState === 'complete' && !!document.body;")
            .await
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    /// The visible text of the page once it has fully loaded, read in one script call so that
    /// no element reference can go stale under a navigation; `None` while a page is loading.
    pub async fn text(&self) -> Option<String> {
        self.script(
            "return document.readyState === 'complete' && document.body \
             ? document.body.innerText : null;",
        )
        .await
        .and_then(|v| v.as_str().map(str::to_owned))
    }

    /// The first element matching a CSS selector on a loaded page, waiting up to ten seconds
    /// for it (panics with the page source when it never comes).
    pub async fn find(&self, css: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if self.loaded().await {
                let found = self
                    .try_call(
                        reqwest::Method::POST,
                        "/element",
                        Some(json!({"using": "css selector", "value": css})),
                    )
                    .await;
                // A found element is `{"element-6066-…": id}`: one key, whose value is the reference.
                if let Some(id) = found.ok().as_ref().and_then(element_id) {
                    return id;
                }
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "no element `{css}` on {}:\n{}",
                    self.url().await,
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Finds an element and sends it one command, finding it again if the page replaced it in
    /// between (a reload or a redirect landing).
    async fn on_element(&self, css: &str, action: &str, body: Value) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let el = self.find(css).await;
            match self
                .try_call(
                    reqwest::Method::POST,
                    &format!("/element/{el}/{action}"),
                    Some(body.clone()),
                )
                .await
            {
                Ok(_) => return,
                Err(e) if e["error"] == "stale element reference" => {
                    if tokio::time::Instant::now() > deadline {
                        panic!("`{css}` kept going stale");
                    }
                }
                Err(e) => panic!("webdriver {action} on `{css}`: {}", e["message"]),
            }
        }
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, "value", json!({ "text": text })).await;
    }

    pub async fn click(&self, css: &str) {
        self.on_element(css, "click", json!({})).await;
    }

    /// Polls until the page text contains `needle`, reloading between looks.
    pub async fn wait_for_text(&self, needle: &str, secs: u64) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let loaded = self.text().await;
            let text = loaded.clone().unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "page {} never showed `{needle}`; it shows:\n{text}",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            // Reload only a page that has finished loading, so that an in-flight navigation (a
            // form post and its redirects) is never cut short.
            if loaded.is_some() {
                let _ = self
                    .try_call(reqwest::Method::POST, "/refresh", Some(json!({})))
                    .await;
            }
        }
    }
}

/// The reference in a WebDriver element object (`{"element-6066-11e4-a52e-4f735466cecf": id}`).
fn element_id(v: &Value) -> Option<String> {
    v.as_object()?.values().next()?.as_str().map(str::to_owned)
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver closes its Chromium when it exits.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
