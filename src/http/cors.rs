//! Allowed browser origins (CONTRACT section 3, `server.allowed_origins`): the CORS headers of
//! the REST API and the same list checked on WebSocket upgrades.
//!
//! Why not tower-http's CorsLayer: the relay serves hyper `service_fn`s without a tower stack,
//! the contract pins 204 for a preflight (the layer answers 200), and the upgrade check must read
//! the very same list. The policy is a list lookup; the rest is four headers.
//!
//! Credentials are bearer tokens, never cookies, so no `Access-Control-Allow-Credentials`: a page
//! on another origin can only use a token it already holds.
//!
//! Must not touch: the state, the database (the list itself is a setting: `config.rs`).

use hyper::header::{
    HeaderMap, HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ORIGIN,
    VARY,
};

/// Headers a browser may send on a cross-origin REST call: the contract's three, plus the one
/// supabase-js adds to every request it makes.
const ALLOW_HEADERS: &str = "authorization, content-type, apikey, x-client-info";
const ALLOW_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS";
/// What a page may read of a response besides the simple headers.
const EXPOSE_HEADERS: &str = "retry-after";
/// Seconds a browser may cache a preflight answer.
const MAX_AGE: &str = "600";

use crate::config::AllowedOrigins;

/// The header side of the list (the list itself is a setting: `config.rs`).
impl AllowedOrigins {
    /// Whether a request with these headers may go on. A request without `Origin` does not
    /// come from a browser page (curl, a backend, a native app): CORS is not about it.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        match headers.get(ORIGIN) {
            None => true,
            Some(origin) => self.allows_origin(origin),
        }
    }

    fn allows_origin(&self, origin: &HeaderValue) -> bool {
        origin.to_str().is_ok_and(|o| self.allows_str(o))
    }

    /// Adds the CORS headers a response to `request_headers` needs: the allowed origin echoed
    /// (so caches must key on it: `Vary: Origin`), and for a preflight what may follow. An
    /// origin not on the list gets no allow header, and the browser keeps the response from
    /// the page.
    pub(crate) fn apply(
        &self,
        request_headers: &HeaderMap,
        preflight: bool,
        response: &mut HeaderMap,
    ) {
        response.append(VARY, HeaderValue::from_static("Origin"));
        let Some(origin) = request_headers.get(ORIGIN) else {
            return;
        };
        if !self.allows_origin(origin) {
            return;
        }
        response.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if preflight {
            response.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            response.insert(
                ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            response.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
        } else {
            response.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(ORIGIN, HeaderValue::from_static(o));
        }
        h
    }

    #[test]
    fn parses_star_lists_and_refuses_what_is_not_an_origin() {
        assert_eq!(AllowedOrigins::parse("*"), Ok(AllowedOrigins::Any));
        assert_eq!(AllowedOrigins::parse(""), Ok(AllowedOrigins::Any));
        assert_eq!(
            AllowedOrigins::parse(" https://Staff.Example.club/ , http://127.0.0.1:3000"),
            Ok(AllowedOrigins::List(vec![
                "https://staff.example.club".into(),
                "http://127.0.0.1:3000".into()
            ]))
        );
        assert!(AllowedOrigins::parse("staff.example.club").is_err());
        assert!(AllowedOrigins::parse("https://example.club/path").is_err());
        assert!(AllowedOrigins::parse("https://").is_err());
    }

    #[test]
    fn a_listed_origin_is_echoed_and_others_get_no_allow_header() {
        let origins = AllowedOrigins::parse("https://staff.example.club").expect("parse");
        let mut res = HeaderMap::new();
        origins.apply(&headers(Some("https://staff.example.club")), true, &mut res);
        assert_eq!(
            res.get(ACCESS_CONTROL_ALLOW_ORIGIN).map(|v| v.as_bytes()),
            Some(&b"https://staff.example.club"[..])
        );
        assert!(res.get(ACCESS_CONTROL_ALLOW_HEADERS).is_some());
        assert_eq!(res.get(VARY).map(|v| v.as_bytes()), Some(&b"Origin"[..]));

        let mut res = HeaderMap::new();
        origins.apply(&headers(Some("https://evil.example")), true, &mut res);
        assert!(res.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert!(res.get(ACCESS_CONTROL_ALLOW_METHODS).is_none());
        assert!(!origins.allows(&headers(Some("https://evil.example"))));
        assert!(!origins.allows(&headers(Some("null"))));
        assert!(origins.allows(&headers(None)));
    }

    #[test]
    fn any_allows_every_origin() {
        let origins = AllowedOrigins::Any;
        assert!(origins.allows(&headers(Some("https://whatever.example"))));
        let mut res = HeaderMap::new();
        origins.apply(&headers(Some("https://whatever.example")), false, &mut res);
        assert!(res.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_some());
        assert!(res.get(ACCESS_CONTROL_ALLOW_METHODS).is_none());
    }
}
