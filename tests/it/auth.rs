//! Authentication as a Supabase project of today does it (CONTRACT.md section 2): access tokens
//! signed with the project's signing keys, fetched from a JWKS endpoint that the harness serves
//! over real HTTP and changes mid-test; the legacy HS256 secret beside them; secret and
//! publishable API keys; the claims (iss, aud, exp, nbf) with plain-word refusals.
//!
//! Most tests drive the `Verifier` directly (no database needed); the last ones go through the
//! relay's REST API and WebSocket on a real PostgreSQL cluster.

use crate::support::jwks::{public, signer, JwksServer};
use crate::support::*;

use futures_util::future::join_all;
use gre_relay::auth::{AuthError, Identity, Verifier};
use gre_relay::config::AuthSettings;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HOUR: Duration = Duration::from_secs(3600);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Auth settings for a project at `server`, fetching at most once per `floor` seconds and
/// refreshing every `refresh` seconds.
fn auth_settings(server: &JwksServer, floor: u64, refresh: u64) -> AuthSettings {
    let mut auth = test_settings().auth;
    auth.supabase_url = server.base_url();
    auth.jwks_min_refetch_seconds = floor;
    auth.jwks_refresh_seconds = refresh;
    auth.jwks_timeout_seconds = 2;
    auth
}

async fn verifier(auth: &AuthSettings, secret: &str) -> Verifier {
    tokio::time::timeout(Duration::from_secs(10), Verifier::start(auth, secret))
        .await
        .expect("verifier start in time")
        .expect("verifier start")
}

async fn who(v: &Verifier, token: &str) -> Result<Identity, AuthError> {
    tokio::time::timeout(WAIT, v.verify(token))
        .await
        .expect("verify in time")
        .map(|v| v.identity)
}

/// Player claims as Supabase issues them, with `extra` merged over them.
fn player_claims(player_id: i64, extra: Value) -> Value {
    let mut claims = json!({
        "sub": format!("user-{player_id}"),
        "role": "authenticated",
        "aud": "authenticated",
        "iat": now(),
        "exp": now() + 3600,
        "app_metadata": {"player_id": player_id},
    });
    if let (Some(map), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        for (k, v) in extra {
            if v.is_null() {
                map.remove(&k);
            } else {
                map.insert(k, v);
            }
        }
    }
    claims
}

#[tokio::test]
async fn es256_rs256_and_eddsa_tokens_with_their_claims() {
    let jwks = JwksServer::start(vec![]).await;
    let iss = jwks.issuer();
    let ec = signer("ec256-a.pem", "ec-a", &iss);
    let rsa = signer("rsa2048.pem", "rsa-1", &iss);
    let ed = signer("ed25519.pem", "ed-1", &iss);
    jwks.set_keys(vec![public(&ec), public(&rsa), public(&ed)]);
    let v = verifier(&auth_settings(&jwks, 5, 600), "").await;
    let health = v.signing_keys_health();
    assert_eq!((health.state, health.keys), ("ok", 3), "{health:?}");

    assert_eq!(
        who(&v, &ec.player(29, HOUR).expect("sign")).await,
        Ok(Identity::Player { player_id: 29 })
    );
    assert_eq!(
        who(&v, &rsa.staff("staff-7", Some("Anna"), HOUR).expect("sign")).await,
        Ok(Identity::Staff {
            staff_id: "staff-7".into(),
            name: Some("Anna".into()),
            service_role: false
        })
    );
    assert_eq!(
        who(&v, &ed.player(30, HOUR).expect("sign")).await,
        Ok(Identity::Player { player_id: 30 })
    );
    // expires_at is the token's exp.
    let exp = now() + 120;
    let t = ec
        .raw(&player_claims(29, json!({"exp": exp})))
        .expect("sign");
    assert_eq!(v.verify(&t).await.expect("valid").expires_at, Some(exp));

    // Claims, each refused in plain words.
    let cases = [
        (
            json!({"iss": "https://other.supabase.co/auth/v1"}),
            AuthError::WrongIssuer,
        ),
        (json!({"iss": format!("{iss}/")}), AuthError::WrongIssuer),
        (json!({"aud": "other-app"}), AuthError::WrongAudience),
        (json!({"aud": null}), AuthError::WrongAudience),
        (json!({"nbf": now() + 86_400}), AuthError::NotYetValid),
        (json!({"exp": now() - 3600}), AuthError::Expired),
        (json!({"exp": null}), AuthError::NoExpiry),
    ];
    for (extra, expected) in cases {
        let t = ec.raw(&player_claims(29, extra.clone())).expect("sign");
        assert_eq!(who(&v, &t).await, Err(expected.clone()), "{extra}");
        assert_eq!(
            who(
                &v,
                &rsa.raw(&player_claims(29, extra.clone())).expect("sign")
            )
            .await,
            Err(expected),
            "{extra}"
        );
    }
    // A token without iss at all (a signer without an issuer adds none).
    let bare = gre_relay::auth::Minter::from_key_file(
        &crate::support::jwks::fixture("ec256-a.pem"),
        Some("ec-a"),
        None,
    )
    .expect("key");
    let t = bare.raw(&player_claims(29, json!({}))).expect("sign");
    assert_eq!(who(&v, &t).await, Err(AuthError::WrongIssuer));
    // Leeway: 10 s past exp is inside the default 30 s.
    let t = ec
        .raw(&player_claims(29, json!({"exp": now() - 10})))
        .expect("sign");
    assert!(who(&v, &t).await.is_ok());
    assert_eq!(v.leeway(), Duration::from_secs(30));
    // A kid the set holds, signed by another key.
    let impostor = signer("ec256-b.pem", "ec-a", &iss);
    assert_eq!(
        who(&v, &impostor.player(29, HOUR).expect("sign")).await,
        Err(AuthError::BadSignature)
    );
    // Texts for clients carry no library internals.
    for e in [
        AuthError::WrongIssuer,
        AuthError::BadSignature,
        AuthError::NotYetValid,
    ] {
        let text = e.to_string();
        assert!(
            !text.contains("variant") && !text.contains("Error"),
            "{text}"
        );
    }
}

/// A token whose header says one thing and whose key is another: HS256 "signed" with the public
/// key as the HMAC secret, RS256 claimed for an EC key, `none`, and a symmetric key slipped into
/// the key set.
#[tokio::test]
async fn algorithm_confusion_and_alg_none_are_refused() {
    let jwks = JwksServer::start(vec![]).await;
    let iss = jwks.issuer();
    let ec = signer("ec256-a.pem", "ec-a", &iss);
    let ec_public = public(&ec);
    let hmac_secret = "a-shared-secret-that-is-also-published";
    let oct = json!({"kty": "oct", "kid": "hs", "alg": "HS256",
        "k": base64_url(hmac_secret.as_bytes())});
    jwks.set_keys(vec![ec_public.clone(), oct]);
    let claims = player_claims(29, json!({"iss": iss}));
    let hs256_with_kid = |secret: &[u8], kid: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .expect("sign")
    };
    let public_pem =
        std::fs::read_to_string(crate::support::jwks::fixture("ec256-a.pem")).expect("pem");
    let forged = [
        hs256_with_kid(ec_public.to_string().as_bytes(), "ec-a"),
        hs256_with_kid(ec_public["x"].as_str().expect("x").as_bytes(), "ec-a"),
        hs256_with_kid(public_pem.as_bytes(), "ec-a"),
        hs256_with_kid(hmac_secret.as_bytes(), "hs"),
    ];

    // With a legacy secret configured: HS256 tokens are checked against it only.
    let with_secret = verifier(&auth_settings(&jwks, 5, 600), SECRET).await;
    assert_eq!(
        with_secret.signing_keys_health().keys,
        1,
        "the oct key is never taken"
    );
    for t in &forged {
        assert_eq!(who(&with_secret, t).await, Err(AuthError::BadSignature));
    }
    // Without one: HS256 is not accepted at all.
    let keys_only = verifier(&auth_settings(&jwks, 5, 600), "").await;
    for t in &forged {
        assert_eq!(
            who(&keys_only, t).await,
            Err(AuthError::UnsupportedAlgorithm)
        );
    }
    // The header claims RS256 for the EC key's kid.
    let rsa = signer("rsa2048.pem", "ec-a", &iss);
    assert_eq!(
        who(&keys_only, &rsa.player(29, HOUR).expect("sign")).await,
        Err(AuthError::UnsupportedAlgorithm)
    );
    // alg none, with and without a kid: refused in plain words.
    for header in [
        json!({"alg": "none"}),
        json!({"alg": "none", "kid": "ec-a"}),
        json!({"alg": "HS512"}),
    ] {
        let token = format!(
            "{}.{}.",
            base64_url(header.to_string().as_bytes()),
            base64_url(claims.to_string().as_bytes())
        );
        for v in [&with_secret, &keys_only] {
            let err = who(v, &token).await.expect_err("refused");
            assert_eq!(err, AuthError::UnsupportedAlgorithm);
            assert_eq!(err.to_string(), "unsupported algorithm");
        }
    }
    assert_eq!(
        who(&keys_only, "not.a.jwt").await,
        Err(AuthError::Malformed)
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn rotation_is_picked_up_and_a_dropped_key_is_refused_after_the_refresh() {
    let jwks = JwksServer::start(vec![]).await;
    let iss = jwks.issuer();
    let old = signer("ec256-a.pem", "key-old", &iss);
    let new = signer("ec256-b.pem", "key-new", &iss);
    jwks.set_keys(vec![public(&old)]);
    // Floor 1 s, refresh every 3 s.
    let v = verifier(&auth_settings(&jwks, 1, 3), "").await;
    let old_token = old.player(29, HOUR).expect("sign");
    let new_token = new.player(29, HOUR).expect("sign");
    assert!(who(&v, &old_token).await.is_ok());
    assert_eq!(who(&v, &new_token).await, Err(AuthError::UnknownSigningKey));

    // Supabase rotates: the new key becomes current, the old one stays as "previously used".
    jwks.set_keys(vec![public(&new), public(&old)]);
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the floor
    let before = jwks.hits();
    assert_eq!(
        who(&v, &new_token).await,
        Ok(Identity::Player { player_id: 29 })
    );
    assert_eq!(jwks.hits(), before + 1, "one fetch for the unknown kid");
    assert!(who(&v, &old_token).await.is_ok());

    // The old key is revoked: refused once the periodic refresh has seen it go.
    jwks.set_keys(vec![public(&new)]);
    let started = tokio::time::Instant::now();
    eventually(
        Duration::from_secs(8),
        "the dropped key is refused",
        || async { who(&v, &old_token).await == Err(AuthError::UnknownSigningKey) },
    )
    .await;
    assert!(
        started.elapsed() <= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(who(&v, &new_token).await.is_ok());
}

#[tokio::test]
async fn a_flood_of_unknown_kids_causes_at_most_a_couple_of_fetches() {
    let jwks = JwksServer::start(vec![]).await;
    let iss = jwks.issuer();
    let good = signer("ec256-a.pem", "good", &iss);
    jwks.set_keys(vec![public(&good)]);
    let v = verifier(&auth_settings(&jwks, 2, 600), "").await;
    assert_eq!(jwks.hits(), 1, "the start-up fetch");
    tokio::time::sleep(Duration::from_millis(2100)).await; // the floor allows one fetch again

    let junk: Vec<String> = (0..200)
        .map(|i| {
            signer("ec256-b.pem", &format!("junk-{i}"), &iss)
                .player(29, HOUR)
                .expect("sign")
        })
        .collect();
    let started = tokio::time::Instant::now();
    // 200 at once, then 200 more one after the other.
    let results = join_all(junk.iter().map(|t| who(&v, t))).await;
    assert!(results
        .iter()
        .all(|r| *r == Err(AuthError::UnknownSigningKey)));
    for t in &junk {
        assert_eq!(who(&v, t).await, Err(AuthError::UnknownSigningKey));
    }
    let fetched = jwks.hits() - 1;
    let elapsed = started.elapsed();
    println!("400 junk tokens in {elapsed:?}: {fetched} fetches");
    assert!(fetched <= 2, "{fetched} fetches for a junk flood");
    // The good key still works, without a fetch.
    assert!(who(&v, &good.player(29, HOUR).expect("sign")).await.is_ok());
}

#[tokio::test]
async fn endpoint_down_keeps_cached_keys_and_health_says_so() {
    let jwks = JwksServer::start(vec![]).await;
    let iss = jwks.issuer();
    let key = signer("ec256-a.pem", "k1", &iss);
    jwks.set_keys(vec![public(&key)]);
    jwks.set_cache_control(Some("public, max-age=1"));
    // Refresh at most every 600 s, but the endpoint's max-age of 1 s wins.
    let v = verifier(&auth_settings(&jwks, 1, 600), "").await;
    let token = key.player(29, HOUR).expect("sign");
    assert!(who(&v, &token).await.is_ok());

    jwks.set_down(true);
    eventually(
        Duration::from_secs(6),
        "health reports the failed fetch",
        || async { v.signing_keys_health().state == "stale" },
    )
    .await;
    let health = v.signing_keys_health();
    assert_eq!(health.keys, 1);
    assert_eq!(
        health.last_error.as_deref(),
        Some("the key endpoint answered HTTP 503")
    );
    assert!(health.age_seconds.is_some());
    assert!(who(&v, &token).await.is_ok(), "cached keys keep working");
    let (fetches, failures) = v.fetch_counters();
    assert!(failures.get() >= 1 && fetches.get() >= 2);

    jwks.set_down(false);
    // A failed fetch is retried within the max-age too (never faster than the floor).
    eventually(Duration::from_secs(10), "health recovers", || async {
        v.signing_keys_health().state == "ok"
    })
    .await;
}

#[tokio::test]
async fn start_with_the_endpoint_unreachable_does_not_fail() {
    let jwks = JwksServer::start(vec![]).await;
    let iss = jwks.issuer();
    let key = signer("rsa2048.pem", "r1", &iss);
    jwks.set_down(true);
    let v = verifier(&auth_settings(&jwks, 1, 600), SECRET).await;
    let health = v.signing_keys_health();
    assert_eq!(
        (health.state, health.keys),
        ("unavailable", 0),
        "{health:?}"
    );
    // The legacy secret works meanwhile.
    assert!(who(&v, &player_token(29)).await.is_ok());
    // The endpoint comes back: the first token with its kid fetches the set.
    jwks.set_keys(vec![public(&key)]);
    jwks.set_down(false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(who(&v, &key.player(29, HOUR).expect("sign")).await.is_ok());
    assert_eq!(v.signing_keys_health().state, "ok");

    // Nothing listening at all: start still succeeds, within the timeout.
    let mut auth = test_settings().auth;
    auth.supabase_url = "http://127.0.0.1:9".into();
    auth.jwks_timeout_seconds = 1;
    let v = verifier(&auth, "").await;
    let health = v.signing_keys_health();
    assert_eq!(health.state, "unavailable");
    assert_eq!(
        health.last_error.as_deref(),
        Some("could not connect to the key endpoint")
    );
}

#[tokio::test]
async fn secret_and_publishable_api_keys() {
    use hyper::header::{HeaderValue, AUTHORIZATION};
    let mut auth = test_settings().auth;
    auth.secret_keys = "sb_secret_current0123456789, sb_secret_rotating0123456789".into();
    let v = verifier(&auth, SECRET).await;
    let service = Identity::Staff {
        staff_id: "service_role".into(),
        name: None,
        service_role: true,
    };
    for key in [
        "sb_secret_current0123456789",
        "sb_secret_rotating0123456789",
    ] {
        let got = v.verify(key).await.expect("secret key");
        assert_eq!((got.identity, got.expires_at), (service.clone(), None));
    }
    assert_eq!(
        who(&v, "sb_secret_current012345678").await,
        Err(AuthError::UnknownApiKey)
    );
    assert_eq!(
        who(&v, "sb_secret_unknown").await,
        Err(AuthError::UnknownApiKey)
    );
    assert_eq!(
        who(&v, "sb_publishable_abc").await,
        Err(AuthError::PublishableKey)
    );

    let headers = |pairs: &[(&str, &str)]| {
        let mut h = hyper::HeaderMap::new();
        for (name, value) in pairs {
            h.insert(
                hyper::header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        h
    };
    let check = |pairs: &'static [(&'static str, &'static str)]| {
        let v = v.clone();
        let h = headers(pairs);
        async move { v.verify_headers(&h).await.map(|v| v.identity) }
    };
    assert_eq!(
        check(&[("apikey", "sb_secret_current0123456789")]).await,
        Ok(service.clone())
    );
    assert_eq!(
        check(&[("authorization", "Bearer sb_secret_current0123456789")]).await,
        Ok(service.clone())
    );
    assert_eq!(
        check(&[("apikey", "sb_publishable_abc")]).await,
        Err(AuthError::PublishableKey)
    );
    assert_eq!(
        check(&[("authorization", "Bearer sb_publishable_abc")]).await,
        Err(AuthError::PublishableKey)
    );
    assert_eq!(
        check(&[("authorization", "Basic dTpw")]).await,
        Err(AuthError::BadAuthorizationHeader)
    );
    assert_eq!(check(&[]).await, Err(AuthError::Missing));
    // supabase-js: the publishable key as apikey, the user's JWT as the bearer; the JWT decides.
    let mut h = headers(&[("apikey", "sb_publishable_abc")]);
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", player_token(29))).expect("value"),
    );
    assert_eq!(
        v.verify_headers(&h).await.map(|v| v.identity),
        Ok(Identity::Player { player_id: 29 })
    );
}

// ---------------------------------------------------------------------------------------------
// Through the relay: REST and WebSocket.

#[tokio::test]
async fn rest_and_websocket_accept_signing_keys_secret_keys_and_the_legacy_secret() {
    let jwks = JwksServer::start(vec![]).await;
    let iss = jwks.issuer();
    let ec = signer("ec256-a.pem", "ec-a", &iss);
    let rsa = signer("rsa2048.jwk.json", "rsa-1", &iss);
    jwks.set_keys(vec![public(&ec), public(&rsa)]);
    let mut settings = test_settings();
    settings.auth = auth_settings(&jwks, 1, 600);
    settings.auth.secret_keys = "sb_secret_relaytest0123456789".into();
    let env = TestEnv::start_with(settings).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let get = |path: &str, headers: Vec<(&'static str, String)>| {
        let mut req = http.get(env.http_url(path));
        for (name, value) in headers {
            req = req.header(name, value);
        }
        async move {
            let res = req.send().await.expect("request");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let bearer = |t: &str| vec![("authorization", format!("Bearer {t}"))];

    // REST: ES256 player, RS256 staff, legacy HS256 staff, secret key in both headers.
    let (status, body) = get(
        "/api/gre-chat/messages/29",
        bearer(&ec.player(29, HOUR).expect("sign")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(
        "/api/gre-chat/messages/30",
        bearer(&ec.player(29, HOUR).expect("sign")),
    )
    .await;
    assert_eq!(status, 403, "another player's messages");
    let admin = "/api/gre-admin/sessions";
    for headers in [
        bearer(&rsa.staff("staff-7", None, HOUR).expect("sign")),
        bearer(&staff_token("staff-8")),
        bearer("sb_secret_relaytest0123456789"),
        vec![("apikey", "sb_secret_relaytest0123456789".to_owned())],
        // supabase-js: publishable apikey plus the user's JWT.
        vec![
            ("apikey", "sb_publishable_abc".to_owned()),
            (
                "authorization",
                format!("Bearer {}", rsa.staff("staff-7", None, HOUR).expect("sign")),
            ),
        ],
    ] {
        let (status, body) = get(admin, headers.clone()).await;
        assert_eq!(status, 200, "{headers:?}: {body}");
    }
    // Refusals, in plain words.
    let wrong_iss = signer("ec256-a.pem", "ec-a", "https://evil.example/auth/v1");
    for (headers, status, code, message) in [
        (
            bearer("sb_publishable_abc"),
            403,
            "forbidden",
            "publishable key grants nothing",
        ),
        (
            vec![("apikey", "sb_publishable_abc".to_owned())],
            403,
            "forbidden",
            "publishable key grants nothing",
        ),
        (
            bearer("sb_secret_guess"),
            401,
            "unauthenticated",
            "unknown API key",
        ),
        (
            bearer(&wrong_iss.staff("staff-7", None, HOUR).expect("sign")),
            401,
            "unauthenticated",
            "wrong issuer",
        ),
        (
            bearer("eyJhbGciOiJub25lIn0.eyJleHAiOjk5OTk5OTk5OTl9."),
            401,
            "unauthenticated",
            "unsupported algorithm",
        ),
        (vec![], 401, "unauthenticated", "missing credential"),
    ] {
        let (got, body) = get(admin, headers.clone()).await;
        assert_eq!(
            (
                got,
                body["error"]["code"].as_str(),
                body["error"]["message"].as_str()
            ),
            (status, Some(code), Some(message)),
            "{headers:?}: {body}"
        );
    }

    // WebSocket: the same credentials as the authenticate token.
    let mut c = WsClient::connect(&env.ws_url()).await;
    let hello = c.authenticate(&ec.player(29, HOUR).expect("sign")).await;
    assert_eq!(
        (hello["role"].as_str(), hello["playerId"].as_i64()),
        (Some("player"), Some(29)),
        "{hello}"
    );
    let mut c = WsClient::connect(&env.ws_url()).await;
    let hello = c
        .authenticate(&rsa.staff("staff-7", Some("Anna"), HOUR).expect("sign"))
        .await;
    assert_eq!(
        (hello["role"].as_str(), hello["staffId"].as_str()),
        (Some("gre_staff"), Some("staff-7")),
        "{hello}"
    );
    let mut c = WsClient::connect(&env.ws_url()).await;
    let hello = c.authenticate("sb_secret_relaytest0123456789").await;
    assert_eq!(hello["role"], "gre_staff", "{hello}");
    let mut c = WsClient::connect(&env.ws_url()).await;
    assert_eq!(c.authenticate(&player_token(31)).await["playerId"], 31);
    let mut c = WsClient::connect(&env.ws_url()).await;
    for (token, message) in [
        (
            "sb_publishable_abc".to_owned(),
            "publishable key grants nothing",
        ),
        (
            signer("ec256-b.pem", "ec-a", &iss)
                .player(29, HOUR)
                .expect("sign"),
            "bad signature",
        ),
    ] {
        c.send_json(json!({"type": "authenticate", "token": token}))
            .await;
        let err = c.recv_type("error").await;
        assert_eq!(
            (err["code"].as_str(), err["message"].as_str()),
            (Some("unauthenticated"), Some(message)),
            "{err}"
        );
    }

    // Health and metrics report the key set.
    let (status, health) = get("/api/gre-chat/health", vec![]).await;
    assert_eq!(status, 200);
    assert_eq!(health["signingKeys"]["state"], "ok", "{health}");
    assert_eq!(health["signingKeys"]["keys"], 2, "{health}");
    let metrics = env.metrics_text().await;
    assert!(
        metrics.contains("gre_relay_signing_key_fetches_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gre_relay_signing_key_fetch_failures_total 0"),
        "{metrics}"
    );
}

/// `gre-relay token --key`: the token it prints verifies against the public JWK it prints, served
/// as a JWKS, and carries aud and iss. PEM and JWK key files alike.
#[tokio::test]
async fn the_token_command_signs_with_a_private_key() {
    let jwks = JwksServer::start(vec![]).await;
    let v = verifier(&auth_settings(&jwks, 1, 600), "").await;
    for (file, kid_arg) in [
        ("ec256-a.pem", Some("cli-ec")),
        ("rsa2048.jwk.json", None), // the JWK file's own kid
    ] {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gre-relay"));
        cmd.env_remove("DATABASE_URL")
            .env_remove("SUPABASE_JWT_SECRET")
            .env("SUPABASE_URL", jwks.base_url())
            .env("GRE_LOG", "warn")
            .args([
                "token",
                "--staff",
                "staff-9",
                "--name",
                "Ola",
                "--print-jwk",
                "--key",
            ])
            .arg(crate::support::jwks::fixture(file));
        if let Some(kid) = kid_arg {
            cmd.args(["--kid", kid]);
        }
        let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
            .await
            .expect("in time")
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut lines = stdout.lines();
        let token = lines.next().expect("token line").to_owned();
        let jwk: Value = serde_json::from_str(lines.next().expect("jwk line")).expect("jwk");
        assert!(jwk.get("d").is_none(), "no private part: {jwk}");
        jwks.set_keys(vec![jwk]);
        tokio::time::sleep(Duration::from_millis(1100)).await; // past the refetch floor
        assert_eq!(
            who(&v, &token).await,
            Ok(Identity::Staff {
                staff_id: "staff-9".into(),
                name: Some("Ola".into()),
                service_role: false
            }),
            "{file}"
        );
    }
    // Without an issuer to write, --key refuses instead of minting a token the relay refuses.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gre-relay"))
        .env_remove("SUPABASE_URL")
        .env("GRE_LOG", "warn")
        .args(["token", "--player", "29", "--kid", "k", "--key"])
        .arg(crate::support::jwks::fixture("ec256-a.pem"))
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--iss"));
}

/// A token of `player_id` (legacy secret) that runs out at `exp` (Unix seconds).
fn player_token_until(player_id: i64, exp: u64) -> String {
    gre_relay::auth::mint_raw(SECRET, &player_claims(player_id, json!({"exp": exp})))
}

#[tokio::test]
async fn a_socket_ends_at_its_tokens_expiry_unless_refreshed_by_the_same_identity() {
    let mut settings = test_settings();
    settings.auth.leeway_seconds = 1;
    let env = TestEnv::start_with(settings).await;
    let session = env.open_session(51).await;

    // Runs out at exp + leeway: about two seconds from now.
    let mut stale = WsClient::connect(&env.ws_url()).await;
    stale.authenticate(&player_token_until(51, now() + 1)).await;
    // Already past exp, but inside the leeway: accepted, and ends within the leeway.
    let mut at_the_edge = WsClient::connect(&env.ws_url()).await;
    at_the_edge
        .authenticate(&player_token_until(51, now()))
        .await;
    // Refreshed in time with a fresh token of the same player: lives on.
    let mut refreshed = WsClient::connect(&env.ws_url()).await;
    refreshed
        .authenticate(&player_token_until(51, now() + 1))
        .await;
    refreshed
        .send_json(json!({"type": "authenticate", "token": player_token_until(51, now() + 3600)}))
        .await;
    let again = refreshed.recv_type("authenticated").await;
    assert_eq!(
        (again["role"].as_str(), again["playerId"].as_i64()),
        (Some("player"), Some(51)),
        "{again}"
    );
    assert_eq!(again["sessionId"], session.to_string());
    // Another identity's token on this socket is refused and changes nothing.
    refreshed
        .send_json(json!({"type": "authenticate", "token": player_token_until(52, now() + 3600)}))
        .await;
    assert_eq!(refreshed.recv_type("error").await["code"], "forbidden");
    // So is a refused token; the socket keeps its good credential.
    refreshed
        .send_json(json!({"type": "authenticate", "token": "not-a-token"}))
        .await;
    assert_eq!(
        refreshed.recv_type("error").await["code"],
        "unauthenticated"
    );

    for (name, client) in [("stale", &mut stale), ("at the edge", &mut at_the_edge)] {
        let err = client.recv_type("error").await;
        assert_eq!(err["code"], "token_expired", "{name}: {err}");
        match client.ending().await {
            Ending::Closed(Some(code), reason) => {
                assert_eq!((code, reason.as_str()), (4003, "token expired"), "{name}")
            }
            other => panic!("{name}: expected close 4003, got {other:?}"),
        }
    }

    // The refreshed socket kept its subscription: a row written now reaches it.
    env.db()
        .await
        .execute(
            "insert into gre_chat_messages (session_id, sender, sender_id, sender_name, message) \
             values ($1, 'gre', 'staff-7', 'Anna', 'still here?')",
            &[&session],
        )
        .await
        .expect("insert");
    let m = refreshed.recv_type("chat_message").await;
    assert_eq!(m["message"]["message"], "still here?");
    refreshed.assert_alive().await;
}
