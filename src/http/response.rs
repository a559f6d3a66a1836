//! Response building shared by every HTTP handler: the body type and JSON answers (error
//! bodies: `error.rs`). Must not touch: application state (it only formats).

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// Every answer's body: most are whole (`full`), an attachment download is streamed from the
/// object store (an error mid-way ends the connection, as a failed read must).
pub(crate) type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A body held whole in memory.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut res = Response::new(full(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}
