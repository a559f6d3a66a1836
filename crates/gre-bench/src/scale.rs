//! `scale`: 1, 2, 4 ... relays on one database, the clients split among them, the same insert
//! load: deliveries, lost, the database's CPU and each relay's LISTEN backend's CPU.

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::clients::{self, FleetOptions, Marker, Target, Who};
use crate::compare;
use crate::db;
use crate::modes::{players, staff};
use crate::report;
use crate::sys;

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The database the relays share (migrated by the first relay).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// The JWT secret the relays are given and the tool mints tokens with.
    #[arg(long, env = "SUPABASE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// Relay counts to measure, one configuration each.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    relays: Vec<u32>,
    /// Player sockets in total (each with its own session), split evenly among the relays.
    #[arg(long, default_value_t = 8000)]
    clients: u32,
    /// Staff sockets in total (each receives every row), split among the relays.
    #[arg(long, default_value_t = 4)]
    staff: u32,
    /// Rows per second over all writers.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 4)]
    writers: u32,
    #[arg(long, default_value_t = 3.0)]
    settle: f64,
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// The gre-relay binary. Default: `gre-relay` next to this tool.
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Print only the final JSON line.
    #[arg(long)]
    json_only: bool,
    /// CI preset: 1 and 2 relays, 20 clients, 2 staff, 100 rows/s for 2 s.
    #[arg(long)]
    smoke: bool,
}

/// One relay process the tool started (and stops).
struct Relay {
    child: tokio::process::Child,
    pid: u32,
    port: u16,
}

fn free_port() -> anyhow::Result<u16> {
    // Bind port 0, read the port, release it: the relay binds it right after (a race with
    // another process is possible but unlikely on a test machine; the health wait catches it).
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

async fn healthy(port: u16) -> bool {
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    else {
        return false;
    };
    let req = "GET /api/gre-chat/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
    matches!(read, Ok(Ok(_))) && buf.starts_with(b"HTTP/1.1 200")
}

async fn spawn_relay(
    bin: &PathBuf,
    url: &str,
    secret: &str,
    log: PathBuf,
) -> anyhow::Result<Relay> {
    let port = free_port()?;
    let file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = tokio::process::Command::new(bin)
        .arg("serve")
        .env("DATABASE_URL", url)
        .env("SUPABASE_JWT_SECRET", secret)
        .env("PORT", port.to_string())
        .env("GRE_SERVER__HOST", "127.0.0.1")
        .env("GRE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id().context("the relay ended at once")?;
    let start = Instant::now();
    while !healthy(port).await {
        if let Ok(Some(status)) = child.try_wait() {
            bail!("relay exited ({status}); see {}", log.display());
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!(
                "relay on port {port} not healthy after 60 s; see {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Relay { child, pid, port })
}

async fn stop_relay(mut r: Relay) {
    // SIGTERM first: the relay closes its sockets and removes its presence rows.
    if let Ok(pid) = i32::try_from(r.pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(15), r.child.wait())
        .await
        .is_err()
    {
        let _ = r.child.kill().await;
    }
}

/// The pids of the LISTEN backends (application_name "gre-relay listener") of the relays the
/// tool started: those connected since `since` (the database's clock before the first relay
/// started), so that another relay on the same database is not counted.
async fn listener_backends(
    client: &tokio_postgres::Client,
    since: &str,
) -> anyhow::Result<Vec<u32>> {
    let rows = client
        .query(
            "select pid from pg_stat_activity where application_name = 'gre-relay listener' \
             and datname = current_database() and backend_start >= $1::text::timestamptz",
            &[&since],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| u32::try_from(r.get::<_, i32>(0)).ok())
        .collect())
}

fn cpu_sum(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|p| sys::cpu_seconds(*p)).sum()
}

pub async fn scale_mode(mut a: ScaleArgs, nofile: Option<u64>) -> anyhow::Result<bool> {
    if a.smoke {
        (
            a.relays, a.clients, a.staff, a.rate, a.duration, a.settle, a.drain,
        ) = (vec![1, 2], 20, 2, 100.0, 2.0, 1.0, 5.0);
    }
    anyhow::ensure!(a.clients > 0, "--clients must be at least 1");
    let bin = match &a.relay_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the tool's directory")?
            .join("gre-relay"),
    };
    if let Some(limit) = nofile {
        if limit < u64::from(a.clients + a.staff) * 2 + 256 {
            eprintln!("gre-bench: warning: open-file limit {limit} is low for {} clients (the relays inherit it)", a.clients);
        }
    }
    let say = |l: &str| {
        if !a.json_only {
            println!("{l}");
        }
    };
    let progress = |l: &str| {
        if !a.json_only {
            eprintln!("gre-bench: {l}");
        }
    };
    let admin = db::connect(&a.database_url).await?;
    let cluster = compare::cluster(&admin).await?;
    let load0 = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut results = Vec::new();
    let mut ok = true;
    for &n in &a.relays {
        anyhow::ensure!(n > 0, "--relays: each count must be at least 1");
        let id = format!("{:08x}", rand::random::<u32>());
        let marker = Marker::new(&id);
        let origin = Instant::now();
        let base = 1_000_000_000_000 + i64::from(rand::random::<u32>()) * 100_000;
        progress(&format!("{n} relay(s): starting"));
        let since: String = admin
            .query_one("select clock_timestamp()::text", &[])
            .await?
            .get(0);
        let mut relays = Vec::new();
        for i in 0..n {
            let log = std::env::temp_dir().join(format!("gre-bench-relay-{id}-{i}.log"));
            match spawn_relay(&bin, &a.database_url, &a.jwt_secret, log).await {
                Ok(r) => relays.push(r),
                Err(e) => {
                    for r in relays {
                        stop_relay(r).await;
                    }
                    return Err(e);
                }
            }
        }
        let sessions = Arc::new(db::create_sessions(&admin, base, a.clients).await?);
        // Players i and staff k go to relay i % n (k % n).
        let mut groups: Vec<Vec<Who>> = vec![Vec::new(); n as usize];
        for (i, w) in players(&a.jwt_secret, base, a.clients)
            .into_iter()
            .enumerate()
        {
            groups[i % n as usize].push(w);
        }
        for (k, w) in staff(&a.jwt_secret, &id, a.staff).into_iter().enumerate() {
            groups[k % n as usize].push(w);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let counter = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        let (mut connected, mut failed) = (0, 0);
        let t0 = Instant::now();
        for (r, who) in relays.iter().zip(groups) {
            let target =
                Target::resolve(&format!("ws://127.0.0.1:{}/ws", r.port), Vec::new()).await?;
            let opts = FleetOptions {
                target,
                concurrency: 200,
                handshake_timeout: Duration::from_secs(120),
                marker: marker.clone(),
                origin,
                stop: stop_rx.clone(),
                progress_every: 0,
                counter: counter.clone(),
            };
            let f = clients::connect_all(who, &opts).await;
            connected += f.connected;
            failed += f.failed;
            if let Some(e) = &f.first_error {
                progress(&format!("a client failed: {e}"));
            }
            handles.extend(f.handles);
        }
        progress(&format!(
            "{connected} clients connected ({failed} failed) in {:.1} s; writing",
            t0.elapsed().as_secs_f64()
        ));
        tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
        let listeners = listener_backends(&admin, &since).await?;
        let relay_pids: Vec<u32> = relays.iter().map(|r| r.pid).collect();
        let pg0 = cluster.and_then(|c| c.cpu_seconds());
        let l0: Vec<Option<f64>> = listeners.iter().map(|p| sys::cpu_seconds(*p)).collect();
        let r0 = cpu_sum(&relay_pids);
        let plan = db::RatePlan {
            url: a.database_url.clone(),
            sessions: sessions.clone(),
            writers: a.writers,
            rate: a.rate,
            duration: Duration::from_secs_f64(a.duration),
            marker: marker.clone(),
            origin,
            insert: db::INSERT.to_owned(),
            first_seq: 0,
        };
        let writes = tokio::task::spawn_blocking(move || db::run_writers(plan)).await??;
        let rows = writes.written.iter().filter(|w| w.ack.is_some()).count() as u64;
        let expected = rows * (1 + u64::from(a.staff));
        let start = Instant::now();
        while counter.load(Ordering::Relaxed) < expected
            && start.elapsed() < Duration::from_secs_f64(a.drain)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pg1 = cluster.and_then(|c| c.cpu_seconds());
        let l1: Vec<Option<f64>> = listeners.iter().map(|p| sys::cpu_seconds(*p)).collect();
        let r1 = cpu_sum(&relay_pids);
        let write_s = (writes.stopped.saturating_sub(writes.started)) as f64 / 1e9;
        // The CPU window: the writing plus the drain that follows it.
        let window_s = start.elapsed().as_secs_f64() + write_s;
        let _ = stop_tx.send(true);
        let mut received = Vec::new();
        for h in handles {
            if let Ok(r) = h.await {
                received.push(r);
            }
        }
        let d = report::analyse(&writes.written, &received, &[], a.clients, 0);
        if let Err(e) = db::clean_up(&admin, &sessions, base, true).await {
            progress(&format!("clean-up failed: {e:#}"));
        }
        for r in relays {
            stop_relay(r).await;
        }
        let listen_cpu: Vec<f64> = l0
            .iter()
            .zip(&l1)
            .filter_map(|(x, y)| Some(y.as_ref()? - x.as_ref()?))
            .collect();
        let pg_cpu = pg0.zip(pg1).map(|(x, y)| y - x);
        let this_ok = d.ok() && writes.errors == 0 && failed == 0;
        ok &= this_ok;
        let per_row_ms = |s: f64| {
            if rows > 0 {
                s * 1000.0 / rows as f64
            } else {
                0.0
            }
        };
        let listen_mean = compare::median(listen_cpu.clone());
        say(&format!(
            "{n} relay(s), {} players + {} staff ({:.0} clients per relay), {} rows/s for {} s:",
            a.clients,
            a.staff,
            f64::from(a.clients + a.staff) / f64::from(n),
            a.rate,
            a.duration
        ));
        say(&format!(
            "  rows {rows} ({:.0}/s, {} errors); deliveries expected {}, unique {}, LOST {}, DUPLICATED {}; clients failed {failed}",
            rows as f64 / write_s.max(1e-9), writes.errors, d.expected, d.unique, d.lost, d.duplicated
        ));
        say(&format!("  commit       {}", d.commit.human()));
        say(&format!("  end to end   {}", d.e2e.human()));
        say(&format!(
            "  PostgreSQL   {} s CPU over {:.1} s ({} ms per row); {} LISTEN backends: median {} s each ({} ms per row)",
            compare::fmt(pg_cpu, "s"),
            window_s,
            compare::fmt(pg_cpu.map(per_row_ms), "ms"),
            listeners.len(),
            compare::fmt(listen_mean, "s"),
            compare::fmt(listen_mean.map(per_row_ms), "ms"),
        ));
        say(&format!(
            "  relays       {} s CPU in total",
            compare::fmt(r0.zip(r1).map(|(x, y)| y - x), "s")
        ));
        results.push(json!({
            "relays": n, "ok": this_ok, "players": a.clients, "staff": a.staff,
            "rows": rows, "rows_per_s": (rows as f64 / write_s.max(1e-9)).round(), "insert_errors": writes.errors, "clients_failed": failed,
            "delivery": d.json(),
            "pg_cpu_s": pg_cpu, "pg_cpu_ms_per_row": pg_cpu.map(per_row_ms),
            "listen_backends": listeners.len(), "listen_backend_cpu_s": listen_cpu,
            "relays_cpu_s": r0.zip(r1).map(|(x, y)| y - x), "window_s": window_s,
        }));
    }
    let load1 = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    say(&format!(
        "load average {} before, {} after",
        load0
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        load1
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    println!(
        "{}",
        json!({"tool": "gre-bench", "mode": "scale", "ok": ok, "rate": a.rate, "duration_s": a.duration,
               "writers": a.writers, "configurations": results})
    );
    Ok(ok)
}
