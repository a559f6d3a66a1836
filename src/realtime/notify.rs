//! The payloads on NOTIFY channel `gre_relay`, parsed in one place (docs/database.md, "NOTIFY
//! payloads").
//!
//! Anyone with a database login can `pg_notify('gre_relay', ...)` and anyone can `LISTEN`, so a
//! payload is a *hint*, never a source of truth:
//! - the triggers (triggers/20, 40, 50, 80) send identifiers only: message ids, a session id, a
//!   session's cursor range, a GRE id, a canned response's or an internal note's id. No text,
//!   name or player id. The listener reads the rows
//!   it was told about and routes only from what it read;
//! - events that are relayed but never stored (typing, messages_read) are sent by relays only,
//!   with typed fields and an HMAC-SHA256 made with a key only relays can read
//!   (`gre_relay.relay_event_key`, sql/0180). The receiving relay rebuilds the client frame from
//!   the fields: a frame is never forwarded as it came.
//!
//! Parsing is strict: a missing field is an error, never a default (a missing cursor is not 0, a
//! missing session id is not the nil UUID), and unknown fields are refused. The listener counts
//! what it refuses (`gre_relay_notifications_ignored_total`).
//!
//! Not here: database reads (`db/`) and routing (listener.rs, hub.rs).
//!
//! Must not touch: the database, sockets, `state/` (pure parsing and signing).

/// The channel every trigger notifies on.
pub const CHANNEL: &str = "gre_relay";

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};
use uuid::Uuid;

use crate::realtime::hub::ConnId;

/// Most message ids one payload may name. The trigger puts at most 200 in one (200 quoted ids
/// are 7,800 bytes, under NOTIFY's 8,000); more is not a payload of ours.
pub const MAX_IDS: usize = 256;
/// Most session ranges one payload may name (the trigger puts at most 60 in one).
pub const MAX_RANGES: usize = 100;
/// Longest GRE id accepted in a presence hint or a relayed event (the table allows 100; the
/// REST API takes up to 200 bytes).
pub const MAX_GRE_ID: usize = 200;
/// A relayed event older (or newer, clock skew between relay hosts) than this is refused: it
/// bounds what replaying a captured, correctly signed event can do.
pub const MAX_EVENT_AGE_MS: u64 = 60_000;

/// Why a payload was not acted on. Each one is counted, none reaches a client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HintError {
    #[error("not a JSON object of the expected shape: {0}")]
    Shape(String),
    #[error("unknown kind {0:?}")]
    UnknownKind(String),
    #[error("kind {kind:?} needs field {field:?}")]
    Missing {
        kind: &'static str,
        field: &'static str,
    },
    #[error("kind {kind:?} does not take field {field:?}")]
    Unexpected {
        kind: &'static str,
        field: &'static str,
    },
    #[error("bad value: {0}")]
    Value(&'static str),
    #[error("the relayed event's signature does not verify")]
    BadSignature,
    #[error("the relayed event is too old or from the future")]
    Stale,
}

/// Which statement a message hint comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageOp {
    Inserted,
    Updated,
}

/// A session whose messages with cursors `from..=to` changed in one statement that changed too
/// many of them to announce one by one (triggers/20_message_notify.sql).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdatedRange {
    pub session_id: Uuid,
    pub from: i64,
    pub to: i64,
}

/// One notification, as understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// `{"k":"m","op":"i"|"u","ids":[...]}`: these messages were inserted or changed.
    Messages { op: MessageOp, ids: Vec<Uuid> },
    /// `{"k":"r","ranges":[{"sessionId":...,"from":"41","to":"12000"}]}`: a large update.
    Ranges(Vec<UpdatedRange>),
    /// `{"k":"s","id":...}`: this session was opened, or its status or assignment changed.
    Session(Uuid),
    /// `{"k":"p","greId":...}`: this GRE's presence changed.
    Presence(String),
    /// `{"k":"c","id":...}`: this canned response was added, changed or deleted
    /// (triggers/80_desk_tables.sql).
    CannedResponse(Uuid),
    /// `{"k":"n","id":...}`: this internal note (or transfer record) was added.
    InternalNote(Uuid),
    /// `{"k":"d"}`: the desk settings or a GRE's capacity changed.
    DeskSettings,
    /// `{"k":"e","v":{...},"mac":"..."}`: an event another relay relayed; not yet verified
    /// (see [`RelayKey::open`]).
    Relayed(SealedEvent),
}

/// A relayed event as it came: the exact bytes that were signed, and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEvent {
    body: String,
    mac: String,
}

/// Every field any payload may have; which ones a kind needs is checked in [`Hint::parse`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    k: String,
    #[serde(default)]
    op: Option<String>,
    #[serde(default)]
    ids: Option<Vec<Uuid>>,
    #[serde(default)]
    ranges: Option<Vec<WireRange>>,
    #[serde(default)]
    id: Option<Uuid>,
    #[serde(default, rename = "greId")]
    gre_id: Option<String>,
    #[serde(default, borrow)]
    v: Option<&'a RawValue>,
    #[serde(default)]
    mac: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireRange {
    session_id: Uuid,
    from: String,
    to: String,
}

/// A cursor as the triggers write it: the decimal string of a non-negative number.
fn cursor(s: &str) -> Result<i64, HintError> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HintError::Value("a cursor is a string of decimal digits"));
    }
    s.parse()
        .map_err(|_| HintError::Value("cursor out of range"))
}

impl Hint {
    pub fn parse(payload: &str) -> Result<Hint, HintError> {
        let w: Wire = serde_json::from_str(payload).map_err(|e| HintError::Shape(e.to_string()))?;
        // Which fields each kind takes; anything else present is refused.
        let present = [
            ("op", w.op.is_some()),
            ("ids", w.ids.is_some()),
            ("ranges", w.ranges.is_some()),
            ("id", w.id.is_some()),
            ("greId", w.gre_id.is_some()),
            ("v", w.v.is_some()),
            ("mac", w.mac.is_some()),
        ];
        let only = |kind: &'static str, allowed: &[&'static str]| -> Result<(), HintError> {
            for (field, is) in present {
                if is && !allowed.contains(&field) {
                    return Err(HintError::Unexpected { kind, field });
                }
            }
            Ok(())
        };
        let missing = |kind, field| HintError::Missing { kind, field };
        match w.k.as_str() {
            "m" => {
                only("m", &["op", "ids"])?;
                let op = match w.op.as_deref() {
                    Some("i") => MessageOp::Inserted,
                    Some("u") => MessageOp::Updated,
                    Some(_) => return Err(HintError::Value("op is \"i\" or \"u\"")),
                    None => return Err(missing("m", "op")),
                };
                let ids = w.ids.ok_or(missing("m", "ids"))?;
                if ids.is_empty() || ids.len() > MAX_IDS {
                    return Err(HintError::Value("1 to 256 ids"));
                }
                Ok(Hint::Messages { op, ids })
            }
            "r" => {
                only("r", &["ranges"])?;
                let ranges = w.ranges.ok_or(missing("r", "ranges"))?;
                if ranges.is_empty() || ranges.len() > MAX_RANGES {
                    return Err(HintError::Value("1 to 100 ranges"));
                }
                ranges
                    .into_iter()
                    .map(|r| {
                        let (from, to) = (cursor(&r.from)?, cursor(&r.to)?);
                        if from > to || r.session_id.is_nil() {
                            return Err(HintError::Value("a range is a session and from <= to"));
                        }
                        Ok(UpdatedRange {
                            session_id: r.session_id,
                            from,
                            to,
                        })
                    })
                    .collect::<Result<_, _>>()
                    .map(Hint::Ranges)
            }
            "s" => {
                only("s", &["id"])?;
                match w.id {
                    Some(id) if !id.is_nil() => Ok(Hint::Session(id)),
                    Some(_) => Err(HintError::Value("the nil UUID is no session")),
                    None => Err(missing("s", "id")),
                }
            }
            "p" => {
                only("p", &["greId"])?;
                let gre_id = w.gre_id.ok_or(missing("p", "greId"))?;
                if gre_id.is_empty() || gre_id.len() > MAX_GRE_ID {
                    return Err(HintError::Value("greId is 1 to 200 bytes"));
                }
                Ok(Hint::Presence(gre_id))
            }
            "c" | "n" => {
                let kind = if w.k == "c" { "c" } else { "n" };
                only(kind, &["id"])?;
                match w.id {
                    Some(id) if !id.is_nil() => Ok(if kind == "c" {
                        Hint::CannedResponse(id)
                    } else {
                        Hint::InternalNote(id)
                    }),
                    Some(_) => Err(HintError::Value("the nil UUID names no row")),
                    None => Err(missing(kind, "id")),
                }
            }
            "d" => {
                only("d", &[])?;
                Ok(Hint::DeskSettings)
            }
            "e" => {
                only("e", &["v", "mac"])?;
                let body = w.v.ok_or(missing("e", "v"))?.get().to_owned();
                let mac = w.mac.ok_or(missing("e", "mac"))?;
                Ok(Hint::Relayed(SealedEvent { body, mac }))
            }
            other => Err(HintError::UnknownKind(other.chars().take(20).collect())),
        }
    }
}

/// Which side of a conversation acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Player,
    Gre,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Player => "player",
            Side::Gre => "gre",
        }
    }
}

/// An event that is relayed to every relay's clients and never stored. No player id: a
/// player's typing names no one (the receiving relay takes the id from the session row), so
/// listening on the channel reveals none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RelayedEvent {
    Typing {
        #[serde(rename = "sessionId")]
        session_id: Uuid,
        side: Side,
        /// The staff id when `side` is `gre`; none for a player.
        #[serde(rename = "staffId")]
        staff_id: Option<String>,
        #[serde(rename = "isTyping")]
        is_typing: bool,
    },
    MessagesRead {
        #[serde(rename = "sessionId")]
        session_id: Uuid,
        reader: Side,
        #[serde(rename = "upTo")]
        up_to: Uuid,
        /// The cursor of `up_to` as the relay that marked read found it in the table.
        cursor: i64,
        count: u64,
    },
}

impl RelayedEvent {
    pub fn session_id(&self) -> Uuid {
        match self {
            RelayedEvent::Typing { session_id, .. }
            | RelayedEvent::MessagesRead { session_id, .. } => *session_id,
        }
    }

    fn check(&self) -> Result<(), HintError> {
        match self {
            RelayedEvent::Typing { side, staff_id, .. } => match (side, staff_id) {
                (Side::Player, None) => Ok(()),
                (Side::Gre, Some(id)) if !id.is_empty() && id.len() <= MAX_GRE_ID => Ok(()),
                _ => Err(HintError::Value(
                    "a GRE's typing names the GRE; a player's nobody",
                )),
            },
            RelayedEvent::MessagesRead { cursor, .. } if *cursor < 0 => {
                Err(HintError::Value("negative cursor"))
            }
            RelayedEvent::MessagesRead { .. } => Ok(()),
        }
    }
}

/// Identifies the relay connection an event came from, so that it does not get its own event
/// back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub instance: Uuid,
    pub conn: ConnId,
}

/// What is signed: the event, where it came from and when.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    /// Relay instance id.
    o: Uuid,
    /// Connection number on that relay.
    c: ConnId,
    /// Unix milliseconds when it was sent.
    t: u64,
    ev: RelayedEvent,
}

#[derive(Serialize)]
struct SealedWire<'a> {
    k: &'static str,
    v: &'a RawValue,
    mac: String,
}

/// The key relays sign relayed events with (`gre_relay.relay_event_key`: readable by the
/// database owner the relays connect as, and by no API role).
pub struct RelayKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for RelayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayKey(..)") // never in a log
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl RelayKey {
    /// At least 16 bytes; the migration makes 31.
    pub fn new(key: Vec<u8>) -> Option<RelayKey> {
        (key.len() >= 16).then_some(RelayKey { key })
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
        <HmacSha256 as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    /// The NOTIFY payload for `event`, sent at `now_ms` from `origin`.
    pub fn seal(&self, origin: Origin, event: &RelayedEvent, now_ms: u64) -> String {
        let body = Body {
            o: origin.instance,
            c: origin.conn,
            t: now_ms,
            ev: event.clone(),
        };
        // Serializing these plain types cannot fail; were it to, the empty payload would be
        // refused (and counted) by every relay rather than sent unsigned.
        let Ok(v) = serde_json::value::to_raw_value(&body) else {
            return String::new();
        };
        let mut mac = self.mac();
        mac.update(v.get().as_bytes());
        let mac = hex(&mac.finalize().into_bytes());
        serde_json::to_string(&SealedWire { k: "e", v: &v, mac }).unwrap_or_default()
    }

    /// Verifies a relayed event's signature and age, then its fields.
    pub fn open(
        &self,
        sealed: &SealedEvent,
        now_ms: u64,
    ) -> Result<(Origin, RelayedEvent), HintError> {
        let tag = unhex(&sealed.mac).ok_or(HintError::BadSignature)?;
        let mut mac = self.mac();
        mac.update(sealed.body.as_bytes());
        // Constant time, so that a forger learns nothing from how long a refusal takes.
        mac.verify_slice(&tag)
            .map_err(|_| HintError::BadSignature)?;
        let body: Body =
            serde_json::from_str(&sealed.body).map_err(|e| HintError::Shape(e.to_string()))?;
        if body.t.abs_diff(now_ms) > MAX_EVENT_AGE_MS {
            return Err(HintError::Stale);
        }
        body.ev.check()?;
        Ok((
            Origin {
                instance: body.o,
                conn: body.c,
            },
            body.ev,
        ))
    }
}

/// Milliseconds since the Unix epoch: the clock relayed events are stamped and checked with.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Uuid {
        Uuid::new_v4()
    }

    #[test]
    fn parses_the_desk_hints() {
        let a = id();
        assert_eq!(
            Hint::parse(&format!(r#"{{"k":"c","id":"{a}"}}"#)),
            Ok(Hint::CannedResponse(a))
        );
        assert_eq!(
            Hint::parse(&format!(r#"{{"k":"n","id":"{a}"}}"#)),
            Ok(Hint::InternalNote(a))
        );
        assert_eq!(Hint::parse(r#"{"k":"d"}"#), Ok(Hint::DeskSettings));
        // Identifiers only, as the triggers send them: anything more is not ours.
        assert!(Hint::parse(&format!(r#"{{"k":"n","id":"{a}","note":"x"}}"#)).is_err());
        assert_eq!(
            Hint::parse(&format!(r#"{{"k":"d","id":"{a}"}}"#)),
            Err(HintError::Unexpected {
                kind: "d",
                field: "id"
            })
        );
        assert_eq!(
            Hint::parse(r#"{"k":"c"}"#),
            Err(HintError::Missing {
                kind: "c",
                field: "id"
            })
        );
        assert!(Hint::parse(&format!(r#"{{"k":"c","id":"{}"}}"#, Uuid::nil())).is_err());
    }

    #[test]
    fn parses_what_the_triggers_send() {
        let (a, b) = (id(), id());
        assert_eq!(
            Hint::parse(&format!(r#"{{"k":"m","op":"i","ids":["{a}","{b}"]}}"#)),
            Ok(Hint::Messages {
                op: MessageOp::Inserted,
                ids: vec![a, b]
            })
        );
        assert_eq!(
            Hint::parse(&format!(r#"{{"k":"m","op":"u","ids":["{a}"]}}"#)),
            Ok(Hint::Messages {
                op: MessageOp::Updated,
                ids: vec![a]
            })
        );
        assert_eq!(
            Hint::parse(&format!(
                r#"{{"k":"r","ranges":[{{"sessionId":"{a}","from":"3","to":"11842"}}]}}"#
            )),
            Ok(Hint::Ranges(vec![UpdatedRange {
                session_id: a,
                from: 3,
                to: 11842
            }]))
        );
        assert_eq!(
            Hint::parse(&format!(r#"{{"k": "s", "id": "{a}"}}"#)),
            Ok(Hint::Session(a))
        );
        assert_eq!(
            Hint::parse(r#"{"k":"p","greId":"staff-7"}"#),
            Ok(Hint::Presence("staff-7".into()))
        );
    }

    #[test]
    fn missing_fields_are_errors_not_defaults() {
        let a = id();
        // A range without a cursor does not become 0; a session hint without an id does not
        // become the nil UUID.
        assert!(matches!(
            Hint::parse(&format!(
                r#"{{"k":"r","ranges":[{{"sessionId":"{a}","to":"5"}}]}}"#
            )),
            Err(HintError::Shape(_))
        ));
        assert_eq!(
            Hint::parse(r#"{"k":"s"}"#),
            Err(HintError::Missing {
                kind: "s",
                field: "id"
            })
        );
        assert!(Hint::parse(&format!(r#"{{"k":"s","id":"{}"}}"#, Uuid::nil())).is_err());
        assert_eq!(
            Hint::parse(&format!(r#"{{"k":"m","ids":["{a}"]}}"#)),
            Err(HintError::Missing {
                kind: "m",
                field: "op"
            })
        );
        assert!(Hint::parse(r#"{"k":"m","op":"i"}"#).is_err());
        assert!(Hint::parse(r#"{"k":"m","op":"i","ids":[]}"#).is_err());
        assert!(Hint::parse(r#"{"k":"p"}"#).is_err());
        assert!(Hint::parse(r#"{"k":"e","v":{}}"#).is_err());
    }

    #[test]
    fn refuses_what_the_old_payloads_and_forgers_send() {
        let a = id();
        // The whole-row payloads of before: a message text is an unknown field.
        assert!(Hint::parse(&format!(
            r#"{{"k":"m","op":"i","rows":[{{"id":"{a}","message":"hi"}}]}}"#
        ))
        .is_err());
        assert!(Hint::parse(&format!(
            r#"{{"k":"s","session":{{"id":"{a}","playerId":31,"status":"active"}}}}"#
        ))
        .is_err());
        // Fields of another kind.
        assert_eq!(
            Hint::parse(&format!(r#"{{"k":"s","id":"{a}","greId":"x"}}"#)),
            Err(HintError::Unexpected {
                kind: "s",
                field: "greId"
            })
        );
        assert!(matches!(
            Hint::parse(r#"{"k":"z"}"#),
            Err(HintError::UnknownKind(_))
        ));
        assert!(Hint::parse("not json").is_err());
        assert!(Hint::parse("[1]").is_err());
        assert!(Hint::parse(r#"{"k":"m","op":"x","ids":[]}"#).is_err());
        // Cursors: digits only, in range, from <= to.
        for (from, to) in [
            ("-1", "2"),
            ("1e9", "2"),
            ("5", "4"),
            ("", "1"),
            ("99999999999999999999", "1"),
        ] {
            assert!(
                Hint::parse(&format!(
                    r#"{{"k":"r","ranges":[{{"sessionId":"{a}","from":"{from}","to":"{to}"}}]}}"#
                ))
                .is_err(),
                "{from}..{to}"
            );
        }
        let many: Vec<String> = (0..=MAX_IDS).map(|_| format!("\"{}\"", id())).collect();
        assert!(Hint::parse(&format!(
            r#"{{"k":"m","op":"i","ids":[{}]}}"#,
            many.join(",")
        ))
        .is_err());
        assert!(Hint::parse(&format!(r#"{{"k":"p","greId":"{}"}}"#, "x".repeat(201))).is_err());
    }

    fn key() -> RelayKey {
        RelayKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).expect("key")
    }

    fn sealed(payload: &str) -> SealedEvent {
        match Hint::parse(payload) {
            Ok(Hint::Relayed(s)) => s,
            other => panic!("not a relayed event: {other:?}"),
        }
    }

    #[test]
    fn relayed_events_round_trip_and_forgeries_fail() {
        let origin = Origin {
            instance: id(),
            conn: 17,
        };
        let ev = RelayedEvent::Typing {
            session_id: id(),
            side: Side::Player,
            staff_id: None,
            is_typing: true,
        };
        let now = 1_700_000_000_000;
        let payload = key().seal(origin, &ev, now);
        assert!(!payload.contains("playerId"), "{payload}");
        assert_eq!(
            key().open(&sealed(&payload), now + 5),
            Ok((origin, ev.clone()))
        );

        // Another key, a changed byte, no signature, a replay a minute later.
        let other = RelayKey::new(b"fedcba9876543210fedcba9876543210".to_vec()).expect("key");
        assert_eq!(
            other.open(&sealed(&payload), now),
            Err(HintError::BadSignature)
        );
        let tampered = payload.replace("true", "false");
        assert_eq!(
            key().open(&sealed(&tampered), now),
            Err(HintError::BadSignature)
        );
        let unsigned = payload.replace(&sealed(&payload).mac, "00");
        assert_eq!(
            key().open(&sealed(&unsigned), now),
            Err(HintError::BadSignature)
        );
        assert_eq!(
            key().open(&sealed(&payload), now + MAX_EVENT_AGE_MS + 1),
            Err(HintError::Stale)
        );
        // A frame forwarded as it is, the old way, is not even a relayed event.
        assert!(Hint::parse(&format!(
            r#"{{"k":"e","sessionId":"{}","origin":"x:1","frame":{{"type":"chat_message"}}}}"#,
            id()
        ))
        .is_err());
    }

    #[test]
    fn signed_events_with_wrong_fields_are_refused() {
        let origin = Origin {
            instance: id(),
            conn: 1,
        };
        let player_naming_someone = RelayedEvent::Typing {
            session_id: id(),
            side: Side::Player,
            staff_id: Some("29".into()),
            is_typing: true,
        };
        let payload = key().seal(origin, &player_naming_someone, 5);
        assert!(key().open(&sealed(&payload), 5).is_err());
        let read = RelayedEvent::MessagesRead {
            session_id: id(),
            reader: Side::Gre,
            up_to: id(),
            cursor: 43,
            count: 1,
        };
        let payload = key().seal(origin, &read, 5);
        assert_eq!(key().open(&sealed(&payload), 5), Ok((origin, read)));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex(&hex(&[0, 1, 254, 255])), Some(vec![0, 1, 254, 255]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
