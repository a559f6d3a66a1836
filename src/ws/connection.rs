//! One task per WebSocket client: authenticate, then one `select!` over the socket, the hub
//! queue, the heartbeat, the lag signal and shutdown. Owns the connection's subscriptions and the
//! per-session position used to drop what this client was already sent.
//!
//! Must not touch: other connections (only the hub fans out), the LISTEN connection.

use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use uuid::Uuid;

use crate::admission::SocketPermit;
use crate::auth::{Identity, Verified};
use crate::chat;
use crate::db::StoreError;
use crate::protocol::{self, ClientFrame, Cursor, ErrorCode, ProtocolError};
use crate::rate_limit::TokenBucket;
use crate::realtime::hub::{Closed, Outbound, Recv, Registration};
use crate::realtime::notify::{Origin, RelayedEvent, Side};
use crate::realtime::presence::{Kind, PresenceGuard};
use crate::shutdown::stopped;

mod frames;
mod held;
use crate::state::AppState;
use held::{Allowed, Positions};

/// Close codes (docs/protocol.md).
pub mod close_code {
    /// No valid `authenticate` in time, or too many bad tokens.
    pub const AUTH_FAILED: u16 = 4001;
    /// The client did not read fast enough; reconnect and resume from the last cursor.
    pub const LAGGING: u16 = 4008;
    /// The peer stopped answering pings.
    pub const HEARTBEAT_TIMEOUT: u16 = 4002;
    /// The token ran out and was not refreshed in time (an `error` `token_expired` comes first).
    pub const TOKEN_EXPIRED: u16 = 4003;
    /// RFC 6455 policy violation: here, more sockets for one identity than allowed.
    pub const POLICY: u16 = 1008;
}

/// Bad tokens tolerated on one connection before it is closed.
const MAX_AUTH_FAILURES: u32 = 3;
/// Queued events written per flush: batches frames into fewer syscalls under load.
const WRITE_BATCH: usize = 64;
/// How long live events wait after `authenticated` for the client's first frame (see `run`).
const RESUME_GRACE: Duration = Duration::from_millis(250);
/// Page size of a subscribe backfill.
const BACKFILL_PAGE: i64 = 500;

type Sink<S> = futures_util::stream::SplitSink<WebSocketStream<S>, Message>;

/// Serves one upgraded connection until it closes. `permit` is its slot in the connection
/// budgets; once the client has authenticated it moves to that identity's budget.
///
/// Not an `async fn`, and the state is built before the future exists: an `async fn` keeps its
/// arguments' storage in its state for its whole life, next to the locals they are moved into
/// (the `WebSocketStream` alone is about 300 bytes). The `async move` block below uses what it
/// captures in place, so each piece is stored once in every idle connection's task.
pub(crate) fn serve<S>(
    ws: WebSocketStream<S>,
    app: Arc<AppState>,
    permit: &mut SocketPermit,
) -> impl std::future::Future<Output = ()> + Send + '_
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, mut stream) = ws.split();
    let write_timeout = app.settings.websocket.write_timeout();
    let mut conn = Connection {
        app,
        sink,
        write_timeout,
        last_flush: None,
    };
    async move {
        // Everything before the loop runs boxed: its await states (authenticate, presence,
        // welcome) would otherwise be part of every idle connection's task for its whole life.
        let Some(mut sock) = Box::pin(conn.start(&mut stream, permit)).await else {
            return;
        };
        conn.run(&mut stream, &mut sock).await;
    }
}

/// The connection's writing half and what it needs to answer.
///
/// Why `Box::pin` around every await but the idle `select!` (authenticate, welcome, handling a
/// frame, writing events, a ping, close): a task's future is as large as its largest await
/// state, for every idle connection. Boxing them keeps the waiting task small (measured: 4.9 KB
/// -> 1.6 KB -> 0.6 KB per connection, docs/performance.md); the allocation happens only while
/// one of them runs.
struct Connection<S> {
    app: Arc<AppState>,
    sink: Sink<S>,
    write_timeout: Duration,
    /// When events were last flushed, kept only with `websocket.write_linger_micros`: a socket
    /// flushed less than the linger ago is busy, and its next batch waits out the rest of it.
    last_flush: Option<Instant>,
}

/// One socket's state after authentication (its identity, subscriptions, budget): not a chat
/// session, which is a row of `gre_chat_sessions`.
struct SocketState {
    identity: Identity,
    /// When the credential runs out (its `exp` plus the leeway); None for a secret API key.
    /// A fresh `authenticate` of the same identity moves it.
    expires: Option<Instant>,
    /// Dropping it unregisters from the hub.
    reg: Registration,
    /// Per subscribed session: the number of the last message this client was sent. Live events
    /// at or below it are duplicates of a backfill and are dropped.
    sent: Positions,
    /// Sessions this player was found to own (so typing / mark_read need no query each time).
    allowed: Allowed,
    /// Keeps this client counted as present until the connection ends.
    _presence: Option<PresenceGuard>,
    /// Paces frames that cost database work.
    bucket: TokenBucket,
    /// The automatic subscription's catch-up (messages committed between the open-session
    /// lookup and the hub subscription), deferred to the end of the hold: a resume `subscribe`
    /// for the same session supersedes it, so nothing newer precedes the resume's backfill.
    pending_catch_up: Option<(Uuid, Cursor)>,
}

/// Why the connection must end; `Err` from a write means the peer is gone.
struct Gone;

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), Gone> {
        match tokio::time::timeout(
            self.write_timeout,
            self.sink.send(Message::Text(text.into())),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone),
        }
    }

    async fn feed_text(&mut self, text: Utf8Bytes) -> Result<(), Gone> {
        match tokio::time::timeout(self.write_timeout, self.sink.feed(Message::Text(text))).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone),
        }
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        match tokio::time::timeout(self.write_timeout, self.sink.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone),
        }
    }

    async fn send_error(&mut self, err: &ProtocolError) -> Result<(), Gone> {
        self.send_text(protocol::error_frame(err)).await
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        };
        let _ = tokio::time::timeout(
            self.write_timeout,
            self.sink.send(Message::Close(Some(frame))),
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.sink.close()).await;
    }

    /// Authenticates, takes the identity's slot, registers with the hub and presence, and
    /// welcomes the client. None: the connection is over.
    async fn start<R>(&mut self, stream: &mut R, permit: &mut SocketPermit) -> Option<SocketState>
    where
        R: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
    {
        let app = self.app.clone();
        let verified = self.authenticate(stream).await?;
        let expires = app.deps.verifier.socket_deadline(&verified);
        let identity = verified.identity;
        if let Err(refusal) = permit.authenticate(identity_key(&identity)) {
            app.metrics.refused_connections.inc();
            let e = ProtocolError::new(ErrorCode::RateLimited, refusal.to_string());
            let _ = self.send_error(&e).await;
            self.close(close_code::POLICY, "too many connections for this identity")
                .await;
            return None;
        }
        let (is_staff, player_id) = match &identity {
            Identity::Player { player_id } => (false, Some(*player_id)),
            Identity::Staff { .. } => (true, None),
        };
        let reg = app
            .deps
            .hub
            .register(app.settings.websocket.outbound_queue, is_staff, player_id);
        // Recorded before `authenticated` is sent: from then on, the database knows this client
        // is connected (no push notification for it, and its GRE shows online).
        let presence = match &identity {
            Identity::Player { player_id } => Some(
                app.deps
                    .presence
                    .attach(Kind::Player, player_id.to_string())
                    .await,
            ),
            Identity::Staff {
                staff_id,
                service_role: false,
                ..
            } => Some(
                app.deps
                    .presence
                    .attach(Kind::Staff, staff_id.clone())
                    .await,
            ),
            Identity::Staff {
                service_role: true, ..
            } => None,
        };
        let mut sock = SocketState {
            identity,
            expires,
            reg,
            sent: Positions::default(),
            allowed: Allowed::default(),
            _presence: presence,
            bucket: TokenBucket::new(
                app.settings.websocket.frames_per_second,
                app.settings.websocket.frames_burst,
            ),
            pending_catch_up: None,
        };
        self.welcome(&mut sock).await.ok()?;
        Some(sock)
    }

    /// Waits for a good `authenticate` frame, answering everything else with an error.
    async fn authenticate<R>(&mut self, stream: &mut R) -> Option<Verified>
    where
        R: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
    {
        // Watched only until authentication: afterwards the hub closes the connection's queue
        // on shutdown (`Hub::close_all`), so an idle socket keeps no watch receiver.
        let shutdown = &mut self.app.plumbing.shutdown.clone();
        let deadline = Instant::now() + self.app.settings.websocket.auth_timeout();
        let mut failures = 0;
        loop {
            let next = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    self.close(close_code::AUTH_FAILED, "authentication timeout").await;
                    return None;
                }
                _ = stopped(shutdown) => {
                    self.close(1001, "server shutting down").await;
                    return None;
                }
                next = stream.next() => next,
            };
            let text = match next {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Binary(_))) => {
                    let e = ProtocolError::new(
                        ErrorCode::InvalidJson,
                        "binary frames are not supported; send JSON text",
                    );
                    self.send_error(&e).await.ok()?;
                    continue;
                }
                Some(Ok(Message::Close(_))) | None => return None,
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    self.on_read_error(e).await;
                    return None;
                }
            };
            let reply = match protocol::parse_client_frame(&text) {
                Ok(ClientFrame::Authenticate { token }) => {
                    match self.app.deps.verifier.verify(&token).await {
                        Ok(verified) => return Some(verified),
                        Err(e) => {
                            failures += 1;
                            if failures >= MAX_AUTH_FAILURES {
                                let _ = self
                                    .send_error(&ProtocolError::new(
                                        ErrorCode::Unauthenticated,
                                        e.to_string(),
                                    ))
                                    .await;
                                self.close(close_code::AUTH_FAILED, "too many invalid tokens")
                                    .await;
                                return None;
                            }
                            ProtocolError::new(ErrorCode::Unauthenticated, e.to_string())
                        }
                    }
                }
                // `authenticate` must be the first frame (CONTRACT section 4): even a ping gets
                // the same answer as any other frame, so an unauthenticated socket is no echo.
                Ok(_) => ProtocolError::new(
                    ErrorCode::Unauthenticated,
                    "send an authenticate frame first",
                ),
                Err(e) => e,
            };
            self.send_error(&reply).await.ok()?;
        }
    }

    async fn on_read_error(&mut self, e: WsError) {
        match e {
            WsError::Capacity(c) => {
                tracing::debug!(error = %c, "client frame too large");
                self.close(1009, "frame too large").await;
            }
            WsError::Utf8(_) => self.close(1007, "invalid UTF-8").await,
            WsError::Protocol(p) => {
                tracing::debug!(error = %p, "client protocol error");
                self.close(1002, "protocol error").await;
            }
            // Resets and closed sockets are how clients leave; not worth a log line.
            _ => {}
        }
    }

    /// After authentication: `authenticated`, and a player's automatic subscription to its open
    /// session.
    async fn welcome(&mut self, sock: &mut SocketState) -> Result<(), Gone> {
        match sock.identity.clone() {
            Identity::Player { player_id } => {
                let open = match self.app.deps.store.open_session(player_id).await {
                    Ok(open) => open,
                    Err(e) => {
                        self.send_error(&store_error(e)).await?;
                        self.close(1011, "database unavailable").await;
                        return Err(Gone);
                    }
                };
                self.send_text(protocol::authenticated_player_frame(
                    player_id,
                    open.as_ref().map(|s| s.id),
                ))
                .await?;
                if let Some(open) = open {
                    sock.allowed.insert(open.id);
                    // Follow it from the lookup's position at once; the catch-up for what
                    // committed in between runs when the hold ends (see `run`).
                    self.app
                        .deps
                        .hub
                        .subscribe(sock.reg.id, open.id, open.last_seq);
                    sock.sent.insert(open.id, open.last_seq);
                    sock.pending_catch_up = Some((open.id, Cursor(open.last_seq)));
                }
            }
            Identity::Staff { staff_id, .. } => {
                self.send_text(protocol::authenticated_staff_frame(&staff_id))
                    .await?;
            }
        }
        // Who is online now; changes follow as they happen.
        match self.app.deps.store.online_staff().await {
            Ok(online) => {
                if sock.identity.is_staff() {
                    for p in &online {
                        let frame = protocol::staff_presence_frame(
                            &p.gre_id,
                            p.is_online,
                            &p.status,
                            p.last_seen.as_deref(),
                        );
                        self.feed_text(Utf8Bytes::from(frame)).await?;
                    }
                }
                let frame = protocol::gre_presence_frame(online.len() as i64);
                self.feed_text(Utf8Bytes::from(frame)).await?;
            }
            Err(e) => tracing::warn!(error = %e, "could not read staff presence"),
        }
        self.flush().await
    }

    async fn run<R>(&mut self, stream: &mut R, sock: &mut SocketState)
    where
        R: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
    {
        let mut next_ping = Instant::now() + self.app.settings.websocket.heartbeat();
        let mut last_heard = Instant::now();
        // Live events wait until the client's first frame has been handled (or RESUME_GRACE
        // passes): a reconnecting client's `subscribe` with `since` must get its backfill before
        // any newer live message, or it would see the session out of commit order. Nothing is
        // lost meanwhile: the events wait in the bounded queue.
        let mut hold_until = Some(Instant::now() + RESUME_GRACE);
        // One timer for everything timed (the next ping, the end of the hold, the credential's
        // end), set to the earliest of them: one `Sleep` per idle connection instead of three.
        // Why the work is done at the top of the loop, not in the timer's arm: the same checks
        // must run however the task was woken (the token may run out while events flow).
        let timer = tokio::time::sleep_until(next_ping);
        tokio::pin!(timer);
        loop {
            let now = Instant::now();
            // Checked before anything is written: once the token has run out, nothing more is
            // delivered, even when events and the timer are ready at the same moment.
            if sock.expires.is_some_and(|d| now >= d) {
                Box::pin(self.expire()).await;
                return;
            }
            // The grace period is over: let live events flow.
            if hold_until.is_some_and(|h| now >= h) {
                hold_until = None;
                if Box::pin(self.catch_up(sock)).await.is_err() {
                    return;
                }
            }
            // Liveness: ping, and give up on a peer silent for two periods.
            if now >= next_ping {
                // Read here rather than kept: every byte of this function's state is per idle
                // connection.
                let period = self.app.settings.websocket.heartbeat();
                if last_heard.elapsed() > period * 2 {
                    Box::pin(self.close(close_code::HEARTBEAT_TIMEOUT, "no answer to pings")).await;
                    return;
                }
                if Box::pin(self.ping()).await.is_err() {
                    return;
                }
                next_ping = Instant::now() + period;
            }
            let mut wake = next_ping;
            for at in [hold_until, sock.expires].into_iter().flatten() {
                wake = wake.min(at);
            }
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }
            let holding = hold_until.is_some();
            tokio::select! {
                // Events for this client, written in batches with one flush; or the hub's word
                // that the client lagged or the relay shuts down (seen while holding too).
                next = sock.reg.recv(!holding) => match next {
                    Recv::Event(event) => {
                        if Box::pin(self.write_events(sock, event)).await.is_err() {
                            return;
                        }
                    }
                    // A server going down says so (1001) rather than keep writing.
                    Recv::Closed(Closed::Shutdown) => {
                        Box::pin(self.close(1001, "server shutting down")).await;
                        return;
                    }
                    // The hub gave up on this client: its queue was full.
                    Recv::Closed(Closed::Lagged) => {
                        Box::pin(self.close(close_code::LAGGING, "too slow: reconnect and resume from your last cursor")).await;
                        return;
                    }
                },
                // A ping is due, the hold is over or the token ran out: handled at the top.
                () = &mut timer => {}
                // What the client says (handled boxed: the frame is not kept in the idle state).
                next = stream.next() => {
                    last_heard = Instant::now();
                    if Box::pin(self.on_client(sock, next, &mut hold_until)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// One item from the client's side of the socket. Err: the connection is over.
    async fn on_client(
        &mut self,
        sock: &mut SocketState,
        next: Option<Result<Message, WsError>>,
        hold_until: &mut Option<Instant>,
    ) -> Result<(), Gone> {
        match next {
            Some(Ok(Message::Text(text))) => {
                self.handle_text(sock, &text).await?;
                // The client's first frame ends the hold (see `run`).
                if hold_until.take().is_some() {
                    self.catch_up(sock).await?;
                }
                Ok(())
            }
            Some(Ok(Message::Binary(_))) => {
                let e = ProtocolError::new(
                    ErrorCode::InvalidJson,
                    "binary frames are not supported; send JSON text",
                );
                self.send_error(&e).await
            }
            Some(Ok(Message::Close(_))) | None => Err(Gone),
            Some(Ok(_)) => Ok(()), // pings are answered by tungstenite; pongs just prove life
            Some(Err(e)) => {
                self.on_read_error(e).await;
                Err(Gone)
            }
        }
    }

    async fn ping(&mut self) -> Result<(), Gone> {
        let ping = self.sink.send(Message::Ping(Default::default()));
        match tokio::time::timeout(self.write_timeout, ping).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone),
        }
    }

    /// Writes `first` and whatever else is queued (up to WRITE_BATCH frames), then flushes once:
    /// fewer syscalls under load. With `websocket.write_linger_micros`, a busy socket (flushed
    /// less than the linger ago) first waits out the rest of the linger, so that its queue
    /// gathers more frames for one send; a socket that was quiet is never delayed. One timeout
    /// bounds the whole batch.
    async fn write_events(
        &mut self,
        sock: &mut SocketState,
        first: std::sync::Arc<Outbound>,
    ) -> Result<(), Gone> {
        let sink = &mut self.sink;
        let linger = self.app.settings.websocket.write_linger();
        let busy_until = linger.zip(self.last_flush).map(|(l, at)| at + l);
        let write = async {
            if let Some(until) = busy_until.filter(|u| Instant::now() < *u) {
                tokio::time::sleep_until(until).await;
            }
            let mut event = Some(first);
            let mut written = 0;
            while let Some(e) = event.take() {
                if let Some(frame) = sock.accept(&e) {
                    sink.feed(Message::Text(frame)).await?;
                    written += 1;
                }
                if written >= WRITE_BATCH {
                    break;
                }
                event = sock.reg.try_recv();
            }
            sink.flush().await
        };
        let result = tokio::time::timeout(self.write_timeout, write).await;
        if linger.is_some() {
            self.last_flush = Some(Instant::now());
        }
        match result {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone),
        }
    }

    /// The credential ran out: say so, then close 4003. The client gets a fresh token,
    /// reconnects and resumes from its cursors.
    async fn expire(&mut self) {
        let e = ProtocolError::new(
            ErrorCode::TokenExpired,
            "your token expired: reconnect with a fresh one and resume from your last cursor",
        );
        let _ = self.send_error(&e).await;
        self.close(close_code::TOKEN_EXPIRED, "token expired").await;
    }

    /// `authenticate` on an authenticated socket: a fresh token of the same identity extends
    /// the socket's life (subscriptions intact) and is answered `authenticated` again; a token
    /// of another identity, or one that is refused, changes nothing.
    async fn refresh(&mut self, sock: &mut SocketState, token: &str) -> Result<(), Gone> {
        let verified = match self.app.deps.verifier.verify(token).await {
            Ok(v) => v,
            Err(e) => {
                let e = ProtocolError::new(ErrorCode::Unauthenticated, e.to_string());
                return self.send_error(&e).await;
            }
        };
        if !same_subject(&sock.identity, &verified.identity) {
            let e = ProtocolError::new(
                ErrorCode::Forbidden,
                "this token is for another identity: a connection keeps the identity it \
                 authenticated with; open a new connection for another one",
            );
            return self.send_error(&e).await;
        }
        sock.expires = self.app.deps.verifier.socket_deadline(&verified);
        // The same subject; its display name may have changed.
        sock.identity = verified.identity;
        let frame = match &sock.identity {
            Identity::Player { player_id } => {
                let open = match self.app.deps.store.open_session(*player_id).await {
                    Ok(open) => open.map(|s| s.id),
                    Err(e) => return self.send_error(&store_error(e)).await,
                };
                protocol::authenticated_player_frame(*player_id, open)
            }
            Identity::Staff { staff_id, .. } => protocol::authenticated_staff_frame(staff_id),
        };
        self.send_text(frame).await
    }

    /// Sends an event that is not stored to the session's other subscribers on every relay,
    /// signed so that relays can tell it from a forged `pg_notify` (realtime/notify.rs).
    async fn relay(
        &mut self,
        sock: &SocketState,
        event: &RelayedEvent,
    ) -> Result<(), ProtocolError> {
        let origin = Origin {
            instance: self.app.deps.instance_id,
            conn: sock.reg.id,
        };
        let payload =
            self.app
                .deps
                .relay_key
                .seal(origin, event, crate::realtime::notify::now_ms());
        self.app
            .deps
            .store
            .notify(&payload)
            .await
            .map_err(store_error)
    }

    /// Runs the automatic subscription's deferred catch-up, if a resume did not supersede it.
    async fn catch_up(&mut self, sock: &mut SocketState) -> Result<(), Gone> {
        match sock.pending_catch_up.take() {
            Some((session_id, from)) => self.subscribe(sock, session_id, from, false).await,
            None => Ok(()),
        }
    }

    /// Like `authorize`, without a query for a session this connection was already allowed.
    async fn authorize_cached(
        &mut self,
        sock: &mut SocketState,
        session_id: Uuid,
    ) -> Result<(), ProtocolError> {
        if sock.allowed.contains(&session_id) {
            return Ok(());
        }
        self.authorize(sock, session_id).await.map(|_| ())
    }

    /// May this client see the session? Returns its last message number.
    async fn authorize(
        &mut self,
        sock: &mut SocketState,
        session_id: Uuid,
    ) -> Result<i64, ProtocolError> {
        let info = self
            .app
            .deps
            .store
            .session(session_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ProtocolError::new(ErrorCode::NotFound, "no such sock"))?;
        if !sock.identity.may_access_player(info.player_id) {
            // Same answer as a missing session would leak that it exists; forbidden is clearer
            // for a client bug and reveals nothing but a random id's existence.
            return Err(ProtocolError::new(ErrorCode::Forbidden, "not your sock"));
        }
        sock.allowed.insert(session_id);
        Ok(info.last_seq)
    }

    /// Subscribes, then sends every message after `since` (in pages), then `subscribed`. Live
    /// events that arrive meanwhile wait in the queue and are deduplicated by number.
    async fn subscribe(
        &mut self,
        sock: &mut SocketState,
        session_id: Uuid,
        since: Cursor,
        announce: bool,
    ) -> Result<(), Gone> {
        self.app
            .deps
            .hub
            .subscribe(sock.reg.id, session_id, since.0);
        let mut cursor = since;
        sock.sent.insert(session_id, since.0);
        loop {
            let page = match self
                .app
                .deps
                .store
                .messages_after(session_id, cursor, BACKFILL_PAGE)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    // Without its backfill the subscription would have a gap: undo it.
                    self.app.deps.hub.unsubscribe(sock.reg.id, session_id);
                    sock.sent.remove(&session_id);
                    let text = protocol::error_frame_for(&store_error(e), None, Some(session_id));
                    return self.send_text(text).await;
                }
            };
            for m in &page {
                self.feed_text(Utf8Bytes::from(protocol::chat_message_frame(&m.json)))
                    .await?;
                cursor = Cursor(m.seq);
            }
            if (page.len() as i64) < BACKFILL_PAGE {
                break;
            }
            self.flush().await?;
        }
        sock.sent.insert(session_id, cursor.0);
        self.app
            .deps
            .hub
            .note_position(sock.reg.id, session_id, cursor.0);
        if announce {
            self.feed_text(Utf8Bytes::from(protocol::subscribed_frame(
                session_id, cursor,
            )))
            .await?;
        }
        self.flush().await
    }

    async fn send_message(
        &mut self,
        sock: &mut SocketState,
        text: String,
        session_id: Option<Uuid>,
        client_message_id: Option<String>,
        attachment_id: Option<Uuid>,
    ) -> Result<(), ProtocolError> {
        let app = self.app.clone();
        let cid = client_message_id.as_deref();
        let message = match &sock.identity {
            Identity::Player { player_id } => {
                let sent = chat::player_send(
                    &app.deps.store,
                    *player_id,
                    session_id,
                    &text,
                    cid,
                    attachment_id,
                )
                .await?;
                if let Some(opened) = &sent.opened {
                    sock.allowed.insert(opened.id);
                    // The new session's messages start at 1: subscribe from its beginning.
                    self.subscribe(sock, opened.id, Cursor(0), false)
                        .await
                        .map_err(|_| gone())?;
                }
                sent.message
            }
            staff @ Identity::Staff { .. } => {
                let session_id = session_id.ok_or_else(|| {
                    ProtocolError::new(ErrorCode::InvalidMessage, "sessionId is required for staff")
                })?;
                chat::staff_send(
                    &app.deps.store,
                    staff,
                    session_id,
                    &text,
                    cid,
                    attachment_id,
                )
                .await?
                .0
            }
        };
        self.send_text(protocol::message_sent_frame(cid, &message.json))
            .await
            .map_err(|_| gone())
    }
}

impl SocketState {
    /// Filters one hub event: returns the frame to write, or None for a duplicate.
    fn accept(&mut self, event: &Outbound) -> Option<Utf8Bytes> {
        match event {
            Outbound::Message {
                session_id,
                seq,
                frame,
            } => {
                if let Some(last) = self.sent.get_mut(session_id) {
                    if *seq <= *last {
                        return None;
                    }
                    *last = *seq;
                }
                Some(frame.clone())
            }
            Outbound::Frame(frame) => Some(frame.clone()),
        }
    }
}

/// A write failed while handling a request: the peer is gone; the error is never sent.
fn gone() -> ProtocolError {
    ProtocolError::new(ErrorCode::Internal, "connection lost")
}

/// Whether two identities are the same caller (a refresh may change a staff display name, not
/// who the socket speaks for).
fn same_subject(a: &Identity, b: &Identity) -> bool {
    match (a, b) {
        (Identity::Player { player_id: x }, Identity::Player { player_id: y }) => x == y,
        (
            Identity::Staff {
                staff_id: x,
                service_role: xs,
                ..
            },
            Identity::Staff {
                staff_id: y,
                service_role: ys,
                ..
            },
        ) => x == y && xs == ys,
        _ => false,
    }
}

/// The key a socket counts under in the per-identity budget; None: exempt (the service role).
fn identity_key(identity: &Identity) -> Option<String> {
    match identity {
        Identity::Player { player_id } => Some(format!("player:{player_id}")),
        Identity::Staff {
            service_role: true, ..
        } => None,
        Identity::Staff { staff_id, .. } => Some(format!("staff:{staff_id}")),
    }
}

/// The side a client speaks for in relayed events, and its staff id (a player's id is never
/// put on the channel: receiving relays take it from the session row).
fn side_of(identity: &Identity) -> (Side, Option<String>) {
    match identity {
        Identity::Player { .. } => (Side::Player, None),
        Identity::Staff { staff_id, .. } => (Side::Gre, Some(staff_id.clone())),
    }
}

/// What a client is told when the store fails under a frame: the chat rules' verdict.
fn store_error(e: StoreError) -> ProtocolError {
    chat::ChatError::from(e).into()
}
