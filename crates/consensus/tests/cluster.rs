//! A store's Raft group over an in-memory transport (real openraft, real SQLite storage):
//! tills booting at once form one group with one leader; the leader dies and another takes
//! over; committed store state survives and watermarks never move backwards.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tillmesh_consensus::Command;
use tillmesh_consensus::network::RaftTransport;
use tillmesh_consensus::node::{StoreRaft, Timing};

/// Tills reachable by id; a till marked down neither sends nor answers; a cut pair does not
/// reach each other.
#[derive(Default)]
struct Net {
    nodes: Mutex<HashMap<u64, StoreRaft>>,
    down: Mutex<HashSet<u64>>,
    cut: Mutex<HashSet<(u64, u64)>>,
}

struct Port {
    me: u64,
    net: Arc<Net>,
}

impl RaftTransport for Port {
    async fn call(&self, target: u64, body: Vec<u8>) -> Result<Vec<u8>, String> {
        let node = {
            let down = self.net.down.lock().unwrap();
            let cut = self.net.cut.lock().unwrap();
            if down.contains(&self.me)
                || down.contains(&target)
                || cut.contains(&(self.me, target))
                || cut.contains(&(target, self.me))
            {
                return Err("unreachable".into());
            }
            self.net.nodes.lock().unwrap().get(&target).cloned()
        };
        let node = node.ok_or("no such till")?;
        let answer = node.serve(self.me, &body).await;
        if self.net.down.lock().unwrap().contains(&self.me) {
            return Err("unreachable".into());
        }
        Ok(answer)
    }
}

fn timing() -> Timing {
    Timing {
        heartbeat_ms: 50,
        election_min_ms: 200,
        election_max_ms: 400,
        pre_vote: true,
    }
}

async fn boot(ids: &[u64], dir: &std::path::Path, net: &Arc<Net>) -> Vec<StoreRaft> {
    let starts = ids.iter().map(|&id| {
        let net = net.clone();
        let path = dir.join(format!("raft-{id}.db"));
        async move {
            let port = Arc::new(Port {
                me: id,
                net: net.clone(),
            });
            let node = StoreRaft::start(id, &path, port, timing()).await.unwrap();
            net.nodes.lock().unwrap().insert(id, node.clone());
            node
        }
    });
    let nodes = in_order(starts).await;
    // Every till applies the rule, each having seen all the others.
    let all: Vec<u64> = ids.to_vec();
    let founded = in_order(nodes.iter().map(|n| {
        let all = all.clone();
        async move { n.bootstrap(&all).await.unwrap() }
    }))
    .await;
    assert_eq!(
        founded.iter().filter(|f| **f).count(),
        1,
        "exactly one till founds the group"
    );
    nodes
}

async fn in_order<F: std::future::Future>(fs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    let handles: Vec<_> = fs.into_iter().collect();
    for f in handles {
        out.push(f.await);
    }
    out
}

/// Waits until every live node names the same leader, which is live; returns it.
async fn agreed_leader(nodes: &[StoreRaft], net: &Net) -> u64 {
    for _ in 0..200 {
        let down = net.down.lock().unwrap().clone();
        let mut leaders = HashSet::new();
        for n in nodes.iter().filter(|n| !down.contains(&n.id)) {
            leaders.insert(n.leader().await);
        }
        if leaders.len() == 1
            && let Some(Some(l)) = leaders.into_iter().next()
            && !down.contains(&l)
        {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the live tills did not agree on a leader within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_tills_elect_one_leader_and_survive_its_death() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let nodes = boot(&[5, 3, 1, 4, 2], dir.path(), &net).await;
    let first = agreed_leader(&nodes, &net).await;
    let by_id = |id: u64| nodes.iter().find(|n| n.id == id).unwrap();
    by_id(first)
        .propose(Command::Acked {
            watermarks: vec![(7, 10)],
        })
        .await
        .unwrap();
    // The leader dies.
    net.down.lock().unwrap().insert(first);
    by_id(first).shutdown().await;
    let second = agreed_leader(&nodes, &net).await;
    assert_ne!(second, first);
    let metrics = by_id(second).raft.metrics().borrow().clone();
    assert!(
        metrics.current_term >= 2,
        "a new term: {}",
        metrics.current_term
    );
    // A stale acknowledgement cannot move the watermark back; a newer one moves it on.
    by_id(second)
        .propose(Command::Acked {
            watermarks: vec![(7, 4), (8, 3)],
        })
        .await
        .unwrap();
    by_id(second)
        .propose(Command::MasterVersion(12))
        .await
        .unwrap();
    for _ in 0..100 {
        let live: Vec<_> = nodes
            .iter()
            .filter(|n| n.id != first)
            .map(|n| n.state())
            .collect();
        if live.iter().all(|s| s.master_version == 12) {
            for s in &live {
                assert_eq!(s.acked.get(&7), Some(&10));
                assert_eq!(s.acked.get(&8), Some(&3));
            }
            for n in &nodes {
                n.shutdown().await;
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the live tills did not all apply the new leader's commands");
}

/// Pre-vote: a till cut from a healthy leader (but not from the other till) asks for a
/// pre-vote, is refused by the till that still hears the leader, and never campaigns; when
/// the link heals the leader leads on in the same term. (Without pre-votes the cut till
/// campaigns in ever higher terms, and its first answer after the heal deposes the leader.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_till_cut_from_a_healthy_leader_does_not_depose_it() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let nodes = boot(&[1, 2, 3], dir.path(), &net).await;
    let leader = agreed_leader(&nodes, &net).await;
    let by_id = |id: u64| nodes.iter().find(|n| n.id == id).unwrap();
    let term = by_id(leader).raft.metrics().borrow().current_term;
    let cut = nodes.iter().map(|n| n.id).find(|&i| i != leader).unwrap();
    net.cut.lock().unwrap().insert((leader, cut));
    // Many election timeouts (400 ms lease + up to 300 ms) without the leader.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    net.cut.lock().unwrap().clear();
    by_id(leader)
        .propose(Command::MasterVersion(3))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    for n in &nodes {
        let m = n.raft.metrics().borrow().clone();
        assert_eq!(
            (m.current_term, m.current_leader),
            (term, Some(leader)),
            "T{} after the heal",
            n.id
        );
    }
    assert_eq!(by_id(cut).campaigns(), 0, "the cut till never campaigned");
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_till_does_not_found_a_second_group() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let nodes = boot(&[1, 2, 3], dir.path(), &net).await;
    let leader = agreed_leader(&nodes, &net).await;
    for n in &nodes {
        n.shutdown().await;
    }
    net.nodes.lock().unwrap().clear();
    // All restart; till 1 (the lowest) applies the rule again: refused, the group goes on.
    let net = Arc::new(Net::default());
    let mut again = Vec::new();
    for id in [1, 2, 3] {
        let port = Arc::new(Port {
            me: id,
            net: net.clone(),
        });
        let n = StoreRaft::start(
            id,
            &dir.path().join(format!("raft-{id}.db")),
            port,
            timing(),
        )
        .await
        .unwrap();
        net.nodes.lock().unwrap().insert(id, n.clone());
        again.push(n);
    }
    assert!(!again[0].bootstrap(&[1, 2, 3]).await.unwrap());
    let next = agreed_leader(&again, &net).await;
    // The same group: all three are voters, and it still commits.
    let m = again[0].raft.metrics().borrow().clone();
    let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
    assert_eq!(
        voters,
        vec![1, 2, 3],
        "first leader was {leader}, now {next}"
    );
    let by_id = |id: u64| again.iter().find(|n| n.id == id).unwrap();
    by_id(next)
        .propose(Command::MasterVersion(3))
        .await
        .unwrap();
    for n in &again {
        n.shutdown().await;
    }
}

/// 5 tills boot at once, many times, with different start orders and delays (seeded): each
/// time exactly one founds the group and all agree on one leader, whose group has 5 voters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_boots_form_exactly_one_group() {
    for round in 0..8u64 {
        let dir = tempfile::tempdir().unwrap();
        let net = Arc::new(Net::default());
        let ids = [1u64, 2, 3, 4, 5];
        let mut tasks = Vec::new();
        for &id in &ids {
            let net = net.clone();
            let path = dir.path().join(format!("raft-{id}.db"));
            // A different delay per till and round (0-45 ms).
            let delay = (id * 7919 + round * 104_729) % 10 * 5;
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let port = Arc::new(Port {
                    me: id,
                    net: net.clone(),
                });
                let node = StoreRaft::start(id, &path, port, timing()).await.unwrap();
                net.nodes.lock().unwrap().insert(id, node.clone());
                let founded = node.bootstrap(&ids).await.unwrap();
                (node, founded)
            }));
        }
        let mut nodes = Vec::new();
        let mut founders = 0;
        for t in tasks {
            let (n, f) = t.await.unwrap();
            founders += usize::from(f);
            nodes.push(n);
        }
        assert_eq!(founders, 1, "round {round}");
        let leader = agreed_leader(&nodes, &net).await;
        let m = nodes[0].raft.metrics().borrow().clone();
        assert_eq!(
            m.membership_config.membership().voter_ids().count(),
            5,
            "round {round}, leader {leader}"
        );
        for n in &nodes {
            n.shutdown().await;
        }
    }
}

/// A store of 5 tills whose LAN is split 2|3 at boot: with the store's till count known, only
/// the 3 found a group (the 2 wait for a majority); once the split heals, the leader adds
/// the 2, one at a time, and there is still one group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_at_boot_founds_only_on_the_majority_side() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let mut nodes = Vec::new();
    for id in 1..=5u64 {
        let port = Arc::new(Port {
            me: id,
            net: net.clone(),
        });
        let path = dir.path().join(format!("raft-{id}.db"));
        let node = StoreRaft::start(id, &path, port.clone(), timing())
            .await
            .unwrap();
        net.nodes.lock().unwrap().insert(id, node.clone());
        nodes.push((node, port));
    }
    let side = |id: u64| if id <= 2 { vec![1, 2] } else { vec![3, 4, 5] };
    let peers = |id: u64| -> Vec<u64> { side(id).into_iter().filter(|p| *p != id).collect() };
    // Each till runs the rule seeing only its side: 2 of 5 is no majority, so they wait.
    for (n, port) in &nodes {
        let what = n
            .membership_round(&**port, &peers(n.id), &[], 5)
            .await
            .unwrap();
        if n.id <= 2 {
            assert_eq!(
                what, "waiting for a majority of the store's tills",
                "till {}",
                n.id
            );
        }
    }
    assert!(!nodes[0].0.initialized() && !nodes[1].0.initialized());
    let majority: Vec<StoreRaft> = nodes[2..].iter().map(|(n, _)| n.clone()).collect();
    let leader = agreed_leader(&majority, &net).await;
    assert!(leader >= 3);
    // The split heals: the minority probes, finds a group and waits; the leader adds them.
    let all: Vec<u64> = (1..=5).collect();
    for _ in 0..60 {
        for (n, port) in &nodes {
            let others: Vec<u64> = all.iter().copied().filter(|p| *p != n.id).collect();
            let _ = n.membership_round(&**port, &others, &[], 5).await;
        }
        if nodes.iter().all(|(n, _)| n.voters() == all) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (n, _) in &nodes {
        assert_eq!(n.voters(), all, "till {}", n.id);
    }
    let everyone: Vec<StoreRaft> = nodes.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(agreed_leader(&everyone, &net).await, leader);
    for n in everyone {
        n.shutdown().await;
    }
}
