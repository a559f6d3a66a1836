//! The database listener: one dedicated PostgreSQL connection, never taken from the pool, that
//! LISTENs on channel `gre_relay` and turns each notification into hub events. This is where a
//! NOTIFY becomes a frame.
//!
//! A notification is a hint (realtime/notify.rs): it names rows, and the listener reads those
//! rows from the tables (one query per notification) and routes only from what it read: the
//! session, the player and the cursor come from the row, never from the payload. So a
//! `pg_notify` from anyone else can at most make the relay re-read committed rows and send them
//! to the clients that may see them. Relayed events (typing, messages_read) are believed only
//! with a relay's signature. What the listener refuses is counted in `notifications_ignored`.
//!
//! Reads do not hold each other up more than needed: notifications that are waiting together
//! are read as one batch (consecutive message hints with one query), up to
//! [`READS_IN_FLIGHT`] batches are read concurrently, and their events are applied to the hub
//! strictly in the order the notifications arrived (commit order), so every session's events
//! keep their order.
//!
//! When the connection dies (network, `pg_terminate_backend`, a database restart) it reconnects
//! with capped, jittered backoff (so a fleet of relays does not stampede a recovering database),
//! LISTENs again, and backfills every subscribed session from the last message it published, so
//! connected clients miss nothing. The hub drops what it already published. A read that fails
//! fails the connection the same way: the catch-up reads the rows again.
//!
//! Owns the LISTEN connection (outside the pool) and nothing else. Must not touch: sockets (it
//! hands frames to the hub), HTTP, the chat rules, `state/`.

use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use uuid::Uuid;

use crate::db::{pg_config, tls_connector, Store, StoreError};
use crate::protocol::{self, Cursor};
use crate::rate_limit::TokenBucket;
use crate::realtime::hub::{ConnId, Hub};
use crate::realtime::notify::{
    Hint, HintError, MessageOp, Origin, RelayKey, RelayedEvent, Side, CHANNEL,
};

/// Notifications waiting between the connection driver and the dispatcher. When full, the
/// driver stops reading the socket and PostgreSQL queues the rest: nothing is lost.
const QUEUE: usize = 4096;
/// Batches of notifications whose rows are being read at once. Two keep one read going while
/// the previous one's events are applied; more did not deliver faster but made fewer, smaller
/// batches, so more queries (docs/performance.md: at the database's ceiling, 8 cost 12% more
/// database CPU per row than 2).
const READS_IN_FLIGHT: usize = 2;
/// Notifications taken into one batch when several are waiting.
const BATCH_MAX: usize = 64;
/// Most message ids read with one query when consecutive hints are merged.
const MERGE_IDS: usize = 1000;
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
/// Frames about changed messages (`message_updated`, `messages_updated`) this relay sends per
/// second, and at most at once. Anyone who can LISTEN learns message ids and could replay update
/// hints naming them: each would re-send real rows to the staff, and enough of them would close
/// every staff console with 4008. Legitimate changes stay far below this (a mass update is one
/// frame per session); beyond it, such frames are dropped and counted. Statuses are not part of
/// the delivery promise: a client that resubscribes reads them from the table.
const UPDATE_FRAMES_PER_SECOND: f64 = 2_000.0;
const UPDATE_FRAMES_BURST: f64 = 4_000.0;
/// Sessions whose player id is remembered for a player's typing events; cleared when full.
const PLAYER_CACHE: usize = 10_000;

/// What health checks and metrics read about the listener.
#[derive(Debug, Default)]
pub struct ListenerStatus {
    pub connected: AtomicBool,
    /// Unix milliseconds of the last notification; 0 = none yet.
    pub last_notification_ms: AtomicU64,
    pub notifications: Counter,
    /// Notifications not acted on: malformed, of an unknown kind, naming rows that do not
    /// exist, or relayed events without a valid signature.
    pub ignored: Counter,
    /// Connections lost and re-established (the failover metric).
    pub reconnects: Counter,
    /// `message_updated` / `messages_updated` frames not sent: beyond the update budget.
    pub updates_dropped: Counter,
}

impl ListenerStatus {
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
    /// Seconds since the last notification, if there was one.
    pub fn last_notification_age(&self) -> Option<f64> {
        let ms = self.last_notification_ms.load(Ordering::Relaxed);
        (ms > 0).then(|| super::notify::now_ms().saturating_sub(ms) as f64 / 1000.0)
    }
}

/// One change to the hub, computed from rows read for a notification and applied in order.
enum Action {
    /// A player's live connections follow a session that is not closed.
    Follow { player_id: i64, session_id: Uuid },
    /// A new message (deduplicated by its number).
    Message {
        session_id: Uuid,
        seq: i64,
        frame: Utf8Bytes,
    },
    /// A message (or range of messages) changed: a frame within the update budget.
    Update { session_id: Uuid, frame: Utf8Bytes },
    /// Any other frame about a session, to its subscribers and staff.
    Frame {
        session_id: Uuid,
        frame: Utf8Bytes,
        except: Option<ConnId>,
    },
    /// A frame to every connection, or staff only.
    Broadcast { frame: Utf8Bytes, staff_only: bool },
    /// The number of GRE staff online now: everyone hears it when it changed.
    OnlineStaff(i64),
}

type Resolving<'a> = Pin<Box<dyn Future<Output = Result<Vec<Action>, StoreError>> + Send + 'a>>;

pub struct Listener {
    url: String,
    store: Store,
    hub: Arc<Hub>,
    status: Arc<ListenerStatus>,
    instance: Uuid,
    /// Verifies relayed events (sql/0180_relay_event_key.sql).
    key: Arc<RelayKey>,
    /// Online GRE count last told to clients; -1 = not yet known.
    online_staff: AtomicI64,
    /// Session -> player, for the sender of a player's typing (the event names no player). A
    /// session's player never changes. A std mutex: never held across an await.
    players: Mutex<HashMap<Uuid, i64>>,
    /// The update budget (see [`UPDATE_FRAMES_PER_SECOND`]). A std mutex: never held across an
    /// await.
    update_budget: Mutex<TokenBucket>,
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
        key: Arc<RelayKey>,
    ) -> Self {
        Listener {
            url,
            store,
            hub,
            status,
            instance,
            key,
            online_staff: AtomicI64::new(-1),
            players: Mutex::new(HashMap::new()),
            update_budget: Mutex::new(TokenBucket::new(
                UPDATE_FRAMES_PER_SECOND,
                UPDATE_FRAMES_BURST,
            )),
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
                r = self.connection_life(down_since, &mut backoff) => r,
                _ = crate::shutdown::stopped(&mut shutdown) => return,
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
                _ = crate::shutdown::stopped(&mut shutdown) => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One connection's life: connect, LISTEN, backfill if this is a reconnect, dispatch.
    async fn connection_life(
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
        // Notifications whose rows are being read, oldest first; applied in this order.
        let mut reading: FuturesOrdered<Resolving<'_>> = FuturesOrdered::new();
        loop {
            tokio::select! {
                // The oldest read finished: apply it (FuturesOrdered yields in push order).
                Some(done) = reading.next(), if !reading.is_empty() => {
                    // A failed read: the row is in the table, and the reconnect's catch-up
                    // reads it again for the clients that should have it.
                    self.apply(done?);
                }
                n = rx.recv(), if reading.len() < READS_IN_FLIGHT => match n {
                    Some(n) => {
                        // Whatever else is already waiting goes in the same batch: under load,
                        // one read serves many notifications.
                        let mut batch = vec![n.payload().to_owned()];
                        while batch.len() < BATCH_MAX {
                            match rx.try_recv() {
                                Ok(n) => batch.push(n.payload().to_owned()),
                                Err(_) => break,
                            }
                        }
                        self.status.notifications.inc_by(batch.len() as u64);
                        self.status.last_notification_ms.store(super::notify::now_ms(), Ordering::Relaxed);
                        reading.push_back(Box::pin(self.resolve(batch)));
                    }
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

    /// Counts and logs a notification that is not acted on.
    fn ignore(&self, why: &dyn std::fmt::Display) {
        self.status.ignored.inc();
        tracing::debug!(reason = %why, "ignoring a notification");
    }

    /// Reads what a batch of notifications (in arrival order) names and works out their hub
    /// events, in the same order. Touches no hub state (several batches are read at once);
    /// [`Listener::apply`] applies the result. Consecutive message hints of one kind are read
    /// with one query: rows come back in (session, number) order, which within a session is
    /// commit order, so merging them changes no session's order.
    async fn resolve(&self, payloads: Vec<String>) -> Result<Vec<Action>, StoreError> {
        let mut actions = Vec::new();
        let mut run: Option<(MessageOp, Vec<Uuid>)> = None;
        for payload in &payloads {
            let hint = match Hint::parse(payload) {
                Ok(h) => h,
                Err(e) => {
                    self.ignore(&e);
                    continue;
                }
            };
            match hint {
                Hint::Messages { op, ids } => match &mut run {
                    Some((run_op, run_ids))
                        if *run_op == op && run_ids.len() + ids.len() <= MERGE_IDS =>
                    {
                        run_ids.extend(ids)
                    }
                    _ => {
                        if let Some((op, ids)) = run.replace((op, ids)) {
                            self.read_messages(op, &ids, &mut actions).await?;
                        }
                    }
                },
                other => {
                    if let Some((op, ids)) = run.take() {
                        self.read_messages(op, &ids, &mut actions).await?;
                    }
                    self.resolve_one(other, &mut actions).await?;
                }
            }
        }
        if let Some((op, ids)) = run {
            self.read_messages(op, &ids, &mut actions).await?;
        }
        Ok(actions)
    }

    /// The events of message hints: the rows with these ids, as they are in the table.
    async fn read_messages(
        &self,
        op: MessageOp,
        ids: &[Uuid],
        actions: &mut Vec<Action>,
    ) -> Result<(), StoreError> {
        let rows = self.store.messages_by_ids(ids).await?;
        let mut distinct = ids.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if rows.len() < distinct.len() {
            // Deleted since, or never existed (a forged hint).
            self.ignore(&"names messages that do not exist");
        }
        for m in rows {
            actions.push(match op {
                MessageOp::Inserted => Action::Message {
                    session_id: m.session_id,
                    seq: m.seq,
                    frame: Utf8Bytes::from(protocol::chat_message_frame(&m.json)),
                },
                MessageOp::Updated => Action::Update {
                    session_id: m.session_id,
                    frame: Utf8Bytes::from(protocol::message_updated_frame(&m.json)),
                },
            });
        }
        Ok(())
    }

    /// The events of any other hint.
    async fn resolve_one(&self, hint: Hint, actions: &mut Vec<Action>) -> Result<(), StoreError> {
        match hint {
            Hint::Messages { op, ids } => self.read_messages(op, &ids, actions).await?,
            Hint::Ranges(ranges) => {
                let wanted: Vec<(Uuid, i64, i64)> = ranges
                    .iter()
                    .map(|r| (r.session_id, r.from, r.to))
                    .collect();
                let found = self.store.message_ranges(&wanted).await?;
                if found.len() < ranges.len() {
                    self.ignore(&"names message ranges that hold no messages");
                }
                for r in found {
                    let frame = protocol::messages_updated_frame(
                        r.session_id,
                        Cursor(r.from),
                        Cursor(r.to),
                        r.count,
                    );
                    actions.push(Action::Update {
                        session_id: r.session_id,
                        frame: Utf8Bytes::from(frame),
                    });
                }
            }
            Hint::Session(id) => match self.store.session(id).await? {
                Some(session) => {
                    self.remember_player(session.id, session.player_id);
                    if !session.is_closed() {
                        actions.push(Action::Follow {
                            player_id: session.player_id,
                            session_id: session.id,
                        });
                    }
                    actions.push(Action::Frame {
                        session_id: session.id,
                        frame: Utf8Bytes::from(protocol::session_updated_frame(&session.json)),
                        except: None,
                    });
                }
                None => self.ignore(&"names a session that does not exist"),
            },
            Hint::Presence(gre_id) => match self.store.staff_presence(&gre_id).await? {
                Some((p, online)) => {
                    let frame = protocol::staff_presence_frame(
                        &p.gre_id,
                        p.is_online,
                        &p.status,
                        p.last_seen.as_deref(),
                    );
                    actions.push(Action::Broadcast {
                        frame: Utf8Bytes::from(frame),
                        staff_only: true,
                    });
                    actions.push(Action::OnlineStaff(online));
                }
                None => self.ignore(&"names a GRE with no presence row"),
            },
            // The desk (issue 13): staff-only frames. Internal notes above all never reach a
            // player's socket: they are broadcast to staff connections only.
            Hint::CannedResponse(id) => match self.store.canned_response(id).await? {
                Some((deleted, json)) => actions.push(Action::Broadcast {
                    frame: Utf8Bytes::from(protocol::canned_response_frame(deleted, &json)),
                    staff_only: true,
                }),
                None => self.ignore(&"names a canned response that does not exist"),
            },
            Hint::InternalNote(id) => match self.store.internal_note(id).await? {
                Some((transfer, json)) => actions.push(Action::Broadcast {
                    frame: Utf8Bytes::from(protocol::internal_note_frame(transfer, &json)),
                    staff_only: true,
                }),
                None => self.ignore(&"names an internal note that does not exist"),
            },
            Hint::DeskSettings => {
                let json = self.store.desk_settings().await?;
                actions.push(Action::Broadcast {
                    frame: Utf8Bytes::from(protocol::desk_settings_frame(&json)),
                    staff_only: true,
                });
            }
            Hint::Relayed(sealed) => match self.key.open(&sealed, super::notify::now_ms()) {
                Ok((origin, event)) => {
                    if let Some(a) = self.relayed(origin, event).await? {
                        actions.push(a);
                    }
                }
                Err(e) => self.ignore(&e),
            },
        }
        Ok(())
    }

    /// The client frame for a verified relayed event, built here from its fields.
    async fn relayed(
        &self,
        origin: Origin,
        event: RelayedEvent,
    ) -> Result<Option<Action>, StoreError> {
        let session_id = event.session_id();
        let frame = match event {
            RelayedEvent::Typing {
                side,
                staff_id,
                is_typing,
                ..
            } => {
                let sender_id = match (side, staff_id) {
                    (Side::Gre, Some(staff_id)) => staff_id,
                    _ => match self.player_of(session_id).await? {
                        Some(player_id) => player_id.to_string(),
                        None => {
                            self.ignore(&HintError::Value(
                                "typing in a session that does not exist",
                            ));
                            return Ok(None);
                        }
                    },
                };
                protocol::typing_frame(session_id, side.as_str(), &sender_id, is_typing)
            }
            RelayedEvent::MessagesRead {
                reader,
                up_to,
                cursor,
                count,
                ..
            } => protocol::messages_read_frame(
                session_id,
                reader.as_str(),
                up_to,
                Cursor(cursor),
                count as usize,
            ),
        };
        // The sending connection does not get its own event back.
        let except = (origin.instance == self.instance).then_some(origin.conn);
        Ok(Some(Action::Frame {
            session_id,
            frame: Utf8Bytes::from(frame),
            except,
        }))
    }

    fn remember_player(&self, session_id: Uuid, player_id: i64) {
        let mut players = self
            .players
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if players.len() >= PLAYER_CACHE {
            players.clear();
        }
        players.insert(session_id, player_id);
    }

    async fn player_of(&self, session_id: Uuid) -> Result<Option<i64>, StoreError> {
        let cached = self
            .players
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&session_id)
            .copied();
        if cached.is_some() {
            return Ok(cached);
        }
        let found = self.store.session(session_id).await?.map(|s| s.player_id);
        if let Some(player_id) = found {
            self.remember_player(session_id, player_id);
        }
        Ok(found)
    }

    /// Applies one notification's events to the hub.
    fn apply(&self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Follow {
                    player_id,
                    session_id,
                } => self.hub.follow_new_session(player_id, session_id),
                Action::Message {
                    session_id,
                    seq,
                    frame,
                } => {
                    self.hub.publish_message(session_id, seq, frame);
                }
                Action::Update { session_id, frame } => {
                    let within = self
                        .update_budget
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .take();
                    if within {
                        self.hub.publish_frame(session_id, frame, None);
                    } else {
                        self.status.updates_dropped.inc();
                    }
                }
                Action::Frame {
                    session_id,
                    frame,
                    except,
                } => self.hub.publish_frame(session_id, frame, except),
                Action::Broadcast { frame, staff_only } => self.hub.broadcast(frame, staff_only),
                Action::OnlineStaff(count) => {
                    if self.online_staff.swap(count, Ordering::Relaxed) != count {
                        let frame = protocol::gre_presence_frame(count);
                        self.hub.broadcast(Utf8Bytes::from(frame), false);
                    }
                }
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
