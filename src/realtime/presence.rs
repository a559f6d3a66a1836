//! Presence: which players and staff this relay process holds live sockets of, mirrored into
//! `gre_relay.presence` so that every relay (and the push trigger) can tell who is connected
//! anywhere, and `gre_online_status` stays right with several tabs and several relays.
//!
//! Only transitions touch the database: a subject's first socket on this process inserts its row
//! (awaited, so that once a client is told `authenticated` the database knows it is here); its
//! last socket closing marks it for the background task, which deletes the row. A heartbeat keeps
//! this process's rows alive; rows of a crashed process expire (sql/0090_presence.sql).
//!
//! Not here: the WebSocket frames about presence (the listener sends them on NOTIFY).
//!
//! Must not touch: sockets, the hub, `state/`; it writes only this relay's rows.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::db::Store;

/// How often this relay proves it is alive; the database forgets it after
/// `gre_relay.presence_stale_after()` (20 s) without a beat.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Player,
    Staff,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Player => "player",
            Kind::Staff => "staff",
        }
    }
}

type Key = (Kind, String);

pub struct Presence {
    store: Store,
    instance: Uuid,
    /// Live sockets per subject on this process. A std mutex: never held across an await.
    counts: Mutex<HashMap<Key, usize>>,
    /// Subjects whose last socket closed, waiting for the background task. A set, so flapping
    /// connections coalesce and the backlog is bounded by the number of subjects.
    dirty: Mutex<HashSet<Key>>,
    wake: Notify,
    /// Serializes the presence writes of one subject, so the last write always reflects its
    /// latest count. Striped by subject: writes of different subjects run side by side (one
    /// process-wide lock made every new connection wait for every other's database round trip:
    /// a reconnect storm queued behind a single lock).
    writes: Box<[tokio::sync::Mutex<()>]>,
}

/// Lock stripes for presence writes: more than the pool has connections, so that unrelated
/// subjects rarely share one.
const WRITE_STRIPES: usize = 64;

/// Held by a connection; dropping it releases the subject's presence.
pub struct PresenceGuard {
    presence: Arc<Presence>,
    key: Key,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        self.presence.release(&self.key);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Presence {
    pub fn new(store: Store, instance: Uuid) -> Arc<Presence> {
        Arc::new(Presence {
            store,
            instance,
            counts: Mutex::new(HashMap::new()),
            dirty: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            writes: (0..WRITE_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        })
    }

    /// Registers this process in the database. Called once before serving.
    pub async fn register(&self) -> Result<(), crate::db::StoreError> {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        self.store
            .register_instance(self.instance, host.trim())
            .await
    }

    /// Counts one more socket of `subject`; the first one is written to the database before
    /// this returns. A database failure is logged, not fatal: the heartbeat repairs it.
    pub async fn attach(self: &Arc<Self>, kind: Kind, subject: String) -> PresenceGuard {
        let key = (kind, subject);
        let first = {
            let mut counts = lock(&self.counts);
            let n = counts.entry(key.clone()).or_default();
            *n += 1;
            *n == 1
        };
        if first {
            self.sync(&key).await;
        }
        PresenceGuard {
            presence: self.clone(),
            key,
        }
    }

    fn release(&self, key: &Key) {
        let last = {
            let mut counts = lock(&self.counts);
            match counts.get_mut(key) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    counts.remove(key);
                    true
                }
                None => false,
            }
        };
        if last {
            lock(&self.dirty).insert(key.clone());
            self.wake.notify_one();
        }
    }

    fn count(&self, key: &Key) -> usize {
        lock(&self.counts).get(key).copied().unwrap_or(0)
    }

    /// Writes the subject's current state. Under the subject's stripe of `writes`, so a slow
    /// delete cannot land after a newer insert of the same subject.
    async fn sync(&self, key: &Key) {
        let stripe = {
            use std::hash::{BuildHasher, RandomState};
            static STATE: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
            let hash = STATE.get_or_init(RandomState::new).hash_one(key);
            (hash % WRITE_STRIPES as u64) as usize
        };
        let _turn = self.writes[stripe].lock().await;
        let present = self.count(key) > 0;
        if let Err(e) = self
            .store
            .set_presence(self.instance, key.0.as_str(), &key.1, present)
            .await
        {
            tracing::warn!(error = %e, kind = key.0.as_str(), subject = %key.1, "could not record presence");
            lock(&self.dirty).insert(key.clone());
        }
    }

    /// Background task: writes released subjects, beats the heartbeat, and on shutdown removes
    /// this process's presence so its staff go offline at once.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut beat = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                _ = crate::shutdown::stopped(&mut shutdown) => break,
                _ = self.wake.notified() => self.flush_dirty().await,
                _ = beat.tick() => {
                    match self.store.heartbeat(self.instance).await {
                        Ok(true) => {}
                        Ok(false) => self.reregister().await,
                        Err(e) => tracing::warn!(error = %e, "presence heartbeat failed"),
                    }
                    self.flush_dirty().await;
                }
            }
        }
        if let Err(e) = self.store.unregister_instance(self.instance).await {
            tracing::warn!(error = %e, "could not remove this relay's presence");
        }
    }

    async fn flush_dirty(&self) {
        let keys: Vec<Key> = lock(&self.dirty).drain().collect();
        for key in keys {
            self.sync(&key).await;
        }
    }

    /// This process was presumed dead (the database was out of reach too long) and its rows were
    /// reaped: register again and rewrite every subject it holds.
    async fn reregister(&self) {
        tracing::warn!("this relay's presence had expired; registering again");
        if let Err(e) = self.register().await {
            tracing::warn!(error = %e, "could not register presence");
            return;
        }
        let keys: Vec<Key> = lock(&self.counts).keys().cloned().collect();
        lock(&self.dirty).extend(keys);
        self.flush_dirty().await;
    }
}
