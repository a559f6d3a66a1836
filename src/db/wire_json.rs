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

use std::fmt::Write;
use tokio_postgres::types::{FromSql, Type};
use uuid::Uuid;

use super::{StoreError, StoredMessage};

/// The columns [`message_wire_json`] reads, in order (alias `m` for gre_chat_messages).
pub const PLAIN_MESSAGE_COLUMNS: &str = "m.id, m.session_id, m.player_id, m.sender, \
     m.sender_id, m.sender_name, m.message, m.status, m.created_at, m.seq, m.client_message_id, \
     m.system_kind, m.attachment_key is not null, m.attachment_name, m.attachment_type, \
     m.attachment_size, m.attachment_width, m.attachment_height, m.message_is_label";

/// A timestamptz as PostgreSQL sends it in binary: microseconds since 2000-01-01 00:00 UTC.
struct Micros(i64);

impl<'a> FromSql<'a> for Micros {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let bytes: [u8; 8] = raw.try_into()?;
        Ok(Micros(i64::from_be_bytes(bytes)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
}

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
    let created_at: Micros = row.try_get(8)?;
    let seq: i64 = row.try_get(9)?;
    let client_message_id: Option<&str> = row.try_get(10)?;
    let system_kind: Option<&str> = row.try_get(11)?;
    let has_attachment: bool = row.try_get(12)?;
    let created = timestamp(created_at.0)
        .ok_or_else(|| StoreError::Decode("created_at out of range".into()))?;

    let mut j = String::with_capacity(360 + message.len());
    j.push_str("{\"id\": ");
    string(&mut j, &id.hyphenated().to_string());
    j.push_str(", \"cursor\": ");
    string(&mut j, &seq.to_string());
    j.push_str(", \"sender\": ");
    string(&mut j, sender);
    j.push_str(", \"status\": ");
    string(&mut j, status);
    j.push_str(", \"message\": ");
    string(&mut j, message);
    let _ = write!(j, ", \"playerId\": {player_id}, \"senderId\": ");
    opt_string(&mut j, sender_id);
    j.push_str(", \"createdAt\": ");
    string(&mut j, &created);
    j.push_str(", \"sessionId\": ");
    string(&mut j, &session_id.hyphenated().to_string());
    j.push_str(", \"attachment\": ");
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
        j.push_str("{\"kind\": ");
        string(&mut j, kind);
        j.push_str(", \"name\": ");
        opt_string(&mut j, name);
        j.push_str(", \"size\": ");
        opt_number(&mut j, size);
        j.push_str(", \"type\": ");
        opt_string(&mut j, kind_of);
        j.push_str(", \"width\": ");
        opt_number(&mut j, width.map(i64::from));
        j.push_str(", \"height\": ");
        opt_number(&mut j, height.map(i64::from));
        let _ = write!(j, ", \"messageIsLabel\": {is_label}}}");
    } else {
        j.push_str("null");
    }
    j.push_str(", \"senderName\": ");
    opt_string(&mut j, sender_name);
    j.push_str(", \"systemKind\": ");
    opt_string(&mut j, system_kind);
    j.push_str(", \"clientMessageId\": ");
    opt_string(&mut j, client_message_id);
    j.push('}');
    Ok((session_id, seq, j))
}

fn opt_string(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.push_str("null"),
    }
}

fn opt_number(out: &mut String, n: Option<i64>) {
    match n {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push_str("null"),
    }
}

/// A JSON string as PostgreSQL's escape_json() writes it: `"` and `\`, the five short escapes,
/// other control characters below U+0020 as `\u00xx` (lower-case hex), everything else as is.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `to_char(ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')` of a timestamptz given as
/// microseconds since 2000-01-01 UTC, for years 1 to 9999 (None outside: the relay's rows are
/// written with now()).
fn timestamp(micros: i64) -> Option<String> {
    let secs = micros.div_euclid(1_000_000);
    let us = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400) + 10_957; // 2000-01-01 is day 10,957 after 1970-01-01
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(1..=9999).contains(&y) {
        return None;
    }
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{us:06}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    ))
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_as_to_char_writes_them() {
        assert_eq!(timestamp(0).as_deref(), Some("2000-01-01T00:00:00.000000Z"));
        assert_eq!(
            timestamp(-1).as_deref(),
            Some("1999-12-31T23:59:59.999999Z")
        );
        // 2026-12-01 21:32:05.025729 UTC
        let t = ((9831_i64 * 86_400) + 21 * 3600 + 32 * 60 + 5) * 1_000_000 + 25_729;
        assert_eq!(timestamp(t).as_deref(), Some("2026-12-01T21:32:05.025729Z"));
        // 2024-02-29 (a leap day)
        let t = 8825_i64 * 86_400 * 1_000_000;
        assert_eq!(timestamp(t).as_deref(), Some("2024-02-29T00:00:00.000000Z"));
        assert_eq!(timestamp(i64::MAX), None);
    }

    #[test]
    fn strings_are_escaped_as_postgresql_escapes_them() {
        let mut s = String::new();
        string(&mut s, "a\"b\\c\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}é😀/");
        assert_eq!(s, "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}é😀/\"");
    }
}
