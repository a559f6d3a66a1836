//! The REST API (CONTRACT section 5) on the relay's port: routing, bearer authentication, JSON
//! bodies with a size limit, and the contract's error shape. The rules themselves (chat access,
//! who may write where) live in `chat.rs` and `db/`, shared with the WebSocket.
//!
//! Must not touch: the hub and the LISTEN connection (delivery follows from the committed rows).

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

use super::bodies::{self, BodyError, Field, ReplyBody, SendBody, StatusBody};
use super::error::{error_response, method_not_allowed, ApiCode, ApiError};
use super::response::{full, json_response, Body};
use super::routes::{Lookup, Routes};
use crate::auth::{AuthError, Identity};
use crate::chat::{self, store_error};
use crate::protocol::{self, Cursor, ErrorCode, ProtocolError};
use crate::state::AppState;

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;
const DEFAULT_SESSIONS: i64 = 100;
const MAX_SESSIONS: i64 = 500;
const SESSION_STATUSES: [&str; 3] = ["waiting", "active", "closed"];

#[derive(Debug, Clone, Copy)]
enum Route {
    Send,
    PlayerMessages,
    EnableAll,
    EnablePlayer,
    CloseSession,
    AdminSessions,
    AdminMessages,
    AdminReply,
    AdminStatus,
}

/// Path → the route of the one method it answers.
fn routes() -> &'static Routes<Route> {
    static ROUTES: OnceLock<Routes<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        Routes::new(&[
            ("/api/gre-chat/send", Method::POST, Route::Send),
            (
                "/api/gre-chat/messages/{player_id}",
                Method::GET,
                Route::PlayerMessages,
            ),
            (
                "/api/gre-chat/enable-all-players",
                Method::POST,
                Route::EnableAll,
            ),
            (
                "/api/gre-chat/enable-player/{player_id}",
                Method::POST,
                Route::EnablePlayer,
            ),
            (
                "/api/gre-chat/close-session/{player_id}",
                Method::POST,
                Route::CloseSession,
            ),
            ("/api/gre-admin/sessions", Method::GET, Route::AdminSessions),
            (
                "/api/gre-admin/messages/{session_id}",
                Method::GET,
                Route::AdminMessages,
            ),
            ("/api/gre-admin/reply", Method::POST, Route::AdminReply),
            (
                "/api/gre-admin/session/{session_id}/status",
                Method::PUT,
                Route::AdminStatus,
            ),
        ])
    })
}

type ApiResult = Result<Response<Body>, ApiError>;

/// Answers a request under `/api/`, or `None` when no REST route has that path.
pub(super) async fn handle(req: Request<Incoming>, app: Arc<AppState>) -> Option<Response<Body>> {
    let (route, params) = match routes().lookup(req.uri().path(), req.method()) {
        Lookup::NoPath => return None,
        Lookup::WrongMethod(allow) => return Some(method_not_allowed(&allow)),
        Lookup::Found(route, params) => (route, params),
    };
    let result = dispatch(route, params, req, &app).await;
    Some(result.unwrap_or_else(ApiError::into_response))
}

async fn dispatch(
    route: Route,
    params: HashMap<String, String>,
    req: Request<Incoming>,
    app: &AppState,
) -> ApiResult {
    let identity = authenticate(&req, app).await?;
    // Writes cost database work: pace them per caller, as the WebSocket paces frames.
    if req.method() != Method::GET {
        take_rest_budget(app, &identity)?;
    }
    let query = query_params(&req);
    match route {
        Route::Send => send(req, app, &identity).await,
        Route::PlayerMessages => {
            player_messages(app, &identity, param_player_id(&params)?, &query).await
        }
        Route::EnableAll => {
            let staff = require_staff(&identity)?;
            drain_body(req, app).await?;
            app.deps
                .store
                .enable_all_players(staff)
                .await
                .map_err(store_error)?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"enabled": true, "scope": "all"}),
            ))
        }
        Route::EnablePlayer => {
            let staff = require_staff(&identity)?;
            let player_id = param_player_id(&params)?;
            drain_body(req, app).await?;
            app.deps
                .store
                .enable_player(player_id, staff)
                .await
                .map_err(store_error)?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"enabled": true, "playerId": player_id}),
            ))
        }
        Route::CloseSession => {
            require_staff(&identity)?;
            let player_id = param_player_id(&params)?;
            drain_body(req, app).await?;
            let session = app
                .deps
                .store
                .close_open_session(player_id)
                .await
                .map_err(store_error)?;
            Ok(raw_response(
                StatusCode::OK,
                &SessionBody {
                    session: &session.json,
                },
            ))
        }
        Route::AdminSessions => {
            require_staff(&identity)?;
            let status = query
                .get("status")
                .map(String::as_str)
                .filter(|s| !s.is_empty());
            if let Some(s) = status {
                if !SESSION_STATUSES.contains(&s) {
                    return Err(ApiError::bad_request(
                        "status must be waiting, active or closed",
                    ));
                }
            }
            let limit = limit_param(&query, DEFAULT_SESSIONS, MAX_SESSIONS)?;
            let sessions = app
                .deps
                .store
                .admin_sessions(status, limit)
                .await
                .map_err(store_error)?;
            Ok(raw_response(
                StatusCode::OK,
                &SessionsBody {
                    sessions: &sessions,
                },
            ))
        }
        Route::AdminMessages => {
            require_staff(&identity)?;
            let session_id = param_uuid(&params, "session_id")?;
            let Some(info) = app
                .deps
                .store
                .session(session_id)
                .await
                .map_err(store_error)?
            else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::NotFound,
                    "no such session",
                ));
            };
            page_response(app, Some((info.id, info.last_seq)), &query).await
        }
        Route::AdminReply => admin_reply(req, app, &identity).await,
        Route::AdminStatus => {
            require_staff(&identity)?;
            let session_id = param_uuid(&params, "session_id")?;
            admin_status(req, app, session_id).await
        }
    }
}

pub(super) async fn authenticate(
    req: &Request<Incoming>,
    app: &AppState,
) -> Result<Identity, ApiError> {
    let verified = app.deps.verifier.verify_headers(req.headers()).await;
    verified.map(|v| v.identity).map_err(|e| match e {
        // A valid credential that grants nothing here: 403, not "who are you".
        AuthError::NoRole | AuthError::PublishableKey => {
            ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, e.to_string())
        }
        e => ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            e.to_string(),
        ),
    })
}

pub(super) fn caller_key(identity: &Identity) -> String {
    match identity {
        Identity::Player { player_id } => format!("player:{player_id}"),
        Identity::Staff { staff_id, .. } => format!("staff:{staff_id}"),
    }
}

/// Takes one request from the caller's REST budget (`plumbing.rest_limits`): writes, uploads and
/// reports cost database work, so they are paced per caller as the WebSocket paces frames.
pub(super) fn take_rest_budget(app: &AppState, identity: &Identity) -> Result<(), ApiError> {
    if app.plumbing.rest_limits.take(&caller_key(identity)) {
        return Ok(());
    }
    app.metrics.rate_limited.inc();
    Err(ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
        "too many requests; slow down",
    ))
}

pub(super) fn require_staff(identity: &Identity) -> Result<&str, ApiError> {
    match identity {
        Identity::Staff { staff_id, .. } => Ok(staff_id),
        Identity::Player { .. } => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "GRE staff only",
        )),
    }
}

pub(super) fn query_params(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param_player_id(params: &HashMap<String, String>) -> Result<i64, ApiError> {
    params
        .get("player_id")
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::bad_request("playerId must be a positive integer"))
}

pub(super) fn param_uuid(params: &HashMap<String, String>, name: &str) -> Result<Uuid, ApiError> {
    params
        .get(name)
        .and_then(|p| p.parse::<Uuid>().ok())
        .ok_or_else(|| ApiError::bad_request("sessionId must be a UUID"))
}

pub(super) fn limit_param(
    query: &HashMap<String, String>,
    default: i64,
    max: i64,
) -> Result<i64, ApiError> {
    match query.get("limit").filter(|l| !l.is_empty()) {
        None => Ok(default),
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("limit must be 1 to {max}"))),
    }
}

/// Reads the body: at most `server.max_body_bytes`, JSON content type when not empty.
/// Returns `Value::Null` for an empty body.
async fn read_json(req: Request<Incoming>, app: &AppState) -> Result<Value, ApiError> {
    let max = app.settings.server.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ApiCode::PayloadTooLarge,
            format!("the body exceeds {max} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    let timeout = app.settings.server.body_read_timeout();
    let timed_out = || {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ApiCode::RequestTimeout,
            "the body did not arrive in time",
        )
    };
    let mut body = req.into_body();
    if declared.is_some_and(|n| n > max) {
        discard(&mut body, max, timeout).await;
        return Err(too_large());
    }
    let read = tokio::time::timeout(timeout, Limited::new(&mut body, max).collect()).await;
    let bytes = match read {
        Err(_) => return Err(timed_out()),
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            discard(&mut body, max, timeout).await;
            return Err(too_large());
        }
        Ok(Err(_)) => return Err(ApiError::bad_request("could not read the body")),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiCode::UnsupportedMediaType,
            "send the body as Content-Type: application/json",
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidJson,
            format!("the body is not JSON: {e}"),
        )
    })
}

/// Reads and drops the rest of a body that is too large, so that the 413 reaches the client: a
/// server that answers and closes with the body unread makes the client's kernel see a reset,
/// and the client never reads the answer. Bounded in bytes (16 times the limit, at least
/// 1 MiB) and time; past either the connection is closed anyway.
async fn discard(body: &mut Incoming, max: usize, timeout: std::time::Duration) {
    discard_up_to(body, max.saturating_mul(16).max(1 << 20), timeout).await;
}

/// [`discard`] with an explicit budget in bytes (uploads: `http/attachments.rs`).
pub(super) async fn discard_up_to(
    body: &mut Incoming,
    budget: usize,
    timeout: std::time::Duration,
) {
    let drain = async {
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return };
            if let Some(data) = frame.data_ref() {
                seen += data.len();
                if seen > budget {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(timeout, drain).await;
}

/// For endpoints without a body: still enforce the limit and refuse what is not JSON.
async fn drain_body(req: Request<Incoming>, app: &AppState) -> Result<(), ApiError> {
    read_json(req, app).await.map(|_| ())
}

/// Reads and parses a body of type `T` (`bodies.rs`).
pub(super) async fn read_body<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    app: &AppState,
) -> Result<T, ApiError> {
    bodies::parse(read_json(req, app).await?).map_err(|e| match e {
        BodyError::Missing => ApiError::unprocessable("a JSON object body is required"),
        BodyError::NotAnObject => ApiError::unprocessable("the body must be a JSON object"),
    })
}

/// `attachmentId` of a send or reply body.
fn attachment_field(attachment_id: Field<String>) -> Result<Option<Uuid>, ApiError> {
    match attachment_id {
        Field::Absent | Field::Null => Ok(None),
        Field::Given(s) => s
            .parse::<Uuid>()
            .map(Some)
            .map_err(|_| ApiError::unprocessable("attachmentId must be a UUID")),
        Field::WrongType => Err(ApiError::unprocessable("attachmentId must be a string")),
    }
}

/// `message` and `clientMessageId` of a send or reply body, validated as the WebSocket does.
/// With an attachment the message may be absent or blank (returned empty).
fn message_fields(
    message: Field<String>,
    client_message_id: Field<String>,
    has_attachment: bool,
) -> Result<(String, Option<String>), ApiError> {
    let message = match message {
        Field::Absent | Field::Null if has_attachment => String::new(),
        Field::Given(s) => protocol::validate_message_with_attachment(Some(s), has_attachment)?,
        Field::Null | Field::WrongType => {
            return Err(
                ProtocolError::new(ErrorCode::InvalidMessage, "message must be a string").into(),
            )
        }
        Field::Absent => {
            return Err(ProtocolError::new(ErrorCode::InvalidMessage, "message is required").into())
        }
    };
    let client_message_id = match client_message_id {
        Field::Absent | Field::Null => None,
        Field::Given(s) => Some(
            protocol::validate_client_message_id(s)
                .map_err(|e| ApiError::unprocessable(e.message))?,
        ),
        Field::WrongType => {
            return Err(ApiError::unprocessable("clientMessageId must be a string"))
        }
    };
    Ok((message, client_message_id))
}

async fn send(req: Request<Incoming>, app: &AppState, identity: &Identity) -> ApiResult {
    let Identity::Player { player_id } = identity else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "players only; staff reply with /api/gre-admin/reply",
        ));
    };
    let body: SendBody = read_body(req, app).await?;
    let attachment = attachment_field(body.attachment_id)?;
    let (text, cid) = message_fields(body.message, body.client_message_id, attachment.is_some())?;
    let sent = chat::player_send(
        &app.deps.store,
        *player_id,
        None,
        &text,
        cid.as_deref(),
        attachment,
    )
    .await?;
    Ok(sent_response(
        sent.duplicate,
        &sent.message.json,
        Some(sent.message.session_id),
    ))
}

async fn admin_reply(req: Request<Incoming>, app: &AppState, identity: &Identity) -> ApiResult {
    require_staff(identity)?;
    let body: ReplyBody = read_body(req, app).await?;
    let session_id = match body.session_id {
        Field::Given(s) => s
            .parse::<Uuid>()
            .map_err(|_| ApiError::unprocessable("sessionId must be a UUID"))?,
        _ => return Err(ApiError::unprocessable("sessionId is required")),
    };
    let attachment = attachment_field(body.attachment_id)?;
    let (text, cid) = message_fields(body.message, body.client_message_id, attachment.is_some())?;
    let (message, duplicate) = chat::staff_send(
        &app.deps.store,
        identity,
        session_id,
        &text,
        cid.as_deref(),
        attachment,
    )
    .await?;
    Ok(sent_response(duplicate, &message.json, None))
}

async fn admin_status(req: Request<Incoming>, app: &AppState, session_id: Uuid) -> ApiResult {
    let body: StatusBody = read_body(req, app).await?;
    // Absent: leave the status (an assignment alone must not undo a concurrent change).
    let status = match &body.status {
        Field::Absent => None,
        Field::Given(s) if SESSION_STATUSES.contains(&s.as_str()) => Some(s.as_str()),
        _ => {
            return Err(ApiError::unprocessable(
                "status must be waiting, active or closed",
            ))
        }
    };
    // Absent: leave the assignee; null: clear it; a string: assign.
    let assigned = match &body.assigned_gre_id {
        Field::Absent => None,
        Field::Null => Some(None),
        Field::Given(s) if !s.is_empty() && s.len() <= 200 && !s.contains('\0') => {
            Some(Some(s.as_str()))
        }
        _ => {
            return Err(ApiError::unprocessable(
                "assignedGreId must be a non-empty string or null",
            ))
        }
    };
    if status.is_none() && assigned.is_none() {
        return Err(ApiError::unprocessable(
            "give status, assignedGreId or both",
        ));
    }
    let session = app
        .deps
        .store
        .set_session_status(session_id, status, assigned)
        .await
        .map_err(store_error)?;
    Ok(raw_response(
        StatusCode::OK,
        &SessionBody {
            session: &session.json,
        },
    ))
}

async fn player_messages(
    app: &AppState,
    identity: &Identity,
    player_id: i64,
    query: &HashMap<String, String>,
) -> ApiResult {
    if !identity.may_access_player(player_id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "not your messages",
        ));
    }
    let session = match query.get("sessionId").filter(|s| !s.is_empty()) {
        Some(s) => {
            let id = s
                .parse::<Uuid>()
                .map_err(|_| ApiError::bad_request("sessionId must be a UUID"))?;
            match app.deps.store.session(id).await.map_err(store_error)? {
                Some(info) if info.player_id == player_id => Some(info),
                _ => {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        ErrorCode::NotFound,
                        "no such session for this player",
                    ))
                }
            }
        }
        None => app
            .deps
            .store
            .current_session(player_id)
            .await
            .map_err(store_error)?,
    };
    page_response(app, session.map(|s| (s.id, s.last_seq)), query).await
}

/// `{sessionId, messages, nextCursor, hasMore}` for a session (or an empty page for none).
/// `session` is the session's id and last message number: a `since` beyond it is clamped, as
/// on the WebSocket, so a bad cursor cannot make the client skip future messages.
async fn page_response(
    app: &AppState,
    session: Option<(Uuid, i64)>,
    query: &HashMap<String, String>,
) -> ApiResult {
    let since = match query.get("since").filter(|s| !s.is_empty()) {
        Some(s) => {
            Some(Cursor::parse_str(s).map_err(|_| ApiError::bad_request("since is not a cursor"))?)
        }
        None => None,
    };
    let limit = limit_param(query, DEFAULT_PAGE, MAX_PAGE)?;
    let Some((session_id, last_seq)) = session else {
        return Ok(raw_response(
            StatusCode::OK,
            &PageBody {
                session_id: None,
                messages: &[],
                next_cursor: None,
                has_more: false,
            },
        ));
    };
    let since = since.map(|c| c.min(Cursor(last_seq)));
    let page = app
        .deps
        .store
        .page(session_id, since.unwrap_or(Cursor(0)), limit)
        .await
        .map_err(store_error)?;
    let next = page
        .messages
        .last()
        .map(|m| Cursor(m.seq))
        .or(since)
        .map(Cursor::to_wire);
    let messages: Vec<&RawValue> = page.messages.iter().map(|m| m.json.as_ref()).collect();
    Ok(raw_response(
        StatusCode::OK,
        &PageBody {
            session_id: Some(session_id),
            messages: &messages,
            next_cursor: next,
            has_more: page.has_more,
        },
    ))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageBody<'a> {
    session_id: Option<Uuid>,
    messages: &'a [&'a RawValue],
    next_cursor: Option<String>,
    has_more: bool,
}

/// 201 with the stored message, or 200 when it was a retry of an earlier send.
fn sent_response(duplicate: bool, message: &RawValue, session_id: Option<Uuid>) -> Response<Body> {
    let status = if duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    raw_response(
        status,
        &SentBody {
            message,
            session_id,
        },
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SentBody<'a> {
    message: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<Uuid>,
}

#[derive(Serialize)]
struct SessionBody<'a> {
    session: &'a RawValue,
}

#[derive(Serialize)]
struct SessionsBody<'a> {
    sessions: &'a [Box<RawValue>],
}

/// Serializes a body that embeds database JSON as is.
pub(super) fn raw_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut res = Response::new(full(bytes));
            *res.status_mut() = status;
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "could not serialize a response");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error",
            )
        }
    }
}
