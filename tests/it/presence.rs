//! GRE presence and push notifications across relay processes on one database, with several
//! tabs, clean exits and crashes.

use crate::support::*;
use serde_json::json;
use std::time::Duration;

async fn staff_online(db: &tokio_postgres::Client, gre_id: &str) -> Option<(bool, String)> {
    db.query_opt(
        "select is_online, status from gre_online_status where gre_id = $1",
        &[&gre_id],
    )
    .await
    .expect("query")
    .map(|r| (r.get(0), r.get(1)))
}

async fn pushes(db: &tokio_postgres::Client, player_id: i64) -> i64 {
    db.query_one(
        "select count(*) from push_notifications where player_id = $1 and type = 'gre_chat'",
        &[&player_id],
    )
    .await
    .expect("count")
    .get(0)
}

#[tokio::test]
async fn staff_presence_follows_tabs_on_two_relays() {
    let env = TestEnv::start().await;
    let second = start_relay(&env.settings, &env.url).await;
    let db = env.db().await;

    let mut player = WsClient::connect(&env.ws_url()).await;
    player.authenticate(&player_token(29)).await;
    let first = player.recv_type("gre_presence").await;
    assert_eq!(first["anyOnline"], false);

    // Tab 1 on relay A: online, and the player is told.
    let mut tab_a = env.staff("anna").await;
    assert_eq!(
        staff_online(&db, "anna").await,
        Some((true, "online".into()))
    );
    let seen = player.recv_type("gre_presence").await;
    assert_eq!(
        (seen["anyOnline"].clone(), seen["onlineCount"].clone()),
        (json!(true), json!(1))
    );

    // Tab 2 on relay B; then tab 1 closes: still online.
    let mut tab_b = WsClient::connect(&format!("ws://{}/ws", second.local_addr())).await;
    tab_b.authenticate(&staff_token("anna")).await;
    tab_a.ws.close(None).await.expect("close tab a");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        staff_online(&db, "anna").await,
        Some((true, "online".into())),
        "one tab is still open"
    );

    // A staff console learns who is online.
    let mut observer = env.staff("boris").await;
    let about_anna = loop {
        let f = observer.recv_type("staff_presence").await;
        if f["greId"] == "anna" {
            break f;
        }
    };
    assert_eq!(about_anna["isOnline"], true);

    // The last tab closes: offline, and everyone hears it.
    tab_b.ws.close(None).await.expect("close tab b");
    eventually(WAIT, "anna offline", || async {
        staff_online(&db, "anna").await == Some((false, "offline".into()))
    })
    .await;
    let gone = loop {
        let f = observer.recv_type("staff_presence").await;
        if f["greId"] == "anna" {
            break f;
        }
    };
    assert_eq!(gone["isOnline"], false);
    second.shutdown().await;
}

#[tokio::test]
async fn a_crashed_relay_does_not_leave_its_staff_online() {
    let env = TestEnv::start().await;
    let db = env.db().await;
    let mut doomed = RelayProcess::spawn(&env.url).await;
    let mut staff = WsClient::connect(&doomed.ws_url).await;
    staff.authenticate(&staff_token("carla")).await;
    assert_eq!(
        staff_online(&db, "carla").await,
        Some((true, "online".into()))
    );

    doomed.crash().await;
    // Let time pass for the dead relay as it would: its heartbeat ages past the staleness limit.
    db.execute(
        "update gre_relay.relay_instances set heartbeat_at = now() - interval '1 minute' \
         where instance_id in (select instance_id from gre_relay.presence where subject = 'carla')",
        &[],
    )
    .await
    .expect("age heartbeat");
    // The surviving relay's next heartbeat (every 5 s) reaps it and marks carla offline.
    eventually(
        Duration::from_secs(15),
        "carla offline after the crash",
        || async { staff_online(&db, "carla").await == Some((false, "offline".into())) },
    )
    .await;
}

#[tokio::test]
async fn push_notifications_only_for_players_connected_nowhere() {
    let env = TestEnv::start().await;
    let db = env.db().await;
    let online_here = env.open_session(1).await;
    let online_elsewhere = env.open_session(2).await;
    let offline = env.open_session(3).await;
    let mut other = RelayProcess::spawn(&env.url).await;

    let _p1 = env.player(1).await;
    let mut p2 = WsClient::connect(&other.ws_url).await;
    p2.authenticate(&player_token(2)).await;

    // The staff portal writes straight to the database: one statement, three sessions.
    db.execute(
        "insert into gre_chat_messages (session_id, sender, sender_id, sender_name, message) \
         select s, 'gre', 'staff-7', 'Anna', 'Your table is ready' from unnest($1::uuid[]) s",
        &[&vec![online_here, online_elsewhere, offline]],
    )
    .await
    .expect("insert");
    assert_eq!(pushes(&db, 1).await, 0, "connected to this relay");
    assert_eq!(pushes(&db, 2).await, 0, "connected to another relay");
    assert_eq!(pushes(&db, 3).await, 1, "connected nowhere");
    let row = db
        .query_one(
            "select title, message from push_notifications where player_id = 3",
            &[],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, String>(0), "New message from Anna");
    assert_eq!(row.get::<_, String>(1), "Your table is ready");

    // Player messages never notify; a relay's own GRE reply to an offline player does.
    db.execute(
        "insert into gre_chat_messages (session_id, sender, message) values ($1, 'player', 'hi')",
        &[&offline],
    )
    .await
    .expect("insert");
    let mut staff = env.staff("staff-7").await;
    staff
        .send_json(
            json!({"type": "send_message", "sessionId": offline, "message": "Are you there?"}),
        )
        .await;
    staff.recv_type("message_sent").await;
    assert_eq!(pushes(&db, 3).await, 2);

    // Player 2's relay stops cleanly: player 2 is offline at once.
    other.terminate().await;
    eventually(WAIT, "player 2 presence removed", || async {
        let n: i64 = db
            .query_one(
                "select count(*) from gre_relay.presence where kind = 'player' and subject = '2'",
                &[],
            )
            .await
            .expect("count")
            .get(0);
        n == 0
    })
    .await;
    db.execute(
        "insert into gre_chat_messages (session_id, sender, message) values ($1, 'gre', 'back?')",
        &[&online_elsewhere],
    )
    .await
    .expect("insert");
    assert_eq!(pushes(&db, 2).await, 1);
}

#[tokio::test]
async fn health_is_503_while_the_database_is_down() {
    let mut env = TestEnv::start().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let url = env.http_url("/api/gre-chat/health");
    let ok = client.get(&url).send().await.expect("health");
    assert_eq!(ok.status(), 200);

    env.pg.stop().await.expect("stop postgres");
    let down = client.get(&url).send().await.expect("health");
    assert_eq!(down.status(), 503);
    let body: serde_json::Value = down.json().await.expect("json");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["database"], "down");

    env.pg.restart().await.expect("restart postgres");
    let (client, url) = (client.clone(), url.clone());
    eventually(Duration::from_secs(20), "health back to 200", || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .get(&url)
                .send()
                .await
                .map(|r| r.status() == 200)
                .unwrap_or(false)
        }
    })
    .await;
}
