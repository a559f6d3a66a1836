//! The subscription hub: which connection wants which session's events, and the fan-out of each
//! event to them. Staff connections receive every session.
//!
//! Every connection has one bounded queue ([`Queue`]). The one place that decides what happens
//! when a client cannot keep up is [`Hub::offer`]: the event is not queued, the connection is
//! unregistered and its queue closed as lagged; it then closes with code 4008 and the client
//! resumes from its last cursor. No event is ever dropped silently, and a slow client cannot grow
//! the relay's memory. Shutdown reaches every connection the same way ([`Hub::close_all`]).
//!
//! The maps are sized for many idle connections (docs/performance.md, "Issue 12, idle memory and
//! relay CPU"): a connection list of one id is stored inline ([`Ids`]), and a connection's
//! sessions are a short sorted vector, not a hash map of their own.
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
use tokio_tungstenite::tungstenite::Utf8Bytes;
use uuid::Uuid;

pub use super::queue::{Closed, Recv};
use super::queue::{PushError, Queue};

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
    /// per event shared by all receivers, and 8-byte slots (measured: 1.7 KiB less per
    /// connection than queueing the enum itself).
    queue: Arc<Queue<Arc<Outbound>>>,
    /// Staff see every session without subscribing.
    is_staff: bool,
    /// The player behind a player connection (for presence and push decisions).
    player_id: Option<i64>,
    /// Explicit subscriptions, kept so unregistering can clean `by_session`.
    /// The connection's own position in it: the highest message number it is known to hold
    /// (from its backfill, or from live publication). The listener's catch-up after a
    /// reconnect starts from the lowest position among a session's subscribers.
    sessions: Held,
    /// Sessions this connection unsubscribed from: following a player's sessions (a session
    /// notification) must not subscribe it again. Empty for nearly every connection, so a Vec
    /// that allocates only when used.
    left: Vec<Uuid>,
}

#[derive(Default)]
struct HubState {
    conns: HashMap<ConnId, Subscriber>,
    by_session: HashMap<Uuid, Ids>,
    staff: HashSet<ConnId>,
    /// Live connections per player id, across all of a player's tabs.
    players: HashMap<i64, Ids>,
    /// Highest message number published per session: a replayed message (the listener's
    /// backfill after a reconnect) is not published twice. Only publishing raises it: a
    /// subscriber that read a message from the table must not stop its live publication.
    last_seq: HashMap<Uuid, i64>,
    /// Set by [`Hub::close_all`]: a connection registering after it gets a closed queue.
    closed: bool,
}

/// The connections of one session or one player: nearly always one, stored without an
/// allocation of its own.
enum Ids {
    One(ConnId),
    Many(Vec<ConnId>),
}

impl Ids {
    fn push(&mut self, id: ConnId) {
        match self {
            Ids::One(first) => *self = Ids::Many(vec![*first, id]),
            Ids::Many(v) => v.push(id),
        }
    }

    /// Removes `id`; returns whether the list is now empty.
    fn remove(&mut self, id: ConnId) -> bool {
        match self {
            Ids::One(only) => *only == id,
            Ids::Many(v) => {
                v.retain(|c| *c != id);
                match v[..] {
                    [] => true,
                    [last] => {
                        *self = Ids::One(last);
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    fn as_slice(&self) -> &[ConnId] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(v) => v,
        }
    }
}

/// A connection's subscriptions with its position in each, sorted by session id. Most
/// connections hold one; a `HashMap` would allocate room for three and a control block.
#[derive(Default)]
struct Held(Vec<(Uuid, i64)>);

impl Held {
    fn find(&self, session_id: &Uuid) -> Result<usize, usize> {
        self.0.binary_search_by(|(s, _)| s.cmp(session_id))
    }

    fn get_mut(&mut self, session_id: &Uuid) -> Option<&mut i64> {
        let i = self.find(session_id).ok()?;
        Some(&mut self.0[i].1)
    }

    fn get(&self, session_id: &Uuid) -> Option<i64> {
        self.find(session_id).ok().map(|i| self.0[i].1)
    }

    /// Inserts or overwrites; returns whether the session was there before.
    fn insert(&mut self, session_id: Uuid, position: i64) -> bool {
        match self.find(&session_id) {
            Ok(i) => {
                self.0[i].1 = position;
                true
            }
            Err(i) => {
                // Grow one slot at a time while short (the usual one or two sessions), the usual
                // doubling beyond.
                if self.0.len() == self.0.capacity() && self.0.len() < 4 {
                    self.0.reserve_exact(1);
                }
                self.0.insert(i, (session_id, position));
                false
            }
        }
    }

    fn remove(&mut self, session_id: &Uuid) -> bool {
        match self.find(session_id) {
            Ok(i) => {
                self.0.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    fn ids(self) -> impl Iterator<Item = Uuid> {
        self.0.into_iter().map(|(s, _)| s)
    }
}

fn add_id(
    map_entry: std::collections::hash_map::Entry<'_, impl std::hash::Hash + Eq, Ids>,
    id: ConnId,
) {
    match map_entry {
        std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().push(id),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(Ids::One(id));
        }
    }
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

/// What a connection keeps from registering: its queue's receiving end, which also says when
/// it lagged or the relay shuts down. Dropping it unregisters the connection.
pub struct Registration {
    hub: Arc<Hub>,
    pub id: ConnId,
    queue: Arc<Queue<Arc<Outbound>>>,
}

impl Registration {
    /// The next event for this connection (when `deliver`), or why it must close. A plain
    /// `poll_fn`, not an `async fn`: it sits in every idle connection's task.
    pub fn recv(
        &self,
        deliver: bool,
    ) -> impl std::future::Future<Output = Recv<Arc<Outbound>>> + '_ {
        std::future::poll_fn(move |cx| self.queue.poll_recv(cx, deliver))
    }

    /// The next event if one is already waiting (and the queue is open).
    pub fn try_recv(&self) -> Option<Arc<Outbound>> {
        self.queue.try_recv()
    }
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
        let queue = Arc::new(Queue::new(capacity));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut state = self.lock();
        if state.closed {
            // Shutting down: the connection is told so at its first wait, and is not added.
            queue.close(Closed::Shutdown);
        } else {
            if is_staff {
                state.staff.insert(id);
            }
            if let Some(p) = player_id {
                add_id(state.players.entry(p), id);
            }
            state.conns.insert(
                id,
                Subscriber {
                    queue: queue.clone(),
                    is_staff,
                    player_id,
                    sessions: Held::default(),
                    left: Vec::new(),
                },
            );
        }
        drop(state);
        Registration {
            hub: self.clone(),
            id,
            queue,
        }
    }

    /// Shutdown: every connection's queue closes (they answer 1001), and later registrations
    /// get a closed queue.
    pub fn close_all(&self) {
        let mut state = self.lock();
        state.closed = true;
        for sub in state.conns.values() {
            sub.queue.close(Closed::Shutdown);
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
        if !sub.sessions.insert(session_id, position) {
            add_id(state.by_session.entry(session_id), id);
        }
    }

    pub fn unsubscribe(&self, id: ConnId, session_id: Uuid) {
        let mut state = self.lock();
        let Some(sub) = state.conns.get_mut(&id) else {
            return;
        };
        if !sub.sessions.remove(&session_id) {
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
        let Some(conns) = state.players.get(&player_id).map(|c| c.as_slice().to_vec()) else {
            return;
        };
        for id in conns {
            if let Some(sub) = state.conns.get_mut(&id) {
                if sub.left.contains(&session_id) {
                    continue;
                }
                // A new session: its connection holds nothing of it yet.
                if sub.sessions.get(&session_id).is_none() {
                    sub.sessions.insert(session_id, 0);
                    add_id(state.by_session.entry(session_id), id);
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
            targets.extend(
                subs.as_slice()
                    .iter()
                    .copied()
                    .filter(|id| !state.staff.contains(id)),
            );
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
        match sub.queue.push(event) {
            Ok(()) => {
                self.stats.deliveries.inc();
            }
            Err(PushError::Full) => {
                sub.queue.close(Closed::Lagged);
                self.stats.lagged_disconnects.inc();
                remove_conn(state, id);
            }
            Err(PushError::Closed) => remove_conn(state, id),
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
                    .as_slice()
                    .iter()
                    .filter_map(|c| state.conns.get(c)?.sessions.get(session_id))
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
        if state
            .players
            .get_mut(&p)
            .is_some_and(|conns| conns.remove(id))
        {
            state.players.remove(&p);
        }
    }
    for session_id in sub.sessions.ids() {
        remove_from_session(state, session_id, id);
    }
}

fn remove_from_session(state: &mut HubState, session_id: Uuid, id: ConnId) {
    if state
        .by_session
        .get_mut(&session_id)
        .is_some_and(|list| list.remove(id))
    {
        state.by_session.remove(&session_id);
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
        let p1 = hub.register(8, false, Some(1));
        let p2 = hub.register(8, false, Some(2));
        let staff = hub.register(8, true, None);
        hub.subscribe(p1.id, s1, 0);
        hub.subscribe(p2.id, s2, 0);
        assert!(hub.publish_message(s1, 1, text("a")));
        assert!(matches!(
            p1.try_recv().as_deref(),
            Some(Outbound::Message { seq: 1, .. })
        ));
        assert!(p2.try_recv().is_none());
        assert!(matches!(
            staff.try_recv().as_deref(),
            Some(Outbound::Message { seq: 1, .. })
        ));
        // A replay of the same number is not published again.
        assert!(!hub.publish_message(s1, 1, text("a")));
        assert!(p1.try_recv().is_none());
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
        let why = tokio::time::timeout(std::time::Duration::from_secs(1), p.recv(true))
            .await
            .expect("lag signalled");
        assert!(matches!(why, Recv::Closed(Closed::Lagged)));
        assert_eq!(hub.connection_count(), 0);
        assert_eq!(hub.stats.lagged_disconnects.get(), 1);
    }

    #[tokio::test]
    async fn a_backfill_position_never_suppresses_live_publication() {
        let hub = Hub::new();
        let s = Uuid::new_v4();
        let staff = hub.register(8, true, None);
        let p = hub.register(8, false, Some(1));
        hub.subscribe(p.id, s, 0);
        // A subscriber read message 3 from the table before the listener passed it on.
        hub.note_position(p.id, s, 3);
        assert!(hub.publish_message(s, 3, text("m3")));
        assert!(matches!(
            staff.try_recv().as_deref(),
            Some(Outbound::Message { seq: 3, .. })
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
        let player = hub.register(8, false, Some(5));
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
        assert!(player.try_recv().is_none(), "unsubscribed, yet delivered");
        // Subscribing explicitly again undoes it.
        hub.subscribe(player.id, session, 1);
        hub.publish_message(session, 2, text("m2"));
        assert!(player.try_recv().is_some());
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
