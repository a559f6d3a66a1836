//! The HTTP front door on the relay's one port: the WebSocket upgrade at `/ws`, the REST API
//! (`rest.rs`), the health check and the browser pages (`pages.rs`). Responses are JSON, errors included.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::protocol::ErrorCode;
use crate::server::AppState;

pub type Body = Full<Bytes>;

/// A JSON response.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// The contract's error body: `{"error": {"code": "...", "message": "..."}}`.
pub fn error_response(status: StatusCode, code: ErrorCode, message: &str) -> Response<Body> {
    json_response(
        status,
        &serde_json::json!({"error": {"code": code.as_str(), "message": message}}),
    )
}

/// Routes one request. Never fails: every problem is a JSON error response. Every answer carries
/// the CORS headers for the caller's origin (`cors.rs`).
pub async fn handle(
    req: Request<Incoming>,
    app: Arc<AppState>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let request_headers = req.headers().clone();
    let not_allowed = |allow: &'static str| {
        let mut res = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            &format!("use {allow}"),
        );
        res.headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
        res
    };
    let preflight = req.method() == Method::OPTIONS;
    let mut res = match (req.method(), path.as_str()) {
        // A browser asks before a cross-origin call with a token: 204, and the allow headers
        // when its origin is on the list.
        (&Method::OPTIONS, _) => {
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = StatusCode::NO_CONTENT;
            res
        }
        (&Method::GET, "/ws") => upgrade(req, app.clone()),
        (_, "/ws") => not_allowed("GET"),
        (&Method::GET, "/api/gre-chat/health") => health(&app).await,
        (_, "/api/gre-chat/health") => not_allowed("GET"),
        (&Method::GET, "/metrics") => app.metrics.render(&app),
        (_, "/metrics") => not_allowed("GET"),
        (&Method::GET, p) if crate::pages::is_page(p) => crate::pages::serve(p),
        _ => match crate::rest::handle(req, app.clone()).await {
            Some(res) => res,
            None => error_response(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such endpoint",
            ),
        },
    };
    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
        app.origins
            .apply(&request_headers, preflight, res.headers_mut());
    }
    Ok(res)
}

fn header_has(req: &Request<Incoming>, name: hyper::header::HeaderName, token: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(token))
}

/// Answers the WebSocket handshake and hands the upgraded socket to `ws_connection`.
fn upgrade(mut req: Request<Incoming>, app: Arc<AppState>) -> Response<Body> {
    let key = req
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()));
    let version_ok = req
        .headers()
        .get(SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes() == b"13")
        .unwrap_or(false);
    let (Some(accept), true, true, true) = (
        key,
        version_ok,
        header_has(&req, CONNECTION, "upgrade"),
        header_has(&req, UPGRADE, "websocket"),
    ) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidFrame,
            "expected a WebSocket upgrade (version 13)",
        );
    };
    // Browsers send their page's origin on an upgrade and, unlike fetch, never ask first: the
    // list is enforced here or not at all.
    if !app.origins.allows(req.headers()) {
        app.metrics.refused_connections.inc();
        return error_response(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "this origin may not open a WebSocket here",
        );
    }
    let permit = match app.admission.open_socket() {
        Ok(permit) => permit,
        Err(refusal) => {
            app.metrics.refused_connections.inc();
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                &refusal.to_string(),
            );
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let config = app.ws_config;
    let tracker = app.tasks.clone();
    tracker.spawn(async move {
        let mut permit = permit;
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                crate::ws_connection::serve(ws, app, &mut permit).await;
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

/// 200 when the database answers and the listener is connected; 503 otherwise.
async fn health(app: &AppState) -> Response<Body> {
    let database = tokio::time::timeout(std::time::Duration::from_secs(2), app.store.ping())
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
    let listener = app.listener.is_connected();
    let ok = database && listener;
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "unavailable" },
        "database": if database { "ok" } else { "down" },
        "listener": if listener { "connected" } else { "disconnected" },
        "lastNotificationAgeSeconds": app.listener.last_notification_age(),
        "listenerReconnects": app.listener.reconnects.get(),
        "laggedDisconnects": app.hub.stats.lagged_disconnects.get(),
        "connections": app.hub.connection_count(),
        // Informational: the relay serves (legacy secret, API keys, cached keys) without it.
        "signingKeys": app.verifier.signing_keys_health(),
        "instance": app.instance_id,
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
