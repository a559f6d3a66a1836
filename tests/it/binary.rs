//! The binary as a newcomer runs it: no configuration, an embedded PostgreSQL, the printed demo
//! token works, a row inserted with SQL arrives, SIGTERM stops everything cleanly.

use crate::support::*;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn relay_command(state_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gre-relay"));
    cmd.env_remove("DATABASE_URL")
        .env_remove("SUPABASE_JWT_SECRET")
        .env("PORT", "0")
        .env("GRE_SERVER__HOST", "127.0.0.1")
        .env("GRE_DATABASE__EMBEDDED__DIR", state_dir)
        .env("GRE_LOG", "warn")
        .kill_on_drop(true);
    cmd
}

/// What the banner tells a newcomer.
#[derive(Default, Debug)]
struct Banner {
    ws: String,
    database: String,
    player_token: String,
    staff_token: String,
}

async fn read_banner(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> Banner {
    let mut banner = Banner::default();
    let mut next_is = "";
    loop {
        let line = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
            .await
            .expect("banner in time")
            .expect("read stdout")
            .expect("the relay exited before printing its banner");
        let t = line.trim();
        match next_is {
            "player" => banner.player_token = t.to_owned(),
            "staff" => banner.staff_token = t.to_owned(),
            _ => {}
        }
        next_is = "";
        if let Some(ws) = t.strip_prefix("WebSocket:") {
            banner.ws = ws.trim().to_owned();
        } else if let Some(db) = t.strip_prefix("database:") {
            banner.database = db.split_whitespace().next().unwrap_or_default().to_owned();
        } else if t.starts_with("demo player token") {
            next_is = "player";
        } else if t.starts_with("demo staff token") {
            next_is = "staff";
        } else if t.starts_with("Press Ctrl-C") {
            return banner;
        }
    }
}

#[tokio::test]
async fn runs_on_the_embedded_default_with_no_configuration() {
    let state = tempfile::Builder::new()
        .prefix("gre-relay-bin-")
        .tempdir_in(scratch_root())
        .expect("tempdir");
    let mut child = relay_command(state.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn gre-relay");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let banner = read_banner(&mut lines).await;
    assert!(banner.ws.starts_with("ws://127.0.0.1:"), "{banner:?}");
    assert!(banner.database.starts_with("postgres://"), "{banner:?}");

    // The printed token authenticates a player; a row inserted with SQL reaches it in a second.
    let mut player = WsClient::connect(&banner.ws).await;
    let hello = player.authenticate(&banner.player_token).await;
    assert_eq!(hello["playerId"], 29);
    let mut staff = WsClient::connect(&banner.ws).await;
    assert_eq!(
        staff.authenticate(&banner.staff_token).await["role"],
        "gre_staff"
    );
    let db = connect_db(&banner.database).await;
    let session: uuid::Uuid = db
        .query_one(
            "insert into gre_chat_sessions (player_id) values (29) \
             on conflict (player_id) where status <> 'closed' do update set player_id = excluded.player_id returning id",
            &[],
        )
        .await
        .expect("session")
        .get(0);
    player
        .send_json(serde_json::json!({"type": "subscribe", "sessionId": session}))
        .await;
    player.recv_type("subscribed").await;
    db.execute(
        "insert into gre_chat_messages (session_id, sender, sender_id, sender_name, message) values ($1, 'gre', 'staff-7', 'Anna', 'Your table is ready')",
        &[&session],
    )
    .await
    .expect("insert");
    let got = tokio::time::timeout(Duration::from_secs(1), player.recv_type("chat_message"))
        .await
        .expect("within 1 s");
    assert_eq!(got["message"]["message"], "Your table is ready");
    drop(db);

    // SIGTERM: sockets are closed with 1001, the process exits 0, the cluster is stopped.
    let pid = nix::unistd::Pid::from_raw(child.id().expect("pid") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("sigterm");
    match player.ending().await {
        Ending::Closed(Some(code), _) => assert_eq!(code, 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exit in time")
        .expect("wait");
    assert!(status.success(), "{status:?}");
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_postgres::connect(&banner.database, tokio_postgres::NoTls),
    )
    .await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "the embedded cluster should be stopped"
    );

    // The data and the secret survive: a second start keeps the session, and `token` signs with
    // the same secret.
    let out = relay_command(state.path())
        .args(["token", "--player", "29"])
        .output()
        .await
        .expect("token");
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    let mut child = relay_command(state.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn again");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let banner = read_banner(&mut lines).await;
    let mut player = WsClient::connect(&banner.ws).await;
    let hello = player.authenticate(&token).await;
    assert_eq!(
        hello["sessionId"],
        session.to_string(),
        "data kept between runs"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id().expect("pid") as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("sigterm");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exit in time")
        .expect("wait");
    assert!(status.success());
}

#[tokio::test]
async fn migrate_and_help_commands() {
    let state = tempfile::Builder::new()
        .prefix("gre-relay-bin-")
        .tempdir_in(scratch_root())
        .expect("tempdir");
    let out = relay_command(state.path())
        .arg("migrate")
        .output()
        .await
        .expect("migrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("applied") && text.contains("triggers/20_message_notify.sql"),
        "{text}"
    );
    let out = relay_command(state.path())
        .arg("migrate")
        .output()
        .await
        .expect("migrate again");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("applied "),
        "second run applies nothing: {text}"
    );

    let out = relay_command(state.path())
        .arg("--help")
        .output()
        .await
        .expect("help");
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["serve", "migrate", "token"] {
        assert!(text.contains(word), "{text}");
    }
    // An external database without a secret is refused with a clear message.
    let out = relay_command(state.path())
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .await
        .expect("serve");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SUPABASE_JWT_SECRET"));
}
