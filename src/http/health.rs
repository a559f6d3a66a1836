//! `GET /api/gre-chat/health`: whether the database answers and the LISTEN connection is up.
//! Must not touch: anything but reading the state.

use hyper::{Response, StatusCode};

use super::response::{json_response, Body};
use crate::state::AppState;

/// 200 when the database answers and the listener is connected; 503 otherwise.
pub(super) async fn health(app: &AppState) -> Response<Body> {
    let database = tokio::time::timeout(std::time::Duration::from_secs(2), app.deps.store.ping())
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
    let listener = app.deps.listener.is_connected();
    let ok = database && listener;
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "unavailable" },
        "database": if database { "ok" } else { "down" },
        "listener": if listener { "connected" } else { "disconnected" },
        "lastNotificationAgeSeconds": app.deps.listener.last_notification_age(),
        "listenerReconnects": app.deps.listener.reconnects.get(),
        "laggedDisconnects": app.deps.hub.stats.lagged_disconnects.get(),
        "connections": app.deps.hub.connection_count(),
        // Informational: the relay serves (legacy secret, API keys, cached keys) without it.
        "signingKeys": app.deps.verifier.signing_keys_health(),
        "instance": app.deps.instance_id,
        "version": env!("CARGO_PKG_VERSION"),
    });
    json_response(
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &body,
    )
}
