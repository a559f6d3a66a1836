//! The connection's one timer (issue 12: the heartbeat, the resume hold and the token's end share
//! one `Sleep`): a peer that stops answering pings is closed with 4002 after two heartbeat
//! periods, and a peer that answers stays open however long it is idle.

use crate::support::*;
use std::time::Duration;

fn one_second_heartbeat() -> gre_relay::config::Settings {
    let mut settings = test_settings();
    settings.websocket.heartbeat_seconds = 1;
    settings
}

#[tokio::test]
async fn a_silent_peer_is_closed_4002_after_two_heartbeats() {
    let env = TestEnv::start_with(one_second_heartbeat()).await;
    let mut player = WsClient::connect(&env.ws_url()).await;
    player.authenticate(&player_token(81)).await;
    // The client library answers pings only while it reads: reading nothing is silence.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    match player.ending().await {
        Ending::Closed(Some(code), _) => assert_eq!(code, 4002),
        other => panic!("expected close 4002, got {other:?}"),
    }
}

#[tokio::test]
async fn a_peer_that_answers_pings_stays_open_while_idle() {
    let env = TestEnv::start_with(one_second_heartbeat()).await;
    let mut player = WsClient::connect(&env.ws_url()).await;
    player.authenticate(&player_token(82)).await;
    // Reading (and so answering pings) for three periods without a frame of its own.
    let still_open = tokio::time::timeout(Duration::from_millis(3500), player.ending()).await;
    assert!(
        still_open.is_err(),
        "closed while answering pings: {still_open:?}"
    );
    player.assert_alive().await;
}

#[tokio::test]
async fn with_a_write_linger_every_message_still_arrives_in_order() {
    let mut settings = test_settings();
    settings.websocket.write_linger_micros = 2000;
    let env = TestEnv::start_with(settings).await;
    let session = env.open_session(83).await;
    let mut player = WsClient::connect(&env.ws_url()).await;
    player.authenticate(&player_token(83)).await;
    let db = env.db().await;
    // Rows in separate statements, so the socket is busy (flushed within the linger) when the
    // later ones arrive: those wait out the linger, none is lost or reordered.
    for n in 1..=20 {
        db.execute(
            "insert into gre_chat_messages (session_id, sender, message) values ($1, 'gre', $2)",
            &[&session, &format!("m{n}")],
        )
        .await
        .expect("insert");
    }
    for n in 1..=20 {
        let frame = tokio::time::timeout(Duration::from_secs(2), player.recv_type("chat_message"))
            .await
            .expect("delivered");
        assert_eq!(frame["message"]["message"], format!("m{n}"));
    }
}
