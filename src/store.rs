//! Every query the relay runs on its connection pool: sessions, messages, backfill.
//!
//! SQL is always parameterized. Messages and sessions come back already in wire JSON
//! (`gre_relay.message_json()` / `session_json()`), the same shape the NOTIFY trigger sends, so a
//! backfilled message and a live one are identical.
//!
//! Not here: the LISTEN connection (listener.rs owns a dedicated, unpooled one).

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use serde_json::value::RawValue;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::protocol::Cursor;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    #[error("the session is closed")]
    SessionClosed,
    /// The database's chat gate refused a player message (SQLSTATE PT403, triggers/10): chat is
    /// not enabled for this player under the setting stored in gre_relay.settings.
    #[error("chat is not enabled for this player")]
    ChatDisabled,
    #[error("conflicts with the current state")]
    Conflict,
    #[error("bad data from the database: {0}")]
    Decode(String),
    #[error("invalid database URL: {0}")]
    Config(String),
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(db) => StoreError::Db(db),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

impl StoreError {
    /// A rejection by a constraint (check, foreign key, unique): the input was at fault.
    pub fn is_constraint_violation(&self) -> bool {
        match self {
            StoreError::Db(e) => matches!(
                e.code(),
                Some(c) if *c == SqlState::CHECK_VIOLATION
                    || *c == SqlState::FOREIGN_KEY_VIOLATION
                    || *c == SqlState::UNIQUE_VIOLATION
                    || *c == SqlState::NOT_NULL_VIOLATION
                    || *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE
                    || *c == SqlState::UNTRANSLATABLE_CHARACTER
            ),
            _ => false,
        }
    }
}

/// A message as stored: its session, its number, and its wire JSON.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub session_id: Uuid,
    pub seq: i64,
    pub json: Box<RawValue>,
}

/// What the relay needs to know about a session to route and authorize.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: Uuid,
    pub player_id: i64,
    pub status: String,
    /// The number of its last committed message: a subscriber starting "now" starts here.
    pub last_seq: i64,
    pub json: Box<RawValue>,
}

impl SessionInfo {
    pub fn is_closed(&self) -> bool {
        self.status == "closed"
    }
}

/// Who writes a message, as stored in sender / sender_id / sender_name.
#[derive(Debug, Clone)]
pub struct Author<'a> {
    pub sender: &'a str,
    pub sender_id: &'a str,
    pub sender_name: Option<&'a str>,
}

/// The result of storing a player's message.
#[derive(Debug)]
pub struct PlayerSend {
    pub message: StoredMessage,
    /// Set when this message opened a new session.
    pub opened: Option<SessionInfo>,
    /// The same clientMessageId was stored before; nothing new was written.
    pub duplicate: bool,
}

fn raw(text: String) -> Result<Box<RawValue>, StoreError> {
    RawValue::from_string(text).map_err(|e| StoreError::Decode(e.to_string()))
}

const MESSAGE_COLUMNS: &str = "m.session_id, m.seq, gre_relay.message_json(m)::text";
const SESSION_COLUMNS: &str =
    "s.id, s.player_id, s.status, s.last_seq, gre_relay.session_json(s)::text";

fn message_from_row(row: &tokio_postgres::Row) -> Result<StoredMessage, StoreError> {
    Ok(StoredMessage {
        session_id: row.try_get(0)?,
        seq: row.try_get(1)?,
        json: raw(row.try_get(2)?)?,
    })
}

fn session_from_row(row: &tokio_postgres::Row) -> Result<SessionInfo, StoreError> {
    Ok(SessionInfo {
        id: row.try_get(0)?,
        player_id: row.try_get(1)?,
        status: row.try_get(2)?,
        last_seq: row.try_get(3)?,
        json: raw(row.try_get(4)?)?,
    })
}

/// TLS for connections that ask for it (Supabase requires it); `sslmode=prefer`, the default,
/// falls back to plain TCP when the server offers no TLS (the embedded cluster).
pub fn tls_connector() -> tokio_postgres_rustls::MakeRustlsConnect {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        // ring supports the default versions; this cannot fail, but fall back to TLS 1.3 only.
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3 with ring")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
        });
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// Parses a PostgreSQL URL, giving the relay's connections a recognizable application_name.
pub fn pg_config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config =
        tokio_postgres::Config::from_str(url).map_err(|e| StoreError::Config(e.to_string()))?;
    if config.get_application_name().is_none() {
        config.application_name("gre-relay");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    Ok(config)
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    pub fn connect(url: &str, size: usize, wait_timeout: Duration) -> Result<Store, StoreError> {
        let manager = Manager::from_config(
            pg_config(url)?,
            tls_connector(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size)
            .wait_timeout(Some(wait_timeout))
            .create_timeout(Some(wait_timeout))
            .recycle_timeout(Some(wait_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(Store { pool })
    }

    /// Runs a statement expected to return at most one row (cached per connection) and maps it.
    async fn query_one_opt<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        map: fn(&tokio_postgres::Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        client
            .query_opt(&stmt, params)
            .await?
            .as_ref()
            .map(map)
            .transpose()
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// `select 1`: is the database reachable right now?
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.simple_query("select 1").await?;
        Ok(())
    }

    pub async fn session(&self, id: Uuid) -> Result<Option<SessionInfo>, StoreError> {
        let sql =
            format!("select {SESSION_COLUMNS} from public.gre_chat_sessions s where s.id = $1");
        self.query_one_opt(&sql, &[&id], session_from_row).await
    }

    /// The player's session that is not closed, if any (there is at most one).
    pub async fn open_session(&self, player_id: i64) -> Result<Option<SessionInfo>, StoreError> {
        let sql = format!(
            "select {SESSION_COLUMNS} from public.gre_chat_sessions s \
             where s.player_id = $1 and s.status <> 'closed'"
        );
        self.query_one_opt(&sql, &[&player_id], session_from_row)
            .await
    }

    /// Stores a player's message in its open session, opening one (`waiting`) when it has none.
    /// `session_hint` is what the client named: another player's session is forbidden; the
    /// player's own closed session is not written to (the message opens a new one).
    pub async fn send_player_message(
        &self,
        player_id: i64,
        session_hint: Option<Uuid>,
        author_name: Option<&str>,
        text: &str,
        client_message_id: Option<&str>,
    ) -> Result<PlayerSend, StoreError> {
        let mut client = self.pool.get().await?;
        if let Some(hint) = session_hint {
            let owner: Option<i64> = client
                .query_opt(
                    "select player_id from public.gre_chat_sessions where id = $1",
                    &[&hint],
                )
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            match owner {
                None => return Err(StoreError::NotFound),
                Some(owner) if owner != player_id => return Err(StoreError::Forbidden),
                Some(_) => {}
            }
        }
        let sender_id = player_id.to_string();
        // A few attempts: a concurrent send by the same player may open the session first.
        for _ in 0..3 {
            let tx = client.transaction().await?;
            // Lock the open session so that it cannot be closed under this message.
            let sql = format!(
                "select {SESSION_COLUMNS} from public.gre_chat_sessions s \
                 where s.player_id = $1 and s.status <> 'closed' for update"
            );
            let mut opened = None;
            let session = match tx.query_opt(&sql, &[&player_id]).await? {
                Some(row) => session_from_row(&row)?,
                None => {
                    let sql = format!(
                        "insert into public.gre_chat_sessions as s (player_id, status) values ($1, 'waiting') \
                         on conflict (player_id) where status <> 'closed' do nothing \
                         returning {SESSION_COLUMNS}"
                    );
                    match tx.query_opt(&sql, &[&player_id]).await? {
                        Some(row) => {
                            let s = session_from_row(&row)?;
                            opened = Some(s.clone());
                            s
                        }
                        None => {
                            tx.rollback().await?;
                            continue;
                        }
                    }
                }
            };
            if let Some(cid) = client_message_id {
                if let Some(existing) = find_by_client_id(&tx, session.id, cid).await? {
                    tx.commit().await?;
                    return Ok(PlayerSend {
                        message: existing,
                        opened: None,
                        duplicate: true,
                    });
                }
            }
            let author = Author {
                sender: "player",
                sender_id: &sender_id,
                sender_name: author_name,
            };
            let message = insert_message(&tx, session.id, &author, text, client_message_id).await?;
            tx.commit().await?;
            return Ok(PlayerSend {
                message,
                opened,
                duplicate: false,
            });
        }
        Err(StoreError::Unavailable(
            "could not open a session: too much contention".into(),
        ))
    }

    /// Stores a staff (or system) message into an existing session that is not closed.
    /// Returns the message and whether it was a duplicate of an earlier send.
    pub async fn send_staff_message(
        &self,
        session_id: Uuid,
        author: &Author<'_>,
        text: &str,
        client_message_id: Option<&str>,
    ) -> Result<(StoredMessage, bool), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let status: Option<String> = tx
            .query_opt(
                "select status from public.gre_chat_sessions where id = $1 for update",
                &[&session_id],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        match status.as_deref() {
            None => return Err(StoreError::NotFound),
            Some("closed") => return Err(StoreError::SessionClosed),
            Some(_) => {}
        }
        if let Some(cid) = client_message_id {
            if let Some(existing) = find_by_client_id(&tx, session_id, cid).await? {
                tx.commit().await?;
                return Ok((existing, true));
            }
        }
        let message = insert_message(&tx, session_id, author, text, client_message_id).await?;
        tx.commit().await?;
        Ok((message, false))
    }

    /// Messages of a session after `since`, oldest first, at most `limit`.
    pub async fn messages_after(
        &self,
        session_id: Uuid,
        since: Cursor,
        limit: i64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "select {MESSAGE_COLUMNS} from public.gre_chat_messages m \
             where m.session_id = $1 and m.seq > $2 order by m.seq limit $3"
        );
        let stmt = client.prepare_cached(&sql).await?;
        client
            .query(&stmt, &[&session_id, &since.0, &limit])
            .await?
            .iter()
            .map(message_from_row)
            .collect()
    }

    pub async fn message(&self, id: Uuid) -> Result<Option<StoredMessage>, StoreError> {
        let sql =
            format!("select {MESSAGE_COLUMNS} from public.gre_chat_messages m where m.id = $1");
        self.query_one_opt(&sql, &[&id], message_from_row).await
    }

    /// Marks the other side's messages of a session as read, up to and including `up_to`.
    /// `reader_is_staff` decides which side is "the other". Returns the cursor of `up_to` and the
    /// ids that changed.
    pub async fn mark_read(
        &self,
        session_id: Uuid,
        up_to: Uuid,
        reader_is_staff: bool,
    ) -> Result<(Cursor, Vec<Uuid>), StoreError> {
        let client = self.pool.get().await?;
        let seq: Option<i64> = client
            .query_opt(
                "select seq from public.gre_chat_messages where id = $1 and session_id = $2",
                &[&up_to, &session_id],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let seq = seq.ok_or(StoreError::NotFound)?;
        let rows = client
            .query(
                "update public.gre_chat_messages set status = 'read' \
                 where session_id = $1 and seq <= $2 and status <> 'read' \
                   and (case when $3 then sender = 'player' else sender <> 'player' end) \
                 returning id",
                &[&session_id, &seq, &reader_is_staff],
            )
            .await?;
        let ids = rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<Uuid>, _>>()?;
        Ok((Cursor(seq), ids))
    }

    /// Sends a NOTIFY on the relay's channel: events that are relayed but never stored (typing,
    /// messages_read), so every relay process on this database delivers them.
    pub async fn notify(&self, payload: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("select pg_notify('gre_relay', $1)")
            .await?;
        client.execute(&stmt, &[&payload]).await?;
        Ok(())
    }
}

/// A page of a session's history.
#[derive(Debug)]
pub struct Page {
    pub messages: Vec<StoredMessage>,
    /// More messages follow the last one returned.
    pub has_more: bool,
}

/// One staff member's row of gre_online_status.
#[derive(Debug, Clone)]
pub struct StaffPresence {
    pub gre_id: String,
    pub is_online: bool,
    pub status: String,
    pub last_seen: Option<String>,
}

/// Queries behind the REST API, chat access and presence.
impl Store {
    /// `limit` messages after `since`, and whether more follow.
    pub async fn page(
        &self,
        session_id: Uuid,
        since: Cursor,
        limit: i64,
    ) -> Result<Page, StoreError> {
        let mut messages = self.messages_after(session_id, since, limit + 1).await?;
        let has_more = messages.len() as i64 > limit;
        messages.truncate(limit as usize);
        Ok(Page { messages, has_more })
    }

    /// The player's open session, else its most recent one.
    pub async fn current_session(&self, player_id: i64) -> Result<Option<SessionInfo>, StoreError> {
        let sql = format!(
            "select {SESSION_COLUMNS} from public.gre_chat_sessions s where s.player_id = $1 \
             order by (s.status <> 'closed') desc, s.created_at desc limit 1"
        );
        self.query_one_opt(&sql, &[&player_id], session_from_row)
            .await
    }

    /// Stores the rules every writer must follow (gre_relay.settings). Writes only when they
    /// changed, so relays restarting with the same configuration leave the row alone.
    pub async fn store_shared_rules(
        &self,
        rules: &SharedRules,
        by: &str,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "insert into gre_relay.settings as s \
                   (singleton, chat_enabled_by_default, player_messages_per_second, player_messages_burst, updated_at, updated_by) \
                 values (true, $1, $2, $3, now(), $4) \
                 on conflict (singleton) do update \
                    set chat_enabled_by_default = excluded.chat_enabled_by_default, \
                        player_messages_per_second = excluded.player_messages_per_second, \
                        player_messages_burst = excluded.player_messages_burst, \
                        updated_at = excluded.updated_at, updated_by = excluded.updated_by \
                  where (s.chat_enabled_by_default, s.player_messages_per_second, s.player_messages_burst) \
                        is distinct from \
                        (excluded.chat_enabled_by_default, excluded.player_messages_per_second, excluded.player_messages_burst)",
                &[
                    &rules.chat_enabled_by_default,
                    &rules.player_messages_per_second,
                    &rules.player_messages_burst,
                    &by,
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn enable_all_players(&self, by: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "update gre_relay.chat_access set all_players_enabled = true, updated_at = now(), updated_by = $1",
                &[&by],
            )
            .await?;
        Ok(())
    }

    pub async fn enable_player(&self, player_id: i64, by: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "insert into gre_relay.chat_enabled_players (player_id, enabled_by) values ($1, $2) \
                 on conflict (player_id) do nothing",
                &[&player_id, &by],
            )
            .await?;
        Ok(())
    }

    /// Closes the player's open session. NotFound when it has none.
    pub async fn close_open_session(&self, player_id: i64) -> Result<SessionInfo, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "update public.gre_chat_sessions as s set status = 'closed' \
             where s.player_id = $1 and s.status <> 'closed' returning {SESSION_COLUMNS}"
        );
        let row = client
            .query_opt(&sql, &[&player_id])
            .await?
            .ok_or(StoreError::NotFound)?;
        session_from_row(&row)
    }

    /// Sets a session's status when `status` is `Some`, and its assignee when `assigned` is
    /// `Some` (`Some(None)` clears it). Reopening a closed session while the player has another open one is a conflict.
    pub async fn set_session_status(
        &self,
        session_id: Uuid,
        status: Option<&str>,
        assigned: Option<Option<&str>>,
    ) -> Result<SessionInfo, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "update public.gre_chat_sessions as s \
                set status = coalesce($2, s.status), assigned_gre_id = case when $3 then $4 else s.assigned_gre_id end \
              where s.id = $1 returning {SESSION_COLUMNS}"
        );
        let (set_assignee, assignee) = match assigned {
            Some(a) => (true, a),
            None => (false, None),
        };
        match client
            .query_opt(&sql, &[&session_id, &status, &set_assignee, &assignee])
            .await
        {
            Ok(Some(row)) => session_from_row(&row),
            Ok(None) => Err(StoreError::NotFound),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(StoreError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    /// Sessions for the staff console, most recent activity first, each with its last message
    /// and the number of player messages not yet read.
    pub async fn admin_sessions(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Box<RawValue>>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "select (gre_relay.session_json(s) || pg_catalog.jsonb_build_object( \
                           'lastMessage', last.json, \
                           'unreadCount', (select count(*) from public.gre_chat_messages u \
                                            where u.session_id = s.id and u.sender = 'player' and u.status <> 'read')))::text \
                   from public.gre_chat_sessions s \
                   left join lateral ( \
                        select gre_relay.message_json(m) as json, m.created_at from public.gre_chat_messages m \
                         where m.session_id = s.id order by m.seq desc limit 1) last on true \
                  where $1::text is null or s.status = $1 \
                  order by greatest(s.updated_at, coalesce(last.created_at, s.created_at)) desc \
                  limit $2",
            )
            .await?;
        client
            .query(&stmt, &[&status, &limit])
            .await?
            .iter()
            .map(|r| raw(r.try_get(0)?))
            .collect()
    }

    /// Registers this relay process for presence (sql/0090_presence.sql).
    pub async fn register_instance(
        &self,
        instance: Uuid,
        hostname: &str,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "insert into gre_relay.relay_instances (instance_id, hostname) values ($1, $2) \
                 on conflict (instance_id) do update set heartbeat_at = now()",
                &[&instance, &hostname],
            )
            .await?;
        Ok(())
    }

    /// Refreshes this relay's heartbeat and reaps relays that stopped beating. Returns false when
    /// this relay's own row was gone (it was reaped while the database was out of reach).
    pub async fn heartbeat(&self, instance: Uuid) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let alive = client
            .execute(
                "update gre_relay.relay_instances set heartbeat_at = now() where instance_id = $1",
                &[&instance],
            )
            .await?
            > 0;
        client
            .execute("select gre_relay.reap_stale_relays()", &[])
            .await?;
        Ok(alive)
    }

    /// Removes this relay's presence (clean shutdown) and refreshes the staff it held.
    pub async fn unregister_instance(&self, instance: Uuid) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let staff = client
            .query(
                "select subject from gre_relay.presence where instance_id = $1 and kind = 'staff'",
                &[&instance],
            )
            .await?;
        client
            .execute(
                "delete from gre_relay.relay_instances where instance_id = $1",
                &[&instance],
            )
            .await?;
        for row in staff {
            let gre_id: String = row.try_get(0)?;
            client
                .execute("select gre_relay.refresh_staff_presence($1)", &[&gre_id])
                .await?;
        }
        Ok(())
    }

    /// Records whether this relay holds a socket of (kind, subject); for staff, also refreshes
    /// gre_online_status.
    pub async fn set_presence(
        &self,
        instance: Uuid,
        kind: &str,
        subject: &str,
        present: bool,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        if present {
            client
                .execute(
                    "insert into gre_relay.presence (kind, subject, instance_id) values ($1, $2, $3) \
                     on conflict do nothing",
                    &[&kind, &subject, &instance],
                )
                .await?;
        } else {
            client
                .execute(
                    "delete from gre_relay.presence where kind = $1 and subject = $2 and instance_id = $3",
                    &[&kind, &subject, &instance],
                )
                .await?;
        }
        if kind == "staff" {
            client
                .execute("select gre_relay.refresh_staff_presence($1)", &[&subject])
                .await?;
        }
        Ok(())
    }

    /// Sessions created or changed within the last `window` (listener backfill for staff).
    pub async fn sessions_changed_within(
        &self,
        window: Duration,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "select {SESSION_COLUMNS} from public.gre_chat_sessions s \
             where s.updated_at > now() - make_interval(secs => $1) \
                or s.created_at > now() - make_interval(secs => $1) \
             order by s.updated_at"
        );
        let rows = client.query(&sql, &[&window.as_secs_f64()]).await?;
        rows.iter().map(session_from_row).collect()
    }

    /// Messages of every session created within the last `window` (the most recent `limit`),
    /// each session's in order.
    pub async fn messages_within(
        &self,
        window: Duration,
        limit: i64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "select session_id, seq, json from ( \
                 select {MESSAGE_COLUMNS} as json, m.created_at from public.gre_chat_messages m \
                  where m.created_at > now() - make_interval(secs => $1) \
                  order by m.created_at desc limit $2) recent \
             order by session_id, seq"
        );
        let rows = client.query(&sql, &[&window.as_secs_f64(), &limit]).await?;
        rows.iter().map(message_from_row).collect()
    }

    pub async fn online_staff_count(&self) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("select count(*) from public.gre_online_status where is_online")
            .await?;
        Ok(client.query_one(&stmt, &[]).await?.try_get(0)?)
    }

    /// Staff members currently online.
    pub async fn online_staff(&self) -> Result<Vec<StaffPresence>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "select gre_id, is_online, status, gre_relay.ts_json(last_seen) from public.gre_online_status \
                 where is_online order by gre_id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StaffPresence {
                    gre_id: r.try_get(0)?,
                    is_online: r.try_get(1)?,
                    status: r.try_get(2)?,
                    last_seen: r.try_get(3)?,
                })
            })
            .collect()
    }
}

async fn find_by_client_id(
    tx: &deadpool_postgres::Transaction<'_>,
    session_id: Uuid,
    client_message_id: &str,
) -> Result<Option<StoredMessage>, StoreError> {
    let sql = format!(
        "select {MESSAGE_COLUMNS} from public.gre_chat_messages m \
         where m.session_id = $1 and m.client_message_id = $2"
    );
    let stmt = tx.prepare_cached(&sql).await?;
    tx.query_opt(&stmt, &[&session_id, &client_message_id])
        .await?
        .as_ref()
        .map(message_from_row)
        .transpose()
}

async fn insert_message(
    tx: &deadpool_postgres::Transaction<'_>,
    session_id: Uuid,
    author: &Author<'_>,
    text: &str,
    client_message_id: Option<&str>,
) -> Result<StoredMessage, StoreError> {
    let sql = format!(
        "insert into public.gre_chat_messages as m \
           (session_id, sender, sender_id, sender_name, message, client_message_id) \
         values ($1, $2, $3, $4, $5, $6) returning {MESSAGE_COLUMNS}"
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let row = tx
        .query_one(
            &stmt,
            &[
                &session_id,
                &author.sender,
                &author.sender_id,
                &author.sender_name,
                &text,
                &client_message_id,
            ],
        )
        .await
        .map_err(refusal_of_insert)?;
    message_from_row(&row)
}

/// The database refuses some messages by rule, with SQLSTATEs of its own (triggers/10,
/// docs/database.md "What the database guarantees to direct writers"): those are verdicts the
/// caller can act on, not failures.
fn refusal_of_insert(e: tokio_postgres::Error) -> StoreError {
    match e.code().map(SqlState::code) {
        Some(CHAT_DISABLED) => StoreError::ChatDisabled,
        Some(SESSION_CLOSED) => StoreError::SessionClosed,
        _ => StoreError::Db(e),
    }
}

/// SQLSTATE of the chat gate's refusal (PostgREST answers it with HTTP 403).
const CHAT_DISABLED: &str = "PT403";
/// SQLSTATE of a message into a closed session (PostgREST answers it with HTTP 409).
const SESSION_CLOSED: &str = "PT409";

/// What the relay's configuration tells the database to enforce for every writer, stored in
/// gre_relay.settings at start so that every relay and every direct writer see one truth.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedRules {
    /// `chat.enabled_by_default`: the chat gate of CONTRACT section 5.
    pub chat_enabled_by_default: bool,
    /// `websocket.frames_per_second`: a player's direct writes are paced like its frames.
    pub player_messages_per_second: f64,
    /// `websocket.frames_burst`.
    pub player_messages_burst: f64,
}

/// A session's messages in a cursor range that a large update changed, as found in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundRange {
    pub session_id: Uuid,
    /// The lowest and highest cursor of the session's messages inside the hinted range.
    pub from: i64,
    pub to: i64,
    /// Messages of the session inside the range.
    pub count: i64,
}

/// Queries behind the listener: it reads the rows a notification names (one query per
/// notification) and routes from them, never from the payload.
impl Store {
    /// The messages with these ids that exist, in (session, number) order.
    pub async fn messages_by_ids(&self, ids: &[Uuid]) -> Result<Vec<StoredMessage>, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "select {MESSAGE_COLUMNS} from public.gre_chat_messages m \
             where m.id = any($1) order by m.session_id, m.seq"
        );
        let stmt = client.prepare_cached(&sql).await?;
        client
            .query(&stmt, &[&ids])
            .await?
            .iter()
            .map(message_from_row)
            .collect()
    }

    /// For each hinted range, the session's messages really inside it (ranges that hold none
    /// are left out), in session order.
    pub async fn message_ranges(
        &self,
        ranges: &[crate::notification::UpdatedRange],
    ) -> Result<Vec<FoundRange>, StoreError> {
        let sessions: Vec<Uuid> = ranges.iter().map(|r| r.session_id).collect();
        let from: Vec<i64> = ranges.iter().map(|r| r.from).collect();
        let to: Vec<i64> = ranges.iter().map(|r| r.to).collect();
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                // Unqualified unnest: only that name takes several arrays (zipped, in FROM).
                "select r.session_id, pg_catalog.min(m.seq), pg_catalog.max(m.seq), pg_catalog.count(*) \
                   from unnest($1::uuid[], $2::bigint[], $3::bigint[]) as r(session_id, lo, hi) \
                   join public.gre_chat_messages m \
                     on m.session_id = r.session_id and m.seq between r.lo and r.hi \
                  group by r.session_id order by r.session_id",
            )
            .await?;
        client
            .query(&stmt, &[&sessions, &from, &to])
            .await?
            .iter()
            .map(|r| {
                Ok(FoundRange {
                    session_id: r.try_get(0)?,
                    from: r.try_get(1)?,
                    to: r.try_get(2)?,
                    count: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// One GRE's presence row, with the number of GRE staff online now.
    pub async fn staff_presence(
        &self,
        gre_id: &str,
    ) -> Result<Option<(StaffPresence, i64)>, StoreError> {
        self.query_one_opt(
            "select g.gre_id, g.is_online, g.status, gre_relay.ts_json(g.last_seen), \
                    (select count(*) from public.gre_online_status o where o.is_online) \
               from public.gre_online_status g where g.gre_id = $1",
            &[&gre_id],
            |r| {
                Ok((
                    StaffPresence {
                        gre_id: r.try_get(0)?,
                        is_online: r.try_get(1)?,
                        status: r.try_get(2)?,
                        last_seen: r.try_get(3)?,
                    },
                    r.try_get(4)?,
                ))
            },
        )
        .await
    }

    /// The key relays sign relayed events with (sql/0180_relay_event_key.sql).
    pub async fn relay_event_key(&self) -> Result<crate::notification::RelayKey, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "select key from gre_relay.relay_event_key where singleton",
                &[],
            )
            .await?
            .ok_or_else(|| {
                StoreError::Decode("gre_relay.relay_event_key is empty: apply sql/0180".into())
            })?;
        crate::notification::RelayKey::new(row.try_get(0)?)
            .ok_or_else(|| StoreError::Decode("gre_relay.relay_event_key is too short".into()))
    }
}
