//! `http/`: the front door on the relay's one port. This file routes: the WebSocket upgrade at
//! `/ws` (handed to `ws/`), the REST API ([`rest`]; the GRE desk's, [`desk`]; attachments,
//! [`attachments`]; the analytics report, [`analytics`]), health ([`health`]), metrics
//! ([`metrics`]) and the browser pages ([`pages`]); [`cors`] adds the allowed-origin headers to
//! every answer.
//! Responses are JSON ([`response`]), errors included ([`error`]).
//!
//! Must not touch: the database except through `chat` and `db`'s queries; the hub (sockets
//! subscribe from `ws/`); the LISTEN connection.

mod analytics;
mod attachments;
mod bodies;
pub(crate) mod cors;
mod desk;
pub(crate) mod error;
mod health;
mod metrics;
pub mod pages;
mod response;
mod rest;
mod routes;

use response::full;
pub(crate) use response::Body;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::protocol::ErrorCode;
use crate::state::AppState;
use error::error_response;

/// Routes one request. Never fails: every problem is a JSON error response. Every answer carries
/// the CORS headers for the caller's origin (`cors.rs`).
pub(crate) async fn handle(
    req: Request<Incoming>,
    app: Arc<AppState>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let request_headers = req.headers().clone();
    let not_allowed = error::method_not_allowed;
    let preflight = req.method() == Method::OPTIONS;
    let mut res = match (req.method(), path.as_str()) {
        // A browser asks before a cross-origin call with a token: 204, and the allow headers
        // when its origin is on the list.
        (&Method::OPTIONS, _) => {
            let mut res = Response::new(full(Bytes::new()));
            *res.status_mut() = StatusCode::NO_CONTENT;
            res
        }
        (&Method::GET, "/ws") => upgrade(req, app.clone()),
        (_, "/ws") => not_allowed("GET"),
        (&Method::GET, "/api/gre-chat/health") => health::health(&app).await,
        (_, "/api/gre-chat/health") => not_allowed("GET"),
        (&Method::GET, "/metrics") => metrics::render(&app),
        (_, "/metrics") => not_allowed("GET"),
        (&Method::GET, p) if pages::is_page(p) => pages::serve(p),
        (_, p) if attachments::is_attachment_path(p) => attachments::handle(req, &app).await,
        (_, p) if p.starts_with("/api/gre-admin/desk/") => desk::handle(req, &app).await,
        (&Method::GET, "/api/gre-admin/analytics") => analytics::handle(req, app.clone()).await,
        (_, "/api/gre-admin/analytics") => not_allowed("GET"),
        _ => match rest::handle(req, app.clone()).await {
            Some(res) => res,
            None => error_response(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such endpoint",
            ),
        },
    };
    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
        app.plumbing
            .origins
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

/// Answers the WebSocket handshake and hands the upgraded socket to `ws::connection`.
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
    if !app.plumbing.origins.allows(req.headers()) {
        app.metrics.refused_connections.inc();
        return error_response(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "this origin may not open a WebSocket here",
        );
    }
    let mut permit = match app.plumbing.admission.open_socket() {
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
    let tracker = app.plumbing.tasks.clone();
    // `permit` is used in place, not moved into a local: both copies would stay in the task.
    let task = async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                // The config is read here, not captured: a captured copy would stay in every
                // connection's task for its whole life.
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(app.plumbing.ws_config),
                )
                .await;
                crate::ws::connection::serve(ws, app, &mut permit).await;
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    };
    tracker.spawn(task);
    let mut res = Response::new(full(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}
