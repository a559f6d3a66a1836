//! The subscription hub: which connection wants which session's events, and the fan-out of each
//! event to them. Staff connections receive every session.
//!
//! Every connection has one bounded queue. The one place that decides what happens when a client
//! cannot keep up is [`Hub::offer`]: the event is not queued, the connection is unregistered and
//! told it lagged; it then closes with code 4008 and the client resumes from its last cursor. No
//! event is ever dropped silently, and a slow client cannot grow the relay's memory.
//!
//! Frames are serialized once by the caller and shared (`Utf8Bytes` is reference counted), so one
//! event to 50 staff sockets costs 50 pointer copies, not 50 encodings.
//!
//! The hub does no I/O and never awaits while holding its lock.
//!
//! Must not touch: the database, sockets (connections drain their own queues), `state/`.

use prometheus_client::metrics::counter::Counter;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use uuid::Uuid;

pub type ConnId = u64;

/// Past this many remembered sessions, forget the ones nobody is subscribed to.
const LAST_SEQ_SOFT_LIMIT: usize = 100_000;

/// One queued event for one connection.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A new message of `session_id`; `seq` lets the connection drop what it already sent
    /// (a backfill that overlaps live delivery).
    Message {
        session_id: Uuid,
        seq: i64,
        frame: Utf8Bytes,
    },
    /// Any other frame, forwarded as is.
    Frame(Utf8Bytes),
}

/// A connection as the hub sees it.
struct Subscriber {
    /// Bounded: its capacity is `websocket.outbound_queue`. Events are `Arc`ed: one allocation
    /// per event shared by all receivers, and 8-byte channel slots (measured: 1.7 KiB less per
    /// connection than queueing the enum itself).
    tx: mpsc::Sender<Arc<Outbound>>,
    /// Rung once when the queue overflowed; the connection then closes with 4008.
    lagged: Arc<Notify>,
    /// Staff see every session without subscribing.
    is_staff: bool,
    /// The player behind a player connection (for presence and push decisions).
    player_id: Option<i64>,
    /// Explicit subscriptions, kept so unregistering can clean `by_session`.
    /// The connection's own position in it: the highest message number it is known to hold
    /// (from its backfill, or from live publication). The listener's catch-up after a
    /// reconnect starts from the lowest position among a session's subscribers.
    sessions: HashMap<Uuid, i64>,
    /// Sessions this connection unsubscribed from: following a player's sessions (a session
    /// notification) must not subscribe it again. Empty for nearly every connection, so a Vec
    /// that allocates only when used.
    left: Vec<Uuid>,
}

#[derive(Default)]
struct HubState {
    conns: HashMap<ConnId, Subscriber>,
    by_session: HashMap<Uuid, Vec<ConnId>>,
    staff: HashSet<ConnId>,
    /// Live connections per player id, across all of a player's tabs.
    players: HashMap<i64, Vec<ConnId>>,
    /// Highest message number published per session: a replayed message (the listener's
    /// backfill after a reconnect) is not published twice. Only publishing raises it: a
    /// subscriber that read a message from the table must not stop its live publication.
    last_seq: HashMap<Uuid, i64>,
}

/// Counters for health and /metrics (shared handles: the registry holds clones).
#[derive(Debug, Default)]
pub struct HubStats {
    /// Events fanned out (one per event, whatever the number of receivers).
    pub published: Counter,
    /// Events queued for a connection.
    pub deliveries: Counter,
    /// Connections dropped because their queue was full (closed with 4008).
    pub lagged_disconnects: Counter,
}

#[derive(Default)]
pub struct Hub {
    /// A std mutex, not a tokio one: it is held only for map updates, never across an await.
    state: Mutex<HubState>,
    next_id: AtomicU64,
    pub stats: HubStats,
}

/// What a connection keeps from registering: its queue's receiving end and the lag signal.
/// Dropping it unregisters the connection.
pub struct Registration {
    hub: Arc<Hub>,
    pub id: ConnId,
    pub rx: mpsc::Receiver<Arc<Outbound>>,
    pub lagged: Arc<Notify>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock leaves maps that are still consistent enough to use:
        // every update is a single insert or remove.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a connection with a queue of `capacity` events.
    pub fn register(
        self: &Arc<Self>,
        capacity: usize,
        is_staff: bool,
        player_id: Option<i64>,
    ) -> Registration {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let lagged = Arc::new(Notify::new());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut state = self.lock();
        if is_staff {
            state.staff.insert(id);
        }
        if let Some(p) = player_id {
            state.players.entry(p).or_default().push(id);
        }
        state.conns.insert(
            id,
            Subscriber {
                tx,
                lagged: lagged.clone(),
                is_staff,
                player_id,
                sessions: HashMap::new(),
                left: Vec::new(),
            },
        );
        drop(state);
        Registration {
            hub: self.clone(),
            id,
            rx,
            lagged,
        }
    }

    fn unregister(&self, id: ConnId) {
        let mut state = self.lock();
        remove_conn(&mut state, id);
    }

    /// Subscribes a connection to a session, holding its messages up to `position`.
    pub fn subscribe(&self, id: ConnId, session_id: Uuid, position: i64) {
        let mut state = self.lock();
        let Some(sub) = state.conns.get_mut(&id) else {
            return;
        };
        sub.left.retain(|s| *s != session_id);
        if sub.sessions.insert(session_id, position).is_none() {
            state.by_session.entry(session_id).or_default().push(id);
        }
    }

    pub fn unsubscribe(&self, id: ConnId, session_id: Uuid) {
        let mut state = self.lock();
        let Some(sub) = state.conns.get_mut(&id) else {
            return;
        };
        if sub.sessions.remove(&session_id).is_none() {
            return;
        }
        // Remembered only for a player's sessions it really left: the list stays as short as
        // the sessions it had (an unsubscribe of arbitrary ids must not grow it), and staff are
        // never made to follow a session anyway.
        if sub.player_id.is_some() && !sub.left.contains(&session_id) {
            sub.left.push(session_id);
        }
        remove_from_session(&mut state, session_id, id);
    }

    /// Publishes a new message of a session to its subscribers and to staff. A message whose
    /// number is not above the last one published for that session is a replay and is skipped.
    /// Returns whether it was published.
    pub fn publish_message(&self, session_id: Uuid, seq: i64, frame: Utf8Bytes) -> bool {
        let mut state = self.lock();
        let last = state.last_seq.entry(session_id).or_insert(0);
        if seq <= *last {
            return false;
        }
        *last = seq;
        if state.last_seq.len() > LAST_SEQ_SOFT_LIMIT {
            let HubState {
                last_seq,
                by_session,
                ..
            } = &mut *state;
            last_seq.retain(|s, _| by_session.contains_key(s));
        }
        let event = Arc::new(Outbound::Message {
            session_id,
            seq,
            frame,
        });
        self.fan_out(&mut state, session_id, None, event);
        true
    }

    /// A session of `player_id` was opened (by whoever: this relay, another one, REST, SQL):
    /// every live connection of that player follows it from now on, as the contract promises.
    /// Called before the session's first message can be published (same transaction, earlier
    /// notification).
    pub fn follow_new_session(&self, player_id: i64, session_id: Uuid) {
        let mut state = self.lock();
        let Some(conns) = state.players.get(&player_id).cloned() else {
            return;
        };
        for id in conns {
            if let Some(sub) = state.conns.get_mut(&id) {
                if sub.left.contains(&session_id) {
                    continue;
                }
                // A new session: its connection holds nothing of it yet.
                if let std::collections::hash_map::Entry::Vacant(e) = sub.sessions.entry(session_id)
                {
                    e.insert(0);
                    state.by_session.entry(session_id).or_default().push(id);
                }
            }
        }
    }

    /// Publishes any other frame about a session (session_updated, message_updated, typing,
    /// messages_read) to its subscribers and staff, except `except` (the sender).
    pub fn publish_frame(&self, session_id: Uuid, frame: Utf8Bytes, except: Option<ConnId>) {
        let mut state = self.lock();
        self.fan_out(
            &mut state,
            session_id,
            except,
            Arc::new(Outbound::Frame(frame)),
        );
    }

    /// Sends a frame to every connection, or to staff only (presence changes).
    pub fn broadcast(&self, frame: Utf8Bytes, staff_only: bool) {
        let mut state = self.lock();
        let ids: Vec<ConnId> = if staff_only {
            state.staff.iter().copied().collect()
        } else {
            state.conns.keys().copied().collect()
        };
        let event = Arc::new(Outbound::Frame(frame));
        for id in ids {
            self.offer(&mut state, id, event.clone());
        }
    }

    fn fan_out(
        &self,
        state: &mut HubState,
        session_id: Uuid,
        except: Option<ConnId>,
        event: Arc<Outbound>,
    ) {
        self.stats.published.inc();
        // Staff first, then session subscribers that are not staff (a staff member who also
        // subscribed explicitly must not get the event twice).
        let mut targets: Vec<ConnId> = state.staff.iter().copied().collect();
        if let Some(subs) = state.by_session.get(&session_id) {
            targets.extend(subs.iter().copied().filter(|id| !state.staff.contains(id)));
        }
        for id in targets {
            if Some(id) != except {
                self.offer(state, id, event.clone());
            }
        }
    }

    /// The one place that decides what a full queue means: the connection is dropped from the
    /// hub and told it lagged. Nothing is silently skipped for a connection that stays.
    fn offer(&self, state: &mut HubState, id: ConnId, event: Arc<Outbound>) {
        let Some(sub) = state.conns.get(&id) else {
            return;
        };
        match sub.tx.try_send(event) {
            Ok(()) => {
                self.stats.deliveries.inc();
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                sub.lagged.notify_one();
                self.stats.lagged_disconnects.inc();
                remove_conn(state, id);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => remove_conn(state, id),
        }
    }

    /// Sessions with at least one explicit subscriber, with the position the listener's
    /// catch-up after a reconnect must start from: every subscriber holds the messages up to its
    /// own position and everything published since it subscribed, so the lowest of
    /// max(position, last published) is where the first gap can be.
    pub fn subscribed_sessions(&self) -> Vec<(Uuid, i64)> {
        let state = self.lock();
        state
            .by_session
            .iter()
            .map(|(session_id, conns)| {
                let published = state.last_seq.get(session_id).copied().unwrap_or(0);
                let from = conns
                    .iter()
                    .filter_map(|c| state.conns.get(c)?.sessions.get(session_id).copied())
                    .map(|held| held.max(published))
                    .min()
                    .unwrap_or(published);
                (*session_id, from)
            })
            .collect()
    }

    /// Records that a connection now holds a session's messages up to `seq` (its own backfill).
    pub fn note_position(&self, id: ConnId, session_id: Uuid, seq: i64) {
        let mut state = self.lock();
        if let Some(held) = state
            .conns
            .get_mut(&id)
            .and_then(|c| c.sessions.get_mut(&session_id))
        {
            *held = (*held).max(seq);
        }
    }

    pub fn has_staff(&self) -> bool {
        !self.lock().staff.is_empty()
    }

    /// Whether this process holds a live connection of the player (the unit tests read it).
    #[cfg(test)]
    pub fn player_connected(&self, player_id: i64) -> bool {
        self.lock().players.contains_key(&player_id)
    }

    pub fn connection_count(&self) -> usize {
        self.lock().conns.len()
    }
}

fn remove_conn(state: &mut HubState, id: ConnId) {
    let Some(sub) = state.conns.remove(&id) else {
        return;
    };
    if sub.is_staff {
        state.staff.remove(&id);
    }
    if let Some(p) = sub.player_id {
        if let Some(conns) = state.players.get_mut(&p) {
            conns.retain(|c| *c != id);
            if conns.is_empty() {
                state.players.remove(&p);
            }
        }
    }
    for session_id in sub.sessions.into_keys() {
        remove_from_session(state, session_id, id);
    }
}

fn remove_from_session(state: &mut HubState, session_id: Uuid, id: ConnId) {
    if let Some(list) = state.by_session.get_mut(&session_id) {
        list.retain(|c| *c != id);
        if list.is_empty() {
            state.by_session.remove(&session_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Utf8Bytes {
        Utf8Bytes::from(s.to_owned())
    }

    #[tokio::test]
    async fn routes_to_subscribers_and_staff_only() {
        let hub = Hub::new();
        let s1 = Uuid::new_v4();
        let s2 = Uuid::new_v4();
        let mut p1 = hub.register(8, false, Some(1));
        let mut p2 = hub.register(8, false, Some(2));
        let mut staff = hub.register(8, true, None);
        hub.subscribe(p1.id, s1, 0);
        hub.subscribe(p2.id, s2, 0);
        assert!(hub.publish_message(s1, 1, text("a")));
        assert!(matches!(
            p1.rx.try_recv().as_deref(),
            Ok(Outbound::Message { seq: 1, .. })
        ));
        assert!(p2.rx.try_recv().is_err());
        assert!(matches!(
            staff.rx.try_recv().as_deref(),
            Ok(Outbound::Message { seq: 1, .. })
        ));
        // A replay of the same number is not published again.
        assert!(!hub.publish_message(s1, 1, text("a")));
        assert!(p1.rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_full_queue_unregisters_and_signals_lag() {
        let hub = Hub::new();
        let s = Uuid::new_v4();
        let p = hub.register(2, false, Some(1));
        hub.subscribe(p.id, s, 0);
        for seq in 1..=3 {
            hub.publish_message(s, seq, text("x"));
        }
        tokio::time::timeout(std::time::Duration::from_secs(1), p.lagged.notified())
            .await
            .expect("lag signalled");
        assert_eq!(hub.connection_count(), 0);
        assert_eq!(hub.stats.lagged_disconnects.get(), 1);
    }

    #[tokio::test]
    async fn a_backfill_position_never_suppresses_live_publication() {
        let hub = Hub::new();
        let s = Uuid::new_v4();
        let mut staff = hub.register(8, true, None);
        let p = hub.register(8, false, Some(1));
        hub.subscribe(p.id, s, 0);
        // A subscriber read message 3 from the table before the listener passed it on.
        hub.note_position(p.id, s, 3);
        assert!(hub.publish_message(s, 3, text("m3")));
        assert!(matches!(
            staff.rx.try_recv().as_deref(),
            Ok(Outbound::Message { seq: 3, .. })
        ));
        assert_eq!(hub.subscribed_sessions(), vec![(s, 3)]);
    }

    #[test]
    fn catch_up_starts_from_the_subscriber_that_holds_least() {
        let hub = Hub::new();
        let s = Uuid::new_v4();
        let old = hub.register(8, false, Some(1));
        let new = hub.register(8, false, Some(1));
        hub.subscribe(old.id, s, 4);
        assert!(hub.publish_message(s, 7, text("m7")));
        // While the listener is down, 8..10 commit and a new tab backfills to 10.
        hub.subscribe(new.id, s, 10);
        // The old tab holds up to 7: the catch-up must start there, not at 10.
        assert_eq!(hub.subscribed_sessions(), vec![(s, 7)]);
        drop(old);
        assert_eq!(hub.subscribed_sessions(), vec![(s, 10)]);
    }

    #[tokio::test]
    async fn an_unsubscribed_player_is_not_subscribed_again_by_following() {
        let hub = Hub::new();
        let mut player = hub.register(8, false, Some(5));
        let session = Uuid::new_v4();
        hub.follow_new_session(5, session);
        hub.unsubscribe(player.id, session);
        // A later notification of the same session (status or assignment changed).
        hub.follow_new_session(5, session);
        hub.publish_message(session, 1, text("m1"));
        // Unsubscribing ids it never had leaves nothing behind.
        for _ in 0..100 {
            hub.unsubscribe(player.id, Uuid::new_v4());
        }
        assert_eq!(hub.lock().conns[&player.id].left, vec![session]);
        assert!(player.rx.try_recv().is_err(), "unsubscribed, yet delivered");
        // Subscribing explicitly again undoes it.
        hub.subscribe(player.id, session, 1);
        hub.publish_message(session, 2, text("m2"));
        assert!(player.rx.try_recv().is_ok());
    }

    #[test]
    fn dropping_registration_cleans_up() {
        let hub = Hub::new();
        let s = Uuid::new_v4();
        let p = hub.register(2, false, Some(5));
        hub.subscribe(p.id, s, 0);
        assert!(hub.player_connected(5));
        assert_eq!(hub.subscribed_sessions().len(), 1);
        drop(p);
        assert!(!hub.player_connected(5));
        assert!(hub.subscribed_sessions().is_empty());
    }
}
