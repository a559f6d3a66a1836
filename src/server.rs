//! Wires the relay together and runs it: migrations, pool, listener, hub, HTTP accept loop, and
//! graceful shutdown. `gre-relay serve` and the tests both start the relay through [`Relay`].
//!
//! The only module that builds `AppState` and starts the background tasks. Must not touch:
//! requests and frames (`http/`, `ws/` handle them).

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::admission::Admission;
use crate::attachments::Attachments;
use crate::auth::Verifier;
use crate::config::{AllowedOrigins, Settings};
use crate::db::{SharedRules, Store};
use crate::realtime::hub::Hub;
use crate::realtime::listener::{Listener, ListenerStatus};
use crate::realtime::notify::RelayKey;
use crate::realtime::presence::Presence;
use crate::shutdown::stopped;
use crate::state::{AppState, Deps, Metrics, Plumbing};

/// A running relay.
pub struct Relay {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// WebSocket buffers sized for many connections exchanging small messages (tungstenite's
/// defaults are 128 KiB each, per connection).
fn ws_config(settings: &Settings) -> WebSocketConfig {
    let max = settings.websocket.max_frame_bytes;
    WebSocketConfig::default()
        // Chat frames are small. The buffer never shrinks and grows to the largest frame read
        // (the `authenticate` frame with its token, usually): starting at 256 bytes instead of
        // 1 KiB saves 768 bytes on every idle connection (docs/performance.md, "Issue 12, idle
        // memory and relay CPU"); a 4000-character message takes a few more read calls.
        .read_buffer_size(256)
        .write_buffer_size(8192)
        .max_write_buffer_size(max * 4 + 1024 * 1024)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

impl Relay {
    /// Starts serving on `acceptor` (the TCP socket) against `database_url`, verifying tokens with the signing keys
    /// of `auth.supabase_url` and/or the legacy `jwt_secret` (given apart from the settings: with
    /// the embedded database the CLI generates it). Applies migrations first unless
    /// `database.migrate_on_start` is false.
    pub async fn start(
        settings: Settings,
        database_url: &str,
        jwt_secret: &str,
        acceptor: TcpListener,
    ) -> anyhow::Result<Relay> {
        if jwt_secret.is_empty() && settings.auth.supabase_base_url().is_none() {
            anyhow::bail!("no way to verify access tokens: set SUPABASE_URL (signing keys) or SUPABASE_JWT_SECRET (legacy secret)");
        }
        if settings.database.migrate_on_start {
            crate::db::migrate::run(database_url).await?;
        }
        let store = Store::connect(
            database_url,
            settings.database.pool_size,
            Duration::from_secs(settings.database.pool_timeout_seconds.max(1)),
        )?;
        store.ping().await?;
        let instance_id = Uuid::new_v4();
        // The database enforces these for every writer (direct writes through Supabase too), so
        // they must be in place before the first client is served.
        store
            .store_shared_rules(
                &SharedRules {
                    chat_enabled_by_default: settings.chat.enabled_by_default,
                    player_messages_per_second: settings.websocket.frames_per_second,
                    player_messages_burst: settings.websocket.frames_burst,
                },
                &format!("gre-relay {instance_id}"),
            )
            .await?;
        // Relayed events are signed with it; without it the relay could not tell them from forgeries.
        let shared_key = store.relay_event_key().await?;
        // Download links are signed with a key derived from it, so every replica accepts them.
        let attachments = Arc::new(
            Attachments::new(
                &settings.storage,
                &settings.database.embedded.dir,
                &shared_key,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        tracing::info!(backend = attachments.backend(), "attachment storage ready");
        let relay_key = Arc::new(
            RelayKey::new(shared_key)
                .ok_or_else(|| anyhow::anyhow!("gre_relay.relay_event_key is too short"))?,
        );
        let (stop, shutdown) = watch::channel(false);
        let hub = Hub::new();
        let status = Arc::new(ListenerStatus::default());
        let presence = Presence::new(store.clone(), instance_id);
        presence.register().await?;
        // Fetches the signing keys once (bounded; a failure is logged, not fatal).
        let verifier = Verifier::start(&settings.auth, jwt_secret).await?;
        let rest_limits = crate::rate_limit::PerCaller::new(
            settings.websocket.frames_per_second,
            settings.websocket.frames_burst,
        );
        let state = Arc::new(AppState {
            metrics: Metrics::new(&hub.stats, &status, &verifier),
            plumbing: Plumbing {
                ws_config: ws_config(&settings),
                admission: Admission::new(&settings),
                origins: AllowedOrigins::parse(&settings.server.allowed_origins)
                    .map_err(|e| anyhow::anyhow!("server.allowed_origins: {e}"))?,
                shutdown: shutdown.clone(),
                tasks: TaskTracker::new(),
                rest_limits,
            },
            deps: Deps {
                verifier,
                store: store.clone(),
                hub: hub.clone(),
                listener: status.clone(),
                presence: presence.clone(),
                instance_id,
                relay_key: relay_key.clone(),
                attachments: attachments.clone(),
            },
            settings,
        });
        let listener_task = tokio::spawn(
            Listener::new(
                database_url.to_owned(),
                store,
                hub,
                status.clone(),
                instance_id,
                relay_key,
            )
            .run(shutdown.clone()),
        );
        let presence_task = tokio::spawn(presence.run(shutdown.clone()));
        // Uploads never sent are removed after storage.unused_upload_seconds.
        let sweep_task =
            tokio::spawn(attachments.run_sweeper(state.deps.store.clone(), shutdown.clone()));
        let live_waits_task = tokio::spawn(
            crate::realtime::live_waits::LiveWaitsTask::new(
                state.deps.store.clone(),
                state.deps.hub.clone(),
            )
            .run(shutdown.clone()),
        );
        // Do not accept clients before LISTEN is in place: they would miss events.
        let ready = tokio::time::timeout(Duration::from_secs(10), async {
            while !status.is_connected() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        if ready.is_err() {
            tracing::warn!(
                "the database listener is not connected yet; serving anyway, health reports it"
            );
        }
        let addr = acceptor.local_addr()?;
        let task = tokio::spawn(accept_loop(
            acceptor,
            state.clone(),
            vec![listener_task, presence_task, sweep_task, live_waits_task],
        ));
        Ok(Relay { addr, stop, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes WebSockets with 1001, lets requests in flight finish (within
    /// `server.shutdown_timeout_seconds`), then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Runs until `shutdown` is called from elsewhere (never, for the binary's own use).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Accepts until shutdown, then drains connections and waits for `background` tasks (listener,
/// presence) to finish their own shutdown.
async fn accept_loop(
    acceptor: TcpListener,
    state: Arc<AppState>,
    background: Vec<tokio::task::JoinHandle<()>>,
) {
    // HTTP connections, tracked so shutdown can wait for requests in flight. (hyper-util's
    // GracefulShutdown does not take upgradeable connections, hence this small equivalent.)
    let http_conns = TaskTracker::new();
    let mut shutdown = state.plumbing.shutdown.clone();
    let mut http = hyper::server::conn::http1::Builder::new();
    // Slow or idle clients let go: the header timeout also ends a keep-alive connection that
    // sends no next request; the head size is capped (431 beyond).
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(state.settings.server.header_read_timeout())
        .max_buf_size(state.settings.server.max_header_bytes.max(8192))
        .max_header_size(state.settings.server.max_header_bytes);
    loop {
        tokio::select! {
            accepted = acceptor.accept() => {
                let (tcp, _peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: pause instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Over the plain HTTP budget: closed at once, before it costs more than a
                // descriptor for a moment (admission.rs).
                let Some(http_permit) = state.plumbing.admission.http_connection() else {
                    state.metrics.refused_connections.inc();
                    drop(tcp);
                    continue;
                };
                // Chat frames are small and latency matters more than packet count.
                let _ = tcp.set_nodelay(true);
                let app = state.clone();
                let service = service_fn(move |req| crate::http::handle(req, app.clone()));
                let conn = http.serve_connection(TokioIo::new(tcp), service).with_upgrades();
                let mut stop = state.plumbing.shutdown.clone();
                http_conns.spawn(async move {
                    // Held while this is an HTTP connection; an upgrade ends `conn` and the
                    // WebSocket is counted by its own permit.
                    let _http_permit = http_permit;
                    tokio::pin!(conn);
                    let result = tokio::select! {
                        r = conn.as_mut() => r,
                        _ = stopped(&mut stop) => {
                            // Finish the request in flight, then close; an upgraded WebSocket
                            // watches the same signal itself.
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "http connection ended with an error");
                    }
                });
            }
            _ = stopped(&mut shutdown) => break,
        }
    }
    drop(acceptor);
    // Authenticated WebSockets hear of the shutdown through their queues (they keep no watch
    // receiver of their own: docs/performance.md, idle memory).
    state.deps.hub.close_all();
    let timeout = Duration::from_secs(state.settings.server.shutdown_timeout_seconds.max(1));
    state.plumbing.tasks.close();
    http_conns.close();
    let drained = tokio::time::timeout(timeout, async {
        tokio::join!(http_conns.wait(), state.plumbing.tasks.wait());
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            ?timeout,
            "shutdown timeout: connections still open are left to end with the process"
        );
    }
    // The listener and presence tasks finish their own shutdown (presence removes this relay's
    // rows); bounded too, since the database may be the thing that is gone.
    let finish = async {
        for task in background {
            let _ = task.await;
        }
    };
    if tokio::time::timeout(timeout, finish).await.is_err() {
        tracing::warn!("background tasks did not finish in time; presence expires by staleness");
    }
}
