//! The GRE desk's REST API (issue 13), staff only, under `/api/gre-admin/desk/`: canned responses,
//! desk settings (automatic assignment, capacity, auto-reply texts, opening hours), transfers and
//! internal notes. docs/protocol.md, "The GRE desk", has every endpoint with examples.
//!
//! The decisions are the database's (triggers/80_desk_*.sql); this file checks the caller and
//! the shape of the body, calls `db/desk.rs`, and answers. Live updates to the consoles follow
//! from the committed rows (the listener), never from here.
//!
//! Must not touch: the hub and the LISTEN connection.

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;
use uuid::Uuid;

use super::bodies::Field;
use super::error::{error_response, method_not_allowed, ApiCode, ApiError};
use super::response::Body;
use super::rest::{
    authenticate, limit_param, param_uuid, query_params, raw_response, read_body, require_staff,
    take_rest_budget,
};
use super::routes::{Lookup, Routes};
use crate::auth::Identity;
use crate::chat::{store_error, ChatError};
use crate::db::{CannedInput, DeskSettingsInput, StoreError, Transfer};
use crate::protocol::{self, ErrorCode};
use crate::state::AppState;

/// Notes returned at most by one list call (the newest).
const MAX_NOTES: i64 = 500;
const DEFAULT_NOTES: i64 = 200;
/// Per-GRE rows one settings call may change.
const MAX_AGENTS: usize = 200;

#[derive(Debug, Clone, Copy)]
enum Route {
    CannedList,
    CannedCreate,
    CannedUpdate,
    CannedDelete,
    SettingsGet,
    SettingsPut,
    Transfer,
    NotesList,
    NotesAdd,
}

/// Path → the routes of each method it answers.
fn routes() -> &'static Routes<Route> {
    static ROUTES: OnceLock<Routes<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        Routes::new(&[
            (
                "/api/gre-admin/desk/canned-responses",
                Method::GET,
                Route::CannedList,
            ),
            (
                "/api/gre-admin/desk/canned-responses",
                Method::POST,
                Route::CannedCreate,
            ),
            (
                "/api/gre-admin/desk/canned-responses/{id}",
                Method::PUT,
                Route::CannedUpdate,
            ),
            (
                "/api/gre-admin/desk/canned-responses/{id}",
                Method::DELETE,
                Route::CannedDelete,
            ),
            (
                "/api/gre-admin/desk/settings",
                Method::GET,
                Route::SettingsGet,
            ),
            (
                "/api/gre-admin/desk/settings",
                Method::PUT,
                Route::SettingsPut,
            ),
            (
                "/api/gre-admin/desk/sessions/{session_id}/transfer",
                Method::POST,
                Route::Transfer,
            ),
            (
                "/api/gre-admin/desk/sessions/{session_id}/notes",
                Method::GET,
                Route::NotesList,
            ),
            (
                "/api/gre-admin/desk/sessions/{session_id}/notes",
                Method::POST,
                Route::NotesAdd,
            ),
        ])
    })
}

type ApiResult = Result<Response<Body>, ApiError>;

/// Answers a request under `/api/gre-admin/desk/`.
pub(super) async fn handle(req: Request<Incoming>, app: &AppState) -> Response<Body> {
    let (route, params) = match routes().lookup(req.uri().path(), req.method()) {
        Lookup::NoPath => {
            return error_response(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such endpoint",
            )
        }
        Lookup::WrongMethod(allow) => return method_not_allowed(&allow),
        Lookup::Found(route, params) => (route, params),
    };
    dispatch(route, params, req, app)
        .await
        .unwrap_or_else(ApiError::into_response)
}

async fn dispatch(
    route: Route,
    params: HashMap<String, String>,
    req: Request<Incoming>,
    app: &AppState,
) -> ApiResult {
    let identity = authenticate(&req, app).await?;
    require_staff(&identity)?;
    let Identity::Staff {
        staff_id,
        name: staff_name,
        ..
    } = &identity
    else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "GRE staff only",
        ));
    };
    let (staff_id, staff_name) = (staff_id.clone(), staff_name.clone());
    if req.method() != Method::GET {
        take_rest_budget(app, &identity)?;
    }
    let store = &app.deps.store;
    match route {
        Route::CannedList => {
            let list = store.canned_responses().await.map_err(desk_error)?;
            Ok(raw_response(
                StatusCode::OK,
                &CannedListBody {
                    canned_responses: &list,
                },
            ))
        }
        Route::CannedCreate => {
            let body: CannedBody = read_body(req, app).await?;
            let (code, title, text) = canned_fields(body)?;
            let input = CannedInput {
                short_code: &code,
                title: title.as_deref(),
                body: &text,
            };
            let saved = store
                .create_canned_response(input, &staff_id)
                .await
                .map_err(desk_error)?;
            Ok(canned_response(StatusCode::CREATED, &saved))
        }
        Route::CannedUpdate => {
            let id = param_id(&params, "id", "a canned response id")?;
            let body: CannedBody = read_body(req, app).await?;
            let (code, title, text) = canned_fields(body)?;
            let input = CannedInput {
                short_code: &code,
                title: title.as_deref(),
                body: &text,
            };
            let saved = store
                .update_canned_response(id, input, &staff_id)
                .await
                .map_err(desk_error)?;
            Ok(canned_response(StatusCode::OK, &saved))
        }
        Route::CannedDelete => {
            let id = param_id(&params, "id", "a canned response id")?;
            let deleted = store
                .delete_canned_response(id, &staff_id)
                .await
                .map_err(desk_error)?;
            Ok(canned_response(StatusCode::OK, &deleted))
        }
        Route::SettingsGet => {
            let settings = store.desk_settings().await.map_err(desk_error)?;
            Ok(raw_response(
                StatusCode::OK,
                &SettingsResponse {
                    settings: &settings,
                },
            ))
        }
        Route::SettingsPut => {
            let body: SettingsBody = read_body(req, app).await?;
            let input = settings_fields(body)?;
            let settings = store
                .update_desk_settings(&input, &staff_id)
                .await
                .map_err(|e| {
                    if e.is_constraint_violation() {
                        ApiError::unprocessable(SETTINGS_RULES)
                    } else {
                        desk_error(e)
                    }
                })?;
            Ok(raw_response(
                StatusCode::OK,
                &SettingsResponse {
                    settings: &settings,
                },
            ))
        }
        Route::Transfer => {
            let session_id = param_uuid(&params, "session_id")?;
            let body: TransferBody = read_body(req, app).await?;
            let to = match body.to_gre_id {
                Field::Null => None,
                Field::Given(s) if !s.trim().is_empty() && s.len() <= 100 => Some(s),
                Field::Given(_) | Field::WrongType => {
                    return Err(ApiError::unprocessable(
                        "toGreId is a staff id of 1 to 100 characters, or null for the queue",
                    ))
                }
                Field::Absent => {
                    return Err(ApiError::unprocessable(
                        "toGreId is required (null hands the session back to the queue)",
                    ))
                }
            };
            let note = optional_note(body.note)?;
            let session = store
                .transfer_session(Transfer {
                    session_id,
                    to_gre_id: to.as_deref(),
                    note: note.as_deref(),
                    actor_id: &staff_id,
                    actor_name: staff_name.as_deref(),
                })
                .await
                .map_err(desk_error)?;
            Ok(raw_response(
                StatusCode::OK,
                &SessionResponse {
                    session: &session.json,
                },
            ))
        }
        Route::NotesList => {
            let session_id = param_uuid(&params, "session_id")?;
            let limit = limit_param(&query_params(&req), DEFAULT_NOTES, MAX_NOTES)?;
            let notes = store
                .internal_notes(session_id, limit)
                .await
                .map_err(desk_error)?;
            Ok(raw_response(StatusCode::OK, &NotesBody { notes: &notes }))
        }
        Route::NotesAdd => {
            let session_id = param_uuid(&params, "session_id")?;
            let body: NoteBody = read_body(req, app).await?;
            let text = match body.note {
                Field::Given(s) => protocol::validate_message_text(s)
                    .map_err(|_| ApiError::unprocessable(NOTE_RULES))?,
                _ => {
                    return Err(ApiError::unprocessable(
                        "note is required: 1 to 4000 characters",
                    ))
                }
            };
            let note = store
                .add_internal_note(session_id, &staff_id, staff_name.as_deref(), &text)
                .await
                .map_err(desk_error)?;
            Ok(raw_response(
                StatusCode::CREATED,
                &NoteResponse { note: &note },
            ))
        }
    }
}

const NOTE_RULES: &str = "a note is 1 to 4000 characters, not only white space, without NUL";
const SETTINGS_RULES: &str = "the database refused these settings: hours is a list of \
    {\"day\": 0-6 (0 = Sunday), \"opens\": \"HH:MM\", \"closes\": \"HH:MM\" or \"24:00\"}, \
    timeZone an IANA name (e.g. Europe/Vienna), capacities 0 to 100 (default 1 to 100), \
    texts at most 1000 characters";

/// The chat rules' verdict on a store failure, with the desk's conflict in its own words.
fn desk_error(e: StoreError) -> ApiError {
    match store_error(e) {
        ChatError::Duplicate => ApiError::of(
            ApiCode::Conflict,
            "another canned response has that short code",
        ),
        ChatError::Invalid => ApiError::unprocessable("the database refused these values"),
        other => other.into(),
    }
}

fn param_id(params: &HashMap<String, String>, name: &str, what: &str) -> Result<Uuid, ApiError> {
    params
        .get(name)
        .and_then(|p| p.parse::<Uuid>().ok())
        .ok_or_else(|| ApiError::bad_request(format!("{what} must be a UUID")))
}

fn optional_note(note: Field<String>) -> Result<Option<String>, ApiError> {
    match note {
        Field::Absent | Field::Null => Ok(None),
        Field::Given(s) if s.trim().is_empty() => Ok(None),
        Field::Given(s) => protocol::validate_message_text(s)
            .map(Some)
            .map_err(|_| ApiError::unprocessable(NOTE_RULES)),
        Field::WrongType => Err(ApiError::unprocessable("note must be a string")),
    }
}

/// `POST /api/gre-admin/desk/canned-responses`, `PUT .../:id`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CannedBody {
    #[serde(default)]
    short_code: Field<String>,
    #[serde(default)]
    title: Field<String>,
    #[serde(default)]
    body: Field<String>,
}

/// The short code (lower-cased, without a leading `/`), the title and the body.
fn canned_fields(b: CannedBody) -> Result<(String, Option<String>, String), ApiError> {
    let code = match b.short_code {
        Field::Given(s) => s.trim().trim_start_matches('/').to_lowercase(),
        _ => return Err(ApiError::unprocessable("shortCode is required")),
    };
    let valid_code = !code.is_empty()
        && code.len() <= 32
        && code
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
        && !code.starts_with(['_', '-']);
    if !valid_code {
        return Err(ApiError::unprocessable(
            "shortCode is 1 to 32 of a-z, 0-9, _ and -, starting with a letter or digit",
        ));
    }
    let title = match b.title {
        Field::Absent | Field::Null => None,
        Field::Given(s) if s.trim().is_empty() => None,
        Field::Given(s) if s.chars().count() <= 100 && !s.contains('\0') => Some(s),
        _ => return Err(ApiError::unprocessable("title is at most 100 characters")),
    };
    let body = match b.body {
        Field::Given(s) => protocol::validate_message_text(s).map_err(|_| {
            ApiError::unprocessable("body is 1 to 4000 characters, not only white space")
        })?,
        _ => return Err(ApiError::unprocessable("body is required")),
    };
    Ok((code, title, body))
}

/// `PUT /api/gre-admin/desk/settings`: every field optional; absent fields are left as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettingsBody {
    #[serde(default)]
    auto_assign: Field<bool>,
    #[serde(default)]
    default_capacity: Field<i32>,
    #[serde(default)]
    unavailable_text: Field<String>,
    #[serde(default)]
    after_hours_text: Field<String>,
    #[serde(default)]
    hours: Field<Value>,
    #[serde(default)]
    time_zone: Field<String>,
    #[serde(default)]
    agents: Field<Vec<AgentBody>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentBody {
    gre_id: String,
    /// Null: the desk's default capacity.
    #[serde(default)]
    capacity: Option<i32>,
    #[serde(default)]
    display_name: Option<String>,
}

fn settings_fields(b: SettingsBody) -> Result<DeskSettingsInput, ApiError> {
    let wrong = |what: &str| ApiError::unprocessable(format!("{what}; {SETTINGS_RULES}"));
    let text = |f: Field<String>, name: &str| -> Result<Option<Option<String>>, ApiError> {
        match f {
            Field::Absent => Ok(None),
            Field::Null => Ok(Some(None)),
            Field::Given(s) if s.trim().is_empty() => Ok(Some(None)),
            Field::Given(s) if s.chars().count() <= 1000 && !s.contains('\0') => Ok(Some(Some(s))),
            _ => Err(wrong(&format!(
                "{name} is a text of at most 1000 characters, or null"
            ))),
        }
    };
    let mut input = DeskSettingsInput {
        auto_assign: match b.auto_assign {
            Field::Absent => None,
            Field::Given(v) => Some(v),
            _ => return Err(wrong("autoAssign is true or false")),
        },
        default_capacity: match b.default_capacity {
            Field::Absent => None,
            Field::Given(v) if (1..=100).contains(&v) => Some(v),
            _ => return Err(wrong("defaultCapacity is 1 to 100")),
        },
        unavailable_text: text(b.unavailable_text, "unavailableText")?,
        after_hours_text: text(b.after_hours_text, "afterHoursText")?,
        hours: match b.hours {
            Field::Absent => None,
            Field::Given(v @ Value::Array(_)) => Some(v.to_string()),
            _ => return Err(wrong("hours is a list")),
        },
        time_zone: match b.time_zone {
            Field::Absent => None,
            Field::Given(s) if !s.is_empty() && s.len() <= 64 => Some(s),
            _ => return Err(wrong("timeZone is an IANA time zone name")),
        },
        agents: Vec::new(),
    };
    match b.agents {
        Field::Absent => {}
        Field::Given(list) if list.len() <= MAX_AGENTS => {
            for a in list {
                let ok_id = !a.gre_id.trim().is_empty() && a.gre_id.chars().count() <= 100;
                let ok_cap = a.capacity.is_none_or(|c| (0..=100).contains(&c));
                let ok_name = a
                    .display_name
                    .as_ref()
                    .is_none_or(|n| n.chars().count() <= 100 && !n.contains('\0'));
                if !(ok_id && ok_cap && ok_name) {
                    return Err(wrong(
                        "agents is a list of {greId, capacity (0 to 100, or null), displayName}",
                    ));
                }
                input.agents.push((a.gre_id, a.capacity, a.display_name));
            }
        }
        _ => return Err(wrong("agents is a list of at most 200")),
    }
    Ok(input)
}

/// `POST /api/gre-admin/desk/sessions/:sessionId/transfer`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransferBody {
    /// A staff id, or null: back to the queue.
    #[serde(default)]
    to_gre_id: Field<String>,
    #[serde(default)]
    note: Field<String>,
}

/// `POST /api/gre-admin/desk/sessions/:sessionId/notes`.
#[derive(Debug, Default, Deserialize)]
struct NoteBody {
    #[serde(default)]
    note: Field<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CannedListBody<'a> {
    canned_responses: &'a [Box<RawValue>],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CannedResponseBody<'a> {
    canned_response: &'a RawValue,
}

fn canned_response(status: StatusCode, json: &RawValue) -> Response<Body> {
    raw_response(
        status,
        &CannedResponseBody {
            canned_response: json,
        },
    )
}

#[derive(Serialize)]
struct SettingsResponse<'a> {
    settings: &'a RawValue,
}

#[derive(Serialize)]
struct SessionResponse<'a> {
    session: &'a RawValue,
}

#[derive(Serialize)]
struct NotesBody<'a> {
    notes: &'a [Box<RawValue>],
}

#[derive(Serialize)]
struct NoteResponse<'a> {
    note: &'a RawValue,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canned(v: Value) -> Result<(String, Option<String>, String), ApiError> {
        canned_fields(serde_json::from_value(v).expect("a body"))
    }

    #[test]
    fn canned_fields_normalize_the_code_and_refuse_bad_ones() {
        let (code, title, body) =
            canned(serde_json::json!({"shortCode": "/Table", "body": "Your table is ready"}))
                .expect("valid");
        assert_eq!(
            (code.as_str(), title, body.as_str()),
            ("table", None, "Your table is ready")
        );
        for bad in ["", "/", "a b", "-x", "ü", &"x".repeat(33)] {
            assert!(
                canned(serde_json::json!({"shortCode": bad, "body": "b"})).is_err(),
                "{bad:?}"
            );
        }
        assert!(canned(serde_json::json!({"shortCode": "ok", "body": "   "})).is_err());
        assert!(canned(serde_json::json!({"shortCode": "ok"})).is_err());
    }

    #[test]
    fn settings_fields_take_what_is_given_and_leave_the_rest() {
        let b: SettingsBody = serde_json::from_value(serde_json::json!({
            "autoAssign": false,
            "unavailableText": null,
            "hours": [{"day": 5, "opens": "18:00", "closes": "24:00"}],
            "agents": [{"greId": "staff-7", "capacity": 3}]
        }))
        .expect("a body");
        let input = settings_fields(b).expect("valid");
        assert_eq!(input.auto_assign, Some(false));
        assert_eq!(input.default_capacity, None);
        assert_eq!(input.unavailable_text, Some(None));
        assert_eq!(input.after_hours_text, None);
        assert!(input.hours.as_deref().is_some_and(|h| h.contains("24:00")));
        assert_eq!(input.agents, vec![("staff-7".to_owned(), Some(3), None)]);

        for bad in [
            serde_json::json!({"defaultCapacity": 0}),
            serde_json::json!({"hours": "always"}),
            serde_json::json!({"agents": [{"greId": "", "capacity": 1}]}),
            serde_json::json!({"agents": [{"greId": "a", "capacity": 101}]}),
            serde_json::json!({"autoAssign": "yes"}),
        ] {
            let b: SettingsBody = serde_json::from_value(bad.clone()).expect("a body");
            assert!(settings_fields(b).is_err(), "{bad}");
        }
    }
}
