//! Test harness: a real, ephemeral PostgreSQL cluster per test (through the same module as the
//! embedded default), a relay on 127.0.0.1:0, and a real WebSocket client. Every wait is bounded.

pub mod jwks;

use embedded_postgres::{ClusterOptions, EmbeddedPostgres};
use futures_util::{SinkExt, StreamExt};
use gre_relay::config::Settings;
use gre_relay::server::Relay;
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "test-secret-0123456789-test-secret-0123456789";
/// The longest any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// A template cluster shared by all tests of this machine user: copying it beats initdb.
pub fn template_dir() -> std::path::PathBuf {
    scratch_root().join(format!(
        "gre-relay-test-template-{}",
        nix::unistd::geteuid()
    ))
}

/// /var/tmp where it exists: creating a cluster's ~1,000 files there is several times faster
/// than under /tmp on these machines (measured: 0.17 s against 1.2 s per cluster).
pub fn scratch_root() -> std::path::PathBuf {
    let var_tmp = std::path::Path::new("/var/tmp");
    if var_tmp.is_dir() {
        var_tmp.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Starts a private PostgreSQL cluster in a temporary directory.
pub async fn start_cluster() -> (EmbeddedPostgres, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("gre-relay-test-")
        .tempdir_in(scratch_root())
        .expect("tempdir");
    let mut options = ClusterOptions::new(dir.path().join("pg"));
    options.ephemeral = true;
    options.template = Some(template_dir());
    let pg = tokio::time::timeout(Duration::from_secs(60), EmbeddedPostgres::start(options))
        .await
        .expect("cluster start timed out")
        .expect("cluster start");
    (pg, dir)
}

pub fn test_settings() -> Settings {
    let mut s = Settings::defaults().expect("defaults");
    s.server.host = "127.0.0.1".into();
    s.server.port = 0;
    s.server.shutdown_timeout_seconds = 5;
    // Attachments of tests that do not look at them: one shared scratch directory (keys are
    // random), never the working directory.
    s.storage.local_dir = scratch_root()
        .join(format!(
            "gre-relay-test-attachments-{}",
            nix::unistd::geteuid()
        ))
        .to_string_lossy()
        .into_owned();
    s
}

pub struct TestEnv {
    pub relay: Option<Relay>,
    pub url: String,
    pub settings: Settings,
    // Declared after the relay so it is dropped (and stopped) after it.
    pub pg: EmbeddedPostgres,
    _dir: tempfile::TempDir,
}

impl TestEnv {
    pub async fn start() -> TestEnv {
        Self::start_with(test_settings()).await
    }

    pub async fn start_with(settings: Settings) -> TestEnv {
        let (pg, dir) = start_cluster().await;
        let url = pg.url();
        let relay = start_relay(&settings, &url).await;
        TestEnv {
            relay: Some(relay),
            url,
            settings,
            pg,
            _dir: dir,
        }
    }

    pub fn relay(&self) -> &Relay {
        self.relay.as_ref().expect("relay running")
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.relay().local_addr())
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.relay().local_addr(), path)
    }

    /// The relay's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        tokio::time::timeout(WAIT, async {
            reqwest::get(self.http_url("/metrics"))
                .await
                .expect("metrics")
                .text()
                .await
                .expect("metrics body")
        })
        .await
        .expect("metrics timed out")
    }

    /// One value of `/metrics` (a counter or gauge without labels); panics when it is missing.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics_text().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    }

    /// A direct database connection, as the staff portal or a DBA would have.
    pub async fn db(&self) -> tokio_postgres::Client {
        connect_db(&self.url).await
    }

    pub async fn player(&self, player_id: i64) -> WsClient {
        let mut c = WsClient::connect(&self.ws_url()).await;
        let hello = c.authenticate(&player_token(player_id)).await;
        assert_eq!(hello["role"], "player", "{hello}");
        c
    }

    pub async fn staff(&self, staff_id: &str) -> WsClient {
        let mut c = WsClient::connect(&self.ws_url()).await;
        let hello = c.authenticate(&staff_token(staff_id)).await;
        assert_eq!(hello["role"], "gre_staff", "{hello}");
        c
    }

    /// Creates a session for a player straight in SQL and returns its id.
    pub async fn open_session(&self, player_id: i64) -> uuid::Uuid {
        let db = self.db().await;
        db.query_one(
            "insert into gre_chat_sessions (player_id) values ($1) returning id",
            &[&player_id],
        )
        .await
        .expect("insert session")
        .get(0)
    }
}

pub async fn start_relay(settings: &Settings, url: &str) -> Relay {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    tokio::time::timeout(
        Duration::from_secs(30),
        Relay::start(settings.clone(), url, SECRET, listener),
    )
    .await
    .expect("relay start timed out")
    .expect("relay start")
}

pub async fn connect_db(url: &str) -> tokio_postgres::Client {
    let (client, conn) =
        tokio::time::timeout(WAIT, tokio_postgres::connect(url, tokio_postgres::NoTls))
            .await
            .expect("db connect timed out")
            .expect("db connect");
    tokio::spawn(conn);
    client
}

pub fn player_token(player_id: i64) -> String {
    gre_relay::auth::mint_player_token(SECRET, player_id, Duration::from_secs(3600))
}

pub fn staff_token(staff_id: &str) -> String {
    gre_relay::auth::mint_staff_token(SECRET, staff_id, Some("Anna"), Duration::from_secs(3600))
}

/// A real WebSocket client speaking JSON text frames.
pub struct WsClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection ended, as the client saw it.
#[derive(Debug)]
pub enum Ending {
    Closed(Option<u16>, String),
    Dropped,
}

impl WsClient {
    pub async fn connect(url: &str) -> WsClient {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("ws connect timed out")
            .expect("ws connect");
        WsClient { ws }
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        tokio::time::timeout(WAIT, self.ws.send(Message::text(text)))
            .await
            .expect("send timed out")
            .expect("send");
    }

    /// The next JSON frame, within `WAIT`. Panics on a close.
    pub async fn recv(&mut self) -> Value {
        self.recv_within(WAIT)
            .await
            .expect("expected a frame, got none in time")
    }

    /// The next JSON frame within `limit`, or None if nothing arrived.
    pub async fn recv_within(&mut self, limit: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match next {
                Some(Ok(Message::Text(t))) => {
                    return Some(serde_json::from_str(&t).expect("server sent JSON"))
                }
                Some(Ok(Message::Close(c))) => panic!("connection closed: {c:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("connection error: {e}"),
                None => panic!("connection ended"),
            }
        }
    }

    /// Skips frames until one of `kind` arrives (within `WAIT`).
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self
                .recv_within(left)
                .await
                .unwrap_or_else(|| panic!("no '{kind}' frame within {WAIT:?}"));
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Asserts that no frame of `kind` arrives within `limit` (other frames are skipped).
    pub async fn expect_no(&mut self, kind: &str, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self.recv_within(left).await {
                None => return,
                Some(f) if f["type"] == kind => panic!("unexpected {kind}: {f}"),
                Some(_) => {}
            }
        }
    }

    pub async fn authenticate(&mut self, token: &str) -> Value {
        self.send_json(serde_json::json!({"type": "authenticate", "token": token}))
            .await;
        self.recv_type("authenticated").await
    }

    /// ping → pong: proves the connection is alive and answering.
    pub async fn assert_alive(&mut self) {
        self.send_json(serde_json::json!({"type": "ping"})).await;
        self.recv_type("pong").await;
    }

    /// Reads until the server closes, returning how (within `WAIT`).
    pub async fn ending(&mut self) -> Ending {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("connection still open after {WAIT:?}"),
                Ok(Some(Ok(Message::Close(c)))) => {
                    return Ending::Closed(
                        c.as_ref().map(|c| u16::from(c.code)),
                        c.map(|c| c.reason.to_string()).unwrap_or_default(),
                    )
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => return Ending::Dropped,
            }
        }
    }
}

/// A `gre-relay` process (the real binary) serving `database_url`: for tests that kill a relay.
pub struct RelayProcess {
    pub child: tokio::process::Child,
    pub ws_url: String,
    pub http_base: String,
}

impl RelayProcess {
    pub async fn spawn(database_url: &str) -> RelayProcess {
        Self::spawn_on(database_url, 0).await
    }

    /// On a fixed port (0 = any free one): for a restart that clients must find where they were.
    pub async fn spawn_on(database_url: &str, port: u16) -> RelayProcess {
        Self::spawn_with(database_url, port, &[]).await
    }

    /// With more environment variables (settings such as `GRE_STORAGE__LOCAL_DIR`).
    pub async fn spawn_with(database_url: &str, port: u16, env: &[(&str, &str)]) -> RelayProcess {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gre-relay"))
            .envs(env.iter().copied())
            .env("DATABASE_URL", database_url)
            .env("SUPABASE_JWT_SECRET", SECRET)
            .env("PORT", port.to_string())
            .env("GRE_SERVER__HOST", "127.0.0.1")
            .env("GRE_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn gre-relay");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut ws_url = String::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .expect("banner in time")
                .expect("read stdout")
                .expect("gre-relay exited before its banner (is the port still taken?)");
            if let Some(ws) = line.trim().strip_prefix("WebSocket:") {
                ws_url = ws.trim().to_owned();
            }
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
        // Keep draining stdout so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let http_base = ws_url
            .replace("ws://", "http://")
            .trim_end_matches("/ws")
            .to_owned();
        RelayProcess {
            child,
            ws_url,
            http_base,
        }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id().expect("running") as i32)
    }

    /// SIGKILL: a crash, with no chance to clean up.
    pub async fn crash(&mut self) {
        let _ = nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGKILL);
        let _ = tokio::time::timeout(WAIT, self.child.wait()).await;
    }

    /// SIGTERM and wait for a clean exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGTERM);
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exit in time")
            .expect("wait")
    }
}

/// Switches the GRE desk's automatic behaviour off (issue 13, triggers/80_desk_*.sql): no
/// automatic assignment and no auto-replies, for tests that count a session's messages or its
/// assignment changes and are about something else.
pub async fn desk_off(db: &tokio_postgres::Client) {
    db.batch_execute(
        "update gre_desk_settings set auto_assign = false, unavailable_text = null, after_hours_text = null",
    )
    .await
    .expect("switch the desk off");
}

/// Polls `check` every 50 ms until it returns true, failing after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("not true within {limit:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
