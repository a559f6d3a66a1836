//! Turns what the writers wrote and what the clients received into delivery counts and latency
//! percentiles.

use serde_json::{json, Value};

use crate::clients::Received;
use crate::db::Written;

/// Percentiles of a set of latencies, in nanoseconds (signed: the relay's share may be
/// negative when the notification reached the client before the writer saw its commit
/// acknowledged).
#[derive(Debug, Clone, Default)]
pub struct Dist {
    pub count: usize,
    pub min: i64,
    pub p50: i64,
    pub p90: i64,
    pub p99: i64,
    pub p999: i64,
    pub max: i64,
    pub negative: usize,
}

impl Dist {
    pub fn of(mut v: Vec<i64>) -> Dist {
        if v.is_empty() {
            return Dist::default();
        }
        v.sort_unstable();
        let at = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Dist {
            count: v.len(),
            min: v[0],
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: v[v.len() - 1],
            negative: v.iter().take_while(|x| **x < 0).count(),
        }
    }

    pub fn human(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (min {}, n={})",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.p999),
            ms(self.max),
            ms(self.min),
            self.count
        )
    }

    pub fn json(&self) -> Value {
        if self.count == 0 {
            return Value::Null;
        }
        let f = |x: i64| (x as f64 / 1e3).round() / 1e3; // ms, 3 decimals
        json!({
            "count": self.count, "min_ms": f(self.min), "p50_ms": f(self.p50),
            "p90_ms": f(self.p90), "p99_ms": f(self.p99), "p999_ms": f(self.p999),
            "max_ms": f(self.max), "negative": self.negative,
        })
    }
}

pub fn ms(ns: i64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

#[derive(Debug, Default)]
pub struct Delivery {
    pub rows_ok: u64,
    pub expected: u64,
    pub received: u64,
    pub unique: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Benchmark messages a player received from a session that is not its own.
    pub misrouted: u64,
    /// Rows whose insert reported an error but that arrived all the same.
    pub delivered_after_error: u64,
    /// Clients still missing messages, and one example (for the human output).
    pub clients_missing: u64,
    pub example_missing: Option<String>,
    /// insert sent -> commit acknowledged to the writer, every row (the database's share).
    pub commit: Dist,
    /// insert sent -> frame decoded, every delivery.
    pub e2e: Dist,
    /// commit acknowledged -> frame decoded, every delivery (players and staff).
    pub relay: Dist,
    pub relay_players: Dist,
    pub relay_staff: Dist,
    /// The tool's own LISTEN received the row's notification -> frame decoded: what the relay
    /// adds over a plain LISTEN client.
    pub over_listen: Dist,
    /// Rows whose notification the tool's own LISTEN saw.
    pub listened: u64,
    /// Per batch of `batch` rows (announcements): the last delivery after the statement was
    /// sent and after its commit was acknowledged.
    pub batches: Vec<(i64, i64)>,
}

/// Counts every (client, message) pair that should have arrived against what did.
/// `batch` > 0 groups rows by `seq / batch` (one announcement each).
pub fn analyse(
    written: &[Written],
    clients: &[Received],
    listened: &[(u32, u64)],
    sessions: u32,
    batch: u32,
) -> Delivery {
    let max_seq = written
        .iter()
        .map(|w| w.seq)
        .max()
        .map_or(0, |m| m as usize + 1);
    let mut heard: Vec<Option<u64>> = vec![None; max_seq];
    for (seq, at) in listened {
        if let Some(h) = heard.get_mut(*seq as usize) {
            h.get_or_insert(*at);
        }
    }
    let mut over_listen = Vec::new();
    let mut by_seq: Vec<Option<Written>> = vec![None; max_seq];
    let mut per_session = vec![0u64; sessions as usize];
    let mut d = Delivery::default();
    let mut commit = Vec::with_capacity(written.len());
    for w in written {
        by_seq[w.seq as usize] = Some(*w);
        if let Some(ack) = w.ack {
            d.rows_ok += 1;
            per_session[w.session as usize] += 1;
            commit.push(ack as i64 - w.sent as i64);
        }
    }
    d.commit = Dist::of(commit);
    let n_batches = if batch > 0 {
        (max_seq as u32).div_ceil(batch) as usize
    } else {
        0
    };
    let mut batches = vec![(i64::MIN, i64::MIN); n_batches];
    let (mut e2e, mut relay_p, mut relay_s) = (Vec::new(), Vec::new(), Vec::new());
    for c in clients {
        let expected = match c.player {
            Some(i) => per_session.get(i as usize).copied().unwrap_or(0),
            None => d.rows_ok,
        };
        d.expected += expected;
        d.received += c.receipts.len() as u64;
        let mut r = c.receipts.clone();
        r.sort_unstable();
        let mut got = 0u64;
        let mut last: Option<u32> = None;
        for (seq, at) in r {
            if last == Some(seq) {
                d.duplicated += 1;
                continue;
            }
            last = Some(seq);
            d.unique += 1;
            let Some(w) = by_seq.get(seq as usize).copied().flatten() else {
                d.misrouted += 1; // a number this run never wrote
                continue;
            };
            if let Some(i) = c.player {
                if w.session != i {
                    d.misrouted += 1;
                    continue;
                }
            }
            let at = at as i64;
            e2e.push(at - w.sent as i64);
            match w.ack {
                Some(ack) => {
                    got += 1;
                    let share = at - ack as i64;
                    if let Some(h) = heard[seq as usize] {
                        over_listen.push(at - h as i64);
                    }
                    if c.player.is_some() {
                        relay_p.push(share);
                    } else {
                        relay_s.push(share);
                    }
                    if let Some(b) = seq.checked_div(batch).map(|i| &mut batches[i as usize]) {
                        b.0 = b.0.max(at - w.sent as i64);
                        b.1 = b.1.max(share);
                    }
                }
                None => d.delivered_after_error += 1,
            }
        }
        if got < expected {
            d.clients_missing += 1;
            d.lost += expected - got;
            if d.example_missing.is_none() {
                d.example_missing = Some(match c.player {
                    Some(i) => format!("player {i}: {got} of {expected}"),
                    None => format!("a staff client: {got} of {expected}"),
                });
            }
        }
    }
    let mut relay_all = relay_p.clone();
    relay_all.extend_from_slice(&relay_s);
    d.e2e = Dist::of(e2e);
    d.relay = Dist::of(relay_all);
    d.relay_players = Dist::of(relay_p);
    d.relay_staff = Dist::of(relay_s);
    d.batches = batches;
    d.listened = heard.iter().filter(|h| h.is_some()).count() as u64;
    d.over_listen = Dist::of(over_listen);
    d
}

impl Delivery {
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.misrouted == 0
    }

    pub fn json(&self) -> Value {
        json!({
            "rows_committed": self.rows_ok,
            "expected": self.expected,
            "received": self.received,
            "unique": self.unique,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "misrouted": self.misrouted,
            "delivered_after_insert_error": self.delivered_after_error,
            "clients_missing_messages": self.clients_missing,
            "commit": self.commit.json(),
            "e2e": self.e2e.json(),
            "relay_share": self.relay.json(),
            "relay_share_players": self.relay_players.json(),
            "relay_share_staff": self.relay_staff.json(),
            "relay_over_listen": self.over_listen.json(),
            "rows_seen_by_own_listen": self.listened,
        })
    }
}
