//! The staff's live "waiting now" and "longest wait" counters (docs/analytics.md): after the hub
//! has published something (a message, a session change), at most once per [`EVERY`], this task
//! asks the database (`public.gre_chat_analytics_live()`) and, when the figures changed, sends
//! every staff socket of this relay an `analytics_live` frame. Bursts of events cost one query
//! per tick; a relay with no staff connected asks nothing.
//!
//! Must not touch: sockets, HTTP, the LISTEN connection; it reads the hub's counter and
//! broadcasts through the hub.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::db::{LiveWaits, Store};
use crate::protocol;
use crate::realtime::hub::Hub;

/// The coalescing period: the counters lag a change by at most this (plus the query).
pub const EVERY: Duration = Duration::from_secs(1);

pub(crate) struct LiveWaitsTask {
    store: Store,
    hub: Arc<Hub>,
}

impl LiveWaitsTask {
    pub(crate) fn new(store: Store, hub: Arc<Hub>) -> LiveWaitsTask {
        LiveWaitsTask { store, hub }
    }

    pub(crate) async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The hub's published-events counter when the figures were last read, and what was sent.
        let mut seen: Option<u64> = None;
        // Seconds grow by themselves (clients count them from longestWaitSince): not a change.
        let mut sent: Option<(i64, Option<String>)> = None;
        loop {
            tokio::select! {
                // Shutdown: stop at once; nothing to flush.
                _ = crate::shutdown::stopped(&mut shutdown) => break,
                // The coalescing tick: at most one query per period.
                _ = tick.tick() => {}
            }
            if !self.hub.has_staff() {
                // Nobody to tell; a staff member who connects later reads the REST report first.
                seen = None;
                sent = None;
                continue;
            }
            let published = self.hub.stats.published.get();
            if seen == Some(published) {
                continue;
            }
            match self.store.analytics_live().await {
                Ok(LiveWaits {
                    waiting_now,
                    longest_wait_since,
                    ..
                }) => {
                    seen = Some(published);
                    let now = (waiting_now, longest_wait_since);
                    if sent.as_ref() != Some(&now) {
                        let frame = protocol::analytics_live_frame(now.0, now.1.as_deref());
                        self.hub.broadcast(Utf8Bytes::from(frame), true);
                        sent = Some(now);
                    }
                }
                // Tried again at the next tick (seen is unchanged).
                Err(e) => tracing::debug!(error = %e, "live waiting figures not read"),
            }
        }
    }
}
