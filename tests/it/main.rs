//! The integration tests: one binary, one support module. Each module is one area of the
//! relay, tested from outside through real PostgreSQL clusters, real relays on 127.0.0.1:0,
//! and real WebSocket, HTTP and browser clients (see `support`).
//!
//! Run one area with a filter, e.g. `cargo nextest run -E 'test(/^browser::/)'`.

mod support;

mod analytics;
mod attachments;
mod auth;
mod bench_smoke;
mod binary;
mod browser;
mod desk;
mod direct_writes;
mod faults;
mod layout;
mod liveness;
mod migrations;
mod notifications;
mod port_limits;
mod presence;
mod rest;
mod websocket;
mod wire_json;
