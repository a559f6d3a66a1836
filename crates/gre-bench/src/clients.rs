//! The simulated WebSocket clients: connect, authenticate, then record every benchmark message
//! received (its number and the instant it was decoded) until told to stop.

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Where the relay is: `ws://host:port/path` (plain WebSocket; put wss:// deployments' TLS
/// terminator aside, or run the tool next to the relay).
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    pub port: u16,
    /// Local addresses to spread the client sockets over (each gives ~28k source ports).
    pub bind: Vec<IpAddr>,
}

impl Target {
    pub async fn resolve(url: &str, bind: Vec<IpAddr>) -> anyhow::Result<Target> {
        let rest = if let Some(r) = url.strip_prefix("ws://") {
            r
        } else if url.starts_with("wss://") {
            bail!("wss:// is not supported by gre-bench: run it against the relay's plain ws:// port (behind the TLS proxy)");
        } else {
            bail!("--ws must be a ws:// URL, e.g. ws://127.0.0.1:5000/ws");
        };
        let hostport = rest.split('/').next().unwrap_or(rest);
        let with_port = if hostport
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !hostport.ends_with(']')
        {
            hostport.to_owned()
        } else {
            format!("{hostport}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .with_context(|| format!("resolving {with_port}"))?
            .next()
            .ok_or_else(|| anyhow!("{with_port} resolves to nothing"))?;
        Ok(Target {
            url: url.to_owned(),
            addr,
            port: addr.port(),
            bind,
        })
    }

    pub fn is_local(&self) -> bool {
        self.addr.ip().is_loopback()
    }
}

/// Who a client is.
#[derive(Debug, Clone)]
pub enum Who {
    /// Player number `index` of the run (its session is the run's session `index`).
    Player {
        index: u32,
        token: String,
    },
    Staff {
        token: String,
    },
}

/// What one client saw, handed back when it stops.
#[derive(Debug, Default)]
pub struct Received {
    /// The player's index, or None for staff.
    pub player: Option<u32>,
    /// (message number, nanoseconds since the run's origin when the frame was decoded).
    pub receipts: Vec<(u32, u64)>,
    /// Frames that were not benchmark messages (presence, session updates, ...).
    pub other_frames: u64,
    /// Whether it connected and was authenticated.
    pub connected: bool,
    /// Why it could not connect, or why the relay ended the connection before the tool did.
    pub closed_early: Option<String>,
}

/// Recognises this run's messages: their text is `gb<run>:<number>`, and their id is the run's
/// random 96-bit prefix followed by the number (so the tool's own LISTEN can tell its rows in
/// notifications that carry ids only, issue 11).
#[derive(Debug, Clone)]
pub struct Marker {
    needle: String,
    id_prefix: u128,
}

impl Marker {
    pub fn new(run: &str) -> Marker {
        Marker {
            needle: format!("gb{run}:"),
            id_prefix: rand::random::<u128>() & !0xFFFF_FFFF,
        }
    }

    /// The id the writers give row `seq`.
    pub fn id(&self, seq: u32) -> uuid::Uuid {
        uuid::Uuid::from_u128(self.id_prefix | u128::from(seq))
    }

    fn seq_of(&self, id: uuid::Uuid) -> Option<u32> {
        let v = id.as_u128();
        (v & !0xFFFF_FFFF == self.id_prefix).then_some(v as u32)
    }

    /// What every message text of this run starts with.
    pub fn prefix(&self) -> &str {
        &self.needle
    }

    pub fn text(&self, seq: u32) -> String {
        format!("{}{seq}", self.needle)
    }

    /// Every message number of this run named in a NOTIFY payload (one per row): by id in a
    /// hint (relays since issue 11), or by text in a whole-row payload (relays before it).
    pub fn all_in(&self, payload: &str) -> Vec<u32> {
        use gre_relay::realtime::notify::{Hint, MessageOp};
        if let Ok(Hint::Messages {
            op: MessageOp::Inserted,
            ids,
        }) = Hint::parse(payload)
        {
            return ids.into_iter().filter_map(|id| self.seq_of(id)).collect();
        }
        payload
            .match_indices(&self.needle)
            .filter_map(|(at, n)| {
                let digits = &payload[at + n.len()..];
                let end = digits
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(digits.len());
                digits[..end].parse().ok()
            })
            .collect()
    }

    /// The message number of a `chat_message` frame of this run, if it is one.
    fn find(&self, frame: &str) -> Option<u32> {
        let at = frame.find(&self.needle)? + self.needle.len();
        let fast = frame.starts_with(r#"{"type":"chat_message""#);
        if !fast {
            // Another frame that quotes a benchmark text (message_updated, or another relay's
            // key order): look at its type properly.
            let v: serde_json::Value = serde_json::from_str(frame).ok()?;
            if v.get("type").and_then(|t| t.as_str()) != Some("chat_message") {
                return None;
            }
        }
        let digits = &frame[at..];
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        digits[..end].parse().ok()
    }
}

/// Client-side WebSocket buffers: small, the tool may hold 20,000 sockets.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
}

async fn open(target: &Target, n: usize) -> anyhow::Result<WebSocketStream<TcpStream>> {
    let tcp = if target.bind.is_empty() {
        TcpStream::connect(target.addr).await?
    } else {
        let ip = target.bind[n % target.bind.len()];
        let socket = if ip.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(ip, 0))?;
        socket.connect(target.addr).await?
    };
    tcp.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        target.url.as_str(),
        tcp,
        Some(client_config()),
    )
    .await?;
    Ok(ws)
}

/// Connects, authenticates and waits for `authenticated`.
async fn handshake(
    target: &Target,
    n: usize,
    token: &str,
    received: &mut Received,
) -> anyhow::Result<WebSocketStream<TcpStream>> {
    let mut ws = open(target, n).await.context("connecting")?;
    let auth = serde_json::json!({"type": "authenticate", "token": token}).to_string();
    ws.send(Message::Text(auth.into())).await?;
    while let Some(frame) = ws.next().await {
        let Message::Text(text) = frame? else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(text.as_str())?;
        match v.get("type").and_then(|t| t.as_str()) {
            Some("authenticated") => return Ok(ws),
            Some("error") => bail!(
                "refused: {}",
                v["error"].to_string() + &v["message"].to_string()
            ),
            _ => received.other_frames += 1,
        }
    }
    bail!("closed before authenticated")
}

pub struct Fleet {
    pub handles: Vec<JoinHandle<Received>>,
    pub connected: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub connect_seconds: f64,
}

pub struct FleetOptions {
    pub target: Target,
    pub concurrency: usize,
    pub handshake_timeout: Duration,
    pub marker: Marker,
    pub origin: Instant,
    pub stop: watch::Receiver<bool>,
    /// Print progress to stderr every this many connections (0 = never).
    pub progress_every: usize,
    /// Benchmark messages received so far by all clients (duplicates included).
    pub counter: Arc<AtomicU64>,
}

/// Opens one client per entry of `who` (at most `concurrency` handshakes at a time) and returns
/// once every one is authenticated or has failed. The clients then record what they receive
/// until `stop` turns true; their JoinHandles give back what they saw.
pub async fn connect_all(who: Vec<Who>, opts: &FleetOptions) -> Fleet {
    let started = Instant::now();
    let total = who.len();
    let sem = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let mut handles = Vec::with_capacity(total);
    for (n, w) in who.into_iter().enumerate() {
        let sem = sem.clone();
        let ready = ready_tx.clone();
        let target = opts.target.clone();
        let marker = opts.marker.clone();
        let origin = opts.origin;
        let mut stop = opts.stop.clone();
        let timeout = opts.handshake_timeout;
        let counter = opts.counter.clone();
        handles.push(tokio::spawn(async move {
            let (player, token) = match w {
                Who::Player { index, token } => (Some(index), token),
                Who::Staff { token } => (None, token),
            };
            let mut received = Received {
                player,
                ..Received::default()
            };
            let ws = {
                let _permit = sem.acquire().await;
                match tokio::time::timeout(timeout, handshake(&target, n, &token, &mut received))
                    .await
                {
                    Ok(Ok(ws)) => ws,
                    Ok(Err(e)) => {
                        let _ = ready.send(Err(format!("{e:#}")));
                        received.closed_early = Some(format!("{e:#}"));
                        return received;
                    }
                    Err(_) => {
                        let _ = ready.send(Err("handshake timed out".into()));
                        received.closed_early = Some("handshake timed out".into());
                        return received;
                    }
                }
            };
            drop(token);
            received.connected = true;
            let _ = ready.send(Ok(()));
            drop(ready);
            receive(ws, &marker, origin, &mut stop, &counter, &mut received).await;
            received
        }));
    }
    drop(ready_tx);
    let (mut connected, mut failed, mut first_error) = (0, 0, None);
    while connected + failed < total {
        match ready_rx.recv().await {
            Some(Ok(())) => connected += 1,
            Some(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            None => break,
        }
        let done = connected + failed;
        if opts.progress_every > 0 && done % opts.progress_every == 0 {
            eprintln!(
                "  {done}/{total} clients ({failed} failed), {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Fleet {
        handles,
        connected,
        failed,
        first_error,
        connect_seconds: started.elapsed().as_secs_f64(),
    }
}

async fn receive(
    mut ws: WebSocketStream<TcpStream>,
    marker: &Marker,
    origin: Instant,
    stop: &mut watch::Receiver<bool>,
    counter: &AtomicU64,
    received: &mut Received,
) {
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        tokio::select! {
            biased;
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let at = origin.elapsed().as_nanos() as u64;
                    match marker.find(text.as_str()) {
                        Some(seq) => {
                            received.receipts.push((seq, at));
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        None => received.other_frames += 1,
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    received.closed_early = Some(match frame {
                        Some(f) => format!("closed by the relay: {} {}", u16::from(f.code), f.reason),
                        None => "closed by the relay".into(),
                    });
                    return;
                }
                Some(Ok(_)) => {} // pings are answered by tungstenite
                Some(Err(e)) => {
                    received.closed_early = Some(format!("read error: {e}"));
                    return;
                }
                None => {
                    received.closed_early = Some("connection ended".into());
                    return;
                }
            },
            r = stop.changed() => {
                if r.is_err() { break; }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
}
