//! Prometheus metrics at `GET /metrics` (text exposition format). Counters are the same handles
//! the hub and the listener increment; gauges are read when scraped.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::auth::Verifier;
use crate::http::Body;
use crate::hub::HubStats;
use crate::listener::ListenerStatus;
use crate::server::AppState;

pub struct Metrics {
    registry: Registry,
    connections: Gauge,
    websocket_tasks: Gauge,
    listener_connected: Gauge,
    /// Frames refused with `rate_limited`.
    pub rate_limited: Counter,
    /// WebSocket upgrades refused because `server.max_connections` was reached.
    pub refused_connections: Counter,
}

impl Metrics {
    pub fn new(hub: &HubStats, listener: &ListenerStatus, verifier: &Verifier) -> Metrics {
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

    pub fn render(&self, app: &AppState) -> Response<Body> {
        self.connections.set(app.hub.connection_count() as i64);
        self.websocket_tasks
            .set(app.admission.open_sockets() as i64);
        self.listener_connected
            .set(i64::from(app.listener.is_connected()));
        let mut text = String::new();
        if let Err(e) = encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "could not encode metrics");
            return crate::http::error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                crate::protocol::ErrorCode::Internal,
                "metrics unavailable",
            );
        }
        let mut res = Response::new(Full::new(Bytes::from(text)));
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        res
    }
}
