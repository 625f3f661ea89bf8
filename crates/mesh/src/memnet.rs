//! An in-memory network of tills, for protocol tests and the simulator: streams are byte
//! pipes, and each direction of a link can be cut, blackholed, delayed, jittered or made
//! lossy, as a model of what QUIC on a store LAN shows the mesh under those faults.
//!
//! The model, per direction of a link:
//! - **delay and jitter**: a write arrives `delay + U(0, jitter)` later, never before the
//!   previous write of its stream (a QUIC stream is ordered; two streams are not, so jitter
//!   reorders messages across streams);
//! - **loss**: each packet (1,200 bytes) of a write is lost with the given chance and QUIC
//!   resends it after a probe timeout (3 × delay + 25 ms, doubling while the resend is lost
//!   too). QUIC discards duplicated and reordered packets before the mesh sees them; the
//!   mesh meets duplicates as whole messages sent again after a reconnect, which cuts and
//!   idle timeouts produce;
//! - **blackhole** (one way): bytes are held, not delivered; if it heals within the idle
//!   timeout they arrive (QUIC resent them), otherwise the link closes on both sides as
//!   QUIC's idle timeout closes it, and dials time out;
//! - **cut** (the link is down): streams fail at once and dials are refused.

use crate::MeshError;
use crate::transport::{Link, Transport, conn_err};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Bytes buffered per in-memory stream direction (QUIC's flow-control window stands in).
const MEM_STREAM_BYTES: usize = 256 * 1024;
/// QUIC's idle timeout on the mesh (what [`crate::QuicTransport`] sets).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// Bytes per simulated packet.
const PACKET_BYTES: usize = 1_200;
/// Most resends of one write (doubling probe timeouts: past this QUIC would be idling out).
const RESENDS_MAX: u32 = 8;
/// Bytes copied per read.
const READ_CHUNK: usize = 16 * 1024;

/// What one direction of a link does to the bytes on it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkCond {
    /// One-way delay, ms.
    pub delay_ms: u64,
    /// Extra delay drawn uniformly from 0 to this, ms.
    pub jitter_ms: u64,
    /// Chance that a packet is lost (0 to 1); QUIC resends it.
    pub loss: f64,
    /// Nothing gets through (one way); the link idles out.
    pub blackhole: bool,
}

type Ends = (SocketAddr, SocketAddr);

/// Bytes written to one stream direction and not read yet, with when each write arrives.
/// Both halves hold the lock while they touch the pipe, so the queue and the pipe agree.
type Arrivals = Arc<Mutex<VecDeque<(usize, Instant)>>>;

type MemHalf = (MemTx, MemRx);

fn cut_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "partitioned")
}

/// The write half of an in-memory stream; fails once its link is cut.
pub struct MemTx {
    inner: tokio::io::WriteHalf<tokio::io::DuplexStream>,
    arrivals: Arrivals,
    net: Arc<MemNet>,
    ends: Ends,
}

/// The read half of an in-memory stream; fails once its link is cut.
pub struct MemRx {
    inner: tokio::io::ReadHalf<tokio::io::DuplexStream>,
    arrivals: Arrivals,
    net: Arc<MemNet>,
    ends: Ends,
    /// What the next byte waits for: its arrival time, or a change of the link.
    wait: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl std::fmt::Debug for MemTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemTx").field("ends", &self.ends).finish()
    }
}

impl std::fmt::Debug for MemRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemRx").field("ends", &self.ends).finish()
    }
}

/// One stream direction: `(writer, reader)` over a pipe.
fn direction(
    w: tokio::io::WriteHalf<tokio::io::DuplexStream>,
    r: tokio::io::ReadHalf<tokio::io::DuplexStream>,
    net: &Arc<MemNet>,
    ends: Ends,
) -> (MemTx, MemRx) {
    let arrivals = Arrivals::default();
    (
        MemTx {
            inner: w,
            arrivals: arrivals.clone(),
            net: net.clone(),
            ends,
        },
        MemRx {
            inner: r,
            arrivals,
            net: net.clone(),
            ends,
            wait: None,
        },
    )
}

impl AsyncWrite for MemTx {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.net.is_cut(this.ends.0, this.ends.1) {
            return Poll::Ready(Err(cut_error()));
        }
        let mut q = this.arrivals.lock().expect("arrivals lock");
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(k)) = r
            && k > 0
        {
            let at = this.net.arrival(this.ends, k);
            let at = q.back().map_or(at, |b| b.1.max(at));
            q.push_back((k, at));
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncRead for MemRx {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.net.is_cut(this.ends.0, this.ends.1) {
                return Poll::Ready(Err(cut_error()));
            }
            if let Some(w) = this.wait.as_mut() {
                match w.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => this.wait = None,
                }
            }
            let mut q = this.arrivals.lock().expect("arrivals lock");
            let Some(&(k, at)) = q.front() else {
                // Nothing in flight: the pipe is empty; wait for a write or the end.
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            };
            if this.net.blackholed(this.ends) {
                drop(q);
                let mut change = this.net.cuts.subscribe();
                if this.net.blackholed(this.ends) {
                    this.wait = Some(Box::pin(async move {
                        let _ = change.changed().await;
                    }));
                }
                continue;
            }
            if at > Instant::now() {
                drop(q);
                this.wait = Some(Box::pin(tokio::time::sleep_until(at)));
                continue;
            }
            let mut tmp = [0_u8; READ_CHUNK];
            let want = buf.remaining().min(k).min(READ_CHUNK);
            let mut part = ReadBuf::new(&mut tmp[..want]);
            return match Pin::new(&mut this.inner).poll_read(cx, &mut part) {
                Poll::Ready(Ok(())) => {
                    let n = part.filled().len();
                    buf.put_slice(part.filled());
                    if n >= k {
                        q.pop_front();
                    } else if let Some(front) = q.front_mut() {
                        front.0 -= n;
                    }
                    Poll::Ready(Ok(()))
                }
                other => other,
            };
        }
    }
}

/// An attached till: where to deliver its inbound connections, and who it is.
type MemNode = (mpsc::Sender<MemConnReq>, (String, u64));

struct MemConnReq {
    from: SocketAddr,
    link: MemLink,
}

/// An in-memory network of tills: addresses, identities, cut links and link conditions.
pub struct MemNet {
    nodes: Mutex<HashMap<SocketAddr, MemNode>>,
    cut: Mutex<HashSet<Ends>>,
    /// Conditions per direction, with when each began.
    conds: Mutex<HashMap<Ends, (LinkCond, Instant)>>,
    /// Draws of jitter and loss (seeded, so a simulation replays).
    rng: Mutex<StdRng>,
    cuts: watch::Sender<u64>,
}

impl std::fmt::Debug for MemNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemNet").finish()
    }
}

impl MemNet {
    /// A new, empty network.
    pub fn new() -> Arc<MemNet> {
        Self::seeded(0)
    }

    /// A new, empty network whose jitter and loss are drawn from `seed`.
    pub fn seeded(seed: u64) -> Arc<MemNet> {
        Arc::new(MemNet {
            nodes: Mutex::default(),
            cut: Mutex::default(),
            conds: Mutex::default(),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            cuts: watch::Sender::new(0),
        })
    }

    /// Attaches a till (store label, terminal) at `addr`.
    pub fn attach(
        self: &Arc<Self>,
        addr: SocketAddr,
        store_label: &str,
        terminal: u64,
    ) -> MemTransport {
        let (tx, rx) = mpsc::channel(64);
        self.nodes
            .lock()
            .expect("memnet lock")
            .insert(addr, (tx, (store_label.to_string(), terminal)));
        MemTransport {
            net: self.clone(),
            addr,
            inbox: tokio::sync::Mutex::new(rx),
            links: Mutex::new(Vec::new()),
        }
    }

    /// Cuts traffic between `a` and `b` (both directions): live links close, dials fail.
    pub fn cut(&self, a: SocketAddr, b: SocketAddr) {
        let mut c = self.cut.lock().expect("memnet lock");
        c.insert((a, b));
        c.insert((b, a));
        drop(c);
        self.cuts.send_modify(|v| *v += 1);
    }

    /// Restores traffic between `a` and `b`.
    pub fn heal(&self, a: SocketAddr, b: SocketAddr) {
        let mut c = self.cut.lock().expect("memnet lock");
        c.remove(&(a, b));
        c.remove(&(b, a));
        drop(c);
        self.cuts.send_modify(|v| *v += 1);
    }

    /// Whether traffic from `a` to `b` is cut.
    pub fn is_cut(&self, a: SocketAddr, b: SocketAddr) -> bool {
        self.cut.lock().expect("memnet lock").contains(&(a, b))
    }

    /// Sets what the direction `from` → `to` does to traffic (the default clears it).
    pub fn set_cond(&self, from: SocketAddr, to: SocketAddr, cond: LinkCond) {
        let mut c = self.conds.lock().expect("memnet lock");
        if cond == LinkCond::default() {
            c.remove(&(from, to));
        } else {
            // A blackhole that goes on keeps its start (the idle timeout counts from it).
            let since = match c.get(&(from, to)) {
                Some((old, since)) if old.blackhole == cond.blackhole => *since,
                _ => Instant::now(),
            };
            c.insert((from, to), (cond, since));
        }
        drop(c);
        self.cuts.send_modify(|v| *v += 1);
    }

    /// Clears every link condition (cuts stay).
    pub fn clear_conds(&self) {
        self.conds.lock().expect("memnet lock").clear();
        self.cuts.send_modify(|v| *v += 1);
    }

    fn cond(&self, ends: Ends) -> Option<(LinkCond, Instant)> {
        self.conds.lock().expect("memnet lock").get(&ends).copied()
    }

    /// Whether packets from `ends.0` to `ends.1` vanish.
    pub fn blackholed(&self, ends: (SocketAddr, SocketAddr)) -> bool {
        self.cond(ends).is_some_and(|(c, _)| c.blackhole)
    }

    /// When a write of `bytes` on `ends` made now arrives.
    fn arrival(&self, ends: Ends, bytes: usize) -> Instant {
        let now = Instant::now();
        let Some((c, _)) = self.cond(ends) else {
            return now;
        };
        let mut rng = self.rng.lock().expect("memnet rng lock");
        let mut ms = c.delay_ms;
        if c.jitter_ms > 0 {
            ms += rng.random_range(0..=c.jitter_ms);
        }
        if c.loss > 0.0 {
            let packets = bytes.div_ceil(PACKET_BYTES).min(1_000) as i32;
            let any_lost = 1.0 - (1.0 - c.loss.clamp(0.0, 1.0)).powi(packets);
            let pto = 3 * c.delay_ms + 25;
            let mut resends = 0;
            while resends < RESENDS_MAX && rng.random_bool(any_lost) {
                ms += pto << resends;
                resends += 1;
            }
        }
        now + Duration::from_millis(ms)
    }

    /// When the link between `a` and `b` idles out, if one of its directions is blackholed.
    fn idle_deadline(&self, a: SocketAddr, b: SocketAddr) -> Option<Instant> {
        [(a, b), (b, a)]
            .into_iter()
            .filter_map(|e| self.cond(e).filter(|(c, _)| c.blackhole).map(|(_, s)| s))
            .min()
            .map(|since| since + IDLE_TIMEOUT)
    }
}

/// One till's attachment to a [`MemNet`].
pub struct MemTransport {
    net: Arc<MemNet>,
    addr: SocketAddr,
    inbox: tokio::sync::Mutex<mpsc::Receiver<MemConnReq>>,
    links: Mutex<Vec<MemLink>>,
}

impl std::fmt::Debug for MemTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemTransport")
            .field("addr", &self.addr)
            .finish()
    }
}

/// An in-memory connection: streams are tokio duplex pipes.
#[derive(Clone)]
pub struct MemLink {
    peer: (String, u64),
    ends: Ends,
    net: Arc<MemNet>,
    streams_out: mpsc::Sender<MemHalf>,
    streams_in: Arc<tokio::sync::Mutex<mpsc::Receiver<MemHalf>>>,
    closed: watch::Sender<Option<String>>,
}

impl std::fmt::Debug for MemLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemLink").field("ends", &self.ends).finish()
    }
}

impl MemLink {
    fn pair(
        net: &Arc<MemNet>,
        a: (SocketAddr, (String, u64)),
        b: (SocketAddr, (String, u64)),
    ) -> (MemLink, MemLink) {
        let (a_out, b_in) = mpsc::channel(4);
        let (b_out, a_in) = mpsc::channel(4);
        let closed = watch::channel(None).0;
        let la = MemLink {
            peer: b.1.clone(),
            ends: (a.0, b.0),
            net: net.clone(),
            streams_out: a_out,
            streams_in: Arc::new(tokio::sync::Mutex::new(a_in)),
            closed: closed.clone(),
        };
        let lb = MemLink {
            peer: a.1,
            ends: (b.0, a.0),
            net: net.clone(),
            streams_out: b_out,
            streams_in: Arc::new(tokio::sync::Mutex::new(b_in)),
            closed,
        };
        (la, lb)
    }
}

impl Link for MemLink {
    type Tx = MemTx;
    type Rx = MemRx;

    fn peer(&self) -> (String, u64) {
        self.peer.clone()
    }

    fn issued_s(&self) -> u64 {
        0
    }

    async fn open(&self) -> Result<(Self::Tx, Self::Rx), MeshError> {
        if self.net.is_cut(self.ends.0, self.ends.1) {
            return Err(conn_err("partitioned"));
        }
        let (mine, theirs) = tokio::io::duplex(MEM_STREAM_BYTES);
        let (r, w) = tokio::io::split(mine);
        let (tr, tw) = tokio::io::split(theirs);
        let (here, there) = self.ends;
        let (out_tx, out_rx) = direction(w, tr, &self.net, (here, there));
        let (in_tx, in_rx) = direction(tw, r, &self.net, (there, here));
        self.streams_out
            .send((in_tx, out_rx))
            .await
            .map_err(|_| conn_err("connection closed"))?;
        Ok((out_tx, in_rx))
    }

    async fn accept(&self) -> Result<(Self::Tx, Self::Rx), MeshError> {
        self.streams_in
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| conn_err("connection closed"))
    }

    fn close(&self, _code: u32, reason: &str) {
        self.closed.send_if_modified(|c| {
            if c.is_none() {
                *c = Some(reason.to_string());
                true
            } else {
                false
            }
        });
    }

    async fn closed(&self) -> String {
        let mut closed = self.closed.subscribe();
        let mut cuts = self.net.cuts.subscribe();
        loop {
            if let Some(r) = closed.borrow_and_update().clone() {
                return r;
            }
            if self.net.is_cut(self.ends.0, self.ends.1) {
                self.close(0, "partitioned");
                return "partitioned".into();
            }
            let idle = self.net.idle_deadline(self.ends.0, self.ends.1);
            if idle.is_some_and(|d| d <= Instant::now()) {
                self.close(0, "timed out");
                return "timed out".into();
            }
            let idle_out = async {
                match idle {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = closed.changed() => {}
                _ = cuts.changed() => {}
                _ = idle_out => {}
            }
        }
    }

    fn wire_bytes_sent(&self) -> u64 {
        0
    }
}

impl Transport for MemTransport {
    type Link = MemLink;
    type Pending = std::future::Ready<Result<MemLink, MeshError>>;

    async fn dial(&self, addr: SocketAddr, store_dns: &str) -> Result<MemLink, MeshError> {
        if self.net.is_cut(self.addr, addr) {
            return Err(conn_err("partitioned"));
        }
        if self.net.idle_deadline(self.addr, addr).is_some() {
            // The handshake needs both directions: it times out.
            tokio::time::sleep(IDLE_TIMEOUT).await;
            return Err(conn_err("timed out"));
        }
        let rtt = [(self.addr, addr), (addr, self.addr)]
            .into_iter()
            .filter_map(|e| self.net.cond(e))
            .map(|(c, _)| c.delay_ms)
            .sum::<u64>();
        if rtt > 0 {
            tokio::time::sleep(Duration::from_millis(rtt)).await;
        }
        let (inbox, theirs, mine) = {
            let nodes = self.net.nodes.lock().expect("memnet lock");
            let (inbox, theirs) = nodes
                .get(&addr)
                .cloned()
                .ok_or_else(|| conn_err("no till at that address"))?;
            let mine = nodes
                .get(&self.addr)
                .map(|n| n.1.clone())
                .ok_or_else(|| conn_err("detached"))?;
            (inbox, theirs, mine)
        };
        // The in-memory network trusts its attachments; the server name still has to match.
        if format!("{}.tillmesh", theirs.0) != store_dns {
            return Err(MeshError::Protocol(format!(
                "peer is of store {}",
                theirs.0
            )));
        }
        let (local, remote) = MemLink::pair(&self.net, (self.addr, mine), (addr, theirs));
        inbox
            .send(MemConnReq {
                from: self.addr,
                link: remote,
            })
            .await
            .map_err(|_| conn_err("peer is down"))?;
        self.links.lock().expect("links lock").push(local.clone());
        Ok(local)
    }

    async fn incoming(&self) -> Option<(SocketAddr, Self::Pending)> {
        let req = self.inbox.lock().await.recv().await?;
        self.links
            .lock()
            .expect("links lock")
            .push(req.link.clone());
        Some((req.from, std::future::ready(Ok(req.link))))
    }

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn close(&self) {
        self.net
            .nodes
            .lock()
            .expect("memnet lock")
            .remove(&self.addr);
        for l in self.links.lock().expect("links lock").drain(..) {
            l.close(0, "shutdown");
        }
    }

    async fn wait_idle(&self) {}
}
