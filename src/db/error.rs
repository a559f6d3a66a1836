//! The storage error: what went wrong talking to PostgreSQL, and what the database said when it
//! refused a write ([`Refusal`]). Verdicts (forbidden, closed, conflict) are the chat rules'
//! (`chat.rs`), not this module's.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// The database found nothing to act on or its rules refused the write: what it said, for
    /// the chat rules (`chat.rs`) to judge.
    #[error("refused by the database: {0:?}")]
    Refused(Refusal),
    #[error("bad data from the database: {0}")]
    Decode(String),
    #[error("invalid database URL: {0}")]
    Config(String),
}

/// What the database said when it did not do a write or found no row: facts about the rows,
/// not verdicts (the chat rules turn them into those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The row the query names does not exist.
    NoRow,
    /// The session belongs to another player.
    OtherOwner,
    /// The session is closed (checked, or SQLSTATE PT409 from triggers/10).
    SessionClosed,
    /// The database's chat gate refused a player message (SQLSTATE PT403, triggers/10): chat is
    /// not enabled for this player under the setting stored in gre_relay.settings.
    ChatGate,
    /// A unique index allows one open session per player, and another one is open.
    OpenSessionExists,
    /// The upload a message names is not there for this sender (never made, sent already,
    /// swept after `storage.unused_upload_seconds`, or someone else's).
    NoUpload,
    /// Another row holds the unique value (a canned response's short code).
    Duplicate,
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(db) => StoreError::Db(db),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

impl StoreError {
    /// A rejection by a constraint (check, foreign key, unique): the input was at fault.
    pub fn is_constraint_violation(&self) -> bool {
        match self {
            StoreError::Db(e) => matches!(
                e.code(),
                Some(c) if *c == SqlState::CHECK_VIOLATION
                    || *c == SqlState::FOREIGN_KEY_VIOLATION
                    || *c == SqlState::UNIQUE_VIOLATION
                    || *c == SqlState::NOT_NULL_VIOLATION
                    || *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE
                    || *c == SqlState::UNTRANSLATABLE_CHARACTER
            ),
            _ => false,
        }
    }
}
