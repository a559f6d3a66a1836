//! Makes tokens shaped like the ones Supabase Auth issues: for `gre-relay token`, the demo
//! tokens of the embedded default, and tests. Signs with the legacy secret (HS256) or with a
//! private key (PEM or JWK file: EC P-256 for ES256, RSA for RS256, Ed25519 PEM for EdDSA) and
//! its `kid`, so a signing-key setup can be tried locally.

use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a key could not be used; plain words, the file name added by the caller.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("cannot read the key file: {0}")]
    Read(#[from] std::io::Error),
    #[error("not a private key this tool can use (EC P-256 or RSA as PEM or JWK, Ed25519 as PEM)")]
    UnsupportedKey,
    #[error("the key is {key} but --alg asks for {asked}")]
    AlgorithmMismatch { key: &'static str, asked: String },
    #[error("a key needs a kid (give --kid)")]
    MissingKid,
    #[error("signing failed")]
    Signing,
}

/// A signing key with its header (algorithm, kid) and the issuer it writes into tokens.
pub struct Minter {
    header: Header,
    key: EncodingKey,
    /// Written as `iss` when set.
    issuer: Option<String>,
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Minter {
    /// The legacy project secret.
    pub fn hs256(secret: &str) -> Minter {
        Minter {
            header: Header::new(Algorithm::HS256),
            key: EncodingKey::from_secret(secret.as_bytes()),
            issuer: None,
        }
    }

    /// A private key file, PEM or JWK (told apart by its first character). `kid` may be left out
    /// when a JWK file carries one; `alg` defaults to the key's (ES256, RS256 or EdDSA).
    pub fn from_key_file(
        path: &Path,
        kid: Option<&str>,
        alg: Option<Algorithm>,
    ) -> Result<Minter, MintError> {
        let text = std::fs::read(path)?;
        if text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            Self::from_jwk(&text, kid, alg)
        } else {
            Self::from_pem(&text, kid, alg)
        }
    }

    /// A PKCS#8 (or PKCS#1 RSA) PEM private key.
    pub fn from_pem(
        pem: &[u8],
        kid: Option<&str>,
        alg: Option<Algorithm>,
    ) -> Result<Minter, MintError> {
        let (key, family) = if let Ok(k) = EncodingKey::from_ec_pem(pem) {
            (k, Family::Ec)
        } else if let Ok(k) = EncodingKey::from_rsa_pem(pem) {
            (k, Family::Rsa)
        } else if let Ok(k) = EncodingKey::from_ed_pem(pem) {
            (k, Family::Ed)
        } else {
            return Err(MintError::UnsupportedKey);
        };
        Self::with_key(key, family, kid.map(str::to_owned), alg)
    }

    /// A private JSON Web Key (EC P-256 or RSA).
    pub fn from_jwk(
        text: &[u8],
        kid: Option<&str>,
        alg: Option<Algorithm>,
    ) -> Result<Minter, MintError> {
        #[derive(Deserialize)]
        struct Private {
            kty: String,
            kid: Option<String>,
            n: Option<String>,
            e: Option<String>,
            d: Option<String>,
            p: Option<String>,
            q: Option<String>,
        }
        let text = std::str::from_utf8(text).map_err(|_| MintError::UnsupportedKey)?;
        let jwk: Private = serde_json::from_str(text).map_err(|_| MintError::UnsupportedKey)?;
        let kid = kid.map(str::to_owned).or(jwk.kid);
        match jwk.kty.as_str() {
            "EC" => {
                use p256::pkcs8::EncodePrivateKey;
                // p256 refuses members it does not know (kid, alg, use): keep only its own.
                let all: Value =
                    serde_json::from_str(text).map_err(|_| MintError::UnsupportedKey)?;
                let own: serde_json::Map<String, Value> = ["kty", "crv", "x", "y", "d"]
                    .iter()
                    .filter_map(|k| all.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                    .collect();
                let secret = p256::SecretKey::from_jwk_str(&Value::Object(own).to_string())
                    .map_err(|_| MintError::UnsupportedKey)?;
                let der = secret
                    .to_pkcs8_der()
                    .map_err(|_| MintError::UnsupportedKey)?;
                Self::with_key(
                    EncodingKey::from_ec_der(der.as_bytes()),
                    Family::Ec,
                    kid,
                    alg,
                )
            }
            "RSA" => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                let big = |v: Option<String>| -> Result<rsa::BigUint, MintError> {
                    let v = v.ok_or(MintError::UnsupportedKey)?;
                    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(v.trim_end_matches('='))
                        .map_err(|_| MintError::UnsupportedKey)?;
                    Ok(rsa::BigUint::from_bytes_be(&bytes))
                };
                let key = rsa::RsaPrivateKey::from_components(
                    big(jwk.n)?,
                    big(jwk.e)?,
                    big(jwk.d)?,
                    vec![big(jwk.p)?, big(jwk.q)?],
                )
                .map_err(|_| MintError::UnsupportedKey)?;
                let der = key.to_pkcs1_der().map_err(|_| MintError::UnsupportedKey)?;
                Self::with_key(
                    EncodingKey::from_rsa_der(der.as_bytes()),
                    Family::Rsa,
                    kid,
                    alg,
                )
            }
            _ => Err(MintError::UnsupportedKey),
        }
    }

    fn with_key(
        key: EncodingKey,
        family: Family,
        kid: Option<String>,
        alg: Option<Algorithm>,
    ) -> Result<Minter, MintError> {
        let alg = match (family, alg) {
            (Family::Ec, None | Some(Algorithm::ES256)) => Algorithm::ES256,
            (Family::Rsa, None) => Algorithm::RS256,
            (Family::Rsa, Some(a @ (Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512))) => a,
            (Family::Ed, None | Some(Algorithm::EdDSA)) => Algorithm::EdDSA,
            (family, Some(asked)) => {
                return Err(MintError::AlgorithmMismatch {
                    key: family.name(),
                    asked: format!("{asked:?}"),
                })
            }
        };
        let kid = kid.filter(|k| !k.is_empty()).ok_or(MintError::MissingKid)?;
        let mut header = Header::new(alg);
        header.kid = Some(kid);
        let minter = Minter {
            header,
            key,
            issuer: None,
        };
        // Sign once now so that a key the crypto library refuses (a P-384 key, a short RSA key)
        // is reported here, not as a panic later.
        minter.raw(&json!({}))?;
        Ok(minter)
    }

    /// Writes `iss` into every token (Supabase: `$SUPABASE_URL/auth/v1`).
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Minter {
        self.issuer = Some(issuer.into());
        self
    }

    pub fn algorithm(&self) -> Algorithm {
        self.header.alg
    }

    /// The public half as a JWK (with `kid`, `alg` and `use`), as a JWKS endpoint publishes it;
    /// None for the HS256 secret, which is never published.
    pub fn public_jwk(&self) -> Option<Value> {
        if self.header.alg == Algorithm::HS256 {
            return None;
        }
        let mut jwk = Jwk::from_encoding_key(&self.key, self.header.alg).ok()?;
        jwk.common.key_id = self.header.kid.clone();
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        serde_json::to_value(jwk).ok()
    }

    /// Signs `claims` as they are (plus `iss` if set and absent).
    pub fn raw(&self, claims: &Value) -> Result<String, MintError> {
        let mut claims = claims.clone();
        if let (Some(iss), Some(map)) = (&self.issuer, claims.as_object_mut()) {
            map.entry("iss").or_insert_with(|| json!(iss));
        }
        jsonwebtoken::encode(&self.header, &claims, &self.key).map_err(|_| MintError::Signing)
    }

    /// A player token as the Supabase project would issue it.
    pub fn player(&self, player_id: i64, ttl: Duration) -> Result<String, MintError> {
        let iat = now_secs();
        self.raw(&json!({
            "sub": format!("player-{player_id}"),
            "role": "authenticated",
            "aud": "authenticated",
            "iat": iat,
            "exp": iat + ttl.as_secs(),
            "app_metadata": {"player_id": player_id},
            "user_metadata": {},
        }))
    }

    /// A GRE staff token as the Supabase project would issue it.
    pub fn staff(
        &self,
        staff_id: &str,
        name: Option<&str>,
        ttl: Duration,
    ) -> Result<String, MintError> {
        let iat = now_secs();
        let user_metadata = match name {
            Some(n) => json!({ "name": n }),
            None => json!({}),
        };
        self.raw(&json!({
            "sub": staff_id,
            "role": "authenticated",
            "aud": "authenticated",
            "iat": iat,
            "exp": iat + ttl.as_secs(),
            "app_metadata": {"role": "gre_staff"},
            "user_metadata": user_metadata,
        }))
    }
}

#[derive(Clone, Copy)]
enum Family {
    Ec,
    Rsa,
    Ed,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Ec => "an EC key (ES256)",
            Family::Rsa => "an RSA key (RS256)",
            Family::Ed => "an Ed25519 key (EdDSA)",
        }
    }
}

/// An HS256 player token. HS256 with an in-memory secret and plain JSON cannot fail to sign.
pub fn mint_player_token(secret: &str, player_id: i64, ttl: Duration) -> String {
    Minter::hs256(secret)
        .player(player_id, ttl)
        .expect("HS256 signing of plain claims")
}

/// An HS256 GRE staff token.
pub fn mint_staff_token(secret: &str, staff_id: &str, name: Option<&str>, ttl: Duration) -> String {
    Minter::hs256(secret)
        .staff(staff_id, name, ttl)
        .expect("HS256 signing of plain claims")
}

/// Signs arbitrary claims with HS256; for tests that need odd or hostile tokens.
pub fn mint_raw(secret: &str, claims: &Value) -> String {
    Minter::hs256(secret)
        .raw(claims)
        .expect("HS256 signing of a JSON value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    #[test]
    fn key_files_pem_and_jwk() {
        let ec = Minter::from_key_file(&fixture("ec256-a.pem"), Some("a"), None).expect("ec pem");
        assert_eq!(ec.algorithm(), Algorithm::ES256);
        let jwk = ec.public_jwk().expect("public jwk");
        assert_eq!(jwk["kid"], "a");
        assert_eq!(jwk["crv"], "P-256");
        assert!(jwk.get("d").is_none(), "{jwk}");
        // The JWK file holds the same key: the same public half.
        let ec_jwk =
            Minter::from_key_file(&fixture("ec256-a.jwk.json"), Some("a"), None).expect("ec jwk");
        assert_eq!(ec_jwk.public_jwk(), Some(jwk));
        let rsa = Minter::from_key_file(&fixture("rsa2048.jwk.json"), None, None).expect("rsa jwk");
        assert_eq!(rsa.algorithm(), Algorithm::RS256);
        assert_eq!(rsa.public_jwk().expect("jwk")["kid"], "fixture-rsa");
        let rsa_pem =
            Minter::from_key_file(&fixture("rsa2048.pem"), Some("fixture-rsa"), None).expect("pem");
        assert_eq!(rsa_pem.public_jwk(), rsa.public_jwk());
        let ed = Minter::from_key_file(&fixture("ed25519.pem"), Some("e"), None).expect("ed");
        assert_eq!(ed.algorithm(), Algorithm::EdDSA);
        assert!(matches!(
            Minter::from_key_file(&fixture("ec256-a.pem"), Some("a"), Some(Algorithm::RS256)),
            Err(MintError::AlgorithmMismatch { .. })
        ));
        assert!(matches!(
            Minter::from_key_file(&fixture("ec256-a.pem"), None, None),
            Err(MintError::MissingKid)
        ));
        assert!(matches!(
            Minter::from_key_file(&fixture("README.md"), Some("x"), None),
            Err(MintError::UnsupportedKey)
        ));
    }
}
