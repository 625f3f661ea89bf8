//! Pushing: the per-peer push loop, batches of what the peer lacks read from durable
//! storage, one in flight until acknowledged, and bases for a peer behind the floor.

use super::*;
use crate::protocol::{Scope, below};

pub(super) enum PushEnd {
    /// The address is this till itself, or a peer another pusher already serves.
    Retire,
}

pub(super) async fn push_loop<R: Replicator, T: Transport>(s: Arc<Shared<R, T>>, addr: SocketAddr) {
    use rand::{Rng, SeedableRng};
    let mut rng = match s.cfg.jitter_seed {
        Some(seed) => {
            let salt = match addr {
                SocketAddr::V4(a) => u64::from(a.ip().to_bits()) << 16 | u64::from(a.port()),
                SocketAddr::V6(a) => u64::from(a.port()),
            };
            rand::rngs::StdRng::seed_from_u64(seed ^ salt)
        }
        None => {
            let mut b = [0_u8; 8];
            let _ = getrandom::fill(&mut b);
            rand::rngs::StdRng::seed_from_u64(u64::from_le_bytes(b))
        }
    };
    let mut backoff = 100_u64;
    // A peer that never answered yet is likely still starting (tills of a store boot
    // together): it is dialed every 100-150 ms for its first FAST_DIALS tries.
    let mut fast = FAST_DIALS;
    let mut stop = s.stop.subscribe();
    loop {
        if *stop.borrow() {
            return;
        }
        let started = tokio::time::Instant::now();
        // While the peer never answered, a dial that gets no handshake within
        // FAST_DIAL_MS is dropped and made again: a peer that was not listening yet would
        // otherwise be reached only at QUIC's first retransmission, about a second later.
        let within = (fast > 0).then_some(Duration::from_millis(FAST_DIAL_MS));
        let result = push(&s, addr, within).await;
        let never_answered = matches!(result, Err((None, _)));
        if !never_answered {
            fast = 0;
        }
        match result {
            Ok(PushEnd::Retire) => return,
            Err((peer, e)) => {
                debug!(%addr, cause = %e, "push connection ended");
                if let Some(t) = peer {
                    s.pushing_to.lock().expect("pushing lock").remove(&t);
                    with_peer(&s, t, addr, |p| {
                        p.outbound = PeerState::Connecting;
                        p.last_error = Some(e.to_string());
                    });
                }
            }
        }
        if started.elapsed() > Duration::from_secs(10) {
            backoff = 100;
        }
        // Exponential back-off with jitter.
        let jitter = rng.random_range(0..=backoff / 2);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(backoff + jitter)) => {}
            _ = stop.changed() => return,
        }
        if never_answered && fast > 0 {
            fast -= 1;
        } else {
            backoff = (backoff * 2).min(s.cfg.reconnect_ms_max);
        }
    }
}

/// Dials at the shortest back-off to a peer that has not answered yet (about 2 s).
const FAST_DIALS: u32 = 15;
/// How long such a dial waits for the handshake before it is made again.
const FAST_DIAL_MS: u64 = 300;

pub(super) async fn push<R: Replicator, T: Transport>(
    s: &Shared<R, T>,
    addr: SocketAddr,
    dial_within: Option<Duration>,
) -> Result<PushEnd, (Option<u64>, MeshError)> {
    let dns = store_dns(&s.store_id);
    let dial = s.transport.dial(addr, &dns);
    let dialed = match dial_within {
        Some(d) => tokio::time::timeout(d, dial).await.unwrap_or_else(|_| {
            Err(MeshError::Connection(format!(
                "no handshake within {} ms",
                d.as_millis()
            )))
        }),
        None => dial.await,
    };
    let link = Arc::new(dialed.map_err(|e| (None, e))?);
    let (_, peer) = link.peer();
    if peer == s.terminal {
        if s.same_terminal_is_another(addr) {
            link.close(6, "duplicate terminal id");
        } else {
            link.close(0, "self");
        }
        return Ok(PushEnd::Retire);
    }
    if !s.pushing_to.lock().expect("pushing lock").insert(peer) {
        link.close(0, "duplicate");
        return Ok(PushEnd::Retire);
    }
    if let Some(why) = s.faults.cut(&*link) {
        link.close(2, why);
        return Err((Some(peer), MeshError::Connection(why.into())));
    }
    let result: Result<(), MeshError> = async {
        let (mut send, mut recv) = link.open().await?;
        write_frame(&mut send, &hello(s)).await?;
        let reply = read_frame(&mut recv).await?;
        let greeting = check_hello(s, reply, peer)?;
        let mut theirs = greeting.vv;
        info!(peer, %addr, "pushing to peer");
        s.links
            .lock()
            .expect("links lock")
            .insert(peer, link.clone());
        with_peer(s, peer, addr, |p| {
            p.outbound = PeerState::Connected;
            p.last_error = None;
            p.protocol = Some(greeting.version);
            p.their_vv = theirs.clone();
        });
        let mut changes = s.replicator.changes();
        let mut faults = s.faults.changed.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(s.cfg.anti_entropy_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ack_timeout = Duration::from_millis(s.cfg.ack_timeout_ms);
        // A new session starts with everything the peer lacks.
        let mut scope = Scope::All;
        // Key records go first (protocol 2), and again whenever this till learns more.
        let mut keys_sent = 0;
        loop {
            if greeting.version >= wire::PROTOCOL_SEALS && s.replicator.keys_count() != keys_sent {
                let mut records = s.replicator.key_records();
                keys_sent = records.len();
                records.truncate(wire::KEYS_MAX);
                write_frame(&mut send, &Frame::Keys(records)).await?;
                theirs = await_ack(&*link, &mut recv, ack_timeout).await?;
            }
            if let Some(why) = s.faults.cut(&*link) {
                link.close(2, why);
                return Err(MeshError::Connection(why.into()));
            }
            if below(&theirs, &s.replicator.floor()) {
                theirs = send_base(s, &*link, &mut send, &mut recv, ack_timeout).await?;
                with_peer(s, peer, addr, |p| p.their_vv = theirs.clone());
                if below(&theirs, &s.replicator.floor()) {
                    return Err(MeshError::Protocol(
                        "the peer still lacks pruned events after taking the base".into(),
                    ));
                }
                continue;
            }
            let Some((n, frame)) = collect(s, &theirs, scope, greeting.version).await? else {
                changes.borrow_and_update();
                tokio::select! {
                    // A local commit: push this till's own new events at once. Other origins'
                    // events reach the peer from their own origin; relaying them on every
                    // change would send each event several times.
                    _ = changes.changed() => scope = Scope::Own,
                    _ = faults.changed() => scope = Scope::All,
                    _ = tick.tick() => {
                        // Anti-entropy: re-read what the peer holds and relay anything it
                        // lacks from any origin (repairs partitions and lost data).
                        write_frame(&mut send, &Frame::Probe).await?;
                        theirs = await_ack(&*link, &mut recv, ack_timeout).await?;
                        with_peer(s, peer, addr, |p| p.their_vv = theirs.clone());
                        scope = Scope::All;
                    }
                    reason = link.closed() => return Err(MeshError::Connection(reason)),
                }
                continue;
            };
            write_bytes(&mut send, &frame).await?;
            theirs = await_ack(&*link, &mut recv, ack_timeout).await?;
            let wire_bytes = link.wire_bytes_sent();
            with_peer(s, peer, addr, |p| {
                p.events_sent += n as u64;
                p.frame_bytes_sent += frame.len() as u64;
                p.udp_bytes_sent = wire_bytes;
                p.their_vv = theirs.clone();
            });
        }
    }
    .await;
    {
        let mut links = s.links.lock().expect("links lock");
        if links.get(&peer).is_some_and(|l| Arc::ptr_eq(l, &link)) {
            links.remove(&peer);
        }
    }
    let e = result
        .err()
        .unwrap_or_else(|| MeshError::Connection("ended".into()));
    link.close(0, &e.to_string());
    Err((Some(peer), e))
}

pub(super) async fn await_ack(
    link: &impl Link,
    recv: &mut (impl AsyncRead + Unpin),
    timeout: Duration,
) -> Result<VersionVector, MeshError> {
    let frame = tokio::select! {
        f = tokio::time::timeout(timeout, read_frame(recv)) => f,
        reason = link.closed() => return Err(MeshError::Connection(reason)),
    };
    match frame {
        Err(_) => Err(MeshError::Connection(format!(
            "no Ack within {} ms",
            timeout.as_millis()
        ))),
        Ok(Ok(Frame::Ack(vv))) => Ok(vv),
        Ok(Ok(other)) => Err(MeshError::Protocol(format!(
            "expected Ack, got {}",
            frame_name(&other)
        ))),
        Ok(Err(e)) => Err(e),
    }
}

/// Sends this till's base in parts, each acknowledged; answers the peer's vector after the
/// last part.
pub(super) async fn send_base<R: Replicator, T: Transport>(
    s: &Shared<R, T>,
    link: &impl Link,
    send: &mut (impl AsyncWrite + Unpin),
    recv: &mut (impl AsyncRead + Unpin),
    timeout: Duration,
) -> Result<VersionVector, MeshError> {
    let base = s
        .replicator
        .base()
        .await
        .map_err(MeshError::Replica)?
        .ok_or_else(|| MeshError::Local("events were pruned but no base is stored".into()))?;
    let parts = protocol::base_parts(&base).ok_or_else(|| {
        MeshError::Local(format!(
            "the base of {} bytes is too large to send",
            base.len()
        ))
    })?;
    let mut theirs = VersionVector::new();
    for frame in parts {
        write_frame(send, &frame).await?;
        // The last part is merged and made durable before its Ack: allow for it.
        theirs = await_ack(link, recv, timeout * 4).await?;
    }
    Ok(theirs)
}

/// The next batch the peer lacks, per origin from its vector on, in sequence order: the
/// number of events and the encoded `Events` frame (`None` when it lacks nothing).
pub(super) async fn collect<R: Replicator, T: Transport>(
    s: &Shared<R, T>,
    theirs: &VersionVector,
    scope: Scope,
    version: u16,
) -> Result<Option<(usize, Vec<u8>)>, MeshError> {
    let ours = s.replicator.version_vector();
    let own = s.replicator.own_origin();
    let mut batch = Vec::new();
    let max = s.cfg.batch_events_max.clamp(1, wire::BATCH_EVENTS_MAX);
    for (origin, have) in protocol::lacking(&ours, theirs, own, scope) {
        let room = max - batch.len();
        if room == 0 {
            break;
        }
        let evs = s
            .replicator
            .events_after(origin, have, room)
            .await
            .map_err(MeshError::Replica)?;
        batch.extend(evs);
    }
    if batch.is_empty() {
        return Ok(None);
    }
    // Encode once; a frame over the byte limit is halved and encoded again (events are
    // bounded, so this ends with at least one event).
    loop {
        let frame = Frame::events(version, batch);
        let bytes = wire::encode(&frame);
        batch = frame.into_events().unwrap_or_default();
        if bytes.len() <= wire::FRAME_BYTES_MAX || batch.len() == 1 {
            return Ok(Some((batch.len(), bytes)));
        }
        batch.truncate(batch.len() / 2);
    }
}
