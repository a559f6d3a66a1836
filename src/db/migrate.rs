//! Applies `sql/` then `triggers/`, in file-name order, and records each file with its checksum in
//! `gre_relay.schema_migrations`. Files are compiled into the binary, so `gre-relay migrate` needs
//! nothing beside it. Two kinds of file, as Flyway and the Supabase CLI have them:
//! - `sql/` holds **versioned** migrations (tables, indexes, data). Each runs once; a released file
//!   is never edited. If the ledger holds a file with another checksum than the binary's, the run
//!   stops before applying anything and says which file and what to do: re-applying an edited
//!   table file against production data is what this rule exists to prevent.
//! - `triggers/` is **repeatable** (functions, triggers, policies, views): a file is applied again
//!   whenever its checksum changes.
//!
//! Databases migrated before this rule (when every edited file was re-applied) upgrade as they
//! would have then: a versioned file whose recorded checksum is one of its earlier released
//! versions ([`EARLIER_RELEASES`]) is applied once more, since every file is idempotent.
//!
//! Two relays starting at once on one database take turns: the whole run holds an advisory lock.

use sha2::{Digest, Sha256};
use std::collections::HashMap;

use crate::db::{pg_config, tls_connector, StoreError};

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
            sql: include_str!(concat!("../../", $path)),
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
    migration!("sql/0190_versioned_and_repeatable.sql"),
    migration!("sql/0201_unread_index.sql"),
    migration!("sql/0210_desk.sql"),
    migration!("sql/0220_message_attachments.sql"),
    migration!("sql/0230_analytics_facts.sql"),
    migration!("sql/0231_analytics_rollups.sql"),
    migration!("sql/0240_row_checks.sql"),
    migration!("triggers/05_writer_helpers.sql"),
    migration!("triggers/07_wire_json.sql"),
    migration!("triggers/10_message_before_insert.sql"),
    migration!("triggers/20_message_notify.sql"),
    migration!("triggers/30_session_before_update.sql"),
    migration!("triggers/40_session_notify.sql"),
    migration!("triggers/50_online_status_notify.sql"),
    migration!("triggers/60_message_push_notification.sql"),
    migration!("triggers/70_direct_write_policies.sql"),
    migration!("triggers/80_desk_assignment.sql"),
    migration!("triggers/80_desk_auto_reply.sql"),
    migration!("triggers/80_desk_tables.sql"),
    migration!("triggers/80_desk_transfer.sql"),
    migration!("triggers/85_message_attachment_rules.sql"),
    migration!("triggers/90_analytics.sql"),
];

/// Checksums that released versions of a versioned file had before versioned files were frozen
/// (from `git log -p -- sql/` up to commit 5141c69, when every edited file was still re-applied).
/// A database whose ledger holds one of these was migrated by an earlier release: the current
/// file is applied over it once, as that release's runner would have done. Never add to this list:
/// a file released from now on is not edited.
pub const EARLIER_RELEASES: &[(&str, &str)] = &[
    (
        "sql/0001_supabase_compat.sql",
        "26a828b3492f1c6f7afe1c2a6efd0f6d26feaf2604b470a1d69db3c19c4b485e",
    ),
    (
        "sql/0010_chat_sessions.sql",
        "05a50c476973c228ee842335f517e37f78a0f0ebab341d528cba3a44baa71d1a",
    ),
    (
        "sql/0020_chat_messages.sql",
        "0381858e1fcd3c0896a45ddf959cb2b4bdf63dc1875f680a75969c3ff35b127d",
    ),
    (
        "sql/0020_chat_messages.sql",
        "ff4267fb70b5f772fe8762201c940a4bf51675ddaf8356eaba312df3dbefa458",
    ),
    (
        "sql/0060_row_level_security.sql",
        "1fd6ebbd4e6c270bb0d13f99af98729285c1f681b49304a572fa1a8c6662ca93",
    ),
    (
        "sql/0060_row_level_security.sql",
        "bad6ee6627938779e88f09176dbcba59852b261d0dafea959dc85eb44a28071f",
    ),
    (
        "sql/0090_presence.sql",
        "13ac48fbb18d6b5f96bae1868e4a555497d1c77e7fc3260d5ab293ab39c29448",
    ),
];

/// Arbitrary but fixed: the advisory lock key every gre-relay process uses for migrations.
const MIGRATION_LOCK_KEY: i64 = 0x6772_655f_6d69_6772; // "gre_migr"

/// How a file is treated when its checksum differs from the ledger's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `sql/`: runs once; a changed checksum is an error.
    Versioned,
    /// `triggers/`: runs again whenever its checksum changes.
    Repeatable,
}

impl Migration {
    pub fn kind(&self) -> Kind {
        if self.name.starts_with("sql/") {
            Kind::Versioned
        } else {
            Kind::Repeatable
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Unchanged,
}

/// Why a run stopped. The database cases carry the file, so a DBA knows where to look.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A released versioned file differs from what the database recorded. Nothing was applied.
    #[error(
        "{name} was changed after this database applied it (ledger checksum {recorded}, file {current}). \
         Files in sql/ are versioned migrations and never edited once released: restore the file as released \
         and put the change in a new numbered file (e.g. sql/NNNN_what_changes.sql, listed in src/migrate.rs); \
         functions, triggers, policies and views belong in triggers/, which is re-applied when it changes. \
         Nothing was applied. If the edit is deliberate and this database already matches the file, record \
         that on purpose with: update gre_relay.schema_migrations set checksum = '{current}' where name = '{name}';"
    )]
    EditedVersioned {
        name: &'static str,
        recorded: String,
        current: String,
    },
    /// A file's SQL failed; its transaction was rolled back and later files were not applied.
    #[error("{name} failed: {source}")]
    File {
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        MigrateError::Store(StoreError::Db(e))
    }
}

pub fn checksum(sql: &str) -> String {
    let digest = Sha256::digest(sql.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What to do with one file, given the checksum the ledger holds for it (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    Skip,
    Apply,
    /// A versioned file whose recorded checksum is neither the file's nor an earlier release's.
    Refuse {
        recorded: String,
    },
}

fn plan(m: &Migration, current: &str, recorded: Option<&str>) -> Plan {
    match recorded {
        None => Plan::Apply,
        Some(r) if r == current => Plan::Skip,
        Some(_) if m.kind() == Kind::Repeatable => Plan::Apply,
        Some(r)
            if EARLIER_RELEASES
                .iter()
                .any(|(name, sum)| *name == m.name && *sum == r) =>
        {
            Plan::Apply
        }
        Some(r) => Plan::Refuse {
            recorded: r.to_owned(),
        },
    }
}

/// Applies what is pending of [`MIGRATIONS`]. Returns each file with what happened to it.
pub async fn run(database_url: &str) -> Result<Vec<(&'static str, Outcome)>, MigrateError> {
    run_files(database_url, MIGRATIONS).await
}

/// Applies what is pending of `files` (in the order given) under the same rules as [`run`]. Tests
/// use it to present an edited file, which the compiled-in list cannot show.
pub async fn run_files(
    database_url: &str,
    files: &[Migration],
) -> Result<Vec<(&'static str, Outcome)>, MigrateError> {
    let (mut client, connection) = pg_config(database_url)?
        .connect(tls_connector())
        .await
        .map_err(StoreError::from)?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "migration connection ended");
        }
    });
    let result = apply_all(&mut client, files).await;
    drop(client);
    let _ = driver.await;
    result
}

async fn apply_all(
    client: &mut tokio_postgres::Client,
    files: &[Migration],
) -> Result<Vec<(&'static str, Outcome)>, MigrateError> {
    client
        .batch_execute("set client_min_messages = warning")
        .await?;
    client
        .execute("select pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let result = apply_locked(client, files).await;
    // Unlock even after a failure; closing the connection would release it too.
    let _ = client
        .execute("select pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    result
}

async fn apply_locked(
    client: &mut tokio_postgres::Client,
    files: &[Migration],
) -> Result<Vec<(&'static str, Outcome)>, MigrateError> {
    // A new database has no ledger yet: then every file is pending, the ledger's own file first.
    let has_ledger: bool = client
        .query_one(
            "select to_regclass('gre_relay.schema_migrations') is not null",
            &[],
        )
        .await?
        .try_get(0)?;
    let applied: HashMap<String, String> = if has_ledger {
        client
            .query(
                "select name, checksum from gre_relay.schema_migrations",
                &[],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()?
    } else {
        HashMap::new()
    };
    // Decide for every file before applying any: an edited released file stops the whole run,
    // so the database is never left half way between two versions of the schema.
    let mut plans = Vec::with_capacity(files.len());
    for m in files {
        let sum = checksum(m.sql);
        match plan(m, &sum, applied.get(m.name).map(String::as_str)) {
            Plan::Refuse { recorded } => {
                return Err(MigrateError::EditedVersioned {
                    name: m.name,
                    recorded,
                    current: sum,
                })
            }
            p => plans.push((m, sum, p)),
        }
    }
    let mut report = Vec::with_capacity(files.len());
    for (m, sum, p) in plans {
        if p == Plan::Skip {
            report.push((m.name, Outcome::Unchanged));
            continue;
        }
        let file_error = |source| MigrateError::File {
            name: m.name,
            source,
        };
        let tx = client.transaction().await?;
        tx.batch_execute(m.sql).await.map_err(file_error)?;
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
    fn versioned_and_repeatable_files_are_planned_apart() {
        let table = MIGRATIONS
            .iter()
            .find(|m| m.name == "sql/0010_chat_sessions.sql")
            .expect("0010");
        let trigger = MIGRATIONS
            .iter()
            .find(|m| m.kind() == Kind::Repeatable)
            .expect("a trigger file");
        assert_eq!(plan(table, "a", None), Plan::Apply);
        assert_eq!(plan(table, "a", Some("a")), Plan::Skip);
        assert_eq!(
            plan(table, "a", Some("b")),
            Plan::Refuse {
                recorded: "b".into()
            }
        );
        assert_eq!(plan(table, "a", Some(EARLIER_RELEASES[1].1)), Plan::Apply);
        // An earlier release of another file does not excuse this one.
        assert_eq!(
            plan(table, "a", Some(EARLIER_RELEASES[0].1)),
            Plan::Refuse {
                recorded: EARLIER_RELEASES[0].1.into()
            }
        );
        assert_eq!(plan(trigger, "a", Some("b")), Plan::Apply);
        assert_eq!(plan(trigger, "a", Some("a")), Plan::Skip);
    }

    #[test]
    fn earlier_releases_name_listed_versioned_files_and_not_their_current_text() {
        for (name, sum) in EARLIER_RELEASES {
            let m = MIGRATIONS.iter().find(|m| m.name == *name).expect("listed");
            assert_eq!(m.kind(), Kind::Versioned, "{name}");
            assert_ne!(checksum(m.sql), *sum, "{name}");
        }
    }

    #[test]
    fn the_refusal_says_which_file_and_what_to_do() {
        let text = MigrateError::EditedVersioned {
            name: "sql/0010_chat_sessions.sql",
            recorded: "old".into(),
            current: "new".into(),
        }
        .to_string();
        for part in [
            "sql/0010_chat_sessions.sql",
            "new numbered file",
            "Nothing was applied",
            "update gre_relay.schema_migrations set checksum = 'new' where name = 'sql/0010_chat_sessions.sql';",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
    }

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
