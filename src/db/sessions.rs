//! Queries on `gre_chat_sessions`: find, open, close, change status, the staff's list.

use serde_json::value::RawValue;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::{raw, session_from_row, Refusal, SessionInfo, Store, StoreError, SESSION_COLUMNS};

impl Store {
    pub(crate) async fn session(&self, id: Uuid) -> Result<Option<SessionInfo>, StoreError> {
        let sql =
            format!("select {SESSION_COLUMNS} from public.gre_chat_sessions s where s.id = $1");
        self.query_one_opt(&sql, &[&id], session_from_row).await
    }

    /// The player's session that is not closed, if any (there is at most one).
    pub(crate) async fn open_session(
        &self,
        player_id: i64,
    ) -> Result<Option<SessionInfo>, StoreError> {
        let sql = format!(
            "select {SESSION_COLUMNS} from public.gre_chat_sessions s \
             where s.player_id = $1 and s.status <> 'closed'"
        );
        self.query_one_opt(&sql, &[&player_id], session_from_row)
            .await
    }

    /// The player's open session, else its most recent one.
    pub(crate) async fn current_session(
        &self,
        player_id: i64,
    ) -> Result<Option<SessionInfo>, StoreError> {
        let sql = format!(
            "select {SESSION_COLUMNS} from public.gre_chat_sessions s where s.player_id = $1 \
             order by (s.status <> 'closed') desc, s.created_at desc limit 1"
        );
        self.query_one_opt(&sql, &[&player_id], session_from_row)
            .await
    }

    /// Closes the player's open session. NotFound when it has none.
    pub(crate) async fn close_open_session(
        &self,
        player_id: i64,
    ) -> Result<SessionInfo, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "update public.gre_chat_sessions as s set status = 'closed' \
             where s.player_id = $1 and s.status <> 'closed' returning {SESSION_COLUMNS}"
        );
        let row = client
            .query_opt(&sql, &[&player_id])
            .await?
            .ok_or(StoreError::Refused(Refusal::NoRow))?;
        session_from_row(&row)
    }

    /// Sets a session's status when `status` is `Some`, and its assignee when `assigned` is
    /// `Some` (`Some(None)` clears it). Reopening a closed session while the player has another open one is a conflict.
    pub(crate) async fn set_session_status(
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
            Ok(None) => Err(StoreError::Refused(Refusal::NoRow)),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(StoreError::Refused(Refusal::OpenSessionExists))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sessions for the staff console, most recent activity first, each with its last message
    /// and the number of player messages not yet read.
    pub(crate) async fn admin_sessions(
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

    /// Sessions created or changed within the last `window` (listener backfill for staff).
    pub(crate) async fn sessions_changed_within(
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
}
