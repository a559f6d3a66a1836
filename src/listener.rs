//! The database listener: one dedicated PostgreSQL connection, never taken from the pool, that
//! LISTENs on channel `gre_relay` and turns each notification into hub events. This is where a
//! NOTIFY becomes a frame.
//!
//! When the connection dies (network, `pg_terminate_backend`, a database restart) it reconnects
//! with capped, jittered backoff (so a fleet of relays does not stampede a recovering database),
//! LISTENs again, and backfills every subscribed session from the last message it published, so
//! connected clients miss nothing. The hub drops what it already published.
//!
//! Payloads are written by triggers/20_message_notify.sql and 40_session_notify.sql, and by the
//! relay itself for events that are relayed but never stored (typing, messages_read).

use futures_util::StreamExt;
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use uuid::Uuid;

use crate::hub::{ConnId, Hub};
use crate::protocol::{self, Cursor};
use crate::store::{pg_config, tls_connector, Store, StoreError};

/// The channel every trigger notifies on.
pub const CHANNEL: &str = "gre_relay";
/// Notifications waiting between the connection driver and the dispatcher. When full, the
/// driver stops reading the socket and PostgreSQL queues the rest: nothing is lost.
const QUEUE: usize = 4096;
/// How often a quiet connection is checked with a query, to notice a dead peer.
const PROBE_EVERY: Duration = Duration::from_secs(15);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Page size when backfilling a session after a reconnect.
const BACKFILL_PAGE: i64 = 500;
/// Staff backfill after a reconnect: how far before the outage to look, and at most how many
/// messages (beyond that, staff consoles resubscribe with their cursors, see docs/protocol.md).
const STAFF_BACKFILL_MARGIN: Duration = Duration::from_secs(60);
const STAFF_BACKFILL_LIMIT: i64 = 20_000;

/// What health checks and metrics read about the listener.
#[derive(Debug, Default)]
pub struct ListenerStatus {
    pub connected: AtomicBool,
    /// Unix milliseconds of the last notification; 0 = none yet.
    pub last_notification_ms: AtomicU64,
    pub notifications: Counter,
    /// Connections lost and re-established (the failover metric).
    pub reconnects: Counter,
}

impl ListenerStatus {
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
    /// Seconds since the last notification, if there was one.
    pub fn last_notification_age(&self) -> Option<f64> {
        let ms = self.last_notification_ms.load(Ordering::Relaxed);
        (ms > 0).then(|| now_ms().saturating_sub(ms) as f64 / 1000.0)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Identifies this relay process in relayed events, so a connection does not get its own
/// typing indicator back.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub instance: Uuid,
    pub conn: ConnId,
}

impl Origin {
    fn to_wire(self) -> String {
        format!("{}:{}", self.instance, self.conn)
    }
}

/// Builds the payload of a relayed (never stored) event about a session.
pub fn relayed_event_payload(session_id: Uuid, origin: Origin, frame: &str) -> String {
    format!(
        r#"{{"k":"e","sessionId":"{session_id}","origin":"{}","frame":{frame}}}"#,
        origin.to_wire()
    )
}

pub struct Listener {
    url: String,
    store: Store,
    hub: Arc<Hub>,
    status: Arc<ListenerStatus>,
    instance: Uuid,
    /// Online GRE count last told to clients; -1 = not yet known.
    online_staff: std::sync::atomic::AtomicI64,
}

#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error("the connection closed")]
    Closed,
    #[error("the connection stopped answering")]
    ProbeTimeout,
}

impl Listener {
    pub fn new(
        url: String,
        store: Store,
        hub: Arc<Hub>,
        status: Arc<ListenerStatus>,
        instance: Uuid,
    ) -> Self {
        Listener {
            url,
            store,
            hub,
            status,
            instance,
            online_staff: std::sync::atomic::AtomicI64::new(-1),
        }
    }

    /// Runs until `shutdown` turns true. Never returns early: connection failures are retried.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_MIN;
        // Since when notifications may have been missed: the loss of the last good connection,
        // or the first failed attempt (the relay may be serving before LISTEN is in place).
        let mut down_since: Option<std::time::Instant> = None;
        loop {
            let outcome = tokio::select! {
                r = self.session(down_since, &mut backoff) => r,
                _ = crate::server::stopped(&mut shutdown) => return,
            };
            let was_whole = self.status.connected.swap(false, Ordering::Relaxed);
            if was_whole {
                // This connection had caught up: only what follows its loss is missing.
                down_since = Some(std::time::Instant::now());
            } else {
                down_since.get_or_insert_with(std::time::Instant::now);
            }
            if let Err(e) = outcome {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "database listener disconnected");
            }
            self.status.reconnects.inc();
            let jitter =
                Duration::from_millis(rand::random::<u64>() % (backoff.as_millis() as u64 / 2 + 1));
            tokio::select! {
                _ = tokio::time::sleep(backoff + jitter) => {}
                _ = crate::server::stopped(&mut shutdown) => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One connection's life: connect, LISTEN, backfill if this is a reconnect, dispatch.
    async fn session(
        &self,
        down_since: Option<std::time::Instant>,
        backoff: &mut Duration,
    ) -> Result<(), ListenError> {
        let mut config = pg_config(&self.url)?;
        config.application_name("gre-relay listener");
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10));
        let (client, mut connection) = config.connect(tls_connector()).await?;
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if tx.send(n).await.is_err() {
                            break;
                        }
                    }
                    Ok(AsyncMessage::Notice(notice)) => tracing::debug!(%notice, "listener notice"),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "listener connection error");
                        break;
                    }
                }
            }
        });
        // Abort the driver whatever way this function ends.
        let _driver = AbortOnDrop(driver);

        client.batch_execute(&format!("listen {CHANNEL}")).await?;
        match down_since {
            None => tracing::info!("database listener connected"),
            Some(since) => {
                tracing::info!(
                    down_ms = since.elapsed().as_millis() as u64,
                    "database listener reconnected; backfilling"
                );
                // Notifications arriving meanwhile wait in `rx`; replays are dropped by the hub.
                // A failed backfill fails this connection: the next one backfills again.
                self.backfill(since.elapsed()).await?;
            }
        }
        // Only now: until the backfill is done, health must not report the listener as whole.
        self.status.connected.store(true, Ordering::Relaxed);
        *backoff = BACKOFF_MIN;

        let mut probe = tokio::time::interval(PROBE_EVERY);
        probe.tick().await;
        loop {
            tokio::select! {
                n = rx.recv() => match n {
                    Some(n) => self.dispatch(n.payload()).await,
                    None => return Err(ListenError::Closed),
                },
                _ = probe.tick() => {
                    match tokio::time::timeout(PROBE_TIMEOUT, client.simple_query("select 1")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(e.into()),
                        Err(_) => return Err(ListenError::ProbeTimeout),
                    }
                }
            }
        }
    }

    /// Makes up for an outage of `down_for`, in an order that never skips: sessions opened or
    /// changed meanwhile first (players' sockets follow the new ones), then every subscribed
    /// session from the position its least advanced subscriber holds, then, for staff (who
    /// follow every session without subscribing), the window's messages of all sessions. The
    /// hub drops what it had already published.
    async fn backfill(&self, down_for: Duration) -> Result<(), StoreError> {
        // created_at is the inserting transaction's start, so a transaction that began before
        // the outage and committed during it is older than the outage: the margin covers
        // transactions of up to a minute.
        let window = down_for + STAFF_BACKFILL_MARGIN;
        for session in self.store.sessions_changed_within(window).await? {
            if !session.is_closed() {
                self.hub.follow_new_session(session.player_id, session.id);
            }
            let frame = protocol::session_updated_frame(&session.json);
            self.hub
                .publish_frame(session.id, Utf8Bytes::from(frame), None);
        }
        for (session_id, from) in self.hub.subscribed_sessions() {
            let mut cursor = Cursor(from);
            loop {
                let page = self
                    .store
                    .messages_after(session_id, cursor, BACKFILL_PAGE)
                    .await?;
                for m in &page {
                    let frame = protocol::chat_message_frame(&m.json);
                    self.hub
                        .publish_message(m.session_id, m.seq, Utf8Bytes::from(frame));
                    cursor = Cursor(m.seq);
                }
                if (page.len() as i64) < BACKFILL_PAGE {
                    break;
                }
            }
        }
        if self.hub.has_staff() {
            for m in self
                .store
                .messages_within(window, STAFF_BACKFILL_LIMIT)
                .await?
            {
                let frame = protocol::chat_message_frame(&m.json);
                self.hub
                    .publish_message(m.session_id, m.seq, Utf8Bytes::from(frame));
            }
        }
        Ok(())
    }

    /// Turns one payload into hub events. A payload that cannot be understood is logged and
    /// skipped: it was not written by gre-relay's triggers.
    pub async fn dispatch(&self, payload: &str) {
        self.status.notifications.inc();
        self.status
            .last_notification_ms
            .store(now_ms(), Ordering::Relaxed);
        let envelope: Envelope = match serde_json::from_str(payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a notification that is not gre-relay's");
                return;
            }
        };
        match envelope.k.as_str() {
            "m" => {
                let update = envelope.op.as_deref() == Some("u");
                for item in envelope.rows.unwrap_or_default() {
                    self.dispatch_message(item, update).await;
                }
            }
            "s" => {
                let Some(session) = envelope.session else {
                    return;
                };
                match serde_json::from_str::<SessionHead>(session.get()) {
                    Ok(head) => {
                        if head.status != "closed" {
                            if let Some(player_id) = head.player_id {
                                self.hub.follow_new_session(player_id, head.id);
                            }
                        }
                        let frame = protocol::session_updated_frame(&session);
                        self.hub
                            .publish_frame(head.id, Utf8Bytes::from(frame), None);
                    }
                    Err(e) => tracing::warn!(error = %e, "bad session notification"),
                }
            }
            "e" => {
                let (Some(session_id), Some(frame)) = (envelope.session_id, envelope.frame) else {
                    return;
                };
                let except = envelope.origin.as_deref().and_then(|o| self.own_conn(o));
                self.hub
                    .publish_frame(session_id, Utf8Bytes::from(frame.get().to_owned()), except);
            }
            "p" => self.dispatch_presence(envelope).await,
            other => tracing::warn!(kind = other, "unknown notification kind"),
        }
    }

    /// A GRE's presence changed: staff hear who; everyone hears whether any GRE is online.
    async fn dispatch_presence(&self, envelope: Envelope) {
        let Some(gre_id) = envelope.gre_id else {
            return;
        };
        let status = envelope.status.unwrap_or_else(|| "offline".into());
        let frame = protocol::staff_presence_frame(
            &gre_id,
            envelope.is_online.unwrap_or(false),
            &status,
            envelope.last_seen.as_deref(),
        );
        self.hub.broadcast(Utf8Bytes::from(frame), true);
        match self.store.online_staff_count().await {
            Ok(count) => {
                if self.online_staff.swap(count, Ordering::Relaxed) != count {
                    self.hub
                        .broadcast(Utf8Bytes::from(protocol::gre_presence_frame(count)), false);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not count online staff"),
        }
    }

    async fn dispatch_message(&self, item: Box<RawValue>, update: bool) {
        let head: Head = match serde_json::from_str(item.get()) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "bad message notification");
                return;
            }
        };
        // Too big for NOTIFY: the trigger sent a reference; read the row back.
        let (json, seq) = if head.is_ref {
            match self.store.message(head.id).await {
                Ok(Some(m)) => (m.json, m.seq),
                Ok(None) => return, // deleted since
                Err(e) => {
                    // The row is in the table: resuming clients will get it; live ones are told
                    // nothing until then. Say so loudly.
                    tracing::error!(error = %e, id = %head.id, "could not read back a large message");
                    return;
                }
            }
        } else {
            let seq = head
                .cursor
                .as_deref()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            (item, seq)
        };
        let session_id = head.session_id.unwrap_or_default();
        if update {
            self.hub.publish_frame(
                session_id,
                Utf8Bytes::from(protocol::message_updated_frame(&json)),
                None,
            );
        } else {
            self.hub.publish_message(
                session_id,
                seq,
                Utf8Bytes::from(protocol::chat_message_frame(&json)),
            );
        }
    }

    fn own_conn(&self, origin: &str) -> Option<ConnId> {
        let (instance, conn) = origin.split_once(':')?;
        (instance == self.instance.to_string())
            .then(|| conn.parse().ok())
            .flatten()
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    k: String,
    op: Option<String>,
    rows: Option<Vec<Box<RawValue>>>,
    session: Option<Box<RawValue>>,
    session_id: Option<Uuid>,
    origin: Option<String>,
    frame: Option<Box<RawValue>>,
    gre_id: Option<String>,
    is_online: Option<bool>,
    status: Option<String>,
    last_seen: Option<String>,
}

/// The fields of a session notification the listener routes by.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionHead {
    id: Uuid,
    player_id: Option<i64>,
    status: String,
}

/// The fields of a message item the listener routes by.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    id: Uuid,
    session_id: Option<Uuid>,
    cursor: Option<String>,
    #[serde(rename = "ref", default)]
    is_ref: bool,
}
