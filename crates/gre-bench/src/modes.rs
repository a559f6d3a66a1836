//! The database-cost modes of issue 12: `compare` (gre schema against the peer schema, A/B/A/B),
//! `ceiling` (closed loop and the rows/s-latency curve) and `scale` (N relays on one database).

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

use crate::breakdown;
use crate::clients::{self, FleetOptions, Marker, Target, Who};
use crate::compare::{self, FakePresence, Side, SidePlan, SideRun, FIGURES};
use crate::db;
use crate::report;
use crate::sys::{self, Cluster};

#[derive(Debug, Args)]
pub struct DbArgs {
    /// The database (the relay's, migrated). The peer schema is created in it as `bench_peer`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Sessions the writers insert into, round robin (one player each).
    #[arg(long, default_value_t = 2000)]
    sessions: u32,
    /// Database-only mode: leave the players offline, so the push trigger inserts one push
    /// notification per gre row. Default: the tool marks every player connected in
    /// gre_relay.presence (as when 2,000 players are on a relay).
    #[arg(long)]
    offline_players: bool,
    /// Print only the final JSON line.
    #[arg(long)]
    json_only: bool,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Writer connections.
    #[arg(long, default_value_t = 4)]
    writers: u32,
    /// Rows per second over all writers (open loop); 0 = closed loop.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of writing per run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Rounds; each round is one peer run then one gre run. Figures are medians over rounds.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds of unreported writing into each side first (warms caches and connections).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// End to end through a running relay too: its ws:// URL. Players and staff connect to it
    /// and the gre side is also timed to the decoded WebSocket frame.
    #[arg(long)]
    ws: Option<String>,
    /// The relay's JWT secret (with --ws).
    #[arg(long, env = "SUPABASE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Staff sockets (with --ws).
    #[arg(long, default_value_t = 5)]
    staff: u32,
    /// Seconds to wait for the last deliveries (with --ws).
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// A third side in each round: the peer schema with hint-only notifications (the row's id),
    /// each row read back by id by the tool's LISTEN on a second connection (every notification
    /// already received in one query), as any relay under the contract's hints must. Its CPU and
    /// latency are the floor of a hint-only design (`peer_hint`, ratios against the plain peer).
    #[arg(long)]
    peer_read_back: bool,
    /// CI preset: 20 sessions, 2 writers, 100 rows/s, 1 round of 1 s, no warm-up, 2 staff.
    #[arg(long)]
    smoke: bool,
}

#[derive(Debug, Args)]
pub struct CeilingArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Writer counts for the closed-loop ceiling.
    #[arg(long, value_delimiter = ',', default_value = "4,8")]
    writers: Vec<u32>,
    /// Seconds of writing per closed-loop run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Curve: offered rates as fractions of the peer's closed-loop rows/s with --curve-writers
    /// (the same absolute rates for both sides).
    #[arg(long, value_delimiter = ',', default_value = "0.25,0.5,0.75,0.9,1.0")]
    curve: Vec<f64>,
    /// Writers for the curve.
    #[arg(long, default_value_t = 4)]
    curve_writers: u32,
    /// Seconds of writing per curve point.
    #[arg(long, default_value_t = 6.0)]
    curve_duration: f64,
    /// CI preset: 20 sessions, 2 writers, 1 s runs, a two-point curve.
    #[arg(long)]
    smoke: bool,
}

/// What the database modes share: the database, the run's sessions and marker, the cluster.
struct DbRun {
    url: String,
    admin: tokio_postgres::Client,
    id: String,
    marker: Marker,
    origin: Instant,
    base: i64,
    sessions: Arc<Vec<Uuid>>,
    cluster: Option<Cluster>,
    presence: Option<FakePresence>,
    json_only: bool,
    next_seq: u32,
}

impl DbRun {
    async fn start(a: &DbArgs, fake_presence: bool) -> anyhow::Result<DbRun> {
        anyhow::ensure!(a.sessions > 0, "--sessions must be at least 1");
        let admin = db::connect(&a.database_url).await?;
        compare::create_peer_schema(&admin).await?;
        let cluster = compare::cluster(&admin).await?;
        let id = format!("{:08x}", rand::random::<u32>());
        let base = 1_000_000_000_000 + i64::from(rand::random::<u32>()) * 100_000;
        let sessions = Arc::new(db::create_sessions(&admin, base, a.sessions).await?);
        let presence = if fake_presence && !a.offline_players {
            Some(FakePresence::register(&a.database_url, base, a.sessions).await?)
        } else {
            None
        };
        let run = DbRun {
            url: a.database_url.clone(),
            admin,
            marker: Marker::new(&id),
            id,
            origin: Instant::now(),
            base,
            sessions,
            cluster,
            presence,
            json_only: a.json_only,
            next_seq: 0,
        };
        match run.cluster {
            Some(c) => run.progress(&format!(
                "run {}: PostgreSQL CPU = postmaster {} and its children",
                run.id, c.postmaster
            )),
            None => run.progress(&format!(
                "run {}: the database's processes cannot be read (another machine?): no PostgreSQL CPU figures",
                run.id
            )),
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

    async fn side(
        &mut self,
        side: Side,
        writers: u32,
        rate: f64,
        seconds: f64,
        relay_pids: &[u32],
    ) -> anyhow::Result<SideRun> {
        let r = compare::run_side(SidePlan {
            url: &self.url,
            side,
            sessions: self.sessions.clone(),
            writers,
            rate,
            duration: Duration::from_secs_f64(seconds),
            marker: self.marker.clone(),
            origin: self.origin,
            first_seq: self.next_seq,
            cluster: self.cluster,
            relay_pids: relay_pids.to_vec(),
            admin: &self.admin,
        })
        .await?;
        self.next_seq += r.written.len() as u32;
        self.progress(&format!(
            "  {:<4} {} writers, {}: {} rows ({:.0}/s), commit p50 {} p99 {}, PostgreSQL CPU {} s{}",
            side.name(),
            writers,
            if rate > 0.0 {
                format!("{rate} rows/s offered")
            } else {
                "closed loop".into()
            },
            r.rows,
            r.rows_per_s,
            report::ms(r.commit.p50),
            report::ms(r.commit.p99),
            compare::fmt(r.pg_cpu_s, "s"),
            if r.errors > 0 {
                format!(
                    ", {} ERRORS ({})",
                    r.errors,
                    r.first_error.as_deref().unwrap_or("")
                )
            } else {
                String::new()
            }
        ));
        Ok(r)
    }

    async fn finish(self) {
        if let Some(p) = self.presence {
            p.remove().await;
        }
        if let Err(e) = db::clean_up(&self.admin, &self.sessions, self.base, true).await {
            eprintln!("gre-bench: clean-up failed: {e:#}");
        }
        if let Err(e) = compare::clean_peer(&self.admin, &self.marker).await {
            eprintln!("gre-bench: clean-up of bench_peer failed: {e:#}");
        }
    }
}

fn load_average() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// The ratios b/a of a figure within each round (a round is one run of each side, in order).
fn per_round(
    runs: &[SideRun],
    sides: usize,
    a: Side,
    b: Side,
    f: fn(&SideRun) -> Option<f64>,
) -> Vec<f64> {
    runs.chunks(sides)
        .filter_map(|round| {
            let of = |s: Side| round.iter().find(|r| r.side == s);
            compare::ratio(f(of(b)?), f(of(a)?))
        })
        .collect()
}

/// Per figure: peer median, gre median, ratio gre/peer; with the hint-only peer
/// (--peer-read-back) also its median and the ratios peer_hint/peer and gre/peer_hint.
fn side_by_side(runs: &[SideRun]) -> (Vec<String>, Value) {
    let hint = runs.iter().any(|r| r.side == Side::PeerHint);
    let sides = if hint { 3 } else { 2 };
    let of = |side: Side| runs.iter().filter(|r| r.side == side).collect::<Vec<_>>();
    let (peer, gre, peer_hint) = (
        compare::medians(&of(Side::Peer)),
        compare::medians(&of(Side::Gre)),
        compare::medians(&of(Side::PeerHint)),
    );
    let mut head = format!(
        "  {:<26} {:>12} {:>12} {:>10} {:>14}",
        "median over rounds", "peer", "gre", "gre/peer", "per round"
    );
    if hint {
        head += &format!(
            " {:>12} {:>16} {:>16}",
            "peer_hint", "hint/peer round", "gre/hint round"
        );
    }
    let mut lines = vec![head];
    let mut j = serde_json::Map::new();
    let r4 = |x: Option<f64>| x.map(|v| (v * 10000.0).round() / 10000.0);
    let x = |r: Option<f64>| r.map_or("n/a".into(), |r| format!("{r:.2}x"));
    for ((((name, unit, f), (_, p)), (_, g)), (_, h)) in
        FIGURES.iter().zip(&peer).zip(&gre).zip(&peer_hint)
    {
        let r = compare::ratio(*g, *p);
        // The ratio within each round (its peer run and the gre run right after it): on a
        // noisy machine, more telling than the ratio of medians taken from different rounds.
        let rounds = per_round(runs, sides, Side::Peer, Side::Gre, *f);
        let per_round_median = compare::median(rounds.clone());
        let mut line = format!(
            "  {:<26} {:>12} {:>12} {:>10} {:>14}",
            name,
            compare::fmt(*p, unit),
            compare::fmt(*g, unit),
            x(r),
            x(per_round_median),
        );
        let mut entry = json!({"peer": r4(*p), "gre": r4(*g), "ratio": r4(r),
                   "ratio_per_round": rounds.iter().map(|x| r4(Some(*x))).collect::<Vec<_>>(),
                   "ratio_per_round_median": r4(per_round_median)});
        if hint {
            let hp = compare::median(per_round(runs, sides, Side::Peer, Side::PeerHint, *f));
            let gh = compare::median(per_round(runs, sides, Side::PeerHint, Side::Gre, *f));
            line += &format!(
                " {:>12} {:>16} {:>16}",
                compare::fmt(*h, unit),
                x(hp),
                x(gh)
            );
            entry["peer_hint"] = json!(r4(*h));
            entry["peer_hint_over_peer_per_round_median"] = json!(r4(hp));
            entry["gre_over_peer_hint_per_round_median"] = json!(r4(gh));
        }
        lines.push(line);
        j.insert((*name).into(), entry);
    }
    (lines, Value::Object(j))
}

/// Per side, the median over its runs of each process label's CPU per row (ms).
fn cpu_breakdown(runs: &[SideRun]) -> (Vec<String>, Value) {
    let mut lines = Vec::new();
    let mut j = serde_json::Map::new();
    for side in [Side::Peer, Side::PeerHint, Side::Gre] {
        let per: Vec<Vec<(&'static str, f64)>> = runs
            .iter()
            .filter(|r| r.side == side)
            .filter_map(SideRun::cpu_ms_per_row_by_process)
            .collect();
        if per.is_empty() {
            continue;
        }
        let mut parts = Vec::new();
        let mut o = serde_json::Map::new();
        for label in breakdown::LABELS {
            let v = compare::median(
                per.iter()
                    .map(|p| p.iter().find(|(l, _)| l == label).map_or(0.0, |(_, v)| *v))
                    .collect(),
            )
            .unwrap_or(0.0);
            if v.abs() >= 0.0005 {
                parts.push(format!("{label} {v:.3}"));
            }
            o.insert((*label).into(), json!((v * 10000.0).round() / 10000.0));
        }
        lines.push(format!("  {:<9} {}", side.name(), parts.join(", ")));
        j.insert(side.name().into(), Value::Object(o));
    }
    (lines, Value::Object(j))
}

pub async fn compare_mode(mut a: CompareArgs, nofile: Option<u64>) -> anyhow::Result<bool> {
    if a.smoke {
        (
            a.db.sessions,
            a.writers,
            a.rate,
            a.duration,
            a.rounds,
            a.warmup,
            a.staff,
        ) = (20, 2, 100.0, 1.0, 1, 0.0, 2);
    }
    anyhow::ensure!(a.rounds > 0, "--rounds must be at least 1");
    let load0 = load_average();
    let mut run = DbRun::start(&a.db, a.ws.is_none()).await?;
    // With a relay: players and staff on it for the whole command (the peer side sends them
    // nothing), so the relay's presence is real and its LISTEN backend works during gre runs.
    let mut fleet = None;
    let mut relay_pids = Vec::new();
    if let Some(ws) = &a.ws {
        let secret = a
            .jwt_secret
            .clone()
            .context("--ws needs --jwt-secret (or SUPABASE_JWT_SECRET)")?;
        let target = Target::resolve(ws, Vec::new()).await?;
        if let Some(limit) = nofile {
            if limit < u64::from(a.db.sessions + a.staff) + 64 {
                run.progress(&format!(
                    "warning: open-file limit {limit} is low for this run"
                ));
            }
        }
        if let Some(pid) = target
            .is_local()
            .then(|| sys::pid_listening_on(target.port))
            .flatten()
        {
            relay_pids.push(pid);
        }
        let mut who = players(&secret, run.base, a.db.sessions);
        who.extend(staff(&secret, &run.id, a.staff));
        let (stop_tx, stop_rx) = watch::channel(false);
        let opts = FleetOptions {
            target,
            concurrency: 200,
            handshake_timeout: Duration::from_secs(120),
            marker: run.marker.clone(),
            origin: run.origin,
            stop: stop_rx,
            progress_every: 0,
            counter: Arc::new(AtomicU64::new(0)),
        };
        let f = clients::connect_all(who, &opts).await;
        run.progress(&format!(
            "{} clients connected ({} failed) in {:.1} s",
            f.connected, f.failed, f.connect_seconds
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;
        fleet = Some((f, stop_tx, opts.counter));
    }

    // Warm-up rows reach the relay's clients too: counted for the drain, not analysed.
    let sides: &[Side] = if a.peer_read_back {
        &[Side::Peer, Side::PeerHint, Side::Gre]
    } else {
        &[Side::Peer, Side::Gre]
    };
    let mut warm_gre_rows = 0;
    if a.warmup > 0.0 {
        for &side in sides {
            let r = run
                .side(side, a.writers, a.rate, a.warmup, &relay_pids)
                .await?;
            if side == Side::Gre {
                warm_gre_rows += r.rows;
            }
        }
    }
    let mut runs = Vec::new();
    for round in 0..a.rounds {
        run.progress(&format!("round {} of {}", round + 1, a.rounds));
        for &side in sides {
            runs.push(
                run.side(side, a.writers, a.rate, a.duration, &relay_pids)
                    .await?,
            );
        }
    }
    let load1 = load_average();

    // End to end through the relay, per gre round.
    let mut e2e = Vec::new();
    let mut lost_total = 0u64;
    let mut delivery_ok = true;
    if let Some((f, stop_tx, counter)) = fleet {
        let gre_rows: u64 = warm_gre_rows
            + runs
                .iter()
                .filter(|r| r.side == Side::Gre)
                .map(|r| r.rows)
                .sum::<u64>();
        let expected = gre_rows * (1 + u64::from(a.staff));
        let start = Instant::now();
        while counter.load(std::sync::atomic::Ordering::Relaxed) < expected
            && start.elapsed() < Duration::from_secs_f64(a.drain)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop_tx.send(true);
        let mut clients = Vec::new();
        for h in f.handles {
            if let Ok(r) = h.await {
                clients.push(r);
            }
        }
        for r in runs.iter().filter(|r| r.side == Side::Gre) {
            let end = r.first_seq + r.written.len() as u32;
            let mine = compare::rebased_clients(
                compare::receipts_in(&clients, r.first_seq, end),
                r.first_seq,
            );
            let d = report::analyse(
                &compare::rebased(&r.written, r.first_seq),
                &mine,
                &[],
                a.db.sessions,
                0,
            );
            lost_total += d.lost;
            delivery_ok &= d.ok();
            e2e.push(d);
        }
    }
    run.say(&format!(
        "gre-bench compare (run {}): {} writers, {} for {} s per run, {} rounds (peer, gre, peer, gre, ...), {} sessions{}",
        run.id,
        a.writers,
        if a.rate > 0.0 { format!("{} rows/s offered", a.rate) } else { "closed loop".into() },
        a.duration,
        a.rounds,
        a.db.sessions,
        if a.ws.is_some() {
            format!(", relay at {}", a.ws.as_deref().unwrap_or(""))
        } else if a.db.offline_players {
            ", database only, players offline (a push row per gre row)".into()
        } else {
            ", database only, players marked connected".into()
        }
    ));
    let (lines, ratios) = side_by_side(&runs);
    for l in &lines {
        run.say(l);
    }
    run.say("  per round = median of the ratios gre/peer within each round (its peer run, then its gre run)");
    let (breakdown_lines, breakdown_json) = cpu_breakdown(&runs);
    if !breakdown_lines.is_empty() {
        run.say("  PostgreSQL CPU per row by process (ms, median over rounds):");
        for l in &breakdown_lines {
            run.say(l);
        }
    }
    if a.rate > 0.0 {
        let short: Vec<&str> = runs
            .iter()
            .filter(|r| r.rows_per_s < 0.95 * a.rate)
            .map(|r| r.side.name())
            .collect();
        if !short.is_empty() {
            run.say(&format!(
                "  WARNING: {} of {} runs ({}) committed less than 95% of the offered rate: the database is at its ceiling, latencies are queueing",
                short.len(),
                runs.len(),
                short.join(", ")
            ));
        }
    }
    run.say("  commit = insert sent -> commit acknowledged to the writer; sent_to_listen = insert sent ->");
    run.say("  the tool's own LISTEN (on bench_peer or gre_relay) decoded the notification; pg_cpu = CPU of");
    run.say("  every process of the cluster (postmaster and children) over the writing window");
    if !e2e.is_empty() {
        let p50 = compare::median(e2e.iter().map(|d| d.e2e.p50 as f64 / 1e6).collect());
        let p99 = compare::median(e2e.iter().map(|d| d.e2e.p99 as f64 / 1e6).collect());
        run.say(&format!(
            "  gre end to end (insert sent -> WebSocket frame decoded) p50 {} ms, p99 {} ms; lost {lost_total}",
            compare::fmt(p50, "ms"),
            compare::fmt(p99, "ms")
        ));
        let relay = compare::median(
            runs.iter()
                .filter(|r| r.side == Side::Gre)
                .filter_map(|r| r.relay_cpu_s)
                .collect(),
        );
        run.say(&format!(
            "  relay CPU per gre run (median) {} s",
            compare::fmt(relay, "s")
        ));
    }
    run.say(&format!(
        "  load average {} before, {} after",
        load0.as_deref().unwrap_or("n/a"),
        load1.as_deref().unwrap_or("n/a")
    ));
    let errors: u64 = runs.iter().map(|r| r.errors).sum();
    let ok = errors == 0 && delivery_ok;
    let line = json!({
        "tool": "gre-bench", "mode": "compare", "ok": ok, "run": run.id,
        "writers": a.writers, "rate": a.rate, "duration_s": a.duration, "rounds": a.rounds,
        "sessions": a.db.sessions, "relay": a.ws, "offline_players": a.db.offline_players,
        "insert_errors": errors, "medians": ratios, "peer_read_back": a.peer_read_back,
        "pg_cpu_ms_per_row_by_process": breakdown_json,
        "runs": runs.iter().map(SideRun::json).collect::<Vec<_>>(),
        "e2e": e2e.iter().map(|d| json!({"e2e": d.e2e.json(), "lost": d.lost, "duplicated": d.duplicated})).collect::<Vec<_>>(),
        "load_average": [load0, load1],
    });
    run.finish().await;
    println!("{line}");
    Ok(ok)
}

pub async fn ceiling_mode(mut a: CeilingArgs) -> anyhow::Result<bool> {
    if a.smoke {
        (
            a.db.sessions,
            a.writers,
            a.duration,
            a.curve,
            a.curve_writers,
            a.curve_duration,
        ) = (20, vec![2], 1.0, vec![0.5], 2, 1.0);
    }
    let load0 = load_average();
    let mut run = DbRun::start(&a.db, true).await?;
    let mut closed = Vec::new();
    for &w in &a.writers {
        for side in [Side::Peer, Side::Gre] {
            closed.push(run.side(side, w, 0.0, a.duration, &[]).await?);
        }
    }
    // The curve's top: the peer's closed-loop rows/s with the curve's writer count.
    let top = match closed
        .iter()
        .find(|r| r.side == Side::Peer && r.writers == a.curve_writers)
    {
        Some(r) => r.rows_per_s,
        None => {
            run.side(Side::Peer, a.curve_writers, 0.0, a.duration, &[])
                .await?
                .rows_per_s
        }
    };
    let mut curve = Vec::new();
    for &f in &a.curve {
        let rate = (top * f).round().max(1.0);
        for side in [Side::Peer, Side::Gre] {
            curve.push(
                run.side(side, a.curve_writers, rate, a.curve_duration, &[])
                    .await?,
            );
        }
    }
    let load1 = load_average();
    run.say(&format!(
        "gre-bench ceiling (run {}): {} sessions{}",
        run.id,
        a.db.sessions,
        if a.db.offline_players {
            ", players offline"
        } else {
            ", players marked connected"
        }
    ));
    run.say(&format!(
        "  {:<6} {:>8} {:>10} {:>10} {:>10} {:>12} {:>10}",
        "side", "writers", "offered", "rows/s", "commit p50", "commit p99", "CPU ms/row"
    ));
    let row = |r: &SideRun| {
        format!(
            "  {:<6} {:>8} {:>10} {:>10.0} {:>10.3} {:>12.3} {:>10}",
            r.side.name(),
            r.writers,
            if r.rate > 0.0 {
                format!("{:.0}", r.rate)
            } else {
                "max".into()
            },
            r.rows_per_s,
            r.commit.p50 as f64 / 1e6,
            r.commit.p99 as f64 / 1e6,
            compare::fmt(r.pg_cpu_ms_per_row(), "ms")
        )
    };
    for r in closed.iter().chain(&curve) {
        run.say(&row(r));
    }
    let mut ratios = serde_json::Map::new();
    for &w in &a.writers {
        let get = |s: Side| {
            closed
                .iter()
                .find(|r| r.side == s && r.writers == w)
                .map(|r| r.rows_per_s)
        };
        let r = compare::ratio(get(Side::Gre), get(Side::Peer));
        run.say(&format!(
            "  ceiling with {w} writers: gre/peer = {}",
            r.map_or("n/a".into(), |r| format!("{:.0}%", r * 100.0))
        ));
        ratios.insert(
            format!("writers_{w}"),
            json!(r.map(|r| (r * 1000.0).round() / 1000.0)),
        );
    }
    run.say(&format!(
        "  load average {} before, {} after",
        load0.as_deref().unwrap_or("n/a"),
        load1.as_deref().unwrap_or("n/a")
    ));
    let errors: u64 = closed.iter().chain(&curve).map(|r| r.errors).sum();
    let line = json!({
        "tool": "gre-bench", "mode": "ceiling", "ok": errors == 0, "run": run.id,
        "sessions": a.db.sessions, "offline_players": a.db.offline_players,
        "closed_loop": closed.iter().map(SideRun::json).collect::<Vec<_>>(),
        "ceiling_ratio_gre_over_peer": ratios,
        "curve_writers": a.curve_writers, "curve_top_rows_per_s": top.round(),
        "curve": curve.iter().map(SideRun::json).collect::<Vec<_>>(),
        "insert_errors": errors, "load_average": [load0, load1],
    });
    run.finish().await;
    println!("{line}");
    Ok(errors == 0)
}

pub fn players(secret: &str, base: i64, n: u32) -> Vec<Who> {
    let ttl = Duration::from_secs(86_400);
    (0..n)
        .map(|i| Who::Player {
            index: i,
            token: gre_relay::auth::mint_player_token(secret, base + i64::from(i), ttl),
        })
        .collect()
}

pub fn staff(secret: &str, run: &str, n: u32) -> Vec<Who> {
    let ttl = Duration::from_secs(86_400);
    (0..n)
        .map(|k| Who::Staff {
            token: gre_relay::auth::mint_staff_token(
                secret,
                &format!("bench-{run}-staff-{k}"),
                Some("gre-bench"),
                ttl,
            ),
        })
        .collect()
}
