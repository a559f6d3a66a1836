//! The Prometheus registry behind `GET /metrics` (`http/metrics.rs` renders it). Counters are the
//! same handles the hub and the listener increment; gauges are read when scraped.
//!
//! Must not touch: HTTP (rendering is `http/`'s job), the database.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::AppState;
use crate::auth::Verifier;
use crate::realtime::hub::HubStats;
use crate::realtime::listener::ListenerStatus;

pub(crate) struct Metrics {
    registry: Registry,
    connections: Gauge,
    websocket_tasks: Gauge,
    listener_connected: Gauge,
    /// Frames refused with `rate_limited`.
    pub(crate) rate_limited: Counter,
    /// WebSocket upgrades refused because `server.max_connections` was reached.
    pub(crate) refused_connections: Counter,
}

impl Metrics {
    pub(crate) fn new(hub: &HubStats, listener: &ListenerStatus, verifier: &Verifier) -> Metrics {
        let mut registry = Registry::with_prefix("gre_relay");
        let m = Metrics {
            registry: Registry::default(),
            connections: Gauge::default(),
            websocket_tasks: Gauge::default(),
            listener_connected: Gauge::default(),
            rate_limited: Counter::default(),
            refused_connections: Counter::default(),
        };
        registry.register(
            "connections",
            "Authenticated WebSocket connections",
            m.connections.clone(),
        );
        registry.register(
            "websocket_tasks",
            "Open WebSocket connections, authenticated or not",
            m.websocket_tasks.clone(),
        );
        registry.register(
            "listener_connected",
            "1 when the LISTEN connection is up and caught up",
            m.listener_connected.clone(),
        );
        registry.register(
            "listener_reconnects",
            "LISTEN connections lost or attempts failed (each followed by a retry)",
            listener.reconnects.clone(),
        );
        registry.register(
            "notifications",
            "NOTIFY payloads received",
            listener.notifications.clone(),
        );
        registry.register(
            "notifications_ignored",
            "NOTIFY payloads not acted on: malformed, unknown kind, naming rows that do not exist, or relayed events without a valid signature",
            listener.ignored.clone(),
        );
        registry.register(
            "update_frames_dropped",
            "message_updated and messages_updated frames not sent because the update budget was spent",
            listener.updates_dropped.clone(),
        );
        registry.register(
            "events_published",
            "Events fanned out by the hub",
            hub.published.clone(),
        );
        registry.register(
            "deliveries",
            "Events queued for a connection",
            hub.deliveries.clone(),
        );
        registry.register(
            "lagged_disconnects",
            "Connections closed with 4008 because their queue was full",
            hub.lagged_disconnects.clone(),
        );
        registry.register(
            "rate_limited",
            "WebSocket frames and REST requests refused with rate_limited",
            m.rate_limited.clone(),
        );
        registry.register(
            "refused_connections",
            "Connections refused: over a budget of admission.rs, or an upgrade from an origin not allowed",
            m.refused_connections.clone(),
        );
        let (fetches, failures) = verifier.fetch_counters();
        registry.register(
            "signing_key_fetches",
            "Fetches of the project's signing keys (JWKS), failed ones included",
            fetches,
        );
        registry.register(
            "signing_key_fetch_failures",
            "Fetches of the signing keys that failed (cached keys stayed in use)",
            failures,
        );
        Metrics { registry, ..m }
    }

    /// The exposition text: gauges read now, counters as they stand.
    pub(crate) fn encode(&self, app: &AppState) -> Result<String, std::fmt::Error> {
        self.connections.set(app.deps.hub.connection_count() as i64);
        self.websocket_tasks
            .set(app.plumbing.admission.open_sockets() as i64);
        self.listener_connected
            .set(i64::from(app.deps.listener.is_connected()));
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
