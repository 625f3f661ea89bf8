//! The transport under the sync protocol: authenticated connections carrying ordered byte
//! streams between tills. [`QuicTransport`] is the real one (quinn, TLS 1.3 with mutual
//! authentication against the store CA); [`MemNet`] is an in-memory network with
//! partitions, for protocol tests and the simulator.

use crate::MeshError;
use crate::identity::{TillIdentity, peer_names};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};

/// One established, authenticated connection.
pub trait Link: Send + Sync + 'static {
    /// Write half of a stream.
    type Tx: AsyncWrite + Unpin + Send + 'static;
    /// Read half of a stream.
    type Rx: AsyncRead + Unpin + Send + 'static;
    /// `(store label, terminal)` the peer authenticated as.
    fn peer(&self) -> (String, u64);
    /// Opens a bidirectional stream.
    fn open(&self) -> impl Future<Output = Result<(Self::Tx, Self::Rx), MeshError>> + Send;
    /// Accepts the peer's bidirectional stream.
    fn accept(&self) -> impl Future<Output = Result<(Self::Tx, Self::Rx), MeshError>> + Send;
    /// Closes the connection with a code and a reason the peer can log.
    fn close(&self, code: u32, reason: &str);
    /// Resolves when the connection is closed, with the reason.
    fn closed(&self) -> impl Future<Output = String> + Send;
    /// Bytes sent on the wire so far (0 where the transport has no wire).
    fn wire_bytes_sent(&self) -> u64;
}

/// Dials and accepts [`Link`]s.
pub trait Transport: Send + Sync + 'static {
    /// The connection type.
    type Link: Link;
    /// An inbound connection whose authentication is still running.
    type Pending: Future<Output = Result<Self::Link, MeshError>> + Send + 'static;
    /// Connects to `addr`, authenticating the peer as a till of `store_dns`.
    fn dial(
        &self,
        addr: SocketAddr,
        store_dns: &str,
    ) -> impl Future<Output = Result<Self::Link, MeshError>> + Send;
    /// The next inbound connection; `None` once closed.
    fn incoming(&self) -> impl Future<Output = Option<(SocketAddr, Self::Pending)>> + Send;
    /// The local address peers dial.
    fn local_addr(&self) -> SocketAddr;
    /// Stops accepting and closes every connection.
    fn close(&self);
    /// Waits until every connection is closed.
    fn wait_idle(&self) -> impl Future<Output = ()> + Send;
}

// ----- QUIC ----------------------------------------------------------------------------

/// QUIC with mutual TLS.
#[derive(Debug)]
pub struct QuicTransport {
    endpoint: quinn::Endpoint,
}

impl QuicTransport {
    /// Binds `listen` with this till's certificate; GSO can be disabled for hosts where it
    /// fails (some loopback and container set-ups).
    pub fn bind(
        listen: SocketAddr,
        identity: &TillIdentity,
        disable_gso: bool,
    ) -> Result<Self, MeshError> {
        let setup = |e: &dyn std::fmt::Display| MeshError::Setup(e.to_string());
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(Duration::from_millis(500)));
        transport.max_idle_timeout(Some(
            Duration::from_secs(3).try_into().map_err(|e| setup(&e))?,
        ));
        if disable_gso {
            transport.enable_segmentation_offload(false);
        }
        let transport = Arc::new(transport);
        let server_tls = quinn::crypto::rustls::QuicServerConfig::try_from(
            identity.server_config().map_err(|e| setup(&e))?,
        )
        .map_err(|e| setup(&e))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_tls));
        server.transport_config(transport.clone());
        let client_tls = quinn::crypto::rustls::QuicClientConfig::try_from(
            identity.client_config().map_err(|e| setup(&e))?,
        )
        .map_err(|e| setup(&e))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_tls));
        client.transport_config(transport);
        let mut endpoint = quinn::Endpoint::server(server, listen).map_err(|e| setup(&e))?;
        endpoint.set_default_client_config(client);
        Ok(QuicTransport { endpoint })
    }
}

/// A QUIC connection with its authenticated peer.
#[derive(Debug)]
pub struct QuicLink {
    conn: quinn::Connection,
    peer: (String, u64),
}

impl QuicLink {
    fn new(conn: quinn::Connection) -> Result<Self, MeshError> {
        let certs = conn
            .peer_identity()
            .and_then(|id| {
                id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                    .ok()
            })
            .ok_or_else(|| MeshError::Protocol("peer presented no certificate".into()))?;
        let first = certs
            .first()
            .ok_or_else(|| MeshError::Protocol("empty certificate chain".into()))?;
        let peer = peer_names(first).map_err(|e| MeshError::Protocol(e.to_string()))?;
        Ok(QuicLink { conn, peer })
    }
}

fn conn_err(e: impl std::fmt::Display) -> MeshError {
    MeshError::Connection(e.to_string())
}

impl Link for QuicLink {
    type Tx = quinn::SendStream;
    type Rx = quinn::RecvStream;

    fn peer(&self) -> (String, u64) {
        self.peer.clone()
    }

    async fn open(&self) -> Result<(Self::Tx, Self::Rx), MeshError> {
        self.conn.open_bi().await.map_err(conn_err)
    }

    async fn accept(&self) -> Result<(Self::Tx, Self::Rx), MeshError> {
        self.conn.accept_bi().await.map_err(conn_err)
    }

    fn close(&self, code: u32, reason: &str) {
        self.conn.close(code.into(), reason.as_bytes());
    }

    async fn closed(&self) -> String {
        self.conn.closed().await.to_string()
    }

    fn wire_bytes_sent(&self) -> u64 {
        self.conn.stats().udp_tx.bytes
    }
}

type QuicPending = std::pin::Pin<Box<dyn Future<Output = Result<QuicLink, MeshError>> + Send>>;

impl Transport for QuicTransport {
    type Link = QuicLink;
    type Pending = QuicPending;

    async fn dial(&self, addr: SocketAddr, store_dns: &str) -> Result<QuicLink, MeshError> {
        let conn = self
            .endpoint
            .connect(addr, store_dns)
            .map_err(conn_err)?
            .await
            .map_err(conn_err)?;
        QuicLink::new(conn)
    }

    async fn incoming(&self) -> Option<(SocketAddr, QuicPending)> {
        let incoming = self.endpoint.accept().await?;
        let addr = incoming.remote_address();
        // The handshake (certificate checks included) runs in the caller's task.
        let pending: QuicPending =
            Box::pin(async move { QuicLink::new(incoming.await.map_err(conn_err)?) });
        Some((addr, pending))
    }

    fn local_addr(&self) -> SocketAddr {
        self.endpoint
            .local_addr()
            .expect("a bound endpoint has an address")
    }

    fn close(&self) {
        self.endpoint.close(0u32.into(), b"shutdown");
    }

    async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }
}

// ----- in memory -----------------------------------------------------------------------

/// Bytes buffered per in-memory stream direction.
const MEM_STREAM_BYTES: usize = 256 * 1024;

type MemHalf = (MemTx, MemRx);

/// The write half of an in-memory stream; fails once its link is cut.
#[derive(Debug)]
pub struct MemTx {
    inner: tokio::io::WriteHalf<tokio::io::DuplexStream>,
    net: Arc<MemNet>,
    ends: (SocketAddr, SocketAddr),
}

/// The read half of an in-memory stream; fails once its link is cut.
#[derive(Debug)]
pub struct MemRx {
    inner: tokio::io::ReadHalf<tokio::io::DuplexStream>,
    net: Arc<MemNet>,
    ends: (SocketAddr, SocketAddr),
}

fn cut_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "partitioned")
}

impl AsyncWrite for MemTx {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.net.is_cut(self.ends.0, self.ends.1) {
            return std::task::Poll::Ready(Err(cut_error()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl AsyncRead for MemRx {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.net.is_cut(self.ends.0, self.ends.1) {
            return std::task::Poll::Ready(Err(cut_error()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// An attached till: where to deliver its inbound connections, and who it is.
type MemNode = (mpsc::Sender<MemConnReq>, (String, u64));

struct MemConnReq {
    from: SocketAddr,
    link: MemLink,
}

/// An in-memory network of tills: addresses, identities, and cut links.
#[derive(Default)]
pub struct MemNet {
    nodes: Mutex<HashMap<SocketAddr, MemNode>>,
    cut: Mutex<HashSet<(SocketAddr, SocketAddr)>>,
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
        Arc::new(MemNet::default())
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
    ends: (SocketAddr, SocketAddr),
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

    async fn open(&self) -> Result<(Self::Tx, Self::Rx), MeshError> {
        if self.net.is_cut(self.ends.0, self.ends.1) {
            return Err(conn_err("partitioned"));
        }
        let (mine, theirs) = tokio::io::duplex(MEM_STREAM_BYTES);
        let (r, w) = tokio::io::split(mine);
        let (tr, tw) = tokio::io::split(theirs);
        let (net, here, there) = (self.net.clone(), self.ends.0, self.ends.1);
        let tx = MemTx {
            inner: tw,
            net: net.clone(),
            ends: (there, here),
        };
        let rx = MemRx {
            inner: tr,
            net: net.clone(),
            ends: (there, here),
        };
        self.streams_out
            .send((tx, rx))
            .await
            .map_err(|_| conn_err("connection closed"))?;
        Ok((
            MemTx {
                inner: w,
                net: net.clone(),
                ends: (here, there),
            },
            MemRx {
                inner: r,
                net,
                ends: (here, there),
            },
        ))
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
            tokio::select! {
                _ = closed.changed() => {}
                _ = cuts.changed() => {}
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
