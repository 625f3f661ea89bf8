//! The transport under the sync protocol: authenticated connections carrying ordered byte
//! streams between tills. [`QuicTransport`] is the real one (quinn, TLS 1.3 with mutual
//! authentication against the store CA); [`MemNet`](crate::memnet::MemNet) is the in-memory
//! network, for protocol tests and the simulator.

use crate::MeshError;
use crate::identity::{TillIdentity, peer_names};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// One established, authenticated connection.
pub trait Link: Send + Sync + 'static {
    /// Write half of a stream.
    type Tx: AsyncWrite + Unpin + Send + 'static;
    /// Read half of a stream.
    type Rx: AsyncRead + Unpin + Send + 'static;
    /// `(store label, terminal)` the peer authenticated as.
    fn peer(&self) -> (String, u64);
    /// When the peer's certificate was issued (its `notBefore`, seconds since the epoch; 0
    /// where the transport has no certificates): revocation compares against it.
    fn issued_s(&self) -> u64;
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
    issued_s: u64,
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
        let issued_s =
            crate::identity::issued_s(first).map_err(|e| MeshError::Protocol(e.to_string()))?;
        Ok(QuicLink {
            conn,
            peer,
            issued_s,
        })
    }
}

pub(crate) fn conn_err(e: impl std::fmt::Display) -> MeshError {
    MeshError::Connection(e.to_string())
}

impl Link for QuicLink {
    type Tx = quinn::SendStream;
    type Rx = quinn::RecvStream;

    fn peer(&self) -> (String, u64) {
        self.peer.clone()
    }

    fn issued_s(&self) -> u64 {
        self.issued_s
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
