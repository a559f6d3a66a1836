//! The SQL files: applied by the relay twice, applied by plain psql twice, versioned files refused
//! when edited and repeatable ones re-applied, a database of the previous release upgraded without
//! loss, and the row level security they set up.

use crate::support::*;
use gre_relay::db::migrate::{
    self, Kind, MigrateError, Migration, Outcome, EARLIER_RELEASES, MIGRATIONS,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    // One message per player, no auto-reply beside it.
    desk_off(&db).await;
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

/// `MIGRATIONS` with `name`'s text changed by appending `extra`, as a developer's edit would.
fn with_edit(name: &str, extra: &str) -> Vec<Migration> {
    MIGRATIONS
        .iter()
        .map(|m| {
            if m.name == name {
                Migration {
                    name: m.name,
                    sql: Box::leak(format!("{}\n{extra}\n", m.sql).into_boxed_str()),
                }
            } else {
                *m
            }
        })
        .collect()
}

async fn ledger(db: &tokio_postgres::Client) -> Vec<String> {
    db.query(
        "select name || ' ' || checksum || ' ' || applied_at::text from gre_relay.schema_migrations order by name",
        &[],
    )
    .await
    .expect("ledger")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

async fn table_exists(db: &tokio_postgres::Client, name: &str) -> bool {
    db.query_one("select to_regclass($1) is not null", &[&name])
        .await
        .expect("to_regclass")
        .get(0)
}

#[tokio::test]
async fn an_edited_versioned_file_is_refused_and_an_edited_repeatable_file_is_applied_again() {
    let (pg, _dir) = start_cluster().await;
    let url = pg.url();
    migrate::run(&url).await.expect("first run");
    let db = connect_db(&url).await;
    let ledger_before = ledger(&db).await;
    let schema_before = schema_snapshot(&db).await;

    // A released table file edited in place, in the same run as a changed trigger file that would
    // otherwise be applied: the run stops before either, and says which file and what to do.
    let trigger = MIGRATIONS
        .iter()
        .find(|m| m.kind() == Kind::Repeatable)
        .expect("a repeatable file")
        .name;
    let mut files = with_edit(
        "sql/0010_chat_sessions.sql",
        "create table if not exists public.edited_versioned_marker ();",
    );
    let edited_trigger = with_edit(
        trigger,
        "create table if not exists public.edited_repeatable_marker ();",
    );
    for (f, e) in files.iter_mut().zip(&edited_trigger) {
        if e.name == trigger {
            *f = *e;
        }
    }
    let err = migrate::run_files(&url, &files)
        .await
        .expect_err("an edited released file must be refused");
    assert!(
        matches!(&err, MigrateError::EditedVersioned { name, .. } if *name == "sql/0010_chat_sessions.sql"),
        "{err:?}"
    );
    let text = err.to_string();
    for part in [
        "sql/0010_chat_sessions.sql",
        "never edited once released",
        "new numbered file",
        "Nothing was applied",
        "update gre_relay.schema_migrations set checksum = '",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    assert!(!table_exists(&db, "public.edited_versioned_marker").await);
    assert!(!table_exists(&db, "public.edited_repeatable_marker").await);
    assert_eq!(ledger(&db).await, ledger_before, "nothing recorded");
    assert_eq!(schema_snapshot(&db).await, schema_before, "nothing applied");

    // The edited repeatable file alone is applied again, and only it.
    let report = migrate::run_files(&url, &edited_trigger)
        .await
        .expect("an edited repeatable file is applied");
    for (name, outcome) in &report {
        let expected = if *name == trigger {
            Outcome::Applied
        } else {
            Outcome::Unchanged
        };
        assert_eq!(*outcome, expected, "{name}");
    }
    assert!(table_exists(&db, "public.edited_repeatable_marker").await);
    // ... and once: the same text again changes nothing.
    let again = migrate::run_files(&url, &edited_trigger)
        .await
        .expect("again");
    assert!(
        again.iter().all(|(_, o)| *o == Outcome::Unchanged),
        "{again:?}"
    );

    // A ledger row from a release made before versioned files were frozen (when an edited file
    // was applied again) is upgraded the way that release would have: the file is applied once.
    let (old_name, old_sum) = EARLIER_RELEASES[0];
    db.execute(
        "update gre_relay.schema_migrations set checksum = $2 where name = $1",
        &[&old_name, &old_sum],
    )
    .await
    .expect("ledger of an earlier release");
    let report = migrate::run(&url).await.expect("earlier release upgrades");
    for (name, outcome) in &report {
        let expected = if *name == old_name || *name == trigger {
            // The trigger file returns to its text in MIGRATIONS.
            Outcome::Applied
        } else {
            Outcome::Unchanged
        };
        assert_eq!(*outcome, expected, "{name}");
    }
    // The DBA's deliberate repair that the refusal names: record the file's checksum as it is.
    db.execute(
        "update gre_relay.schema_migrations set checksum = 'something else' where name = 'sql/0020_chat_messages.sql'",
        &[],
    )
    .await
    .expect("a ledger out of step");
    let err = migrate::run(&url).await.expect_err("refused");
    let text = err.to_string();
    let repair = &text[text
        .find("update gre_relay.schema_migrations")
        .expect("repair line")..];
    db.batch_execute(repair)
        .await
        .expect("the repair line runs");
    let report = migrate::run(&url).await.expect("repaired");
    assert!(
        report.iter().all(|(_, o)| *o == Outcome::Unchanged),
        "{report:?}"
    );
}

/// Each row of a table as JSON, in a stable order.
async fn rows(db: &tokio_postgres::Client, table: &str) -> Vec<serde_json::Value> {
    db.query(
        &format!("select to_jsonb(t)::text from {table} t order by 1"),
        &[],
    )
    .await
    .expect("rows")
    .iter()
    .map(|r| serde_json::from_str(r.get::<_, &str>(0)).expect("json"))
    .collect()
}

#[tokio::test]
async fn a_database_of_the_previous_release_upgrades_without_loss() {
    let ((old, _old_dir), (fresh, _fresh_dir)) = tokio::join!(start_cluster(), start_cluster());
    let url = old.url();
    let mut db = connect_db(&url).await;

    // What commit 5141c69's `gre-relay migrate` did: every file of sql/ then triggers/, in name
    // order, each in its own transaction, recorded with its checksum.
    let release = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-5141c69");
    let mut released = Vec::new();
    for dir in ["sql", "triggers"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(release.join(dir))
            .expect("fixture dir")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files {
            let name = format!("{dir}/{}", f.file_name().expect("name").to_string_lossy());
            released.push((name, std::fs::read_to_string(&f).expect("fixture")));
        }
    }
    db.batch_execute(&released[0].1).await.expect("ledger file");
    for (name, sql) in &released {
        let tx = db.transaction().await.expect("tx");
        tx.batch_execute(sql).await.expect(name);
        tx.execute(
            "insert into gre_relay.schema_migrations (name, checksum) values ($1, $2) \
             on conflict (name) do update set checksum = excluded.checksum, applied_at = now()",
            &[name, &migrate::checksum(sql)],
        )
        .await
        .expect("record");
        tx.commit().await.expect("commit");
    }
    // Every released file of sql/ is byte for byte what the current binary holds.
    for (name, sql) in released.iter().filter(|(n, _)| n.starts_with("sql/")) {
        let current = MIGRATIONS.iter().find(|m| m.name == name).expect(name);
        assert_eq!(current.sql, sql, "{name} was edited after release");
    }

    // The club's data under the old schema.
    db.batch_execute(
        "insert into gre_chat_sessions (player_id) values (29), (30);
         insert into gre_chat_messages (session_id, sender, sender_id, sender_name, message)
           select id, 'player', player_id::text, 'Player ' || player_id, 'hello from ' || player_id from gre_chat_sessions;
         insert into gre_chat_messages (session_id, sender, sender_id, sender_name, message)
           select id, 'gre', 'staff-7', 'Anna', 'Your table is ready' from gre_chat_sessions where player_id = 29;
         update gre_chat_sessions set status = 'closed', closed_at = now() where player_id = 30;
         insert into gre_online_status (gre_id, is_online, status) values ('staff-7', true, 'online');
         insert into push_notifications (player_id, title, message, type) values (30, 'Hello', 'Welcome', 'gre_chat');",
    )
    .await
    .expect("data under the previous release");
    let tables = [
        "public.gre_chat_sessions",
        "public.gre_chat_messages",
        "public.gre_online_status",
        "public.push_notifications",
    ];
    let mut before = Vec::new();
    for t in tables {
        before.push(rows(&db, t).await);
    }
    assert!(before.iter().all(|r| !r.is_empty()));
    let ledger_before = ledger(&db).await;

    let report = migrate::run(&url).await.expect("upgrade");
    for (name, outcome) in &report {
        let released_as = released.iter().find(|(n, _)| n == name);
        let expected = match released_as {
            Some((_, sql))
                if MIGRATIONS
                    .iter()
                    .any(|m| m.name == *name && m.sql == sql.as_str()) =>
            {
                Outcome::Unchanged
            }
            _ => Outcome::Applied,
        };
        assert_eq!(*outcome, expected, "{name}");
    }

    // No row lost, no value changed: each old row is contained in its upgraded row (new columns
    // may have been added).
    for (t, old_rows) in tables.iter().zip(&before) {
        let new_rows = rows(&db, t).await;
        assert_eq!(new_rows.len(), old_rows.len(), "{t}");
        for (o, n) in old_rows.iter().zip(&new_rows) {
            for (k, v) in o.as_object().expect("row") {
                assert_eq!(n.get(k), Some(v), "{t}.{k}");
            }
        }
    }
    // The old ledger rows are kept: the versioned ones as they were.
    let ledger_after = ledger(&db).await;
    for row in ledger_before.iter().filter(|r| r.starts_with("sql/")) {
        assert!(ledger_after.contains(row), "{row}");
    }

    // The upgraded schema is the one a new database gets.
    migrate::run(&fresh.url()).await.expect("fresh");
    let fresh_db = connect_db(&fresh.url()).await;
    assert_eq!(schema_snapshot(&db).await, schema_snapshot(&fresh_db).await);

    // And it works: the contract's insert still reaches a player, after the upgrade.
    let mut settings = test_settings();
    settings.database.migrate_on_start = false;
    let relay = start_relay(&settings, &url).await;
    let session: uuid::Uuid = db
        .query_one("select id from gre_chat_sessions where player_id = 29", &[])
        .await
        .expect("session")
        .get(0);
    let mut player = WsClient::connect(&format!("ws://{}/ws", relay.local_addr())).await;
    player.authenticate(&player_token(29)).await;
    db.execute(
        "insert into gre_chat_messages (session_id, sender, sender_id, sender_name, message) values ($1, 'gre', 'staff-7', 'Anna', 'After the upgrade')",
        &[&session],
    )
    .await
    .expect("insert");
    assert_eq!(
        player.recv_type("chat_message").await["message"]["message"],
        "After the upgrade"
    );
    relay.shutdown().await;
}
