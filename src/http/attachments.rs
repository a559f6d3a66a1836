//! The attachment endpoints (docs/protocol.md "Attachments"):
//! - `POST /api/gre-chat/attachments?name=...` (players) and `POST /api/gre-admin/attachments`
//!   (staff): the raw file as the body. The body is streamed to a spool file, never held whole
//!   in memory while it arrives: the type is judged from its first bytes before the rest is read
//!   (415), the size limit while it streams (413), the time limit on the whole (408). 201 with
//!   the upload (its id is what a message names as `attachmentId`).
//! - `GET /api/gre-chat/attachments/:messageId`: the file of a message, for a caller who may read
//!   the session (a player only its own: 403) or with a signed link's `expires` and `sig`.
//! - `GET /api/gre-chat/attachments/:messageId/link`: such a link (`{url, expiresAt}`).
//!
//! Must not touch: the rules (who may read what, what a file must be: `attachments.rs`).

use futures_util::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::error::{error_response, method_not_allowed, ApiCode, ApiError};
use super::response::Body;
use super::rest::{authenticate, discard_up_to, query_params, raw_response, take_rest_budget};
use super::routes::{Lookup, Routes};
use crate::attachments::{AttachmentError, Attachments, Reader, Uploaded};
use crate::auth::Identity;
use crate::protocol::ErrorCode;
use crate::state::AppState;
use crate::storage::inspect::SNIFF_BYTES;

#[derive(Debug, Clone, Copy)]
enum Route {
    /// Both upload paths: the player's and the staff console's.
    Upload,
    Download,
    Link,
}

fn routes() -> &'static Routes<Route> {
    static ROUTES: OnceLock<Routes<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        Routes::new(&[
            ("/api/gre-chat/attachments", Method::POST, Route::Upload),
            ("/api/gre-admin/attachments", Method::POST, Route::Upload),
            (
                "/api/gre-chat/attachments/{message_id}",
                Method::GET,
                Route::Download,
            ),
            (
                "/api/gre-chat/attachments/{message_id}/link",
                Method::GET,
                Route::Link,
            ),
        ])
    })
}

/// Whether `path` is one of these endpoints (the one routing line in `http/mod.rs`).
pub(super) fn is_attachment_path(path: &str) -> bool {
    routes().has_path(path)
}

/// Answers a request to one of the attachment endpoints.
pub(super) async fn handle(req: Request<Incoming>, app: &AppState) -> Response<Body> {
    let (route, message_id) = match routes().lookup(req.uri().path(), req.method()) {
        Lookup::NoPath => {
            return error_response(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such endpoint",
            )
        }
        Lookup::WrongMethod(allow) => return method_not_allowed(&allow),
        Lookup::Found(route, mut params) => (route, params.remove("message_id")),
    };
    let message_id = match message_id.map(|m| m.parse::<Uuid>()) {
        Some(Err(_)) => {
            return ApiError::bad_request("messageId must be a UUID").into_response();
        }
        Some(Ok(id)) => Some(id),
        None => None,
    };
    let result = match (route, message_id) {
        (Route::Upload, _) => upload(req, app).await,
        (Route::Download, Some(id)) => download(req, app, id).await,
        (Route::Link, Some(id)) => link(req, app, id).await,
        _ => Err(ApiError::bad_request("messageId is required")),
    };
    result.unwrap_or_else(ApiError::into_response)
}

impl From<AttachmentError> for ApiError {
    fn from(e: AttachmentError) -> Self {
        let message = e.to_string();
        match e {
            AttachmentError::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ApiCode::PayloadTooLarge,
                message,
            ),
            AttachmentError::UnsupportedType => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ApiCode::UnsupportedMediaType,
                message,
            ),
            AttachmentError::Image(_) => ApiError::unprocessable(message),
            AttachmentError::NotFound => ApiError::of(ErrorCode::NotFound, message),
            AttachmentError::Forbidden | AttachmentError::Link(_) => {
                ApiError::of(ErrorCode::Forbidden, message)
            }
            AttachmentError::Storage => ApiError::of(ErrorCode::Unavailable, message),
            AttachmentError::Chat(e) => e.into(),
        }
    }
}

/// A spooled upload's file, removed when dropped (answered, refused, or the client gone).
struct Spool {
    path: PathBuf,
}

impl Drop for Spool {
    fn drop(&mut self) {
        // Best effort: a file that cannot be removed is the temp directory's to clean.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[derive(Serialize)]
struct UploadBody<'a> {
    attachment: &'a Uploaded,
}

async fn upload(req: Request<Incoming>, app: &AppState) -> Result<Response<Body>, ApiError> {
    let identity = authenticate(&req, app).await?;
    // An upload costs disk and object store work: paced like every REST write.
    take_rest_budget(app, &identity)?;
    let attachments = &app.deps.attachments;
    let limits = attachments.limits();
    let max = limits.max_upload_bytes;
    let name = query_params(&req).remove("name").unwrap_or_default();
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = req.into_body();
    // What is read past a refusal so the client sees the answer rather than a reset: the rest
    // of an upload up to twice the limit; beyond, the connection is closed.
    let budget = usize::try_from(max.saturating_mul(2))
        .unwrap_or(usize::MAX)
        .max(1 << 20);
    let timeout = limits.upload_timeout;
    if declared.is_some_and(|n| n > max) {
        discard_up_to(&mut body, budget, timeout).await;
        return Err(AttachmentError::TooLarge { max }.into());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let received =
        tokio::time::timeout_at(deadline, receive(&mut body, &limits.spool_dir, max)).await;
    let (kind, spool) = match received {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                ApiCode::RequestTimeout,
                "the upload did not arrive in time",
            ))
        }
        Ok(Ok(done)) => done,
        Ok(Err(Received::Refused(e))) => {
            discard_up_to(&mut body, budget, timeout).await;
            return Err(e.into());
        }
        Ok(Err(Received::Failed(e))) => return Err(e),
    };
    let uploaded = attachments
        .accept(&app.deps.store, &identity, &name, kind, &spool.path)
        .await?;
    drop(spool);
    Ok(raw_response(
        StatusCode::CREATED,
        &UploadBody {
            attachment: &uploaded,
        },
    ))
}

/// Why receiving stopped early.
enum Received {
    /// A verdict on the file (type, size): the rest of the body is discarded, then answered.
    Refused(AttachmentError),
    /// The body or the spool file failed: answered at once.
    Failed(ApiError),
}

/// Streams the body into a spool file: the first bytes are sniffed before anything is written
/// (a refused type costs no disk), and the count is checked on every frame (never more than
/// `max` bytes written).
async fn receive(
    body: &mut Incoming,
    spool_dir: &Path,
    max: u64,
) -> Result<(crate::storage::inspect::Kind, Spool), Received> {
    let unreadable = || Received::Failed(ApiError::bad_request("could not read the body"));
    let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
    let mut seen: u64 = 0;
    let mut file: Option<(tokio::fs::File, Spool)> = None;
    let mut kind = None;
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(_)) => return Err(unreadable()),
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen += data.len() as u64;
        if seen > max {
            return Err(Received::Refused(AttachmentError::TooLarge { max }));
        }
        if kind.is_none() {
            head.extend_from_slice(&data);
            if head.len() < SNIFF_BYTES {
                continue;
            }
            kind = Some(Attachments::sniff(&head).map_err(Received::Refused)?);
            let opened = open_spool(spool_dir).await.map_err(Received::Failed)?;
            let (f, _) = file.insert(opened);
            write(f, &head).await?;
            head = Vec::new();
        } else if let Some((f, _)) = file.as_mut() {
            write(f, &data).await?;
        }
    }
    // A file shorter than the sniffing window: judged whole.
    let kind = match kind {
        Some(kind) => kind,
        None => {
            let kind = Attachments::sniff(&head).map_err(Received::Refused)?;
            let opened = open_spool(spool_dir).await.map_err(Received::Failed)?;
            let (f, _) = file.insert(opened);
            write(f, &head).await?;
            kind
        }
    };
    let Some((mut f, spool)) = file else {
        return Err(unreadable());
    };
    f.flush()
        .await
        .map_err(|e| Received::Failed(spool_failed(e)))?;
    Ok((kind, spool))
}

async fn write(file: &mut tokio::fs::File, bytes: &[u8]) -> Result<(), Received> {
    file.write_all(bytes)
        .await
        .map_err(|e| Received::Failed(spool_failed(e)))
}

fn spool_failed(e: std::io::Error) -> ApiError {
    tracing::warn!(error = %e, "could not spool an upload");
    ApiError::of(
        ErrorCode::Unavailable,
        "could not take the upload, try again",
    )
}

async fn open_spool(dir: &Path) -> Result<(tokio::fs::File, Spool), ApiError> {
    let path = dir.join(format!("gre-relay-upload-{}", Uuid::new_v4()));
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .await
        .map_err(spool_failed)?;
    Ok((file, Spool { path }))
}

async fn download(
    req: Request<Incoming>,
    app: &AppState,
    message_id: Uuid,
) -> Result<Response<Body>, ApiError> {
    let query = query_params(&req);
    let signed = match (query.get("expires"), query.get("sig")) {
        (Some(expires), Some(sig)) => Some((
            expires
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request("expires must be a number"))?,
            sig.as_str(),
        )),
        _ => None,
    };
    let identity;
    let reader = match signed {
        Some((expires, sig)) => Reader::Link { expires, sig },
        None => {
            identity = authenticate(&req, app).await?;
            Reader::Caller(&identity)
        }
    };
    let file = app
        .deps
        .attachments
        .open(&app.deps.store, reader, message_id)
        .await?;
    let len = file.size;
    let chunks = file
        .body
        .map_ok(Frame::data)
        .map_err(|e| std::io::Error::other(e.to_string()));
    let mut res = Response::new(StreamBody::new(chunks).boxed_unsync());
    let h = res.headers_mut();
    // The type the relay sniffed at upload (or the staff portal's row, held to the allow-list
    // by the database); never let a browser guess another.
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(&file.mime)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    // Opened on its own, the file runs nothing and loads nothing.
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; img-src 'self'; sandbox"),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&file.name, file.is_image)) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// `inline` for images (shown in the page), `attachment` for everything else (saved, never
/// rendered in the relay's origin); the name both as plain ASCII and RFC 5987-encoded.
fn content_disposition(name: &str, is_image: bool) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let disposition = if is_image { "inline" } else { "attachment" };
    format!("{disposition}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LinkBody {
    url: String,
    /// Unix seconds.
    expires_at: u64,
}

async fn link(
    req: Request<Incoming>,
    app: &AppState,
    message_id: Uuid,
) -> Result<Response<Body>, ApiError> {
    let identity: Identity = authenticate(&req, app).await?;
    let (url, expires_at) = app
        .deps
        .attachments
        .link(&app.deps.store, &identity, message_id)
        .await?;
    Ok(raw_response(StatusCode::OK, &LinkBody { url, expires_at }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_inline_and_other_files_downloads_with_both_name_forms() {
        assert_eq!(
            content_disposition("receipt.jpg", true),
            "inline; filename=\"receipt.jpg\"; filename*=UTF-8''receipt.jpg"
        );
        assert_eq!(
            content_disposition("Zeitplan \"März\".pdf", false),
            "attachment; filename=\"Zeitplan _M_rz_.pdf\"; filename*=UTF-8''Zeitplan%20%22M%C3%A4rz%22.pdf"
        );
    }

    #[test]
    fn the_routes_are_known() {
        assert!(is_attachment_path("/api/gre-chat/attachments"));
        assert!(is_attachment_path("/api/gre-admin/attachments"));
        assert!(is_attachment_path(
            "/api/gre-chat/attachments/0b6f1d8e-57a3-4c1e-9d7a-2f0b0c1d2e3f"
        ));
        assert!(is_attachment_path("/api/gre-chat/attachments/x/link"));
        assert!(!is_attachment_path("/api/gre-chat/send"));
    }
}
