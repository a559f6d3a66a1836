//! What the front ends (`http/`, `ws/`) share: built once by `server.rs`, handed down as an
//! `Arc<AppState>`, never imported back up by the layers below (`db/`, `realtime/`, `chat`).
//!
//! Split by what it holds, so a handler's needs are visible in the field path:
//! - [`Deps`]: the services a request talks to (database, hub, presence, token verifier);
//! - `settings`: the configuration, read-only;
//! - [`Plumbing`]: how the port runs (shutdown signal, task tracker, budgets, origins);
//! - [`Metrics`]: the counters and gauges served at `/metrics`.
//!
//! Must not touch: HTTP or WebSocket types other than the WebSocket buffer settings.

mod metrics;

pub(crate) use metrics::Metrics;

use std::sync::Arc;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::admission::Admission;
use crate::attachments::Attachments;
use crate::auth::Verifier;
use crate::config::{AllowedOrigins, Settings};
use crate::db::Store;
use crate::rate_limit::PerCaller;
use crate::realtime::hub::Hub;
use crate::realtime::listener::ListenerStatus;
use crate::realtime::notify::RelayKey;
use crate::realtime::presence::Presence;

/// Everything a request or connection handler needs, shared by all of them.
pub struct AppState {
    /// The services handlers call.
    pub(crate) deps: Deps,
    /// The configuration the relay started with; never changes while it runs.
    pub(crate) settings: Settings,
    /// How the port runs: shutdown, tasks, connection budgets.
    pub(crate) plumbing: Plumbing,
    /// Counters the handlers increment and `/metrics` renders.
    pub(crate) metrics: Metrics,
}

/// The services a handler talks to.
pub(crate) struct Deps {
    /// Verifies credentials (signing keys, legacy secret, API keys).
    pub(crate) verifier: Verifier,
    /// The connection pool and every query on it.
    pub(crate) store: Store,
    /// Subscriptions and fan-out to this process's sockets.
    pub(crate) hub: Arc<Hub>,
    /// The LISTEN connection's state, read by health and metrics.
    pub(crate) listener: Arc<ListenerStatus>,
    /// Who this process holds sockets of, mirrored to the database.
    pub(crate) presence: Arc<Presence>,
    /// Tells this process's connections apart from other relays' in relayed events.
    pub(crate) instance_id: Uuid,
    /// Signs the events this relay relays through the database (typing, messages_read).
    pub(crate) relay_key: Arc<RelayKey>,
    /// Images and files: the object store, the upload limits, download links.
    pub(crate) attachments: Arc<Attachments>,
}

/// How the port runs.
pub(crate) struct Plumbing {
    /// Turns true once, on shutdown. WebSocket tasks watch it themselves: once upgraded, a
    /// connection is invisible to hyper's graceful shutdown.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Buffer and frame sizes for every upgraded socket.
    pub(crate) ws_config: WebSocketConfig,
    /// Every WebSocket task, so shutdown can wait for them to say goodbye.
    pub(crate) tasks: TaskTracker,
    /// How many connections the port takes, and from whom (`admission.rs`).
    pub(crate) admission: Arc<Admission>,
    /// `server.allowed_origins`, parsed once: CORS on REST and the WebSocket upgrade check.
    pub(crate) origins: AllowedOrigins,
    /// REST writes per caller (HTTP 429 beyond).
    pub(crate) rest_limits: PerCaller,
}
