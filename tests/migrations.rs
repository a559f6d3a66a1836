//! The SQL files: applied by the relay twice, applied by plain psql twice, and the row level
//! security they set up.

mod support;

use gre_relay::db::migrate::{self, Outcome, MIGRATIONS};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

/// Everything a migration could change, as comparable text.
async fn schema_snapshot(db: &tokio_postgres::Client) -> Vec<String> {
    let queries = [
        "select table_schema || '.' || table_name || '.' || column_name || ':' || data_type || ':' || is_nullable || ':' || coalesce(column_default, '') \
         from information_schema.columns where table_schema in ('public', 'gre_relay') order by 1",
        "select schemaname || '.' || indexname || ':' || indexdef from pg_indexes where schemaname in ('public', 'gre_relay') order by 1",
        "select tablename || ':' || policyname || ':' || cmd || ':' || coalesce(qual, '') || ':' || coalesce(with_check, '') from pg_policies order by 1",
        "select tgrelid::regclass::text || ':' || tgname || ':' || pg_get_triggerdef(oid) from pg_trigger where not tgisinternal order by 1",
        "select n.nspname || '.' || p.proname || ':' || md5(p.prosrc) from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
         where n.nspname in ('gre_relay', 'auth') order by 1",
        "select conrelid::regclass::text || ':' || conname || ':' || pg_get_constraintdef(oid) from pg_constraint \
         where connamespace = 'public'::regnamespace order by 1",
    ];
    let mut out = Vec::new();
    for q in queries {
        for row in db.query(q, &[]).await.expect("snapshot query") {
            out.push(row.get::<_, String>(0));
        }
    }
    out
}

#[tokio::test]
async fn migrations_applied_twice_change_nothing() {
    let (pg, _dir) = start_cluster().await;
    let first = migrate::run(&pg.url()).await.expect("first run");
    assert!(
        first.iter().all(|(_, o)| *o == Outcome::Applied),
        "{first:?}"
    );
    let db = connect_db(&pg.url()).await;
    let before = schema_snapshot(&db).await;
    assert!(before
        .iter()
        .any(|l| l.contains("gre_chat_sessions_one_open_per_player")));

    let second = migrate::run(&pg.url()).await.expect("second run");
    assert!(
        second.iter().all(|(_, o)| *o == Outcome::Unchanged),
        "{second:?}"
    );
    assert_eq!(schema_snapshot(&db).await, before);
    let ledger: i64 = db
        .query_one("select count(*) from gre_relay.schema_migrations", &[])
        .await
        .expect("ledger")
        .get(0);
    assert_eq!(ledger as usize, MIGRATIONS.len());

    // Two relays migrating at once take turns instead of failing.
    let url = pg.url();
    let (a, b) = tokio::join!(migrate::run(&url), migrate::run(&url));
    a.expect("concurrent a");
    b.expect("concurrent b");
}

fn psql() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("psql"))
        .find(|p| p.is_file());
    on_path
        .or_else(|| {
            let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin/psql"))
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            found.pop()
        })
        .expect("psql is needed: apt-get install postgresql-client")
}

fn sql_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for dir in ["sql", "triggers"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        all.extend(files);
    }
    all
}

#[tokio::test]
async fn the_files_apply_with_plain_psql_twice_and_then_deliver() {
    let (pg, _dir) = start_cluster().await;
    let url = pg.url();
    for pass in 1..=2 {
        for file in sql_files() {
            let out = tokio::time::timeout(
                Duration::from_secs(30),
                tokio::process::Command::new(psql())
                    .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
                    .arg(&file)
                    .arg(&url)
                    .output(),
            )
            .await
            .expect("psql timed out")
            .expect("psql runs");
            assert!(
                out.status.success(),
                "pass {pass}: psql -f {} failed: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // What psql applied is a working schema: a relay on it delivers the contract's insert.
    let mut settings = test_settings();
    settings.database.migrate_on_start = false;
    let relay = start_relay(&settings, &url).await;
    let db = connect_db(&url).await;
    let session: uuid::Uuid = db
        .query_one(
            "insert into gre_chat_sessions (player_id) values (29) returning id",
            &[],
        )
        .await
        .expect("session")
        .get(0);
    let mut player = WsClient::connect(&format!("ws://{}/ws", relay.local_addr())).await;
    player.authenticate(&player_token(29)).await;
    db.execute(
        "insert into gre_chat_messages (session_id, sender, sender_id, sender_name, message) values ($1, 'gre', 'staff-7', 'Anna', 'Your table is ready')",
        &[&session],
    )
    .await
    .expect("insert");
    assert_eq!(
        player.recv_type("chat_message").await["message"]["message"],
        "Your table is ready"
    );
    relay.shutdown().await;
    // The relay's migrator accepts a database that psql set up.
    migrate::run(&url).await.expect("migrate after psql");
}

#[tokio::test]
async fn row_level_security_limits_players_to_their_own_rows() {
    let (pg, _dir) = start_cluster().await;
    migrate::run(&pg.url()).await.expect("migrate");
    let mut db = connect_db(&pg.url()).await;
    db.batch_execute(
        "insert into gre_chat_sessions (player_id) values (29), (30);
         insert into gre_chat_messages (session_id, sender, message) select id, 'player', 'hello ' || player_id from gre_chat_sessions;
         insert into push_notifications (player_id, title, message) values (29, 't', 'm'), (30, 't', 'm');",
    )
    .await
    .expect("seed");

    async fn visible(db: &mut tokio_postgres::Client, claims: &str, table: &str) -> i64 {
        let tx = db.transaction().await.expect("tx");
        tx.execute(
            "select set_config('request.jwt.claims', $1, true)",
            &[&claims],
        )
        .await
        .expect("claims");
        tx.batch_execute("set local role authenticated")
            .await
            .expect("role");
        let n: i64 = tx
            .query_one(&format!("select count(*) from public.{table}"), &[])
            .await
            .expect("count")
            .get(0);
        tx.rollback().await.expect("rollback");
        n
    }
    let player = r#"{"role":"authenticated","app_metadata":{"player_id":29}}"#;
    let player_str = r#"{"role":"authenticated","app_metadata":{"player_id":"30"}}"#;
    let staff = r#"{"role":"authenticated","sub":"staff-1","app_metadata":{"role":"gre_staff"}}"#;
    let forged = r#"{"role":"authenticated","user_metadata":{"player_id":29,"role":"gre_staff"}}"#;
    for table in [
        "gre_chat_sessions",
        "gre_chat_messages",
        "push_notifications",
    ] {
        assert_eq!(visible(&mut db, player, table).await, 1, "{table}");
        assert_eq!(visible(&mut db, player_str, table).await, 1, "{table}");
        assert_eq!(visible(&mut db, staff, table).await, 2, "{table}");
        assert_eq!(
            visible(&mut db, forged, table).await,
            0,
            "user_metadata grants nothing: {table}"
        );
    }

    // A player cannot write into another player's session.
    let tx = db.transaction().await.expect("tx");
    tx.execute(
        "select set_config('request.jwt.claims', $1, true)",
        &[&player],
    )
    .await
    .expect("claims");
    tx.batch_execute("set local role authenticated")
        .await
        .expect("role");
    let err = tx
        .execute(
            "insert into gre_chat_messages (session_id, sender, message) select id, 'player', 'x' from gre_chat_sessions where player_id = 30",
            &[],
        )
        .await;
    // RLS hides session 30 from player 29, so nothing is selected and nothing inserted.
    assert_eq!(err.expect("no error, nothing visible"), 0);
    tx.rollback().await.expect("rollback");
}
