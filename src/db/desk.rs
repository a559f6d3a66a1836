//! Queries of the GRE desk (issue 13): canned responses, desk settings and per-GRE capacity,
//! transfers, internal notes. The decisions (automatic assignment, auto-replies, the transfer's
//! system line and record) are the database's (triggers/80_desk_*.sql); this file calls them
//! and reads rows back in wire JSON (`gre_relay.canned_response_json()`, `internal_note_json()`,
//! `desk_settings_json()`), so a REST answer and a live event carry the same bytes.
//!
//! The relay connects as the tables' owner, so row level security does not apply here: only
//! staff reach these queries (http/desk.rs checks), and the listener sends what it reads to staff
//! sockets only.

use serde_json::value::RawValue;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::{raw, session_from_row, Refusal, SessionInfo, Store, StoreError, SESSION_COLUMNS};

/// SQLSTATE of a closed session (triggers/10 and 80_desk_transfer).
const SESSION_CLOSED: &str = "PT409";

/// A canned response as a staff member writes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CannedInput<'a> {
    pub(crate) short_code: &'a str,
    pub(crate) title: Option<&'a str>,
    pub(crate) body: &'a str,
}

/// The desk settings a staff member may change; `None` leaves a value as it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeskSettingsInput {
    pub(crate) auto_assign: Option<bool>,
    pub(crate) default_capacity: Option<i32>,
    /// `Some(None)`: no auto-reply of that kind.
    pub(crate) unavailable_text: Option<Option<String>>,
    pub(crate) after_hours_text: Option<Option<String>>,
    /// The weekly schedule as JSON text (checked by the database).
    pub(crate) hours: Option<String>,
    pub(crate) time_zone: Option<String>,
    /// Per-GRE rows to upsert: (GRE id, capacity (None = the default), display name).
    pub(crate) agents: Vec<(String, Option<i32>, Option<String>)>,
}

/// A transfer as the relay asks the database for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transfer<'a> {
    pub(crate) session_id: Uuid,
    /// None: back to the queue.
    pub(crate) to_gre_id: Option<&'a str>,
    pub(crate) note: Option<&'a str>,
    pub(crate) actor_id: &'a str,
    pub(crate) actor_name: Option<&'a str>,
}

fn json_of(row: &tokio_postgres::Row) -> Result<Box<RawValue>, StoreError> {
    raw(row.try_get(0)?)
}

/// What the database said, as facts: a missing row, a closed session, a taken short code.
fn refusal(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        Some(c) if *c == SqlState::NO_DATA_FOUND => StoreError::Refused(Refusal::NoRow),
        Some(c) if c.code() == SESSION_CLOSED => StoreError::Refused(Refusal::SessionClosed),
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::Refused(Refusal::Duplicate),
        _ => StoreError::Db(e),
    }
}

impl Store {
    /// Every canned response not deleted, by short code.
    pub(crate) async fn canned_responses(&self) -> Result<Vec<Box<RawValue>>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query(
                "select gre_relay.canned_response_json(c)::text from public.gre_canned_responses c \
                 where c.deleted_at is null order by c.short_code",
                &[],
            )
            .await?
            .iter()
            .map(json_of)
            .collect()
    }

    /// One canned response, deleted ones included (the listener announces deletions): whether
    /// it is deleted, and its wire JSON.
    pub(crate) async fn canned_response(
        &self,
        id: Uuid,
    ) -> Result<Option<(bool, Box<RawValue>)>, StoreError> {
        self.query_one_opt(
            "select c.deleted_at is not null, gre_relay.canned_response_json(c)::text \
             from public.gre_canned_responses c where c.id = $1",
            &[&id],
            |row| Ok((row.try_get(0)?, raw(row.try_get(1)?)?)),
        )
        .await
    }

    pub(crate) async fn create_canned_response(
        &self,
        input: CannedInput<'_>,
        by: &str,
    ) -> Result<Box<RawValue>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "insert into public.gre_canned_responses as c (short_code, title, body, created_by, updated_by) \
                 values ($1, $2, $3, $4, $4) returning gre_relay.canned_response_json(c)::text",
                &[&input.short_code, &input.title, &input.body, &by],
            )
            .await
            .map_err(refusal)?;
        json_of(&row)
    }

    /// Replaces a live canned response's fields. NoRow when it does not exist or is deleted.
    pub(crate) async fn update_canned_response(
        &self,
        id: Uuid,
        input: CannedInput<'_>,
        by: &str,
    ) -> Result<Box<RawValue>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "update public.gre_canned_responses as c set short_code = $2, title = $3, body = $4, updated_by = $5 \
                 where c.id = $1 and c.deleted_at is null returning gre_relay.canned_response_json(c)::text",
                &[&id, &input.short_code, &input.title, &input.body, &by],
            )
            .await
            .map_err(refusal)?
            .ok_or(StoreError::Refused(Refusal::NoRow))?;
        json_of(&row)
    }

    /// Deletes a canned response (kept as a deleted row, so every console hears of it).
    pub(crate) async fn delete_canned_response(
        &self,
        id: Uuid,
        by: &str,
    ) -> Result<Box<RawValue>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "update public.gre_canned_responses as c set deleted_at = now(), updated_by = $2 \
                 where c.id = $1 and c.deleted_at is null returning gre_relay.canned_response_json(c)::text",
                &[&id, &by],
            )
            .await
            .map_err(refusal)?
            .ok_or(StoreError::Refused(Refusal::NoRow))?;
        json_of(&row)
    }

    pub(crate) async fn desk_settings(&self) -> Result<Box<RawValue>, StoreError> {
        self.query_one_opt("select gre_relay.desk_settings_json()::text", &[], json_of)
            .await?
            .ok_or(StoreError::Refused(Refusal::NoRow))
    }

    /// Applies the given settings in one transaction and returns them all.
    pub(crate) async fn update_desk_settings(
        &self,
        input: &DeskSettingsInput,
        by: &str,
    ) -> Result<Box<RawValue>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (set_unavailable, unavailable) = match &input.unavailable_text {
            Some(t) => (true, t.as_deref()),
            None => (false, None),
        };
        let (set_after, after) = match &input.after_hours_text {
            Some(t) => (true, t.as_deref()),
            None => (false, None),
        };
        tx.execute(
            "update public.gre_desk_settings as d set \
               auto_assign = coalesce($1, d.auto_assign), \
               default_capacity = coalesce($2, d.default_capacity), \
               unavailable_text = case when $3 then $4 else d.unavailable_text end, \
               after_hours_text = case when $5 then $6 else d.after_hours_text end, \
               hours = coalesce($7::text::jsonb, d.hours), \
               time_zone = coalesce($8, d.time_zone), \
               updated_by = $9 \
             where d.singleton",
            &[
                &input.auto_assign,
                &input.default_capacity,
                &set_unavailable,
                &unavailable,
                &set_after,
                &after,
                &input.hours,
                &input.time_zone,
                &by,
            ],
        )
        .await?;
        for (gre_id, capacity, name) in &input.agents {
            tx.execute(
                "insert into public.gre_desk_agents as a (gre_id, capacity, display_name, updated_by) \
                 values ($1, $2, $3, $4) \
                 on conflict (gre_id) do update set capacity = excluded.capacity, \
                   display_name = coalesce(excluded.display_name, a.display_name), updated_by = excluded.updated_by",
                &[gre_id, capacity, name, &by],
            )
            .await?;
        }
        let row = tx
            .query_one("select gre_relay.desk_settings_json()::text", &[])
            .await?;
        tx.commit().await?;
        json_of(&row)
    }

    /// Hands a session to a GRE or back to the queue (`gre_relay.desk_transfer()`).
    pub(crate) async fn transfer_session(
        &self,
        t: Transfer<'_>,
    ) -> Result<SessionInfo, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!(
            // From the row the function returns: a join on the table would read it with this
            // statement's snapshot, from before the function's update.
            "select {SESSION_COLUMNS} from gre_relay.desk_transfer($1, $2, $3, $4, $5) s"
        );
        let row = client
            .query_one(
                &sql,
                &[
                    &t.session_id,
                    &t.to_gre_id,
                    &t.note,
                    &t.actor_id,
                    &t.actor_name,
                ],
            )
            .await
            .map_err(refusal)?;
        session_from_row(&row)
    }

    /// A session's internal notes and transfer records, oldest first. NoRow when the session
    /// does not exist.
    pub(crate) async fn internal_notes(
        &self,
        session_id: Uuid,
        limit: i64,
    ) -> Result<Vec<Box<RawValue>>, StoreError> {
        let client = self.pool.get().await?;
        let exists = client
            .query_opt(
                "select 1 from public.gre_chat_sessions where id = $1",
                &[&session_id],
            )
            .await?;
        if exists.is_none() {
            return Err(StoreError::Refused(Refusal::NoRow));
        }
        client
            .query(
                "select gre_relay.internal_note_json(n)::text from ( \
                   select * from public.gre_chat_internal_notes n where n.session_id = $1 \
                   order by n.created_at desc, n.id desc limit $2) n \
                 order by n.created_at, n.id",
                &[&session_id, &limit],
            )
            .await?
            .iter()
            .map(json_of)
            .collect()
    }

    pub(crate) async fn add_internal_note(
        &self,
        session_id: Uuid,
        author_id: &str,
        author_name: Option<&str>,
        note: &str,
    ) -> Result<Box<RawValue>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "insert into public.gre_chat_internal_notes as n (session_id, author_id, author_name, note) \
                 values ($1, $2, $3, $4) returning gre_relay.internal_note_json(n)::text",
                &[&session_id, &author_id, &author_name, &note],
            )
            .await
            .map_err(|e| match e.code() {
                Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => {
                    StoreError::Refused(Refusal::NoRow)
                }
                _ => refusal(e),
            })?;
        json_of(&row)
    }

    /// One note, for the listener: whether it records a transfer, and its wire JSON.
    pub(crate) async fn internal_note(
        &self,
        id: Uuid,
    ) -> Result<Option<(bool, Box<RawValue>)>, StoreError> {
        self.query_one_opt(
            "select n.kind = 'transfer', gre_relay.internal_note_json(n)::text \
             from public.gre_chat_internal_notes n where n.id = $1",
            &[&id],
            |row| Ok((row.try_get(0)?, raw(row.try_get(1)?)?)),
        )
        .await
    }
}
