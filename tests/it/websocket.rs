//! End-to-end: rows written by anyone reach the right WebSocket clients; the protocol's frames
//! and errors, against a real PostgreSQL and a real WebSocket client.

use crate::support::*;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// The contract's smallest write, straight in SQL, as another portal makes it.
const CONTRACT_INSERT: &str =
    "insert into gre_chat_messages (session_id, sender, sender_id, sender_name, message) \
                               values ($1, 'gre', 'staff-7', 'Anna', 'Your table is ready')";

#[tokio::test]
async fn a_direct_sql_insert_reaches_the_player_and_staff_within_a_second() {
    let env = TestEnv::start().await;
    let session = env.open_session(29).await;
    let mut player = WsClient::connect(&env.ws_url()).await;
    let hello = player.authenticate(&player_token(29)).await;
    assert_eq!(hello["playerId"], 29);
    assert_eq!(hello["sessionId"], session.to_string());
    let mut staff = env.staff("staff-1").await;

    let db = env.db().await;
    db.execute(CONTRACT_INSERT, &[&session])
        .await
        .expect("insert");

    for client in [&mut player, &mut staff] {
        let frame = tokio::time::timeout(Duration::from_secs(1), client.recv_type("chat_message"))
            .await
            .expect("delivered within a second");
        let m = &frame["message"];
        assert_eq!(m["sessionId"], session.to_string());
        assert_eq!(m["playerId"], 29, "player_id filled from the session");
        assert_eq!(m["sender"], "gre");
        assert_eq!(m["senderId"], "staff-7");
        assert_eq!(m["senderName"], "Anna");
        assert_eq!(m["message"], "Your table is ready");
        assert_eq!(m["status"], "sent");
        assert_eq!(m["cursor"], "1");
        assert!(m["createdAt"].as_str().expect("createdAt").ends_with('Z'));
        Uuid::parse_str(m["id"].as_str().expect("id")).expect("uuid id");
    }
}

#[tokio::test]
async fn send_message_opens_a_session_stores_the_row_and_acks() {
    let env = TestEnv::start().await;
    let mut staff = env.staff("staff-1").await;
    let mut player = WsClient::connect(&env.ws_url()).await;
    let hello = player.authenticate(&player_token(7)).await;
    assert!(hello["sessionId"].is_null(), "no session yet: {hello}");

    player
        .send_json(
            json!({"type": "send_message", "message": "Hello GRE", "clientMessageId": "c-1"}),
        )
        .await;
    let ack = player.recv_type("message_sent").await;
    assert_eq!(ack["clientMessageId"], "c-1");
    assert_eq!(ack["message"]["message"], "Hello GRE");
    assert_eq!(ack["message"]["sender"], "player");
    let session_id: Uuid = ack["message"]["sessionId"]
        .as_str()
        .expect("sessionId")
        .parse()
        .expect("uuid");

    // The row is committed, the session is waiting.
    let db = env.db().await;
    let row = db
        .query_one(
            "select m.message, m.player_id, s.status from gre_chat_messages m join gre_chat_sessions s on s.id = m.session_id where m.id = $1",
            &[&ack["message"]["id"].as_str().expect("id").parse::<Uuid>().expect("uuid")],
        )
        .await
        .expect("row stored");
    assert_eq!(row.get::<_, String>(0), "Hello GRE");
    assert_eq!(row.get::<_, i64>(1), 7);
    assert_eq!(row.get::<_, String>(2), "waiting");

    // Staff sees the new session and the message.
    let updated = staff.recv_type("session_updated").await;
    assert_eq!(updated["session"]["status"], "waiting");
    let seen = staff.recv_type("chat_message").await;
    assert_eq!(seen["message"]["message"], "Hello GRE");

    // The player is now subscribed to its new session: a GRE row inserted in SQL reaches it.
    db.execute(CONTRACT_INSERT, &[&session_id])
        .await
        .expect("insert");
    let reply = player.recv_type("chat_message").await;
    let reply = if reply["message"]["sender"] == "player" {
        player.recv_type("chat_message").await
    } else {
        reply
    };
    assert_eq!(reply["message"]["message"], "Your table is ready");
    // The first GRE reply made the session active, and everyone was told.
    let updated = staff.recv_type("session_updated").await;
    assert_eq!(updated["session"]["status"], "active");

    // The alias chat_message and a retried clientMessageId store nothing twice.
    player
        .send_json(json!({"type": "chat_message", "message": "again", "clientMessageId": "c-2"}))
        .await;
    let first = player.recv_type("message_sent").await;
    player
        .send_json(json!({"type": "chat_message", "message": "again", "clientMessageId": "c-2"}))
        .await;
    let second = player.recv_type("message_sent").await;
    assert_eq!(first["message"]["id"], second["message"]["id"]);
    let count: i64 = db
        .query_one(
            "select count(*) from gre_chat_messages where client_message_id = 'c-2'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn staff_send_message_requires_a_session_and_reaches_the_player() {
    let env = TestEnv::start().await;
    let session = env.open_session(31).await;
    let mut player = env.player(31).await;
    let mut staff = env.staff("staff-2").await;
    staff
        .send_json(json!({"type": "send_message", "message": "no session"}))
        .await;
    let err = staff.recv_type("error").await;
    assert_eq!(err["code"], "invalid_message");
    staff
        .send_json(json!({"type": "send_message", "message": "Welcome", "sessionId": session}))
        .await;
    let ack = staff.recv_type("message_sent").await;
    assert_eq!(ack["message"]["senderId"], "staff-2");
    let got = player.recv_type("chat_message").await;
    assert_eq!(got["message"]["message"], "Welcome");
    assert_eq!(got["message"]["sender"], "gre");
    staff
        .send_json(json!({"type": "send_message", "message": "x", "sessionId": Uuid::new_v4()}))
        .await;
    assert_eq!(staff.recv_type("error").await["code"], "not_found");
}

#[tokio::test]
async fn players_are_isolated_from_each_other() {
    let env = TestEnv::start().await;
    let a_session = env.open_session(100).await;
    let b_session = env.open_session(200).await;
    let mut a = env.player(100).await;
    let mut b = env.player(200).await;

    // B cannot subscribe to, write into, or mark A's session.
    b.send_json(json!({"type": "subscribe", "sessionId": a_session}))
        .await;
    assert_eq!(b.recv_type("error").await["code"], "forbidden");
    b.send_json(json!({"type": "send_message", "message": "intruder", "sessionId": a_session}))
        .await;
    assert_eq!(b.recv_type("error").await["code"], "forbidden");
    b.send_json(json!({"type": "typing", "sessionId": a_session, "isTyping": true}))
        .await;
    assert_eq!(b.recv_type("error").await["code"], "forbidden");

    // A's messages reach A only; B's reach B only.
    let db = env.db().await;
    db.execute(CONTRACT_INSERT, &[&a_session])
        .await
        .expect("insert a");
    db.execute(CONTRACT_INSERT, &[&b_session])
        .await
        .expect("insert b");
    assert_eq!(
        a.recv_type("chat_message").await["message"]["sessionId"],
        a_session.to_string()
    );
    assert_eq!(
        b.recv_type("chat_message").await["message"]["sessionId"],
        b_session.to_string()
    );
    a.expect_no("chat_message", Duration::from_millis(300))
        .await;
    b.expect_no("chat_message", Duration::from_millis(300))
        .await;

    let intruded: i64 = db
        .query_one(
            "select count(*) from gre_chat_messages where message = 'intruder'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(intruded, 0);
}

#[tokio::test]
async fn bad_input_gets_error_frames_and_the_connection_survives() {
    let env = TestEnv::start().await;
    let mut c = WsClient::connect(&env.ws_url()).await;

    // Before authentication.
    c.send_text("{broken json").await;
    assert_eq!(c.recv_type("error").await["code"], "invalid_json");
    c.send_json(json!({"type": "subscribe", "sessionId": Uuid::new_v4()}))
        .await;
    assert_eq!(c.recv_type("error").await["code"], "unauthenticated");
    c.send_json(json!({"type": "authenticate", "token": "29"}))
        .await;
    assert_eq!(
        c.recv_type("error").await["code"],
        "unauthenticated",
        "a bare id is no token"
    );
    let forged = gre_relay::auth::mint_player_token("not-the-secret", 29, Duration::from_secs(60));
    c.send_json(json!({"type": "authenticate", "token": forged}))
        .await;
    assert_eq!(c.recv_type("error").await["code"], "unauthenticated");
    // Still open, and still strict: `authenticate` must come first, even before a ping.
    c.send_json(json!({"type": "ping"})).await;
    assert_eq!(c.recv_type("error").await["code"], "unauthenticated");

    // After authentication.
    c.authenticate(&player_token(5)).await;
    for (frame, code) in [
        ("not json at all".to_string(), "invalid_json"),
        ("[1,2,3]".to_string(), "invalid_json"),
        (
            json!({"type": "fly_to_the_moon"}).to_string(),
            "unknown_type",
        ),
        (json!({"kind": "no type"}).to_string(), "unknown_type"),
        (
            json!({"type": "send_message", "message": 42}).to_string(),
            "invalid_message",
        ),
        (
            json!({"type": "send_message", "message": "   "}).to_string(),
            "invalid_message",
        ),
        (
            json!({"type": "send_message", "message": "nul \u{0000} inside"}).to_string(),
            "invalid_message",
        ),
        (
            json!({"type": "send_message", "message": "x".repeat(4001)}).to_string(),
            "invalid_message",
        ),
        (
            json!({"type": "subscribe", "sessionId": "not-a-uuid"}).to_string(),
            "invalid_frame",
        ),
        (
            json!({"type": "subscribe", "sessionId": Uuid::new_v4()}).to_string(),
            "not_found",
        ),
    ] {
        c.send_text(&frame).await;
        let err = c.recv_type("error").await;
        assert_eq!(err["code"], code, "for {frame}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    c.assert_alive().await;

    // Nothing was stored by any of that.
    let db = env.db().await;
    let n: i64 = db
        .query_one("select count(*) from gre_chat_messages", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn expired_tokens_and_silence_are_refused() {
    let mut settings = test_settings();
    settings.websocket.auth_timeout_seconds = 1;
    let env = TestEnv::start_with(settings).await;
    let mut c = WsClient::connect(&env.ws_url()).await;
    let expired = gre_relay::auth::mint_raw(
        SECRET,
        &json!({"exp": 1_000_000_000u64, "app_metadata": {"player_id": 29}}),
    );
    c.send_json(json!({"type": "authenticate", "token": expired}))
        .await;
    let err = c.recv_type("error").await;
    assert_eq!(err["code"], "unauthenticated");
    assert!(
        err["message"].as_str().unwrap_or("").contains("expired"),
        "{err}"
    );
    // No good token within the authentication timeout: closed with 4001.
    match c.ending().await {
        Ending::Closed(Some(code), _) => assert_eq!(code, 4001),
        other => panic!("expected close 4001, got {other:?}"),
    }
}

#[tokio::test]
async fn a_huge_frame_closes_that_connection_only() {
    let env = TestEnv::start().await;
    let mut big = env.player(1).await;
    let mut other = env.player(2).await;
    let huge = "x".repeat(env.settings.websocket.max_frame_bytes + 10);
    // The server may close before the whole frame is written; either way it must not crash.
    let _ = tokio::time::timeout(
        WAIT,
        futures_util::SinkExt::send(
            &mut big.ws,
            tokio_tungstenite::tungstenite::Message::text(huge),
        ),
    )
    .await;
    match big.ending().await {
        Ending::Closed(Some(code), _) => assert_eq!(code, 1009),
        Ending::Closed(None, _) | Ending::Dropped => {}
    }
    other.assert_alive().await;
    let mut fresh = env.player(3).await;
    fresh.assert_alive().await;
}

#[tokio::test]
async fn four_thousand_emoji_arrive_whole() {
    let env = TestEnv::start().await;
    let session = env.open_session(44).await;
    let mut player = env.player(44).await;
    let mut staff = env.staff("staff-3").await;
    let text = "😀".repeat(4000); // 16,000 bytes: twice NOTIFY's payload limit

    // Through SQL (the trigger sends a reference; the relay reads the row back)...
    let db = env.db().await;
    db.execute(
        "insert into gre_chat_messages (session_id, sender, sender_id, message) values ($1, 'gre', 'staff-3', $2)",
        &[&session, &text],
    )
    .await
    .expect("insert");
    for c in [&mut player, &mut staff] {
        let got = c.recv_type("chat_message").await;
        assert_eq!(got["message"]["message"].as_str().expect("text"), text);
    }
    // ...and through the WebSocket.
    player
        .send_json(json!({"type": "send_message", "message": text}))
        .await;
    let ack = player.recv_type("message_sent").await;
    assert_eq!(
        ack["message"]["message"]
            .as_str()
            .expect("text")
            .chars()
            .count(),
        4000
    );
    let got = staff.recv_type("chat_message").await;
    assert_eq!(got["message"]["message"].as_str().expect("text"), text);
}

#[tokio::test]
async fn subscribe_with_since_backfills_in_order_then_goes_live() {
    let env = TestEnv::start().await;
    let session = env.open_session(50).await;
    let db = env.db().await;
    for i in 1..=5 {
        db.execute(
            "insert into gre_chat_messages (session_id, sender, message) values ($1, 'gre', $2)",
            &[&session, &format!("m{i}")],
        )
        .await
        .expect("insert");
    }
    let mut staff = env.staff("staff-9").await;
    staff
        .send_json(json!({"type": "subscribe", "sessionId": session, "since": "2"}))
        .await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(
            staff.recv_type("chat_message").await["message"]["message"]
                .as_str()
                .expect("text")
                .to_owned(),
        );
    }
    assert_eq!(got, ["m3", "m4", "m5"]);
    let sub = staff.recv_type("subscribed").await;
    assert_eq!(sub["cursor"], "5");
    db.execute(
        "insert into gre_chat_messages (session_id, sender, message) values ($1, 'gre', 'm6')",
        &[&session],
    )
    .await
    .expect("insert");
    let live = staff.recv_type("chat_message").await;
    assert_eq!(live["message"]["message"], "m6");
    assert_eq!(live["message"]["cursor"], "6");
    staff
        .expect_no("chat_message", Duration::from_millis(300))
        .await;

    // A player reconnecting with its cursor gets exactly what it missed.
    let mut player = env.player(50).await;
    player
        .send_json(json!({"type": "subscribe", "sessionId": session, "since": "4"}))
        .await;
    let a = player.recv_type("chat_message").await;
    let b = player.recv_type("chat_message").await;
    assert_eq!(
        (
            a["message"]["cursor"].as_str(),
            b["message"]["cursor"].as_str()
        ),
        (Some("5"), Some("6"))
    );
    player.recv_type("subscribed").await;
    player
        .expect_no("chat_message", Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn typing_and_mark_read_reach_the_other_side() {
    let env = TestEnv::start().await;
    let session = env.open_session(60).await;
    let mut player = env.player(60).await;
    let mut staff = env.staff("staff-4").await;
    player
        .send_json(json!({"type": "typing", "sessionId": session, "isTyping": true}))
        .await;
    let t = staff.recv_type("typing").await;
    assert_eq!(t["isTyping"], true);
    assert_eq!(t["sender"], "player");
    player.expect_no("typing", Duration::from_millis(300)).await;

    staff
        .send_json(json!({"type": "send_message", "sessionId": session, "message": "hi"}))
        .await;
    let ack = staff.recv_type("message_sent").await;
    let id = ack["message"]["id"].clone();
    player.recv_type("chat_message").await;
    player
        .send_json(json!({"type": "mark_read", "sessionId": session, "upTo": id}))
        .await;
    let read = staff.recv_type("messages_read").await;
    assert_eq!(read["reader"], "player");
    assert_eq!(read["upTo"], id);
    assert_eq!(read["count"], 1);
    let db = env.db().await;
    let status: String = db
        .query_one(
            "select status from gre_chat_messages where id = $1",
            &[&id.as_str().expect("id").parse::<Uuid>().expect("uuid")],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(status, "read");
}

#[tokio::test]
async fn health_reports_database_and_listener() {
    let env = TestEnv::start().await;
    let url = env.http_url("/api/gre-chat/health");
    let body = http_get(&url).await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains(r#""listener":"connected""#), "{body}");
}

/// A minimal HTTP/1.1 GET over a raw socket (the REST tests use a real client).
async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').expect("path");
    let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
    s.write_all(
        format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .expect("timeout")
        .expect("read");
    out
}

#[tokio::test]
async fn a_flood_of_frames_is_rate_limited_and_the_connection_survives() {
    let mut settings = test_settings();
    settings.websocket.frames_per_second = 2.0;
    settings.websocket.frames_burst = 5.0;
    let env = TestEnv::start_with(settings).await;
    let session = env.open_session(80).await;
    let mut player = env.player(80).await;
    for _ in 0..20 {
        player
            .send_json(json!({"type": "typing", "sessionId": session, "isTyping": true}))
            .await;
    }
    let mut limited = 0;
    while let Some(frame) = player.recv_within(Duration::from_millis(500)).await {
        if frame["type"] == "error" {
            assert_eq!(frame["code"], "rate_limited", "{frame}");
            limited += 1;
        }
    }
    assert!(limited >= 10, "most of the flood was refused ({limited})");
    // Pings are never limited, and the bucket refills.
    player.assert_alive().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    player
        .send_json(json!({"type": "send_message", "message": "after the flood"}))
        .await;
    player.recv_type("message_sent").await;
    let metrics = env.metrics_text().await;
    assert!(
        metrics.contains("gre_relay_rate_limited_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_with_503() {
    let mut settings = test_settings();
    settings.server.max_connections = 2;
    let env = TestEnv::start_with(settings).await;
    let _a = env.player(1).await;
    let _b = env.player(2).await;
    let refused = tokio_tungstenite::connect_async(env.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 503),
        other => panic!("expected HTTP 503, got {:?}", other.map(|_| "a connection")),
    }
    drop(_a);
    eventually(WAIT, "a freed slot is usable again", || async {
        tokio_tungstenite::connect_async(env.ws_url()).await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn errors_name_the_request_that_failed() {
    let env = TestEnv::start().await;
    let session = env.open_session(81).await;
    let mut staff = env.staff("staff-5").await;
    staff.send_json(json!({"type": "send_message", "message": "", "sessionId": session, "clientMessageId": "c-9"})).await;
    let err = staff.recv_type("error").await;
    assert_eq!(
        (err["code"].as_str(), err["clientMessageId"].as_str()),
        (Some("invalid_message"), Some("c-9")),
        "{err}"
    );
    let other = Uuid::new_v4();
    staff
        .send_json(json!({"type": "subscribe", "sessionId": other}))
        .await;
    let err = staff.recv_type("error").await;
    assert_eq!(err["code"], "not_found");
    assert_eq!(err["sessionId"], other.to_string());
}
