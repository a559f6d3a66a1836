//! gre-relay: pushes every GRE chat row written to PostgreSQL to the WebSocket clients that
//! should see it.
//!
//! The folders name the stages a row goes through; imports point down this list, never up
//! (checked by `tests/layout.rs`):
//!
//! | layer | modules | owns |
//! |---|---|---|
//! | entry | [`cli`], [`server`] | commands; wiring, the accept loop, graceful shutdown |
//! | front ends | `http/`, `ws/` | routing, REST, pages, health, metrics, CORS; one task per socket |
//! | shared state | `state/` | `AppState` (deps, settings, plumbing, metrics), built by `server` |
//! | rules | `chat`, `attachments` | what a player or staff member may do, and the verdicts; what an upload must be and who may download it |
//! | realtime | `realtime/` | the LISTEN listener, the NOTIFY payloads, the hub, presence |
//! | storage | [`db`], `storage/` | the pool, queries by topic, migrations, the storage error; the object store of attachments |
//! | leaves | [`auth`], [`config`], [`protocol`], `rate_limit`, `admission`, `shutdown` | no imports of the above |
//!
//! Where a NOTIFY becomes a frame: `realtime/listener.rs` reads the rows a notification
//! (`realtime/notify.rs`) names, builds the frame once (`protocol.rs`), hands it to
//! `realtime/hub.rs`, which queues it for each `ws/connection.rs` task.

pub(crate) mod admission;
pub(crate) mod attachments;
pub mod auth;
pub(crate) mod chat;
pub mod cli;
pub mod config;
pub mod db;
pub mod http;
pub(crate) mod protocol;
pub(crate) mod rate_limit;
pub mod realtime;
pub mod server;
pub(crate) mod shutdown;
pub(crate) mod state;
pub(crate) mod storage;
pub(crate) mod ws;
