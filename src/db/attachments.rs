//! Queries for attachments (sql/0220): uploads not yet sent (`gre_relay.attachment_uploads`),
//! claiming one into a message in the sender's transaction, the sweep of those never sent, and
//! the attachment of a message for a download.

use std::time::Duration;
use uuid::Uuid;

use super::{Refusal, Store, StoreError};

/// An upload as the relay stored it, before any message carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewUpload {
    /// Who may send it: [`owner_key`] of the uploader.
    pub(crate) owner: String,
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) mime: String,
    pub(crate) size: i64,
    pub(crate) width: Option<i32>,
    pub(crate) height: Option<i32>,
}

/// The attachment of a stored message, for a download.
#[derive(Debug, Clone)]
pub(crate) struct MessageAttachment {
    pub(crate) player_id: i64,
    /// None: the relay's own bucket.
    pub(crate) bucket: Option<String>,
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) mime: String,
}

/// Who owns an upload: "player:29" or "staff:<sub>", from a message author's sender kind and id.
pub(crate) fn owner_key(sender: &str, sender_id: &str) -> String {
    let kind = if sender == "player" {
        "player"
    } else {
        "staff"
    };
    format!("{kind}:{sender_id}")
}

impl Store {
    /// Records an upload; returns its id (what the sender names as `attachmentId`).
    pub(crate) async fn insert_upload(&self, upload: &NewUpload) -> Result<Uuid, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "insert into gre_relay.attachment_uploads \
                   (owner, bucket, key, name, type, size, width, height) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8) returning id",
                &[
                    &upload.owner,
                    &upload.bucket,
                    &upload.key,
                    &upload.name,
                    &upload.mime,
                    &upload.size,
                    &upload.width,
                    &upload.height,
                ],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Removes uploads older than `age` that no message took, at most `limit` of them, and
    /// returns their (bucket, key) so that the caller deletes the objects. The rows go first: a
    /// send racing the sweep either claimed its row already (the sweep does not see it) or finds
    /// it gone (the send is refused), never a message pointing at a deleted object.
    pub(crate) async fn take_expired_uploads(
        &self,
        age: Duration,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "delete from gre_relay.attachment_uploads u \
                  where u.id in (select id from gre_relay.attachment_uploads \
                                  where created_at < now() - make_interval(secs => $1) \
                                  order by created_at limit $2 \
                                  for update skip locked) \
                 returning u.bucket, u.key",
                &[&age.as_secs_f64(), &limit],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The attachment of message `message_id`, or None when the message does not exist or has
    /// none.
    pub(crate) async fn message_attachment(
        &self,
        message_id: Uuid,
    ) -> Result<Option<MessageAttachment>, StoreError> {
        self.query_one_opt(
            "select player_id, attachment_bucket, attachment_key, attachment_name, attachment_type \
               from public.gre_chat_messages where id = $1 and attachment_key is not null",
            &[&message_id],
            |r| {
                Ok(MessageAttachment {
                    player_id: r.try_get(0)?,
                    bucket: r.try_get(1)?,
                    key: r.try_get(2)?,
                    name: r.try_get(3)?,
                    mime: r.try_get(4)?,
                })
            },
        )
        .await
    }
}

/// Takes upload `id` of `owner` for a message being written in `tx`: the row is deleted in the
/// same transaction, so an upload is sent at most once and the sweep cannot remove it after.
pub(super) async fn claim_upload(
    tx: &deadpool_postgres::Transaction<'_>,
    id: Uuid,
    owner: &str,
) -> Result<NewUpload, StoreError> {
    let stmt = tx
        .prepare_cached(
            "delete from gre_relay.attachment_uploads where id = $1 and owner = $2 \
             returning owner, bucket, key, name, type, size, width, height",
        )
        .await?;
    let row = tx
        .query_opt(&stmt, &[&id, &owner])
        .await?
        // Not found, sent already, swept, or someone else's: one answer, naming nobody.
        .ok_or(StoreError::Refused(Refusal::NoUpload))?;
    Ok(NewUpload {
        owner: row.try_get(0)?,
        bucket: row.try_get(1)?,
        key: row.try_get(2)?,
        name: row.try_get(3)?,
        mime: row.try_get(4)?,
        size: row.try_get(5)?,
        width: row.try_get(6)?,
        height: row.try_get(7)?,
    })
}
