//! What a player or a staff member can do, whatever door they came in by (WebSocket or REST):
//! the checks (chat access, ownership) and the store call, with failures turned into protocol
//! errors. Both front ends call these, so the rules live in one place.

use uuid::Uuid;

use crate::auth::Identity;
use crate::protocol::{ErrorCode, ProtocolError};
use crate::server::AppState;
use crate::store::{Author, PlayerSend, StoreError, StoredMessage};

/// Stores a player's message (opening a session when it has none), if chat is open to it.
/// The chat gate is the database's (triggers/10, from the setting this relay stored at start),
/// so it is the same for this relay, other relays and direct writers; a refusal rolls back the
/// whole send, a session it would have opened included.
pub async fn player_send(
    app: &AppState,
    player_id: i64,
    session_hint: Option<Uuid>,
    text: &str,
    client_message_id: Option<&str>,
) -> Result<PlayerSend, ProtocolError> {
    app.store
        .send_player_message(player_id, session_hint, None, text, client_message_id)
        .await
        .map_err(store_error)
}

/// Stores a GRE reply into an existing, open session. Returns the message and whether it was a
/// retry of an earlier send (same clientMessageId).
pub async fn staff_send(
    app: &AppState,
    identity: &Identity,
    session_id: Uuid,
    text: &str,
    client_message_id: Option<&str>,
) -> Result<(StoredMessage, bool), ProtocolError> {
    let Identity::Staff { staff_id, name, .. } = identity else {
        return Err(ProtocolError::new(ErrorCode::Forbidden, "staff only"));
    };
    let author = Author {
        sender: "gre",
        sender_id: staff_id,
        sender_name: name.as_deref(),
    };
    app.store
        .send_staff_message(session_id, &author, text, client_message_id)
        .await
        .map_err(store_error)
}

/// Maps store failures to what a client is told. Internal details stay in the log.
pub fn store_error(e: StoreError) -> ProtocolError {
    match e {
        StoreError::NotFound => {
            ProtocolError::new(ErrorCode::NotFound, "no such session or message")
        }
        StoreError::Forbidden => ProtocolError::new(ErrorCode::Forbidden, "not your session"),
        StoreError::SessionClosed => {
            ProtocolError::new(ErrorCode::SessionClosed, "the session is closed")
        }
        StoreError::ChatDisabled => ProtocolError::new(
            ErrorCode::ChatDisabled,
            "chat is not enabled for this player yet",
        ),
        StoreError::Conflict => ProtocolError::new(
            ErrorCode::Conflict,
            "the player already has an open session",
        ),
        e if e.is_constraint_violation() => {
            tracing::debug!(error = %e, "rejected by a constraint");
            ProtocolError::new(
                ErrorCode::InvalidMessage,
                "the database refused the message",
            )
        }
        StoreError::Unavailable(msg) => {
            tracing::warn!(error = %msg, "database unavailable");
            ProtocolError::new(ErrorCode::Unavailable, "database unavailable, try again")
        }
        e => {
            tracing::error!(error = %e, "database error");
            ProtocolError::new(ErrorCode::Internal, "internal error")
        }
    }
}
