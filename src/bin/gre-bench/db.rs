//! The database side: the run's sessions, the writers (the staff-portal path: rows inserted
//! straight into gre_chat_messages), and the clean-up.

use anyhow::Context;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;
use uuid::Uuid;

use crate::clients::Marker;

pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let mut config = gre_relay::store::pg_config(url).context("DATABASE_URL")?;
    config.application_name("gre-bench");
    let (client, connection) = config
        .connect(gre_relay::store::tls_connector())
        .await
        .context("connecting to the database")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("gre-bench: database connection: {e}");
        }
    });
    Ok(client)
}

/// Opens one `active` session for each of the players `base .. base + n` and returns their ids
/// in player order. (Active, not waiting: the first GRE row must not also change the session.)
pub async fn create_sessions(
    client: &tokio_postgres::Client,
    base: i64,
    n: u32,
) -> anyhow::Result<Vec<Uuid>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "insert into gre_chat_sessions (player_id, status) \
             select g, 'active' from generate_series($1::bigint, $2::bigint) g \
             returning id, player_id",
            &[&base, &(base + i64::from(n) - 1)],
        )
        .await
        .context("creating the run's sessions")?;
    let mut ids = vec![Uuid::nil(); n as usize];
    for r in rows {
        let player: i64 = r.get(1);
        ids[(player - base) as usize] = r.get(0);
    }
    Ok(ids)
}

/// Deletes the run's rows (messages, push notifications, sessions). `delete` false: closes the
/// sessions and keeps everything for inspection.
pub async fn clean_up(
    client: &tokio_postgres::Client,
    sessions: &[Uuid],
    base: i64,
    delete: bool,
) -> anyhow::Result<()> {
    if sessions.is_empty() {
        return Ok(());
    }
    let last = base + sessions.len() as i64 - 1;
    if delete {
        client
            .execute(
                "delete from gre_chat_messages where session_id = any($1)",
                &[&sessions],
            )
            .await?;
        client
            .execute(
                "delete from push_notifications where player_id between $1 and $2",
                &[&base, &last],
            )
            .await?;
        client
            .execute(
                "delete from gre_chat_sessions where id = any($1)",
                &[&sessions],
            )
            .await?;
    } else {
        client
            .execute(
                "update gre_chat_sessions set status = 'closed', closed_at = now() \
                 where id = any($1) and status <> 'closed'",
                &[&sessions],
            )
            .await?;
    }
    Ok(())
}

/// One row written: its number, its session (index into the run's sessions), and when the
/// insert was sent and when its commit was acknowledged (nanoseconds since the run's origin;
/// `ack` is None when the insert failed).
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub seq: u32,
    pub session: u32,
    pub sent: u64,
    pub ack: Option<u64>,
}

#[derive(Debug, Default)]
pub struct WriterReport {
    pub written: Vec<Written>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Largest delay between a row's scheduled time and its insert being sent (open loop: a
    /// writer that falls behind catches up, and this says by how much it was behind).
    pub max_behind_ms: f64,
    /// When the writers started and stopped (nanoseconds since origin).
    pub started: u64,
    pub stopped: u64,
}

pub struct RatePlan {
    pub url: String,
    pub sessions: Arc<Vec<Uuid>>,
    pub writers: u32,
    /// Rows per second over all writers; 0 = as fast as each writer can (closed loop).
    pub rate: f64,
    pub duration: Duration,
    pub marker: Marker,
    pub origin: Instant,
}

const INSERT: &str = "insert into gre_chat_messages (session_id, sender, sender_id, message) \
                      values ($1, 'gre', 'bench', $2)";

/// Runs the writers on their own thread and runtime (so that their commit timestamps are not
/// delayed behind the thousands of client sockets), and returns what they wrote.
pub fn run_writers(plan: RatePlan) -> anyhow::Result<WriterReport> {
    std::thread::Builder::new()
        .name("gre-bench-writers".into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(writers(plan))
        })?
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?
}

async fn writers(plan: RatePlan) -> anyhow::Result<WriterReport> {
    let mut clients = Vec::new();
    for _ in 0..plan.writers.max(1) {
        let c = connect(&plan.url).await?;
        let stmt = c.prepare(INSERT).await?;
        clients.push((c, stmt));
    }
    let plan = Arc::new(plan);
    let counter = Arc::new(AtomicU32::new(0));
    let w = clients.len() as f64;
    let started_at = Instant::now();
    let deadline = started_at + plan.duration;
    let period = (plan.rate > 0.0).then(|| Duration::from_secs_f64(w / plan.rate));
    let tasks = clients.into_iter().enumerate().map(|(i, (client, stmt))| {
        let plan = plan.clone();
        let counter = counter.clone();
        async move {
            let mut report = WriterReport::default();
            let n_sessions = plan.sessions.len() as u32;
            // Writers start staggered over one period, so their rows interleave evenly.
            let mut tick = period.map(|p| {
                let start = started_at + p.mul_f64(i as f64 / w);
                let mut t = tokio::time::interval_at(start.into(), p);
                // Burst: a writer that fell behind sends the missed rows at once (catch up),
                // so the offered rate holds over the run; `max_behind_ms` reports the slip.
                t.set_missed_tick_behavior(MissedTickBehavior::Burst);
                t
            });
            loop {
                let scheduled = match tick.as_mut() {
                    Some(t) => Some(t.tick().await.into_std()),
                    None => None,
                };
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                if let Some(s) = scheduled {
                    let behind = now.saturating_duration_since(s).as_secs_f64() * 1000.0;
                    report.max_behind_ms = report.max_behind_ms.max(behind);
                }
                let seq = counter.fetch_add(1, Ordering::Relaxed);
                let session = seq % n_sessions;
                let text = plan.marker.text(seq);
                let sent = plan.origin.elapsed().as_nanos() as u64;
                let result = client
                    .execute(&stmt, &[&plan.sessions[session as usize], &text])
                    .await;
                let ack = plan.origin.elapsed().as_nanos() as u64;
                match result {
                    Ok(_) => report.written.push(Written {
                        seq,
                        session,
                        sent,
                        ack: Some(ack),
                    }),
                    Err(e) => {
                        report.errors += 1;
                        report.first_error.get_or_insert_with(|| format!("{e:#}"));
                        report.written.push(Written {
                            seq,
                            session,
                            sent,
                            ack: None,
                        });
                    }
                }
            }
            report
        }
    });
    let started = plan.origin.elapsed().as_nanos() as u64;
    let reports = futures_util::future::join_all(tasks).await;
    let stopped = plan.origin.elapsed().as_nanos() as u64;
    let mut all = WriterReport {
        started,
        stopped,
        ..WriterReport::default()
    };
    for r in reports {
        all.written.extend(r.written);
        all.errors += r.errors;
        if all.first_error.is_none() {
            all.first_error = r.first_error;
        }
        all.max_behind_ms = all.max_behind_ms.max(r.max_behind_ms);
    }
    Ok(all)
}

/// One statement inserting a row into every session of the run (an announcement), `repeat`
/// times, `gap` apart.
pub async fn announce(
    client: &tokio_postgres::Client,
    sessions: &[Uuid],
    marker: &Marker,
    origin: Instant,
    repeat: u32,
    gap: Duration,
) -> anyhow::Result<WriterReport> {
    let stmt = client
        .prepare(
            "insert into gre_chat_messages (session_id, sender, sender_id, message) \
             select s, 'gre', 'bench', m from unnest($1::uuid[], $2::text[]) as t(s, m)",
        )
        .await?;
    let mut report = WriterReport {
        started: origin.elapsed().as_nanos() as u64,
        ..WriterReport::default()
    };
    let n = sessions.len() as u32;
    for r in 0..repeat {
        if r > 0 {
            tokio::time::sleep(gap).await;
        }
        let base = r * n;
        let texts: Vec<String> = (0..n).map(|i| marker.text(base + i)).collect();
        let sent = origin.elapsed().as_nanos() as u64;
        let result = client.execute(&stmt, &[&sessions, &texts]).await;
        let ack = origin.elapsed().as_nanos() as u64;
        let ack = match result {
            Ok(_) => Some(ack),
            Err(e) => {
                report.errors += 1;
                report.first_error.get_or_insert_with(|| format!("{e:#}"));
                None
            }
        };
        report.written.extend((0..n).map(|i| Written {
            seq: base + i,
            session: i,
            sent,
            ack,
        }));
    }
    report.stopped = origin.elapsed().as_nanos() as u64;
    Ok(report)
}
