//! The HTTP side's errors: the codes only REST answers with ([`ApiCode`], a superset of the
//! WebSocket protocol's [`ErrorCode`]) and an error answer with its status ([`ApiError`]).
//!
//! Must not touch: the WebSocket protocol's enum (REST-only codes stay here).

use hyper::{Response, StatusCode};

use super::response::{json_response, Body};
use crate::chat::ChatError;
use crate::protocol::{ErrorCode, ProtocolError};

/// A code of a REST error body: one the WebSocket protocol shares, or one only REST uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiCode {
    /// A code the WebSocket protocol uses too.
    Protocol(ErrorCode),
    InvalidRequest,
    UnsupportedMediaType,
    PayloadTooLarge,
    MethodNotAllowed,
    Conflict,
    RequestTimeout,
}

impl ApiCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ApiCode::Protocol(code) => code.as_str(),
            ApiCode::InvalidRequest => "invalid_request",
            ApiCode::UnsupportedMediaType => "unsupported_media_type",
            ApiCode::PayloadTooLarge => "payload_too_large",
            ApiCode::MethodNotAllowed => "method_not_allowed",
            ApiCode::Conflict => "conflict",
            ApiCode::RequestTimeout => "request_timeout",
        }
    }

    /// The status a REST answer with this code carries.
    fn status(self) -> StatusCode {
        match self {
            ApiCode::Protocol(code) => match code {
                ErrorCode::InvalidJson | ErrorCode::InvalidFrame | ErrorCode::UnknownType => {
                    StatusCode::BAD_REQUEST
                }
                ErrorCode::InvalidMessage => StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::Unauthenticated | ErrorCode::TokenExpired => StatusCode::UNAUTHORIZED,
                ErrorCode::Forbidden | ErrorCode::ChatDisabled => StatusCode::FORBIDDEN,
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                ErrorCode::SessionClosed => StatusCode::CONFLICT,
                ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiCode::InvalidRequest => StatusCode::BAD_REQUEST,
            ApiCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiCode::Conflict => StatusCode::CONFLICT,
            ApiCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

impl From<ErrorCode> for ApiCode {
    fn from(code: ErrorCode) -> Self {
        ApiCode::Protocol(code)
    }
}

/// An error answer: status, contract code, sentence.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: ApiCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: impl Into<ApiCode>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
    /// An error whose status follows from its code.
    pub(crate) fn of(code: impl Into<ApiCode>, message: impl Into<String>) -> Self {
        let code = code.into();
        ApiError::new(code.status(), code, message)
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ApiCode::InvalidRequest, message)
    }
    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ApiCode::InvalidRequest,
            message,
        )
    }
    pub(crate) fn into_response(self) -> Response<Body> {
        error_response(self.status, self.code, &self.message)
    }
}

impl From<ProtocolError> for ApiError {
    fn from(e: ProtocolError) -> Self {
        ApiError::of(e.code, e.message)
    }
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        match e.code() {
            Some(code) => ApiError::of(code, e.to_string()),
            None => ApiError::of(ApiCode::Conflict, e.to_string()),
        }
    }
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

/// 405 with the `Allow` header: `allow` is the method list of the path ("GET", "PUT, DELETE").
pub(crate) fn method_not_allowed(allow: &str) -> Response<Body> {
    let mut res = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        ApiCode::MethodNotAllowed,
        &format!("use {allow}"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(allow) {
        res.headers_mut().insert(hyper::header::ALLOW, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_only_codes_and_shared_codes_have_their_status() {
        assert_eq!(
            ApiCode::PayloadTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(ApiCode::Conflict.as_str(), "conflict");
        assert_eq!(
            ApiCode::from(ErrorCode::SessionClosed).status(),
            StatusCode::CONFLICT
        );
        assert_eq!(
            ApiCode::from(ErrorCode::ChatDisabled).as_str(),
            "chat_disabled"
        );
        let e = ApiError::from(ChatError::Conflict);
        assert_eq!(
            (e.status, e.code),
            (StatusCode::CONFLICT, ApiCode::Conflict)
        );
    }
}
