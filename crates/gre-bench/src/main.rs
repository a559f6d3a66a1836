//! gre-bench: load tool for gre-relay (docs/performance.md).
//!
//! - `load`: N player sockets (one session each) and K staff sockets; W writers insert rows
//!   straight into gre_chat_messages (the staff-portal path) at a set rate; reports delivered,
//!   lost and duplicated messages, commit-to-receive latency, and the relay's CPU and memory.
//! - `announce`: one statement inserting a row into each of N sessions; how long until all are
//!   delivered.
//! - `idle`: N idle authenticated sockets; the relay's resident memory per connection.
//! - `compare`: the database's cost per message, gre_chat_messages against a plain table with
//!   one per-row NOTIFY trigger (the "peer schema" of issue 12), alternating runs, medians and
//!   ratios; database only, or end to end with --ws.
//! - `ceiling`: closed-loop rows/s of both schemas, and the rows/s-commit latency curve.
//! - `scale`: N relay processes on one database, the clients split among them.
//!
//! Human output on stdout, then one JSON line (always the last line). The exit code is 0 only
//! when every message arrived exactly once at every client that should have had it and every
//! client connected.

mod breakdown;
mod clients;
mod compare;
mod db;
mod modes;
mod report;
mod scale;
mod sys;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

use clients::{Fleet, FleetOptions, Marker, Received, Target, Who};
use sys::{Sample, Usage};

#[derive(Debug, Parser)]
#[command(
    name = "gre-bench",
    version,
    about = "Load tool for gre-relay: delivery, latency, CPU and memory (docs/performance.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Players, staff and writers at a set rate: delivery, latency, relay CPU.
    Load(LoadArgs),
    /// One statement inserting a row into each of N sessions, delivered to all of them.
    Announce(AnnounceArgs),
    /// N idle authenticated connections: the relay's resident memory per connection.
    Idle(IdleArgs),
    /// The database's cost per message: the same inserts alternately into a plain table with a
    /// per-row pg_notify(row_to_json(new)) trigger (schema bench_peer) and into
    /// gre_chat_messages; commit latency, rows/s, PostgreSQL CPU and the ratios gre/peer.
    Compare(modes::CompareArgs),
    /// Closed-loop rows/s of both schemas with 4 and 8 writers, and rows/s against commit
    /// latency at rates up to the ceiling.
    Ceiling(modes::CeilingArgs),
    /// 1, 2, 4 relays (the gre-relay binary, started by the tool) on one database, clients split
    /// among them: deliveries, lost, database CPU, each relay's LISTEN backend's CPU.
    Scale(scale::ScaleArgs),
    /// Prints the peer schema's SQL (what `compare` creates in schema bench_peer), for scripts
    /// that measure it outside the tool (scripts/insert_cpu.sh).
    PeerSchema,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Cleanup {
    /// Delete the run's sessions, messages and push notifications.
    Delete,
    /// Close the run's sessions and keep the rows.
    Close,
    /// Leave everything as it is.
    None,
}

#[derive(Debug, Args)]
struct Common {
    /// The relay's WebSocket URL (plain ws://).
    #[arg(long, env = "GRE_BENCH_WS", default_value = "ws://127.0.0.1:5000/ws")]
    ws: String,
    /// The JWT secret the relay verifies tokens with (the tool mints its own tokens).
    #[arg(long, env = "SUPABASE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// The relay's database (a direct or session-mode URL). The tool creates its own sessions
    /// there and inserts rows as the staff portal does.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The relay's process id, for its CPU time and resident memory. Default: the process
    /// listening on the --ws port, when it is on this machine.
    #[arg(long)]
    relay_pid: Option<u32>,
    /// Print only the final JSON line.
    #[arg(long)]
    json_only: bool,
    /// WebSocket handshakes (connect + authenticate) in flight at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Seconds one client may take to connect and be authenticated.
    #[arg(long, default_value_t = 120)]
    handshake_timeout: u64,
    /// Local addresses to bind client sockets to, round robin (e.g. 127.0.0.2,127.0.0.3),
    /// for more than ~28,000 connections from one machine.
    #[arg(long, value_delimiter = ',')]
    bind: Vec<IpAddr>,
    /// What to do with the run's rows at the end.
    #[arg(long, value_enum, default_value_t = Cleanup::Delete)]
    cleanup: Cleanup,
}

#[derive(Debug, Args)]
struct LoadArgs {
    #[command(flatten)]
    common: Common,
    /// Player sockets, each with its own open session.
    #[arg(long, default_value_t = 2000)]
    players: u32,
    /// Staff sockets (each receives every session's messages).
    #[arg(long, default_value_t = 5)]
    staff: u32,
    /// Rows per second over all writers (open loop); 0 = as fast as the writers can commit.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of writing.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Database connections inserting rows, round robin over the sessions.
    #[arg(long, default_value_t = 4)]
    writers: u32,
    /// Seconds to wait after the writers stop for the last deliveries.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Seconds between the last client connecting and the first row.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// CI preset: 20 players, 2 staff, 100 rows/s for 3 s by 2 writers.
    #[arg(long)]
    smoke: bool,
}

#[derive(Debug, Args)]
struct AnnounceArgs {
    #[command(flatten)]
    common: Common,
    /// Sessions (one player socket each) the statement writes to.
    #[arg(long, default_value_t = 2000)]
    sessions: u32,
    /// Staff sockets (each receives every row).
    #[arg(long, default_value_t = 5)]
    staff: u32,
    /// Announcements, one statement each.
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// Seconds between announcements.
    #[arg(long, default_value_t = 2.0)]
    gap: f64,
    /// Deadline for the last delivery of an announcement, in ms after its statement was sent.
    #[arg(long, default_value_t = 1000.0)]
    deadline_ms: f64,
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// CI preset: 20 sessions, 1 staff, 2 announcements.
    #[arg(long)]
    smoke: bool,
}

#[derive(Debug, Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Idle authenticated connections (players).
    #[arg(long, default_value_t = 19_000)]
    connections: u32,
    /// Give each player an open session first (it is then subscribed to it, as in production).
    /// Needs --database-url; without one the players have no session.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    sessions: bool,
    /// Seconds to wait after the last connection before measuring.
    #[arg(long, default_value_t = 5.0)]
    settle: f64,
    /// Seconds to hold the idle connections while measuring the relay's idle CPU.
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
    /// CI preset: 50 connections, short waits.
    #[arg(long)]
    smoke: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::PeerSchema = cli.command {
        println!("{}", compare::PEER_SCHEMA);
        return std::process::ExitCode::SUCCESS;
    }
    let nofile = sys::raise_nofile_limit();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gre-bench: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Load(a) => load(a, nofile).await,
            Command::Announce(a) => announce(a, nofile).await,
            Command::Idle(a) => idle(a, nofile).await,
            Command::Compare(a) => modes::compare_mode(a, nofile).await,
            Command::Ceiling(a) => modes::ceiling_mode(a).await,
            Command::Scale(a) => scale::scale_mode(a, nofile).await,
            Command::PeerSchema => Ok(true),
        }
    });
    // Do not wait for client tasks still closing.
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("gre-bench: {e:#}");
            println!(
                "{}",
                json!({"tool": "gre-bench", "ok": false, "error": format!("{e:#}")})
            );
            std::process::ExitCode::from(2)
        }
    }
}

/// What every mode starts with.
struct Run {
    id: String,
    marker: Marker,
    target: Target,
    relay_pid: Option<u32>,
    /// Player ids of this run are base .. base + n: fresh every run, so runs never collide.
    base: i64,
    origin: Instant,
    json_only: bool,
}

impl Run {
    async fn new(c: &Common, nofile: Option<u64>, needed_fds: u64) -> anyhow::Result<Run> {
        let target = Target::resolve(&c.ws, c.bind.clone()).await?;
        let relay_pid = c.relay_pid.or_else(|| {
            target
                .is_local()
                .then(|| sys::pid_listening_on(target.port))
                .flatten()
        });
        let id = format!("{:08x}", rand::random::<u32>());
        let base = 1_000_000_000_000 + i64::from(rand::random::<u32>()) * 100_000;
        let run = Run {
            marker: Marker::new(&id),
            id,
            target,
            relay_pid,
            base,
            origin: Instant::now(),
            json_only: c.json_only,
        };
        if let Some(limit) = nofile {
            if limit < needed_fds {
                run.say(&format!(
                    "warning: open-file limit {limit} < the {needed_fds} sockets this run needs (ulimit -n)"
                ));
            }
        }
        match run.relay_pid {
            Some(pid) => run.progress(&format!("relay pid {pid}")),
            None => {
                run.progress("relay pid unknown (give --relay-pid): no relay CPU/memory figures")
            }
        }
        Ok(run)
    }

    fn say(&self, line: &str) {
        if !self.json_only {
            println!("{line}");
        }
    }

    fn progress(&self, line: &str) {
        if !self.json_only {
            eprintln!("gre-bench: {line}");
        }
    }

    fn fleet_options(&self, c: &Common, stop: watch::Receiver<bool>, n: usize) -> FleetOptions {
        FleetOptions {
            target: self.target.clone(),
            concurrency: c.connect_concurrency,
            handshake_timeout: Duration::from_secs(c.handshake_timeout),
            marker: self.marker.clone(),
            origin: self.origin,
            stop,
            progress_every: if self.json_only || n < 4000 { 0 } else { 1000 },
            counter: Arc::new(AtomicU64::new(0)),
        }
    }

    fn players(&self, secret: &str, n: u32) -> Vec<Who> {
        let ttl = Duration::from_secs(86_400);
        (0..n)
            .map(|i| Who::Player {
                index: i,
                token: gre_relay::auth::mint_player_token(secret, self.base + i64::from(i), ttl),
            })
            .collect()
    }

    fn staff(&self, secret: &str, n: u32) -> Vec<Who> {
        let ttl = Duration::from_secs(86_400);
        (0..n)
            .map(|k| Who::Staff {
                token: gre_relay::auth::mint_staff_token(
                    secret,
                    &format!("bench-{}-staff-{k}", self.id),
                    Some("gre-bench"),
                    ttl,
                ),
            })
            .collect()
    }
}

async fn collect(fleet: Fleet, stop: watch::Sender<bool>) -> Vec<Received> {
    let _ = stop.send(true);
    let mut out = Vec::with_capacity(fleet.handles.len());
    for h in fleet.handles {
        if let Ok(r) = h.await {
            out.push(r);
        }
    }
    out
}

/// Clients the relay closed before the tool did (4008 lagging, heartbeat, errors), and one reason.
fn closed_early(clients: &[Received]) -> (u64, Option<String>) {
    let early = || {
        clients
            .iter()
            .filter(|c| c.connected && c.closed_early.is_some())
    };
    (
        early().count() as u64,
        early().find_map(|c| c.closed_early.clone()),
    )
}

fn usage_json(u: &Usage) -> Value {
    let r1 = |x: Option<f64>| x.map(|v| (v * 10.0).round() / 10.0);
    json!({
        "wall_s": (u.wall_s * 1000.0).round() / 1000.0,
        "relay_cpu_s": u.relay_cpu_s.map(|v| (v * 1000.0).round() / 1000.0),
        "relay_cpu_pct_of_core": r1(u.relay_core_pct),
        "relay_sys_pct_of_core": r1(u.relay_sys_pct),
        "relay_context_switches_per_s": u.relay_ctxsw_per_s.map(f64::round),
        "relay_rss_kib_before": u.relay_rss_kib_before,
        "relay_rss_kib_after": u.relay_rss_kib_after,
        "postgres_cpu_pct_of_core": r1(u.postgres_core_pct),
        "bench_cpu_pct_of_core": r1(u.own_core_pct),
        "machine_busy_pct": r1(u.machine_busy_pct),
    })
}

fn usage_human(u: &Usage) -> Vec<String> {
    let pct = |x: Option<f64>| x.map_or("n/a".to_owned(), |v| format!("{v:.1}%"));
    let kib = |x: Option<u64>| {
        x.map_or("n/a".to_owned(), |v| {
            format!("{:.1} MiB", v as f64 / 1024.0)
        })
    };
    vec![
        format!(
            "  relay        CPU {} of one core ({} in the kernel; {} s in {:.1} s; {} context switches/s); RSS {} -> {}",
            pct(u.relay_core_pct),
            pct(u.relay_sys_pct),
            u.relay_cpu_s.map_or("n/a".into(), |v| format!("{v:.3}")),
            u.wall_s,
            u.relay_ctxsw_per_s.map_or("n/a".into(), |v| format!("{v:.0}")),
            kib(u.relay_rss_kib_before),
            kib(u.relay_rss_kib_after),
        ),
        format!(
            "  others       postgres {} of one core, gre-bench {} of one core, machine {} busy ({} cores)",
            pct(u.postgres_core_pct),
            pct(u.own_core_pct),
            pct(u.machine_busy_pct),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        ),
    ]
}

/// Waits until `counter` reaches `expected` or `drain` passes; returns the seconds waited.
async fn drain(counter: &AtomicU64, expected: u64, drain: Duration) -> f64 {
    let start = Instant::now();
    while counter.load(Ordering::Relaxed) < expected && start.elapsed() < drain {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A little longer, so that a duplicate close behind the last message is seen too.
    tokio::time::sleep(Duration::from_millis(200).min(drain)).await;
    start.elapsed().as_secs_f64()
}

async fn load(mut a: LoadArgs, nofile: Option<u64>) -> anyhow::Result<bool> {
    if a.smoke {
        (a.players, a.staff, a.rate, a.duration, a.writers, a.settle) = (20, 2, 100.0, 3.0, 2, 0.5);
    }
    let c = &a.common;
    let url = c
        .database_url
        .clone()
        .context("load needs --database-url (or DATABASE_URL)")?;
    anyhow::ensure!(
        a.players > 0,
        "--players must be at least 1 (rows go to players' sessions)"
    );
    let run = Run::new(c, nofile, u64::from(a.players + a.staff) + 64).await?;
    let admin = db::connect(&url).await?;
    let sessions = Arc::new(db::create_sessions(&admin, run.base, a.players).await?);
    run.progress(&format!(
        "run {}: {} sessions created; connecting {} players and {} staff to {}",
        run.id, a.players, a.players, a.staff, run.target.url
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut who = run.players(&c.jwt_secret, a.players);
    who.extend(run.staff(&c.jwt_secret, a.staff));
    let opts = run.fleet_options(c, stop_rx, who.len());
    let counter = opts.counter.clone();
    let fleet = clients::connect_all(who, &opts).await;
    run.progress(&format!(
        "{} clients connected ({} failed) in {:.1} s; writing",
        fleet.connected, fleet.failed, fleet.connect_seconds
    ));
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;

    let before = Sample::take(run.relay_pid);
    let plan = db::RatePlan {
        url: url.clone(),
        sessions: sessions.clone(),
        writers: a.writers,
        rate: a.rate,
        duration: Duration::from_secs_f64(a.duration),
        marker: run.marker.clone(),
        origin: run.origin,
        insert: db::INSERT.to_owned(),
        first_seq: 0,
    };
    let listen = db::Listen::start(
        &url,
        gre_relay::realtime::notify::CHANNEL,
        run.marker.clone(),
        &sessions,
        run.origin,
        None,
    )?;
    let writes = tokio::task::spawn_blocking(move || db::run_writers(plan)).await??;
    let after = Sample::take(run.relay_pid);
    let ok_rows = writes.written.iter().filter(|w| w.ack.is_some()).count() as u64;
    let expected = ok_rows * (1 + u64::from(a.staff));
    let waited = drain(&counter, expected, Duration::from_secs_f64(a.drain)).await;
    let listened = listen.finish().resolve(&writes.written);
    let clients = collect(fleet, stop_tx).await;
    let d = report::analyse(&writes.written, &clients, &listened, a.players, 0);
    let (early, early_reason) = closed_early(&clients);
    if c.cleanup != Cleanup::None {
        if let Err(e) =
            db::clean_up(&admin, &sessions, run.base, c.cleanup == Cleanup::Delete).await
        {
            run.progress(&format!("clean-up failed: {e:#}"));
        }
    }

    let u = sys::usage(&before, &after);
    let window_s = (writes.stopped.saturating_sub(writes.started)) as f64 / 1e9;
    let achieved = ok_rows as f64 / window_s.max(1e-9);
    let deliveries_per_s = d.unique as f64 / window_s.max(1e-9);
    let ok =
        d.ok() && writes.errors == 0 && early == 0 && failed(&clients, a.players + a.staff) == 0;
    let failed_clients = failed(&clients, a.players + a.staff);
    run.say(&format!(
        "gre-bench load (run {}): {} players, {} staff, {} rows/s offered for {} s by {} writers",
        run.id,
        a.players,
        a.staff,
        if a.rate > 0.0 {
            format!("{}", a.rate)
        } else {
            "max".into()
        },
        a.duration,
        a.writers
    ));
    run.say(&format!(
        "  rows         {ok_rows} committed ({achieved:.1}/s), {} insert errors{}, writers at most {:.1} ms behind schedule",
        writes.errors,
        writes.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default(),
        writes.max_behind_ms
    ));
    run.say(&format!(
        "  deliveries   expected {}, received {} ({} unique, {deliveries_per_s:.0}/s), LOST {}, DUPLICATED {}, misrouted {}",
        d.expected, d.received, d.unique, d.lost, d.duplicated, d.misrouted
    ));
    if let Some(m) = &d.example_missing {
        run.say(&format!(
            "               {} clients missing messages, e.g. {m}",
            d.clients_missing
        ));
    }
    run.say(&format!(
        "  clients      {} of {} connected; {early} closed by the relay early{}",
        a.players + a.staff - failed_clients,
        a.players + a.staff,
        early_reason
            .as_deref()
            .map(|r| format!(" (e.g. {r})"))
            .unwrap_or_default()
    ));
    run.say(&format!("  commit       {}", d.commit.human()));
    run.say(
        "               (insert sent -> commit acknowledged to the writer: the database's share)",
    );
    run.say(&format!("  end to end   {}", d.e2e.human()));
    run.say("               (insert sent -> frame decoded by the client)");
    run.say(&format!("  relay share  {}", d.relay.human()));
    run.say("               (writer's commit acknowledged -> frame decoded; negative: the frame beat the ack)");
    run.say(&format!("    players    {}", d.relay_players.human()));
    run.say(&format!("    staff      {}", d.relay_staff.human()));
    run.say(&format!("  over LISTEN  {}", d.over_listen.human()));
    run.say("               (the tool's own LISTEN got the notification -> frame decoded: what the relay adds");
    run.say("                over a plain PostgreSQL client on the same machine)");
    for l in usage_human(&u) {
        run.say(&l);
    }
    run.say(&format!(
        "  drain        {waited:.2} s after the writers stopped"
    ));
    let line = json!({
        "tool": "gre-bench", "mode": "load", "ok": ok, "run": run.id,
        "players": a.players, "staff": a.staff, "rate": a.rate, "duration_s": a.duration,
        "writers": a.writers, "clients_failed": failed_clients, "clients_closed_early": early,
        "rows_per_s": (achieved * 10.0).round() / 10.0,
        "deliveries_per_s": deliveries_per_s.round(),
        "insert_errors": writes.errors, "writers_max_behind_ms": (writes.max_behind_ms * 10.0).round() / 10.0,
        "delivery": d.json(), "usage": usage_json(&u), "relay_pid": run.relay_pid,
    });
    println!("{line}");
    Ok(ok)
}

/// Clients that never connected and authenticated.
fn failed(clients: &[Received], total: u32) -> u32 {
    total.saturating_sub(clients.iter().filter(|c| c.connected).count() as u32)
}

async fn announce(mut a: AnnounceArgs, nofile: Option<u64>) -> anyhow::Result<bool> {
    if a.smoke {
        (a.sessions, a.staff, a.repeat, a.gap, a.settle) = (20, 1, 2, 0.5, 0.5);
    }
    let c = &a.common;
    let url = c
        .database_url
        .clone()
        .context("announce needs --database-url (or DATABASE_URL)")?;
    anyhow::ensure!(a.sessions > 0, "--sessions must be at least 1");
    let run = Run::new(c, nofile, u64::from(a.sessions + a.staff) + 64).await?;
    let admin = db::connect(&url).await?;
    let sessions = db::create_sessions(&admin, run.base, a.sessions).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut who = run.players(&c.jwt_secret, a.sessions);
    who.extend(run.staff(&c.jwt_secret, a.staff));
    let opts = run.fleet_options(c, stop_rx, who.len());
    let counter = opts.counter.clone();
    let fleet = clients::connect_all(who, &opts).await;
    run.progress(&format!(
        "run {}: {} clients connected ({} failed) in {:.1} s; announcing",
        run.id, fleet.connected, fleet.failed, fleet.connect_seconds
    ));
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    let before = Sample::take(run.relay_pid);
    let listen = db::Listen::start(
        &url,
        gre_relay::realtime::notify::CHANNEL,
        run.marker.clone(),
        &sessions,
        run.origin,
        None,
    )?;
    let writes = db::announce(
        &admin,
        &sessions,
        &run.marker,
        run.origin,
        a.repeat,
        Duration::from_secs_f64(a.gap),
    )
    .await?;
    let ok_rows = writes.written.iter().filter(|w| w.ack.is_some()).count() as u64;
    let expected = ok_rows * (1 + u64::from(a.staff));
    let waited = drain(&counter, expected, Duration::from_secs_f64(a.drain)).await;
    let after = Sample::take(run.relay_pid);
    let listened = listen.finish().resolve(&writes.written);
    let clients = collect(fleet, stop_tx).await;
    let d = report::analyse(&writes.written, &clients, &listened, a.sessions, a.sessions);
    let (early, early_reason) = closed_early(&clients);
    if c.cleanup != Cleanup::None {
        if let Err(e) =
            db::clean_up(&admin, &sessions, run.base, c.cleanup == Cleanup::Delete).await
        {
            run.progress(&format!("clean-up failed: {e:#}"));
        }
    }
    let u = sys::usage(&before, &after);
    let failed_clients = failed(&clients, a.sessions + a.staff);
    let deadline_ns = (a.deadline_ms * 1e6) as i64;
    let worst = d.batches.iter().map(|b| b.0).max().unwrap_or(i64::MAX);
    // Met only if every delivery arrived, the last of each announcement within the deadline.
    let in_time = !d.batches.is_empty() && worst <= deadline_ns && d.lost == 0;
    let ok = d.ok() && writes.errors == 0 && early == 0 && failed_clients == 0 && in_time;
    run.say(&format!(
        "gre-bench announce (run {}): {} statements, each inserting one row into each of {} sessions; {} staff",
        run.id, a.repeat, a.sessions, a.staff
    ));
    for (i, (e2e, share)) in d.batches.iter().enumerate() {
        run.say(&format!(
            "  announcement {}: last of {} deliveries {} after the statement was sent, {} after its commit",
            i + 1,
            a.sessions as u64 * (1 + u64::from(a.staff)),
            report::ms(*e2e),
            report::ms(*share)
        ));
    }
    run.say(&format!(
        "  deadline     {} ms: {}",
        a.deadline_ms,
        if in_time { "met" } else { "MISSED" }
    ));
    run.say(&format!(
        "  deliveries   expected {}, received {}, LOST {}, DUPLICATED {}, misrouted {}",
        d.expected, d.received, d.lost, d.duplicated, d.misrouted
    ));
    run.say(&format!(
        "  clients      {} failed to connect; {early} closed by the relay early{}",
        failed_clients,
        early_reason
            .as_deref()
            .map(|r| format!(" (e.g. {r})"))
            .unwrap_or_default()
    ));
    run.say(&format!("  end to end   {}", d.e2e.human()));
    run.say(&format!("  relay share  {}", d.relay.human()));
    run.say(&format!("  over LISTEN  {}", d.over_listen.human()));
    for l in usage_human(&u) {
        run.say(&l);
    }
    run.say(&format!(
        "  drain        {waited:.2} s after the last statement"
    ));
    let line = json!({
        "tool": "gre-bench", "mode": "announce", "ok": ok, "run": run.id,
        "sessions": a.sessions, "staff": a.staff, "repeat": a.repeat,
        "deadline_ms": a.deadline_ms, "deadline_met": in_time,
        "last_delivery_ms": d.batches.iter().map(|b| (b.0 as f64 / 1e3).round() / 1e3).collect::<Vec<_>>(),
        "last_delivery_after_commit_ms": d.batches.iter().map(|b| (b.1 as f64 / 1e3).round() / 1e3).collect::<Vec<_>>(),
        "clients_failed": failed_clients, "clients_closed_early": early, "insert_errors": writes.errors,
        "delivery": d.json(), "usage": usage_json(&u), "relay_pid": run.relay_pid,
    });
    println!("{line}");
    Ok(ok)
}

async fn idle(mut a: IdleArgs, nofile: Option<u64>) -> anyhow::Result<bool> {
    if a.smoke {
        (a.connections, a.settle, a.hold) = (50, 0.5, 0.5);
    }
    let c = &a.common;
    let run = Run::new(c, nofile, u64::from(a.connections) + 64).await?;
    let admin = match (&c.database_url, a.sessions) {
        (Some(url), true) => Some(db::connect(url).await?),
        _ => None,
    };
    let sessions: Vec<Uuid> = match &admin {
        Some(db) => db::create_sessions(db, run.base, a.connections).await?,
        None => Vec::new(),
    };
    let own_rss0 = sys::rss_kib(std::process::id());
    let threads = run.relay_pid.and_then(sys::threads);
    let rss0 = run.relay_pid.and_then(sys::rss_kib);
    run.progress(&format!(
        "run {}: connecting {} idle players ({})",
        run.id,
        a.connections,
        if sessions.is_empty() {
            "no sessions"
        } else {
            "each subscribed to its open session"
        }
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let who = run.players(&c.jwt_secret, a.connections);
    let opts = run.fleet_options(c, stop_rx, who.len());
    let connect_start = Sample::take(run.relay_pid);
    let fleet = clients::connect_all(who, &opts).await;
    let connect_end = Sample::take(run.relay_pid);
    run.progress(&format!(
        "{} connected ({} failed) in {:.1} s; settling {} s",
        fleet.connected, fleet.failed, fleet.connect_seconds, a.settle
    ));
    if let Some(e) = &fleet.first_error {
        run.progress(&format!("first failure: {e}"));
    }
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    let hold_start = Sample::take(run.relay_pid);
    tokio::time::sleep(Duration::from_secs_f64(a.hold)).await;
    let hold_end = Sample::take(run.relay_pid);
    let own_rss1 = sys::rss_kib(std::process::id());
    let connected = fleet.connected as u64;
    let clients = collect(fleet, stop_tx).await;
    let (early, early_reason) = closed_early(&clients);
    tokio::time::sleep(Duration::from_secs_f64(a.settle.min(3.0))).await;
    let rss_closed = run.relay_pid.and_then(sys::rss_kib);
    if let (Some(db), Cleanup::Delete | Cleanup::Close) = (&admin, c.cleanup) {
        if let Err(e) = db::clean_up(db, &sessions, run.base, c.cleanup == Cleanup::Delete).await {
            run.progress(&format!("clean-up failed: {e:#}"));
        }
    }
    let rss1 = hold_end.relay_rss_kib;
    let per_conn = match (rss0, rss1) {
        (Some(x), Some(y)) if connected > 0 => {
            Some((y as f64 - x as f64) * 1024.0 / connected as f64)
        }
        _ => None,
    };
    let own_per_conn = match (own_rss0, own_rss1) {
        (Some(x), Some(y)) if connected > 0 => {
            Some((y as f64 - x as f64) * 1024.0 / connected as f64)
        }
        _ => None,
    };
    let connect_use = sys::usage(&connect_start, &connect_end);
    let hold_use = sys::usage(&hold_start, &hold_end);
    let ok = connected == u64::from(a.connections) && early == 0;
    let kib = |x: Option<u64>| {
        x.map_or("n/a".to_owned(), |v| {
            format!("{:.1} MiB", v as f64 / 1024.0)
        })
    };
    run.say(&format!(
        "gre-bench idle (run {}): {} idle authenticated players{}",
        run.id,
        a.connections,
        if sessions.is_empty() {
            ""
        } else {
            ", each subscribed to its open session"
        }
    ));
    run.say(&format!(
        "  clients      {connected} connected in {:.1} s; {early} closed by the relay early{}",
        connect_use.wall_s,
        early_reason
            .as_deref()
            .map(|r| format!(" (e.g. {r})"))
            .unwrap_or_default()
    ));
    run.say(&format!(
        "  relay RSS    {} before, {} with the connections, {} after they closed (threads: {})",
        kib(rss0),
        kib(rss1),
        kib(rss_closed),
        threads.map_or("n/a".into(), |t| t.to_string())
    ));
    run.say(&format!(
        "  per conn.    {} of relay memory per idle authenticated connection",
        per_conn.map_or("n/a".into(), |b| format!(
            "{:.2} KiB ({b:.0} bytes)",
            b / 1024.0
        ))
    ));
    run.say(&format!(
        "  relay CPU    {} of one core while connecting, {} of one core idle ({:.0} s held)",
        connect_use
            .relay_core_pct
            .map_or("n/a".into(), |v| format!("{v:.1}%")),
        hold_use
            .relay_core_pct
            .map_or("n/a".into(), |v| format!("{v:.2}%")),
        hold_use.wall_s
    ));
    run.say(&format!(
        "  gre-bench    {} per client connection (the tool's own memory)",
        own_per_conn.map_or("n/a".into(), |b| format!("{:.2} KiB", b / 1024.0))
    ));
    let line = json!({
        "tool": "gre-bench", "mode": "idle", "ok": ok, "run": run.id,
        "connections": a.connections, "connected": connected, "with_sessions": !sessions.is_empty(),
        "clients_closed_early": early,
        "relay_rss_kib_before": rss0, "relay_rss_kib_connected": rss1, "relay_rss_kib_after_close": rss_closed,
        "relay_bytes_per_connection": per_conn.map(|b| b.round()),
        "relay_kib_per_connection": per_conn.map(|b| (b / 1024.0 * 100.0).round() / 100.0),
        "connect_s": (connect_use.wall_s * 10.0).round() / 10.0,
        "relay_cpu_pct_connecting": connect_use.relay_core_pct.map(|v| (v * 10.0).round() / 10.0),
        "relay_cpu_pct_idle": hold_use.relay_core_pct.map(|v| (v * 100.0).round() / 100.0),
        "bench_bytes_per_connection": own_per_conn.map(|b| b.round()),
        "relay_pid": run.relay_pid,
    });
    println!("{line}");
    Ok(ok)
}
