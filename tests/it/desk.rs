//! The GRE desk (issue 13): automatic assignment, transfers, canned responses, auto-replies and
//! internal notes, tested from outside: real relays (two on one database where the promise is
//! "whoever writes"), real sockets, REST, and direct writes the way PostgREST makes them.

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// How long one request may take here: the concurrency tests queue many writers on one session
/// row on purpose, and a loaded machine makes them slow, not wrong.
const CALL_WAIT: Duration = Duration::from_secs(30);

/// A REST call with a bearer token; the status and the JSON body (Null when there is none).
async fn call(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = tokio::time::timeout(CALL_WAIT, req.send())
        .await
        .expect("request timed out")
        .expect("request");
    let status = res.status().as_u16();
    let text = tokio::time::timeout(CALL_WAIT, res.text())
        .await
        .expect("body timed out")
        .expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn player_claims(id: i64) -> String {
    json!({"role": "authenticated", "sub": format!("user-{id}"), "aud": "authenticated",
           "app_metadata": {"player_id": id}})
    .to_string()
}

fn staff_claims(sub: &str) -> String {
    json!({"role": "authenticated", "sub": sub, "aud": "authenticated",
           "app_metadata": {"role": "gre_staff"}})
    .to_string()
}

/// Runs `sql` as PostgREST would for a caller with these claims (role `authenticated`): one
/// transaction, committed on success. The rows, or the SQLSTATE of the refusal.
async fn as_api(
    db: &mut tokio_postgres::Client,
    claims: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, String> {
    let tx = db.transaction().await.expect("begin");
    tx.batch_execute("set local role authenticated")
        .await
        .expect("set role");
    tx.execute(
        "select set_config('request.jwt.claims', $1, true)",
        &[&claims],
    )
    .await
    .expect("claims");
    let result = tokio::time::timeout(Duration::from_secs(30), tx.query(sql, params))
        .await
        .expect("statement timed out");
    match result {
        Ok(rows) => {
            tx.commit().await.expect("commit");
            Ok(rows)
        }
        Err(e) => {
            let code = e
                .as_db_error()
                .map(|d| d.code().code().to_owned())
                .unwrap_or_else(|| panic!("not a database refusal: {e}"));
            let _ = tx.rollback().await;
            Err(code)
        }
    }
}

/// Waits until these GREs are online in gre_online_status.
async fn wait_online(db: &tokio_postgres::Client, gre_ids: &[&str]) {
    let ids: Vec<String> = gre_ids.iter().map(|s| s.to_string()).collect();
    eventually(WAIT, "staff online", || async {
        let n: i64 = db
            .query_one(
                "select count(*) from gre_online_status where gre_id = any($1) and is_online and status = 'online'",
                &[&ids],
            )
            .await
            .expect("query")
            .get(0);
        n == ids.len() as i64
    })
    .await;
}

/// Open sessions per assignee (None = the queue).
async fn loads(db: &tokio_postgres::Client) -> Vec<(Option<String>, i64)> {
    db.query(
        "select assigned_gre_id, count(*) from gre_chat_sessions where status <> 'closed' \
         group by 1 order by 1 nulls last",
        &[],
    )
    .await
    .expect("loads")
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

async fn auto_replies(db: &tokio_postgres::Client, session_id: Uuid) -> i64 {
    db.query_one(
        "select count(*) from gre_chat_messages where session_id = $1 and sender = 'system' \
         and system_kind in ('auto_reply', 'after_hours')",
        &[&session_id],
    )
    .await
    .expect("count")
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_opened_at_once_on_two_relays_are_spread_fairly_within_capacity() {
    let env = TestEnv::start().await;
    let second = start_relay(&env.settings, &env.url).await;
    let second_http = format!("http://{}", second.local_addr());
    let db = env.db().await;
    // Three GREs on duty, on both relays; capacity 5 each (the default): 15 places for 20 players.
    let _a = env.staff("gre-a").await;
    let _b = env.staff("gre-b").await;
    let mut c = WsClient::connect(&format!("ws://{}/ws", second.local_addr())).await;
    c.authenticate(&staff_token("gre-c")).await;
    wait_online(&db, &["gre-a", "gre-b", "gre-c"]).await;

    let mut sends = Vec::new();
    for p in 0..20i64 {
        let base = if p % 2 == 0 {
            env.http_url("")
        } else {
            second_http.clone()
        };
        sends.push(tokio::spawn(async move {
            call(
                reqwest::Method::POST,
                &format!("{base}/api/gre-chat/send"),
                &player_token(1000 + p),
                Some(json!({"message": format!("hello from {p}")})),
            )
            .await
        }));
    }
    for s in sends {
        let (status, body) = s.await.expect("send task");
        assert_eq!(status, 201, "{body}");
    }

    // Nobody over capacity, nobody idle while others carry more: 5, 5, 5, and 5 in the queue.
    assert_eq!(
        loads(&db).await,
        vec![
            (Some("gre-a".into()), 5),
            (Some("gre-b".into()), 5),
            (Some("gre-c".into()), 5),
            (None, 5)
        ]
    );
    // The queue got the auto-reply, once each; assigned sessions none.
    let queued: Vec<Uuid> = db
        .query(
            "select id from gre_chat_sessions where assigned_gre_id is null and status = 'waiting' order by created_at, id",
            &[],
        )
        .await
        .expect("queue")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for s in &queued {
        assert_eq!(auto_replies(&db, *s).await, 1);
    }
    let replied: i64 = db
        .query_one(
            "select count(*) from gre_chat_messages where system_kind = 'auto_reply'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(replied, 5, "only the queued sessions were told to wait");

    // gre-a closes one: the oldest in the queue goes to gre-a.
    let closed: Uuid = db
        .query_one(
            "update gre_chat_sessions set status = 'closed' where id = \
             (select id from gre_chat_sessions where assigned_gre_id = 'gre-a' limit 1) returning id",
            &[],
        )
        .await
        .expect("close")
        .get(0);
    let oldest: Option<String> = db
        .query_one(
            "select assigned_gre_id from gre_chat_sessions where id = $1",
            &[&queued[0]],
        )
        .await
        .expect("oldest")
        .get(0);
    assert_eq!(oldest.as_deref(), Some("gre-a"), "closed {closed}");
    assert_eq!(loads(&db).await.last(), Some(&(None, 4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gre_coming_online_takes_the_queue_oldest_first_up_to_capacity() {
    let env = TestEnv::start().await;
    let db = env.db().await;
    let setup = staff_token("gre-setup");
    // gre-z may take two.
    let (status, body) = call(
        reqwest::Method::PUT,
        &env.http_url("/api/gre-admin/desk/settings"),
        &setup,
        Some(json!({"agents": [{"greId": "gre-z", "capacity": 2, "displayName": "Zoe"}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["agents"][0]["capacity"], 2);

    let mut players = Vec::new();
    let mut sessions = Vec::new();
    for p in 0..3i64 {
        let mut ws = env.player(2000 + p).await;
        ws.send_json(json!({"type": "send_message", "message": "anyone there?"}))
            .await;
        // The new session is subscribed from its start, so its messages (the player's own, and
        // the auto-reply numbered after it) may come before the acknowledgement.
        let mut frames = Vec::new();
        while let Some(f) = ws.recv_within(Duration::from_millis(1500)).await {
            frames.push(f);
        }
        let sent = frames
            .iter()
            .find(|f| f["type"] == "message_sent")
            .expect("message_sent");
        sessions.push(
            sent["message"]["sessionId"]
                .as_str()
                .and_then(|s| s.parse::<Uuid>().ok())
                .expect("session id"),
        );
        let chat: Vec<&Value> = frames
            .iter()
            .filter(|f| f["type"] == "chat_message")
            .collect();
        assert_eq!(chat.len(), 2, "{frames:?}");
        assert_eq!(chat[0]["message"]["sender"], "player");
        assert_eq!(chat[1]["message"]["sender"], "system");
        assert_eq!(chat[1]["message"]["systemKind"], "auto_reply");
        assert_eq!(chat[0]["message"]["systemKind"], Value::Null);
        assert!(chat[1]["message"]["message"]
            .as_str()
            .is_some_and(|t| t.contains("busy")));
        players.push(ws);
    }
    assert_eq!(loads(&db).await, vec![(None, 3)]);

    let _z = env.staff("gre-z").await;
    for ws in players.iter_mut().take(2) {
        let update = ws.recv_type("session_updated").await;
        assert_eq!(update["session"]["assignedGreId"], "gre-z");
        assert_eq!(update["session"]["status"], "waiting");
    }
    let assigned: Vec<Option<String>> = {
        let mut v = Vec::new();
        for s in &sessions {
            v.push(
                db.query_one(
                    "select assigned_gre_id from gre_chat_sessions where id = $1",
                    &[s],
                )
                .await
                .expect("session")
                .get(0),
            );
        }
        v
    };
    assert_eq!(
        assigned,
        vec![Some("gre-z".into()), Some("gre-z".into()), None],
        "oldest first, up to gre-z's capacity of 2"
    );

    // More capacity: the third follows at once.
    let (status, _) = call(
        reqwest::Method::PUT,
        &env.http_url("/api/gre-admin/desk/settings"),
        &setup,
        Some(json!({"agents": [{"greId": "gre-z", "capacity": 3}]})),
    )
    .await;
    assert_eq!(status, 200);
    let update = players[2].recv_type("session_updated").await;
    assert_eq!(update["session"]["assignedGreId"], "gre-z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_and_a_direct_writer_at_once_get_exactly_one_auto_reply() {
    let env = TestEnv::start().await;
    let second = start_relay(&env.settings, &env.url).await;
    let player_id = 3001;
    let session = env.open_session(player_id).await;
    let mut watcher = env.player(player_id).await;

    let mut tasks = Vec::new();
    for i in 0..8 {
        // Relay one (WebSocket), relay two (REST), and the player straight through Supabase.
        let ws_url = env.ws_url();
        tasks.push(tokio::spawn(async move {
            let mut ws = WsClient::connect(&ws_url).await;
            ws.authenticate(&player_token(player_id)).await;
            ws.send_json(json!({"type": "send_message", "message": format!("ws {i}")}))
                .await;
            loop {
                let f = ws
                    .recv_within(CALL_WAIT)
                    .await
                    .expect("message_sent in time");
                if f["type"] == "message_sent" {
                    break;
                }
            }
        }));
        let rest = format!("http://{}/api/gre-chat/send", second.local_addr());
        tasks.push(tokio::spawn(async move {
            let (status, body) = call(
                reqwest::Method::POST,
                &rest,
                &player_token(player_id),
                Some(json!({"message": format!("rest {i}")})),
            )
            .await;
            assert_eq!(status, 201, "{body}");
        }));
        let url = env.url.clone();
        tasks.push(tokio::spawn(async move {
            let mut db = connect_db(&url).await;
            let text = format!("direct {i}");
            as_api(
                &mut db,
                &player_claims(player_id),
                "insert into gre_chat_messages (session_id, sender, message) values ($1, 'player', $2)",
                &[&session, &text],
            )
            .await
            .expect("direct insert");
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }

    let db = env.db().await;
    assert_eq!(auto_replies(&db, session).await, 1);
    let (players, status): (i64, String) = {
        let r = db
            .query_one(
                "select (select count(*) from gre_chat_messages where session_id = $1 and sender = 'player'), \
                        (select status from gre_chat_sessions where id = $1)",
                &[&session],
            )
            .await
            .expect("counts");
        (r.get(0), r.get(1))
    };
    assert_eq!(players, 24);
    assert_eq!(
        status, "waiting",
        "an auto-reply is no GRE's first response"
    );

    // The watching player saw it once, as a message of the thread.
    let mut seen = 0;
    while let Some(f) = watcher.recv_within(Duration::from_millis(800)).await {
        if f["type"] == "chat_message" && f["message"]["sender"] == "system" {
            seen += 1;
        }
    }
    assert_eq!(seen, 1);

    // A GRE answers: a new period begins, and the next message with nobody online gets one more.
    db.execute(
        "insert into gre_chat_messages (session_id, sender, sender_id, message) values ($1, 'gre', 'gre-q', 'One moment')",
        &[&session],
    )
    .await
    .expect("gre reply");
    db.execute(
        "insert into gre_chat_messages (session_id, sender, message) values ($1, 'player', 'still there?')",
        &[&session],
    )
    .await
    .expect("player");
    assert_eq!(auto_replies(&db, session).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outside_the_desk_hours_the_reply_is_the_out_of_office_text() {
    let env = TestEnv::start().await;
    let db = env.db().await;
    // Open only one minute a week, at a time that is not now.
    let now_dow: f64 = db
        .query_one(
            "select extract(dow from now() at time zone 'Asia/Tokyo')::float8",
            &[],
        )
        .await
        .expect("dow")
        .get(0);
    let other_day = (now_dow as i64 + 3) % 7;
    let (status, body) = call(
        reqwest::Method::PUT,
        &env.http_url("/api/gre-admin/desk/settings"),
        &staff_token("gre-m"),
        Some(
            json!({"timeZone": "Asia/Tokyo", "afterHoursText": "We open Friday at 6 pm.",
                    "hours": [{"day": other_day, "opens": "18:00", "closes": "18:01"}]}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        reqwest::Method::PUT,
        &env.http_url("/api/gre-admin/desk/settings"),
        &staff_token("gre-m"),
        Some(json!({"timeZone": "Mars/Olympus"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");

    let (status, body) = call(
        reqwest::Method::POST,
        &env.http_url("/api/gre-chat/send"),
        &player_token(4001),
        Some(json!({"message": "hello?"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let row = db
        .query_one(
            "select message, system_kind from gre_chat_messages where player_id = 4001 and sender = 'system'",
            &[],
        )
        .await
        .expect("reply");
    assert_eq!(row.get::<_, String>(0), "We open Friday at 6 pm.");
    assert_eq!(row.get::<_, String>(1), "after_hours");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_updates_both_consoles_and_the_player_sees_no_staff_detail() {
    let env = TestEnv::start().await;
    let second = start_relay(&env.settings, &env.url).await;
    let db = env.db().await;
    let mut anna = WsClient::connect(&env.ws_url()).await;
    anna.authenticate(&staff_token("gre-anna")).await;
    let mut ben = WsClient::connect(&format!("ws://{}/ws", second.local_addr())).await;
    ben.authenticate(&staff_token("gre-ben")).await;
    wait_online(&db, &["gre-anna", "gre-ben"]).await;
    let (status, _) = call(
        reqwest::Method::PUT,
        &env.http_url("/api/gre-admin/desk/settings"),
        &staff_token("gre-anna"),
        Some(json!({"autoAssign": false, "agents": [{"greId": "gre-ben", "displayName": "Ben"}]})),
    )
    .await;
    assert_eq!(status, 200);

    let mut player = env.player(5001).await;
    player
        .send_json(json!({"type": "send_message", "message": "I need help"}))
        .await;
    let sent = player.recv_type("message_sent").await;
    let session = sent["message"]["sessionId"]
        .as_str()
        .expect("session")
        .to_owned();
    db.execute(
        "update gre_chat_sessions set assigned_gre_id = 'gre-anna' where id = $1::text::uuid",
        &[&session],
    )
    .await
    .expect("assign");

    let secret = "whale, comped suite, watch for tilt";
    let (status, body) = call(
        reqwest::Method::POST,
        &env.http_url(&format!("/api/gre-admin/desk/sessions/{session}/transfer")),
        &gre_relay::auth::mint_staff_token(
            SECRET,
            "gre-anna",
            Some("Anna"),
            Duration::from_secs(3600),
        ),
        Some(json!({"toGreId": "gre-ben", "note": secret})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session"]["assignedGreId"], "gre-ben");

    for console in [&mut anna, &mut ben] {
        let t = console.recv_type("session_transferred").await;
        assert_eq!(t["note"]["note"], secret);
        assert_eq!(t["note"]["fromGreId"], "gre-anna");
        assert_eq!(t["note"]["toGreId"], "gre-ben");
    }
    for console in [&mut anna, &mut ben] {
        let u = console.recv_type("session_updated").await;
        assert_eq!(u["session"]["assignedGreId"], "gre-ben");
    }

    // The player: the line, the new assignee, and nothing of the note.
    let mut frames = Vec::new();
    while let Some(f) = player.recv_within(Duration::from_millis(800)).await {
        frames.push(f);
    }
    let text = serde_json::to_string(&frames).expect("frames");
    assert!(text.contains("Anna transferred the chat to Ben"), "{text}");
    assert!(!text.contains("whale"), "{text}");
    assert!(!text.contains("session_transferred"), "{text}");

    // The player's own history says the same.
    let (status, history) = call(
        reqwest::Method::GET,
        &env.http_url("/api/gre-chat/messages/5001"),
        &player_token(5001),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(!history.to_string().contains("whale"));

    // Back to the queue with autoAssign off: unassigned, and the record says who handed it back.
    let (status, body) = call(
        reqwest::Method::POST,
        &env.http_url(&format!("/api/gre-admin/desk/sessions/{session}/transfer")),
        &staff_token("gre-ben"),
        Some(json!({"toGreId": null})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session"]["assignedGreId"], Value::Null);
    let (status, _) = call(
        reqwest::Method::POST,
        &env.http_url(&format!(
            "/api/gre-admin/desk/sessions/{}/transfer",
            Uuid::new_v4()
        )),
        &staff_token("gre-ben"),
        Some(json!({"toGreId": "gre-anna"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        reqwest::Method::POST,
        &env.http_url(&format!("/api/gre-admin/desk/sessions/{session}/transfer")),
        &player_token(5001),
        Some(json!({"toGreId": "gre-anna"})),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn internal_notes_never_reach_a_player_by_any_path() {
    let env = TestEnv::start().await;
    let db = env.db().await;
    let player_id = 6001;
    let mut player = env.player(player_id).await;
    player
        .send_json(json!({"type": "send_message", "message": "hi"}))
        .await;
    let sent = player.recv_type("message_sent").await;
    let session: Uuid = sent["message"]["sessionId"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("session");
    let mut staff = env.staff("gre-n").await;

    // A LISTEN connection, as anyone with a login may open.
    let (listen_client, mut listen_conn) = tokio_postgres::connect(&env.url, tokio_postgres::NoTls)
        .await
        .expect("listen connect");
    let (tx, mut payloads) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| listen_conn.poll_message(cx));
        use futures_util::StreamExt;
        while let Some(Ok(m)) = stream.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send(n.payload().to_owned());
            }
        }
    });
    listen_client
        .batch_execute("listen gre_relay")
        .await
        .expect("listen");

    let secret = "suspected chip dumping with player 77";
    let (status, body) = call(
        reqwest::Method::POST,
        &env.http_url(&format!("/api/gre-admin/desk/sessions/{session}/notes")),
        &staff_token("gre-n"),
        Some(json!({"note": secret})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["note"]["kind"], "note");
    assert_eq!(body["note"]["authorId"], "gre-n");
    // Staff see it live and in the list.
    let live = staff.recv_type("internal_note").await;
    assert_eq!(live["note"]["note"], secret);
    let (status, list) = call(
        reqwest::Method::GET,
        &env.http_url(&format!("/api/gre-admin/desk/sessions/{session}/notes")),
        &staff_token("gre-n"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["notes"][0]["note"], secret);

    // 1. The player's socket: nothing of it.
    let mut frames = Vec::new();
    while let Some(f) = player.recv_within(Duration::from_millis(800)).await {
        frames.push(f);
    }
    let text = serde_json::to_string(&frames).expect("frames");
    assert!(
        !text.contains("chip dumping") && !text.contains("internal_note"),
        "{text}"
    );
    // 2. The player's REST: history, and the notes endpoint itself.
    let (_, history) = call(
        reqwest::Method::GET,
        &env.http_url(&format!("/api/gre-chat/messages/{player_id}")),
        &player_token(player_id),
        None,
    )
    .await;
    assert!(!history.to_string().contains("chip dumping"));
    let (status, _) = call(
        reqwest::Method::GET,
        &env.http_url(&format!("/api/gre-admin/desk/sessions/{session}/notes")),
        &player_token(player_id),
        None,
    )
    .await;
    assert_eq!(status, 403);
    // 3. Row level security, as the player through Supabase: no row; writing one is refused.
    let mut api = env.db().await;
    let rows = as_api(
        &mut api,
        &player_claims(player_id),
        "select note from gre_chat_internal_notes",
        &[],
    )
    .await
    .expect("select runs");
    assert!(rows.is_empty());
    let refused = as_api(
        &mut api,
        &player_claims(player_id),
        "insert into gre_chat_internal_notes (session_id, note) values ($1, 'x')",
        &[&session],
    )
    .await;
    assert_eq!(refused.map(|_| ()), Err("42501".to_owned()));
    let refused = as_api(
        &mut api,
        &player_claims(player_id),
        "select gre_relay.desk_transfer($1, null)",
        &[&session],
    )
    .await;
    assert_eq!(refused.map(|_| ()), Err("42501".to_owned()));
    // Staff through Supabase may transfer; the actor is the JWT's `sub`, whatever is passed.
    let rows = as_api(
        &mut api,
        &staff_claims("gre-n"),
        "select (gre_relay.desk_transfer($1, 'gre-o', null, 'someone-else', 'Mallory')).assigned_gre_id",
        &[&session],
    )
    .await
    .expect("staff transfer through the API");
    assert_eq!(
        rows[0].get::<_, Option<String>>(0).as_deref(),
        Some("gre-o")
    );
    let actor: String = db
        .query_one(
            "select author_id from gre_chat_internal_notes where kind = 'transfer' and session_id = $1",
            &[&session],
        )
        .await
        .expect("transfer record")
        .get(0);
    assert_eq!(actor, "gre-n");
    // Staff through Supabase do see it (the note and the transfer record).
    let rows = as_api(
        &mut api,
        &staff_claims("gre-n"),
        "select note from gre_chat_internal_notes",
        &[],
    )
    .await
    .expect("staff select");
    assert_eq!(rows.len(), 2);
    // anon: nothing at all.
    let tx = api.transaction().await.expect("begin");
    tx.batch_execute("set local role anon").await.expect("role");
    let denied = tx
        .query("select * from gre_chat_internal_notes", &[])
        .await
        .err()
        .and_then(|e| e.as_db_error().map(|d| d.code().code().to_owned()));
    assert_eq!(denied.as_deref(), Some("42501"));
    drop(tx);
    // 4. Push notifications: none carries it.
    let pushed: i64 = db
        .query_one(
            "select count(*) from push_notifications where message like '%chip dumping%' or title like '%chip dumping%'",
            &[],
        )
        .await
        .expect("push")
        .get(0);
    assert_eq!(pushed, 0);
    // 5. The NOTIFY payloads: identifiers only.
    let mut heard = Vec::new();
    while let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(300), payloads.recv()).await
    {
        heard.push(p);
    }
    assert!(
        heard.iter().any(|p| p.starts_with(r#"{"k":"n""#)),
        "{heard:?}"
    );
    assert!(heard.iter().all(|p| !p.contains("chip")), "{heard:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canned_responses_are_shared_live_and_short_codes_are_unique() {
    let env = TestEnv::start().await;
    let token = staff_token("gre-c1");
    let mut other = env.staff("gre-c2").await;
    let url = env.http_url("/api/gre-admin/desk/canned-responses");

    let (status, body) = call(
        reqwest::Method::POST,
        &url,
        &token,
        Some(json!({"shortCode": "/Table", "title": "Table ready",
                    "body": "Hi player {player_id}, your table is ready. {gre_name}"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["cannedResponse"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(body["cannedResponse"]["shortCode"], "table");
    assert_eq!(body["cannedResponse"]["createdBy"], "gre-c1");
    let live = other.recv_type("canned_response_updated").await;
    assert_eq!(live["cannedResponse"]["id"], id.as_str());

    let (status, body) = call(
        reqwest::Method::POST,
        &url,
        &token,
        Some(json!({"shortCode": "table", "body": "again"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");

    let (status, body) = call(
        reqwest::Method::PUT,
        &format!("{url}/{id}"),
        &token,
        Some(json!({"shortCode": "table", "body": "Your table is ready, {gre_name} will walk you over."})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let live = other.recv_type("canned_response_updated").await;
    assert!(live["cannedResponse"]["body"]
        .as_str()
        .is_some_and(|b| b.contains("walk you over")));

    let (status, _) = call(
        reqwest::Method::DELETE,
        &format!("{url}/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let live = other.recv_type("canned_response_deleted").await;
    assert_eq!(live["cannedResponse"]["deleted"], true);
    let (status, list) = call(reqwest::Method::GET, &url, &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["cannedResponses"], json!([]));
    // The code is free again.
    let (status, _) = call(
        reqwest::Method::POST,
        &url,
        &token,
        Some(json!({"shortCode": "table", "body": "Your table is ready"})),
    )
    .await;
    assert_eq!(status, 201);

    // Players: nothing.
    let (status, _) = call(reqwest::Method::GET, &url, &player_token(7001), None).await;
    assert_eq!(status, 403);
    let mut player = env.player(7001).await;
    player
        .expect_no("canned_response_updated", Duration::from_millis(300))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_player_writing_straight_through_supabase_is_assigned_and_gets_no_auto_reply() {
    let env = TestEnv::start().await;
    let db = env.db().await;
    let _gre = env.staff("gre-s").await;
    wait_online(&db, &["gre-s"]).await;

    // The player opens its session and writes, both through the API (PostgREST's way).
    let mut api = env.db().await;
    let rows = as_api(
        &mut api,
        &player_claims(8001),
        "insert into gre_chat_sessions (player_id) values (8001) returning id",
        &[],
    )
    .await
    .expect("open a session through the API");
    let session: Uuid = rows[0].get(0);
    as_api(
        &mut api,
        &player_claims(8001),
        "insert into gre_chat_messages (session_id, sender, message) values ($1, 'player', 'hello')",
        &[&session],
    )
    .await
    .expect("write through the API");

    let row = db
        .query_one(
            "select assigned_gre_id, status from gre_chat_sessions where id = $1",
            &[&session],
        )
        .await
        .expect("session");
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("gre-s"));
    assert_eq!(row.get::<_, String>(1), "waiting");
    assert_eq!(auto_replies(&db, session).await, 0, "a GRE is on it");
}
