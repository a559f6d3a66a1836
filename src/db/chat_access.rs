//! Who may chat: the shared rules this relay stores for the database to enforce, and the staff's
//! enable switches.

use super::{Store, StoreError};

/// What the relay's configuration tells the database to enforce for every writer, stored in
/// gre_relay.settings at start so that every relay and every direct writer see one truth.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SharedRules {
    /// `chat.enabled_by_default`: the chat gate of CONTRACT section 5.
    pub(crate) chat_enabled_by_default: bool,
    /// `websocket.frames_per_second`: a player's direct writes are paced like its frames.
    pub(crate) player_messages_per_second: f64,
    /// `websocket.frames_burst`.
    pub(crate) player_messages_burst: f64,
}

impl Store {
    /// Stores the rules every writer must follow (gre_relay.settings). Writes only when they
    /// changed, so relays restarting with the same configuration leave the row alone.
    pub(crate) async fn store_shared_rules(
        &self,
        rules: &SharedRules,
        by: &str,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "insert into gre_relay.settings as s \
                   (singleton, chat_enabled_by_default, player_messages_per_second, player_messages_burst, updated_at, updated_by) \
                 values (true, $1, $2, $3, now(), $4) \
                 on conflict (singleton) do update \
                    set chat_enabled_by_default = excluded.chat_enabled_by_default, \
                        player_messages_per_second = excluded.player_messages_per_second, \
                        player_messages_burst = excluded.player_messages_burst, \
                        updated_at = excluded.updated_at, updated_by = excluded.updated_by \
                  where (s.chat_enabled_by_default, s.player_messages_per_second, s.player_messages_burst) \
                        is distinct from \
                        (excluded.chat_enabled_by_default, excluded.player_messages_per_second, excluded.player_messages_burst)",
                &[
                    &rules.chat_enabled_by_default,
                    &rules.player_messages_per_second,
                    &rules.player_messages_burst,
                    &by,
                ],
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn enable_all_players(&self, by: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "update gre_relay.chat_access set all_players_enabled = true, updated_at = now(), updated_by = $1",
                &[&by],
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn enable_player(&self, player_id: i64, by: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "insert into gre_relay.chat_enabled_players (player_id, enabled_by) values ($1, $2) \
                 on conflict (player_id) do nothing",
                &[&player_id, &by],
            )
            .await?;
        Ok(())
    }
}
