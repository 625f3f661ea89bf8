//! The sync protocol over the in-memory transport: three replicas converge, a partition
//! keeps the sides apart, healing reconverges them. No sockets, no disk: the same engine the
//! QUIC tests drive, on the transport the simulator uses, with its packet-fault model (delay,
//! jitter, loss, one-way blackholes) on simulated time.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tillmesh_crdt::{ReplicaId, VersionVector};
use tillmesh_mesh::{LinkCond, MemNet, Mesh, MeshConfig, ReplicaError, Replicator};
use tillmesh_pos::event::Event;
use tillmesh_pos::inventory::Reason;
use tillmesh_pos::state::Replica;
use tokio::sync::watch;

/// A replica that keeps its events in memory.
struct MemReplica {
    inner: Mutex<(Replica, Vec<Event>)>,
    changes: watch::Sender<u64>,
}

impl MemReplica {
    fn new(id: u64) -> Arc<Self> {
        Arc::new(MemReplica {
            inner: Mutex::new((
                Replica::new(ReplicaId::for_terminal(id as u32, 7)),
                Vec::new(),
            )),
            changes: watch::channel(0).0,
        })
    }

    fn adjust(&self, sku: &str, change: i64) {
        let mut g = self.inner.lock().unwrap();
        let e =
            g.0.adjust(sku, change, Reason::Manual, None, None, "E", 1000);
        g.1.push(e);
        drop(g);
        self.changes.send_modify(|v| *v += 1);
    }

    fn stock(&self, sku: &str) -> i64 {
        self.inner.lock().unwrap().0.state().stock(sku)
    }
}

impl Replicator for MemReplica {
    fn version_vector(&self) -> VersionVector {
        self.inner.lock().unwrap().0.state().vv.clone()
    }

    async fn events_after(
        &self,
        origin: ReplicaId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, ReplicaError> {
        let g = self.inner.lock().unwrap();
        let mut evs: Vec<Event> =
            g.1.iter()
                .filter(|e| e.origin == origin && e.seq > after)
                .cloned()
                .collect();
        evs.sort_by_key(|e| e.seq);
        evs.truncate(limit);
        Ok(evs)
    }

    async fn apply(&self, _from: u64, events: Vec<Event>) -> Result<VersionVector, ReplicaError> {
        let mut g = self.inner.lock().unwrap();
        for e in events {
            e.check()
                .map_err(|e| ReplicaError::Refused(e.to_string()))?;
            if !g.0.state().holds(e.origin, e.seq) {
                g.0.apply_remote(&e, 10_000)
                    .map_err(|e| ReplicaError::Refused(e.to_string()))?;
                g.1.push(e);
            }
        }
        let vv = g.0.state().vv.clone();
        drop(g);
        self.changes.send_modify(|v| *v += 1);
        Ok(vv)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn now_ms(&self) -> u64 {
        10_000
    }

    fn own_origin(&self) -> Option<ReplicaId> {
        Some(self.inner.lock().unwrap().0.id())
    }

    async fn rpc(&self, from: u64, mut body: Vec<u8>) -> Vec<u8> {
        // Answers "<me>:<from>:" and the request reversed.
        body.reverse();
        let me = self.own_origin().map_or(0, |o| o.terminal());
        let mut answer = format!("{me}:{from}:").into_bytes();
        answer.extend(body);
        answer
    }
}

fn addr(i: u64) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8], 7400))
}

/// `n` replicas of store S001 on `net`, each with its mesh (terminals 1..=n).
#[allow(clippy::type_complexity)]
fn store(
    net: &Arc<MemNet>,
    n: u64,
) -> (
    Vec<Arc<MemReplica>>,
    Vec<Mesh<MemReplica, tillmesh_mesh::MemTransport>>,
) {
    let cfg = MeshConfig {
        anti_entropy_ms: 100,
        ..MeshConfig::default()
    };
    let reps: Vec<Arc<MemReplica>> = (1..=n).map(MemReplica::new).collect();
    let meshes = (1..=n)
        .map(|i| {
            Mesh::with_transport(
                cfg.clone(),
                "S001",
                i,
                net.attach(addr(i), "s001", i),
                reps[i as usize - 1].clone(),
            )
        })
        .collect();
    (reps, meshes)
}

async fn converged(reps: &[&Arc<MemReplica>]) {
    for _ in 0..400 {
        let vvs: Vec<_> = reps.iter().map(|r| r.version_vector()).collect();
        if vvs.windows(2).all(|w| w[0] == w[1]) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("replicas did not converge within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_mesh_converges_partitions_and_heals() {
    let net = MemNet::new();
    let (reps, meshes) = store(&net, 3);
    for (i, m) in meshes.iter().enumerate() {
        for j in 1..=3 {
            if j != i as u64 + 1 {
                m.add_peer(addr(j));
            }
        }
    }
    for (i, r) in reps.iter().enumerate() {
        for k in 0..20 {
            r.adjust("A", i as i64 + k);
        }
    }
    converged(&reps.iter().collect::<Vec<_>>()).await;
    let total: i64 = (0..3).map(|i| (0..20).map(|k| i + k).sum::<i64>()).sum();
    assert!(reps.iter().all(|r| r.stock("A") == total));

    // Cut replica 3 off; each side keeps working.
    net.cut(addr(3), addr(1));
    net.cut(addr(3), addr(2));
    reps[0].adjust("B", 5);
    reps[2].adjust("B", 7);
    converged(&[&reps[0], &reps[1]]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        reps[2].stock("B"),
        7,
        "the cut replica saw the other side's change"
    );
    assert_eq!(reps[1].stock("B"), 5);

    net.heal(addr(3), addr(1));
    net.heal(addr(3), addr(2));
    converged(&reps.iter().collect::<Vec<_>>()).await;
    assert!(
        reps.iter()
            .all(|r| r.stock("B") == 12 && r.stock("A") == total)
    );
    for m in &meshes {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_travel_over_the_peer_links_and_respect_cuts() {
    let net = MemNet::new();
    let (_reps, meshes) = store(&net, 2);
    meshes[0].add_peer(addr(2));
    meshes[1].add_peer(addr(1));
    let mut answer = Err(tillmesh_mesh::MeshError::Connection("not yet".into()));
    for _ in 0..200 {
        answer = meshes[0].call(2, b"abc".to_vec()).await;
        if answer.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(answer.unwrap(), b"2:1:cba".to_vec());
    let back = meshes[1].call(1, b"xy".to_vec()).await;
    assert_eq!(back.unwrap(), b"1:2:yx".to_vec());
    // No connection to an unknown terminal; a blocked peer is not called.
    assert!(meshes[0].call(9, vec![]).await.is_err());
    meshes[0].faults().block(2);
    assert!(meshes[0].call(2, vec![]).await.is_err());
    for m in &meshes {
        m.shutdown().await;
    }
}

fn every_direction(net: &MemNet, n: u64, cond: LinkCond) {
    for a in 1..=n {
        for b in 1..=n {
            if a != b {
                net.set_cond(addr(a), addr(b), cond);
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn delay_jitter_and_loss_slow_delivery_but_lose_nothing() {
    let net = MemNet::seeded(7);
    let (reps, meshes) = store(&net, 3);
    for (i, m) in meshes.iter().enumerate() {
        for j in 1..=3 {
            if j != i as u64 + 1 {
                m.add_peer(addr(j));
            }
        }
    }
    reps[0].adjust("A", 1);
    converged(&reps.iter().collect::<Vec<_>>()).await;
    let cond = LinkCond {
        delay_ms: 80,
        jitter_ms: 40,
        loss: 0.3,
        blackhole: false,
    };
    every_direction(&net, 3, cond);
    reps[0].adjust("A", 2);
    // On simulated time: nothing can arrive before the one-way delay.
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(reps[1].stock("A"), 1, "arrived before the link delay");
    for k in 0..30 {
        reps[(k % 3) as usize].adjust("B", k);
    }
    converged(&reps.iter().collect::<Vec<_>>()).await;
    let b: i64 = (0..30).sum();
    assert!(reps.iter().all(|r| r.stock("A") == 3 && r.stock("B") == b));
    for m in &meshes {
        m.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_one_way_blackhole_holds_traffic_then_idles_the_link_out_and_heals() {
    let net = MemNet::seeded(3);
    let (reps, meshes) = store(&net, 2);
    meshes[0].add_peer(addr(2));
    meshes[1].add_peer(addr(1));
    reps[0].adjust("A", 1);
    converged(&[&reps[0], &reps[1]]).await;
    // Replica 1's packets to replica 2 vanish; replica 2's still reach replica 1.
    let hole = LinkCond {
        blackhole: true,
        ..LinkCond::default()
    };
    net.set_cond(addr(1), addr(2), hole);
    reps[0].adjust("A", 10);
    reps[1].adjust("A", 100);
    tokio::time::sleep(tillmesh_mesh::memnet::IDLE_TIMEOUT * 2).await;
    assert_eq!(reps[1].stock("A"), 101, "a change crossed the blackhole");
    let peers = meshes[1].peers();
    assert!(
        peers
            .iter()
            .all(|p| p.outbound != tillmesh_mesh::PeerState::Connected && !p.inbound),
        "the link outlived the idle timeout: {peers:?}"
    );
    net.set_cond(addr(1), addr(2), LinkCond::default());
    converged(&[&reps[0], &reps[1]]).await;
    assert!(reps.iter().all(|r| r.stock("A") == 111));
    for m in &meshes {
        m.shutdown().await;
    }
}
