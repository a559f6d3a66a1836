//! Where the cluster's CPU goes during one side's run of `compare` (issue 12, part 4): the CPU of
//! every PostgreSQL process over the run's window, labelled by who it serves.
//!
//! The cluster's total (sys.rs `Cluster`) sums the postmaster's children; this reads them one by
//! one every [`EVERY`] and names each pid from `pg_stat_activity` (its `backend_type` and
//! `application_name`): the tool's writers (`gre-bench writer`), its LISTEN (`gre-bench listen`)
//! and read-back (`gre-bench read-back`), the relay's pool (`gre-relay`) and LISTEN connection
//! (`gre-relay listener`), and the cluster's own processes (WAL writer, autovacuum,
//! checkpointer, background writer). A backend that ends during the window (the writers
//! disconnect at its end) is counted with its last reading, so at most one interval of its CPU
//! is missed; that, and what could not be named, is `unattributed` (the exact total minus the
//! labelled parts). The labelling query runs on the tool's admin connection (`tool_other`).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::sys::Cluster;

/// How often the processes are read.
const EVERY: Duration = Duration::from_millis(100);
/// At most one labelling query per this interval (new pids wait until then).
const RELABEL_EVERY: Duration = Duration::from_millis(250);

/// The labels, in the order reports list them.
pub const LABELS: &[&str] = &[
    "writers",
    "relay_pool",
    "relay_listen",
    "tool_listen",
    "tool_read_back",
    "tool_other",
    "walwriter",
    "autovacuum",
    "checkpointer",
    "bgwriter",
    "postmaster",
    "other_clients",
    "other",
    "unattributed",
];

/// Who a PostgreSQL process serves, from its `pg_stat_activity` row.
pub fn label(backend_type: &str, application_name: &str) -> &'static str {
    match application_name {
        "gre-bench writer" => "writers",
        "gre-bench listen" => "tool_listen",
        "gre-bench read-back" => "tool_read_back",
        "gre-relay listener" => "relay_listen",
        "gre-relay" => "relay_pool",
        a if a.starts_with("gre-bench") => "tool_other",
        _ => match backend_type {
            "walwriter" => "walwriter",
            "autovacuum worker" | "autovacuum launcher" => "autovacuum",
            "checkpointer" => "checkpointer",
            "background writer" => "bgwriter",
            "client backend" => "other_clients",
            _ => "other",
        },
    }
}

/// CPU seconds per label over a window.
#[derive(Debug, Clone, Default)]
pub struct Parts(pub BTreeMap<&'static str, f64>);

/// Reads the cluster's processes until `stop` turns true, and returns each label's CPU over the
/// window (from the first reading, taken at once, to the last, taken after `stop`).
pub async fn sample(
    cluster: Cluster,
    client: &tokio_postgres::Client,
    mut stop: watch::Receiver<bool>,
) -> Option<Parts> {
    let first = cluster.processes()?;
    // CPU at the window's start; a pid born later starts from 0 (all its CPU is in the window).
    let mut start: HashMap<u32, f64> = first.children.iter().copied().collect();
    let mut last: HashMap<u32, f64> = start.clone();
    let mut labels: HashMap<u32, &'static str> = HashMap::new();
    relabel(client, &mut labels).await;
    let mut relabelled = Instant::now();
    let mut latest = first.clone();
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(EVERY) => false,
            r = stop.changed() => r.is_err() || *stop.borrow(),
        } || *stop.borrow();
        if let Some(now) = cluster.processes() {
            for (pid, cpu) in &now.children {
                start.entry(*pid).or_insert(0.0);
                last.insert(*pid, *cpu);
            }
            let unknown = now.children.iter().any(|(p, _)| !labels.contains_key(p));
            if unknown && (stopping || relabelled.elapsed() >= RELABEL_EVERY) {
                relabel(client, &mut labels).await;
                relabelled = Instant::now();
            }
            latest = now;
        }
        if stopping {
            break;
        }
    }
    let total = latest.total() - first.total();
    let mut parts = BTreeMap::new();
    for (pid, end) in &last {
        let used = (end - start.get(pid).copied().unwrap_or(0.0)).max(0.0);
        let name = labels.get(pid).copied().unwrap_or_else(|| {
            // Not in pg_stat_activity (or gone before it was read): the process title may say.
            crate::sys::process_title(*pid)
                .map(|t| title_label(&t))
                .unwrap_or("other")
        });
        *parts.entry(name).or_insert(0.0) += used;
    }
    *parts.entry("postmaster").or_insert(0.0) += latest.postmaster_own - first.postmaster_own;
    let named: f64 = parts.values().sum();
    parts.insert("unattributed", total - named);
    Some(Parts(parts))
}

fn title_label(title: &str) -> &'static str {
    for (needle, name) in [
        ("walwriter", "walwriter"),
        ("autovacuum", "autovacuum"),
        ("checkpointer", "checkpointer"),
        ("background writer", "bgwriter"),
    ] {
        if title.contains(needle) {
            return name;
        }
    }
    "other"
}

async fn relabel(client: &tokio_postgres::Client, labels: &mut HashMap<u32, &'static str>) {
    let Ok(rows) = client
        .query(
            "select pid, coalesce(backend_type, ''), coalesce(application_name, '') \
             from pg_catalog.pg_stat_activity",
            &[],
        )
        .await
    else {
        return;
    };
    for r in rows {
        let (Ok(pid), Ok(kind), Ok(app)) = (
            r.try_get::<_, i32>(0),
            r.try_get::<_, String>(1),
            r.try_get::<_, String>(2),
        ) else {
            continue;
        };
        if let Ok(pid) = u32::try_from(pid) {
            labels.insert(pid, label(&kind, &app));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_are_labelled_by_who_they_serve() {
        assert_eq!(label("client backend", "gre-bench writer"), "writers");
        assert_eq!(label("client backend", "gre-relay"), "relay_pool");
        assert_eq!(
            label("client backend", "gre-relay listener"),
            "relay_listen"
        );
        assert_eq!(label("client backend", "gre-bench"), "tool_other");
        assert_eq!(label("walwriter", ""), "walwriter");
        assert_eq!(label("autovacuum worker", ""), "autovacuum");
        assert_eq!(label("client backend", "psql"), "other_clients");
        assert_eq!(
            title_label("postgres: logical replication launcher"),
            "other"
        );
        assert_eq!(title_label("postgres: walwriter "), "walwriter");
    }
}
