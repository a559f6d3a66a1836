//! The database side: the run's sessions, the writers (the staff-portal path: rows inserted
//! straight into gre_chat_messages), and the clean-up.

use anyhow::Context;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;
use uuid::Uuid;

use crate::clients::Marker;

pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    connect_as(url, "gre-bench").await
}

/// A connection with its own application_name, so that `compare`'s CPU breakdown
/// (breakdown.rs) can tell the tool's writers from its other connections.
pub async fn connect_as(url: &str, name: &str) -> anyhow::Result<tokio_postgres::Client> {
    let mut config = gre_relay::db::pg_config(url).context("DATABASE_URL")?;
    config.application_name(name);
    let (client, connection) = config
        .connect(gre_relay::db::tls_connector())
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
    /// The insert each writer runs with ($1 = session id, $2 = message text, and $3 = the row's
    /// id when the statement takes one).
    pub insert: String,
    /// The first row's number (several runs in one command use disjoint ranges).
    pub first_seq: u32,
}

/// The staff-portal path: a row straight into gre_chat_messages, with an id the run chose (so
/// the tool's own LISTEN recognises its rows in id-only hints).
pub const INSERT: &str =
    "insert into gre_chat_messages (session_id, sender, sender_id, message, id) \
                      values ($1, 'gre', 'bench', $2, $3)";

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
        let c = connect_as(&plan.url, "gre-bench writer").await?;
        let stmt = c.prepare(&plan.insert).await?;
        clients.push((c, stmt));
    }
    let plan = Arc::new(plan);
    let counter = Arc::new(AtomicU32::new(plan.first_seq));
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
                let id = plan.marker.id(seq);
                let sent = plan.origin.elapsed().as_nanos() as u64;
                // The gre insert names the row's id ($3); the peer schema's has an identity column.
                let result = if stmt.params().len() == 3 {
                    client
                        .execute(&stmt, &[&plan.sessions[session as usize], &text, &id])
                        .await
                } else {
                    client
                        .execute(&stmt, &[&plan.sessions[session as usize], &text])
                        .await
                };
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
            "insert into gre_chat_messages (session_id, sender, sender_id, message, id) \
             select s, 'gre', 'bench', m, i from unnest($1::uuid[], $2::text[], $3::uuid[]) as t(s, m, i)",
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
        let ids: Vec<Uuid> = (0..n).map(|i| marker.id(base + i)).collect();
        let sent = origin.elapsed().as_nanos() as u64;
        let result = client.execute(&stmt, &[&sessions, &texts, &ids]).await;
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

/// The tool's own LISTEN on the relay's channel, on its own thread: when each row's notification
/// reached a plain PostgreSQL client. Subtracted from a client's receive time, it leaves what the
/// relay itself adds (its own LISTEN connection goes through the same path in PostgreSQL).
pub struct Listen {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<Heard>>,
}

/// What the tool's LISTEN heard. A payload that carries the row's text (the peer's
/// `row_to_json`, or gre's full-message payloads) names the row directly. An identifier-only
/// payload (a hint with ids, which the contract allows) names at most the row's session: such
/// hits are matched to rows per session, in commit order (the writers go round robin over many
/// sessions, so two rows of one session are never in flight at once).
#[derive(Debug, Default)]
pub struct Heard {
    /// (message number, nanoseconds since origin) for payloads that quote the row's text.
    pub by_text: Vec<(u32, u64)>,
    /// (session index, nanoseconds since origin), one per mention of a run's session id in a
    /// payload that quoted no text.
    pub by_session: Vec<(u32, u64)>,
    /// Notifications received on the channel, whatever they held.
    pub notifications: u64,
}

impl Heard {
    /// (message number, when heard) for the rows in `written`, by text when the payloads quote
    /// it, else by session and commit order.
    pub fn resolve(&self, written: &[Written]) -> Vec<(u32, u64)> {
        if !self.by_text.is_empty() || self.by_session.is_empty() {
            return self.by_text.clone();
        }
        let mut per_session: std::collections::HashMap<u32, Vec<&Written>> =
            std::collections::HashMap::new();
        for w in written.iter().filter(|w| w.ack.is_some()) {
            per_session.entry(w.session).or_default().push(w);
        }
        for rows in per_session.values_mut() {
            rows.sort_by_key(|w| w.ack);
        }
        let mut next: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(self.by_session.len());
        for (session, at) in &self.by_session {
            let k = next.entry(*session).or_insert(0);
            if let Some(w) = per_session.get(session).and_then(|rows| rows.get(*k)) {
                out.push((w.seq, *at));
            }
            *k += 1;
        }
        out
    }

    /// How rows were recognised, for the report.
    pub fn matched_by(&self) -> &'static str {
        match (self.by_text.is_empty(), self.by_session.is_empty()) {
            (false, _) => "text",
            (true, false) => "session id",
            (true, true) => "none",
        }
    }
}

/// The run's session ids as they appear in payloads (lower-case hyphenated), to their index.
fn session_index(sessions: &[Uuid]) -> std::collections::HashMap<String, u32> {
    sessions
        .iter()
        .enumerate()
        .map(|(i, s)| (s.hyphenated().to_string(), i as u32))
        .collect()
}

/// Every run session id quoted in a payload, in order.
fn sessions_in(payload: &str, index: &std::collections::HashMap<String, u32>) -> Vec<u32> {
    payload
        .split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .filter(|t| t.len() == 36)
        .filter_map(|t| index.get(&t.to_ascii_lowercase()).copied())
        .collect()
}

impl Listen {
    pub fn start(
        url: &str,
        channel: &str,
        marker: Marker,
        sessions: &[Uuid],
        origin: Instant,
        read_back: Option<&'static str>,
    ) -> anyhow::Result<Listen> {
        let index = session_index(sessions);
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let url = url.to_owned();
        let channel = channel.to_owned();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("gre-bench-listen".into())
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(listen(
                        url, channel, marker, index, origin, flag, ready_tx, read_back,
                    ))
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Listen { stop, thread }),
            Ok(Err(e)) => anyhow::bail!("LISTEN: {e}"),
            Err(_) => anyhow::bail!("LISTEN: the listening thread ended"),
        }
    }

    /// What was heard (see [`Heard`]).
    pub fn finish(self) -> Heard {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default()
    }
}

/// The ids a hint-only payload names (`{"ids":["12",...]}`, bigint ids as text).
fn hinted_ids(payload: &str) -> Vec<i64> {
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| {
            v.get("ids").and_then(|ids| ids.as_array()).map(|ids| {
                ids.iter()
                    .filter_map(|i| i.as_str().and_then(|s| s.parse().ok()))
                    .collect()
            })
        })
        .unwrap_or_default()
}

// One argument per thing the LISTEN thread owns; a struct would only restate them.
#[allow(clippy::too_many_arguments)]
async fn listen(
    url: String,
    channel: String,
    marker: Marker,
    index: std::collections::HashMap<String, u32>,
    origin: Instant,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    read_back: Option<&'static str>,
) -> anyhow::Result<Heard> {
    use futures_util::StreamExt;
    let setup = async {
        let mut config = gre_relay::db::pg_config(&url)?;
        config.application_name("gre-bench listen");
        let listen = config.connect(gre_relay::db::tls_connector()).await?;
        // A hint-only reader (--peer-read-back): the rows are read back by id on a second
        // connection, as the relay reads them on its pool, with one prepared statement.
        let reader = match read_back {
            Some(sql) => {
                let c = connect_as(&url, "gre-bench read-back").await?;
                let stmt = c.prepare(sql).await?;
                Some((c, stmt))
            }
            None => None,
        };
        Ok::<_, anyhow::Error>((listen, reader))
    };
    let ((client, mut connection), reader) = match setup.await {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(format!("{e:#}")));
            return Err(e);
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let at = origin.elapsed().as_nanos() as u64;
                if tx.send((at, n)).is_err() {
                    break;
                }
            }
        }
    });
    if let Err(e) = client.batch_execute(&format!("listen {channel}")).await {
        let _ = ready.send(Err(e.to_string()));
        return Err(e.into());
    }
    let _ = ready.send(Ok(()));
    let mut heard = Heard::default();
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            Ok(Some((at, n))) => {
                heard.notifications += 1;
                if let Some((reader, stmt)) = &reader {
                    // Everything already received goes into one read (no waiting for more),
                    // as the relay's listener batches: the best a hint-only reader can do.
                    let mut ids = hinted_ids(n.payload());
                    while let Ok((_, more)) = rx.try_recv() {
                        heard.notifications += 1;
                        ids.extend(hinted_ids(more.payload()));
                    }
                    let rows = reader.query(stmt, &[&ids]).await?;
                    let at = origin.elapsed().as_nanos() as u64;
                    for r in rows {
                        let text: String = r.try_get(0)?;
                        heard
                            .by_text
                            .extend(marker.all_in(&text).into_iter().map(|s| (s, at)));
                    }
                    continue;
                }
                let by_text = marker.all_in(n.payload());
                if by_text.is_empty() {
                    heard.by_session.extend(
                        sessions_in(n.payload(), &index)
                            .into_iter()
                            .map(|s| (s, at)),
                    );
                } else {
                    heard.by_text.extend(by_text.into_iter().map(|s| (s, at)));
                }
            }
            Ok(None) => break,
            Err(_) => {}
        }
    }
    driver.abort();
    Ok(heard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(seq: u32, session: u32, ack: u64) -> Written {
        Written {
            seq,
            session,
            sent: ack - 1,
            ack: Some(ack),
        }
    }

    #[test]
    fn identifier_only_payloads_are_matched_per_session_in_commit_order() {
        let s = [Uuid::new_v4(), Uuid::new_v4()];
        let index = session_index(&s);
        let payload = format!(
            r#"{{"k":"m","id":"{}","sessionId":"{}","cursor":"7"}}"#,
            Uuid::new_v4(),
            s[1]
        );
        assert_eq!(sessions_in(&payload, &index), vec![1]);
        assert_eq!(sessions_in(&payload.to_uppercase(), &index), vec![1]);
        let heard = Heard {
            by_text: Vec::new(),
            by_session: vec![(1, 100), (0, 110), (1, 120)],
            notifications: 3,
        };
        // Session 1's rows by commit order: seq 5 (ack 20) before seq 3 (ack 30).
        let written = [w(3, 1, 30), w(4, 0, 25), w(5, 1, 20)];
        assert_eq!(heard.resolve(&written), vec![(5, 100), (4, 110), (3, 120)]);
        assert_eq!(heard.matched_by(), "session id");
    }
}
