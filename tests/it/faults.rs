//! Fault injection: the delivery promise holds while writers insert continuously and the LISTEN
//! connection is killed, PostgreSQL restarts, a relay crashes, or a client stops reading. Each
//! subscriber must end with every committed row of its session exactly once (after dropping
//! duplicates by id), in commit order. The database is the ground truth.

use crate::support::*;
use futures_util::StreamExt;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// Inserts rows into `sessions` round-robin every `every` until told to stop, reconnecting
/// after failures (a row whose commit is unknown is judged by the database afterwards).
fn spawn_writer(
    url: String,
    sessions: Vec<Uuid>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut committed = 0u64;
        let mut n = 0u64;
        'connect: while !*stop.borrow() {
            let Ok(Ok((client, conn))) = tokio::time::timeout(
                Duration::from_secs(2),
                tokio_postgres::connect(&url, tokio_postgres::NoTls),
            )
            .await
            else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            tokio::spawn(conn);
            loop {
                if *stop.borrow() {
                    break 'connect;
                }
                let session = sessions[(n as usize) % sessions.len()];
                n += 1;
                let text = format!("row {n}");
                match client
                    .execute(
                        "insert into gre_chat_messages (session_id, sender, sender_id, message) values ($1, 'gre', 'writer', $2)",
                        &[&session, &text],
                    )
                    .await
                {
                    Ok(_) => committed += 1,
                    Err(_) => continue 'connect,
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        committed
    })
}

/// Every message of a session in the database, in order: what subscribers must end with.
async fn ground_truth(url: &str, session: Uuid) -> Vec<String> {
    let db = connect_db(url).await;
    db.query(
        "select id::text from gre_chat_messages where session_id = $1 order by seq",
        &[&session],
    )
    .await
    .expect("ground truth")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// What one subscriber received for one session: ids in arrival order, duplicates dropped, and
/// whether cursors ever went backwards.
#[derive(Default, Debug)]
struct Received {
    ids: Vec<String>,
    seen: HashSet<String>,
    last_cursor: i64,
    out_of_order: u32,
    duplicates: u32,
}

impl Received {
    fn take(&mut self, frame: &serde_json::Value) {
        let m = &frame["message"];
        let id = m["id"].as_str().unwrap_or_default().to_owned();
        let cursor: i64 = m["cursor"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .unwrap_or(-1);
        if !self.seen.insert(id.clone()) {
            self.duplicates += 1;
            return;
        }
        if cursor <= self.last_cursor {
            self.out_of_order += 1;
        }
        self.last_cursor = cursor;
        self.ids.push(id);
    }
}

/// A client that keeps following one session across disconnects: it reconnects (to the first
/// of `urls` that answers) and subscribes with the cursor of the last message it saw.
fn spawn_resilient(
    urls: Vec<String>,
    token: String,
    session: Uuid,
    got: Arc<Mutex<Received>>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<u32> {
    tokio::spawn(async move {
        let mut reconnects = 0u32;
        'outer: while !*stop.borrow() {
            let mut connected = None;
            for url in &urls {
                if let Ok(Ok((ws, _))) = tokio::time::timeout(
                    Duration::from_secs(2),
                    tokio_tungstenite::connect_async(url.as_str()),
                )
                .await
                {
                    connected = Some(ws);
                    break;
                }
            }
            let Some(mut ws) = connected else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let since = got.lock().expect("lock").last_cursor.max(0).to_string();
            let hello = json!({"type": "authenticate", "token": token}).to_string();
            let sub =
                json!({"type": "subscribe", "sessionId": session, "since": since}).to_string();
            if futures_util::SinkExt::send(&mut ws, Message::text(hello))
                .await
                .is_err()
                || futures_util::SinkExt::send(&mut ws, Message::text(sub))
                    .await
                    .is_err()
            {
                continue;
            }
            loop {
                tokio::select! {
                    _ = stop.changed() => break 'outer,
                    next = ws.next() => match next {
                        Some(Ok(Message::Text(t))) => {
                            let frame: serde_json::Value = serde_json::from_str(&t).expect("json");
                            if frame["type"] == "chat_message" && frame["message"]["sessionId"] == session.to_string() {
                                got.lock().expect("lock").take(&frame);
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => { reconnects += 1; continue 'outer; }
                    }
                }
            }
        }
        reconnects
    })
}

/// Waits until `got` holds exactly the database's rows, then checks order and duplicates.
async fn assert_complete(url: &str, session: Uuid, got: &Arc<Mutex<Received>>, who: &str) {
    let truth = ground_truth(url, session).await;
    assert!(!truth.is_empty());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let have = got.lock().expect("lock").ids.len();
        if have >= truth.len() || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = got.lock().expect("lock");
    let missing: Vec<usize> = truth
        .iter()
        .enumerate()
        .filter(|(_, id)| !r.seen.contains(*id))
        .map(|(i, _)| i + 1)
        .collect();
    assert!(
        missing.is_empty(),
        "{who}: {} of {} rows never arrived (first: seq {:?})",
        missing.len(),
        truth.len(),
        &missing[..missing.len().min(10)]
    );
    let first_difference = r.ids.iter().zip(&truth).position(|(a, b)| a != b);
    assert!(
        r.ids == truth,
        "{who}: not in commit order; first difference at position {first_difference:?}"
    );
    assert_eq!(r.out_of_order, 0, "{who}: cursors went backwards");
}

/// A staff socket collecting every chat_message of one session, without subscribing.
fn spawn_collector(
    mut client: WsClient,
    session: Uuid,
    got: Arc<Mutex<Received>>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Say something, as a client does: live events flow once the first frame is handled.
        client.send_json(json!({"type": "ping"})).await;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                next = client.ws.next() => match next {
                    Some(Ok(Message::Text(t))) => {
                        let frame: serde_json::Value = serde_json::from_str(&t).expect("json");
                        if frame["type"] == "chat_message" && frame["message"]["sessionId"] == session.to_string() {
                            got.lock().expect("lock").take(&frame);
                        }
                    }
                    Some(Ok(_)) => {}
                    other => panic!("staff socket ended: {other:?}"),
                }
            }
        }
    })
}

/// A session written to continuously (one row every 3 ms), followed by a resilient player (on
/// the first of `player_urls` that answers) and by a staff socket on `env`'s relay that never
/// subscribes: the set-up of the fault tests below.
struct Stream {
    session: Uuid,
    player_got: Arc<Mutex<Received>>,
    staff_got: Arc<Mutex<Received>>,
    player: tokio::task::JoinHandle<u32>,
    staff: tokio::task::JoinHandle<()>,
    stop_writer: watch::Sender<bool>,
    writer: tokio::task::JoinHandle<u64>,
    /// Keeps the followers running until the stream is finished.
    _stop_followers: watch::Sender<bool>,
}

impl Stream {
    async fn start(env: &TestEnv, player_id: i64, player_urls: Vec<String>) -> Stream {
        let session = env.open_session(player_id).await;
        let (stop_followers, stop) = watch::channel(false);
        let player_got = Arc::new(Mutex::new(Received::default()));
        let staff_got = Arc::new(Mutex::new(Received::default()));
        let player = spawn_resilient(
            player_urls,
            player_token(player_id),
            session,
            player_got.clone(),
            stop.clone(),
        );
        let staff = spawn_collector(env.staff("staff-1").await, session, staff_got.clone(), stop);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (stop_writer, writer_stop) = watch::channel(false);
        let writer = spawn_writer(
            env.url.clone(),
            vec![session],
            Duration::from_millis(3),
            writer_stop,
        );
        Stream {
            session,
            player_got,
            staff_got,
            player,
            staff,
            stop_writer,
            writer,
            _stop_followers: stop_followers,
        }
    }

    /// Stops the writer, then checks that both followers hold every committed row once, in
    /// commit order. Returns how many rows the writer committed.
    async fn finish(self, url: &str, staff_is: &str) -> u64 {
        self.stop_writer.send(true).expect("stop writer");
        let committed = self.writer.await.expect("writer");
        assert_complete(url, self.session, &self.player_got, "player").await;
        assert_complete(url, self.session, &self.staff_got, staff_is).await;
        self.player.abort();
        self.staff.abort();
        committed
    }
}

#[tokio::test]
async fn killing_the_listen_connection_loses_nothing() {
    let env = TestEnv::start().await;
    let stream = Stream::start(&env, 70, vec![env.ws_url()]).await;
    let db = env.db().await;
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The relay reconnects with a back-off, and a loaded machine (CI) may take longer
        // than the pause above: wait, bounded, for its listener to be back before each kill.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let killed = loop {
            let killed = db
                .query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'gre-relay listener'", &[])
                .await
                .expect("terminate");
            if !killed.is_empty() || tokio::time::Instant::now() > deadline {
                break killed;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(killed.len(), 1, "one listener connection (kill {round})");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let committed = stream
        .finish(&env.url, "staff (no explicit subscription)")
        .await;
    assert!(committed > 50, "the writer kept writing ({committed})");

    let health: serde_json::Value = reqwest::get(env.http_url("/api/gre-chat/health"))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert!(
        health["listenerReconnects"].as_u64().unwrap_or(0) >= 3,
        "{health}"
    );
    let metrics = env.metrics_text().await;
    assert!(
        metrics.contains("gre_relay_listener_reconnects_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_postgres_restart_loses_nothing() {
    let mut env = TestEnv::start().await;
    let stream = Stream::start(&env, 71, vec![env.ws_url()]).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    env.pg.stop().await.expect("stop postgres");
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.pg.restart().await.expect("restart postgres");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.finish(&env.url, "staff").await;
}

#[tokio::test]
async fn a_crashed_relay_loses_nothing_for_clients_that_resume_elsewhere() {
    let env = TestEnv::start().await;
    let mut doomed = RelayProcess::spawn(&env.url).await;
    // The player prefers the doomed relay and falls back to the in-process one; the staff member
    // on the surviving relay sees everything throughout: two relays, one database.
    let stream = Stream::start(&env, 72, vec![doomed.ws_url.clone(), env.ws_url()]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    doomed.crash().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stream.finish(&env.url, "staff on the other relay").await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_without_hurting_others() {
    let mut settings = test_settings();
    settings.websocket.outbound_queue = 256;
    settings.websocket.write_timeout_seconds = 2;
    let env = TestEnv::start_with(settings).await;
    let session = env.open_session(73).await;
    // Never reads a byte after authenticating.
    let _sleeper = env.staff("sleepy").await;
    let (stop_tx, stop) = watch::channel(false);
    let got = Arc::new(Mutex::new(Received::default()));
    let reader = spawn_collector(env.staff("awake").await, session, got.clone(), stop.clone());

    // 12 MB of messages, in statements of 100 rows: far more than the socket buffers hold.
    let db = env.db().await;
    let big = "x".repeat(4000);
    for _ in 0..30 {
        db.execute(
            "insert into gre_chat_messages (session_id, sender, message) select $1, 'gre', $2 from generate_series(1, 100)",
            &[&session, &big],
        )
        .await
        .expect("insert");
    }
    assert_complete(&env.url, session, &got, "the reading client").await;
    let url = env.http_url("/api/gre-chat/health");
    eventually(
        Duration::from_secs(15),
        "the sleeper was dropped for lagging",
        || {
            let url = url.clone();
            async move {
                let h: serde_json::Value = reqwest::get(&url)
                    .await
                    .expect("health")
                    .json()
                    .await
                    .expect("json");
                h["laggedDisconnects"].as_u64().unwrap_or(0) >= 1 && h["connections"] == 1
            }
        },
    )
    .await;
    stop_tx.send(true).expect("stop");
    reader.await.expect("reader");
}

#[tokio::test]
async fn concurrent_writers_into_one_session_resume_exactly() {
    let env = TestEnv::start().await;
    let session = env.open_session(74).await;
    let (stop_tx, stop) = watch::channel(false);
    let got = Arc::new(Mutex::new(Received::default()));
    let follower = spawn_resilient(
        vec![env.ws_url()],
        player_token(74),
        session,
        got.clone(),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Six writers, each holding its transaction open a random moment after the insert, so that
    // rows commit in another order than they were inserted.
    let mut writers = Vec::new();
    for w in 0..6 {
        let url = env.url.clone();
        writers.push(tokio::spawn(async move {
            let mut db = connect_db(&url).await;
            for i in 0..60 {
                let tx = db.transaction().await.expect("tx");
                tx.execute(
                    "insert into gre_chat_messages (session_id, sender, message) values ($1, 'gre', $2)",
                    &[&session, &format!("w{w} m{i}")],
                )
                .await
                .expect("insert");
                tokio::time::sleep(Duration::from_micros(rand::random::<u64>() % 3000)).await;
                tx.commit().await.expect("commit");
            }
        }));
    }
    // Meanwhile the relay's LISTEN connection is killed again and again: the listener's
    // catch-up and live delivery must interleave without a gap or a reordering.
    let cutter = {
        let db = env.db().await;
        tokio::spawn(async move {
            for _ in 0..8 {
                tokio::time::sleep(Duration::from_millis(120)).await;
                let _ = db
                    .query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'gre-relay listener'", &[])
                    .await;
            }
        })
    };
    for w in writers {
        w.await.expect("writer");
    }
    cutter.await.expect("cutter");
    // Numbers are dense and unique: 1..=360 in commit order.
    let db = env.db().await;
    let seqs: Vec<i64> = db
        .query(
            "select seq from gre_chat_messages where session_id = $1 order by seq",
            &[&session],
        )
        .await
        .expect("seqs")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seqs, (1..=360).collect::<Vec<i64>>());
    assert_complete(&env.url, session, &got, "follower").await;
    stop_tx.send(true).expect("stop");
    let _ = follower.await;
}

#[tokio::test]
async fn a_reconnecting_client_resumes_exactly_from_its_cursor() {
    let env = TestEnv::start().await;
    let session = env.open_session(75).await;
    // Three writers at once, so rows commit interleaved while the client comes and goes.
    let (stop_writer, writer_stop) = watch::channel(false);
    let writers: Vec<_> = (0..3)
        .map(|_| {
            spawn_writer(
                env.url.clone(),
                vec![session],
                Duration::from_millis(2),
                writer_stop.clone(),
            )
        })
        .collect();
    let got = Arc::new(Mutex::new(Received::default()));
    // Connect, read a little, drop the socket, reconnect with the cursor: ten times.
    for _ in 0..10 {
        let mut c = WsClient::connect(&env.ws_url()).await;
        c.authenticate(&player_token(75)).await;
        let since = got.lock().expect("lock").last_cursor.max(0).to_string();
        c.send_json(json!({"type": "subscribe", "sessionId": session, "since": since}))
            .await;
        let until = tokio::time::Instant::now() + Duration::from_millis(80);
        while let Some(frame) = c
            .recv_within(until.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            if frame["type"] == "chat_message"
                && frame["message"]["sessionId"] == session.to_string()
            {
                got.lock().expect("lock").take(&frame);
            }
        }
        drop(c);
    }
    stop_writer.send(true).expect("stop writer");
    for writer in writers {
        writer.await.expect("writer");
    }
    // One last resume collects the rest.
    let mut c = WsClient::connect(&env.ws_url()).await;
    c.authenticate(&player_token(75)).await;
    let since = got.lock().expect("lock").last_cursor.to_string();
    c.send_json(json!({"type": "subscribe", "sessionId": session, "since": since}))
        .await;
    loop {
        let frame = c.recv().await;
        if frame["type"] == "subscribed" {
            break;
        }
        if frame["type"] == "chat_message" {
            got.lock().expect("lock").take(&frame);
        }
    }
    assert_complete(&env.url, session, &got, "resuming client").await;
}
