//! Queries on `gre_chat_messages`: send (player and staff), history pages and backfill, read
//! receipts, and the reads behind the listener's hints.

use std::time::Duration;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::attachments::{claim_upload, owner_key};
use super::wire_json::{message_from_plain_row, PLAIN_MESSAGE_COLUMNS};
use super::{
    message_from_row, session_from_row, Refusal, SessionInfo, Store, StoreError, StoredMessage,
    MESSAGE_COLUMNS, SESSION_COLUMNS,
};
use crate::protocol::Cursor;

/// Who writes a message, as stored in sender / sender_id / sender_name.
#[derive(Debug, Clone)]
pub(crate) struct Author<'a> {
    pub(crate) sender: &'a str,
    pub(crate) sender_id: &'a str,
    pub(crate) sender_name: Option<&'a str>,
}

/// The result of storing a player's message.
#[derive(Debug)]
pub(crate) struct PlayerSend {
    pub(crate) message: StoredMessage,
    /// Set when this message opened a new session.
    pub(crate) opened: Option<SessionInfo>,
    /// The same clientMessageId was stored before; nothing new was written.
    pub(crate) duplicate: bool,
}

/// A page of a session's history.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) messages: Vec<StoredMessage>,
    /// More messages follow the last one returned.
    pub(crate) has_more: bool,
}

/// A session's messages in a cursor range that a large update changed, as found in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FoundRange {
    pub(crate) session_id: Uuid,
    /// The lowest and highest cursor of the session's messages inside the hinted range.
    pub(crate) from: i64,
    pub(crate) to: i64,
    /// Messages of the session inside the range.
    pub(crate) count: i64,
}

impl Store {
    /// Stores a player's message in its open session, opening one (`waiting`) when it has none.
    /// `session_hint` is what the client named: another player's session is forbidden; the
    /// player's own closed session is not written to (the message opens a new one).
    pub(crate) async fn send_player_message(
        &self,
        player_id: i64,
        session_hint: Option<Uuid>,
        author_name: Option<&str>,
        text: &str,
        client_message_id: Option<&str>,
        attachment: Option<Uuid>,
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
                None => return Err(StoreError::Refused(Refusal::NoRow)),
                Some(owner) if owner != player_id => {
                    return Err(StoreError::Refused(Refusal::OtherOwner))
                }
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
            let message = insert_message(
                &tx,
                session.id,
                &author,
                text,
                client_message_id,
                attachment,
            )
            .await?;
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
    pub(crate) async fn send_staff_message(
        &self,
        session_id: Uuid,
        author: &Author<'_>,
        text: &str,
        client_message_id: Option<&str>,
        attachment: Option<Uuid>,
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
            None => return Err(StoreError::Refused(Refusal::NoRow)),
            Some("closed") => return Err(StoreError::Refused(Refusal::SessionClosed)),
            Some(_) => {}
        }
        if let Some(cid) = client_message_id {
            if let Some(existing) = find_by_client_id(&tx, session_id, cid).await? {
                tx.commit().await?;
                return Ok((existing, true));
            }
        }
        let message =
            insert_message(&tx, session_id, author, text, client_message_id, attachment).await?;
        tx.commit().await?;
        Ok((message, false))
    }

    /// Messages of a session after `since`, oldest first, at most `limit`.
    pub(crate) async fn messages_after(
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

    /// Marks the other side's messages of a session as read, up to and including `up_to`.
    /// `reader_is_staff` decides which side is "the other". Returns the cursor of `up_to` and the
    /// ids that changed.
    pub(crate) async fn mark_read(
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
        let seq = seq.ok_or(StoreError::Refused(Refusal::NoRow))?;
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

    /// `limit` messages after `since`, and whether more follow.
    pub(crate) async fn page(
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

    /// Messages of every session created within the last `window` (the most recent `limit`),
    /// each session's in order.
    pub(crate) async fn messages_within(
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

    /// The messages with these ids that exist, in (session, number) order. The listener's
    /// read-back: plain columns, the wire JSON built by the relay (wire_json.rs), byte for byte
    /// `message_json()`'s.
    pub(crate) async fn messages_by_ids(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let client = self.pool.get().await?;
        // One id (the common case: one hint per commit): `id = $1`, whose generic plan
        // PostgreSQL adopts after five runs. With `id = any($1)` the generic plan (costed for
        // an array of unknown length) always loses to a custom one, so every read was planned
        // again (docs/performance.md, "Issue 12, part 4").
        let rows = if let [id] = ids {
            let sql = format!(
                "select {PLAIN_MESSAGE_COLUMNS} from public.gre_chat_messages m where m.id = $1"
            );
            let stmt = client.prepare_cached(&sql).await?;
            client.query(&stmt, &[id]).await?
        } else {
            let sql = format!(
                "select {PLAIN_MESSAGE_COLUMNS} from public.gre_chat_messages m \
                 where m.id = any($1) order by m.session_id, m.seq"
            );
            let stmt = client.prepare_cached(&sql).await?;
            client.query(&stmt, &[&ids]).await?
        };
        rows.iter().map(message_from_plain_row).collect()
    }

    /// For each hinted range (session, first cursor, last cursor), the session's messages really inside it (ranges that hold none
    /// are left out), in session order.
    pub(crate) async fn message_ranges(
        &self,
        ranges: &[(Uuid, i64, i64)],
    ) -> Result<Vec<FoundRange>, StoreError> {
        let sessions: Vec<Uuid> = ranges.iter().map(|r| r.0).collect();
        let from: Vec<i64> = ranges.iter().map(|r| r.1).collect();
        let to: Vec<i64> = ranges.iter().map(|r| r.2).collect();
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

/// Inserts a message; with `attachment` (an upload id), claims that upload of the author's in
/// the same transaction and stores its metadata on the row. A message that is only an
/// attachment (empty `text`) keeps the pinned non-empty `message` column (CONTRACT section 1)
/// by holding the file name there as a label (`message_is_label`, sql/0220).
async fn insert_message(
    tx: &deadpool_postgres::Transaction<'_>,
    session_id: Uuid,
    author: &Author<'_>,
    text: &str,
    client_message_id: Option<&str>,
    attachment: Option<Uuid>,
) -> Result<StoredMessage, StoreError> {
    let upload = match attachment {
        Some(id) => Some(claim_upload(tx, id, &owner_key(author.sender, author.sender_id)).await?),
        None => None,
    };
    let is_label = upload.is_some() && text.trim().is_empty();
    let text = match &upload {
        Some(u) if is_label => u.name.as_str(),
        _ => text,
    };
    let sql = format!(
        "insert into public.gre_chat_messages as m \
           (session_id, sender, sender_id, sender_name, message, client_message_id, \
            attachment_bucket, attachment_key, attachment_name, attachment_type, attachment_size, \
            attachment_width, attachment_height, message_is_label) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         returning {MESSAGE_COLUMNS}"
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let u = upload.as_ref();
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
                &u.map(|u| &u.bucket),
                &u.map(|u| &u.key),
                &u.map(|u| &u.name),
                &u.map(|u| &u.mime),
                &u.map(|u| u.size),
                &u.and_then(|u| u.width),
                &u.and_then(|u| u.height),
                &is_label,
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
        Some(CHAT_DISABLED) => StoreError::Refused(Refusal::ChatGate),
        Some(SESSION_CLOSED) => StoreError::Refused(Refusal::SessionClosed),
        _ => StoreError::Db(e),
    }
}

/// SQLSTATE of the chat gate's refusal (PostgREST answers it with HTTP 403).
const CHAT_DISABLED: &str = "PT403";

/// SQLSTATE of a message into a closed session (PostgREST answers it with HTTP 409).
const SESSION_CLOSED: &str = "PT409";
