//! The WebSocket protocol's frames (docs/protocol.md): parsing what clients send, building what
//! the server sends. Pure functions over JSON; no I/O here.
//!
//! Messages and sessions arrive from PostgreSQL already shaped as wire JSON (by
//! `gre_relay.message_json()` / `session_json()`, sql/0070_wire_json.sql); frames embed that JSON
//! as it is, so a message is never decoded and re-encoded on its way to clients.
//!
//! A leaf: imports nothing of the crate. Must not touch: I/O, the state.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use uuid::Uuid;

/// Longest chat message, in characters (the table's check constraint agrees).
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// Longest `clientMessageId` (the table's check constraint agrees).
pub const MAX_CLIENT_MESSAGE_ID_CHARS: usize = 200;

/// Error codes of `error` frames (REST answers with these and a few of its own: `http::error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidJson,
    UnknownType,
    InvalidFrame,
    Unauthenticated,
    Forbidden,
    InvalidMessage,
    NotFound,
    RateLimited,
    ChatDisabled,
    SessionClosed,
    TokenExpired,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidFrame => "invalid_frame",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ChatDisabled => "chat_disabled",
            ErrorCode::SessionClosed => "session_closed",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// A protocol-level error: a code and a human sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
        }
    }
}

/// A position in a session's history: the `cursor` of a message. Clients hand it back as `since`.
/// On the wire it is an opaque string (today the message's number in its session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor(pub i64);

impl Cursor {
    pub fn parse(value: &Value) -> Result<Cursor, ProtocolError> {
        let n = match value {
            Value::String(s) => s.trim().parse::<i64>().ok(),
            Value::Number(n) => n.as_i64(),
            Value::Null => Some(0),
            _ => None,
        };
        match n {
            Some(n) if n >= 0 => Ok(Cursor(n)),
            _ => Err(ProtocolError::new(
                ErrorCode::InvalidFrame,
                "since is not a cursor",
            )),
        }
    }
    pub fn parse_str(s: &str) -> Result<Cursor, ProtocolError> {
        Cursor::parse(&Value::String(s.to_owned()))
    }
    pub fn to_wire(self) -> String {
        self.0.to_string()
    }
}

/// What a client may send after parsing and validation.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Authenticate {
        token: String,
    },
    SendMessage {
        /// Empty only when `attachment_id` is given: an attachment sent alone.
        message: String,
        session_id: Option<Uuid>,
        client_message_id: Option<String>,
        /// An upload of this sender's (`POST /api/gre-chat/attachments`) to send with it.
        attachment_id: Option<Uuid>,
    },
    Subscribe {
        session_id: Uuid,
        since: Option<Cursor>,
    },
    Unsubscribe {
        session_id: Uuid,
    },
    Typing {
        session_id: Uuid,
        is_typing: bool,
    },
    MarkRead {
        session_id: Uuid,
        up_to: Uuid,
    },
    Ping,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendMessageFields {
    /// Required unless `attachment_id` is given (checked after parsing).
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    session_id: Option<Uuid>,
    #[serde(default)]
    client_message_id: Option<String>,
    #[serde(default)]
    attachment_id: Option<Uuid>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscribeFields {
    session_id: Uuid,
    #[serde(default)]
    since: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionFields {
    session_id: Uuid,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypingFields {
    session_id: Uuid,
    is_typing: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MarkReadFields {
    session_id: Uuid,
    up_to: Uuid,
}

#[derive(Deserialize)]
struct AuthenticateFields {
    token: String,
}

fn fields<T: serde::de::DeserializeOwned>(
    value: Value,
    code: ErrorCode,
    kind: &str,
) -> Result<T, ProtocolError> {
    serde_json::from_value(value)
        .map_err(|e| ProtocolError::new(code, format!("bad {kind} frame: {e}")))
}

/// Parses one text frame. Errors carry the code the client gets back.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, ProtocolError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ProtocolError::new(ErrorCode::InvalidJson, format!("not JSON: {e}")))?;
    let kind = match value.get("type") {
        Some(Value::String(t)) => t.clone(),
        _ if !value.is_object() => {
            return Err(ProtocolError::new(
                ErrorCode::InvalidJson,
                "a frame must be a JSON object",
            ))
        }
        _ => {
            return Err(ProtocolError::new(
                ErrorCode::UnknownType,
                "the frame has no string 'type'",
            ))
        }
    };
    let frame = match kind.as_str() {
        "authenticate" => {
            let f: AuthenticateFields = fields(value, ErrorCode::InvalidFrame, &kind)?;
            ClientFrame::Authenticate { token: f.token }
        }
        "send_message" | "chat_message" => {
            let f: SendMessageFields = fields(value, ErrorCode::InvalidMessage, &kind)?;
            let message = validate_message_with_attachment(f.message, f.attachment_id.is_some())?;
            let client_message_id = match f.client_message_id {
                Some(id) => Some(validate_client_message_id(id)?),
                None => None,
            };
            ClientFrame::SendMessage {
                message,
                session_id: f.session_id,
                client_message_id,
                attachment_id: f.attachment_id,
            }
        }
        "subscribe" => {
            let f: SubscribeFields = fields(value, ErrorCode::InvalidFrame, &kind)?;
            let since = match f.since {
                None | Some(Value::Null) => None,
                Some(v) => Some(Cursor::parse(&v)?),
            };
            ClientFrame::Subscribe {
                session_id: f.session_id,
                since,
            }
        }
        "unsubscribe" => {
            let f: SessionFields = fields(value, ErrorCode::InvalidFrame, &kind)?;
            ClientFrame::Unsubscribe {
                session_id: f.session_id,
            }
        }
        "typing" => {
            let f: TypingFields = fields(value, ErrorCode::InvalidFrame, &kind)?;
            ClientFrame::Typing {
                session_id: f.session_id,
                is_typing: f.is_typing,
            }
        }
        "mark_read" => {
            let f: MarkReadFields = fields(value, ErrorCode::InvalidFrame, &kind)?;
            ClientFrame::MarkRead {
                session_id: f.session_id,
                up_to: f.up_to,
            }
        }
        "ping" => ClientFrame::Ping,
        other => {
            let shown: String = other.chars().take(40).collect();
            return Err(ProtocolError::new(
                ErrorCode::UnknownType,
                format!("unknown frame type '{shown}'"),
            ));
        }
    };
    Ok(frame)
}

/// Checks a chat message's text as the database will: 1 to 4000 characters, not only white
/// space, no NUL (PostgreSQL text cannot hold it). Returns it unchanged when good.
pub fn validate_message_text(message: String) -> Result<String, ProtocolError> {
    if message.contains('\0') {
        return Err(ProtocolError::new(
            ErrorCode::InvalidMessage,
            "message contains a NUL character",
        ));
    }
    if message.trim().is_empty() {
        return Err(ProtocolError::new(
            ErrorCode::InvalidMessage,
            "message is empty",
        ));
    }
    let chars = message.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(ProtocolError::new(
            ErrorCode::InvalidMessage,
            format!("message is {chars} characters; at most {MAX_MESSAGE_CHARS}"),
        ));
    }
    Ok(message)
}

/// Like [`validate_message_text`], but with an attachment the text is a caption and may be
/// absent or blank: then it is returned empty (the message is the attachment alone).
pub fn validate_message_with_attachment(
    message: Option<String>,
    has_attachment: bool,
) -> Result<String, ProtocolError> {
    match message {
        Some(m) if has_attachment && m.trim().is_empty() && !m.contains('\0') => Ok(String::new()),
        None if has_attachment => Ok(String::new()),
        Some(m) => validate_message_text(m),
        None => Err(ProtocolError::new(
            ErrorCode::InvalidMessage,
            "message is required (or an attachmentId)",
        )),
    }
}

pub fn validate_client_message_id(id: String) -> Result<String, ProtocolError> {
    if id.is_empty() || id.chars().count() > MAX_CLIENT_MESSAGE_ID_CHARS || id.contains('\0') {
        return Err(ProtocolError::new(
            ErrorCode::InvalidMessage,
            format!(
                "clientMessageId must be 1 to {MAX_CLIENT_MESSAGE_ID_CHARS} characters without NUL"
            ),
        ));
    }
    Ok(id)
}

// ---- server frames ---------------------------------------------------------------------------

pub fn error_frame(err: &ProtocolError) -> String {
    json!({"type": "error", "code": err.code.as_str(), "message": err.message}).to_string()
}

/// An error about one request, naming it so that the client can tell which one failed.
pub fn error_frame_for(
    err: &ProtocolError,
    client_message_id: Option<&str>,
    session_id: Option<Uuid>,
) -> String {
    let mut frame = json!({"type": "error", "code": err.code.as_str(), "message": err.message});
    if let Some(id) = client_message_id {
        frame["clientMessageId"] = json!(id);
    }
    if let Some(id) = session_id {
        frame["sessionId"] = json!(id);
    }
    frame.to_string()
}

/// Best effort for a frame that did not parse: its clientMessageId and sessionId, if it is a
/// JSON object that has them with the right types.
pub fn raw_context(text: &str) -> (Option<String>, Option<Uuid>) {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return (None, None);
    };
    let cid = map
        .get("clientMessageId")
        .and_then(Value::as_str)
        .filter(|c| c.chars().count() <= MAX_CLIENT_MESSAGE_ID_CHARS)
        .map(str::to_owned);
    let sid = map
        .get("sessionId")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok());
    (cid, sid)
}

impl ClientFrame {
    /// The request's clientMessageId and sessionId, echoed in an error about it.
    pub fn context(&self) -> (Option<&str>, Option<Uuid>) {
        match self {
            ClientFrame::SendMessage {
                client_message_id,
                session_id,
                ..
            } => (client_message_id.as_deref(), *session_id),
            ClientFrame::Subscribe { session_id, .. }
            | ClientFrame::Unsubscribe { session_id }
            | ClientFrame::Typing { session_id, .. }
            | ClientFrame::MarkRead { session_id, .. } => (None, Some(*session_id)),
            ClientFrame::Authenticate { .. } | ClientFrame::Ping => (None, None),
        }
    }
}

pub fn pong_frame() -> String {
    r#"{"type":"pong"}"#.to_owned()
}

pub fn authenticated_player_frame(player_id: i64, session_id: Option<Uuid>) -> String {
    json!({"type": "authenticated", "role": "player", "playerId": player_id, "sessionId": session_id}).to_string()
}

pub fn authenticated_staff_frame(staff_id: &str) -> String {
    json!({"type": "authenticated", "role": "gre_staff", "staffId": staff_id, "sessionId": null})
        .to_string()
}

/// `chat_message` around a message already in wire JSON.
pub fn chat_message_frame(message_json: &RawValue) -> String {
    format!(
        r#"{{"type":"chat_message","message":{}}}"#,
        message_json.get()
    )
}

/// `message_updated` (a stored message changed, e.g. its status became `read`).
pub fn message_updated_frame(message_json: &RawValue) -> String {
    format!(
        r#"{{"type":"message_updated","message":{}}}"#,
        message_json.get()
    )
}

pub fn session_updated_frame(session_json: &RawValue) -> String {
    format!(
        r#"{{"type":"session_updated","session":{}}}"#,
        session_json.get()
    )
}

pub fn message_sent_frame(client_message_id: Option<&str>, message_json: &RawValue) -> String {
    let id = serde_json::to_string(&client_message_id).unwrap_or_else(|_| "null".into());
    format!(
        r#"{{"type":"message_sent","clientMessageId":{id},"message":{}}}"#,
        message_json.get()
    )
}

pub fn subscribed_frame(session_id: Uuid, cursor: Cursor) -> String {
    json!({"type": "subscribed", "sessionId": session_id, "cursor": cursor.to_wire()}).to_string()
}

pub fn unsubscribed_frame(session_id: Uuid) -> String {
    json!({"type": "unsubscribed", "sessionId": session_id}).to_string()
}

pub fn typing_frame(session_id: Uuid, sender: &str, sender_id: &str, is_typing: bool) -> String {
    json!({"type": "typing", "sessionId": session_id, "sender": sender, "senderId": sender_id, "isTyping": is_typing})
        .to_string()
}

/// `messages_read`: `reader` read the other side's messages up to `up_to` (a message id, as in
/// `mark_read`), whose cursor is `cursor`; `count` messages changed to `read`. No id list: a
/// large read must still fit in one NOTIFY.
pub fn messages_read_frame(
    session_id: Uuid,
    reader: &str,
    up_to: Uuid,
    cursor: Cursor,
    count: usize,
) -> String {
    json!({"type": "messages_read", "sessionId": session_id, "reader": reader, "upTo": up_to, "cursor": cursor.to_wire(), "count": count})
        .to_string()
}

/// `messages_updated` (an extension of the contract): one statement changed more messages of a
/// session than are announced one by one (a mass "mark read"); the messages with cursors from
/// `from` to `to` (`count` of them) may have changed. Clients that show them read them again.
pub fn messages_updated_frame(session_id: Uuid, from: Cursor, to: Cursor, count: i64) -> String {
    json!({"type": "messages_updated", "sessionId": session_id, "fromCursor": from.to_wire(), "toCursor": to.to_wire(), "count": count})
        .to_string()
}

/// To everyone: whether any GRE is online.
pub fn gre_presence_frame(online_count: i64) -> String {
    json!({"type": "gre_presence", "anyOnline": online_count > 0, "onlineCount": online_count})
        .to_string()
}

/// To staff: one staff member's presence changed (or is, right after authenticate).
pub fn staff_presence_frame(
    gre_id: &str,
    is_online: bool,
    status: &str,
    last_seen: Option<&str>,
) -> String {
    json!({"type": "staff_presence", "greId": gre_id, "isOnline": is_online, "status": status, "lastSeen": last_seen})
        .to_string()
}

/// To staff: a canned response was added or changed (`canned_response_updated`), or deleted
/// (`canned_response_deleted`); `cannedResponse` is its wire JSON (docs/protocol.md, "The GRE desk").
pub fn canned_response_frame(deleted: bool, json: &RawValue) -> String {
    let kind = if deleted {
        "canned_response_deleted"
    } else {
        "canned_response_updated"
    };
    format!(r#"{{"type":"{kind}","cannedResponse":{}}}"#, json.get())
}

/// To staff only: an internal note was added (`internal_note`), or a session was transferred
/// (`session_transferred`, with the transfer's record). Never to a player.
pub fn internal_note_frame(transfer: bool, json: &RawValue) -> String {
    let kind = if transfer {
        "session_transferred"
    } else {
        "internal_note"
    };
    format!(r#"{{"type":"{kind}","note":{}}}"#, json.get())
}

/// To staff: the desk settings or a GRE's capacity changed; `settings` is all of them.
pub fn desk_settings_frame(json: &RawValue) -> String {
    format!(
        r#"{{"type":"desk_settings_updated","settings":{}}}"#,
        json.get()
    )
}

/// To staff: players waiting for an answer now, and since when the longest has waited
/// (docs/analytics.md); sent when either changes, at most once a second.
pub fn analytics_live_frame(waiting_now: i64, longest_wait_since: Option<&str>) -> String {
    json!({"type": "analytics_live", "waitingNow": waiting_now, "longestWaitSince": longest_wait_since})
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        parse_client_frame(text).expect_err("should fail").code
    }

    #[test]
    fn an_attachment_may_go_without_text_and_text_alone_must_not_be_blank() {
        let att = Uuid::new_v4();
        let parsed = |v: Value| parse_client_frame(&v.to_string());
        assert_eq!(
            parsed(json!({"type": "send_message", "attachmentId": att})),
            Ok(ClientFrame::SendMessage {
                message: String::new(),
                session_id: None,
                client_message_id: None,
                attachment_id: Some(att),
            })
        );
        let blank = parsed(json!({"type": "send_message", "attachmentId": att, "message": "  "}));
        assert!(
            matches!(blank, Ok(ClientFrame::SendMessage { ref message, .. }) if message.is_empty())
        );
        let caption =
            parsed(json!({"type": "send_message", "attachmentId": att, "message": "my receipt"}));
        assert!(
            matches!(caption, Ok(ClientFrame::SendMessage { ref message, .. }) if message == "my receipt")
        );
        for bad in [
            json!({"type": "send_message"}),
            json!({"type": "send_message", "message": " "}),
            json!({"type": "send_message", "attachmentId": "not-a-uuid"}),
            json!({"type": "send_message", "attachmentId": att, "message": "x".repeat(4001)}),
        ] {
            assert_eq!(
                parsed(bad.clone()).map_err(|e| e.code),
                Err(ErrorCode::InvalidMessage),
                "{bad}"
            );
        }
    }

    #[test]
    fn parses_every_client_type() {
        let sid = Uuid::new_v4();
        assert_eq!(
            parse_client_frame(r#"{"type":"authenticate","token":"x"}"#),
            Ok(ClientFrame::Authenticate { token: "x".into() })
        );
        assert_eq!(
            parse_client_frame(&format!(
                r#"{{"type":"chat_message","message":"hi","sessionId":"{sid}","clientMessageId":"c1"}}"#
            )),
            Ok(ClientFrame::SendMessage {
                message: "hi".into(),
                session_id: Some(sid),
                client_message_id: Some("c1".into()),
                attachment_id: None,
            })
        );
        assert_eq!(
            parse_client_frame(&format!(
                r#"{{"type":"subscribe","sessionId":"{sid}","since":"17"}}"#
            )),
            Ok(ClientFrame::Subscribe {
                session_id: sid,
                since: Some(Cursor(17))
            })
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"ping"}"#),
            Ok(ClientFrame::Ping)
        );
    }

    #[test]
    fn classifies_bad_input() {
        assert_eq!(code("{not json"), ErrorCode::InvalidJson);
        assert_eq!(code("[1,2]"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"type":"launch_rockets"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"no":"type"}"#), ErrorCode::UnknownType);
        assert_eq!(
            code(r#"{"type":"send_message","message":42}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"type":"send_message","message":"   "}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"type":"send_message","message":"a\u0000b"}"#),
            ErrorCode::InvalidMessage
        );
        let long = "é".repeat(4001);
        assert_eq!(
            code(&format!(r#"{{"type":"send_message","message":"{long}"}}"#)),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"type":"subscribe","sessionId":"nope"}"#),
            ErrorCode::InvalidFrame
        );
        assert_eq!(
            code(&format!(
                r#"{{"type":"subscribe","sessionId":"{}","since":"-1"}}"#,
                Uuid::new_v4()
            )),
            ErrorCode::InvalidFrame
        );
    }

    #[test]
    fn parses_the_session_frames_and_their_context() {
        let sid = Uuid::new_v4();
        let up_to = Uuid::new_v4();
        let frame = parse_client_frame(&format!(r#"{{"type":"unsubscribe","sessionId":"{sid}"}}"#));
        assert_eq!(frame, Ok(ClientFrame::Unsubscribe { session_id: sid }));
        let frame = parse_client_frame(&format!(
            r#"{{"type":"typing","sessionId":"{sid}","isTyping":true}}"#
        ))
        .expect("typing");
        assert_eq!(
            frame,
            ClientFrame::Typing {
                session_id: sid,
                is_typing: true
            }
        );
        assert_eq!(frame.context(), (None, Some(sid)));
        assert_eq!(
            parse_client_frame(&format!(
                r#"{{"type":"mark_read","sessionId":"{sid}","upTo":"{up_to}"}}"#
            )),
            Ok(ClientFrame::MarkRead {
                session_id: sid,
                up_to
            })
        );
        let send =
            parse_client_frame(r#"{"type":"send_message","message":"hi","clientMessageId":"c9"}"#)
                .expect("send_message");
        assert_eq!(send.context(), (Some("c9"), None));
        // A subscribe without `since` starts now; `null` means the same.
        assert_eq!(
            parse_client_frame(&format!(
                r#"{{"type":"subscribe","sessionId":"{sid}","since":null}}"#
            )),
            Ok(ClientFrame::Subscribe {
                session_id: sid,
                since: None
            })
        );
    }

    #[test]
    fn session_frames_without_their_fields_are_invalid_frames() {
        assert_eq!(code(r#"{"type":"authenticate"}"#), ErrorCode::InvalidFrame);
        assert_eq!(code(r#"{"type":"unsubscribe"}"#), ErrorCode::InvalidFrame);
        let sid = Uuid::new_v4();
        assert_eq!(
            code(&format!(r#"{{"type":"typing","sessionId":"{sid}"}}"#)),
            ErrorCode::InvalidFrame
        );
        assert_eq!(
            code(&format!(
                r#"{{"type":"mark_read","sessionId":"{sid}","upTo":"x"}}"#
            )),
            ErrorCode::InvalidFrame
        );
        assert_eq!(
            code(r#"{"type":"send_message"}"#),
            ErrorCode::InvalidMessage
        );
        // An error about an unparsable frame still names what it could read.
        let (cid, sid_read) = raw_context(&format!(
            r#"{{"type":"send_message","clientMessageId":"c1","sessionId":"{sid}"}}"#
        ));
        assert_eq!(cid.as_deref(), Some("c1"));
        assert_eq!(sid_read, Some(sid));
    }

    #[test]
    fn analytics_live_frames_carry_the_count_and_the_time_or_null() {
        let v: serde_json::Value = serde_json::from_str(&analytics_live_frame(
            3,
            Some("2025-11-24T18:02:11.482913Z"),
        ))
        .expect("json");
        assert_eq!(
            v,
            json!({"type": "analytics_live", "waitingNow": 3, "longestWaitSince": "2025-11-24T18:02:11.482913Z"})
        );
        let v: serde_json::Value =
            serde_json::from_str(&analytics_live_frame(0, None)).expect("json");
        assert_eq!(v["longestWaitSince"], serde_json::Value::Null);
    }

    #[test]
    fn four_thousand_emoji_are_accepted() {
        let text = "😀".repeat(4000);
        assert!(validate_message_text(text).is_ok());
    }
}
