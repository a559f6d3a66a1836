//! The database's cost per message against a "peer schema" (issue 12): the same insert load,
//! alternately into a plain table with one per-row `pg_notify(row_to_json(new))` trigger (what a
//! naive Node.js relay uses) and into gre_chat_messages, on the same database, in one command.
//! Also the closed-loop ceiling of both and the curve of rows/s against commit latency.

use anyhow::Context;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::breakdown::{self, Parts};
use crate::clients::{Marker, Received};
use crate::db::{self, Written};
use crate::report::Dist;
use crate::sys::{self, Cluster};

/// The peer schema, in its own schema so that it never touches the relay's tables. Idempotent.
/// One identity column, the columns the writers fill, and one per-row AFTER INSERT trigger that
/// sends the whole row as JSON: nothing else (no numbering, no cursor, no push check).
pub const PEER_SCHEMA: &str = "
create schema if not exists bench_peer;
create table if not exists bench_peer.messages (
  id          bigint generated always as identity primary key,
  session_id  uuid not null,
  sender      text not null,
  sender_id   text,
  message     text not null,
  created_at  timestamptz not null default now()
);
create or replace function bench_peer.notify_message() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  perform pg_catalog.pg_notify('bench_peer', pg_catalog.row_to_json(new)::text);
  return null;
end
$$;
create or replace trigger messages_notify
  after insert on bench_peer.messages
  for each row execute function bench_peer.notify_message();
create table if not exists bench_peer.hinted (like bench_peer.messages including all);
create or replace function bench_peer.notify_hint() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  perform pg_catalog.pg_notify('bench_peer_hint', '{\"k\":\"m\",\"op\":\"i\",\"ids\":[\"' || new.id || '\"]}');
  return null;
end
$$;
create or replace trigger hinted_notify
  after insert on bench_peer.hinted
  for each row execute function bench_peer.notify_hint();
";

pub const PEER_CHANNEL: &str = "bench_peer";
const PEER_INSERT: &str =
    "insert into bench_peer.messages (session_id, sender, sender_id, message) \
                           values ($1, 'gre', 'bench', $2)";
/// The hint-only peer (`--peer-read-back`): the same table and insert, but its trigger sends
/// only the row's id (`{"k":"m","op":"i","ids":["42"]}`), and the tool's LISTEN reads the row
/// back by id, as any relay under the contract's hint-only notifications must.
pub const PEER_HINT_CHANNEL: &str = "bench_peer_hint";
const PEER_HINT_INSERT: &str =
    "insert into bench_peer.hinted (session_id, sender, sender_id, message) \
                           values ($1, 'gre', 'bench', $2)";
const PEER_READ_BACK: &str =
    "select message from bench_peer.hinted where id = any($1::bigint[]) order by id";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Peer,
    /// The peer schema with hint-only notifications and the rows read back (`--peer-read-back`).
    PeerHint,
    Gre,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Peer => "peer",
            Side::PeerHint => "peer_hint",
            Side::Gre => "gre",
        }
    }
    fn insert(self) -> &'static str {
        match self {
            Side::Peer => PEER_INSERT,
            Side::PeerHint => PEER_HINT_INSERT,
            Side::Gre => db::INSERT,
        }
    }
    fn channel(self) -> &'static str {
        match self {
            Side::Peer => PEER_CHANNEL,
            Side::PeerHint => PEER_HINT_CHANNEL,
            Side::Gre => gre_relay::realtime::notify::CHANNEL,
        }
    }
    fn read_back(self) -> Option<&'static str> {
        (self == Side::PeerHint).then_some(PEER_READ_BACK)
    }
}

/// What one side's run of writers did and cost.
#[derive(Debug, Clone)]
pub struct SideRun {
    pub side: Side,
    pub writers: u32,
    pub rate: f64,
    pub rows: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub rows_per_s: f64,
    pub max_behind_ms: f64,
    /// insert sent -> commit acknowledged.
    pub commit: Dist,
    /// insert sent -> the tool's own LISTEN on the side's channel got the notification.
    pub heard: Dist,
    /// CPU seconds of the whole cluster over the writing window.
    pub pg_cpu_s: Option<f64>,
    /// The same window's CPU by process (breakdown.rs), when the processes could be read.
    pub pg_cpu_by_process: Option<Parts>,
    /// CPU seconds of the relay (when one is measured).
    pub relay_cpu_s: Option<f64>,
    pub machine_busy_pct: Option<f64>,
    pub written: Vec<Written>,
    /// The rows' numbers are first_seq .. first_seq + written.len().
    pub first_seq: u32,
    /// How the tool's LISTEN recognised rows: "text", "session id" or "none".
    pub listen_matched_by: &'static str,
}

impl SideRun {
    pub fn pg_cpu_ms_per_row(&self) -> Option<f64> {
        self.pg_cpu_s
            .filter(|_| self.rows > 0)
            .map(|s| s * 1000.0 / self.rows as f64)
    }

    /// The breakdown per committed row, in ms, label by label.
    pub fn cpu_ms_per_row_by_process(&self) -> Option<Vec<(&'static str, f64)>> {
        let parts = self.pg_cpu_by_process.as_ref().filter(|_| self.rows > 0)?;
        Some(
            parts
                .0
                .iter()
                .map(|(k, v)| (*k, v * 1000.0 / self.rows as f64))
                .collect(),
        )
    }

    pub fn json(&self) -> Value {
        let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
        json!({
            "side": self.side.name(), "writers": self.writers, "rate": self.rate,
            "rows": self.rows, "insert_errors": self.errors,
            "rows_per_s": (self.rows_per_s * 10.0).round() / 10.0,
            "writers_max_behind_ms": (self.max_behind_ms * 10.0).round() / 10.0,
            "commit": self.commit.json(), "sent_to_listen": self.heard.json(),
            "listen_matched_by": self.listen_matched_by,
            "pg_cpu_s": self.pg_cpu_s.map(r3),
            "pg_cpu_ms_per_row": self.pg_cpu_ms_per_row().map(|x| (x * 10000.0).round() / 10000.0),
            "pg_cpu_s_by_process": self.pg_cpu_by_process.as_ref().map(|p| {
                p.0.iter().map(|(k, v)| ((*k).to_owned(), json!(r3(*v)))).collect::<serde_json::Map<_, _>>()
            }),
            "pg_cpu_ms_per_row_by_process": self.cpu_ms_per_row_by_process().map(|p| {
                p.into_iter().map(|(k, v)| (k.to_owned(), json!((v * 10000.0).round() / 10000.0))).collect::<serde_json::Map<_, _>>()
            }),
            "relay_cpu_s": self.relay_cpu_s.map(r3),
            "machine_busy_pct": self.machine_busy_pct.map(|x| x.round()),
        })
    }
}

/// Everything one side's run needs.
pub struct SidePlan<'a> {
    pub url: &'a str,
    pub side: Side,
    pub sessions: Arc<Vec<Uuid>>,
    pub writers: u32,
    pub rate: f64,
    pub duration: Duration,
    pub marker: Marker,
    pub origin: Instant,
    pub first_seq: u32,
    pub cluster: Option<Cluster>,
    pub relay_pids: Vec<u32>,
    /// The tool's admin connection: names the cluster's processes for the breakdown.
    pub admin: &'a tokio_postgres::Client,
}

/// CPU of a set of processes (None if any is unreadable).
fn cpu_of(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| sys::cpu_seconds(*p)).sum()
}

/// Runs the writers against one side, with the tool's own LISTEN on that side's channel.
pub async fn run_side(p: SidePlan<'_>) -> anyhow::Result<SideRun> {
    let listen = db::Listen::start(
        p.url,
        p.side.channel(),
        p.marker.clone(),
        &p.sessions,
        p.origin,
        p.side.read_back(),
    )?;
    let plan = db::RatePlan {
        url: p.url.to_owned(),
        sessions: p.sessions.clone(),
        writers: p.writers,
        rate: p.rate,
        duration: p.duration,
        marker: p.marker.clone(),
        origin: p.origin,
        insert: p.side.insert().to_owned(),
        first_seq: p.first_seq,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sampler = async {
        match p.cluster {
            Some(c) => breakdown::sample(c, p.admin, stop_rx).await,
            None => None,
        }
    };
    let pg0 = p.cluster.and_then(|c| c.cpu_seconds());
    let relay0 = cpu_of(&p.relay_pids);
    let m0 = sys::machine_cpu_seconds();
    let writing = async {
        let writes = tokio::task::spawn_blocking(move || db::run_writers(plan)).await;
        // The notifications of the last commits are still on their way: wait for them
        // (bounded) before reading the CPU, so that the LISTEN side's work is inside the window.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pg1 = p.cluster.and_then(|c| c.cpu_seconds());
        let _ = stop_tx.send(true);
        (writes, pg1)
    };
    let ((writes, pg1), by_process) = tokio::join!(writing, sampler);
    let writes = writes??;
    let rows = writes.written.iter().filter(|w| w.ack.is_some()).count() as u64;
    let relay1 = cpu_of(&p.relay_pids);
    let m1 = sys::machine_cpu_seconds();
    let heard = listen.finish();
    let matched_by = heard.matched_by();
    let heard = heard.resolve(&writes.written);
    let window_s = (writes.stopped.saturating_sub(writes.started)) as f64 / 1e9;
    let mut at = vec![None; writes.written.len()];
    for (seq, t) in heard {
        if let Some(i) = seq.checked_sub(p.first_seq) {
            if let Some(slot) = at.get_mut(i as usize) {
                slot.get_or_insert(t);
            }
        }
    }
    let mut commit = Vec::with_capacity(writes.written.len());
    let mut to_listen = Vec::with_capacity(writes.written.len());
    for w in &writes.written {
        if let Some(ack) = w.ack {
            commit.push(ack as i64 - w.sent as i64);
            if let Some(Some(h)) = at.get((w.seq - p.first_seq) as usize) {
                to_listen.push(*h as i64 - w.sent as i64);
            }
        }
    }
    Ok(SideRun {
        side: p.side,
        writers: p.writers,
        rate: p.rate,
        rows,
        errors: writes.errors,
        first_error: writes.first_error,
        rows_per_s: rows as f64 / window_s.max(1e-9),
        max_behind_ms: writes.max_behind_ms,
        commit: Dist::of(commit),
        heard: Dist::of(to_listen),
        pg_cpu_s: pg0.zip(pg1).map(|(a, b)| b - a),
        pg_cpu_by_process: by_process,
        relay_cpu_s: relay0.zip(relay1).map(|(a, b)| b - a),
        machine_busy_pct: match (m0, m1) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some((b1 - b0) / (t1 - t0) * 100.0),
            _ => None,
        },
        written: writes.written,
        first_seq: p.first_seq,
        listen_matched_by: matched_by,
    })
}

/// The cluster behind a connection, when it runs on this machine and /proc can be read.
pub async fn cluster(client: &tokio_postgres::Client) -> anyhow::Result<Option<Cluster>> {
    let row = client
        .query_one("select pg_backend_pid()", &[])
        .await
        .context("reading the backend's pid")?;
    let pid: i32 = row.get(0);
    Ok(u32::try_from(pid).ok().and_then(Cluster::from_backend))
}

pub async fn create_peer_schema(client: &tokio_postgres::Client) -> anyhow::Result<()> {
    client
        .batch_execute(PEER_SCHEMA)
        .await
        .context("creating the peer schema bench_peer")
}

/// Deletes this run's rows from the peer table.
pub async fn clean_peer(client: &tokio_postgres::Client, marker: &Marker) -> anyhow::Result<()> {
    for table in ["bench_peer.messages", "bench_peer.hinted"] {
        client
            .execute(
                &format!("delete from {table} where starts_with(message, $1)"),
                &[&marker.prefix()],
            )
            .await?;
    }
    Ok(())
}

/// Database-only mode: no relay holds the players' sockets, so without this the push trigger
/// would find every player offline and insert a push notification per row (not the measured
/// scenario of issue 12, where every player is connected). The tool registers itself as a relay
/// instance with a presence row per player, and keeps its heartbeat fresh while it runs.
pub struct FakePresence {
    stop: tokio::sync::watch::Sender<bool>,
    beat: tokio::task::JoinHandle<()>,
}

impl FakePresence {
    pub async fn register(url: &str, base: i64, n: u32) -> anyhow::Result<FakePresence> {
        let client = db::connect(url).await?;
        let instance = Uuid::new_v4();
        client
            .execute(
                "insert into gre_relay.relay_instances (instance_id, hostname) values ($1, 'gre-bench')",
                &[&instance],
            )
            .await
            .context("registering the tool's presence (gre_relay.relay_instances)")?;
        client
            .execute(
                "insert into gre_relay.presence (kind, subject, instance_id) \
                 select 'player', g::text, $1 from generate_series($2::bigint, $3::bigint) g",
                &[&instance, &base, &(base + i64::from(n) - 1)],
            )
            .await
            .context("registering the players' presence")?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let beat = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(4)) => {}
                    _ = stopped.changed() => break,
                }
                let _ = client
                    .execute(
                        "update gre_relay.relay_instances set heartbeat_at = now() where instance_id = $1",
                        &[&instance],
                    )
                    .await;
            }
            let _ = client
                .execute(
                    "delete from gre_relay.relay_instances where instance_id = $1",
                    &[&instance],
                )
                .await;
        });
        Ok(FakePresence { stop, beat })
    }

    pub async fn remove(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.beat).await;
    }
}

pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The figures compared, per side: name, unit, how to read it from one run.
pub type Figure = (&'static str, &'static str, fn(&SideRun) -> Option<f64>);

pub const FIGURES: &[Figure] = &[
    ("commit_p50_ms", "ms", |r| ms(&r.commit, |d| d.p50)),
    ("commit_p99_ms", "ms", |r| ms(&r.commit, |d| d.p99)),
    ("rows_per_s", "rows/s", |r| Some(r.rows_per_s)),
    ("pg_cpu_s", "s", |r| r.pg_cpu_s),
    ("pg_cpu_ms_per_row", "ms", SideRun::pg_cpu_ms_per_row),
    ("sent_to_listen_p50_ms", "ms", |r| ms(&r.heard, |d| d.p50)),
    ("sent_to_listen_p99_ms", "ms", |r| ms(&r.heard, |d| d.p99)),
];

fn ms(d: &Dist, f: fn(&Dist) -> i64) -> Option<f64> {
    (d.count > 0).then(|| f(d) as f64 / 1e6)
}

/// Medians over runs of one side, per figure.
pub fn medians(runs: &[&SideRun]) -> Vec<(&'static str, Option<f64>)> {
    FIGURES
        .iter()
        .map(|(name, _, f)| (*name, median(runs.iter().filter_map(|r| f(r)).collect())))
        .collect()
}

/// Only the receipts of rows first .. end, so one run of several can be analysed on its own.
pub fn receipts_in(clients: &[Received], first: u32, end: u32) -> Vec<Received> {
    clients
        .iter()
        .map(|c| Received {
            player: c.player,
            receipts: c
                .receipts
                .iter()
                .copied()
                .filter(|(s, _)| (first..end).contains(s))
                .collect(),
            other_frames: c.other_frames,
            connected: c.connected,
            closed_early: c.closed_early.clone(),
        })
        .collect()
}

/// Renumbers a run's rows from 0, so that report::analyse (which indexes by number) works on it.
pub fn rebased(written: &[Written], first: u32) -> Vec<Written> {
    written
        .iter()
        .map(|w| Written {
            seq: w.seq - first,
            ..*w
        })
        .collect()
}

pub fn rebased_clients(clients: Vec<Received>, first: u32) -> Vec<Received> {
    clients
        .into_iter()
        .map(|mut c| {
            for r in &mut c.receipts {
                r.0 -= first;
            }
            c
        })
        .collect()
}

pub fn fmt(x: Option<f64>, unit: &str) -> String {
    match x {
        None => "n/a".into(),
        Some(v) if unit == "rows/s" => format!("{v:.0}"),
        Some(v) if unit == "s" => format!("{v:.2}"),
        Some(v) => format!("{v:.3}"),
    }
}

pub fn ratio(gre: Option<f64>, peer: Option<f64>) -> Option<f64> {
    match (gre, peer) {
        (Some(g), Some(p)) if p > 0.0 => Some(g / p),
        _ => None,
    }
}
