//! `realtime/`: from a committed row to the sockets that should see it.
//!
//! - [`notify`]: every NOTIFY payload the relay sends or receives, typed and parsed in one place.
//! - [`listener`]: the dedicated LISTEN connection; reads the rows a notification names and
//!   turns them into frames for the hub.
//! - [`hub`]: who is subscribed to what; fans frames out over bounded queues.
//! - [`queue`]: one connection's bounded event queue (and why it closed).
//! - [`presence`]: which players and staff this process holds sockets of, mirrored to the
//!   database.
//! - [`live_waits`]: the staff's live "waiting now" / "longest wait" counters.
//!
//! Must not touch: sockets, HTTP, the chat rules, the application state (`state/`); it gets its
//! dependencies handed in by `server.rs`.

pub(crate) mod hub;
pub(crate) mod listener;
pub(crate) mod live_waits;
pub mod notify;
pub(crate) mod presence;
pub(crate) mod queue;

pub use notify::CHANNEL;
