//! The project's signing keys: `$SUPABASE_URL/auth/v1/.well-known/jwks.json`, fetched with one
//! kept HTTP client, parsed with `jsonwebtoken`'s JWK support and cached by `kid`.
//!
//! When keys are fetched:
//! - once at start (bounded by the timeout; a failure is not fatal, health shows it);
//! - periodically, every `auth.jwks_refresh_seconds` (at most 10 minutes), sooner when the
//!   response's `Cache-Control: max-age` says so (never more often than the floor below); after a
//!   failure, again within 30 seconds;
//! - when a token names a `kid` not in the cache, so a rotation is picked up within seconds;
//!   but never twice within `auth.jwks_min_refetch_seconds`, and callers that arrive while a
//!   fetch is in flight wait for it instead of starting their own. A flood of junk tokens is
//!   therefore at most one request per floor.
//!
//! A failed fetch keeps the cached keys. A key dropped from the set stops being trusted at the
//! next successful fetch.
//!
//! Each key's algorithm is pinned by the key itself (kty, crv, alg): EC P-256 is ES256, P-384
//! ES384, RSA is RS256 (or the RS384/RS512 it declares), OKP Ed25519 is EdDSA. Symmetric keys
//! (`oct`) are never taken from a key set: HS256 is for the configured secret only.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

/// How often to fetch, and how long to wait for an answer.
pub(crate) struct Timing {
    /// The longest a key set is used before it is fetched again.
    pub refresh: Duration,
    /// The shortest time between two fetches caused by unknown `kid`s.
    pub min_refetch: Duration,
    /// One fetch, connection included.
    pub timeout: Duration,
}

/// A verification key and the one algorithm it is used with.
#[derive(Clone)]
pub(crate) struct Key {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// The cache and its fetcher. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SigningKeys {
    shared: Arc<Shared>,
}

struct Shared {
    url: String,
    /// `$SUPABASE_URL/auth/v1`: what a token verified with these keys must carry as `iss`.
    issuer: String,
    /// Kept for the life of the relay: reuses connections and the TLS set-up.
    client: reqwest::Client,
    timing: Timing,
    /// The keys by `kid`, swapped whole on each successful fetch. A `std` lock: it is held only to
    /// clone the `Arc`, never across an await.
    keys: RwLock<Arc<HashMap<String, Key>>>,
    /// Serializes fetches: whoever holds it fetches, the others wait and then use the result.
    fetching: tokio::sync::Mutex<()>,
    state: Mutex<FetchState>,
    fetches: Counter,
    failures: Counter,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_success: Option<Instant>,
    /// Plain words, for health and the log; None after a success.
    last_error: Option<String>,
    /// From the last response's `Cache-Control: max-age`.
    max_age: Option<Duration>,
}

/// `signingKeys` in `/health`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeysHealth {
    /// `disabled` (no SUPABASE_URL), `ok`, `stale` (the last fetch failed or is overdue; cached
    /// keys still work) or `unavailable` (no key set fetched yet).
    pub state: &'static str,
    /// Seconds since the key set was last fetched successfully.
    pub age_seconds: Option<u64>,
    /// Keys in the cache.
    pub keys: usize,
    /// Why the last fetch failed, in plain words.
    pub last_error: Option<String>,
}

impl SigningKeysHealth {
    pub(crate) fn disabled() -> Self {
        SigningKeysHealth {
            state: "disabled",
            age_seconds: None,
            keys: 0,
            last_error: None,
        }
    }
}

impl SigningKeys {
    /// `base` is the project URL without a trailing slash.
    pub(crate) fn new(
        base: &str,
        timing: Timing,
        fetches: Counter,
        failures: Counter,
    ) -> anyhow::Result<SigningKeys> {
        let client = reqwest::Client::builder()
            .timeout(timing.timeout)
            .connect_timeout(timing.timeout)
            .user_agent(concat!("gre-relay/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(SigningKeys {
            shared: Arc::new(Shared {
                url: format!("{base}/auth/v1/.well-known/jwks.json"),
                issuer: format!("{base}/auth/v1"),
                client,
                timing,
                keys: RwLock::new(Arc::new(HashMap::new())),
                fetching: tokio::sync::Mutex::new(()),
                state: Mutex::new(FetchState::default()),
                fetches,
                failures,
            }),
        })
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The start-up fetch: logged either way, never fatal.
    pub(crate) async fn first_fetch(&self) {
        let _guard = self.shared.fetching.lock().await;
        self.shared.fetch().await;
    }

    /// Keeps the set fresh until every clone of this cache is gone.
    pub(crate) fn spawn_refresh(&self) {
        let weak = Arc::downgrade(&self.shared);
        tokio::spawn(refresh_loop(weak));
    }

    /// The key `kid`, fetching the set again if it is unknown (within the floor).
    pub(crate) async fn key(&self, kid: &str) -> Option<Key> {
        if let Some(key) = self.shared.cached(kid) {
            return Some(key);
        }
        self.shared.refetch_for(kid).await;
        self.shared.cached(kid)
    }

    pub(crate) fn health(&self) -> SigningKeysHealth {
        let keys = self.shared.keys_snapshot().len();
        let state = lock(&self.shared.state);
        let age = state.last_success.map(|t| t.elapsed());
        let failed = state.last_error.is_some();
        let overdue = age.is_some_and(|a| a > self.shared.timing.refresh * 2);
        SigningKeysHealth {
            state: match (state.last_success, failed || overdue) {
                (None, _) => "unavailable",
                (Some(_), true) => "stale",
                (Some(_), false) => "ok",
            },
            age_seconds: age.map(|a| a.as_secs()),
            keys,
            last_error: state.last_error.clone(),
        }
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain values: keep going.
fn lock(m: &Mutex<FetchState>) -> std::sync::MutexGuard<'_, FetchState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn refresh_loop(weak: Weak<Shared>) {
    loop {
        let wait = match weak.upgrade() {
            Some(shared) => shared.next_refresh_in(),
            None => return,
        };
        tokio::time::sleep(wait).await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let _guard = shared.fetching.lock().await;
        // An unknown-kid fetch may have just happened: do not fetch twice in a row for nothing.
        if shared.next_refresh_in() > Duration::ZERO {
            continue;
        }
        shared.fetch().await;
    }
}

impl Shared {
    fn keys_snapshot(&self) -> Arc<HashMap<String, Key>> {
        self.keys
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn cached(&self, kid: &str) -> Option<Key> {
        self.keys_snapshot().get(kid).cloned()
    }

    /// How long until the periodic refresh is due (zero when it is).
    fn next_refresh_in(&self) -> Duration {
        let state = lock(&self.state);
        let Some(last) = state.last_attempt else {
            return Duration::ZERO;
        };
        let mut interval = state
            .max_age
            .map_or(self.timing.refresh, |m| m.min(self.timing.refresh));
        if state.last_error.is_some() {
            // Retry a failed fetch within 30 s, not only at the next regular refresh.
            interval = interval.min(Duration::from_secs(30));
        }
        // Never in a tight loop, whatever max-age says.
        let interval = interval.max(self.timing.min_refetch);
        interval.saturating_sub(last.elapsed())
    }

    async fn refetch_for(&self, kid: &str) {
        let _guard = self.fetching.lock().await;
        // Someone else's fetch, which we waited for, may have brought the key.
        if self.cached(kid).is_some() {
            return;
        }
        let recent = lock(&self.state)
            .last_attempt
            .is_some_and(|t| t.elapsed() < self.timing.min_refetch);
        if recent {
            return;
        }
        self.fetch().await;
    }

    /// One fetch. The caller holds `fetching`.
    async fn fetch(&self) {
        self.fetches.inc();
        lock(&self.state).last_attempt = Some(Instant::now());
        match self.download().await {
            Ok((keys, max_age)) => {
                tracing::info!(keys = keys.len(), url = %self.url, "signing keys fetched");
                if keys.is_empty() {
                    tracing::warn!(url = %self.url, "the signing key set is empty");
                }
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
                let mut state = lock(&self.state);
                state.last_success = Some(Instant::now());
                state.last_error = None;
                state.max_age = max_age;
            }
            Err(error) => {
                self.failures.inc();
                tracing::warn!(%error, url = %self.url, "could not fetch the signing keys; cached keys stay in use");
                lock(&self.state).last_error = Some(error);
            }
        }
    }

    /// The keys and the response's max-age, or what went wrong in plain words.
    async fn download(&self) -> Result<(HashMap<String, Key>, Option<Duration>), String> {
        let response = self.client.get(&self.url).send().await.map_err(|e| {
            if e.is_timeout() {
                "the key endpoint did not answer in time".to_owned()
            } else if e.is_connect() {
                "could not connect to the key endpoint".to_owned()
            } else {
                "the request for the key set failed".to_owned()
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!(
                "the key endpoint answered HTTP {}",
                status.as_u16()
            ));
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let body = response
            .bytes()
            .await
            .map_err(|_| "the key set could not be read".to_owned())?;
        parse_key_set(&body).map(|keys| (keys, max_age))
    }
}

/// `max-age=N` of a Cache-Control value.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("max-age") {
            value
                .trim()
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs)
        } else {
            None
        }
    })
}

/// The usable keys of a JWKS document. Each key is parsed on its own, so that one key of a kind
/// this relay does not know (or that is not for signatures) does not hide the others.
fn parse_key_set(body: &[u8]) -> Result<HashMap<String, Key>, String> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let set: RawSet = serde_json::from_slice(body)
        .map_err(|_| "the key endpoint did not return a JSON Web Key Set".to_owned())?;
    let mut keys = HashMap::new();
    for raw in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
            tracing::debug!("skipping a key the JWT library cannot read");
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            tracing::debug!("skipping a key without kid");
            continue;
        };
        let Some(alg) = pinned_algorithm(&jwk) else {
            tracing::debug!(%kid, "skipping a key of an unsupported kind");
            continue;
        };
        match DecodingKey::from_jwk(&jwk) {
            Ok(key) => {
                keys.insert(kid, Key { alg, key });
            }
            Err(_) => tracing::debug!(%kid, "skipping a key that does not decode"),
        }
    }
    Ok(keys)
}

/// The one algorithm a key is used with, from its type and curve; None for a key that is not a
/// signature key this relay accepts, or whose declared `alg` contradicts its type.
fn pinned_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let declared = jwk.common.key_algorithm;
    let alg = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::RSA(_) => match declared {
            None | Some(KeyAlgorithm::RS256) => Algorithm::RS256,
            Some(KeyAlgorithm::RS384) => Algorithm::RS384,
            Some(KeyAlgorithm::RS512) => Algorithm::RS512,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        // Symmetric keys (oct) and anything else.
        _ => return None,
    };
    match declared {
        None => Some(alg),
        Some(d) if d.to_string() == format!("{alg:?}") => Some(alg),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-store"), None);
        assert_eq!(max_age("MAX-AGE = 30"), Some(Duration::from_secs(30)));
    }

    #[test]
    fn key_set_pins_algorithms_and_skips_what_it_cannot_use() {
        let body = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": EC_X, "y": EC_Y, "alg": "ES256", "use": "sig"},
            {"kty": "EC", "crv": "P-256", "kid": "ec-lies", "x": EC_X, "y": EC_Y, "alg": "RS256"},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y},
            {"kty": "XYZ", "kid": "future"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "x": EC_X, "y": EC_Y, "use": "enc"}
        ]});
        let keys = parse_key_set(body.to_string().as_bytes()).expect("a key set");
        assert_eq!(keys.len(), 1, "{:?}", keys.keys().collect::<Vec<_>>());
        assert_eq!(keys.get("ec").map(|k| k.alg), Some(Algorithm::ES256));
        assert!(parse_key_set(b"<html>").is_err());
        assert!(parse_key_set(b"{\"keys\": []}").expect("empty").is_empty());
    }
}
