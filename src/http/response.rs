//! Response building shared by every HTTP handler: the body type, JSON answers and the
//! contract's error body. Must not touch: application state (it only formats).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::error::ApiCode;

pub(crate) type Body = Full<Bytes>;

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// The contract's error body: `{"error": {"code": "...", "message": "..."}}`.
pub(crate) fn error_response(
    status: StatusCode,
    code: impl Into<ApiCode>,
    message: &str,
) -> Response<Body> {
    let code = code.into();
    json_response(
        status,
        &serde_json::json!({"error": {"code": code.as_str(), "message": message}}),
    )
}
