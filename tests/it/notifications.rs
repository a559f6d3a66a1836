//! Notifications are hints (issue 11, CONTRACT section 1): a database login without any table
//! privilege forges `pg_notify` payloads of every kind and listens on the channel; nothing it
//! sends reaches a client, live delivery carries on, and what it hears names no text, name or
//! player id. Relayed events still cross relays; a large update reaches staff coalesced.

use crate::support::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

const MALLORY_PASSWORD: &str = "mallory-pw-0123";

/// A login role with no privilege on any table, as any database user could be.
async fn mallory(env: &TestEnv) -> (tokio_postgres::Client, mpsc::UnboundedReceiver<String>) {
    let db = env.db().await;
    db.batch_execute(&format!(
        "create role mallory login password '{MALLORY_PASSWORD}'"
    ))
    .await
    .expect("create role");
    let mut config: tokio_postgres::Config = env.url.parse().expect("url");
    config.user("mallory").password(MALLORY_PASSWORD);
    let (client, mut connection) =
        tokio::time::timeout(WAIT, config.connect(tokio_postgres::NoTls))
            .await
            .expect("connect in time")
            .expect("mallory connects");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                if tx.send(n.payload().to_owned()).is_err() {
                    break;
                }
            }
        }
    });
    // Really without privileges: it cannot read the messages.
    let denied = client
        .query("select message from gre_chat_messages", &[])
        .await
        .expect_err("mallory must not read messages");
    let why = denied.as_db_error().map(|e| e.message().to_owned());
    assert!(
        why.as_deref()
            .is_some_and(|m| m.contains("permission denied")),
        "{denied:?}"
    );
    (client, rx)
}

async fn forge(client: &tokio_postgres::Client, payload: &str) {
    client
        .execute("select pg_notify('gre_relay', $1)", &[&payload])
        .await
        .expect("anyone may pg_notify");
}

/// Every frame that arrives within `limit`.
async fn frames_within(client: &mut WsClient, limit: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return out;
        }
        match client.recv_within(left).await {
            Some(f) => out.push(f),
            None => return out,
        }
    }
}

async fn insert_gre(db: &tokio_postgres::Client, session: Uuid, text: &str) -> Uuid {
    db.query_one(
        "insert into gre_chat_messages (session_id, sender, sender_id, sender_name, message) \
         values ($1, 'gre', 'staff-7', 'Anna', $2) returning id",
        &[&session, &text],
    )
    .await
    .expect("insert")
    .get(0)
}

async fn chat_message_with_id(client: &mut WsClient, id: Uuid) -> Value {
    loop {
        let f = client.recv_type("chat_message").await;
        if f["message"]["id"] == id.to_string() {
            return f;
        }
    }
}

#[tokio::test]
async fn forged_notifications_reach_no_client_and_live_delivery_goes_on() {
    let env = TestEnv::start().await;
    let db = env.db().await;
    let (mallory, _heard) = mallory(&env).await;
    let s29 = env.open_session(29).await;
    let s31 = env.open_session(31).await;
    let mut p29 = env.player(29).await;
    p29.assert_alive().await;
    let mut p31 = env.player(31).await;
    p31.assert_alive().await;
    let mut staff = env.staff("staff-9").await;
    staff.assert_alive().await;
    let m29 = insert_gre(&db, s29, "welcome 29").await;
    let m31 = insert_gre(&db, s31, "welcome 31").await;
    // Delivered once, live, before anything is forged.
    chat_message_with_id(&mut p29, m29).await;
    chat_message_with_id(&mut p31, m31).await;
    chat_message_with_id(&mut staff, m29).await;
    chat_message_with_id(&mut staff, m31).await;
    let ignored_before = env.metric("gre_relay_notifications_ignored_total").await;

    let fake = Uuid::new_v4();
    let huge = i64::MAX.to_string();
    let forged = [
        // (a) subscribe player 29 to player 31's session: the old whole-row form, and a hint
        // naming 31's session (the relay reads it: it belongs to 31, so 29 follows nothing).
        json!({"k": "s", "session": {"id": s31, "playerId": 29, "status": "active"}}).to_string(),
        json!({"k": "s", "id": s31}).to_string(),
        // (b) a "GRE" message asking for a password: the old form, and a hint naming no row.
        json!({"k": "m", "op": "i", "rows": [{"id": fake, "sessionId": s29, "playerId": 29, "sender": "gre",
            "senderName": "GRE", "message": "please send your password", "status": "sent", "cursor": "2"}]})
        .to_string(),
        json!({"k": "m", "op": "i", "ids": [fake]}).to_string(),
        // (c) a huge cursor: the old reference form, and a range to the end of time (the relay
        // only reports the messages really in it).
        json!({"k": "m", "op": "i", "rows": [{"ref": true, "id": m29, "sessionId": s29, "cursor": huge}]})
            .to_string(),
        json!({"k": "r", "ranges": [{"sessionId": s29, "from": huge, "to": huge}]}).to_string(),
        // (d) an arbitrary relayed frame, and a relayed event with a made-up signature.
        json!({"k": "e", "sessionId": s29, "origin": "x:1", "frame": {"type": "chat_message",
            "message": {"id": fake, "sessionId": s29, "message": "please send your password"}}})
        .to_string(),
        json!({"k": "e", "v": {"o": Uuid::new_v4(), "c": 1, "t": 1, "ev": {"type": "typing",
            "sessionId": s29, "side": "gre", "staffId": "staff-1", "isTyping": true}}, "mac": "00".repeat(32)})
        .to_string(),
        // A real message id of 31's session named to the relay: re-read, and still routed to
        // 31's session only (a replay the hub drops).
        json!({"k": "m", "op": "i", "ids": [m31]}).to_string(),
    ];
    for payload in &forged {
        forge(&mallory, payload).await;
    }

    for frame in frames_within(&mut p29, Duration::from_millis(800)).await {
        let text = frame.to_string();
        assert!(
            !text.contains("password"),
            "forged text reached player 29: {text}"
        );
        assert!(
            !text.contains(&s31.to_string()),
            "31's session reached 29: {text}"
        );
        assert_ne!(frame["type"], "chat_message", "{text}");
        assert_ne!(frame["type"], "typing", "{text}");
    }
    for frame in frames_within(&mut staff, Duration::from_millis(200)).await {
        let text = frame.to_string();
        assert!(
            !text.contains("password"),
            "forged text reached staff: {text}"
        );
        assert_ne!(
            frame["type"], "chat_message",
            "a replay reached staff: {text}"
        );
        assert_ne!(frame["type"], "typing", "{text}");
    }

    // 31's next private message reaches 31, never 29.
    let next31 = insert_gre(&db, s31, "private to 31").await;
    chat_message_with_id(&mut p31, next31).await;
    // Live delivery of 29's session goes on despite the huge cursor.
    let next29 = insert_gre(&db, s29, "table 4 is ready").await;
    let got = chat_message_with_id(&mut p29, next29).await;
    assert_eq!(got["message"]["cursor"], "2", "{got}");
    chat_message_with_id(&mut staff, next29).await;
    for frame in frames_within(&mut p29, Duration::from_millis(300)).await {
        assert!(!frame.to_string().contains(&s31.to_string()), "{frame}");
    }

    // Six of the payloads above are refused outright, one names no row.
    let ignored = env.metric("gre_relay_notifications_ignored_total").await - ignored_before;
    assert!(ignored >= 7.0, "ignored {ignored}");
}

#[tokio::test]
async fn listening_without_privileges_hears_no_text_name_or_player_id() {
    let env = TestEnv::start().await;
    let db = env.db().await;
    let (_mallory, mut heard) = {
        let (client, rx) = mallory(&env).await;
        client
            .batch_execute("listen gre_relay")
            .await
            .expect("listen");
        (client, rx)
    };
    let player_id: i64 = 48_151_623;
    let mut staff = env.staff("staff-2").await;
    staff.assert_alive().await;
    let session = env.open_session(player_id).await;
    let id: Uuid = db
        .query_one(
            "insert into gre_chat_messages (session_id, sender, sender_id, sender_name, message) \
             values ($1, 'gre', 'staff-2', 'Zeynep Quartermaine', 'the door code is 7713') returning id",
            &[&session],
        )
        .await
        .expect("insert")
        .get(0);
    db.execute(
        "update gre_chat_messages set status = 'read' where id = $1",
        &[&id],
    )
    .await
    .expect("update");
    db.execute(
        "update gre_chat_sessions set assigned_gre_id = 'staff-2' where id = $1",
        &[&session],
    )
    .await
    .expect("assign");
    // The relay still delivers everything to those who may see it.
    let got = chat_message_with_id(&mut staff, id).await;
    assert_eq!(got["message"]["message"], "the door code is 7713");
    assert_eq!(
        staff.recv_type("message_updated").await["message"]["status"],
        "read"
    );

    let mut payloads = Vec::new();
    while let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(500), heard.recv()).await {
        payloads.push(p);
    }
    assert!(payloads.len() >= 4, "heard {payloads:?}");
    for p in &payloads {
        // Row ids are random hex: one may well contain "7713" or the player's digits.
        // So the check reads the payload with every UUID-shaped string blanked out.
        let visible = without_uuids(p);
        for secret in [
            "7713",
            "door",
            "Zeynep",
            "Quartermaine",
            &player_id.to_string(),
        ] {
            assert!(!visible.contains(secret), "LISTEN revealed {secret:?}: {p}");
        }
    }
}

/// The payload as JSON text with every string that parses as a UUID replaced by "<uuid>".
fn without_uuids(payload: &str) -> String {
    fn blank(v: &mut Value) {
        match v {
            Value::String(s) if Uuid::parse_str(s).is_ok() => *s = "<uuid>".into(),
            Value::Array(items) => items.iter_mut().for_each(blank),
            Value::Object(fields) => fields.values_mut().for_each(blank),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_str(payload).expect("payloads are JSON");
    blank(&mut v);
    v.to_string()
}

#[tokio::test]
async fn malformed_payloads_are_ignored_and_counted() {
    let env = TestEnv::start().await;
    let (mallory, _heard) = mallory(&env).await;
    let mut staff = env.staff("staff-3").await;
    staff.assert_alive().await;
    let before = env.metric("gre_relay_notifications_ignored_total").await;
    let malformed = [
        "not json".to_owned(),
        "{}".to_owned(),
        "[1,2]".to_owned(),
        r#"{"k":"z"}"#.to_owned(),
        r#"{"k":"m","op":"i"}"#.to_owned(),
        format!(r#"{{"k":"s","id":"{}"}}"#, Uuid::nil()),
        format!(
            r#"{{"k":"r","ranges":[{{"sessionId":"{}","to":"5"}}]}}"#,
            Uuid::new_v4()
        ),
        r#"{"k":"p","greId":"nobody-at-all"}"#.to_owned(),
    ];
    for p in &malformed {
        forge(&mallory, p).await;
    }
    let want = before + malformed.len() as f64;
    eventually(WAIT, "every malformed payload counted", || async {
        env.metric("gre_relay_notifications_ignored_total").await >= want
    })
    .await;
    for f in frames_within(&mut staff, Duration::from_millis(300)).await {
        assert_ne!(f["greId"], "nobody-at-all", "{f}");
    }
    staff.assert_alive().await;
}

#[tokio::test]
async fn typing_and_read_receipts_cross_two_relays() {
    let env = TestEnv::start().await;
    let second = start_relay(&env.settings, &env.url).await;
    let session = env.open_session(77).await;
    let mut player = env.player(77).await;
    player.assert_alive().await;
    let mut staff = WsClient::connect(&format!("ws://{}/ws", second.local_addr())).await;
    staff.authenticate(&staff_token("staff-5")).await;
    staff.assert_alive().await;

    player
        .send_json(json!({"type": "typing", "sessionId": session, "isTyping": true}))
        .await;
    let t = staff.recv_type("typing").await;
    assert_eq!(
        (
            t["sender"].clone(),
            t["senderId"].clone(),
            t["isTyping"].clone()
        ),
        (json!("player"), json!("77"), json!(true)),
        "{t}"
    );
    staff
        .send_json(json!({"type": "typing", "sessionId": session, "isTyping": false}))
        .await;
    let t = player.recv_type("typing").await;
    assert_eq!(
        (
            t["sender"].clone(),
            t["senderId"].clone(),
            t["isTyping"].clone()
        ),
        (json!("gre"), json!("staff-5"), json!(false)),
        "{t}"
    );

    staff
        .send_json(json!({"type": "send_message", "sessionId": session, "message": "hello"}))
        .await;
    let id = staff.recv_type("message_sent").await["message"]["id"].clone();
    player.recv_type("chat_message").await;
    player
        .send_json(json!({"type": "mark_read", "sessionId": session, "upTo": id}))
        .await;
    let read = staff.recv_type("messages_read").await;
    assert_eq!(read["reader"], "player");
    assert_eq!(read["upTo"], id);
    assert_eq!(read["cursor"], "1");
    assert_eq!(read["count"], 1);
    // The sender does not get its own events back.
    player
        .expect_no("messages_read", Duration::from_millis(300))
        .await;
    player.expect_no("typing", Duration::from_millis(100)).await;
    second.shutdown().await;
}

#[tokio::test]
async fn a_mass_update_reaches_staff_as_one_event_and_a_no_op_update_as_none() {
    let env = TestEnv::start().await;
    let db = env.db().await;
    let session = env.open_session(90).await;
    let rows: i64 = 11_840;
    db.execute(
        "insert into gre_chat_messages (session_id, sender, message) \
         select $1, 'gre', 'line ' || g from generate_series(1, $2::bigint) g",
        &[&session, &rows],
    )
    .await
    .expect("insert");
    // Let the relay publish the inserts first (to nobody yet). A debug build on a loaded
    // machine reads back 11,840 rows in 10 to 40 s: the bound is generous, it is not a timing.
    eventually(
        Duration::from_secs(120),
        "the inserts published",
        || async { env.metric("gre_relay_events_published_total").await >= rows as f64 },
    )
    .await;
    let mut staff = env.staff("staff-6").await;
    staff.assert_alive().await;
    let mut player = env.player(90).await;
    player.assert_alive().await;

    // Changes nothing: notifies nothing.
    db.execute(
        "update gre_chat_messages set status = status where session_id = $1",
        &[&session],
    )
    .await
    .expect("no-op update");
    // The player marks everything read in one statement, as issue 11 did through Supabase.
    let began = std::time::Instant::now();
    let changed = db
        .execute(
            "update gre_chat_messages set status = 'read' where session_id = $1 and status <> 'read'",
            &[&session],
        )
        .await
        .expect("mass update");
    assert_eq!(changed as i64, rows);
    let got = staff.recv_type("messages_updated").await;
    let took = began.elapsed();
    assert_eq!(got["sessionId"], session.to_string());
    assert_eq!(
        (
            got["fromCursor"].clone(),
            got["toCursor"].clone(),
            got["count"].clone()
        ),
        (json!("1"), json!(rows.to_string()), json!(rows)),
        "{got}"
    );
    eprintln!("{rows} rows marked read: staff told in {took:?} with one frame");
    player.recv_type("messages_updated").await;
    // Nothing else: no message_updated flood, and the socket is alive.
    staff
        .expect_no("message_updated", Duration::from_millis(500))
        .await;
    staff.assert_alive().await;

    // A small update still names each message (two new ones: a status only moves forward).
    db.execute(
        "insert into gre_chat_messages (session_id, sender, sender_id, message) \
         select $1, 'gre', 'staff-6', 'later ' || g from generate_series(1, 2) g",
        &[&session],
    )
    .await
    .expect("two more");
    db.execute(
        "update gre_chat_messages set status = 'delivered' where session_id = $1 and seq > $2",
        &[&session, &rows],
    )
    .await
    .expect("small update");
    let a = staff.recv_type("message_updated").await;
    let b = staff.recv_type("message_updated").await;
    assert_eq!(
        (
            a["message"]["cursor"].clone(),
            b["message"]["cursor"].clone()
        ),
        (json!((rows + 1).to_string()), json!((rows + 2).to_string()))
    );
    assert_eq!(a["message"]["status"], "delivered");
}

#[tokio::test]
async fn the_relay_key_is_readable_by_no_api_role_and_no_other_login() {
    let env = TestEnv::start().await;
    let (mallory, _heard) = mallory(&env).await;
    let denied = mallory
        .query("select key from gre_relay.relay_event_key", &[])
        .await
        .expect_err("mallory must not read the key");
    assert_eq!(
        denied.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    let db = env.db().await;
    for role in ["anon", "authenticated", "service_role"] {
        let err = db
            .batch_execute(&format!(
                "begin; set local role {role}; select key from gre_relay.relay_event_key; commit"
            ))
            .await
            .expect_err("an API role must not read the key");
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{role}: {err:?}"
        );
        db.batch_execute("rollback").await.expect("rollback");
    }
}

#[tokio::test]
async fn replayed_update_hints_do_not_flood_staff_off() {
    let env = TestEnv::start().await;
    let db = env.db().await;
    let (mallory, _heard) = mallory(&env).await;
    let session = env.open_session(95).await;
    let rows: i64 = 12_000;
    let ids: Vec<Uuid> = db
        .query(
            "insert into gre_chat_messages (session_id, sender, message) \
             select $1, 'gre', 'line ' || g from generate_series(1, $2::bigint) g returning id",
            &[&session, &rows],
        )
        .await
        .expect("insert")
        .iter()
        .map(|r| r.get(0))
        .collect();
    eventually(Duration::from_secs(30), "the inserts published", || async {
        env.metric("gre_relay_events_published_total").await >= rows as f64
    })
    .await;
    let mut staff = env.staff("staff-8").await;
    staff.assert_alive().await;

    // Ids anyone learns with LISTEN, named in update hints: 12,000 message_updated frames if the
    // relay believed them all, more than a staff socket's queue (8,192) holds unread.
    for chunk in ids.chunks(200) {
        forge(
            &mallory,
            &json!({"k": "m", "op": "u", "ids": chunk}).to_string(),
        )
        .await;
    }
    eventually(Duration::from_secs(20), "the hints handled", || async {
        env.metric("gre_relay_update_frames_dropped_total").await
            + env.metric("gre_relay_events_published_total").await
            >= (2 * rows) as f64
    })
    .await;
    // The staff socket was not closed, and live delivery goes on.
    staff.assert_alive().await;
    let next = insert_gre(&db, session, "still here").await;
    chat_message_with_id(&mut staff, next).await;
    assert!(env.metric("gre_relay_update_frames_dropped_total").await > 0.0);
}
