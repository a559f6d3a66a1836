//! `ws/`: one task per WebSocket client ([`connection`]): authentication, the `select!` loop over
//! socket, hub queue, heartbeat and shutdown, and one handler per client frame type.
//!
//! Must not touch: other connections (only the hub fans out), the LISTEN connection, HTTP
//! routing (`http/` hands over the upgraded socket).

pub(crate) mod connection;
