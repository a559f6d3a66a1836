//! Who is calling: verifies Supabase JWTs (HS256, project secret, `exp` required) and turns their
//! claims into an [`Identity`]. Also mints tokens for development (`gre-relay token`) and tests.
//!
//! Authorization data is read only from `app_metadata` (and the top-level `role` of the service
//! key): `user_metadata` is editable by the user and is used for the display name only.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The caller, as proven by its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Player {
        player_id: i64,
    },
    Staff {
        staff_id: String,
        name: Option<String>,
        /// True for the Supabase service key: it may do all that staff may.
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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token expired")]
    Expired,
    #[error("token grants no player or staff role")]
    NoRole,
}

/// Checks tokens against the project's secret. Cheap to share: build once, use everywhere.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    role: Option<String>,
    #[serde(default)]
    app_metadata: Value,
    #[serde(default)]
    user_metadata: Value,
}

impl Verifier {
    pub fn new(secret: &str, leeway_seconds: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.leeway = leeway_seconds;
        // Supabase sets aud = "authenticated"; the contract does not pin it, so it is not checked.
        validation.validate_aud = false;
        Verifier {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            },
        )?;
        identity_from_claims(data.claims)
    }

    /// Verifies an `Authorization: Bearer <jwt>` header value.
    pub fn verify_bearer(&self, header: Option<&str>) -> Result<Identity, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| AuthError::Invalid("expected 'Bearer <token>'".into()))?;
        self.verify(token)
    }
}

fn identity_from_claims(claims: Claims) -> Result<Identity, AuthError> {
    let name = claims
        .user_metadata
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if claims.role.as_deref() == Some("service_role") {
        return Ok(Identity::Staff {
            staff_id: claims.sub.unwrap_or_else(|| "service_role".to_owned()),
            name,
            service_role: true,
        });
    }
    if claims.app_metadata.get("role").and_then(Value::as_str) == Some("gre_staff") {
        let staff_id = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or_else(|| AuthError::Invalid("staff token without sub".into()))?;
        return Ok(Identity::Staff {
            staff_id,
            name,
            service_role: false,
        });
    }
    match claims.app_metadata.get("player_id") {
        Some(value) => parse_player_id(value)
            .map(|player_id| Identity::Player { player_id })
            .ok_or_else(|| AuthError::Invalid("app_metadata.player_id is not a player id".into())),
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

#[derive(Serialize)]
struct MintClaims<'a> {
    sub: String,
    role: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    app_metadata: Value,
    user_metadata: Value,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn mint(secret: &str, claims: &MintClaims) -> String {
    // Encoding HS256 with an in-memory key and a serializable struct cannot fail.
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 encoding of plain claims")
}

/// A player token as the Supabase project would issue it.
pub fn mint_player_token(secret: &str, player_id: i64, ttl: Duration) -> String {
    let iat = now_secs();
    mint(
        secret,
        &MintClaims {
            sub: format!("player-{player_id}"),
            role: "authenticated",
            aud: "authenticated",
            iat,
            exp: iat + ttl.as_secs(),
            app_metadata: serde_json::json!({ "player_id": player_id }),
            user_metadata: serde_json::json!({}),
        },
    )
}

/// A GRE staff token as the Supabase project would issue it.
pub fn mint_staff_token(secret: &str, staff_id: &str, name: Option<&str>, ttl: Duration) -> String {
    let iat = now_secs();
    let user_metadata = match name {
        Some(n) => serde_json::json!({ "name": n }),
        None => serde_json::json!({}),
    };
    mint(
        secret,
        &MintClaims {
            sub: staff_id.to_owned(),
            role: "authenticated",
            aud: "authenticated",
            iat,
            exp: iat + ttl.as_secs(),
            app_metadata: serde_json::json!({ "role": "gre_staff" }),
            user_metadata,
        },
    )
}

/// Signs arbitrary claims; for tests that need odd or hostile tokens.
pub fn mint_raw(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 encoding of a JSON value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "test-secret-test-secret-test-secret";

    fn verifier() -> Verifier {
        Verifier::new(SECRET, 0)
    }

    #[test]
    fn player_and_staff_tokens_round_trip() {
        let v = verifier();
        let t = mint_player_token(SECRET, 29, Duration::from_secs(60));
        assert_eq!(v.verify(&t), Ok(Identity::Player { player_id: 29 }));
        let t = mint_staff_token(SECRET, "staff-7", Some("Anna"), Duration::from_secs(60));
        assert_eq!(
            v.verify(&t),
            Ok(Identity::Staff {
                staff_id: "staff-7".into(),
                name: Some("Anna".into()),
                service_role: false
            })
        );
    }

    #[test]
    fn player_id_as_string_of_digits() {
        let exp = now_secs() + 60;
        let t = mint_raw(
            SECRET,
            &json!({"exp": exp, "app_metadata": {"player_id": "42"}}),
        );
        assert_eq!(
            verifier().verify(&t),
            Ok(Identity::Player { player_id: 42 })
        );
        let t = mint_raw(
            SECRET,
            &json!({"exp": exp, "app_metadata": {"player_id": "4x2"}}),
        );
        assert!(matches!(verifier().verify(&t), Err(AuthError::Invalid(_))));
        let t = mint_raw(
            SECRET,
            &json!({"exp": exp, "app_metadata": {"player_id": -3}}),
        );
        assert!(matches!(verifier().verify(&t), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn service_role_is_staff() {
        let t = mint_raw(
            SECRET,
            &json!({"exp": now_secs() + 60, "role": "service_role"}),
        );
        assert!(verifier().verify(&t).expect("service").is_staff());
    }

    #[test]
    fn forged_expired_and_claimless_tokens_are_refused() {
        let v = verifier();
        let forged = mint_player_token("another-secret", 29, Duration::from_secs(60));
        assert!(matches!(v.verify(&forged), Err(AuthError::Invalid(_))));
        let expired = mint_raw(
            SECRET,
            &json!({"exp": now_secs() - 3600, "app_metadata": {"player_id": 29}}),
        );
        assert_eq!(v.verify(&expired), Err(AuthError::Expired));
        let no_exp = mint_raw(SECRET, &json!({"app_metadata": {"player_id": 29}}));
        assert!(matches!(v.verify(&no_exp), Err(AuthError::Invalid(_))));
        let no_role = mint_raw(
            SECRET,
            &json!({"exp": now_secs() + 60, "user_metadata": {"player_id": 29}}),
        );
        assert_eq!(v.verify(&no_role), Err(AuthError::NoRole));
        assert!(matches!(v.verify("29"), Err(AuthError::Invalid(_))));
        assert_eq!(v.verify(""), Err(AuthError::Missing));
        // alg=none must never pass.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjk5OTk5OTk5OTksImFwcF9tZXRhZGF0YSI6eyJwbGF5ZXJfaWQiOjI5fX0.";
        assert!(v.verify(none).is_err());
    }
}
