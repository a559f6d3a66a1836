//! The port under abuse, and the browser's rules: slow and oversized HTTP, connection budgets
//! (plain HTTP, unauthenticated sockets, sockets per identity), CORS and allowed origins on
//! upgrades, and the contract's first-frame rule.

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn tcp(env: &TestEnv) -> TcpStream {
    tokio::time::timeout(WAIT, TcpStream::connect(env.relay().local_addr()))
        .await
        .expect("connect timed out")
        .expect("connect")
}

/// Reads until the server closes the connection (or `limit` passes: then None).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

async fn health_ok(env: &TestEnv) -> bool {
    let client = reqwest::Client::new();
    matches!(
        tokio::time::timeout(WAIT, client.get(env.http_url("/api/gre-chat/health")).send()).await,
        Ok(Ok(res)) if res.status() == 200
    )
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_cut() {
    let mut settings = test_settings();
    settings.server.header_read_timeout_seconds = 1;
    let env = TestEnv::start_with(settings).await;

    // A client trickling a header line every 300 ms never finishes its request head.
    let mut slow = tcp(&env).await;
    slow.write_all(b"GET /api/gre-chat/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = tokio::time::Instant::now();
    let trickle = async {
        for i in 0..40 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), trickle)
        .await
        .expect("trickle bounded");
    let closed = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "a slow header was allowed to go on");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "cut only after {:?}",
        started.elapsed()
    );

    // An idle keep-alive connection is closed after its response, once the timeout passes.
    let mut idle = tcp(&env).await;
    idle.write_all(b"GET /api/gre-chat/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let got = read_until_closed(&mut idle, Duration::from_secs(6))
        .await
        .expect("idle keep-alive connection was never closed");
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn oversized_heads_get_431_and_oversized_bodies_a_readable_413() {
    let env = TestEnv::start().await;

    // A 500 KB header.
    let mut big = tcp(&env).await;
    let head = format!(
        "GET /api/gre-chat/health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(500_000)
    );
    let _ = big.write_all(head.as_bytes()).await;
    let answer = read_until_closed(&mut big, WAIT).await.unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );

    // A 1 MiB body, declared and undeclared (chunked): the client reads a 413 with the
    // contract's error body instead of a reset connection.
    let client = reqwest::Client::new();
    let body = format!("{{\"message\": \"{}\"}}", "x".repeat(1 << 20));
    let res = tokio::time::timeout(
        WAIT,
        client
            .post(env.http_url("/api/gre-chat/send"))
            .bearer_auth(player_token(29))
            .header("content-type", "application/json")
            .body(body.clone())
            .send(),
    )
    .await
    .expect("timed out")
    .expect("the 413 must be readable, not a reset");
    assert_eq!(res.status(), 413);
    let err: Value = res.json().await.expect("json error body");
    assert_eq!(err["error"]["code"], "payload_too_large");

    let mut chunked = tcp(&env).await;
    let head = format!(
        "POST /api/gre-chat/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        player_token(29)
    );
    chunked.write_all(head.as_bytes()).await.expect("head");
    for chunk in body.as_bytes().chunks(64 * 1024) {
        let frame = format!("{:x}\r\n", chunk.len());
        chunked.write_all(frame.as_bytes()).await.expect("chunk");
        chunked.write_all(chunk).await.expect("chunk");
        chunked.write_all(b"\r\n").await.expect("chunk");
    }
    chunked.write_all(b"0\r\n\r\n").await.expect("end");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, chunked.read(&mut answer))
        .await
        .expect("timed out")
        .expect("the 413 must be readable, not a reset");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    // Nothing was stored, and the relay still serves.
    let db = env.db().await;
    let n: i64 = db
        .query_one("select count(*) from gre_chat_messages", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0);
    assert!(health_ok(&env).await);
}

#[tokio::test]
async fn plain_http_connections_beyond_their_budget_are_closed_at_once() {
    let mut settings = test_settings();
    settings.server.max_http_connections = 5;
    let env = TestEnv::start_with(settings).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut s = tcp(&env).await;
        s.write_all(b"GET /api/gre-chat/health HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        held.push(s);
    }
    // Give the relay a moment to account for them, then the sixth is closed without answer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut sixth = tcp(&env).await;
    let _ = sixth
        .write_all(b"GET /api/gre-chat/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut sixth, WAIT)
        .await
        .expect("the sixth connection was kept open");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    // Freed slots serve again (two: the health check's own connection may linger a moment).
    drop(held.pop());
    drop(held.pop());
    eventually(WAIT, "a freed HTTP slot serves health", || health_ok(&env)).await;
    // An upgraded WebSocket gives its HTTP slot back: more sockets than HTTP slots.
    let mut players = Vec::new();
    for p in 0..6 {
        players.push(env.player(200 + p).await);
    }
}

#[tokio::test]
async fn unauthenticated_sockets_cannot_take_the_slots_of_signed_in_users() {
    let mut settings = test_settings();
    settings.server.max_connections = 10;
    settings.websocket.max_unauthenticated = 3;
    settings.websocket.auth_timeout_seconds = 1;
    let env = TestEnv::start_with(settings).await;
    let mut anonymous = Vec::new();
    for _ in 0..3 {
        anonymous.push(WsClient::connect(&env.ws_url()).await);
    }
    match tokio_tungstenite::connect_async(env.ws_url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 503),
        other => panic!("expected HTTP 503, got {:?}", other.map(|_| "a connection")),
    }
    // They are cut at the (short) authentication timeout; signed-in users get in again.
    for a in &mut anonymous {
        match a.ending().await {
            Ending::Closed(Some(code), _) => assert_eq!(code, 4001),
            other => panic!("expected 4001, got {other:?}"),
        }
    }
    let mut players = Vec::new();
    for p in 0..6 {
        players.push(env.player(100 + p).await);
    }
    for p in &mut players {
        p.assert_alive().await;
    }
}

#[tokio::test]
async fn one_identity_cannot_take_every_socket() {
    let mut settings = test_settings();
    settings.websocket.max_connections_per_identity = 3;
    let env = TestEnv::start_with(settings).await;
    let mut tabs = Vec::new();
    for _ in 0..3 {
        tabs.push(env.player(7).await);
    }
    let mut fourth = WsClient::connect(&env.ws_url()).await;
    fourth
        .send_json(json!({"type": "authenticate", "token": player_token(7)}))
        .await;
    let err = fourth.recv_type("error").await;
    assert_eq!(err["code"], "rate_limited", "{err}");
    match fourth.ending().await {
        Ending::Closed(Some(code), _) => assert_eq!(code, 1008),
        other => panic!("expected 1008, got {other:?}"),
    }
    // Other players and staff are not affected; a closed tab frees a slot.
    let _other = env.player(8).await;
    let _staff = env.staff("staff-1").await;
    drop(tabs.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut c = WsClient::connect(&env.ws_url()).await;
        c.send_json(json!({"type": "authenticate", "token": player_token(7)}))
            .await;
        let first = c.recv().await;
        if first["type"] == "authenticated" {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "the closed tab's slot was never freed");
}

#[tokio::test]
async fn cors_preflight_and_allowed_origins() {
    let mut settings = test_settings();
    settings.server.allowed_origins = "https://players.example.club, http://127.0.0.1:3000".into();
    let env = TestEnv::start_with(settings).await;
    let client = reqwest::Client::new();

    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, env.http_url("/api/gre-chat/send"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, apikey",
            )
            .send()
    };
    let res = tokio::time::timeout(WAIT, preflight("https://players.example.club"))
        .await
        .expect("timed out")
        .expect("preflight");
    assert_eq!(res.status(), 204);
    let h = res.headers();
    assert_eq!(
        h["access-control-allow-origin"],
        "https://players.example.club"
    );
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    for name in ["authorization", "content-type", "apikey"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert!(h["access-control-allow-methods"]
        .to_str()
        .expect("ascii")
        .contains("POST"));
    assert!(h.get_all("vary").iter().any(|v| v == "Origin"));

    let res = tokio::time::timeout(WAIT, preflight("https://evil.example"))
        .await
        .expect("timed out")
        .expect("preflight");
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert!(res.headers().get("access-control-allow-headers").is_none());

    // The real call carries the allow header for a listed origin only.
    let res = client
        .get(env.http_url("/api/gre-admin/sessions"))
        .bearer_auth(staff_token("staff-1"))
        .header("origin", "http://127.0.0.1:3000")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://127.0.0.1:3000"
    );
    // Errors too, or a page could not read why it was refused.
    let res = client
        .get(env.http_url("/api/gre-admin/sessions"))
        .header("origin", "http://127.0.0.1:3000")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("access-control-allow-origin").is_some());

    // WebSocket upgrades: a listed origin or none (not a browser) gets in; another gets 403.
    let upgrade = |origin: Option<&'static str>| {
        let mut req = env.ws_url().into_client_request().expect("request");
        if let Some(o) = origin {
            req.headers_mut()
                .insert("origin", o.parse().expect("header value"));
        }
        tokio_tungstenite::connect_async(req)
    };
    match upgrade(Some("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        other => panic!("expected HTTP 403, got {:?}", other.map(|_| "a connection")),
    }
    let (mut ws, _) = upgrade(Some("https://players.example.club"))
        .await
        .expect("listed origin");
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        json!({"type": "authenticate", "token": player_token(29)}).to_string(),
    ))
    .await
    .expect("send");
    let mut c = WsClient { ws };
    assert_eq!(c.recv_type("authenticated").await["role"], "player");
    upgrade(None).await.expect("no origin: not a browser");
}

#[tokio::test]
async fn default_origins_allow_any_page() {
    let env = TestEnv::start().await;
    let res = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            env.http_url("/api/gre-admin/reply"),
        )
        .header("origin", "https://staff.portal.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(res.status(), 204);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://staff.portal.example"
    );
}

#[tokio::test]
async fn authenticate_must_be_the_first_frame_even_for_ping() {
    let env = TestEnv::start().await;
    let mut c = WsClient::connect(&env.ws_url()).await;
    c.send_json(json!({"type": "ping"})).await;
    let first = c.recv().await;
    assert_eq!(first["type"], "error", "{first}");
    assert_eq!(first["code"], "unauthenticated");
    // After authenticating, ping is answered as usual.
    c.authenticate(&player_token(29)).await;
    c.assert_alive().await;
}

#[tokio::test]
async fn a_player_that_unsubscribes_from_its_session_stops_receiving_it() {
    let env = TestEnv::start().await;
    let session = env.open_session(31).await;
    let mut player = env.player(31).await;
    player
        .send_json(json!({"type": "unsubscribe", "sessionId": session}))
        .await;
    player.recv_type("unsubscribed").await;
    // The first GRE reply also changes the session (waiting -> active): a session
    // notification that must not subscribe the player again.
    let db = env.db().await;
    for text in ["first reply", "second reply"] {
        db.execute(
            "insert into gre_chat_messages (session_id, sender, sender_id, sender_name, message) \
             values ($1, 'gre', 'staff-7', 'Anna', $2)",
            &[&session, &text],
        )
        .await
        .expect("insert");
    }
    player
        .expect_no("chat_message", Duration::from_millis(800))
        .await;
    // Subscribing again brings the history and live messages back.
    player
        .send_json(json!({"type": "subscribe", "sessionId": session, "since": "0"}))
        .await;
    let m = player.recv_type("chat_message").await;
    assert_eq!(m["message"]["message"], "first reply");
}
