//! The browser pages served by the relay: `/console` (GRE staff) and `/chat` (player demo), plain
//! HTML, CSS and JavaScript compiled into the binary from `static/` (no build step, nothing fetched
//! from elsewhere, so they work offline). The scripts are ES modules: each page's script imports
//! the shared ones of `static/lib/`, and every module must be listed here. Every response carries
//! a strict Content-Security-Policy: scripts and styles come only from these files, never inline,
//! and the pages insert text from messages as text nodes only.
//!
//! Must not touch: the state, the database.

use bytes::Bytes;
use hyper::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use hyper::{Response, StatusCode};

use super::error::error_response;
use super::response::{full, Body};

/// The policy of every page and asset.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
     script-src 'self'; style-src 'self'; img-src 'self' data:; base-uri 'none'; \
     frame-ancestors 'none'";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml; charset=utf-8";

const ASSETS: &[Asset] = &[
    Asset {
        path: "/console",
        content_type: HTML,
        body: include_str!("../../static/console.html"),
    },
    Asset {
        path: "/chat",
        content_type: HTML,
        body: include_str!("../../static/chat.html"),
    },
    Asset {
        path: "/static/app.css",
        content_type: CSS,
        body: include_str!("../../static/app.css"),
    },
    Asset {
        path: "/static/lib/attachments.js",
        content_type: JS,
        body: include_str!("../../static/lib/attachments.js"),
    },
    Asset {
        path: "/static/lib/api.js",
        content_type: JS,
        body: include_str!("../../static/lib/api.js"),
    },
    Asset {
        path: "/static/lib/composer.js",
        content_type: JS,
        body: include_str!("../../static/lib/composer.js"),
    },
    Asset {
        path: "/static/desk.css",
        content_type: CSS,
        body: include_str!("../../static/desk.css"),
    },
    Asset {
        path: "/static/lib/desk.js",
        content_type: JS,
        body: include_str!("../../static/lib/desk.js"),
    },
    Asset {
        path: "/static/lib/dom.js",
        content_type: JS,
        body: include_str!("../../static/lib/dom.js"),
    },
    Asset {
        path: "/static/lib/ids.js",
        content_type: JS,
        body: include_str!("../../static/lib/ids.js"),
    },
    Asset {
        path: "/static/lib/relay.js",
        content_type: JS,
        body: include_str!("../../static/lib/relay.js"),
    },
    Asset {
        path: "/static/lib/renewal.js",
        content_type: JS,
        body: include_str!("../../static/lib/renewal.js"),
    },
    Asset {
        path: "/static/lib/signin.js",
        content_type: JS,
        body: include_str!("../../static/lib/signin.js"),
    },
    Asset {
        path: "/static/lib/thread.js",
        content_type: JS,
        body: include_str!("../../static/lib/thread.js"),
    },
    Asset {
        path: "/static/lib/time.js",
        content_type: JS,
        body: include_str!("../../static/lib/time.js"),
    },
    Asset {
        path: "/static/lib/token.js",
        content_type: JS,
        body: include_str!("../../static/lib/token.js"),
    },
    Asset {
        path: "/static/lib/typing.js",
        content_type: JS,
        body: include_str!("../../static/lib/typing.js"),
    },
    Asset {
        path: "/static/console.js",
        content_type: JS,
        body: include_str!("../../static/console.js"),
    },
    Asset {
        path: "/static/reports.js",
        content_type: JS,
        body: include_str!("../../static/reports.js"),
    },
    Asset {
        path: "/static/reports.css",
        content_type: CSS,
        body: include_str!("../../static/reports.css"),
    },
    Asset {
        path: "/static/chat.js",
        content_type: JS,
        body: include_str!("../../static/chat.js"),
    },
    Asset {
        path: "/static/icon.svg",
        content_type: SVG,
        body: include_str!("../../static/icon.svg"),
    },
];

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// Is `path` one of the pages or their assets (answered by [`serve`] for GET)?
pub(crate) fn is_page(path: &str) -> bool {
    find(path).is_some()
}

/// The page or asset at `path`, with its headers; 404 for anything else.
pub(crate) fn serve(path: &str) -> Response<Body> {
    let Some(asset) = find(path) else {
        return error_response(
            StatusCode::NOT_FOUND,
            crate::protocol::ErrorCode::NotFound,
            "no such page",
        );
    };
    let mut res = Response::new(full(Bytes::from_static(asset.body.as_bytes())));
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_its_headers() {
        for asset in ASSETS {
            assert!(is_page(asset.path));
            let res = serve(asset.path);
            assert_eq!(res.status(), StatusCode::OK, "{}", asset.path);
            let h = res.headers();
            assert_eq!(h[CONTENT_TYPE], asset.content_type);
            assert!(asset.content_type.contains("charset=utf-8"));
            assert_eq!(h[CACHE_CONTROL], "no-store");
            assert_eq!(h[CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY_VALUE);
            assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
        assert!(!is_page("/"));
        assert!(!is_page("/static/"));
        assert!(!is_page("/static/../src/main.rs"));
        assert!(!is_page("/console/"));
        assert_eq!(serve("/nope").status(), StatusCode::NOT_FOUND);
    }

    /// The pages are ES modules: every `import ... from './x.js'` must name a served asset (a
    /// missing one leaves the page blank), and every file of static/lib/ must be served.
    #[test]
    fn every_module_import_is_served() {
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            let dir = &asset.path[..asset.path.rfind('/').expect("a directory") + 1];
            for line in asset.body.lines().filter(|l| l.starts_with("import ")) {
                let spec = line
                    .split(" from '")
                    .nth(1)
                    .and_then(|rest| rest.split('\'').next())
                    .expect("import ... from '...'");
                let target = format!("{dir}{}", spec.trim_start_matches("./"));
                assert!(
                    spec.starts_with("./") && is_page(&target),
                    "{}: {spec}",
                    asset.path
                );
            }
        }
        let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static/lib");
        for entry in std::fs::read_dir(lib).expect("static/lib") {
            let name = entry.expect("entry").file_name();
            let path = format!("/static/lib/{}", name.to_string_lossy());
            assert!(is_page(&path), "{path} is not in ASSETS");
        }
    }

    /// The CSP forbids inline script and style; make the HTML obey it rather than find out in a
    /// browser console.
    #[test]
    fn html_has_no_inline_script_or_style() {
        for asset in ASSETS.iter().filter(|a| a.content_type == HTML) {
            let html = asset.body.to_ascii_lowercase();
            for (i, _) in html.match_indices("<script") {
                let tag = &html[i..i + html[i..].find('>').expect("closed tag")];
                assert!(tag.contains(" src="), "{}: inline script {tag}", asset.path);
            }
            assert!(!html.contains("<style"), "{}: inline <style>", asset.path);
            assert!(!html.contains(" style="), "{}: style attribute", asset.path);
            for attr in [
                " onclick=",
                " onload=",
                " onerror=",
                " oninput=",
                " onsubmit=",
            ] {
                assert!(
                    !html.contains(attr),
                    "{}: inline handler {attr}",
                    asset.path
                );
            }
            assert!(!html.contains("http://") && !html.contains("https://"));
        }
    }

    /// Text from the server reaches the page through text nodes only.
    #[test]
    fn scripts_never_parse_html() {
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "createContextualFragment",
            ] {
                assert!(!asset.body.contains(sink), "{} uses {sink}", asset.path);
            }
        }
    }

    #[test]
    fn the_pages_carry_the_test_hooks() {
        for path in ["/console", "/chat"] {
            let body = find(path).expect("page").body;
            for hook in [
                "data-testid=\"reply-input\"",
                "data-testid=\"reply-send\"",
                "data-testid=\"connection-status\"",
                "data-testid=\"token-input\"",
            ] {
                assert!(body.contains(hook), "{path} lacks {hook}");
            }
        }
        assert!(find("/chat")
            .expect("chat")
            .body
            .contains("data-testid=\"gre-online\""));
    }
}
