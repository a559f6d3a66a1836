//! The REST API on the relay's port, from outside: a real HTTP client (reqwest) against a relay on
//! a real PostgreSQL cluster. Auth, bodies, errors, paging, the session lifecycle, chat access and
//! the staff console's unread counts.

use crate::support::*;

use reqwest::header::{HeaderMap, ALLOW, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// A small HTTP client wrapper.

/// One answer: status, JSON body (a string when the body is not JSON) and headers.
struct Res {
    what: String,
    status: StatusCode,
    body: Value,
    headers: HeaderMap,
}

impl Res {
    /// Asserts the status and returns the body.
    #[track_caller]
    fn ok(&self, status: StatusCode) -> &Value {
        assert_eq!(
            self.status, status,
            "{}: expected {status}, got {} {}",
            self.what, self.status, self.body
        );
        &self.body
    }

    /// Asserts a contract error: the status, `{"error":{"code","message"}}` and a JSON content type.
    #[track_caller]
    fn err(&self, status: StatusCode, code: &str) {
        assert_eq!(
            (self.status, self.body["error"]["code"].as_str()),
            (status, Some(code)),
            "{}: expected {status} {code}, got {} {}",
            self.what,
            self.status,
            self.body
        );
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}: error without a message: {}",
            self.what,
            self.body
        );
        self.assert_json();
    }

    #[track_caller]
    fn assert_json(&self) {
        let ct = self
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "{}: content-type {ct:?}",
            self.what
        );
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(env: &TestEnv) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
            base: env.http_url(""),
        }
    }

    /// The general request: any method, raw Authorization header, content type and body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Res {
        let what = format!("{method} {path}");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(a) = authorization {
            req = req.header(AUTHORIZATION, a);
        }
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{what}: body: {e}"));
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Res {
            what,
            status,
            body,
            headers,
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Res {
        let auth = token.map(|t| format!("Bearer {t}"));
        self.send(Method::GET, path, auth.as_deref(), None, None)
            .await
    }

    /// A request with a JSON body (or no body at all when `body` is None).
    async fn json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let auth = token.map(|t| format!("Bearer {t}"));
        match body {
            Some(b) => {
                self.send(
                    method,
                    path,
                    auth.as_deref(),
                    Some("application/json"),
                    Some(b.to_string().into_bytes()),
                )
                .await
            }
            None => self.send(method, path, auth.as_deref(), None, None).await,
        }
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Res {
        self.json(Method::POST, path, token, Some(body)).await
    }

    async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Res {
        self.json(Method::PUT, path, token, Some(body)).await
    }

    /// A player's send, which must succeed (201); returns the body.
    async fn say(&self, player_id: i64, text: &str) -> Value {
        let t = player_token(player_id);
        let r = self
            .post("/api/gre-chat/send", Some(&t), json!({"message": text}))
            .await;
        r.ok(StatusCode::CREATED).clone()
    }

    /// The staff console's row for one session, from GET /api/gre-admin/sessions.
    async fn admin_session(&self, session: &str) -> Value {
        let r = self
            .get("/api/gre-admin/sessions", Some(&staff_token("staff-1")))
            .await;
        let body = r.ok(StatusCode::OK);
        sessions_of(body)
            .into_iter()
            .find(|s| s["id"] == session)
            .unwrap_or_else(|| panic!("session {session} not listed: {body}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

fn service_token() -> String {
    gre_relay::auth::mint_raw(
        SECRET,
        &json!({"exp": now_secs() + 3600, "role": "service_role"}),
    )
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn sessions_of(body: &Value) -> Vec<Value> {
    body["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no sessions array: {body}"))
        .clone()
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

/// Every field of the contract's message object is present (some may be null).
#[track_caller]
fn check_message(m: &Value) {
    for k in [
        "id",
        "sessionId",
        "playerId",
        "sender",
        "senderId",
        "senderName",
        "message",
        "status",
        "createdAt",
        "cursor",
        "clientMessageId",
    ] {
        assert!(m.get(k).is_some(), "message without {k}: {m}");
    }
    Uuid::parse_str(str_of(&m["id"], "id")).expect("uuid id");
    Uuid::parse_str(str_of(&m["sessionId"], "sessionId")).expect("uuid sessionId");
    assert!(m["cursor"].is_string(), "cursor: {m}");
    assert!(m["createdAt"].is_string(), "createdAt: {m}");
}

/// Every field of the contract's session object is present (some may be null).
#[track_caller]
fn check_session(s: &Value) {
    for k in [
        "id",
        "playerId",
        "status",
        "assignedGreId",
        "createdAt",
        "updatedAt",
        "closedAt",
    ] {
        assert!(s.get(k).is_some(), "session without {k}: {s}");
    }
}

/// Skips frames until a `session_updated` for `id` whose session satisfies `pred` (within WAIT).
async fn recv_session_update(ws: &mut WsClient, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(frame) = ws.recv_within(left).await else {
            panic!("no matching session_updated for {id} within {WAIT:?}; saw {seen:?}");
        };
        if frame["type"] == "session_updated" && frame["session"]["id"] == id {
            if pred(&frame["session"]) {
                check_session(&frame["session"]);
                return frame["session"].clone();
            }
            seen.push(frame["session"].clone());
        }
    }
}

/// Polls until `f` returns true, at most WAIT.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if f().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: not true within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(db: &tokio_postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.expect("count").get(0)
}

// ---------------------------------------------------------------------------------------------
// 1. Authentication and authorization.

#[tokio::test]
async fn auth_matrix_of_every_endpoint() {
    let env = TestEnv::start().await;
    let api = Api::new(&env);
    let db = env.db().await;
    let session = env.open_session(29).await.to_string();
    let other_session = env.open_session(30).await.to_string();

    // Health: anyone, no token.
    let h = api.get("/api/gre-chat/health", None).await;
    let body = h.ok(StatusCode::OK);
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["database"], "ok", "{body}");
    assert_eq!(body["listener"], "connected", "{body}");
    h.assert_json();

    // The nine endpoints that need a token, each with a body it would accept.
    let reply_body = json!({"sessionId": session, "message": "hello from staff"});
    let endpoints: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/gre-chat/send".into(),
            Some(json!({"message": "hi"})),
        ),
        (Method::GET, "/api/gre-chat/messages/29".into(), None),
        (
            Method::POST,
            "/api/gre-chat/enable-all-players".into(),
            None,
        ),
        (Method::POST, "/api/gre-chat/enable-player/29".into(), None),
        (Method::POST, "/api/gre-chat/close-session/29".into(), None),
        (Method::GET, "/api/gre-admin/sessions".into(), None),
        (
            Method::GET,
            format!("/api/gre-admin/messages/{session}"),
            None,
        ),
        (
            Method::POST,
            "/api/gre-admin/reply".into(),
            Some(reply_body.clone()),
        ),
        (
            Method::PUT,
            format!("/api/gre-admin/session/{session}/status"),
            Some(json!({"status": "closed"})),
        ),
    ];

    let expired_player = gre_relay::auth::mint_raw(
        SECRET,
        &json!({"exp": 1_000_000_000u64, "app_metadata": {"player_id": 29}}),
    );
    let expired_staff = gre_relay::auth::mint_raw(
        SECRET,
        &json!({"exp": 1_000_000_000u64, "sub": "staff-1", "app_metadata": {"role": "gre_staff"}}),
    );
    let no_exp_staff = gre_relay::auth::mint_raw(
        SECRET,
        &json!({"sub": "staff-1", "app_metadata": {"role": "gre_staff"}}),
    );
    let forged_player =
        gre_relay::auth::mint_player_token("another-secret-entirely", 29, Duration::from_secs(600));
    let forged_staff = gre_relay::auth::mint_staff_token(
        "another-secret-entirely",
        "staff-1",
        None,
        Duration::from_secs(600),
    );
    let forged_service = gre_relay::auth::mint_raw(
        "another-secret-entirely",
        &json!({"exp": now_secs() + 600, "role": "service_role"}),
    );
    let bad_headers: Vec<(String, Option<String>)> = vec![
        ("no header".into(), None),
        ("not a jwt".into(), Some("Bearer not.a.jwt".into())),
        ("empty bearer".into(), Some("Bearer ".into())),
        ("bare player id".into(), Some("Bearer 29".into())),
        (
            "not bearer".into(),
            Some(format!("Basic {}", staff_token("staff-1"))),
        ),
        (
            "expired player".into(),
            Some(format!("Bearer {expired_player}")),
        ),
        (
            "expired staff".into(),
            Some(format!("Bearer {expired_staff}")),
        ),
        ("no exp".into(), Some(format!("Bearer {no_exp_staff}"))),
        (
            "forged player".into(),
            Some(format!("Bearer {forged_player}")),
        ),
        (
            "forged staff".into(),
            Some(format!("Bearer {forged_staff}")),
        ),
        (
            "forged service".into(),
            Some(format!("Bearer {forged_service}")),
        ),
    ];
    for (method, path, body) in &endpoints {
        for (label, header) in &bad_headers {
            let (ct, bytes) = match body {
                Some(b) => (Some("application/json"), Some(b.to_string().into_bytes())),
                None => (None, None),
            };
            let r = api
                .send(method.clone(), path, header.as_deref(), ct, bytes)
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{label}: {} -> {} {}",
                r.what,
                r.status,
                r.body
            );
            r.err(StatusCode::UNAUTHORIZED, "unauthenticated");
        }
    }

    // A player token on the staff endpoints: 403.
    let p29 = player_token(29);
    for (method, path, body) in endpoints.iter().skip(2) {
        let r = api
            .json(method.clone(), path, Some(&p29), body.clone())
            .await;
        r.err(StatusCode::FORBIDDEN, "forbidden");
    }
    // Staff (and the service key, which may do what staff may) cannot send as a player.
    for t in [staff_token("staff-1"), service_token()] {
        api.post("/api/gre-chat/send", Some(&t), json!({"message": "hi"}))
            .await
            .err(StatusCode::FORBIDDEN, "forbidden");
    }

    // Nothing refused above changed anything.
    assert_eq!(
        count(&db, "select count(*) from gre_chat_messages").await,
        0
    );
    let statuses = db
        .query(
            "select status from gre_chat_sessions order by player_id",
            &[],
        )
        .await
        .expect("sessions");
    let statuses: Vec<String> = statuses.iter().map(|r| r.get(0)).collect();
    assert_eq!(statuses, ["waiting", "waiting"]);

    // Reading messages: the player itself and staff/service yes, another player no.
    api.get("/api/gre-chat/messages/29", Some(&p29))
        .await
        .ok(StatusCode::OK);
    api.get("/api/gre-chat/messages/30", Some(&p29))
        .await
        .err(StatusCode::FORBIDDEN, "forbidden");
    for t in [staff_token("staff-1"), service_token()] {
        for (player, sid) in [(29, &session), (30, &other_session)] {
            let r = api
                .get(&format!("/api/gre-chat/messages/{player}"), Some(&t))
                .await;
            assert_eq!(
                r.ok(StatusCode::OK)["sessionId"],
                sid.as_str(),
                "{}",
                r.body
            );
        }
    }
    // A player naming another player's session through ?sessionId= is refused (403 or 404).
    let r = api
        .get(
            &format!("/api/gre-chat/messages/29?sessionId={other_session}"),
            Some(&p29),
        )
        .await;
    assert!(
        matches!(r.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
        "{} -> {} {}",
        r.what,
        r.status,
        r.body
    );

    // A player id given as a string of digits is a player id; a role in user_metadata (which
    // the user may edit) grants nothing.
    let string_id = gre_relay::auth::mint_raw(
        SECRET,
        &json!({"exp": now_secs() + 600, "aud": "authenticated", "app_metadata": {"player_id": "29"}}),
    );
    let r = api.get("/api/gre-chat/messages/29", Some(&string_id)).await;
    assert_eq!(r.ok(StatusCode::OK)["sessionId"], session.as_str());
    let self_made_staff = gre_relay::auth::mint_raw(
        SECRET,
        &json!({"exp": now_secs() + 600, "aud": "authenticated", "sub": "x",
                "app_metadata": {"player_id": 29}, "user_metadata": {"role": "gre_staff"}}),
    );
    api.get("/api/gre-admin/sessions", Some(&self_made_staff))
        .await
        .err(StatusCode::FORBIDDEN, "forbidden");
    let no_role = gre_relay::auth::mint_raw(
        SECRET,
        &json!({"exp": now_secs() + 600, "aud": "authenticated", "sub": "x", "user_metadata": {"role": "gre_staff"}}),
    );
    let r = api.get("/api/gre-admin/sessions", Some(&no_role)).await;
    assert!(
        matches!(r.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
        "a token with no role: {} {}",
        r.status,
        r.body
    );

    // The service key works on staff endpoints.
    let svc = service_token();
    let r = api.get("/api/gre-admin/sessions", Some(&svc)).await;
    assert_eq!(sessions_of(r.ok(StatusCode::OK)).len(), 2, "{}", r.body);
    api.get(&format!("/api/gre-admin/messages/{session}"), Some(&svc))
        .await
        .ok(StatusCode::OK);
    let r = api
        .json(
            Method::POST,
            "/api/gre-chat/enable-player/29",
            Some(&svc),
            None,
        )
        .await;
    assert_eq!(r.ok(StatusCode::OK)["enabled"], true);
    let r = api
        .post("/api/gre-admin/reply", Some(&svc), reply_body)
        .await;
    let m = &r.ok(StatusCode::CREATED)["message"];
    check_message(m);
    assert_eq!(m["sender"], "gre");
    assert_eq!(m["sessionId"], session.as_str());
}

// ---------------------------------------------------------------------------------------------
// 2. Request bodies.

#[tokio::test]
async fn bad_bodies_are_refused_and_store_nothing() {
    let env = TestEnv::start().await;
    let api = Api::new(&env);
    let db = env.db().await;
    // Counts stored messages: no auto-reply among them.
    desk_off(&db).await;
    let auth = format!("Bearer {}", player_token(29));
    let send = |ct: Option<&'static str>, body: Vec<u8>| {
        let auth = auth.clone();
        let api = &api;
        async move {
            api.send(
                Method::POST,
                "/api/gre-chat/send",
                Some(&auth),
                ct,
                Some(body),
            )
            .await
        }
    };
    let json_ct = Some("application/json");

    // Not JSON.
    for bad in [
        &b"{\"message\": "[..],
        b"not json",
        b"{\"message\": \"hi\"} trailing",
    ] {
        send(json_ct, bad.to_vec())
            .await
            .err(StatusCode::BAD_REQUEST, "invalid_json");
    }
    // Not declared as JSON.
    let good = br#"{"message": "hi"}"#.to_vec();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        send(ct, good.clone())
            .await
            .err(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }
    // Too large (default limit 65536 bytes), even though it is valid JSON.
    let big = json!({"message": "hi", "padding": "x".repeat(70_000)}).to_string();
    send(json_ct, big.into_bytes())
        .await
        .err(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // Missing or mistyped fields.
    let r = api
        .send(Method::POST, "/api/gre-chat/send", Some(&auth), None, None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "empty body: {}",
        r.body
    );
    for body in [
        json!({}),
        json!({"clientMessageId": "c-1"}),
        json!(null),
        json!([]),
        json!("hi"),
        json!({"message": "hi", "clientMessageId": "x".repeat(201)}),
    ] {
        let r = send(json_ct, body.to_string().into_bytes()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
        let code = r.body["error"]["code"].as_str().unwrap_or("");
        assert!(
            code == "invalid_request" || code == "invalid_message",
            "{body}: {}",
            r.body
        );
    }
    // The text itself.
    for text in [
        json!(42),
        json!(null),
        json!(["hi"]),
        json!(""),
        json!("  \n\t  "),
        json!("nul \u{0000} inside"),
        json!("x".repeat(4001)),
        json!("😀".repeat(4001)),
    ] {
        let r = send(json_ct, json!({"message": text}).to_string().into_bytes()).await;
        let shown: String = text.to_string().chars().take(40).collect();
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_message")),
            "message {shown}: {}",
            r.body
        );
    }

    // The staff endpoints' bodies.
    let staff = staff_token("staff-1");
    let session = env.open_session(31).await.to_string();
    let sauth = format!("Bearer {staff}");
    let r = api
        .send(
            Method::POST,
            "/api/gre-admin/reply",
            Some(&sauth),
            Some("text/plain"),
            Some(
                json!({"sessionId": session, "message": "hi"})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    r.err(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    api.send(
        Method::POST,
        "/api/gre-admin/reply",
        Some(&sauth),
        json_ct,
        Some(b"{oops".to_vec()),
    )
    .await
    .err(StatusCode::BAD_REQUEST, "invalid_json");
    for body in [
        json!({"message": "hi"}),
        json!({"sessionId": 12, "message": "hi"}),
        json!({"sessionId": "not-a-uuid", "message": "hi"}),
    ] {
        api.post("/api/gre-admin/reply", Some(&staff), body)
            .await
            .err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
    for text in [json!(""), json!("   "), json!("x".repeat(4001))] {
        api.post(
            "/api/gre-admin/reply",
            Some(&staff),
            json!({"sessionId": session, "message": text}),
        )
        .await
        .err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_message");
    }
    let status_path = format!("/api/gre-admin/session/{session}/status");
    let r = api
        .send(Method::PUT, &status_path, Some(&sauth), None, None)
        .await;
    r.err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    for body in [
        json!({}),
        json!({"status": "open"}),
        json!({"status": 1}),
        json!({"status": "active", "assignedGreId": 7}),
    ] {
        api.put(&status_path, Some(&staff), body)
            .await
            .err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
    api.send(
        Method::PUT,
        &status_path,
        Some(&sauth),
        Some("text/plain"),
        Some(br#"{"status":"closed"}"#.to_vec()),
    )
    .await
    .err(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    // None of that stored anything, nor opened a session for player 29, nor changed 31's.
    assert_eq!(
        count(&db, "select count(*) from gre_chat_messages").await,
        0
    );
    assert_eq!(
        count(
            &db,
            "select count(*) from gre_chat_sessions where player_id = 29"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &db,
            "select count(*) from gre_chat_sessions where player_id = 31 and status = 'waiting' and assigned_gre_id is null"
        )
        .await,
        1
    );

    // A content type with parameters is fine.
    let r = send(
        Some("application/json; charset=utf-8"),
        json!({"message": "with charset"}).to_string().into_bytes(),
    )
    .await;
    assert_eq!(
        r.ok(StatusCode::CREATED)["message"]["message"],
        "with charset"
    );

    // 4000 emoji (16,000 bytes) are accepted and stored whole.
    let text = "😀".repeat(4000);
    let r = send(json_ct, json!({"message": text}).to_string().into_bytes()).await;
    let m = &r.ok(StatusCode::CREATED)["message"];
    check_message(m);
    assert_eq!(m["message"].as_str().map(|s| s.chars().count()), Some(4000));
    let id: Uuid = str_of(&m["id"], "id").parse().expect("uuid");
    let row = db
        .query_one(
            "select message, char_length(message) from gre_chat_messages where id = $1",
            &[&id],
        )
        .await
        .expect("stored");
    assert_eq!(row.get::<_, String>(0), text);
    assert_eq!(row.get::<_, i32>(1), 4000);
    assert_eq!(
        count(&db, "select count(*) from gre_chat_messages").await,
        2
    );

    // A mistyped field other than the text is a request error, not a message error.
    send(
        json_ct,
        json!({"message": "hi", "clientMessageId": 5})
            .to_string()
            .into_bytes(),
    )
    .await
    .err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(
        count(&db, "select count(*) from gre_chat_messages").await,
        2
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Unknown paths and wrong methods.

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let env = TestEnv::start().await;
    let api = Api::new(&env);
    let staff = staff_token("staff-1");
    let auth = format!("Bearer {staff}");

    for (method, path) in [
        (Method::GET, "/nothing-here"),
        (Method::GET, "/api/gre-chat/nope"),
        (Method::POST, "/api/gre-admin/unknown"),
        (Method::GET, "/api/gre-chat/messages/29/extra"),
        (Method::DELETE, "/api/whatever"),
    ] {
        api.send(method.clone(), path, None, None, None)
            .await
            .err(StatusCode::NOT_FOUND, "not_found");
        api.send(method, path, Some(&auth), None, None)
            .await
            .err(StatusCode::NOT_FOUND, "not_found");
    }

    let sid = Uuid::new_v4();
    let status_path = format!("/api/gre-admin/session/{sid}/status");
    let admin_messages = format!("/api/gre-admin/messages/{sid}");
    for (method, path, allowed) in [
        (Method::GET, "/api/gre-chat/send", "POST"),
        (Method::PUT, "/api/gre-chat/send", "POST"),
        (Method::POST, "/api/gre-chat/messages/29", "GET"),
        (Method::GET, "/api/gre-chat/enable-all-players", "POST"),
        (Method::DELETE, "/api/gre-chat/enable-player/29", "POST"),
        (Method::GET, "/api/gre-chat/close-session/29", "POST"),
        (Method::DELETE, "/api/gre-admin/sessions", "GET"),
        (Method::PUT, admin_messages.as_str(), "GET"),
        (Method::GET, "/api/gre-admin/reply", "POST"),
        (Method::GET, status_path.as_str(), "PUT"),
        (Method::POST, status_path.as_str(), "PUT"),
        (Method::POST, "/api/gre-chat/health", "GET"),
        (Method::POST, "/ws", "GET"),
    ] {
        let r = api.send(method, path, Some(&auth), None, None).await;
        r.err(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        let allow = r
            .headers
            .get(ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{}: no Allow header", r.what));
        assert!(
            allow.split(',').any(|m| m.trim() == allowed),
            "{}: Allow {allow:?} lacks {allowed}",
            r.what
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Sending, idempotent retries and paging.

#[tokio::test]
async fn send_is_idempotent_and_pages_walk_every_message_once() {
    let env = TestEnv::start().await;
    let api = Api::new(&env);
    let db = env.db().await;
    let p = player_token(29);
    let mut staff_ws = env.staff("staff-1").await;

    // The first message opens a waiting session.
    let r = api
        .post(
            "/api/gre-chat/send",
            Some(&p),
            json!({"message": "m1", "clientMessageId": "c-1"}),
        )
        .await;
    let first = r.ok(StatusCode::CREATED).clone();
    let m = &first["message"];
    check_message(m);
    let session = str_of(&first["sessionId"], "sessionId").to_owned();
    assert_eq!(m["sessionId"], session.as_str());
    assert_eq!(m["playerId"], 29);
    assert_eq!(m["sender"], "player");
    assert_eq!(m["message"], "m1");
    assert_eq!(m["status"], "sent");
    assert_eq!(m["clientMessageId"], "c-1");
    let sid: Uuid = session.parse().expect("uuid");
    let status: String = db
        .query_one(
            "select status from gre_chat_sessions where id = $1",
            &[&sid],
        )
        .await
        .expect("session row")
        .get(0);
    assert_eq!(status, "waiting");
    // Staff sockets receive it.
    let seen = staff_ws.recv_type("chat_message").await;
    assert_eq!(seen["message"]["id"], m["id"], "{seen}");

    // A retry: 200, the same message, stored once (and not delivered again).
    let r = api
        .post(
            "/api/gre-chat/send",
            Some(&p),
            json!({"message": "m1", "clientMessageId": "c-1"}),
        )
        .await;
    let again = r.ok(StatusCode::OK);
    assert_eq!(again["message"]["id"], m["id"], "{again}");
    assert_eq!(again["sessionId"], session.as_str());
    assert_eq!(
        count(
            &db,
            "select count(*) from gre_chat_messages where client_message_id = 'c-1'"
        )
        .await,
        1
    );
    staff_ws
        .expect_no("chat_message", Duration::from_millis(300))
        .await;

    for i in 2..=25 {
        let body = api.say(29, &format!("m{i}")).await;
        assert_eq!(body["sessionId"], session.as_str(), "one open session");
    }
    assert_eq!(
        count(&db, "select count(*) from gre_chat_messages").await,
        25
    );
    let expected: Vec<String> = (1..=25).map(|i| format!("m{i}")).collect();

    // Walk pages of 7, for the player and for staff through both endpoints.
    let staff = staff_token("staff-1");
    for (token, base) in [
        (&p, "/api/gre-chat/messages/29?limit=7".to_owned()),
        (&staff, "/api/gre-chat/messages/29?limit=7".to_owned()),
        (&staff, format!("/api/gre-admin/messages/{session}?limit=7")),
    ] {
        let mut texts = Vec::new();
        let mut ids = HashSet::new();
        let mut sizes = Vec::new();
        let mut since: Option<String> = None;
        for _ in 0..10 {
            let path = match &since {
                Some(s) => format!("{base}&since={s}"),
                None => base.clone(),
            };
            let r = api.get(&path, Some(token)).await;
            let page = r.ok(StatusCode::OK).clone();
            assert_eq!(page["sessionId"], session.as_str(), "{path}: {page}");
            let msgs = page["messages"].as_array().expect("messages").clone();
            sizes.push(msgs.len());
            for m in &msgs {
                check_message(m);
                assert!(ids.insert(m["id"].clone()), "{path}: duplicate {m}");
                texts.push(m["message"].as_str().expect("text").to_owned());
            }
            let last = msgs.last().expect("a non-empty page");
            assert_eq!(page["nextCursor"], last["cursor"], "{path}: {page}");
            since = Some(str_of(&page["nextCursor"], "nextCursor").to_owned());
            if page["hasMore"] == false {
                break;
            }
            assert_eq!(page["hasMore"], true, "{path}: {page}");
        }
        assert_eq!(sizes, [7, 7, 7, 4], "{base}");
        assert_eq!(texts, expected, "{base}");

        // Past the end: nothing, and the cursor stays where it was.
        let end = since.expect("cursor");
        let path = format!("{base}&since={end}");
        let r = api.get(&path, Some(token)).await;
        let page = r.ok(StatusCode::OK);
        assert_eq!(page["messages"], json!([]), "{path}: {page}");
        assert_eq!(page["nextCursor"], end.as_str(), "{path}: {page}");
        assert_eq!(page["hasMore"], false, "{path}: {page}");
    }

    // Default limit 50: all 25 at once.
    let r = api.get("/api/gre-chat/messages/29", Some(&p)).await;
    let page = r.ok(StatusCode::OK);
    assert_eq!(
        page["messages"].as_array().map(Vec::len),
        Some(25),
        "{page}"
    );
    assert_eq!(page["hasMore"], false);
    // Naming the session explicitly gives the same.
    let r = api
        .get(
            &format!("/api/gre-chat/messages/29?sessionId={session}&limit=200"),
            Some(&p),
        )
        .await;
    assert_eq!(
        r.ok(StatusCode::OK)["messages"].as_array().map(Vec::len),
        Some(25)
    );
    let r = api
        .get(
            &format!("/api/gre-chat/messages/29?sessionId={}", Uuid::new_v4()),
            Some(&p),
        )
        .await;
    assert!(
        matches!(r.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
        "{} {}",
        r.status,
        r.body
    );

    // Bad parameters.
    for q in [
        "limit=0",
        "limit=201",
        "limit=-1",
        "limit=abc",
        "since=abc",
        "since=-5",
    ] {
        api.get(&format!("/api/gre-chat/messages/29?{q}"), Some(&p))
            .await
            .err(StatusCode::BAD_REQUEST, "invalid_request");
        api.get(
            &format!("/api/gre-admin/messages/{session}?{q}"),
            Some(&staff),
        )
        .await
        .err(StatusCode::BAD_REQUEST, "invalid_request");
    }
    api.get("/api/gre-chat/messages/abc", Some(&staff))
        .await
        .err(StatusCode::BAD_REQUEST, "invalid_request");
    api.get("/api/gre-admin/messages/not-a-uuid", Some(&staff))
        .await
        .err(StatusCode::BAD_REQUEST, "invalid_request");
    api.get(
        &format!("/api/gre-admin/messages/{}", Uuid::new_v4()),
        Some(&staff),
    )
    .await
    .err(StatusCode::NOT_FOUND, "not_found");

    // A player who never chatted: no session.
    let r = api.get("/api/gre-chat/messages/555", Some(&staff)).await;
    let page = r.ok(StatusCode::OK);
    assert_eq!(page["sessionId"], Value::Null, "{page}");
    assert_eq!(page["messages"], json!([]), "{page}");
    assert_eq!(page["nextCursor"], Value::Null, "{page}");
    assert_eq!(page["hasMore"], false, "{page}");
}

// ---------------------------------------------------------------------------------------------
// 5. A session's life: waiting, active, assigned, closed, and a new one.

#[tokio::test]
async fn session_lifecycle_over_rest_reaches_staff_sockets() {
    let env = TestEnv::start().await;
    let api = Api::new(&env);
    let db = env.db().await;
    // Follows each assignment change itself: no automatic assignment.
    desk_off(&db).await;
    let staff = staff_token("staff-1");
    let mut staff_ws = env.staff("staff-1").await;

    // The player's first message opens a waiting session; staff sockets hear of it.
    let first = api.say(29, "hello").await;
    let s1 = str_of(&first["sessionId"], "sessionId").to_owned();
    recv_session_update(&mut staff_ws, &s1, |s| s["status"] == "waiting").await;
    assert_eq!(api.admin_session(&s1).await["status"], "waiting");
    // A player socket opened now is subscribed to that session.
    let mut player_ws = env.player(29).await;

    // The first GRE reply makes it active.
    let r = api
        .post(
            "/api/gre-admin/reply",
            Some(&staff),
            json!({"sessionId": s1, "message": "Hi, how can I help?", "clientMessageId": "r-1"}),
        )
        .await;
    let reply = r.ok(StatusCode::CREATED)["message"].clone();
    check_message(&reply);
    assert_eq!(reply["sender"], "gre");
    assert_eq!(reply["senderId"], "staff-1");
    assert_eq!(reply["sessionId"], s1.as_str());
    assert_eq!(reply["playerId"], 29);
    assert_eq!(reply["message"], "Hi, how can I help?");
    recv_session_update(&mut staff_ws, &s1, |s| s["status"] == "active").await;
    assert_eq!(api.admin_session(&s1).await["status"], "active");
    let got = player_ws.recv_type("chat_message").await;
    assert_eq!(got["message"]["id"], reply["id"], "{got}");
    // A retried reply: 200, the same message, stored once.
    let r = api
        .post(
            "/api/gre-admin/reply",
            Some(&staff),
            json!({"sessionId": s1, "message": "Hi, how can I help?", "clientMessageId": "r-1"}),
        )
        .await;
    assert_eq!(r.ok(StatusCode::OK)["message"]["id"], reply["id"]);
    assert_eq!(
        count(
            &db,
            "select count(*) from gre_chat_messages where client_message_id = 'r-1'"
        )
        .await,
        1
    );

    // Assignment.
    let r = api
        .put(
            &format!("/api/gre-admin/session/{s1}/status"),
            Some(&staff),
            json!({"status": "active", "assignedGreId": "staff-1"}),
        )
        .await;
    let s = &r.ok(StatusCode::OK)["session"];
    check_session(s);
    assert_eq!(s["assignedGreId"], "staff-1", "{s}");
    assert_eq!(s["status"], "active", "{s}");
    recv_session_update(&mut staff_ws, &s1, |s| s["assignedGreId"] == "staff-1").await;
    assert_eq!(api.admin_session(&s1).await["assignedGreId"], "staff-1");

    // Closing.
    let r = api
        .json(
            Method::POST,
            "/api/gre-chat/close-session/29",
            Some(&staff),
            None,
        )
        .await;
    let s = &r.ok(StatusCode::OK)["session"];
    check_session(s);
    assert_eq!(s["id"], s1.as_str());
    assert_eq!(s["status"], "closed");
    assert!(s["closedAt"].is_string(), "closedAt set: {s}");
    recv_session_update(&mut staff_ws, &s1, |s| s["status"] == "closed").await;
    recv_session_update(&mut player_ws, &s1, |s| s["status"] == "closed").await;
    // With no open session, the player's messages are those of its most recent one.
    let r = api
        .get("/api/gre-chat/messages/29", Some(&player_token(29)))
        .await;
    let page = r.ok(StatusCode::OK);
    assert_eq!(page["sessionId"], s1.as_str(), "{page}");
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(2), "{page}");
    api.json(
        Method::POST,
        "/api/gre-chat/close-session/abc",
        Some(&staff),
        None,
    )
    .await
    .err(StatusCode::BAD_REQUEST, "invalid_request");
    api.json(
        Method::POST,
        "/api/gre-chat/close-session/29",
        Some(&staff),
        None,
    )
    .await
    .err(StatusCode::NOT_FOUND, "not_found");
    api.post(
        "/api/gre-admin/reply",
        Some(&staff),
        json!({"sessionId": s1, "message": "too late"}),
    )
    .await
    .err(StatusCode::CONFLICT, "session_closed");
    assert_eq!(
        count(
            &db,
            "select count(*) from gre_chat_messages where message = 'too late'"
        )
        .await,
        0
    );

    // The player's next message opens a new session.
    let again = api.say(29, "back again").await;
    let s2 = str_of(&again["sessionId"], "sessionId").to_owned();
    assert_ne!(s1, s2);
    recv_session_update(&mut staff_ws, &s2, |s| s["status"] == "waiting").await;
    let r = api
        .get("/api/gre-chat/messages/29", Some(&player_token(29)))
        .await;
    let page = r.ok(StatusCode::OK);
    assert_eq!(page["sessionId"], s2.as_str(), "the open session: {page}");
    assert_eq!(page["messages"][0]["message"], "back again", "{page}");
    // The old one is still readable by naming it.
    let r = api
        .get(
            &format!("/api/gre-chat/messages/29?sessionId={s1}"),
            Some(&player_token(29)),
        )
        .await;
    let page = r.ok(StatusCode::OK);
    assert_eq!(page["sessionId"], s1.as_str(), "{page}");
    assert_eq!(page["messages"][1]["id"], reply["id"], "{page}");

    // The console: status filters, last message and unread count.
    let r = api
        .get("/api/gre-admin/sessions?status=closed", Some(&staff))
        .await;
    let closed = sessions_of(r.ok(StatusCode::OK));
    assert_eq!(closed.len(), 1, "{}", r.body);
    let old = &closed[0];
    check_session(old);
    assert_eq!(old["id"], s1.as_str());
    assert_eq!(old["playerId"], 29);
    assert_eq!(old["status"], "closed");
    assert_eq!(old["assignedGreId"], "staff-1");
    assert!(old["closedAt"].is_string(), "{old}");
    check_message(&old["lastMessage"]);
    assert_eq!(
        old["lastMessage"]["message"], "Hi, how can I help?",
        "{old}"
    );
    assert_eq!(old["unreadCount"], 1, "the player's 'hello': {old}");

    let r = api
        .get("/api/gre-admin/sessions?status=waiting", Some(&staff))
        .await;
    let waiting = sessions_of(r.ok(StatusCode::OK));
    assert_eq!(waiting.len(), 1, "{}", r.body);
    assert_eq!(waiting[0]["id"], s2.as_str());
    assert_eq!(waiting[0]["lastMessage"]["message"], "back again");
    assert_eq!(waiting[0]["unreadCount"], 1);
    let r = api
        .get("/api/gre-admin/sessions?status=active", Some(&staff))
        .await;
    assert_eq!(sessions_of(r.ok(StatusCode::OK)).len(), 0, "{}", r.body);
    let r = api.get("/api/gre-admin/sessions", Some(&staff)).await;
    let all: Vec<Value> = sessions_of(r.ok(StatusCode::OK))
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    assert_eq!(all, [json!(s2), json!(s1)], "most recent activity first");
    let r = api
        .get("/api/gre-admin/sessions?limit=1", Some(&staff))
        .await;
    assert_eq!(sessions_of(r.ok(StatusCode::OK)).len(), 1, "{}", r.body);
    api.get("/api/gre-admin/sessions?status=bogus", Some(&staff))
        .await
        .err(StatusCode::BAD_REQUEST, "invalid_request");

    // Unknown sessions, and reopening while another one is open.
    let unknown = Uuid::new_v4();
    api.post(
        "/api/gre-admin/reply",
        Some(&staff),
        json!({"sessionId": unknown, "message": "anyone?"}),
    )
    .await
    .err(StatusCode::NOT_FOUND, "not_found");
    api.put(
        &format!("/api/gre-admin/session/{unknown}/status"),
        Some(&staff),
        json!({"status": "closed"}),
    )
    .await
    .err(StatusCode::NOT_FOUND, "not_found");
    api.put(
        &format!("/api/gre-admin/session/{s1}/status"),
        Some(&staff),
        json!({"status": "waiting"}),
    )
    .await
    .err(StatusCode::CONFLICT, "conflict");

    // A raw SQL status change reaches staff and the session's player.
    let mut player_ws = env.player(29).await;
    let s2_id: Uuid = s2.parse().expect("uuid");
    db.execute(
        "update gre_chat_sessions set status = 'closed' where id = $1",
        &[&s2_id],
    )
    .await
    .expect("update");
    let s = recv_session_update(&mut staff_ws, &s2, |s| s["status"] == "closed").await;
    assert_eq!(s["playerId"], 29);
    recv_session_update(&mut player_ws, &s2, |s| s["status"] == "closed").await;

    // With no session open, the closed one may be reopened through the API.
    let r = api
        .put(
            &format!("/api/gre-admin/session/{s1}/status"),
            Some(&staff),
            json!({"status": "active", "assignedGreId": null}),
        )
        .await;
    let s = &r.ok(StatusCode::OK)["session"];
    assert_eq!(s["status"], "active", "{s}");
    assert_eq!(s["assignedGreId"], Value::Null, "{s}");
    assert_eq!(s["closedAt"], Value::Null, "reopened: {s}");
    recv_session_update(&mut staff_ws, &s1, |s| {
        s["status"] == "active" && s["assignedGreId"].is_null()
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 6. Chat access when chat is off by default.

#[tokio::test]
async fn chat_access_is_granted_per_player_and_to_all() {
    let mut settings = test_settings();
    settings.chat.enabled_by_default = false;
    let env = TestEnv::start_with(settings).await;
    let api = Api::new(&env);
    let db = env.db().await;
    let staff = staff_token("staff-1");

    async fn refused(api: &Api, env: &TestEnv, player: i64) {
        api.post(
            "/api/gre-chat/send",
            Some(&player_token(player)),
            json!({"message": "may I?"}),
        )
        .await
        .err(StatusCode::FORBIDDEN, "chat_disabled");
        let mut ws = env.player(player).await;
        ws.send_json(json!({"type": "send_message", "message": "may I?"}))
            .await;
        let err = ws.recv_type("error").await;
        assert_eq!(err["code"], "chat_disabled", "player {player}: {err}");
    }
    async fn allowed(api: &Api, env: &TestEnv, player: i64) {
        api.say(player, "hello over REST").await;
        let mut ws = env.player(player).await;
        ws.send_json(json!({"type": "send_message", "message": "hello over WS"}))
            .await;
        let ack = ws.recv_type("message_sent").await;
        assert_eq!(ack["message"]["playerId"], player, "{ack}");
    }

    refused(&api, &env, 29).await;
    refused(&api, &env, 30).await;
    assert_eq!(
        count(&db, "select count(*) from gre_chat_messages").await,
        0
    );
    assert_eq!(
        count(&db, "select count(*) from gre_chat_sessions").await,
        0
    );

    // Enabling one player enables that one only.
    let r = api
        .json(
            Method::POST,
            "/api/gre-chat/enable-player/29",
            Some(&staff),
            None,
        )
        .await;
    let body = r.ok(StatusCode::OK);
    assert_eq!(body["enabled"], true, "{body}");
    assert_eq!(body["playerId"], 29, "{body}");
    allowed(&api, &env, 29).await;
    refused(&api, &env, 30).await;
    api.json(
        Method::POST,
        "/api/gre-chat/enable-player/abc",
        Some(&staff),
        None,
    )
    .await
    .err(StatusCode::BAD_REQUEST, "invalid_request");

    // Enabling all players, with an empty body and no content type.
    let r = api
        .json(
            Method::POST,
            "/api/gre-chat/enable-all-players",
            Some(&staff),
            None,
        )
        .await;
    let body = r.ok(StatusCode::OK);
    assert_eq!(body["enabled"], true, "{body}");
    assert_eq!(body["scope"], "all", "{body}");
    allowed(&api, &env, 30).await;
    allowed(&api, &env, 777).await; // never seen before
    allowed(&api, &env, 29).await;
}

// ---------------------------------------------------------------------------------------------
// 7. Unread counts on the staff console.

#[tokio::test]
async fn unread_counts_drop_when_staff_marks_messages_read() {
    let env = TestEnv::start().await;
    let api = Api::new(&env);
    let staff = staff_token("staff-1");

    let m1 = api.say(29, "one").await;
    let s = str_of(&m1["sessionId"], "sessionId").to_owned();
    let m2 = api.say(29, "two").await;
    let m3 = api.say(29, "three").await;
    let other = api.say(30, "someone else").await;
    let other_s = str_of(&other["sessionId"], "sessionId").to_owned();

    let row = api.admin_session(&s).await;
    assert_eq!(row["unreadCount"], 3, "{row}");
    assert_eq!(row["lastMessage"]["message"], "three", "{row}");
    assert_eq!(api.admin_session(&other_s).await["unreadCount"], 1);
    let order = || async {
        let r = api.get("/api/gre-admin/sessions", Some(&staff)).await;
        sessions_of(r.ok(StatusCode::OK))
            .iter()
            .map(|s| str_of(&s["id"], "id").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(order().await, [other_s.clone(), s.clone()]);
    api.get("/api/gre-admin/sessions?limit=0", Some(&staff))
        .await
        .err(StatusCode::BAD_REQUEST, "invalid_request");

    // GRE messages do not count.
    api.post(
        "/api/gre-admin/reply",
        Some(&staff),
        json!({"sessionId": s, "message": "reading now"}),
    )
    .await
    .ok(StatusCode::CREATED);
    let row = api.admin_session(&s).await;
    assert_eq!(row["unreadCount"], 3, "{row}");
    assert_eq!(row["lastMessage"]["message"], "reading now", "{row}");
    // The reply is the most recent activity: that session comes first now.
    assert_eq!(order().await, [s.clone(), other_s.clone()]);

    // Staff marks up to "two" read over the WebSocket; the player hears of it.
    let mut player_ws = env.player(29).await;
    let mut staff_ws = env.staff("staff-1").await;
    staff_ws
        .send_json(json!({"type": "mark_read", "sessionId": s, "upTo": m2["message"]["id"]}))
        .await;
    let read = player_ws.recv_type("messages_read").await;
    assert_eq!(read["sessionId"], s.as_str(), "{read}");
    assert_eq!(read["reader"], "gre", "{read}");
    eventually("unread 3 -> 1", || async {
        api.admin_session(&s).await["unreadCount"] == 1
    })
    .await;

    staff_ws
        .send_json(json!({"type": "mark_read", "sessionId": s, "upTo": m3["message"]["id"]}))
        .await;
    player_ws.recv_type("messages_read").await;
    eventually("unread 1 -> 0", || async {
        api.admin_session(&s).await["unreadCount"] == 0
    })
    .await;
    // Messages show as read to the player too; the other session is untouched.
    let r = api
        .get("/api/gre-chat/messages/29", Some(&player_token(29)))
        .await;
    let statuses: Vec<&Value> = r.ok(StatusCode::OK)["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["sender"] == "player")
        .map(|m| &m["status"])
        .collect();
    assert_eq!(statuses, [&json!("read"); 3], "{}", r.body);
    assert_eq!(api.admin_session(&other_s).await["unreadCount"], 1);

    // A REST reply reaches the player's socket.
    api.post(
        "/api/gre-admin/reply",
        Some(&staff),
        json!({"sessionId": s, "message": "one more thing"}),
    )
    .await
    .ok(StatusCode::CREATED);
    let got = player_ws.recv_type("chat_message").await;
    assert_eq!(got["message"]["message"], "one more thing", "{got}");
    assert_eq!(got["message"]["sender"], "gre", "{got}");
}

// ---------------------------------------------------------------------------------------------
// 8. Concurrency: simultaneous first messages and simultaneous retries.

#[tokio::test]
async fn concurrent_sends_share_one_session_and_retries_store_once() {
    let env = TestEnv::start().await;
    let api = Api::new(&env);
    let db = env.db().await;
    // Counts stored messages: no auto-reply among them.
    desk_off(&db).await;
    let p = player_token(29);

    // Ten first messages at once: all stored, all in one session.
    let sends = (0..10).map(|i| {
        api.post(
            "/api/gre-chat/send",
            Some(&p),
            json!({"message": format!("burst {i}")}),
        )
    });
    let results = futures_util::future::join_all(sends).await;
    let mut sessions = HashSet::new();
    for r in &results {
        sessions.insert(r.ok(StatusCode::CREATED)["sessionId"].clone());
    }
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(
        count(&db, "select count(*) from gre_chat_sessions").await,
        1
    );
    assert_eq!(
        count(&db, "select count(*) from gre_chat_messages").await,
        10
    );

    // Ten copies of one retry at once: one row, one id, one 201.
    let retries = (0..10).map(|_| {
        api.post(
            "/api/gre-chat/send",
            Some(&p),
            json!({"message": "once", "clientMessageId": "same"}),
        )
    });
    let results = futures_util::future::join_all(retries).await;
    let mut ids = HashSet::new();
    let mut created = 0;
    for r in &results {
        assert!(
            matches!(r.status, StatusCode::CREATED | StatusCode::OK),
            "{} {}",
            r.status,
            r.body
        );
        if r.status == StatusCode::CREATED {
            created += 1;
        }
        ids.insert(r.body["message"]["id"].clone());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(created, 1);
    assert_eq!(
        count(
            &db,
            "select count(*) from gre_chat_messages where client_message_id = 'same'"
        )
        .await,
        1
    );
}

// ---------------------------------------------------------------------------------------------
// 9. A player's socket, open before its first message, follows the session that message opened.

#[tokio::test]
async fn a_players_open_socket_follows_the_session_its_rest_message_opened() {
    let env = TestEnv::start().await;
    let api = Api::new(&env);
    let mut player_ws = env.player(29).await; // no session yet
    let sent = api.say(29, "hello over REST").await;
    let session = str_of(&sent["sessionId"], "sessionId").to_owned();
    api.post(
        "/api/gre-admin/reply",
        Some(&staff_token("staff-1")),
        json!({"sessionId": session, "message": "hello over REST too"}),
    )
    .await
    .ok(StatusCode::CREATED);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = player_ws.recv_within(left).await.unwrap_or_else(|| {
            panic!("the player's socket never got the GRE reply of the session its REST message opened")
        });
        if frame["type"] == "chat_message" && frame["message"]["sender"] == "gre" {
            assert_eq!(frame["message"]["sessionId"], session.as_str());
            break;
        }
    }
}

#[tokio::test]
async fn rest_writes_are_rate_limited_per_caller_with_429() {
    let mut settings = test_settings();
    settings.websocket.frames_per_second = 1.0;
    settings.websocket.frames_burst = 3.0;
    let env = TestEnv::start_with(settings).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let send = |token: String| {
        let client = client.clone();
        let url = env.http_url("/api/gre-chat/send");
        async move {
            let res = client
                .post(url)
                .bearer_auth(token)
                .json(&serde_json::json!({"message": "hello"}))
                .send()
                .await
                .expect("send");
            let status = res.status();
            let body: serde_json::Value = res.json().await.expect("json");
            (status.as_u16(), body)
        }
    };
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(send(player_token(90)).await);
    }
    let limited: Vec<_> = statuses.iter().filter(|(s, _)| *s == 429).collect();
    assert!(limited.len() >= 2, "{statuses:?}");
    assert_eq!(limited[0].1["error"]["code"], "rate_limited");
    // Another player is not slowed down by the first one, and reads are never limited.
    assert!(matches!(send(player_token(91)).await.0, 200 | 201));
    let read = client
        .get(env.http_url("/api/gre-chat/messages/90"))
        .bearer_auth(player_token(90))
        .send()
        .await
        .expect("read");
    assert_eq!(read.status(), 200);
}
