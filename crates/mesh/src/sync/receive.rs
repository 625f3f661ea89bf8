//! Receiving: the accept loop, a peer's pushed batches applied durably and acknowledged, and
//! its requests (Raft RPCs) answered on their own streams.

use super::*;

pub(super) async fn accept_loop<R: Replicator, T: Transport>(s: Arc<Shared<R, T>>) {
    // Connection tasks live in this set, so aborting the accept loop ends them too (and
    // with them the last handles on the transport, which frees the port).
    let mut conns = tokio::task::JoinSet::new();
    while let Some((addr, pending)) = s.transport.incoming().await {
        while conns.try_join_next().is_some() {}
        if conns.len() >= INBOUND_MAX {
            warn!(%addr, "too many inbound mesh connections; refusing one");
            drop(pending);
            continue;
        }
        let s = s.clone();
        conns.spawn(async move {
            let link = match pending.await {
                Ok(link) => link,
                Err(e) => {
                    // Handshake refusals (unknown CA, no certificate, wrong ALPN) land here.
                    warn!(%addr, cause = %e, "refused a mesh connection at the handshake");
                    return;
                }
            };
            let peer = link.peer().1;
            if let Err(e) = receive(&s, &link, addr).await {
                warn!(%addr, peer, cause = %e, "inbound mesh connection ended");
                with_peer(&s, peer, addr, |p| {
                    p.inbound = false;
                    p.last_error = Some(e.to_string());
                });
            }
        });
    }
}

pub(super) async fn receive<R: Replicator, T: Transport>(
    s: &Shared<R, T>,
    link: &T::Link,
    addr: SocketAddr,
) -> Result<(), MeshError> {
    let (label, peer) = link.peer();
    if label != store_label(&s.store_id) {
        link.close(1, "wrong store");
        return Err(MeshError::Protocol(format!(
            "certificate is for store {label}"
        )));
    }
    if let Some(why) = s.faults.cut(link) {
        link.close(2, why);
        return Err(MeshError::Connection(why.into()));
    }
    if peer == s.terminal && s.same_terminal_is_another(addr) {
        link.close(6, "duplicate terminal id");
        return Err(MeshError::Protocol(format!(
            "a till at {addr} presents this till's own terminal id {peer}"
        )));
    }
    let Some(_held) = InboundGuard::take(s, peer) else {
        link.close(5, "too many connections");
        with_peer(s, peer, addr, |p| p.inbound_refused += 1);
        return Err(MeshError::Connection(format!(
            "peer holds {INBOUND_PER_PEER_MAX} connections already; refused another"
        )));
    };
    let result = async {
        let (mut send, mut recv) = link.accept().await?;
        let first = read_frame(&mut recv).await?;
        let greeting = match check_hello(s, first, peer) {
            Err(e @ MeshError::Rules(protocol::ProtocolError::Version(_))) => {
                // Tell the peer why: it reads this till's range, reaches the same verdict
                // (so both statuses name it) and closes.
                let _ = write_frame(&mut send, &hello(s)).await;
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut send).await;
                let _ = tokio::time::timeout(Duration::from_secs(2), link.closed()).await;
                return Err(e);
            }
            other => other?,
        };
        write_frame(&mut send, &hello(s)).await?;
        with_peer(s, peer, addr, |p| {
            p.inbound = true;
            p.protocol = Some(greeting.version);
        });
        let mut faults = s.faults.changed.subscribe();
        // A base arriving in parts (bounded: at most BASE_CHUNKS_MAX parts of bounded size).
        let mut base = protocol::BaseAssembly::default();
        // Further streams the peer opens each carry one request.
        let rpcs = serve_requests(s, link, peer);
        tokio::pin!(rpcs);
        loop {
            let frame = tokio::select! {
                f = read_frame(&mut recv) => f?,
                e = &mut rpcs => return Err(e),
                reason = link.closed() => return Err(MeshError::Connection(reason)),
                _ = faults.changed() => {
                    if let Some(why) = s.faults.cut(link) {
                        link.close(2, why);
                        return Err(MeshError::Connection(why.into()));
                    }
                    continue;
                }
            };
            match frame {
                Frame::Keys(records) => {
                    s.replicator
                        .admit_keys(peer, records)
                        .await
                        .map_err(MeshError::Replica)?;
                    write_frame(&mut send, &Frame::Ack(s.replicator.version_vector())).await?;
                }
                frame @ (Frame::Events(_) | Frame::Sealed(_) | Frame::Traced(_)) => {
                    let events = frame.into_events().unwrap_or_default();
                    let n = events.len() as u64;
                    let vv = s
                        .replicator
                        .apply(peer, events)
                        .await
                        .map_err(MeshError::Replica)?;
                    with_peer(s, peer, addr, |p| p.events_received += n);
                    write_frame(&mut send, &Frame::Ack(vv)).await?;
                }
                Frame::Probe => {
                    write_frame(&mut send, &Frame::Ack(s.replicator.version_vector())).await?;
                }
                Frame::Base {
                    index,
                    count,
                    bytes,
                } => {
                    let vv = match base.push(index, count, &bytes)? {
                        Some(whole) => {
                            info!(peer, bytes = whole.len(), "merging a peer's compacted base");
                            s.replicator
                                .apply_base(peer, whole)
                                .await
                                .map_err(MeshError::Replica)?
                        }
                        None => s.replicator.version_vector(),
                    };
                    write_frame(&mut send, &Frame::Ack(vv)).await?;
                }
                other => {
                    return Err(MeshError::Protocol(format!(
                        "unexpected {} from a pusher",
                        frame_name(&other)
                    )));
                }
            }
        }
    }
    .await;
    if let Err(e) = &result {
        let code: u32 = match e {
            MeshError::Wire(_) | MeshError::Protocol(_) => 3,
            MeshError::Local(_) | MeshError::Replica(_) => 4,
            _ => 0,
        };
        link.close(code, &e.to_string());
    }
    result
}

/// Accepts request streams on an inbound link and answers each on its own task; returns
/// when the link fails.
pub(super) async fn serve_requests<R: Replicator, T: Transport>(
    s: &Shared<R, T>,
    link: &T::Link,
    peer: u64,
) -> MeshError {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (mut send, mut recv) = match link.accept().await {
            Ok(streams) => streams,
            Err(e) => return e,
        };
        while tasks.try_join_next().is_some() {}
        if tasks.len() >= RPC_CONCURRENT_MAX {
            warn!(
                peer,
                "too many requests in flight from a peer; dropping one"
            );
            continue;
        }
        let replicator = s.replicator.clone();
        let blocked = s.faults.cut(link).is_some();
        tasks.spawn(async move {
            if blocked {
                return;
            }
            match read_frame(&mut recv).await {
                Ok(Frame::Rpc(body)) => {
                    let answer = replicator.rpc(peer, body).await;
                    if let Err(e) = write_frame(&mut send, &Frame::RpcReply(answer)).await {
                        debug!(peer, cause = %e, "could not answer a request");
                    }
                }
                Ok(other) => warn!(
                    peer,
                    frame = frame_name(&other),
                    "unexpected frame on a request stream"
                ),
                Err(e) => debug!(peer, cause = %e, "request stream failed"),
            }
        });
    }
}

/// Most requests from one peer answered at once.
pub const RPC_CONCURRENT_MAX: usize = 64;

/// One inbound connection counted against its peer's limit while it lives.
struct InboundGuard<'a> {
    inbound: &'a Mutex<HashMap<u64, usize>>,
    peer: u64,
}

impl<'a> InboundGuard<'a> {
    fn take<R: Replicator, T: Transport>(s: &'a Shared<R, T>, peer: u64) -> Option<Self> {
        let mut m = s.inbound.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(peer).or_insert(0);
        if *n >= INBOUND_PER_PEER_MAX {
            return None;
        }
        *n += 1;
        Some(Self {
            inbound: &s.inbound,
            peer,
        })
    }
}

impl Drop for InboundGuard<'_> {
    fn drop(&mut self) {
        let mut m = self.inbound.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.peer);
            }
        }
    }
}
