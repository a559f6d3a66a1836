//! Admission: how many connections the port takes, and from whom, so that nobody can fill the
//! relay's connection slots and lock everyone else out.
//!
//! Three budgets, each decided here and nowhere else:
//! - plain HTTP connections (REST, pages, health, and every WebSocket before its upgrade):
//!   `server.max_http_connections`. A connection beyond it is closed at once: a flood of slow
//!   HTTP clients cannot exhaust the process's file descriptors.
//! - WebSockets: `server.max_connections` in all, of which at most
//!   `websocket.max_unauthenticated` may be waiting for their `authenticate` frame (they also
//!   have the shortest timeout, `websocket.auth_timeout_seconds`), so anonymous upgrades cannot
//!   take the slots of signed-in players.
//! - per identity (one player id, one staff id): `websocket.max_connections_per_identity`
//!   sockets on this relay. Twenty tabs are normal; hundreds are somebody hogging the relay.
//!   The service role (backends holding a secret key) is exempt.
//!
//! Must not touch: the hub, the database. It only counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Settings;

/// Why a socket was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many connections; retry later")]
    Full,
    #[error("too many connections waiting to authenticate; retry later")]
    TooManyUnauthenticated,
    #[error("too many connections for this identity; close some tabs")]
    TooManyForIdentity,
}

/// The budgets and what is in use of them. One per relay process.
pub struct Admission {
    max_sockets: usize,
    max_unauthenticated: usize,
    max_per_identity: usize,
    /// Permits for plain HTTP connections; a tokio semaphore so a permit can move into the
    /// connection's task and be given back when it ends, whatever way it ends.
    http: Arc<Semaphore>,
    sockets: AtomicUsize,
    unauthenticated: AtomicUsize,
    /// Sockets per identity key. A std mutex: held for a map update only, never across an await.
    per_identity: Mutex<HashMap<String, usize>>,
}

impl Admission {
    pub fn new(settings: &Settings) -> Arc<Admission> {
        Arc::new(Admission {
            max_sockets: settings.server.max_connections,
            max_unauthenticated: settings.websocket.max_unauthenticated,
            max_per_identity: settings.websocket.max_connections_per_identity,
            http: Arc::new(Semaphore::new(settings.server.max_http_connections)),
            sockets: AtomicUsize::new(0),
            unauthenticated: AtomicUsize::new(0),
            per_identity: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one plain HTTP connection, held until the connection ends (an upgraded
    /// connection gives it back once it is a WebSocket). None: the port is full.
    pub fn http_connection(&self) -> Option<OwnedSemaphorePermit> {
        self.http.clone().try_acquire_owned().ok()
    }

    /// A slot for a new, not yet authenticated WebSocket.
    pub fn open_socket(self: &Arc<Self>) -> Result<SocketPermit, Refusal> {
        if !take(&self.sockets, self.max_sockets) {
            return Err(Refusal::Full);
        }
        if !take(&self.unauthenticated, self.max_unauthenticated) {
            self.sockets.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::TooManyUnauthenticated);
        }
        Ok(SocketPermit {
            admission: self.clone(),
            state: PermitState::Unauthenticated,
        })
    }

    /// Open WebSockets, authenticated or not.
    pub fn open_sockets(&self) -> usize {
        self.sockets.load(Ordering::Relaxed)
    }

    /// WebSockets still waiting for their `authenticate` frame (the unit tests read it).
    #[cfg(test)]
    pub fn unauthenticated_sockets(&self) -> usize {
        self.unauthenticated.load(Ordering::Relaxed)
    }

    fn per_identity(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // A panic while holding this lock leaves a counter map that is still consistent.
        self.per_identity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Increments `counter` unless it is at `max`.
fn take(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

enum PermitState {
    Unauthenticated,
    /// Counted under this identity key (None: exempt from the per-identity cap).
    Authenticated(Option<String>),
}

/// One admitted WebSocket; gives its slots back when dropped.
pub struct SocketPermit {
    admission: Arc<Admission>,
    state: PermitState,
}

impl SocketPermit {
    /// Moves the socket from the unauthenticated budget to its identity's. `key` None means the
    /// identity has no per-identity cap (the service role). A refusal leaves the permit as it
    /// was, so a client may retry with another credential.
    pub fn authenticate(&mut self, key: Option<String>) -> Result<(), Refusal> {
        if let PermitState::Authenticated(_) = self.state {
            return Ok(());
        }
        if let Some(key) = &key {
            let mut map = self.admission.per_identity();
            let n = map.entry(key.clone()).or_insert(0);
            if *n >= self.admission.max_per_identity {
                if *n == 0 {
                    map.remove(key);
                }
                return Err(Refusal::TooManyForIdentity);
            }
            *n += 1;
        }
        self.admission
            .unauthenticated
            .fetch_sub(1, Ordering::AcqRel);
        self.state = PermitState::Authenticated(key);
        Ok(())
    }
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        match &self.state {
            PermitState::Unauthenticated => {
                self.admission
                    .unauthenticated
                    .fetch_sub(1, Ordering::AcqRel);
            }
            PermitState::Authenticated(Some(key)) => {
                let mut map = self.admission.per_identity();
                if let Some(n) = map.get_mut(key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        map.remove(key);
                    }
                }
            }
            PermitState::Authenticated(None) => {}
        }
        self.admission.sockets.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Raises this process's open-file limit to the hard limit (systems often start services with
/// a soft limit of 1,024, far below what `server.max_connections` needs), and warns when the
/// budgets still do not fit under it. Returns the soft limit now in force.
pub fn raise_descriptor_limit(settings: &Settings) -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    // Sockets of both budgets, the pool, the LISTEN connection and some files.
    let needed = (settings.server.max_connections
        + settings.server.max_http_connections
        + settings.database.pool_size
        + 64) as u64;
    if soft < needed {
        tracing::warn!(
            limit = soft,
            needed,
            "the open-file limit (ulimit -n) is below server.max_connections + \
             server.max_http_connections: raise it, or lower those settings"
        );
    }
    Some(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(sockets: usize, unauth: usize, per_identity: usize) -> Arc<Admission> {
        let mut s = Settings::defaults().expect("defaults");
        s.server.max_connections = sockets;
        s.server.max_http_connections = 2;
        s.websocket.max_unauthenticated = unauth;
        s.websocket.max_connections_per_identity = per_identity;
        Admission::new(&s)
    }

    #[test]
    fn unauthenticated_sockets_have_their_own_smaller_budget() {
        let a = admission(10, 2, 5);
        let p1 = a.open_socket().expect("first");
        let _p2 = a.open_socket().expect("second");
        assert_eq!(a.open_socket().err(), Some(Refusal::TooManyUnauthenticated));
        let mut p1 = p1;
        p1.authenticate(Some("player:1".into())).expect("auth");
        assert_eq!(a.unauthenticated_sockets(), 1);
        let _p3 = a.open_socket().expect("a slot was freed by authenticating");
        assert_eq!(a.open_sockets(), 3);
    }

    #[test]
    fn one_identity_cannot_take_every_slot() {
        let a = admission(10, 10, 2);
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut p = a.open_socket().expect("open");
            p.authenticate(Some("player:7".into())).expect("within cap");
            held.push(p);
        }
        let mut third = a.open_socket().expect("open");
        assert_eq!(
            third.authenticate(Some("player:7".into())),
            Err(Refusal::TooManyForIdentity)
        );
        // Another identity, and the exempt service role, still get in.
        third.authenticate(Some("player:8".into())).expect("other");
        let mut service = a.open_socket().expect("open");
        service.authenticate(None).expect("exempt");
        drop(held.pop());
        let mut again = a.open_socket().expect("open");
        again
            .authenticate(Some("player:7".into()))
            .expect("a slot of player 7 was freed");
    }

    #[test]
    fn dropping_permits_gives_every_slot_back() {
        let a = admission(2, 2, 1);
        {
            let mut p = a.open_socket().expect("open");
            p.authenticate(Some("staff:x".into())).expect("auth");
            let _q = a.open_socket().expect("open");
            assert_eq!(a.open_socket().err(), Some(Refusal::Full));
        }
        assert_eq!(a.open_sockets(), 0);
        assert_eq!(a.unauthenticated_sockets(), 0);
        assert!(a.per_identity().is_empty());
        let h1 = a.http_connection().expect("http 1");
        let _h2 = a.http_connection().expect("http 2");
        assert!(a.http_connection().is_none());
        drop(h1);
        assert!(a.http_connection().is_some());
    }
}
