//! `GET /metrics`: renders the registry of `state::Metrics` in the OpenMetrics text format.
//! Must not touch: the counters themselves (the components increment them).

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::error::error_response;
use super::response::{full, Body};
use crate::protocol::ErrorCode;
use crate::state::AppState;

pub(super) fn render(app: &AppState) -> Response<Body> {
    let text = match app.metrics.encode(app) {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(error = %e, "could not encode metrics");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "metrics unavailable",
            );
        }
    };
    let mut res = Response::new(full(text));
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    res
}
