//! A stand-in for Supabase Auth's key endpoint: serves a JWKS at
//! `/auth/v1/.well-known/jwks.json` over real HTTP on 127.0.0.1, counts the requests, and lets a
//! test change the keys or take the endpoint down (503) mid-test. Keys come from the fixtures in
//! tests/fixtures/ (private keys; the served JWKs are their public halves).

use bytes::Bytes;
use gre_relay::auth::Minter;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub const JWKS_PATH: &str = "/auth/v1/.well-known/jwks.json";

#[derive(Default)]
struct State {
    keys: Mutex<Vec<Value>>,
    /// Answer 503 instead of the key set.
    down: AtomicBool,
    /// Requests for the key set, answered or not.
    hits: AtomicUsize,
    cache_control: Mutex<Option<String>>,
}

pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    pub async fn start(keys: Vec<Value>) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind jwks");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State::default());
        *state.keys.lock().expect("lock") = keys;
        let served = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let state = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(answer(&state, req.uri().path()))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        JwksServer { addr, state, task }
    }

    /// What SUPABASE_URL would be.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What `iss` the relay expects.
    pub fn issuer(&self) -> String {
        format!("{}/auth/v1", self.base_url())
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.state.keys.lock().expect("lock") = keys;
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        *self.state.cache_control.lock().expect("lock") = value.map(str::to_owned);
    }

    /// Requests for the key set so far.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
}

fn answer(state: &State, path: &str) -> Response<Full<Bytes>> {
    if path != JWKS_PATH {
        let mut res = Response::new(Full::new(Bytes::from_static(b"not found")));
        *res.status_mut() = StatusCode::NOT_FOUND;
        return res;
    }
    state.hits.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        let mut res = Response::new(Full::new(Bytes::from_static(b"upstream down")));
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return res;
    }
    let body = json!({ "keys": *state.keys.lock().expect("lock") });
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(cc) = state.cache_control.lock().expect("lock").as_deref() {
        if let Ok(v) = hyper::header::HeaderValue::from_str(cc) {
            res.headers_mut().insert(hyper::header::CACHE_CONTROL, v);
        }
    }
    res
}

/// A fixture key file of tests/fixtures/.
pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A signer for fixture `file` under `kid`, writing `issuer` into its tokens.
pub fn signer(file: &str, kid: &str, issuer: &str) -> Minter {
    Minter::from_key_file(&fixture(file), Some(kid), None)
        .expect("fixture key")
        .with_issuer(issuer)
}

/// The public JWK a key endpoint would publish for `signer`.
pub fn public(signer: &Minter) -> Value {
    signer.public_jwk().expect("an asymmetric key")
}
