//! Who is calling: checks a Supabase credential and turns it into an [`Identity`].
//!
//! Three kinds of credential (CONTRACT.md section 2):
//! - access tokens signed with the project's signing keys (ES256, RS256, EdDSA), published as a
//!   JWKS and cached by [`jwks`];
//! - access tokens signed with the legacy JWT secret (HS256);
//! - secret API keys (`sb_secret_...`, [`api_keys`]), which grant the service role.
//!
//! The algorithm a token is checked with is pinned by the key it names, never chosen by the
//! token's header alone: an HS256 token is only ever checked against the secret, an ES256/RS256/
//! EdDSA token only against a published public key. Refusals are [`AuthError`]s whose texts are
//! plain words for clients; library errors never reach a client.
//!
//! Authorization data is read only from `app_metadata` (and the top-level `role` of the service
//! key): `user_metadata` is editable by the user and is used for the display name only.
//!
//! This module owns no database access and knows nothing of HTTP routes; [`mint`] makes tokens
//! for development (`gre-relay token`) and tests.

mod api_keys;
mod jwks;
pub mod mint;

pub use jwks::SigningKeysHealth;
pub use mint::{mint_player_token, mint_raw, mint_staff_token, MintError, Minter};

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use serde_json::Value;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::AuthSettings;
use api_keys::{ApiKeyKind, SecretKeys};
use jwks::SigningKeys;

/// The audience Supabase Auth puts in every user's access token.
const AUDIENCE: &str = "authenticated";

/// The caller, as proven by its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Player {
        player_id: i64,
    },
    Staff {
        staff_id: String,
        name: Option<String>,
        /// True for the service role (legacy service key or a secret API key): it may do all
        /// that staff may.
        service_role: bool,
    },
}

impl Identity {
    pub fn is_staff(&self) -> bool {
        matches!(self, Identity::Staff { .. })
    }

    /// A player may touch only its own rows; staff may touch every player's.
    pub fn may_access_player(&self, player_id: i64) -> bool {
        match self {
            Identity::Player { player_id: own } => *own == player_id,
            Identity::Staff { .. } => true,
        }
    }
}

/// What a credential proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub identity: Identity,
    /// Unix seconds of the token's `exp` (the socket ends at exp + leeway);
    /// None for a secret API key, which does not expire.
    pub expires_at: Option<u64>,
}

/// Why a credential was refused. The texts go to clients as they are: plain words, no internals.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing credential")]
    Missing,
    #[error("the Authorization header must be 'Bearer <credential>'")]
    BadAuthorizationHeader,
    #[error("malformed token")]
    Malformed,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token has no expiry (exp)")]
    NoExpiry,
    #[error("wrong audience")]
    WrongAudience,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("unknown signing key")]
    UnknownSigningKey,
    #[error("bad signature")]
    BadSignature,
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    #[error("publishable key grants nothing")]
    PublishableKey,
    #[error("unknown API key")]
    UnknownApiKey,
    #[error("token grants no player or staff role")]
    NoRole,
    /// The claims are signed but do not make an identity (a staff token without `sub`, a
    /// player id that is not a number). The text is ours, never the library's.
    #[error("{0}")]
    BadClaims(&'static str),
}

/// Checks credentials. Cheap to clone and share: everything sits behind one `Arc`.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    leeway: u64,
    /// The legacy HS256 secret; None when not configured, then HS256 tokens are refused.
    secret: Option<DecodingKey>,
    /// The project's signing keys; None without `SUPABASE_URL`.
    signing_keys: Option<SigningKeys>,
    /// Secret API keys (`SUPABASE_SECRET_KEYS`), as digests.
    api_keys: SecretKeys,
    /// Key-set fetches and failed fetches, for `/metrics` (counted even when disabled: zero).
    fetches: Counter,
    fetch_failures: Counter,
}

/// The claims the relay reads. `exp`, `nbf` and `iss` are checked by the JWT library.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    role: Option<String>,
    /// A string or an array of strings.
    aud: Option<Value>,
    /// Kept as a value: the library accepts a float too.
    exp: Option<Value>,
    #[serde(default)]
    app_metadata: Value,
    #[serde(default)]
    user_metadata: Value,
}

/// The two header fields that decide how a token is checked, read before any library call so
/// that an unknown `alg` (e.g. `none`) is refused with plain words.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
}

impl Verifier {
    /// Checks HS256 tokens against `secret` only: for the unit tests below (the relay and the
    /// tools build theirs with [`Verifier::start`]).
    #[cfg(test)]
    pub(crate) fn new(secret: &str, leeway_seconds: u64) -> Self {
        Verifier {
            inner: Arc::new(Inner {
                leeway: leeway_seconds,
                secret: (!secret.is_empty()).then(|| DecodingKey::from_secret(secret.as_bytes())),
                signing_keys: None,
                api_keys: SecretKeys::new(&[]),
                fetches: Counter::default(),
                fetch_failures: Counter::default(),
            }),
        }
    }

    /// A verifier for `settings` (the legacy secret given apart: with the embedded database the
    /// CLI generates it). With `supabase_url` set, fetches the signing keys once now (bounded by
    /// `auth.jwks_timeout_seconds`; a failure is logged and shown by health, never fatal) and
    /// keeps refreshing them in a background task that ends when the last clone is dropped.
    pub async fn start(settings: &AuthSettings, jwt_secret: &str) -> anyhow::Result<Verifier> {
        let fetches = Counter::default();
        let fetch_failures = Counter::default();
        let signing_keys = match settings.supabase_base_url() {
            Some(base) => {
                let keys = SigningKeys::new(
                    &base,
                    jwks::Timing {
                        refresh: Duration::from_secs(settings.jwks_refresh_seconds.clamp(1, 600)),
                        min_refetch: Duration::from_secs(settings.jwks_min_refetch_seconds.max(1)),
                        timeout: Duration::from_secs(settings.jwks_timeout_seconds.max(1)),
                    },
                    fetches.clone(),
                    fetch_failures.clone(),
                )?;
                keys.first_fetch().await;
                keys.spawn_refresh();
                Some(keys)
            }
            None => None,
        };
        Ok(Verifier {
            inner: Arc::new(Inner {
                leeway: settings.leeway_seconds,
                secret: (!jwt_secret.is_empty())
                    .then(|| DecodingKey::from_secret(jwt_secret.as_bytes())),
                signing_keys,
                api_keys: SecretKeys::new(&settings.secret_keys()),
                fetches,
                fetch_failures,
            }),
        })
    }

    /// When a socket authenticated with `verified` must end: the token's `exp` plus the leeway
    /// (CONTRACT section 2), as a point on the monotonic clock. None for a secret API key.
    pub fn socket_deadline(&self, verified: &Verified) -> Option<tokio::time::Instant> {
        let exp = verified.expires_at?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let end = Duration::from_secs(exp) + self.leeway();
        Some(tokio::time::Instant::now() + end.saturating_sub(now))
    }

    /// Clock skew allowed on `exp` and `nbf`.
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.inner.leeway)
    }

    /// The state of the signing-key cache, for `/health`.
    pub fn signing_keys_health(&self) -> SigningKeysHealth {
        match &self.inner.signing_keys {
            Some(keys) => keys.health(),
            None => SigningKeysHealth::disabled(),
        }
    }

    /// (fetches, failed fetches) of the signing-key set, for `/metrics`.
    pub fn fetch_counters(&self) -> (Counter, Counter) {
        (
            self.inner.fetches.clone(),
            self.inner.fetch_failures.clone(),
        )
    }

    /// A WebSocket `authenticate` token: a JWT or a secret API key.
    pub async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        match api_keys::kind(token) {
            ApiKeyKind::Secret => {
                if self.inner.api_keys.contains(token) {
                    Ok(Verified {
                        identity: Identity::Staff {
                            staff_id: "service_role".to_owned(),
                            name: None,
                            service_role: true,
                        },
                        expires_at: None,
                    })
                } else {
                    tracing::debug!(key = %api_keys::prefix(token), "unknown secret API key");
                    Err(AuthError::UnknownApiKey)
                }
            }
            ApiKeyKind::Publishable => Err(AuthError::PublishableKey),
            ApiKeyKind::NotAnApiKey => self.verify_jwt(token).await,
        }
    }

    /// A REST request: `Authorization: Bearer <credential>`, or else an API key in `apikey`.
    /// supabase-js sends both (`apikey: <publishable>` and the user's JWT as the bearer): the
    /// bearer credential then decides.
    pub async fn verify_headers(&self, headers: &hyper::HeaderMap) -> Result<Verified, AuthError> {
        if let Some(value) = headers.get(hyper::header::AUTHORIZATION) {
            let value = value
                .to_str()
                .map_err(|_| AuthError::BadAuthorizationHeader)?;
            let (scheme, credential) = value
                .trim()
                .split_once(' ')
                .ok_or(AuthError::BadAuthorizationHeader)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(AuthError::BadAuthorizationHeader);
            }
            return self.verify(credential).await;
        }
        match headers.get("apikey") {
            Some(value) => {
                let key = value.to_str().map_err(|_| AuthError::UnknownApiKey)?;
                self.verify(key).await
            }
            None => Err(AuthError::Missing),
        }
    }

    async fn verify_jwt(&self, token: &str) -> Result<Verified, AuthError> {
        let header = peek_header(token)?;
        let alg = Algorithm::from_str(&header.alg).map_err(|_| AuthError::UnsupportedAlgorithm)?;
        let claims = match alg {
            Algorithm::HS256 => {
                // The legacy secret, and nothing else: never a public key (algorithm confusion).
                let key = self
                    .inner
                    .secret
                    .as_ref()
                    .ok_or(AuthError::UnsupportedAlgorithm)?;
                let validation = self.validation(Algorithm::HS256, None);
                decode(token, key, &validation)?
            }
            Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::EdDSA => {
                let keys = self
                    .inner
                    .signing_keys
                    .as_ref()
                    .ok_or(AuthError::UnknownSigningKey)?;
                let kid = header.kid.as_deref().ok_or(AuthError::UnknownSigningKey)?;
                let key = keys.key(kid).await.ok_or(AuthError::UnknownSigningKey)?;
                // The key's own algorithm (from its kty/crv) decides; a header that claims
                // another one is refused rather than believed.
                if key.alg != alg {
                    return Err(AuthError::UnsupportedAlgorithm);
                }
                let validation = self.validation(key.alg, Some(keys.issuer()));
                decode(token, &key.key, &validation)?
            }
            // HS384/HS512 (Supabase never issues them) and the PS family.
            _ => return Err(AuthError::UnsupportedAlgorithm),
        };
        let expires_at = claims.exp.as_ref().and_then(exp_seconds);
        let identity = identity_from_claims(claims)?;
        Ok(Verified {
            identity,
            expires_at,
        })
    }

    fn validation(&self, alg: Algorithm, issuer: Option<&str>) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = self.inner.leeway;
        validation.validate_nbf = true;
        // `aud` is checked in identity_from_claims: service-role tokens carry none.
        validation.validate_aud = false;
        match issuer {
            Some(iss) => {
                validation.set_required_spec_claims(&["exp", "iss"]);
                validation.set_issuer(&[iss]);
            }
            // Legacy HS256 tokens: their `iss` varies (the old service key says "supabase").
            None => validation.set_required_spec_claims(&["exp"]),
        }
        validation
    }
}

/// The header's `alg` and `kid`, or `Malformed`.
fn peek_header(token: &str) -> Result<RawHeader, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

/// Verifies signature and time claims, mapping the library's errors to plain words.
fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, AuthError> {
    use jsonwebtoken::errors::ErrorKind;
    jsonwebtoken::decode::<Claims>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthError::WrongIssuer,
            ErrorKind::MissingRequiredClaim(c) if c == "exp" => AuthError::NoExpiry,
            ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
                AuthError::UnsupportedAlgorithm
            }
            // A published key the crypto library cannot use cannot have signed anything.
            ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => AuthError::BadSignature,
            _ => AuthError::Malformed,
        })
}

fn exp_seconds(exp: &Value) -> Option<u64> {
    exp.as_u64()
        .or_else(|| exp.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

fn has_audience(aud: Option<&Value>) -> bool {
    match aud {
        Some(Value::String(s)) => s == AUDIENCE,
        Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some(AUDIENCE)),
        _ => false,
    }
}

fn identity_from_claims(claims: Claims) -> Result<Identity, AuthError> {
    let name = claims
        .user_metadata
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if claims.role.as_deref() == Some("service_role") {
        // The legacy service key has no `aud`; it is signed by the project all the same.
        return Ok(Identity::Staff {
            staff_id: claims.sub.unwrap_or_else(|| "service_role".to_owned()),
            name,
            service_role: true,
        });
    }
    if !has_audience(claims.aud.as_ref()) {
        return Err(AuthError::WrongAudience);
    }
    if claims.app_metadata.get("role").and_then(Value::as_str) == Some("gre_staff") {
        let staff_id = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::BadClaims("staff token without sub"))?;
        return Ok(Identity::Staff {
            staff_id,
            name,
            service_role: false,
        });
    }
    match claims.app_metadata.get("player_id") {
        Some(value) => parse_player_id(value)
            .map(|player_id| Identity::Player { player_id })
            .ok_or(AuthError::BadClaims(
                "app_metadata.player_id is not a player id",
            )),
        None => Err(AuthError::NoRole),
    }
}

/// A positive number, or a string of digits (Supabase metadata often stores ids as strings).
fn parse_player_id(value: &Value) -> Option<i64> {
    let id = match value {
        Value::Number(n) => n.as_i64()?,
        Value::String(s)
            if !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse().ok()?
        }
        _ => return None,
    };
    (id > 0).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mint::now_secs;
    use serde_json::json;

    const SECRET: &str = "test-secret-test-secret-test-secret";

    fn verifier() -> Verifier {
        Verifier::new(SECRET, 0)
    }

    fn identity(v: &Verifier, token: &str) -> Result<Identity, AuthError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(v.verify(token)).map(|v| v.identity)
    }

    #[test]
    fn player_and_staff_tokens_round_trip() {
        let v = verifier();
        let t = mint_player_token(SECRET, 29, Duration::from_secs(60));
        assert_eq!(identity(&v, &t), Ok(Identity::Player { player_id: 29 }));
        let t = mint_staff_token(SECRET, "staff-7", Some("Anna"), Duration::from_secs(60));
        assert_eq!(
            identity(&v, &t),
            Ok(Identity::Staff {
                staff_id: "staff-7".into(),
                name: Some("Anna".into()),
                service_role: false
            })
        );
    }

    #[test]
    fn expiry_is_reported() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let exp = now_secs() + 60;
        let t = mint_raw(
            SECRET,
            &json!({"exp": exp, "aud": "authenticated", "app_metadata": {"player_id": 3}}),
        );
        let got = rt.block_on(verifier().verify(&t)).expect("valid");
        assert_eq!(got.expires_at, Some(exp));
        assert_eq!(verifier().leeway(), Duration::ZERO);
    }

    #[test]
    fn player_id_as_string_of_digits() {
        let exp = now_secs() + 60;
        let claims = |id: Value| json!({"exp": exp, "aud": "authenticated", "app_metadata": {"player_id": id}});
        let v = verifier();
        let t = mint_raw(SECRET, &claims(json!("42")));
        assert_eq!(identity(&v, &t), Ok(Identity::Player { player_id: 42 }));
        let t = mint_raw(SECRET, &claims(json!("4x2")));
        assert!(matches!(identity(&v, &t), Err(AuthError::BadClaims(_))));
        let t = mint_raw(SECRET, &claims(json!(-3)));
        assert!(matches!(identity(&v, &t), Err(AuthError::BadClaims(_))));
    }

    #[test]
    fn audience_is_required_except_for_the_service_role() {
        let v = verifier();
        let exp = now_secs() + 60;
        let t = mint_raw(SECRET, &json!({"exp": exp, "role": "service_role"}));
        assert!(identity(&v, &t).expect("service").is_staff());
        for aud in [json!(null), json!("other-app"), json!(["other-app"])] {
            let t = mint_raw(
                SECRET,
                &json!({"exp": exp, "aud": aud, "app_metadata": {"player_id": 29}}),
            );
            assert_eq!(identity(&v, &t), Err(AuthError::WrongAudience), "{aud}");
        }
        let t = mint_raw(
            SECRET,
            &json!({"exp": exp, "aud": ["x", "authenticated"], "app_metadata": {"player_id": 29}}),
        );
        assert_eq!(identity(&v, &t), Ok(Identity::Player { player_id: 29 }));
    }

    #[test]
    fn forged_expired_early_and_claimless_tokens_are_refused() {
        let v = verifier();
        let forged = mint_player_token("another-secret", 29, Duration::from_secs(60));
        assert_eq!(identity(&v, &forged), Err(AuthError::BadSignature));
        let expired = mint_raw(
            SECRET,
            &json!({"exp": now_secs() - 3600, "aud": "authenticated", "app_metadata": {"player_id": 29}}),
        );
        assert_eq!(identity(&v, &expired), Err(AuthError::Expired));
        let early = mint_raw(
            SECRET,
            &json!({"exp": now_secs() + 7200, "nbf": now_secs() + 3600, "aud": "authenticated", "app_metadata": {"player_id": 29}}),
        );
        assert_eq!(identity(&v, &early), Err(AuthError::NotYetValid));
        let no_exp = mint_raw(
            SECRET,
            &json!({"aud": "authenticated", "app_metadata": {"player_id": 29}}),
        );
        assert_eq!(identity(&v, &no_exp), Err(AuthError::NoExpiry));
        let no_role = mint_raw(
            SECRET,
            &json!({"exp": now_secs() + 60, "aud": "authenticated", "user_metadata": {"player_id": 29}}),
        );
        assert_eq!(identity(&v, &no_role), Err(AuthError::NoRole));
        assert_eq!(identity(&v, "29"), Err(AuthError::Malformed));
        assert_eq!(identity(&v, ""), Err(AuthError::Missing));
        // alg=none never passes, and says so without the library's words.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjk5OTk5OTk5OTksImFwcF9tZXRhZGF0YSI6eyJwbGF5ZXJfaWQiOjI5fX0.";
        assert_eq!(identity(&v, none), Err(AuthError::UnsupportedAlgorithm));
        assert_eq!(
            AuthError::UnsupportedAlgorithm.to_string(),
            "unsupported algorithm"
        );
        // An asymmetric token without signing keys configured.
        let es = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.e30.c2ln";
        assert_eq!(identity(&v, es), Err(AuthError::UnknownSigningKey));
    }

    #[test]
    fn api_keys_without_configuration_grant_nothing() {
        let v = verifier();
        assert_eq!(
            identity(&v, "sb_publishable_abc"),
            Err(AuthError::PublishableKey)
        );
        assert_eq!(identity(&v, "sb_secret_abc"), Err(AuthError::UnknownApiKey));
    }
}
