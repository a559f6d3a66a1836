//! Rate limiting: a token bucket per WebSocket connection, and one per caller (token subject)
//! for REST writes. Both use `websocket.frames_per_second` and `websocket.frames_burst`.
//!
//! A leaf: imports nothing of the crate; counts only.

use std::collections::HashMap;
use std::sync::Mutex;
use tokio::time::Instant;

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
    }

    fn is_full(&mut self) -> bool {
        self.refill();
        self.tokens >= self.burst
    }
}

/// Past this many callers, buckets that have refilled completely are forgotten (a full bucket
/// is the same as a new one, so forgetting it changes nothing).
const SOFT_LIMIT: usize = 10_000;

/// One bucket per caller, shared by all REST requests of this process.
pub struct PerCaller {
    rate: f64,
    burst: f64,
    /// A std mutex: held for a map lookup, never across an await.
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl PerCaller {
    pub fn new(rate: f64, burst: f64) -> Self {
        PerCaller {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn take(&self, caller: &str) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > SOFT_LIMIT {
            buckets.retain(|_, b| !b.is_full());
        }
        buckets
            .entry(caller.to_owned())
            .or_insert_with(|| TokenBucket::new(self.rate, self.burst))
            .take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_the_rate() {
        let mut b = TokenBucket::new(2.0, 3.0);
        assert!(b.take() && b.take() && b.take());
        assert!(!b.take());
        tokio::time::advance(std::time::Duration::from_millis(500)).await;
        assert!(b.take());
        assert!(!b.take());
    }

    #[tokio::test(start_paused = true)]
    async fn callers_have_their_own_buckets() {
        let limits = PerCaller::new(1.0, 1.0);
        assert!(limits.take("player:1"));
        assert!(!limits.take("player:1"));
        assert!(limits.take("player:2"));
    }
}
