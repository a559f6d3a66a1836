//! `db/`: everything the relay does on its connection pool. One file per topic:
//! [`sessions`], [`messages`], [`attachments`], [`presence`], [`chat_access`], [`relay`], [`desk`],
//! [`analytics`]; the pool, connection and TLS set-up ([`conn`]); the storage error ([`error`]);
//! the migration runner ([`migrate`]); the listener's read-back JSON built from plain columns
//! ([`wire_json`]).
//!
//! SQL is always parameterized. Messages and sessions come back already in wire JSON
//! (`gre_relay.message_json()` / `session_json()`), the same shape the NOTIFY trigger sends, so a
//! backfilled message and a live one are identical. The one exception is the listener's
//! read-back of hinted messages ([`wire_json`]), which builds byte for byte the same JSON in the
//! relay to spare the shared database that work per delivered row.
//!
//! Must not touch: anything above it (`realtime/`, `chat`, `ws/`, `http/`, `state`). Not here:
//! the LISTEN connection (`realtime/listener.rs` owns a dedicated, unpooled one).

mod analytics;
mod attachments;
mod chat_access;
mod conn;
mod desk;
mod error;
mod messages;
pub mod migrate;
mod presence;
mod relay;
mod sessions;
pub mod wire_json;

pub(crate) use analytics::{AnalyticsRow, LiveWaits};
pub(crate) use attachments::{owner_key, NewUpload};
pub(crate) use chat_access::SharedRules;
pub use conn::{pg_config, tls_connector};
pub(crate) use desk::{CannedInput, DeskSettingsInput, Transfer};
pub use error::{Refusal, StoreError};
pub(crate) use messages::{Author, PlayerSend};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde_json::value::RawValue;
use std::time::Duration;
use uuid::Uuid;

/// A message as stored: its session, its number, and its wire JSON.
#[derive(Debug, Clone)]
pub(crate) struct StoredMessage {
    pub(crate) session_id: Uuid,
    pub(crate) seq: i64,
    pub(crate) json: Box<RawValue>,
}

/// What the relay needs to know about a session to route and authorize.
#[derive(Debug, Clone)]
pub(crate) struct SessionInfo {
    pub(crate) id: Uuid,
    pub(crate) player_id: i64,
    pub(crate) status: String,
    /// The number of its last committed message: a subscriber starting "now" starts here.
    pub(crate) last_seq: i64,
    pub(crate) json: Box<RawValue>,
}

impl SessionInfo {
    pub(crate) fn is_closed(&self) -> bool {
        self.status == "closed"
    }
}

fn raw(text: String) -> Result<Box<RawValue>, StoreError> {
    RawValue::from_string(text).map_err(|e| StoreError::Decode(e.to_string()))
}

const MESSAGE_COLUMNS: &str = "m.session_id, m.seq, gre_relay.message_json(m)::text";

const SESSION_COLUMNS: &str =
    "s.id, s.player_id, s.status, s.last_seq, gre_relay.session_json(s)::text";

fn message_from_row(row: &tokio_postgres::Row) -> Result<StoredMessage, StoreError> {
    Ok(StoredMessage {
        session_id: row.try_get(0)?,
        seq: row.try_get(1)?,
        json: raw(row.try_get(2)?)?,
    })
}

fn session_from_row(row: &tokio_postgres::Row) -> Result<SessionInfo, StoreError> {
    Ok(SessionInfo {
        id: row.try_get(0)?,
        player_id: row.try_get(1)?,
        status: row.try_get(2)?,
        last_seq: row.try_get(3)?,
        json: raw(row.try_get(4)?)?,
    })
}

#[derive(Clone)]
pub(crate) struct Store {
    pool: Pool,
}

impl Store {
    pub(crate) fn connect(
        url: &str,
        size: usize,
        wait_timeout: Duration,
    ) -> Result<Store, StoreError> {
        let manager = Manager::from_config(
            pg_config(url)?,
            tls_connector(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size)
            .wait_timeout(Some(wait_timeout))
            .create_timeout(Some(wait_timeout))
            .recycle_timeout(Some(wait_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(Store { pool })
    }

    /// Runs a statement expected to return at most one row (cached per connection) and maps it.
    async fn query_one_opt<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        map: fn(&tokio_postgres::Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        client
            .query_opt(&stmt, params)
            .await?
            .as_ref()
            .map(map)
            .transpose()
    }

    /// `select 1`: is the database reachable right now?
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.simple_query("select 1").await?;
        Ok(())
    }
}
