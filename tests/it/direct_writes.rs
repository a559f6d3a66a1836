//! Writes straight through Supabase (CONTRACT v2, section 1): the attacks of issue 11, run the way
//! PostgREST runs a request (`set local role authenticated` plus `request.jwt.claims`), against a
//! database prepared the way Supabase prepares one (its roles, its `auth` schema and its default
//! privileges granting everything to anon, authenticated and service_role) BEFORE the relay's
//! migrations run. Each attack is refused or its values replaced, and the data is intact after.

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// What a Supabase project has before any migration of ours: the API roles, the `auth` helpers
/// reading `request.jwt.claims`, usage on `public`, and default privileges that give every new
/// table, function and sequence in `public` to anon, authenticated and service_role.
const SUPABASE_PREPARATION: &str = r#"
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$$;
grant anon, authenticated, service_role to authenticator;
create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;
create or replace function auth.jwt() returns jsonb language sql stable as $f$
  select coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb $f$;
create or replace function auth.uid() returns uuid language sql stable as $f$
  select nullif(coalesce(current_setting('request.jwt.claim.sub', true),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')), '')::uuid $f$;
create or replace function auth.role() returns text language sql stable as $f$
  select nullif(coalesce(current_setting('request.jwt.claim.role', true),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')), '')::text $f$;
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
"#;

/// A Supabase-like database with the relay's schema, and optionally a relay on it.
struct Db {
    relay: Option<gre_relay::server::Relay>,
    url: String,
    // Declared after the relay so it is stopped after it.
    _pg: embedded_postgres::EmbeddedPostgres,
    _dir: tempfile::TempDir,
}

impl Db {
    /// Prepared like Supabase, then migrated by a relay started with `settings` (or by
    /// `gre-relay migrate` alone when `settings` is None).
    async fn start(settings: Option<gre_relay::config::Settings>) -> Db {
        let (pg, dir) = start_cluster().await;
        let url = pg.url();
        connect_db(&url)
            .await
            .batch_execute(SUPABASE_PREPARATION)
            .await
            .expect("prepare like Supabase");
        let relay = match settings {
            Some(s) => Some(start_relay(&s, &url).await),
            None => {
                gre_relay::db::migrate::run(&url).await.expect("migrate");
                None
            }
        };
        Db {
            relay,
            url,
            _pg: pg,
            _dir: dir,
        }
    }

    async fn owner(&self) -> tokio_postgres::Client {
        connect_db(&self.url).await
    }

    fn ws_url(&self) -> String {
        format!(
            "ws://{}/ws",
            self.relay.as_ref().expect("relay").local_addr()
        )
    }

    fn http_url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.relay.as_ref().expect("relay").local_addr(),
            path
        )
    }
}

fn player(id: i64) -> String {
    json!({"role": "authenticated", "sub": format!("user-{id}"), "aud": "authenticated",
           "app_metadata": {"player_id": id}})
    .to_string()
}

fn staff(sub: &str) -> String {
    json!({"role": "authenticated", "sub": sub, "aud": "authenticated",
           "app_metadata": {"role": "gre_staff"}})
    .to_string()
}

/// An anonymous sign-in: `authenticated`, but neither a player nor staff.
fn anonymous() -> String {
    json!({"role": "authenticated", "sub": "anon-1", "is_anonymous": true, "app_metadata": {}})
        .to_string()
}

/// A refusal as a client of PostgREST would see it.
#[derive(Debug)]
struct Refused {
    code: String,
    message: String,
}

impl Refused {
    fn text(&self) -> String {
        format!("{} {}", self.code, self.message)
    }
}

/// Runs `sql` as PostgREST runs a request: one transaction, `set local role`, the claims in
/// `request.jwt.claims`; committed when it succeeds. Returns the rows or the refusal.
async fn as_api(
    db: &mut tokio_postgres::Client,
    role: &str,
    claims: Option<&str>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, Refused> {
    let tx = db.transaction().await.expect("begin");
    tx.batch_execute(&format!("set local role {role}"))
        .await
        .expect("set role");
    if let Some(claims) = claims {
        tx.execute(
            "select set_config('request.jwt.claims', $1, true)",
            &[&claims],
        )
        .await
        .expect("claims");
    }
    let result = tokio::time::timeout(Duration::from_secs(60), tx.query(sql, params))
        .await
        .expect("statement timed out");
    match result {
        Ok(rows) => {
            tx.commit().await.expect("commit");
            Ok(rows)
        }
        Err(e) => {
            let refused = match e.as_db_error() {
                Some(d) => Refused {
                    code: d.code().code().to_owned(),
                    message: d.message().to_owned(),
                },
                None => panic!("not a database refusal: {e}"),
            };
            let _ = tx.rollback().await;
            Err(refused)
        }
    }
}

fn refused(r: Result<Vec<tokio_postgres::Row>, Refused>, code: &str, what: &str) -> Refused {
    match r {
        Ok(rows) => panic!("{what}: expected refusal {code}, got {} rows", rows.len()),
        Err(e) => {
            assert_eq!(e.code, code, "{what}: {e:?}");
            e
        }
    }
}

async fn one<T: for<'a> tokio_postgres::types::FromSql<'a>>(
    db: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> T {
    db.query_one(sql, params).await.expect(sql).get(0)
}

async fn open_session(db: &tokio_postgres::Client, player_id: i64) -> Uuid {
    one(
        db,
        "insert into gre_chat_sessions (player_id) values ($1) returning id",
        &[&player_id],
    )
    .await
}

/// Everything of the four tables, to prove a refused attack changed nothing.
async fn snapshot(db: &tokio_postgres::Client) -> String {
    one(
        db,
        "select concat_ws('|', \
           (select string_agg(concat_ws(',', id, player_id, status, assigned_gre_id, created_at, updated_at, closed_at, last_seq), ';' order by id) from gre_chat_sessions), \
           (select string_agg(concat_ws(',', id, session_id, player_id, sender, sender_id, sender_name, message, status, created_at, seq), ';' order by id) from gre_chat_messages), \
           (select string_agg(concat_ws(',', gre_id, is_online, status, last_seen), ';' order by gre_id) from gre_online_status), \
           (select string_agg(concat_ws(',', id, player_id, title, message, read_at), ';' order by id) from push_notifications))",
        &[],
    )
    .await
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn supabase_default_grants_are_revoked_and_anon_gets_nothing() {
    let env = Db::start(None).await;
    let owner = env.owner().await;
    let s29 = open_session(&owner, 29).await;
    owner
        .execute(
            "insert into gre_chat_messages (session_id, sender, message) values ($1, 'gre', 'hello')",
            &[&s29],
        )
        .await
        .expect("seed");
    owner
        .execute(
            "insert into gre_online_status (gre_id, is_online, status) values ('staff-7', true, 'online')",
            &[],
        )
        .await
        .expect("seed presence");
    let before = snapshot(&owner).await;
    let mut db = env.owner().await;

    let tables = [
        "gre_chat_sessions",
        "gre_chat_messages",
        "gre_online_status",
        "push_notifications",
    ];
    for table in tables {
        for (role, claims) in [
            ("anon", None),
            ("authenticated", Some(player(29))),
            ("authenticated", Some(staff("staff-7"))),
            ("service_role", None),
        ] {
            let sql = format!("truncate public.{table} cascade");
            refused(
                as_api(&mut db, role, claims.as_deref(), &sql, &[]).await,
                "42501",
                &format!("truncate {table} as {role}"),
            );
        }
        // anon can neither read nor write, even with Supabase's default grants.
        for sql in [
            format!("select count(*) from public.{table}"),
            format!("delete from public.{table}"),
            format!(
                "update public.{table} set {} = {}",
                match table {
                    "gre_chat_sessions" | "gre_chat_messages" | "gre_online_status" => "status",
                    _ => "read_at",
                },
                match table {
                    "push_notifications" => "now()",
                    _ => "'closed'",
                }
            ),
        ] {
            refused(
                as_api(&mut db, "anon", None, &sql, &[]).await,
                "42501",
                &format!("anon: {sql}"),
            );
        }
        // Nobody through the API deletes.
        refused(
            as_api(
                &mut db,
                "authenticated",
                Some(&staff("staff-7")),
                &format!("delete from public.{table}"),
                &[],
            )
            .await,
            "42501",
            &format!("staff delete {table}"),
        );
    }
    refused(
        as_api(
            &mut db,
            "anon",
            None,
            "insert into gre_chat_sessions (player_id) values (29)",
            &[],
        )
        .await,
        "42501",
        "anon insert",
    );
    // No function of gre_relay is executable by PUBLIC or anon; the private tables by nobody.
    let open_to_anon: i64 = one(
        &owner,
        "select count(*) from pg_proc p where p.pronamespace = 'gre_relay'::regnamespace \
           and (has_function_privilege('anon', p.oid, 'execute') \
                or exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a \
                            where a.grantee = 0 and a.privilege_type = 'EXECUTE'))",
        &[],
    )
    .await;
    assert_eq!(
        open_to_anon, 0,
        "gre_relay functions executable by PUBLIC or anon"
    );
    let definer_open: Vec<String> = owner
        .query(
            "select p.proname::text from pg_proc p where p.pronamespace = 'gre_relay'::regnamespace \
               and p.prosecdef and has_function_privilege('authenticated', p.oid, 'execute') order by 1",
            &[],
        )
        .await
        .expect("definer functions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // desk_transfer (issue 13) checks its caller's JWT itself: staff only.
    assert_eq!(
        definer_open,
        ["caller_may_chat", "desk_transfer", "take_direct_write"]
    );
    for table in [
        "settings",
        "direct_write_buckets",
        "chat_access",
        "presence",
    ] {
        refused(
            as_api(
                &mut db,
                "authenticated",
                Some(&staff("staff-7")),
                &format!("select * from gre_relay.{table}"),
                &[],
            )
            .await,
            "42501",
            table,
        );
    }
    // Staff presence: staff read it; players and anonymous sign-ins see nothing.
    for (claims, visible) in [(staff("staff-7"), 1i64), (player(29), 0), (anonymous(), 0)] {
        let rows = as_api(
            &mut db,
            "authenticated",
            Some(&claims),
            "select count(*) from gre_online_status",
            &[],
        )
        .await
        .expect("select");
        assert_eq!(rows[0].get::<_, i64>(0), visible, "{claims}");
    }
    // An anonymous sign-in reads and writes nothing of the chat.
    for sql in [
        "select count(*) from gre_chat_messages",
        "select count(*) from gre_chat_sessions",
    ] {
        let rows = as_api(&mut db, "authenticated", Some(&anonymous()), sql, &[])
            .await
            .expect("select");
        assert_eq!(rows[0].get::<_, i64>(0), 0, "{sql}");
    }
    refused(
        as_api(
            &mut db,
            "authenticated",
            Some(&anonymous()),
            "insert into gre_chat_messages (session_id, sender, message) values ($1, 'player', 'hi')",
            &[&s29],
        )
        .await,
        "42501",
        "anonymous sign-in insert",
    );
    assert_eq!(snapshot(&owner).await, before, "data intact");
}

#[tokio::test]
async fn server_owned_columns_are_the_databases() {
    let env = Db::start(None).await;
    let owner = env.owner().await;
    // Counts message numbers: no auto-reply in between.
    desk_off(&owner).await;
    let mut db = env.owner().await;
    let p29 = player(29);

    // A player opening its own session chooses nothing but itself.
    let rows = as_api(
        &mut db,
        "authenticated",
        Some(&p29),
        "insert into gre_chat_sessions (player_id, status, assigned_gre_id) values (29, 'active', 'staff-nobody') \
         returning id, status, assigned_gre_id, last_seq, created_at <= now() + interval '1 minute'",
        &[],
    )
    .await
    .expect("a player opens its session");
    let s29: Uuid = rows[0].get(0);
    assert_eq!(rows[0].get::<_, String>(1), "waiting");
    assert_eq!(rows[0].get::<_, Option<String>>(2), None);
    assert_eq!(rows[0].get::<_, i64>(3), 0);
    assert!(rows[0].get::<_, bool>(4));
    for (sql, what) in [
        ("insert into gre_chat_sessions (player_id, created_at, updated_at) values (29, '2999-01-01', '2999-01-01')", "future timestamps"),
        ("insert into gre_chat_sessions (player_id, last_seq) values (29, -100)", "last_seq -100"),
        ("insert into gre_chat_sessions (player_id, last_seq) values (29, 9223372036854775807)", "huge last_seq"),
        ("insert into gre_chat_sessions (player_id, closed_at) values (29, now())", "closed_at"),
        ("update gre_chat_sessions set last_seq = -100", "last_seq update"),
        ("update gre_chat_sessions set status = 'closed'", "status update"),
    ] {
        let r = as_api(&mut db, "authenticated", Some(&p29), sql, &[]).await;
        match r {
            // Updates by a player match no row: only staff update sessions.
            Ok(rows) => assert!(rows.is_empty() && sql.starts_with("update"), "{what}"),
            Err(e) => assert_eq!(e.code, "42501", "{what}: {e:?}"),
        }
    }
    // Another player's session, or one with an assignee: refused.
    refused(
        as_api(
            &mut db,
            "authenticated",
            Some(&player(31)),
            "insert into gre_chat_sessions (player_id) values (29)",
            &[],
        )
        .await,
        "42501",
        "a session for another player",
    );

    // Messages: status, created_at, seq are the database's; a player's sender_id is its id.
    for (sql, what) in [
        ("insert into gre_chat_messages (session_id, sender, message, status) values ($1, 'player', 'x', 'read')", "status"),
        ("insert into gre_chat_messages (session_id, sender, message, created_at) values ($1, 'player', 'x', '2999-01-01')", "created_at"),
        ("insert into gre_chat_messages (session_id, sender, message, seq) values ($1, 'player', 'x', 1000)", "seq"),
        ("insert into gre_chat_messages (session_id, sender, message) values ($1, 'gre', 'I am staff')", "sender gre"),
    ] {
        refused(
            as_api(&mut db, "authenticated", Some(&p29), sql, &[&s29]).await,
            "42501",
            what,
        );
    }
    let rows = as_api(
        &mut db,
        "authenticated",
        Some(&p29),
        "insert into gre_chat_messages (session_id, sender, sender_id, message) values ($1, 'player', 'staff-7', 'hi') \
         returning sender_id, status, seq",
        &[&s29],
    )
    .await
    .expect("player message");
    assert_eq!(rows[0].get::<_, String>(0), "29");
    assert_eq!(rows[0].get::<_, String>(1), "sent");
    assert_eq!(rows[0].get::<_, i64>(2), 1);

    // Even the service key and the owner cannot choose them (the trigger replaces them).
    let rows = as_api(
        &mut db,
        "service_role",
        None,
        "insert into gre_chat_messages (session_id, sender, sender_id, message, status, created_at, seq) \
         values ($1, 'player', '31', 'from the service key', 'read', '2999-01-01', 77) \
         returning sender_id, status, created_at < '2100-01-01', seq",
        &[&s29],
    )
    .await
    .expect("service insert");
    assert_eq!(rows[0].get::<_, String>(0), "29");
    assert_eq!(rows[0].get::<_, String>(1), "sent");
    assert!(rows[0].get::<_, bool>(2));
    assert_eq!(rows[0].get::<_, i64>(3), 2);
    let row = owner
        .query_one(
            "insert into gre_chat_sessions (player_id, last_seq, created_at, updated_at, closed_at) \
             values (31, 9223372036854775807, '2999-01-01', '2999-01-01', '2999-01-01') \
             returning id, last_seq, created_at < '2100-01-01', updated_at < '2100-01-01', closed_at",
            &[],
        )
        .await
        .expect("owner session");
    let s31: Uuid = row.get(0);
    assert_eq!(row.get::<_, i64>(1), 0);
    assert!(row.get::<_, bool>(2) && row.get::<_, bool>(3));
    assert_eq!(row.get::<_, Option<std::time::SystemTime>>(4), None);
    let err = owner
        .execute(
            "update gre_chat_sessions set last_seq = -100 where id = $1",
            &[&s31],
        )
        .await
        .expect_err("negative last_seq");
    assert_eq!(err.code().map(|c| c.code()), Some("23514"), "{err}");

    // After all that, the sessions still number messages and staff replies still land.
    let rows = as_api(
        &mut db,
        "authenticated",
        Some(&staff("staff-7")),
        "insert into gre_chat_messages (session_id, sender, message) values ($1, 'gre', 'welcome'), ($2, 'gre', 'welcome') \
         returning seq, sender_id",
        &[&s29, &s31],
    )
    .await
    .expect("staff replies");
    let seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(seqs, [3, 1]);
    assert!(rows.iter().all(|r| r.get::<_, String>(1) == "staff-7"));
    let status: String = one(
        &owner,
        "select status from gre_chat_sessions where id = $1",
        &[&s29],
    )
    .await;
    assert_eq!(status, "active", "the first GRE reply makes it active");
}

#[tokio::test]
async fn status_only_moves_forward_and_players_mark_only_the_other_side_read() {
    let env = Db::start(None).await;
    let owner = env.owner().await;
    // Counts the other side's messages: no auto-reply among them.
    desk_off(&owner).await;
    let mut db = env.owner().await;
    let s29 = open_session(&owner, 29).await;
    let s31 = open_session(&owner, 31).await;
    owner
        .batch_execute(&format!(
            "insert into gre_chat_messages (session_id, sender, message) values
               ('{s29}', 'player', 'p1'), ('{s29}', 'gre', 'g1'), ('{s29}', 'gre', 'g2'),
               ('{s31}', 'gre', 'for 31');"
        ))
        .await
        .expect("seed");
    let p29 = player(29);
    let status = |m: &'static str| {
        let owner = &owner;
        async move {
            one::<String>(
                owner,
                "select status from gre_chat_messages where message = $1",
                &[&m],
            )
            .await
        }
    };

    // Its own message is not its to mark: nothing matches.
    let rows = as_api(
        &mut db,
        "authenticated",
        Some(&p29),
        "update gre_chat_messages set status = 'read' where sender = 'player' returning id",
        &[],
    )
    .await
    .expect("own messages");
    assert!(rows.is_empty());
    assert_eq!(status("p1").await, "sent", "unread counts stay right");
    // Only 'read', never 'delivered'.
    refused(
        as_api(
            &mut db,
            "authenticated",
            Some(&p29),
            "update gre_chat_messages set status = 'delivered' where sender = 'gre'",
            &[],
        )
        .await,
        "42501",
        "player sets delivered",
    );
    // Marking read works, once: a second identical update changes (and announces) nothing.
    let rows = as_api(
        &mut db,
        "authenticated",
        Some(&p29),
        "update gre_chat_messages set status = 'read' returning message",
        &[],
    )
    .await
    .expect("mark read");
    assert_eq!(rows.len(), 2, "g1 and g2 only");
    let rows = as_api(
        &mut db,
        "authenticated",
        Some(&p29),
        "update gre_chat_messages set status = 'read' returning message",
        &[],
    )
    .await
    .expect("mark read again");
    assert!(rows.is_empty(), "a no-op update moves nothing");
    assert_eq!(
        status("for 31").await,
        "sent",
        "another player's row untouched"
    );
    // Nobody moves a status backwards: not staff, not the service key, not the owner.
    for (role, claims) in [
        ("authenticated", Some(staff("staff-7"))),
        ("service_role", None),
    ] {
        refused(
            as_api(
                &mut db,
                role,
                claims.as_deref(),
                "update gre_chat_messages set status = 'sent' where message = 'g1'",
                &[],
            )
            .await,
            "23514",
            role,
        );
    }
    let err = owner
        .execute(
            "update gre_chat_messages set status = 'delivered' where message = 'g2'",
            &[],
        )
        .await
        .expect_err("owner backwards");
    assert_eq!(err.code().map(|c| c.code()), Some("23514"));
    // Staff mark the player's message read.
    let rows = as_api(
        &mut db,
        "authenticated",
        Some(&staff("staff-7")),
        "update gre_chat_messages set status = 'read' where message = 'p1' returning id",
        &[],
    )
    .await
    .expect("staff mark read");
    assert_eq!(rows.len(), 1);

    // Push notifications: a player reads its own and sets read_at, nothing more.
    owner
        .batch_execute(
            "insert into push_notifications (player_id, title, message) values (29, 't29', 'm'), (31, 't31', 'm');",
        )
        .await
        .expect("seed push");
    let rows = as_api(
        &mut db,
        "authenticated",
        Some(&p29),
        "update push_notifications set read_at = now() returning player_id",
        &[],
    )
    .await
    .expect("read_at");
    assert!(!rows.is_empty() && rows.iter().all(|r| r.get::<_, i64>(0) == 29));
    let others_read: i64 = one(
        &owner,
        "select count(*) from push_notifications where player_id <> 29 and read_at is not null",
        &[],
    )
    .await;
    assert_eq!(others_read, 0, "only its own");
    for sql in [
        "update push_notifications set title = 'x'",
        "update push_notifications set player_id = 31",
        "insert into push_notifications (player_id, title, message) values (29, 't', 'm')",
        "delete from push_notifications",
    ] {
        refused(
            as_api(&mut db, "authenticated", Some(&p29), sql, &[]).await,
            "42501",
            sql,
        );
    }
    // Staff presence is the relay's and staff's own status, never a player's.
    refused(
        as_api(
            &mut db,
            "authenticated",
            Some(&p29),
            "insert into gre_online_status (gre_id, status) values ('staff-x', 'online')",
            &[],
        )
        .await,
        "42501",
        "player writes presence",
    );
}

#[tokio::test]
async fn lengths_are_bounded_without_blocking_on_old_rows() {
    // Old rows that break the new bounds exist before the migration that adds them.
    let (pg, _dir) = start_cluster().await;
    let url = pg.url();
    let owner = connect_db(&url).await;
    owner
        .batch_execute(SUPABASE_PREPARATION)
        .await
        .expect("prepare");
    let before: Vec<_> = gre_relay::db::migrate::MIGRATIONS
        .iter()
        .take_while(|m| m.name != "sql/0100_direct_writes.sql")
        .collect();
    for m in &before {
        owner.batch_execute(m.sql).await.expect(m.name);
    }
    let long = "n".repeat(1000);
    let s29 = open_session(&owner, 29).await;
    owner
        .execute(
            "insert into gre_chat_messages (session_id, player_id, sender, sender_name, message, seq) values ($1, 29, 'gre', $2, 'old', 1)",
            &[&s29, &long],
        )
        .await
        .expect("old long name");
    owner
        .execute(
            "update gre_chat_sessions set assigned_gre_id = $1 where id = $2",
            &[&long, &s29],
        )
        .await
        .expect("old long assignee");
    gre_relay::db::migrate::run(&url)
        .await
        .expect("migrate over old rows");

    let mut db = connect_db(&url).await;
    let staff7 = staff("staff-7");
    let name101 = "a".repeat(101);
    let name100 = "a".repeat(100);
    let s31 = open_session(&owner, 31).await;
    refused(
        as_api(
            &mut db,
            "authenticated",
            Some(&staff7),
            "insert into gre_chat_messages (session_id, sender, sender_name, message) values ($1, 'gre', $2, 'hi')",
            &[&s31, &name101],
        )
        .await,
        "23514",
        "sender_name 101",
    );
    as_api(
        &mut db,
        "authenticated",
        Some(&staff7),
        "insert into gre_chat_messages (session_id, sender, sender_name, message) values ($1, 'gre', $2, 'hi')",
        &[&s31, &name100],
    )
    .await
    .expect("sender_name 100");
    refused(
        as_api(
            &mut db,
            "authenticated",
            Some(&staff7),
            "update gre_chat_sessions set assigned_gre_id = $1 where id = $2",
            &[&name101, &s31],
        )
        .await,
        "23514",
        "assigned_gre_id 101",
    );
    for (title, message, ok) in [
        ("t".repeat(200), "m".repeat(1000), true),
        ("t".repeat(201), "m".to_owned(), false),
        ("t".to_owned(), "m".repeat(1001), false),
    ] {
        let r = owner
            .execute(
                "insert into push_notifications (player_id, title, message) values (29, $1, $2)",
                &[&title, &message],
            )
            .await;
        assert_eq!(r.is_ok(), ok, "{} {}: {r:?}", title.len(), message.len());
    }
    // Since sql/0240 the bounds of the two chat tables are rules of one check per table
    // (gre_chat_messages_rules, gre_chat_sessions_rules): over these old rows its validation
    // fails, so it stays NOT VALID like the `*_length` checks it replaced.
    let bad: i64 = one(
        &owner,
        "select count(*) from pg_constraint where not convalidated and (conname like '%length%' \
         or conname in ('gre_chat_messages_rules', 'gre_chat_sessions_rules'))",
        &[],
    )
    .await;
    assert!(bad >= 5, "bounds added NOT VALID: {bad}");
}

#[tokio::test]
async fn staff_rules_and_errors_that_name_no_one() {
    let env = Db::start(None).await;
    let owner = env.owner().await;
    let mut db = env.owner().await;
    let s29 = open_session(&owner, 29).await;
    let s31 = open_session(&owner, 31).await;
    owner
        .execute(
            "update gre_chat_sessions set status = 'closed' where id = $1",
            &[&s31],
        )
        .await
        .expect("close");
    let before = snapshot(&owner).await;
    let staff7 = staff("staff-7");

    // Nothing goes into a closed session, whoever writes it.
    let e = refused(
        as_api(
            &mut db,
            "authenticated",
            Some(&staff7),
            "insert into gre_chat_messages (session_id, sender, message) values ($1, 'gre', 'too late')",
            &[&s31],
        )
        .await,
        "PT409",
        "staff into closed",
    );
    assert!(e.message.contains("closed"), "{e:?}");
    refused(
        as_api(
            &mut db,
            "service_role",
            None,
            "insert into gre_chat_messages (session_id, sender, message) values ($1, 'system', 'too late')",
            &[&s31],
        )
        .await,
        "PT409",
        "system into closed",
    );
    // Nobody signs as another GRE.
    refused(
        as_api(
            &mut db,
            "authenticated",
            Some(&staff7),
            "insert into gre_chat_messages (session_id, sender, sender_id, message) values ($1, 'gre', 'staff-8', 'I am 8')",
            &[&s29],
        )
        .await,
        "42501",
        "staff as another",
    );
    assert_eq!(snapshot(&owner).await, before, "data intact");
    let rows = as_api(
        &mut db,
        "authenticated",
        Some(&staff7),
        "insert into gre_chat_messages (session_id, sender, message) values ($1, 'gre', 'hello') returning sender_id",
        &[&s29],
    )
    .await
    .expect("staff message");
    assert_eq!(rows[0].get::<_, String>(0), "staff-7", "filled from sub");

    // Staff are not capped: an announcement to 2,000 open sessions is one statement.
    owner
        .batch_execute(
            "insert into gre_chat_sessions (player_id) select g from generate_series(1000, 2999) g",
        )
        .await
        .expect("2,000 sessions");
    let started = std::time::Instant::now();
    let rows = as_api(
        &mut db,
        "authenticated",
        Some(&staff7),
        "insert into gre_chat_messages (session_id, sender, message) \
         select id, 'gre', 'The tournament starts at 8' from gre_chat_sessions where player_id >= 1000 \
         returning sender_id",
        &[],
    )
    .await
    .expect("announcement");
    println!(
        "a staff announcement to 2,000 sessions through the API took {:?}",
        started.elapsed()
    );
    assert_eq!(rows.len(), 2000);
    assert!(rows.iter().all(|r| r.get::<_, String>(0) == "staff-7"));

    // Player 29 aiming at player 31's session: refused, and the error names neither 31 nor it.
    owner
        .execute(
            "update gre_chat_sessions set status = 'waiting' where id = $1",
            &[&s31],
        )
        .await
        .expect("reopen 31");
    let p29 = player(29);
    let s31_text = s31.to_string();
    for sql in [
        "insert into gre_chat_messages (session_id, player_id, sender, message) values ($1, 29, 'player', 'x')",
        "insert into gre_chat_messages (session_id, player_id, sender, message) values ($1, 31, 'player', 'x')",
        "insert into gre_chat_messages (session_id, sender, message) values ($1, 'player', 'x')",
    ] {
        let e = refused(
            as_api(&mut db, "authenticated", Some(&p29), sql, &[&s31]).await,
            "42501",
            sql,
        );
        let text = e.text();
        assert!(
            !text.contains("31") && !text.contains(&s31_text),
            "{sql}: {text}"
        );
    }
    // A session that does not exist gets the same answer as someone else's.
    let e = refused(
        as_api(
            &mut db,
            "authenticated",
            Some(&p29),
            "insert into gre_chat_messages (session_id, sender, message) values ($1, 'player', 'x')",
            &[&Uuid::new_v4()],
        )
        .await,
        "42501",
        "no such session",
    );
    assert_eq!(
        e.message,
        "gre_chat_messages: no session of yours with this id"
    );
    // Even the owner's mismatch names nobody.
    let err = owner
        .execute(
            "insert into gre_chat_messages (session_id, player_id, sender, message) values ($1, 29, 'gre', 'x')",
            &[&s31],
        )
        .await
        .expect_err("mismatch");
    let text = err
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_default();
    assert!(!text.contains("31") && !text.contains(&s31_text), "{text}");
}

#[tokio::test]
async fn chat_gate_holds_for_direct_inserts() {
    let mut settings = test_settings();
    settings.chat.enabled_by_default = false;
    let env = Db::start(Some(settings)).await;
    let owner = env.owner().await;
    let mut db = env.owner().await;
    let stored: bool = one(
        &owner,
        "select chat_enabled_by_default from gre_relay.settings",
        &[],
    )
    .await;
    assert!(!stored, "the relay stored its setting at start");

    let p40 = player(40);
    let e = refused(
        as_api(
            &mut db,
            "authenticated",
            Some(&p40),
            "insert into gre_chat_sessions (player_id) values (40)",
            &[],
        )
        .await,
        "PT403",
        "player 40 opens a session",
    );
    assert!(e.message.contains("chat is not enabled"), "{e:?}");
    // A session staff opened does not open the gate.
    let s40 = open_session(&owner, 40).await;
    refused(
        as_api(
            &mut db,
            "authenticated",
            Some(&p40),
            "insert into gre_chat_messages (session_id, sender, message) values ($1, 'player', 'let me in')",
            &[&s40],
        )
        .await,
        "PT403",
        "player 40 writes",
    );
    // The relay's own path answers as before.
    let mut ws = WsClient::connect(&env.ws_url()).await;
    ws.authenticate(&player_token(40)).await;
    ws.send_json(json!({"type": "send_message", "message": "may I?"}))
        .await;
    let err = ws.recv_type("error").await;
    assert_eq!(err["code"], "chat_disabled", "{err}");
    let http = reqwest::Client::new();
    let r = tokio::time::timeout(
        WAIT,
        http.post(env.http_url("/api/gre-chat/send"))
            .bearer_auth(player_token(40))
            .json(&json!({"message": "may I?"}))
            .send(),
    )
    .await
    .expect("REST in time")
    .expect("REST");
    assert_eq!(r.status(), reqwest::StatusCode::FORBIDDEN);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "chat_disabled", "{body}");
    let n: i64 = one(&owner, "select count(*) from gre_chat_messages", &[]).await;
    assert_eq!(n, 0);

    // Enabled (as enable-player does it): both doors open.
    owner
        .execute(
            "insert into gre_relay.chat_enabled_players (player_id) values (40)",
            &[],
        )
        .await
        .expect("enable 40");
    as_api(
        &mut db,
        "authenticated",
        Some(&p40),
        "insert into gre_chat_messages (session_id, sender, message) values ($1, 'player', 'thanks')",
        &[&s40],
    )
    .await
    .expect("player 40 writes once enabled");
    ws.send_json(json!({"type": "send_message", "message": "over WS"}))
        .await;
    ws.recv_type("message_sent").await;
}

#[tokio::test]
async fn a_player_flood_is_refused_in_the_database_and_staff_stay_connected() {
    let mut settings = test_settings();
    settings.websocket.frames_per_second = 2.0;
    settings.websocket.frames_burst = 5.0;
    let env = Db::start(Some(settings)).await;
    let owner = env.owner().await;
    let mut db = env.owner().await;
    let mut staff_ws = WsClient::connect(&env.ws_url()).await;
    staff_ws.authenticate(&staff_token("staff-1")).await;
    let s29 = open_session(&owner, 29).await;
    let p29 = player(29);
    staff_ws.recv_type("session_updated").await;

    // The DBA's per-statement cap, below the burst so that it, not the rate, refuses.
    owner
        .execute(
            "update gre_relay.settings set player_rows_per_statement = 3",
            &[],
        )
        .await
        .expect("row cap");
    // One statement of 20,000 rows: refused at the row cap, in well under the 22 s it once took.
    let started = std::time::Instant::now();
    let e = refused(
        as_api(
            &mut db,
            "authenticated",
            Some(&p29),
            "insert into gre_chat_messages (session_id, sender, message) \
             select $1, 'player', 'flood ' || g from generate_series(1, 20000) g",
            &[&s29],
        )
        .await,
        "PT413",
        "20,000 rows",
    );
    let took = started.elapsed();
    println!("20,000-row insert refused in {took:?}: {e:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    staff_ws
        .expect_no("chat_message", Duration::from_millis(500))
        .await;
    staff_ws.assert_alive().await;

    // Many statements: the burst passes, then the rate (2/s here, the relay's frames_per_second).
    let mut passed: i64 = 0;
    let mut throttled = 0;
    let started = std::time::Instant::now();
    for i in 0..40 {
        let msg = format!("one by one {i}");
        match as_api(
            &mut db,
            "authenticated",
            Some(&p29),
            "insert into gre_chat_messages (session_id, sender, message) values ($1, 'player', $2)",
            &[&s29, &msg],
        )
        .await
        {
            Ok(_) => passed += 1,
            Err(e) => {
                assert_eq!(e.code, "PT429", "{e:?}");
                throttled += 1;
            }
        }
    }
    let took = started.elapsed().as_secs_f64();
    println!("40 statements in {took:.2} s: {passed} stored, {throttled} refused PT429");
    // The burst, plus what 2 tokens a second refilled meanwhile.
    let most = 5 + (took * 2.0).ceil() as i64;
    assert!(
        (5..=most).contains(&passed),
        "{passed} passed, at most {most}"
    );
    let stored: i64 = one(
        &owner,
        "select count(*) from gre_chat_messages where session_id = $1",
        &[&s29],
    )
    .await;
    assert_eq!(stored, passed);
    for _ in 0..passed {
        staff_ws.recv_type("chat_message").await;
    }
    staff_ws
        .expect_no("chat_message", Duration::from_millis(300))
        .await;
    staff_ws.assert_alive().await;

    // The relay's own paths are not throttled by the database: a staff reply, a REST send and a
    // WS send by the same player, and mark_read, all work right after the flood.
    let mut player_ws = WsClient::connect(&env.ws_url()).await;
    player_ws.authenticate(&player_token(29)).await;
    let http = reqwest::Client::new();
    let r = tokio::time::timeout(
        WAIT,
        http.post(env.http_url("/api/gre-chat/send"))
            .bearer_auth(player_token(29))
            .json(&json!({"message": "over REST"}))
            .send(),
    )
    .await
    .expect("REST in time")
    .expect("REST");
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    player_ws
        .send_json(json!({"type": "send_message", "message": "over WS"}))
        .await;
    player_ws.recv_type("message_sent").await;
    staff_ws
        .send_json(json!({"type": "send_message", "sessionId": s29, "message": "reply"}))
        .await;
    let reply = staff_ws.recv_type("message_sent").await;
    let reply_id = reply["message"]["id"].as_str().expect("id").to_owned();
    // The player's socket also sees its own two messages; skip to the reply.
    for _ in 0..3 {
        let got = player_ws.recv_type("chat_message").await;
        if got["message"]["message"] == "reply" {
            break;
        }
    }
    player_ws
        .send_json(json!({"type": "mark_read", "sessionId": s29, "upTo": reply_id}))
        .await;
    let read = staff_ws.recv_type("messages_read").await;
    assert_eq!(read["count"], 1, "{read}");
    let status: String = one(
        &owner,
        "select status from gre_chat_messages where message = 'reply'",
        &[],
    )
    .await;
    assert_eq!(status, "read");
}
