//! What a run leaves to judge it by: the upload gap at each leader stop, the store's and the
//! cloud's convergence, and the evidence the invariants check at the end.

use super::*;

/// The upload gap at each leader stop (see `report::LeaderStop::upload_gap_ms`).
pub(super) fn upload_gaps(run: &Run) -> Vec<report::LeaderStop> {
    let accepted = run
        .world
        .switch
        .accepted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    run.leader_stops
        .iter()
        .map(|&(at, at_ms, how, stopped)| {
            // From the stopping leader's last batch at or after the stop (a leader handing
            // over uploads until its successor leads), or the stop itself, to the
            // successor's first batch: how long the store had no uploader.
            let next = accepted.iter().position(|&(a, t)| a > at && t != stopped);
            let upload_gap_ms = next.map(|i| {
                let from = accepted[..i]
                    .iter()
                    .filter(|&&(a, t)| a > at && t == stopped)
                    .map(|&(a, _)| a)
                    .next_back()
                    .unwrap_or(at);
                accepted[i].0.duration_since(from).as_millis() as u64
            });
            report::LeaderStop {
                at_s: at_ms as f64 / 1000.0,
                how: how.into(),
                upload_gap_ms,
            }
        })
        .collect()
}

pub(super) async fn observe_tick(
    obs: &mut Observations,
    w: &World,
    now_ms: u64,
    n: u64,
) -> anyhow::Result<()> {
    observe::watch(obs, w, now_ms as f64 / 1000.0);
    let events = fleet_events(w).await?;
    observe::sample(obs, w, now_ms as f64 / 1000.0, n, events).await;
    Ok(())
}

/// Events the cloud holds, per store.
async fn events_per_store(cloud: &tillmesh_cloud::Cloud) -> anyhow::Result<BTreeMap<String, u64>> {
    Ok(cloud
        .ledger
        .fleet()
        .await?
        .into_iter()
        .map(|r| (r.store_id, r.events))
        .collect())
}

pub(super) async fn fleet_events(w: &World) -> anyhow::Result<u64> {
    Ok(w.cloud
        .ledger
        .fleet()
        .await?
        .into_iter()
        .find(|r| r.store_id == world::STORE)
        .map_or(0, |r| r.events))
}

/// Every till of a store holds the same events and state: the events it holds.
pub(super) fn store_converged<'a>(
    mut tills: impl Iterator<Item = &'a world::SimTill>,
) -> Option<u64> {
    let first = tills.next()?;
    let vv = first.till.version_vector();
    let state = first.till.state();
    let quarantined = first.till.quarantined_count();
    for t in tills {
        if t.till.version_vector() != vv
            || t.till.state() != state
            || t.till.quarantined_count() != quarantined
        {
            return None;
        }
    }
    // Quarantined events are held, and uploaded too (the cloud reads batch format 2 and
    // keeps them as quarantined).
    Some(vv.total())
}

/// Every till up holds the same events and state, and the cloud holds them all; so for
/// every store of the chain.
pub(super) async fn converged(w: &World) -> anyhow::Result<bool> {
    let Some(held) = store_converged(w.tills.values()) else {
        return Ok(false);
    };
    let fleet = events_per_store(&w.cloud).await?;
    if fleet.get(world::STORE).copied().unwrap_or(0) != held {
        return Ok(false);
    }
    for store in &w.chain {
        let Some(held) = store_converged(store.tills.values()) else {
            return Ok(false);
        };
        if fleet.get(&store.id).copied().unwrap_or(0) != held {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What the cloud's reports and ledger hold of one store.
pub(super) async fn cloud_end(
    cloud: &tillmesh_cloud::Cloud,
    store: &str,
    events: u64,
) -> anyhow::Result<invariants::CloudEnd> {
    let day = (world::EPOCH_MS / 86_400_000) as i64;
    let mut c = invariants::CloudEnd {
        events,
        ..Default::default()
    };
    for r in cloud
        .ledger
        .sales_by_day(Some(store), day - 1, day + 4)
        .await?
    {
        c.transactions += r.transactions;
        c.total += r.total;
        c.voided += r.voided;
        c.voided_amount += r.voided_amount;
    }
    for b in cloud.ledger.balances(store).await? {
        c.balances.insert(b.account, (b.loaded, b.spent));
    }
    Ok(c)
}

pub(super) async fn gather(
    run: &Run,
    obs: Observations,
    opening: BTreeMap<String, i64>,
) -> anyhow::Result<invariants::Evidence> {
    let acked = std::mem::take(&mut *run.ledger.lock().unwrap_or_else(|p| p.into_inner()));
    let mut tills = BTreeMap::new();
    for (id, t) in &run.world.tills {
        let mut missing = Vec::new();
        for s in &acked.sales {
            if t.till.store().read(|r| r.sale(&s.txn_id))?.is_none() {
                missing.push(s.txn_id.clone());
            }
        }
        tills.insert(
            *id,
            invariants::TillEnd {
                state: t.till.state(),
                // Quarantined events are held and uploaded (kept as quarantined).
                held: t.till.version_vector().total(),
                quarantined: t.till.quarantined_count(),
                missing_sales: missing,
                stock: opening
                    .keys()
                    .map(|sku| (sku.clone(), t.till.stock_of(sku)))
                    .collect(),
            },
        );
    }
    let cloud = &run.world.cloud;
    cloud.catch_up().await?;
    let fleet = events_per_store(cloud).await?;
    let events = |id: &str| fleet.get(id).copied().unwrap_or(0);
    let c = cloud_end(cloud, world::STORE, events(world::STORE)).await?;
    let mut chain = Vec::new();
    for (store, (_, ledger)) in run.world.chain.iter().zip(&run.chain) {
        let acked = std::mem::take(&mut *ledger.lock().unwrap_or_else(|p| p.into_inner()));
        chain.push(invariants::ChainEnd {
            store: store.id.clone(),
            held: store
                .tills
                .values()
                .map(|t| t.till.version_vector().total())
                .max()
                .unwrap_or(0),
            cloud: cloud_end(cloud, &store.id, events(&store.id)).await?,
            acked,
        });
    }
    Ok(invariants::Evidence {
        acked,
        obs,
        tills,
        cloud: c,
        opening,
        chain,
        poisoned_at_ms: run.poisoned_at_ms.clone(),
        end_ms: run.t0.elapsed().as_millis() as u64,
    })
}
