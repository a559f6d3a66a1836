//! What a player or a staff member can do, whatever door they came in by (WebSocket or REST):
//! the checks (chat access, ownership), the store call, and the verdict when it is refused
//! ([`ChatError`]). Both front ends call these, so the rules live in one place.
//!
//! Takes only what it needs (the [`Store`]), never the whole application state. Must not touch:
//! sockets, HTTP, the hub (delivery is the listener's, from the committed rows).

use uuid::Uuid;

use crate::auth::Identity;
use crate::db::{Author, PlayerSend, Refusal, Store, StoreError, StoredMessage};
use crate::protocol::{ErrorCode, ProtocolError};

/// The chat rules' verdict on a request they refuse, or the store failing under them.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChatError {
    #[error("no such session or message")]
    NotFound,
    /// The attachmentId names no upload this sender may send (sql/0220).
    #[error(
        "no such attachment: upload it first (an upload is sent once, and unsent ones expire)"
    )]
    NoUpload,
    #[error("not your session")]
    NotYours,
    #[error("staff only")]
    StaffOnly,
    #[error("the session is closed")]
    SessionClosed,
    #[error("chat is not enabled for this player yet")]
    ChatDisabled,
    /// Only the staff's status change can run into it (REST): a second open session.
    #[error("the player already has an open session")]
    Conflict,
    /// Only the desk's REST API can run into it: a canned response's short code in use.
    #[error("that short code is already in use")]
    Duplicate,
    #[error("the database refused the message")]
    Invalid,
    #[error("database unavailable, try again")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl From<StoreError> for ChatError {
    /// Judges what the database said. Internal details stay in the log.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(Refusal::NoRow) => ChatError::NotFound,
            StoreError::Refused(Refusal::NoUpload) => ChatError::NoUpload,
            StoreError::Refused(Refusal::OtherOwner) => ChatError::NotYours,
            StoreError::Refused(Refusal::SessionClosed) => ChatError::SessionClosed,
            StoreError::Refused(Refusal::ChatGate) => ChatError::ChatDisabled,
            StoreError::Refused(Refusal::OpenSessionExists) => ChatError::Conflict,
            StoreError::Refused(Refusal::Duplicate) => ChatError::Duplicate,
            e if e.is_constraint_violation() => {
                tracing::debug!(error = %e, "rejected by a constraint");
                ChatError::Invalid
            }
            StoreError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "database unavailable");
                ChatError::Unavailable
            }
            e => {
                tracing::error!(error = %e, "database error");
                ChatError::Internal
            }
        }
    }
}

impl ChatError {
    /// The protocol code a client is told. `Conflict` has no WebSocket code: REST maps it to
    /// its own (`http::error`), and no frame can cause it.
    pub(crate) fn code(&self) -> Option<ErrorCode> {
        Some(match self {
            ChatError::NotFound | ChatError::NoUpload => ErrorCode::NotFound,
            ChatError::NotYours | ChatError::StaffOnly => ErrorCode::Forbidden,
            ChatError::SessionClosed => ErrorCode::SessionClosed,
            ChatError::ChatDisabled => ErrorCode::ChatDisabled,
            ChatError::Conflict | ChatError::Duplicate => return None,
            ChatError::Invalid => ErrorCode::InvalidMessage,
            ChatError::Unavailable => ErrorCode::Unavailable,
            ChatError::Internal => ErrorCode::Internal,
        })
    }
}

impl From<ChatError> for ProtocolError {
    fn from(e: ChatError) -> Self {
        ProtocolError::new(e.code().unwrap_or(ErrorCode::Internal), e.to_string())
    }
}

/// Judges a store failure (for callers that query the store directly).
pub(crate) fn store_error(e: StoreError) -> ChatError {
    ChatError::from(e)
}

/// Stores a player's message (opening a session when it has none), if chat is open to it.
/// The chat gate is the database's (triggers/10, from the setting this relay stored at start),
/// so it is the same for this relay, other relays and direct writers; a refusal rolls back the
/// whole send, a session it would have opened included.
pub(crate) async fn player_send(
    store: &Store,
    player_id: i64,
    session_hint: Option<Uuid>,
    text: &str,
    client_message_id: Option<&str>,
    attachment: Option<Uuid>,
) -> Result<PlayerSend, ChatError> {
    Ok(store
        .send_player_message(
            player_id,
            session_hint,
            None,
            text,
            client_message_id,
            attachment,
        )
        .await?)
}

/// Stores a GRE reply into an existing, open session. Returns the message and whether it was a
/// retry of an earlier send (same clientMessageId).
pub(crate) async fn staff_send(
    store: &Store,
    identity: &Identity,
    session_id: Uuid,
    text: &str,
    client_message_id: Option<&str>,
    attachment: Option<Uuid>,
) -> Result<(StoredMessage, bool), ChatError> {
    let Identity::Staff { staff_id, name, .. } = identity else {
        return Err(ChatError::StaffOnly);
    };
    let author = Author {
        sender: "gre",
        sender_id: staff_id,
        sender_name: name.as_deref(),
    };
    Ok(store
        .send_staff_message(session_id, &author, text, client_message_id, attachment)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_database_said_becomes_a_verdict() {
        let verdict = |r| ChatError::from(StoreError::Refused(r));
        assert!(matches!(verdict(Refusal::NoRow), ChatError::NotFound));
        assert!(matches!(verdict(Refusal::OtherOwner), ChatError::NotYours));
        assert!(matches!(
            verdict(Refusal::SessionClosed),
            ChatError::SessionClosed
        ));
        assert!(matches!(
            verdict(Refusal::ChatGate),
            ChatError::ChatDisabled
        ));
        assert!(matches!(
            verdict(Refusal::OpenSessionExists),
            ChatError::Conflict
        ));
        assert!(matches!(
            ChatError::from(StoreError::Unavailable("pool timed out".into())),
            ChatError::Unavailable
        ));
    }

    #[test]
    fn a_client_is_told_the_protocol_code_and_no_internals() {
        let e = ProtocolError::from(ChatError::NotYours);
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert_eq!(e.message, "not your session");
        let e = ProtocolError::from(ChatError::from(StoreError::Decode("column 3".into())));
        assert_eq!(e.code, ErrorCode::Internal);
        assert!(!e.message.contains("column"));
        assert_eq!(ChatError::Conflict.code(), None);
    }
}
