//! One handler per client frame type. [`Connection::handle_text`] parses the frame, applies the
//! frame budget and hands it to its handler; a handler's refusal becomes an `error` frame that
//! names the request (its `clientMessageId` and `sessionId`), and the connection stays open.
//!
//! Must not touch: other connections (subscriptions go through the hub), the socket's reading
//! half (the `select!` loop in `connection.rs` owns it).

use tokio::io::{AsyncRead, AsyncWrite};
use uuid::Uuid;

use super::{side_of, store_error, Connection, Gone, SocketState};
use crate::protocol::{self, ClientFrame, Cursor, ErrorCode, ProtocolError};
use crate::realtime::notify::RelayedEvent;

/// What an error about a frame names, so the client knows which request failed.
struct About {
    client_message_id: Option<String>,
    session_id: Option<Uuid>,
}

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Parses one text frame, paces it, and runs its handler.
    pub(super) async fn handle_text(
        &mut self,
        sock: &mut SocketState,
        text: &str,
    ) -> Result<(), Gone> {
        let frame = match protocol::parse_client_frame(text) {
            Ok(f) => f,
            Err(e) => {
                let (cid, sid) = protocol::raw_context(text);
                return self
                    .send_text(protocol::error_frame_for(&e, cid.as_deref(), sid))
                    .await;
            }
        };
        let (client_message_id, session_id) = frame.context();
        let about = About {
            client_message_id: client_message_id.map(str::to_owned),
            session_id,
        };
        // A refresh (`authenticate` again) costs a signature check, so it is paced like the rest.
        if !matches!(frame, ClientFrame::Ping) && !sock.bucket.take() {
            self.app.metrics.rate_limited.inc();
            let e = ProtocolError::new(ErrorCode::RateLimited, "too many frames; slow down");
            return self.refuse(&e, &about).await;
        }
        let result = match frame {
            ClientFrame::Ping => return self.send_text(protocol::pong_frame()).await,
            ClientFrame::Authenticate { token } => {
                return Box::pin(self.refresh(sock, &token)).await;
            }
            ClientFrame::SendMessage {
                message,
                session_id,
                client_message_id,
                attachment_id,
            } => {
                self.send_message(sock, message, session_id, client_message_id, attachment_id)
                    .await
            }
            ClientFrame::Subscribe { session_id, since } => {
                return self.on_subscribe(sock, session_id, since, &about).await;
            }
            ClientFrame::Unsubscribe { session_id } => {
                return self.on_unsubscribe(sock, session_id).await;
            }
            ClientFrame::Typing {
                session_id,
                is_typing,
            } => self.on_typing(sock, session_id, is_typing).await,
            ClientFrame::MarkRead { session_id, up_to } => {
                self.on_mark_read(sock, session_id, up_to).await
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.refuse(&e, &about).await,
        }
    }

    /// Answers a refused frame with an `error` frame naming it.
    async fn refuse(&mut self, e: &ProtocolError, about: &About) -> Result<(), Gone> {
        let text =
            protocol::error_frame_for(e, about.client_message_id.as_deref(), about.session_id);
        self.send_text(text).await
    }

    /// `subscribe`: backfill from `since` (or start now), then live.
    async fn on_subscribe(
        &mut self,
        sock: &mut SocketState,
        session_id: Uuid,
        since: Option<Cursor>,
        about: &About,
    ) -> Result<(), Gone> {
        let last_seq = match self.authorize(sock, session_id).await {
            Ok(last_seq) => last_seq,
            Err(e) => return self.refuse(&e, about).await,
        };
        if sock
            .pending_catch_up
            .is_some_and(|(id, _)| id == session_id)
        {
            sock.pending_catch_up = None;
        }
        // A cursor beyond the session's end is clamped: it cannot skip future rows.
        let from = since.map_or(Cursor(last_seq), |c| c.min(Cursor(last_seq)));
        self.subscribe(sock, session_id, from, true).await
    }

    /// `unsubscribe`: stop the session's events; always answered with `unsubscribed`.
    async fn on_unsubscribe(
        &mut self,
        sock: &mut SocketState,
        session_id: Uuid,
    ) -> Result<(), Gone> {
        if sock
            .pending_catch_up
            .is_some_and(|(id, _)| id == session_id)
        {
            sock.pending_catch_up = None;
        }
        self.app.deps.hub.unsubscribe(sock.reg.id, session_id);
        sock.sent.remove(&session_id);
        self.send_text(protocol::unsubscribed_frame(session_id))
            .await
    }

    /// `typing`: relayed to the session's other subscribers on every relay, never stored.
    async fn on_typing(
        &mut self,
        sock: &mut SocketState,
        session_id: Uuid,
        is_typing: bool,
    ) -> Result<(), ProtocolError> {
        self.authorize_cached(sock, session_id).await?;
        let (side, staff_id) = side_of(&sock.identity);
        let event = RelayedEvent::Typing {
            session_id,
            side,
            staff_id,
            is_typing,
        };
        self.relay(sock, &event).await
    }

    /// `mark_read`: the other side's messages up to `up_to` become `read`; the receipt is
    /// relayed.
    async fn on_mark_read(
        &mut self,
        sock: &mut SocketState,
        session_id: Uuid,
        up_to: Uuid,
    ) -> Result<(), ProtocolError> {
        self.authorize_cached(sock, session_id).await?;
        let staff = sock.identity.is_staff();
        let (cursor, ids) = self
            .app
            .deps
            .store
            .mark_read(session_id, up_to, staff)
            .await
            .map_err(store_error)?;
        let event = RelayedEvent::MessagesRead {
            session_id,
            reader: side_of(&sock.identity).0,
            up_to,
            cursor: cursor.0,
            count: ids.len() as u64,
        };
        self.relay(sock, &event).await
    }
}
