//! The browser pages served by the relay: `/console` (GRE staff) and `/chat` (player demo), plain
//! HTML, CSS and JavaScript compiled into the binary from `static/`. (Placeholder until the pages
//! land.)

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use crate::http::Body;

pub fn is_page(path: &str) -> bool {
    matches!(path, "/console" | "/chat")
}

pub fn serve(_path: &str) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from_static(b"coming soon")));
    *res.status_mut() = StatusCode::NOT_FOUND;
    res
}
