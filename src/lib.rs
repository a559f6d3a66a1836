//! gre-relay: pushes every GRE chat row written to PostgreSQL to the WebSocket clients that
//! should see it.
//!
//! Where things live (a NOTIFY becomes a frame by going listener → hub → ws_connection):
//! - [`config`]: settings from `config/default.toml`, a file and the environment.
//! - [`auth`]: credentials (signing keys via JWKS, the legacy JWT secret, API keys) and the
//!   caller's identity.
//! - [`migrate`]: applies `sql/` and `triggers/` and keeps the ledger.
//! - [`embedded_postgres`]: the private PostgreSQL cluster used when no database is configured.
//! - [`store`]: every query the relay runs on the pool.
//! - [`notification`]: the NOTIFY payloads (hints and signed relayed events), parsed in one place.
//! - [`listener`]: the dedicated LISTEN connection; reads the rows a notification names and turns
//!   them into hub events.
//! - [`hub`]: who is subscribed to what; fans events out over bounded queues.
//! - [`protocol`]: the JSON frames of the WebSocket protocol.
//! - [`ws_connection`]: one task per WebSocket client.
//! - [`http`]: the HTTP front door: upgrade to WebSocket, REST routes, health.
//! - [`cors`]: allowed browser origins (CORS headers, WebSocket upgrade check).
//! - [`admission`]: connection budgets (plain HTTP, unauthenticated sockets, per identity).
//! - [`server`]: wires it all together; what `gre-relay serve` and the tests start.

pub mod admission;
pub mod auth;
pub mod chat;
pub mod cli;
pub mod config;
pub mod cors;
pub mod embedded_postgres;
pub mod http;
pub mod hub;
pub mod listener;
pub mod metrics;
pub mod migrate;
pub mod notification;
pub mod pages;
pub mod presence;
pub mod protocol;
pub mod rate_limit;
pub mod rest;
pub mod server;
pub mod store;
pub mod ws_connection;
