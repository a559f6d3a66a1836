//! What relays exchange through the database: `pg_notify` on the relay's channel, and the key
//! that signs relayed events.

use super::{Store, StoreError};

impl Store {
    /// Sends a NOTIFY on the relay's channel: events that are relayed but never stored (typing,
    /// messages_read), so every relay process on this database delivers them.
    pub(crate) async fn notify(&self, payload: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("select pg_notify('gre_relay', $1)")
            .await?;
        client.execute(&stmt, &[&payload]).await?;
        Ok(())
    }

    /// The key relays sign relayed events with (sql/0180_relay_event_key.sql), as stored: the
    /// caller (`realtime::notify::RelayKey`) checks it.
    pub(crate) async fn relay_event_key(&self) -> Result<Vec<u8>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "select key from gre_relay.relay_event_key where singleton",
                &[],
            )
            .await?
            .ok_or_else(|| {
                StoreError::Decode("gre_relay.relay_event_key is empty: apply sql/0180".into())
            })?;
        Ok(row.try_get(0)?)
    }
}
