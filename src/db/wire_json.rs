//! A message's wire JSON built by the relay from plain columns, byte for byte what
//! `gre_relay.message_json(m)::text` (triggers/07_wire_json.sql) returns: the same keys in
//! jsonb's order (shorter keys first, then bytewise), jsonb's `": "` and `", "` separators, its
//! string escapes, and the timestamp as `to_char(ts at time zone 'UTC',
//! 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.
//!
//! Why: the listener reads back every message a hint names (the contract's hint-only
//! notifications). Building the JSON in PostgreSQL cost a plpgsql call with its `SET
//! search_path`, a jsonb value and its text output per row, in the one resource every relay
//! and portal shares; here it is a few string appends in the relay (docs/performance.md,
//! "Issue 12, part 4"). Only the read-back uses it; every other query still calls
//! `message_json()`, and a test compares the two over varied rows (tests/it/wire_json.rs).

use chrono::{DateTime, Utc};
use std::io::Write;
use uuid::Uuid;

use super::{StoreError, StoredMessage};

/// The columns [`message_wire_json`] reads, in order (alias `m` for gre_chat_messages).
pub const PLAIN_MESSAGE_COLUMNS: &str = "m.id, m.session_id, m.player_id, m.sender, \
     m.sender_id, m.sender_name, m.message, m.status, m.created_at, m.seq, m.client_message_id, \
     m.system_kind, m.attachment_key is not null, m.attachment_name, m.attachment_type, \
     m.attachment_size, m.attachment_width, m.attachment_height, m.message_is_label";

/// A row of [`PLAIN_MESSAGE_COLUMNS`] as the relay stores it (the JSON built here).
pub(crate) fn message_from_plain_row(
    row: &tokio_postgres::Row,
) -> Result<StoredMessage, StoreError> {
    let (session_id, seq, json) = message_wire_json(row)?;
    Ok(StoredMessage {
        session_id,
        seq,
        json: super::raw(json)?,
    })
}

/// The session, the number and the wire JSON of a row of [`PLAIN_MESSAGE_COLUMNS`] (public for
/// tests/it/wire_json.rs, which compares it with `message_json()`).
pub fn message_wire_json(row: &tokio_postgres::Row) -> Result<(Uuid, i64, String), StoreError> {
    let id: Uuid = row.try_get(0)?;
    let session_id: Uuid = row.try_get(1)?;
    let player_id: i64 = row.try_get(2)?;
    let sender: &str = row.try_get(3)?;
    let sender_id: Option<&str> = row.try_get(4)?;
    let sender_name: Option<&str> = row.try_get(5)?;
    let message: &str = row.try_get(6)?;
    let status: &str = row.try_get(7)?;
    let created_at: DateTime<Utc> = row.try_get(8)?;
    let seq: i64 = row.try_get(9)?;
    let client_message_id: Option<&str> = row.try_get(10)?;
    let system_kind: Option<&str> = row.try_get(11)?;
    let has_attachment: bool = row.try_get(12)?;
    let created = timestamp(created_at)
        .ok_or_else(|| StoreError::Decode("created_at out of range".into()))?;

    let mut j = Json(Vec::with_capacity(360 + message.len()));
    j.raw("{\"id\": ");
    j.string(&id.hyphenated().to_string())?;
    j.raw(", \"cursor\": ");
    j.string(&seq.to_string())?;
    j.raw(", \"sender\": ");
    j.string(sender)?;
    j.raw(", \"status\": ");
    j.string(status)?;
    j.raw(", \"message\": ");
    j.string(message)?;
    j.fmt(format_args!(", \"playerId\": {player_id}, \"senderId\": "));
    j.opt_string(sender_id)?;
    j.raw(", \"createdAt\": ");
    j.string(&created)?;
    j.raw(", \"sessionId\": ");
    j.string(&session_id.hyphenated().to_string())?;
    j.raw(", \"attachment\": ");
    if has_attachment {
        let name: Option<&str> = row.try_get(13)?;
        let kind_of: Option<&str> = row.try_get(14)?;
        let size: Option<i64> = row.try_get(15)?;
        let width: Option<i32> = row.try_get(16)?;
        let height: Option<i32> = row.try_get(17)?;
        let is_label: bool = row.try_get(18)?;
        // message_json(): `case when attachment_type like 'image/%' then 'image' else 'file'`
        // (a null type is not like anything: 'file').
        let kind = if kind_of.is_some_and(|t| t.starts_with("image/")) {
            "image"
        } else {
            "file"
        };
        j.raw("{\"kind\": ");
        j.string(kind)?;
        j.raw(", \"name\": ");
        j.opt_string(name)?;
        j.raw(", \"size\": ");
        j.opt_number(size);
        j.raw(", \"type\": ");
        j.opt_string(kind_of)?;
        j.raw(", \"width\": ");
        j.opt_number(width.map(i64::from));
        j.raw(", \"height\": ");
        j.opt_number(height.map(i64::from));
        j.fmt(format_args!(", \"messageIsLabel\": {is_label}}}"));
    } else {
        j.raw("null");
    }
    j.raw(", \"senderName\": ");
    j.opt_string(sender_name)?;
    j.raw(", \"systemKind\": ");
    j.opt_string(system_kind)?;
    j.raw(", \"clientMessageId\": ");
    j.opt_string(client_message_id)?;
    j.raw("}");
    let j = String::from_utf8(j.0)
        .map_err(|_| StoreError::Decode("the message JSON is not UTF-8".into()))?;
    Ok((session_id, seq, j))
}

/// The JSON being written: bytes appended in place, strings escaped by serde_json, which
/// escapes exactly as PostgreSQL's escape_json() does (`"` and `\\`, the five short escapes,
/// other control characters below U+0020 as `\\u00xx` in lower-case hex, everything else as is;
/// the unit test below and tests/it/wire_json.rs hold both to it).
struct Json(Vec<u8>);

impl Json {
    fn raw(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    fn fmt(&mut self, args: std::fmt::Arguments<'_>) {
        // Writing into a Vec cannot fail.
        let _ = self.0.write_fmt(args);
    }

    fn string(&mut self, s: &str) -> Result<(), StoreError> {
        serde_json::to_writer(&mut self.0, s)
            .map_err(|_| StoreError::Decode("a message string".into()))
    }

    fn opt_string(&mut self, s: Option<&str>) -> Result<(), StoreError> {
        match s {
            Some(s) => self.string(s),
            None => {
                self.raw("null");
                Ok(())
            }
        }
    }

    fn opt_number(&mut self, n: Option<i64>) {
        match n {
            Some(n) => self.fmt(format_args!("{n}")),
            None => self.raw("null"),
        }
    }
}

/// `to_char(ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`, for years 1 to 9999
/// (None outside: the relay's rows are written with now()).
fn timestamp(t: DateTime<Utc>) -> Option<String> {
    use chrono::Datelike;
    (1..=9999)
        .contains(&t.year())
        .then(|| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL's binary timestamptz: microseconds since 2000-01-01 00:00 UTC.
    fn pg(micros_since_2000: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(micros_since_2000 + 946_684_800_000_000).expect("in range")
    }

    #[test]
    fn timestamps_are_written_as_to_char_writes_them() {
        assert_eq!(
            timestamp(pg(0)).as_deref(),
            Some("2000-01-01T00:00:00.000000Z")
        );
        assert_eq!(
            timestamp(pg(-1)).as_deref(),
            Some("1999-12-31T23:59:59.999999Z")
        );
        // 2026-12-01 21:32:05.025729 UTC
        let t = ((9831_i64 * 86_400) + 21 * 3600 + 32 * 60 + 5) * 1_000_000 + 25_729;
        assert_eq!(
            timestamp(pg(t)).as_deref(),
            Some("2026-12-01T21:32:05.025729Z")
        );
        // 2024-02-29 (a leap day)
        let t = 8825_i64 * 86_400 * 1_000_000;
        assert_eq!(
            timestamp(pg(t)).as_deref(),
            Some("2024-02-29T00:00:00.000000Z")
        );
        // 10000-01-01: to_char would write five digits; the relay refuses the row instead.
        let y10k = DateTime::from_timestamp(253_402_300_800, 0).expect("in range");
        assert_eq!(timestamp(y10k), None);
    }

    #[test]
    fn strings_are_escaped_as_postgresql_escapes_them() {
        let mut j = Json(Vec::new());
        j.string("a\"b\\c\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}é😀/")
            .expect("escaped");
        assert_eq!(
            String::from_utf8(j.0).expect("utf-8"),
            "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}é😀/\""
        );
    }
}
