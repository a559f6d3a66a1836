//! The REST request bodies (CONTRACT section 5), one typed serde struct per endpoint, parsed in
//! one place and unit-tested here. Each field is a [`Field`], so a handler can tell "absent"
//! from "null" from "not the right type" and answer with the contract's sentence for each.
//!
//! Must not touch: the network, the state, the rules (handlers in `rest.rs` validate what the
//! fields mean: message length, status names).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// One field of a JSON body, as it came.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Field<T> {
    /// The key is not in the object.
    #[default]
    Absent,
    /// `"key": null`.
    Null,
    /// A value of the expected type.
    Given(T),
    /// A value of another type (a number where a string belongs, ...).
    WrongType,
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Buffered so that a wrong type is an answer ("must be a string"), not a parse failure.
        let value = Value::deserialize(d)?;
        if value.is_null() {
            return Ok(Field::Null);
        }
        Ok(T::deserialize(value).map_or(Field::WrongType, Field::Given))
    }
}

/// `POST /api/gre-chat/send`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SendBody {
    #[serde(default)]
    pub(crate) message: Field<String>,
    #[serde(default)]
    pub(crate) client_message_id: Field<String>,
    /// An upload to send with the message (docs/protocol.md "Attachments"); kept as text so a
    /// malformed id gets its own sentence.
    #[serde(default)]
    pub(crate) attachment_id: Field<String>,
}

/// `POST /api/gre-admin/reply`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplyBody {
    /// Kept as text so a malformed id gets its own sentence.
    #[serde(default)]
    pub(crate) session_id: Field<String>,
    #[serde(default)]
    pub(crate) message: Field<String>,
    #[serde(default)]
    pub(crate) client_message_id: Field<String>,
    #[serde(default)]
    pub(crate) attachment_id: Field<String>,
}

/// `PUT /api/gre-admin/session/:sessionId/status`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatusBody {
    /// Absent: leave the status.
    #[serde(default)]
    pub(crate) status: Field<String>,
    /// Absent: leave the assignee; null: clear it; a string: assign.
    #[serde(default)]
    pub(crate) assigned_gre_id: Field<String>,
}

/// Why a body is not one of the above at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// No body, or `null`.
    Missing,
    /// JSON, but not an object.
    NotAnObject,
}

/// Parses an already-read JSON body into `T`.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, BodyError> {
    match body {
        Value::Null => Err(BodyError::Missing),
        Value::Object(_) => serde_json::from_value(body).map_err(|_| BodyError::NotAnObject),
        _ => Err(BodyError::NotAnObject),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_send_body_tells_absent_null_and_wrong_type_apart() {
        let b: SendBody = parse(json!({"message": "hi", "clientMessageId": "c-1"})).unwrap();
        assert_eq!(b.message, Field::Given("hi".into()));
        assert_eq!(b.client_message_id, Field::Given("c-1".into()));
        let b: SendBody = parse(json!({})).unwrap();
        assert_eq!(b.message, Field::Absent);
        assert_eq!(b.client_message_id, Field::Absent);
        let b: SendBody = parse(json!({"message": null, "clientMessageId": 7})).unwrap();
        assert_eq!(b.message, Field::Null);
        assert_eq!(b.client_message_id, Field::WrongType);
        let b: SendBody = parse(json!({"message": ["a"], "extra": true})).unwrap();
        assert_eq!(b.message, Field::WrongType);
    }

    #[test]
    fn bodies_that_are_not_objects_are_told_apart() {
        assert_eq!(parse::<SendBody>(Value::Null), Err(BodyError::Missing));
        assert_eq!(parse::<SendBody>(json!([1])), Err(BodyError::NotAnObject));
        assert_eq!(parse::<SendBody>(json!("x")), Err(BodyError::NotAnObject));
    }

    #[test]
    fn a_reply_body_keeps_the_session_id_as_text() {
        let b: ReplyBody = parse(json!({"sessionId": "not-a-uuid", "message": "x"})).unwrap();
        assert_eq!(b.session_id, Field::Given("not-a-uuid".into()));
        let b: ReplyBody = parse(json!({"sessionId": 5})).unwrap();
        assert_eq!(b.session_id, Field::WrongType);
    }

    #[test]
    fn a_status_body_distinguishes_clearing_from_leaving_the_assignee() {
        let b: StatusBody = parse(json!({"assignedGreId": null})).unwrap();
        assert_eq!(b.status, Field::Absent);
        assert_eq!(b.assigned_gre_id, Field::Null);
        let b: StatusBody = parse(json!({"status": "closed", "assignedGreId": "staff-7"})).unwrap();
        assert_eq!(b.status, Field::Given("closed".into()));
        assert_eq!(b.assigned_gre_id, Field::Given("staff-7".into()));
        let b: StatusBody = parse(json!({"status": 3})).unwrap();
        assert_eq!(b.status, Field::WrongType);
    }
}
