//! Applies `sql/` then `triggers/`, in file-name order, and records each file with its checksum in
//! `gre_relay.schema_migrations`. Files are compiled into the binary, so `gre-relay migrate` needs
//! nothing beside it. Every file is idempotent on its own, so DBAs may apply the same files with
//! plain psql; a file whose checksum changed (a new version of a trigger) is applied again.
//!
//! Two relays starting at once on one database take turns: the whole run holds an advisory lock.

use sha2::{Digest, Sha256};
use std::collections::HashMap;

use crate::store::{pg_config, tls_connector, StoreError};

/// One file of sql/ or triggers/.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Path relative to the repository, e.g. `sql/0010_chat_sessions.sql`; the ledger's key.
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($path:literal) => {
        Migration {
            name: $path,
            sql: include_str!(concat!("../", $path)),
        }
    };
}

/// In the order they are applied. A test checks this list against the directories.
pub const MIGRATIONS: &[Migration] = &[
    migration!("sql/0000_migrations_ledger.sql"),
    migration!("sql/0001_supabase_compat.sql"),
    migration!("sql/0010_chat_sessions.sql"),
    migration!("sql/0020_chat_messages.sql"),
    migration!("sql/0030_online_status.sql"),
    migration!("sql/0040_push_notifications.sql"),
    migration!("sql/0050_jwt_helpers.sql"),
    migration!("sql/0060_row_level_security.sql"),
    migration!("sql/0070_wire_json.sql"),
    migration!("sql/0080_chat_access.sql"),
    migration!("sql/0090_presence.sql"),
    migration!("sql/0100_direct_writes.sql"),
    migration!("sql/0180_relay_event_key.sql"),
    migration!("triggers/05_writer_helpers.sql"),
    migration!("triggers/07_wire_json.sql"),
    migration!("triggers/10_message_before_insert.sql"),
    migration!("triggers/20_message_notify.sql"),
    migration!("triggers/30_session_before_update.sql"),
    migration!("triggers/40_session_notify.sql"),
    migration!("triggers/50_online_status_notify.sql"),
    migration!("triggers/60_message_push_notification.sql"),
    migration!("triggers/70_direct_write_policies.sql"),
];

/// Arbitrary but fixed: the advisory lock key every gre-relay process uses for migrations.
const MIGRATION_LOCK_KEY: i64 = 0x6772_655f_6d69_6772; // "gre_migr"

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Unchanged,
}

pub fn checksum(sql: &str) -> String {
    let digest = Sha256::digest(sql.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Applies what is pending. Returns each file with what happened to it.
pub async fn run(database_url: &str) -> Result<Vec<(&'static str, Outcome)>, StoreError> {
    let (mut client, connection) = pg_config(database_url)?.connect(tls_connector()).await?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "migration connection ended");
        }
    });
    let result = apply_all(&mut client).await;
    drop(client);
    let _ = driver.await;
    result
}

async fn apply_all(
    client: &mut tokio_postgres::Client,
) -> Result<Vec<(&'static str, Outcome)>, StoreError> {
    client
        .batch_execute("set client_min_messages = warning")
        .await?;
    client
        .execute("select pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let result = apply_locked(client).await;
    // Unlock even after a failure; closing the connection would release it too.
    let _ = client
        .execute("select pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    result
}

async fn apply_locked(
    client: &mut tokio_postgres::Client,
) -> Result<Vec<(&'static str, Outcome)>, StoreError> {
    // The ledger must exist before it can be read.
    client.batch_execute(MIGRATIONS[0].sql).await?;
    let applied: HashMap<String, String> = client
        .query(
            "select name, checksum from gre_relay.schema_migrations",
            &[],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let mut report = Vec::with_capacity(MIGRATIONS.len());
    for m in MIGRATIONS {
        let sum = checksum(m.sql);
        if applied.get(m.name) == Some(&sum) {
            report.push((m.name, Outcome::Unchanged));
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "insert into gre_relay.schema_migrations (name, checksum) values ($1, $2) \
             on conflict (name) do update set checksum = excluded.checksum, applied_at = now()",
            &[&m.name, &sum],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(file = m.name, "applied");
        report.push((m.name, Outcome::Applied));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_listed_in_order() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut on_disk = Vec::new();
        for dir in ["sql", "triggers"] {
            let mut names: Vec<String> = std::fs::read_dir(root.join(dir))
                .expect("read dir")
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sql"))
                .map(|n| format!("{dir}/{n}"))
                .collect();
            names.sort();
            on_disk.extend(names);
        }
        let listed: Vec<String> = MIGRATIONS.iter().map(|m| m.name.to_owned()).collect();
        assert_eq!(listed, on_disk);
    }
}
