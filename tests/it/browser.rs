//! The browser pages (`/console`, `/chat`) in headless Chromium, driven through chromedriver
//! (WebDriver) with fantoccini, against a real relay and PostgreSQL. Needs Debian's `chromium` and
//! `chromium-driver` packages (.ci/run installs them); without them these tests fail, on purpose.
//! Screenshots and, on failure, the browser's console log go to `target/browser-artifacts/`.

use crate::support::*;
use fantoccini::key::Key;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest any one thing may take to show up in a page.
const UI_WAIT: Duration = Duration::from_secs(10);

fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/browser-artifacts");
    dir
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn chromium_binary() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| on_path("chromium"))
        .unwrap_or_else(|| {
            panic!(
                "Chromium is not installed, so the browser tests cannot run. Install Debian's \
                 packages: apt-get install -y chromium chromium-driver (.ci/run does this in CI)"
            )
        })
}

fn chromedriver_binary() -> PathBuf {
    on_path("chromedriver").unwrap_or_else(|| {
        panic!(
            "chromedriver is not installed, so the browser tests cannot run. Install Debian's \
             packages: apt-get install -y chromium chromium-driver (.ci/run does this in CI)"
        )
    })
}

/// Fails at once, with the fix, when the browser or its driver is missing.
fn require_browser() {
    chromium_binary();
    chromedriver_binary();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A chromedriver process of this test, in its own process group: dropping it kills the group,
/// so the Chromium processes it started go too, even when a test panics.
struct Chromedriver {
    child: std::process::Child,
    url: String,
}

impl Chromedriver {
    async fn start() -> Chromedriver {
        use std::os::unix::process::CommandExt;
        let path = chromedriver_binary();
        let port = free_port();
        let log = std::fs::File::create(artifacts_dir().join(format!("chromedriver-{port}.log")))
            .expect("chromedriver log");
        let child = std::process::Command::new(path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let status = format!("{}/status", driver.url);
        eventually(UI_WAIT, "chromedriver answers /status", || {
            let req = http.get(&status).timeout(Duration::from_secs(1)).send();
            async move {
                match req.await {
                    Ok(r) => r
                        .json::<Value>()
                        .await
                        .map(|v| v["value"]["ready"] == true)
                        .unwrap_or(false),
                    Err(_) => false,
                }
            }
        })
        .await;
        driver
    }

    /// A new browser (its own Chromium with a fresh profile).
    async fn browser(&self, name: &str) -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("gre-relay-chromium-")
            .tempdir_in(scratch_root())
            .expect("profile dir");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_binary(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-quic",
                    "--disable-extensions",
                    "--disable-features=Translate,MediaRouter",
                    "--force-device-scale-factor=1",
                    "--window-size=1360,860",
                    "--lang=en-GB",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
            "unhandledPromptBehavior": "ignore",
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let caps: Capabilities = caps;
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            Duration::from_secs(60),
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&self.url),
        )
        .await
        .expect("Chromium started in time")
        .expect("WebDriver session");
        client
            .set_window_size(1360, 860)
            .await
            .expect("window size");
        Browser {
            client,
            name: name.to_owned(),
            driver_url: self.url.clone(),
            _profile: profile,
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// One browser window on one page, with bounded waits.
struct Browser {
    client: Client,
    name: String,
    driver_url: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Opens `page_url` signed in with `token` (given as `#token=`, as the printed links do) and
    /// waits until the page is connected.
    async fn sign_in(&self, page_url: String, token: String) {
        self.goto(&format!("{page_url}#token={token}")).await;
        self.wait_state("connected", UI_WAIT).await;
    }

    /// Console only: opens the thread of `session` from the session list.
    async fn open_thread(&self, session: uuid::Uuid) {
        self.wait_css(&format!(
            "[data-testid=session-item][data-session-id='{session}']"
        ))
        .await
        .click()
        .await
        .expect("open the thread");
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        match self.client.execute(script, args).await {
            Ok(v) => v,
            Err(e) => self.fail(&format!("script failed: {e}")).await,
        }
    }

    /// Polls `script` (which returns a value) until `ok` accepts it, within `limit`.
    async fn wait_js(
        &self,
        what: &str,
        limit: Duration,
        script: &str,
        args: Vec<Value>,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        let mut last = Value::Null;
        loop {
            if let Ok(v) = self.client.execute(script, args.clone()).await {
                if ok(&v) {
                    return v;
                }
                last = v;
            }
            if tokio::time::Instant::now() >= deadline {
                self.fail(&format!(
                    "not within {limit:?}: {what} (last value: {last})"
                ))
                .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_css(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = tokio::time::Instant::now() + UI_WAIT;
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                if e.is_displayed().await.unwrap_or(false) {
                    return e;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                self.fail(&format!("no visible element '{css}' within {UI_WAIT:?}"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The connection indicator as `[data-state, text]` (for messages; never fails).
    async fn connection_state(&self) -> String {
        self.client
            .execute(
                "const e = document.querySelector('[data-testid=connection-status]'); \
                 return e ? [e.getAttribute('data-state'), e.textContent] : null;",
                vec![],
            )
            .await
            .map(|v| v.to_string())
            .unwrap_or_else(|e| format!("(unknown: {e})"))
    }

    /// Waits for the connection indicator to show `state` (attribute and text alike).
    async fn wait_state(&self, state: &str, limit: Duration) {
        self.wait_js(
            &format!("connection status '{state}'"),
            limit,
            "const e = document.querySelector('[data-testid=connection-status]'); \
             return e ? [e.getAttribute('data-state'), e.textContent.trim()] : null;",
            vec![],
            |v| v[0] == state && v[1] == state,
        )
        .await;
    }

    /// The messages shown: [{id, sender, text}], in page order.
    async fn messages(&self) -> Vec<Value> {
        let v = self
            .js(
                "return Array.from(document.querySelectorAll('[data-testid=message]')).map(e => ({\
                   id: e.getAttribute('data-message-id'), sender: e.getAttribute('data-sender'), \
                   status: e.getAttribute('data-status'), \
                   text: e.querySelector('.msg-text').textContent}));",
                vec![],
            )
            .await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// Waits until a message with exactly this text is shown; returns its id.
    async fn wait_message(&self, text: &str) -> String {
        let found = self
            .wait_js(
                &format!("a message '{text}'"),
                UI_WAIT,
                "const want = arguments[0]; \
                 const e = Array.from(document.querySelectorAll('[data-testid=message]')) \
                   .find(e => e.querySelector('.msg-text').textContent === want); \
                 return e ? e.getAttribute('data-message-id') : null;",
                vec![json!(text)],
                |v| v.is_string(),
            )
            .await;
        found.as_str().unwrap_or_default().to_owned()
    }

    /// Types into the reply box (a line break as Shift+Enter) and presses Enter to send.
    /// (ChromeDriver types characters of the Basic Multilingual Plane only: no emoji.)
    async fn send(&self, text: &str) {
        let input = self.wait_css("[data-testid=reply-input]").await;
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                let shift_enter = format!("{}{}{}", &*Key::Shift, &*Key::Enter, &*Key::Shift);
                input.send_keys(&shift_enter).await.expect("shift+enter");
            }
            input.send_keys(line).await.expect("type");
        }
        input.send_keys(&Key::Enter).await.expect("enter");
    }

    async fn screenshot(&self, file: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = artifacts_dir().join(file);
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Saves a screenshot and the browser console, then panics with `why`.
    async fn fail(&self, why: &str) -> ! {
        let shot = format!("FAILED-{}.png", self.name);
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(artifacts_dir().join(&shot), png);
        }
        let log = self.console_log().await;
        let _ = std::fs::write(
            artifacts_dir().join(format!("FAILED-{}-console.log", self.name)),
            &log,
        );
        panic!(
            "[{}] {why}\nconnection: {}\nbrowser console:\n{log}\n(screenshot: target/browser-artifacts/{shot})",
            self.name,
            self.connection_state().await
        );
    }

    /// The browser's console messages (chromedriver's log endpoint), best effort.
    async fn console_log(&self) -> String {
        let Ok(Some(id)) = self.client.session_id().await else {
            return String::new();
        };
        let url = format!("{}/session/{id}/se/log", self.driver_url);
        let res = reqwest::Client::new()
            .post(url)
            .json(&json!({"type": "browser"}))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        match res {
            Ok(r) => r
                .json::<Value>()
                .await
                .map(|v| {
                    v["value"]
                        .as_array()
                        .map(|entries| {
                            entries
                                .iter()
                                .map(|e| format!("{} {}", e["level"], e["message"]))
                                .collect::<Vec<_>>()
                                .join("\n")
                        })
                        .unwrap_or_default()
                })
                .unwrap_or_default(),
            Err(e) => format!("(no log: {e})"),
        }
    }

    /// Fails if the page logged errors (a CSP violation, an exception).
    async fn assert_no_console_errors(&self) {
        let log = self.console_log().await;
        let errors: Vec<&str> = log
            .lines()
            .filter(|l| l.starts_with("\"SEVERE\""))
            // The favicon request and a deliberately interrupted connection are not page errors.
            .filter(|l| !l.contains("favicon") && !l.contains("WebSocket connection to"))
            .collect();
        assert!(
            errors.is_empty(),
            "[{}] console errors:\n{}",
            self.name,
            errors.join("\n")
        );
    }

    async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.client.close()).await;
    }
}

async fn db_one_i64(db: &tokio_postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.expect("query").get(0)
}

async fn insert_gre_message(db: &tokio_postgres::Client, session: uuid::Uuid, text: &str) {
    db.execute(
        "insert into gre_chat_messages (session_id, sender, sender_id, sender_name, message) \
         values ($1, 'gre', 'staff-7', 'Anna', $2)",
        &[&session, &text],
    )
    .await
    .expect("insert message");
}

async fn open_session_of(db: &tokio_postgres::Client, player_id: i64) -> uuid::Uuid {
    db.query_one(
        "select id from gre_chat_sessions where player_id = $1 and status <> 'closed'",
        &[&player_id],
    )
    .await
    .expect("the player's open session")
    .get(0)
}

/// The whole round trip between a player on /chat and a GRE on /console: live delivery both
/// ways, a row written straight into the database, assignment, read receipts, typing, and markup
/// shown as text. Ends with screenshots of both pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_console_talk_live() {
    require_browser();
    let env = TestEnv::start().await;
    let db = env.db().await;
    // About the pages themselves: the desk's automatic assignment and auto-replies stay out.
    desk_off(&db).await;
    // The pages and their assets, as the relay serves them.
    for (path, kind) in [
        ("/console", "text/html; charset=utf-8"),
        ("/chat", "text/html; charset=utf-8"),
        ("/static/app.css", "text/css; charset=utf-8"),
        ("/static/console.js", "text/javascript; charset=utf-8"),
    ] {
        let res = reqwest::get(env.http_url(path)).await.expect("GET");
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        assert_eq!(h["content-type"], kind, "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(
            h["content-security-policy"],
            gre_relay::http::pages::CONTENT_SECURITY_POLICY_VALUE,
            "{path}"
        );
    }

    let driver = Chromedriver::start().await;
    let (staff, player) = tokio::join!(driver.browser("console"), driver.browser("chat"));

    // The staff console, signed in from the address fragment, which it then removes.
    staff
        .goto(&format!(
            "{}#token={}",
            env.http_url("/console"),
            staff_token("staff-7")
        ))
        .await;
    staff.wait_state("connected", UI_WAIT).await;
    let url = staff.client.current_url().await.expect("url");
    assert!(
        !url.as_str().contains("token"),
        "the token stays in the address bar: {url}"
    );
    staff.wait_css(".sidebar").await;
    staff.wait_css("#thread-empty").await;
    staff.screenshot("console-empty.png").await;

    // The player's chat, signed in through the form: a GRE is online.
    player.goto(&env.http_url("/chat")).await;
    let token_input = player.wait_css("[data-testid=token-input]").await;
    player.screenshot("chat-signin.png").await;
    token_input
        .send_keys(&player_token(29))
        .await
        .expect("paste token");
    player
        .wait_css("[data-testid=sign-in]")
        .await
        .click()
        .await
        .expect("sign in");
    player.wait_state("connected", UI_WAIT).await;
    player
        .wait_js(
            "the player sees that a GRE is online",
            UI_WAIT,
            "return document.querySelector('[data-testid=gre-online]').getAttribute('data-online');",
            vec![],
            |v| v == "true",
        )
        .await;
    let player_url = player.client.current_url().await.expect("url");
    assert!(!player_url.as_str().contains("token"), "{player_url}");

    // Player -> console, live: a new session appears in the list with an unread count.
    player
        .send("Hi! Is there a seat at the 2/5 NL table?")
        .await;
    player
        .wait_message("Hi! Is there a seat at the 2/5 NL table?")
        .await;
    let session = open_session_of(&db, 29).await;
    let item = format!("[data-testid=session-item][data-session-id='{session}']");
    staff.wait_css(&item).await;
    staff
        .wait_js(
            "the new session shows one unread message",
            UI_WAIT,
            "return document.querySelector(arguments[0]).getAttribute('data-unread');",
            vec![json!(item)],
            |v| v == "1",
        )
        .await;
    staff.wait_css(&item).await.click().await.expect("open");
    staff
        .wait_message("Hi! Is there a seat at the 2/5 NL table?")
        .await;
    // Viewing the thread marks the player's message read.
    eventually(UI_WAIT, "the player's message is read", || async {
        db_one_i64(
            &db,
            "select count(*) from gre_chat_messages where sender = 'player' and status <> 'read'",
        )
        .await
            == 0
    })
    .await;

    // Typing shows on the other side.
    let input = staff.wait_css("[data-testid=reply-input]").await;
    input.send_keys("Let me").await.expect("type");
    player
        .wait_js(
            "the player sees the GRE typing",
            UI_WAIT,
            "return document.querySelector('[data-testid=typing-indicator]').textContent;",
            vec![],
            |v| v.as_str().is_some_and(|t| t.contains("typing")),
        )
        .await;
    input.clear().await.expect("clear");

    // Console -> player, live.
    staff
        .send("Yes, seat 4 is yours. Please see the floor manager.")
        .await;
    player
        .wait_message("Yes, seat 4 is yours. Please see the floor manager.")
        .await;
    staff
        .wait_message("Yes, seat 4 is yours. Please see the floor manager.")
        .await;
    // The player's page marks it read; the console shows the receipt.
    staff
        .wait_js(
            "the GRE's reply shows as read",
            UI_WAIT,
            "const e = Array.from(document.querySelectorAll('[data-testid=message][data-sender=gre]')).pop(); \
             return e ? e.getAttribute('data-status') : null;",
            vec![],
            |v| v == "read",
        )
        .await;

    // Assign to me: the list and the database follow.
    staff
        .wait_css("[data-testid=assign]")
        .await
        .click()
        .await
        .expect("assign");
    eventually(UI_WAIT, "assigned in the database", || async {
        db.query_one(
            "select coalesce(assigned_gre_id, '') from gre_chat_sessions where id = $1",
            &[&session],
        )
        .await
        .expect("query")
        .get::<_, String>(0)
            == "staff-7"
    })
    .await;
    staff
        .wait_js(
            "the thread header shows the assignment",
            UI_WAIT,
            "return document.querySelector('#thread-assignee').textContent;",
            vec![],
            |v| v == "Assigned to you",
        )
        .await;

    // A row written by another portal straight into the database reaches both pages.
    insert_gre_message(&db, session, "Your table is ready").await;
    let (a, b) = tokio::join!(
        player.wait_message("Your table is ready"),
        staff.wait_message("Your table is ready")
    );
    assert_eq!(a, b, "the same message id on both pages");

    // Markup is text: shown literally, never parsed (no <img>, no alert).
    let evil = "<img src=x onerror=alert(1)> & <b>bold</b>";
    player.send(evil).await;
    player.wait_message(evil).await;
    staff.wait_message(evil).await;
    for page in [&player, &staff] {
        let images = page
            .js(
                "return document.querySelectorAll('[data-testid=message-list] img, [data-testid=session-list] img, [data-testid=message-list] b').length;",
                vec![],
            )
            .await;
        assert_eq!(images, json!(0), "[{}] markup was parsed", page.name);
        let shown = page
            .js(
                "return Array.from(document.querySelectorAll('[data-testid=message]')).map(e => e.textContent).join('\\n');",
                vec![],
            )
            .await;
        assert!(
            shown.as_str().unwrap_or_default().contains(evil),
            "[{}] the literal text is not shown: {shown}",
            page.name
        );
    }
    staff
        .wait_js(
            "the session preview shows the markup as text",
            UI_WAIT,
            "return document.querySelector(arguments[0] + ' [data-testid=session-preview]').textContent;",
            vec![json!(item)],
            |v| v.as_str().is_some_and(|t| t.contains(evil)),
        )
        .await;

    // No duplicates anywhere, in order.
    for page in [&player, &staff] {
        let shown = page.messages().await;
        let mut ids: Vec<&str> = shown.iter().filter_map(|m| m["id"].as_str()).collect();
        assert_eq!(ids.len(), 4, "[{}] {shown:?}", page.name);
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 4, "[{}] duplicates: {shown:?}", page.name);
    }

    // A little more conversation for the screenshots.
    staff.send("Enjoy the game! ♠").await;
    player.wait_message("Enjoy the game! ♠").await;
    player
        .send("Thanks a lot.\nCould you also put me on the list for the 5/10 game?")
        .await;
    staff
        .wait_message("Thanks a lot.\nCould you also put me on the list for the 5/10 game?")
        .await;
    // A second player waiting, so the console's list has more than one row.
    let other = env.open_session(112).await;
    db.execute(
        "insert into gre_chat_messages (session_id, sender, sender_id, message) \
         values ($1, 'player', '112', 'Hello, I left my jacket at table 9 last night')",
        &[&other],
    )
    .await
    .expect("insert");
    staff
        .wait_css(&format!(
            "[data-testid=session-item][data-session-id='{other}'][data-unread='1']"
        ))
        .await;
    staff.wait_state("connected", UI_WAIT).await;
    let console_png = staff.screenshot("console.png").await;
    let chat_png = player.screenshot("chat.png").await;
    eprintln!(
        "screenshots: {} {}",
        console_png.display(),
        chat_png.display()
    );

    // Close (two clicks: arm, confirm): the database, the console and the player follow.
    let close = staff.wait_css("[data-testid=close-session]").await;
    close.click().await.expect("arm close");
    close.click().await.expect("confirm close");
    eventually(UI_WAIT, "the session is closed", || async {
        db.query_one(
            "select status from gre_chat_sessions where id = $1",
            &[&session],
        )
        .await
        .expect("query")
        .get::<_, String>(0)
            == "closed"
    })
    .await;
    staff
        .wait_js(
            "the console shows the session closed",
            UI_WAIT,
            "return document.querySelector('[data-testid=thread-status]').textContent;",
            vec![],
            |v| v == "closed",
        )
        .await;
    player
        .wait_js(
            "the player is told the conversation was closed",
            UI_WAIT,
            "return document.querySelector('[data-testid=message-list]').textContent;",
            vec![],
            |v| v.as_str().is_some_and(|t| t.contains("was closed")),
        )
        .await;
    player.screenshot("chat-closed.png").await;

    // Writing again opens a new session: the player follows it, the console lists it.
    player.send("One more thing: is the bar still open?").await;
    player
        .wait_message("One more thing: is the bar still open?")
        .await;
    let reopened = open_session_of(&db, 29).await;
    assert_ne!(reopened, session);
    staff
        .wait_css(&format!(
            "[data-testid=session-item][data-session-id='{reopened}'][data-unread='1']"
        ))
        .await;
    insert_gre_message(&db, reopened, "It is, until 2 am").await;
    player.wait_message("It is, until 2 am").await;

    // The console on a phone-sized screen (the list; then a thread).
    staff
        .client
        .set_window_size(400, 800)
        .await
        .expect("resize");
    staff.screenshot("console-narrow-thread.png").await;
    player
        .client
        .set_window_size(400, 800)
        .await
        .expect("resize");
    player.wait_message("It is, until 2 am").await;
    player.screenshot("chat-narrow.png").await;
    staff
        .wait_css("#back")
        .await
        .click()
        .await
        .expect("back to the list");
    staff
        .wait_css(&format!(
            "[data-testid=session-item][data-session-id='{other}']"
        ))
        .await;
    staff.screenshot("console-narrow-list.png").await;

    staff.assert_no_console_errors().await;
    player.assert_no_console_errors().await;
    tokio::join!(staff.close(), player.close());
}

/// The relay stops and comes back on the same port: both pages show that they lost the
/// connection, reconnect by themselves, resume (a message written while the relay was down shows
/// up), and follow live messages again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_reconnect_and_resume_after_a_relay_restart() {
    require_browser();
    let env = TestEnv::start().await;
    let db = env.db().await;
    // About the pages themselves: the desk's automatic assignment and auto-replies stay out.
    desk_off(&db).await;
    let mut relay = RelayProcess::spawn(&env.url).await;
    let port: u16 = relay
        .http_base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in the banner");
    let session = env.open_session(29).await;
    insert_gre_message(&db, session, "Welcome back to the club").await;

    let driver = Chromedriver::start().await;
    let (staff, player) = tokio::join!(
        driver.browser("console-restart"),
        driver.browser("chat-restart")
    );
    tokio::join!(
        player.sign_in(format!("{}/chat", relay.http_base), player_token(29)),
        staff.sign_in(
            format!("{}/console", relay.http_base),
            staff_token("staff-7")
        )
    );
    player.wait_message("Welcome back to the club").await;
    staff.open_thread(session).await;
    staff.wait_message("Welcome back to the club").await;

    // The relay goes away: both pages say so.
    relay.terminate().await;
    for page in [&player, &staff] {
        page.wait_js(
            "the page shows it is not connected",
            UI_WAIT,
            "return document.querySelector('[data-testid=connection-status]').getAttribute('data-state');",
            vec![],
            |v| v.as_str().is_some_and(|s| s != "connected"),
        )
        .await;
    }
    let shown = player.connection_state().await;
    assert!(shown.contains("reconnecting"), "{shown}");
    // Typed while offline: shown as pending, sent once the connection is back.
    player.send("Typed while offline").await;
    player
        .wait_js(
            "the offline message waits as pending",
            UI_WAIT,
            "return document.querySelectorAll('[data-testid=pending-message]').length;",
            vec![],
            |v| v == 1,
        )
        .await;
    player.screenshot("chat-reconnecting.png").await;
    // Written while no relay runs: only a resume can deliver it.
    insert_gre_message(&db, session, "Sent while the relay was down").await;

    // The relay is back on the same port: the pages reconnect by themselves and catch up.
    let _relay = RelayProcess::spawn_on(&env.url, port).await;
    let back = Duration::from_secs(45);
    player.wait_state("connected", back).await;
    staff.wait_state("connected", back).await;
    player.wait_message("Sent while the relay was down").await;
    staff.wait_message("Sent while the relay was down").await;
    player.wait_message("Typed while offline").await;
    staff.wait_message("Typed while offline").await;

    // And live again.
    insert_gre_message(&db, session, "And this one after the restart").await;
    player.wait_message("And this one after the restart").await;
    staff.wait_message("And this one after the restart").await;
    player.send("Great, thanks!").await;
    staff.wait_message("Great, thanks!").await;

    for page in [&player, &staff] {
        let shown = page.messages().await;
        let mut ids: Vec<&str> = shown.iter().filter_map(|m| m["id"].as_str()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!((n, ids.len()), (5, 5), "[{}] {shown:?}", page.name);
    }
    assert_eq!(
        db_one_i64(
            &db,
            "select count(*) from gre_chat_messages where message = 'Typed while offline'"
        )
        .await,
        1,
        "stored once"
    );
    player.screenshot("chat-after-restart.png").await;
    tokio::join!(staff.close(), player.close());
}

/// A token signed with the harness secret that runs out at `exp` (Unix seconds).
fn token_until(claims: serde_json::Value, exp: u64) -> String {
    let mut claims = claims;
    claims["exp"] = serde_json::json!(exp);
    claims["aud"] = serde_json::json!("authenticated");
    gre_relay::auth::mint_raw(SECRET, &claims)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test]
async fn pages_say_when_the_sign_in_ran_out_and_resume_with_a_new_token() {
    require_browser();
    let mut settings = test_settings();
    settings.auth.leeway_seconds = 0;
    let env = TestEnv::start_with(settings).await;
    let db = env.db().await;
    // About the pages themselves: the desk's automatic assignment and auto-replies stay out.
    desk_off(&db).await;
    let session = env.open_session(61).await;
    insert_gre_message(&db, session, "Hello before the expiry").await;

    let player_claims = serde_json::json!({"sub": "user-61", "role": "authenticated", "app_metadata": {"player_id": 61}});
    let staff_claims = serde_json::json!({"sub": "staff-9", "role": "authenticated", "app_metadata": {"role": "gre_staff"}, "user_metadata": {"name": "Ben"}});
    let driver = Chromedriver::start().await;
    let (staff, player) = tokio::join!(
        driver.browser("console-expiry"),
        driver.browser("chat-expiry")
    );
    let soon = unix_now() + 6;
    tokio::join!(
        player.sign_in(
            env.http_url("/chat"),
            token_until(player_claims.clone(), soon)
        ),
        staff.sign_in(
            env.http_url("/console"),
            token_until(staff_claims.clone(), soon)
        )
    );
    player.wait_message("Hello before the expiry").await;

    // The token runs out: both pages say so, and stop reconnecting.
    let banner_state = "const b = document.querySelector('[data-testid=token-expired]'); \
                        return b && !b.hidden ? b.getAttribute('data-state') : null;";
    for page in [&player, &staff] {
        page.wait_js(
            "the page says the sign-in ran out",
            Duration::from_secs(15),
            banner_state,
            vec![],
            |v| v == "expired",
        )
        .await;
        let shown = page.connection_state().await;
        assert!(shown.starts_with("[\"disconnected\""), "{shown}");
    }
    // Written while the pages are signed out: only a resume brings it.
    insert_gre_message(&db, session, "Written while your sign-in was out").await;
    player.screenshot("chat-token-expired.png").await;
    staff.screenshot("console-token-expired.png").await;

    // A fresh token of the same identity, pasted: the pages carry on where they were.
    for (page, claims) in [(&player, &player_claims), (&staff, &staff_claims)] {
        let fresh = token_until(claims.clone(), unix_now() + 3600);
        page.wait_css("[data-testid=renew-token-input]")
            .await
            .send_keys(&fresh)
            .await
            .expect("type the new token");
        page.wait_css("[data-testid=renew-token]")
            .await
            .click()
            .await
            .expect("continue");
        page.wait_state("connected", UI_WAIT).await;
    }
    player
        .wait_message("Written while your sign-in was out")
        .await;
    staff.open_thread(session).await;
    staff
        .wait_message("Written while your sign-in was out")
        .await;
    // Live again, both ways, and nothing shown twice.
    player.send("Back again").await;
    staff.wait_message("Back again").await;
    let shown = player.messages().await;
    let mut ids: Vec<&str> = shown.iter().filter_map(|m| m["id"].as_str()).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!((n, ids.len()), (3, 3), "{shown:?}");
    assert!(player.js(banner_state, vec![]).await.is_null());

    // The sign-in both pages share (static/lib/signin.js): signing out forgets the tab's token and
    // shows the form; a token meant for the other page signs out again with this page's words.
    for (page, other_claims, key, words) in [
        (
            &player,
            &staff_claims,
            "gre-chat-token",
            "This is a staff token",
        ),
        (
            &staff,
            &player_claims,
            "gre-console-token",
            "This is a player token",
        ),
    ] {
        page.js(
            "document.getElementById('sign-out').click(); return null;",
            vec![],
        )
        .await;
        let input = page.wait_css("[data-testid=token-input]").await;
        let stored = page
            .js(
                "return sessionStorage.getItem(arguments[0]);",
                vec![key.into()],
            )
            .await;
        assert!(stored.is_null(), "{key} kept after sign-out: {stored}");
        let shown = page.connection_state().await;
        assert!(shown.starts_with("[\"disconnected\""), "{shown}");
        input
            .send_keys(&token_until(other_claims.clone(), unix_now() + 3600))
            .await
            .expect("type the other page's token");
        page.wait_css("[data-testid=sign-in]")
            .await
            .click()
            .await
            .expect("sign in");
        page.wait_js(
            "the page refuses a token meant for the other page",
            UI_WAIT,
            "const e = document.getElementById('signin-error'); \
             return e && !e.hidden && !document.getElementById('signin-view').hidden ? e.textContent : null;",
            vec![],
            |v| v.as_str().is_some_and(|t| t.contains(words)),
        )
        .await;
    }
    player.assert_no_console_errors().await;
    tokio::join!(staff.close(), player.close());
}

#[tokio::test]
async fn pages_show_the_new_statuses_after_one_statement_changed_many_messages() {
    require_browser();
    let env = TestEnv::start().await;
    let db = env.db().await;
    // About the pages themselves: the desk's automatic assignment and auto-replies stay out.
    desk_off(&db).await;
    let session = env.open_session(62).await;
    // 150 player messages in one statement: more than the 100 the relay announces one by one,
    // so marking them read reaches clients as one messages_updated frame.
    let insert = |sender: &'static str| {
        format!(
            "insert into gre_chat_messages (session_id, sender, sender_id, message) \
             select $1, '{sender}', {}, '{sender} line ' || g from generate_series(1, 150) g",
            if sender == "gre" { "'staff-4'" } else { "null" }
        )
    };
    db.execute(insert("player").as_str(), &[&session])
        .await
        .expect("insert");
    let statuses = "return Array.from(document.querySelectorAll('[data-testid=message]'))\
                    .map(e => e.getAttribute('data-sender') + ':' + e.getAttribute('data-status'));";
    let count = |v: &Value, what: &str| {
        v.as_array()
            .map(|a| a.iter().filter(|x| *x == what).count())
            .unwrap_or(0)
    };

    let driver = Chromedriver::start().await;
    let (staff, player) = tokio::join!(
        driver.browser("console-mass-update"),
        driver.browser("chat-mass-update")
    );
    player
        .sign_in(env.http_url("/chat"), player_token(62))
        .await;
    player.wait_message("player line 150").await;
    assert_eq!(
        count(&player.js(statuses, vec![]).await, "player:sent"),
        150
    );

    // The GRE opens the thread: the console marks the 150 read in one mark_read.
    staff
        .sign_in(env.http_url("/console"), staff_token("staff-4"))
        .await;
    staff.open_thread(session).await;
    player
        .wait_js(
            "the player sees its 150 messages read",
            UI_WAIT,
            statuses,
            vec![],
            |v| count(v, "player:read") == 150,
        )
        .await;

    // 150 GRE lines in one statement; the player's page reads them all at once, and the
    // console sees them read.
    db.execute(insert("gre").as_str(), &[&session])
        .await
        .expect("insert");
    player.wait_message("gre line 150").await;
    staff
        .wait_js(
            "the console sees the 150 GRE lines read",
            UI_WAIT,
            statuses,
            vec![],
            |v| count(v, "gre:read") == 150,
        )
        .await;
    let read: i64 = db_one_i64(
        &db,
        "select count(*) from gre_chat_messages where status = 'read'",
    )
    .await;
    assert_eq!(read, 300);
    // 150 arriving messages were acknowledged without tripping the frame rate limit.
    for page in [&player, &staff] {
        let error = page
            .js(
                "const e = document.getElementById('action-error'); return e && !e.hidden ? e.textContent : null;",
                vec![],
            )
            .await;
        assert!(error.is_null(), "[{}] {error}", page.name);
    }
    player.screenshot("chat-mass-read.png").await;
    player.assert_no_console_errors().await;
    staff.assert_no_console_errors().await;
    tokio::join!(staff.close(), player.close());
}

/// Issue 14: a player attaches an image in /chat (through the attach button's file input); it
/// shows as a thumbnail on both pages, and the GRE opens the larger view in /console.
/// Then the GRE drops a PDF into the console's thread and the player gets a file card.
/// Screenshots: chat-attachment.png, console-attachment.png, console-attachment-view.png,
/// chat-attachment-pdf.png.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_attached_in_chat_shows_in_the_console() {
    use base64::Engine;
    require_browser();
    let env = TestEnv::start().await;
    // The desk off: an auto-reply would be a captioned message beside the photo.
    desk_off(&env.db().await).await;
    let session = env.open_session(29).await;
    let image = crate::attachments::gradient_png(160, 120);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&image);

    let driver = Chromedriver::start().await;
    let (staff, player) = tokio::join!(driver.browser("console"), driver.browser("chat"));
    player
        .sign_in(env.http_url("/chat"), player_token(29))
        .await;
    staff
        .sign_in(env.http_url("/console"), staff_token("staff-7"))
        .await;
    staff.open_thread(session).await;

    // What a file chooser does: set the input's files and fire `change`.
    player.wait_css("[data-testid=attach]").await;
    player
        .js(
            "const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0)); \
             const dt = new DataTransfer(); \
             dt.items.add(new File([bytes], 'table-4.png', {type: 'image/png'})); \
             const input = document.querySelector('[data-testid=attach-input]'); \
             input.files = dt.files; input.dispatchEvent(new Event('change')); return true;",
            vec![json!(encoded)],
        )
        .await;
    let loaded = "const i = document.querySelector('[data-testid=message] [data-testid=attachment-image]'); \
                  return i ? [i.complete, i.naturalWidth, i.naturalHeight, i.alt] : null;";
    let shown = |v: &Value| v[0] == true && v[1] == 160 && v[2] == 120;
    player
        .wait_js("the photo in /chat", UI_WAIT, loaded, vec![], shown)
        .await;
    let v = staff
        .wait_js("the photo in /console", UI_WAIT, loaded, vec![], shown)
        .await;
    assert_eq!(v[3], "table-4.png");
    // A photo sent alone has no caption: its `message` is only the file's label.
    let captions = staff
        .js(
            "return document.querySelectorAll('[data-testid=message] .msg-text').length;",
            vec![],
        )
        .await;
    assert_eq!(captions, 0, "no caption under a photo sent alone");
    player.screenshot("chat-attachment.png").await;
    staff.screenshot("console-attachment.png").await;

    staff
        .wait_css("[data-testid=attachment-thumb]")
        .await
        .click()
        .await
        .expect("open the larger view");
    staff
        .wait_js(
            "the larger view",
            UI_WAIT,
            "const v = document.querySelector('[data-testid=attachment-viewer]'); \
             const i = document.querySelector('[data-testid=attachment-viewer-image]'); \
             return v && i ? [v.hidden, i.complete, i.naturalWidth] : null;",
            vec![],
            |v| v[0] == false && v[1] == true && v[2] == 160,
        )
        .await;
    staff.screenshot("console-attachment-view.png").await;

    // The GRE drops a PDF into the thread (the drop target's `drop` event with a file): the
    // player sees a file card with a download link.
    staff
        .js(
            "document.querySelector('[data-testid=attachment-viewer]').click(); \
             const pdf = '%PDF-1.4\\n1 0 obj << /Type /Catalog >> endobj\\n%%EOF\\n'; \
             const dt = new DataTransfer(); \
             dt.items.add(new File([pdf], 'Tournament schedule.pdf', {type: 'application/pdf'})); \
             const target = document.querySelector('#thread-scroller').parentNode; \
             target.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true})); \
             return true;",
            vec![],
        )
        .await;
    let card = player
        .wait_js(
            "the PDF card in /chat",
            UI_WAIT,
            "const c = document.querySelector('[data-testid=attachment-file]'); \
             const a = c && c.querySelector('[data-testid=attachment-download]'); \
             return a && a.getAttribute('href') ? [c.textContent, a.getAttribute('href')] : null;",
            vec![],
            |v| v.is_array(),
        )
        .await;
    assert!(
        card[0]
            .as_str()
            .unwrap_or("")
            .contains("Tournament schedule.pdf"),
        "{card}"
    );
    let link = card[1].as_str().unwrap_or("");
    let res = reqwest::get(env.http_url(link)).await.expect("download");
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap_or("")
        .starts_with("attachment;"));
    player.screenshot("chat-attachment-pdf.png").await;
    player.assert_no_console_errors().await;
    staff.assert_no_console_errors().await;
    player.close().await;
    staff.close().await;
}

/// The GRE desk in the pages (issue 13): with 200 open sessions and 50 canned responses, the
/// console's picker opens on "/", filters as one types, takes arrow keys and Enter, and inserts
/// the expanded text for editing; internal notes are added and shown apart (never in /chat); a
/// transfer writes its line in both pages; and the player sees the auto-reply of a busy desk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desk_picker_notes_transfer_and_an_auto_reply_in_the_pages() {
    require_browser();
    let env = TestEnv::start().await;
    let db = env.db().await;
    // Automatic assignment off, so the console's GRE does not take the player at once and the
    // player meets a busy desk.
    db.batch_execute(
        "update gre_desk_settings set auto_assign = false; \
         insert into gre_canned_responses (short_code, title, body) \
           select 'c' || lpad(g::text, 2, '0'), 'Canned ' || g, 'Canned answer number ' || g || ' for {player_id}' \
             from generate_series(0, 48) g; \
         insert into gre_canned_responses (short_code, title, body) \
           values ('table', 'Table ready', 'Hi player {player_id}, your table is ready. {gre_name}'); \
         insert into gre_chat_sessions (player_id) select g from generate_series(100000, 100199) g; \
         insert into gre_chat_messages (session_id, sender, message) \
           select id, 'player', 'Hello from ' || player_id from gre_chat_sessions;",
    )
    .await
    .expect("desk data");

    let driver = Chromedriver::start().await;
    let (staff, player) = tokio::join!(driver.browser("console"), driver.browser("chat"));
    player
        .sign_in(env.http_url("/chat"), player_token(29))
        .await;
    player.send("Is anyone there?").await;
    player
        .wait_message(
            "Thanks for your message. All our GREs are busy right now: one of us will be with you as soon as possible.",
        )
        .await;
    player.screenshot("chat-auto-reply.png").await;

    staff
        .sign_in(env.http_url("/console"), staff_token("staff-7"))
        .await;
    let session = open_session_of(&db, 29).await;
    staff.open_thread(session).await;
    staff.wait_message("Is anyone there?").await;
    let shown = staff
        .js(
            "return document.querySelectorAll('[data-testid=session-item]').length;",
            vec![],
        )
        .await;
    assert_eq!(shown, json!(201), "every open session is listed");

    // "/" opens the picker; typing filters it; Enter inserts, expanded, without sending.
    let input = staff.wait_css("[data-testid=reply-input]").await;
    let started = std::time::Instant::now();
    input.send_keys("/").await.expect("slash");
    staff.wait_css("[data-testid=canned-picker]").await;
    let opened_in = started.elapsed();
    staff
        .wait_js(
            "the picker lists the first eight responses",
            UI_WAIT,
            "return document.querySelectorAll('[data-testid=canned-option]').length;",
            vec![],
            |v| v == 8,
        )
        .await;
    staff.screenshot("console-canned-picker.png").await;
    input.send_keys("c0").await.expect("filter");
    input.send_keys(&Key::Down).await.expect("down");
    staff
        .wait_js(
            "the second option is active",
            UI_WAIT,
            "const a = document.querySelector('[data-testid=canned-option].is-active'); \
             return a ? a.textContent : null;",
            vec![],
            |v| v.as_str().is_some_and(|t| t.starts_with("/c01")),
        )
        .await;
    input.send_keys(&Key::Enter).await.expect("enter");
    staff
        .wait_js(
            "the response is in the reply box, expanded",
            UI_WAIT,
            "return document.querySelector('[data-testid=reply-input]').value;",
            vec![],
            |v| v == "Canned answer number 1 for 29",
        )
        .await;
    // Not sent: edit it away and take /table instead, then add to it and send.
    staff
        .js(
            "const i = document.querySelector('[data-testid=reply-input]'); i.value = ''; \
             i.dispatchEvent(new Event('input'));",
            vec![],
        )
        .await;
    input.send_keys("/tab").await.expect("filter");
    staff
        .wait_js(
            "one match",
            UI_WAIT,
            "return Array.from(document.querySelectorAll('[data-testid=canned-option]')).map(e => e.textContent);",
            vec![],
            |v| v.as_array().is_some_and(|a| a.len() == 1),
        )
        .await;
    input.send_keys(&Key::Enter).await.expect("pick");
    input.send_keys(" Enjoy!").await.expect("edit");
    input.send_keys(&Key::Enter).await.expect("send");
    let text = "Hi player 29, your table is ready. Anna Enjoy!";
    player.wait_message(text).await;
    staff.wait_message(text).await;

    // An internal note: shown in the notes panel, never in /chat.
    let secret = "Regular at the 2/5 table, prefers seat 3";
    staff
        .wait_css("[data-testid=internal-notes] summary")
        .await
        .click()
        .await
        .expect("open notes");
    let note = staff.wait_css("[data-testid=note-input]").await;
    note.send_keys(secret).await.expect("note");
    staff
        .wait_css("[data-testid=note-add]")
        .await
        .click()
        .await
        .expect("add note");
    staff
        .wait_js(
            "the note is listed",
            UI_WAIT,
            "return Array.from(document.querySelectorAll('[data-testid=internal-note]')).map(e => e.textContent).join('|');",
            vec![],
            |v| v.as_str().is_some_and(|t| t.contains(secret)),
        )
        .await;

    // Take the chat, then hand it back to the queue with a note: the line shows in both pages.
    staff
        .wait_css("[data-testid=assign]")
        .await
        .click()
        .await
        .expect("assign");
    staff
        .wait_js(
            "assigned to me",
            UI_WAIT,
            "return document.querySelector('[data-testid=transfer-submit]').disabled;",
            vec![],
            |v| v == false,
        )
        .await;
    staff
        .wait_css("[data-testid=transfer-note]")
        .await
        .send_keys("Going on break")
        .await
        .expect("transfer note");
    staff
        .wait_css("[data-testid=transfer-submit]")
        .await
        .click()
        .await
        .expect("transfer");
    let line = "Anna passed the chat to the next available GRE";
    staff.wait_message(line).await;
    player.wait_message(line).await;
    staff
        .wait_js(
            "the transfer is recorded in the notes",
            UI_WAIT,
            "return document.querySelectorAll('[data-testid=internal-note]').length;",
            vec![],
            |v| v == 2,
        )
        .await;
    staff.screenshot("console-desk-thread.png").await;
    let page = player.js("return document.body.textContent;", vec![]).await;
    let page = page.as_str().unwrap_or_default();
    assert!(
        !page.contains(secret) && !page.contains("Going on break"),
        "{page}"
    );
    player.screenshot("chat-transfer.png").await;

    // The settings panel.
    staff
        .wait_css("[data-testid=desk-settings-toggle]")
        .await
        .click()
        .await
        .expect("settings");
    staff.wait_css("[data-testid=desk-settings]").await;
    staff
        .wait_js(
            "the desk's 50 responses are listed in the panel",
            UI_WAIT,
            "return document.querySelectorAll('[data-testid=canned-admin-item]').length;",
            vec![],
            |v| v == 50,
        )
        .await;
    // A new response from the panel: saved for the desk, and in the picker at once.
    staff
        .wait_css("[data-testid=canned-code]")
        .await
        .send_keys("/bye")
        .await
        .expect("code");
    staff
        .wait_css("[data-testid=canned-body]")
        .await
        .send_keys("Good luck at the tables, {gre_name} signing off.")
        .await
        .expect("body");
    staff
        .wait_css("[data-testid=canned-save]")
        .await
        .click()
        .await
        .expect("save");
    staff
        .wait_js(
            "the new response is listed",
            UI_WAIT,
            "return document.querySelectorAll('[data-testid=canned-admin-item]').length;",
            vec![],
            |v| v == 51,
        )
        .await;
    assert_eq!(
        db_one_i64(
            &db,
            "select count(*) from gre_canned_responses where short_code = 'bye' and created_by = 'staff-7'"
        )
        .await,
        1
    );
    staff.screenshot("console-desk-settings.png").await;
    assert!(
        opened_in < Duration::from_secs(2),
        "the picker took {opened_in:?} to open"
    );
    staff.assert_no_console_errors().await;
    player.assert_no_console_errors().await;
    staff.close().await;
    player.close().await;
}

/// The console's Reports view (issue 15) on the analytics fixture: every figure the page shows
/// equals the API's for the same period and time zone, the live "waiting now" counter follows a
/// new player message over the WebSocket, and the view fits a narrow window. Screenshots:
/// reports-wide.png, reports-charts.png, reports-narrow.png.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_view_shows_the_apis_figures_and_live_counters() {
    require_browser();
    let env = TestEnv::start().await;
    let db = env.db().await;
    db.batch_execute(include_str!("../fixtures/analytics_fixture.sql"))
        .await
        .expect("fixture");
    let driver = Chromedriver::start().await;
    let console = driver.browser("reports").await;
    console
        .sign_in(env.http_url("/console"), staff_token("staff-a"))
        .await;
    console
        .wait_css("[data-testid=nav-reports]")
        .await
        .click()
        .await
        .expect("open reports");
    console
        .js(
            "document.getElementById('rep-from').value = '2026-11-02'; \
             document.getElementById('rep-to').value = '2026-11-03'; \
             document.querySelector('[data-testid=rep-apply]').click(); return true;",
            vec![],
        )
        .await;
    console
        .wait_js(
            "the report loaded",
            UI_WAIT,
            "const v = document.querySelector('[data-testid=reports-view]'); \
             const s = document.querySelector('[data-testid=kpi-sessions]'); \
             return v && v.getAttribute('data-state') === 'ready' && s ? s.getAttribute('data-value') : null;",
            vec![],
            |v| v == "7",
        )
        .await;
    let tz = console
        .js(
            "return Intl.DateTimeFormat().resolvedOptions().timeZone;",
            vec![],
        )
        .await;
    let tz = tz.as_str().unwrap_or("UTC").to_owned();
    let http = reqwest::Client::new();
    let api = |group: &'static str| {
        let url = env.http_url(&format!(
            "/api/gre-admin/analytics?from=2026-11-02&to=2026-11-04&group={group}&tz={tz}"
        ));
        let req = http.get(url).header(
            "Authorization",
            format!("Bearer {}", staff_token("staff-a")),
        );
        async move {
            let res = tokio::time::timeout(WAIT, req.send())
                .await
                .expect("api in time")
                .expect("api");
            res.json::<Value>().await.expect("api json")
        }
    };
    let num = |v: &Value| -> String {
        match v.as_f64() {
            Some(f) => f.to_string(),
            None => String::new(),
        }
    };
    let page_num = |v: &Value| -> String {
        v.as_str()
            .filter(|s| !s.is_empty())
            .and_then(|s| s.parse::<f64>().ok())
            .map(|f| f.to_string())
            .unwrap_or_default()
    };

    // The cards: the period's totals.
    let day = api("day").await;
    let cards = console
        .js(
            "const o = {}; for (const e of document.querySelectorAll('#rep-cards [data-testid]')) \
               o[e.getAttribute('data-testid')] = e.getAttribute('data-value'); return o;",
            vec![],
        )
        .await;
    for (testid, field) in [
        ("kpi-sessions", "sessions"),
        ("kpi-unanswered", "unanswered"),
        ("kpi-frt-median", "frtMedian"),
        ("kpi-frt-p90", "frtP90"),
        ("kpi-first-responses", "firstResponses"),
        ("kpi-resolution-median", "resolutionMedian"),
        ("kpi-resolution-p90", "resolutionP90"),
        ("kpi-resolved", "resolved"),
        ("kpi-reply-median", "replyMedian"),
        ("kpi-reply-p90", "replyP90"),
        ("kpi-replies", "replies"),
        ("kpi-player-messages", "playerMessages"),
        ("kpi-gre-messages", "greMessages"),
    ] {
        assert_eq!(
            page_num(&cards[testid]),
            num(&day["totals"][field]),
            "card {testid} vs totals.{field}"
        );
    }
    assert_eq!(num(&day["totals"]["frtMedian"]), "90");

    // Messages and sessions per day.
    let bars = console
        .js(
            "return Array.from(document.querySelectorAll('[data-testid=volume-day]')).map(e => \
               [e.getAttribute('data-key'), e.getAttribute('data-player'), e.getAttribute('data-gre'), e.getAttribute('data-sessions')]);",
            vec![],
        )
        .await;
    let want: Vec<Value> = day["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            json!([
                r["key"],
                r["playerMessages"].to_string(),
                r["greMessages"].to_string(),
                r["sessions"].to_string()
            ])
        })
        .collect();
    assert_eq!(bars, Value::Array(want), "volume chart");

    // The heatmap and the first-response distribution.
    let week = api("hour_of_week").await;
    let cells = console
        .js(
            "const o = {}; for (const e of document.querySelectorAll('[data-testid=heat-cell]')) \
               o[e.getAttribute('data-key')] = Number(e.getAttribute('data-value')); return o;",
            vec![],
        )
        .await;
    let rows = week["rows"].as_array().expect("rows");
    assert_eq!(cells.as_object().map(|o| o.len()), Some(168));
    for r in rows {
        let key = r["key"].as_str().expect("key");
        assert_eq!(cells[key], r["sessions"], "heat cell {key}");
    }
    let frt = api("first_response").await;
    let buckets = console
        .js(
            "return Array.from(document.querySelectorAll('[data-testid=frt-bucket]')).map(e => \
               [e.getAttribute('data-key'), Number(e.getAttribute('data-value'))]);",
            vec![],
        )
        .await;
    let want: Vec<Value> = frt["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| json!([r["key"], r["firstResponses"]]))
        .collect();
    assert_eq!(buckets, Value::Array(want), "first-response distribution");

    // The per-GRE table.
    let gre = api("gre").await;
    let table = console
        .js(
            "return Array.from(document.querySelectorAll('[data-testid=gre-row]')).map(tr => { \
               const o = {key: tr.getAttribute('data-key')}; \
               for (const e of tr.querySelectorAll('[data-testid]')) o[e.getAttribute('data-testid')] = e.getAttribute('data-value'); \
               return o; });",
            vec![],
        )
        .await;
    let table = table.as_array().cloned().unwrap_or_default();
    let api_rows = gre["rows"].as_array().expect("rows");
    assert_eq!(table.len(), api_rows.len(), "one table row per GRE");
    for (tr, r) in table.iter().zip(api_rows) {
        assert_eq!(tr["key"], r["key"]);
        for (testid, field) in [
            ("gre-sessions", "sessions"),
            ("gre-replied", "sessionsReplied"),
            ("gre-first-responses", "firstResponses"),
            ("gre-frt-median", "frtMedian"),
            ("gre-frt-p90", "frtP90"),
            ("gre-replies", "replies"),
            ("gre-reply-median", "replyMedian"),
            ("gre-resolution-median", "resolutionMedian"),
            ("gre-messages", "greMessages"),
        ] {
            assert_eq!(
                page_num(&tr[testid]),
                num(&r[field]),
                "{} {testid}",
                r["key"]
            );
        }
    }

    // Live: C and D wait; a new player writes, and the counter follows over the WebSocket.
    let waiting = "const e = document.querySelector('[data-testid=live-waiting]'); return e ? e.getAttribute('data-value') : null;";
    console
        .wait_js("2 waiting", UI_WAIT, waiting, vec![], |v| v == "2")
        .await;
    db.batch_execute(
        "insert into gre_chat_sessions (player_id) values (106); \
         insert into gre_chat_messages (session_id, sender, message) \
           select id, 'player', 'hello?' from gre_chat_sessions where player_id = 106;",
    )
    .await
    .expect("a new waiting player");
    console
        .wait_js("3 waiting, live", UI_WAIT, waiting, vec![], |v| v == "3")
        .await;
    let longest = console
        .js(
            "return document.querySelector('[data-testid=live-longest]').textContent;",
            vec![],
        )
        .await;
    assert!(
        longest
            .as_str()
            .is_some_and(|s| s.ends_with(" min") || s.contains(" h")),
        "the longest wait (C, since 2026-11-02) is shown: {longest}"
    );
    console.screenshot("reports-wide.png").await;
    console
        .js(
            "document.getElementById('rep-heatmap').scrollIntoView(); return true;",
            vec![],
        )
        .await;
    console.screenshot("reports-charts.png").await;

    // A narrow window: nothing wider than the viewport.
    console
        .client
        .set_window_size(420, 860)
        .await
        .expect("narrow window");
    console
        .wait_js(
            "no horizontal overflow",
            UI_WAIT,
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            vec![],
            |v| v == true,
        )
        .await;
    console.screenshot("reports-narrow.png").await;
    console.assert_no_console_errors().await;
    console.close().await;
}
