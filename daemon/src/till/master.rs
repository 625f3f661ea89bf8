//! Master data from HQ, applied at the same Raft log index on every till; an HQ price that meets a
//! store override.

use super::*;

impl Till {
    /// The store's master-data version this till last switched to (0: none yet).
    pub fn hq_version(&self) -> u64 {
        self.hq_version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Switches to the master data the store's Raft group applied at `version` (records by
    /// key, as JSON `MasterBody`): catalog, chain prices, promotions and cashier accounts,
    /// durably and in one commit. Opening stock is kept. Answers the store overrides HQ's
    /// new prices displace (the leader records them), or nothing when this till already
    /// runs `version` or later.
    pub async fn apply_master(
        &self,
        version: u64,
        at_ms: u64,
        records: &std::collections::BTreeMap<String, String>,
    ) -> anyhow::Result<Vec<MasterConflict>> {
        use tillmesh_cloud_proto::MasterBody;
        if version <= self.hq_version() {
            return Ok(Vec::new());
        }
        let mut items = Vec::new();
        let mut chain = Vec::new();
        let mut promotions = Vec::new();
        let mut cashiers = Vec::new();
        for (key, json) in records {
            let body: MasterBody = serde_json::from_str(json)
                .map_err(|e| anyhow::anyhow!("master record {key}: {e}"))?;
            match body {
                MasterBody::Item(i) => items.push(i),
                MasterBody::Price(p) => chain.push(p),
                MasterBody::Promotion(p) => promotions.push(p),
                MasterBody::Cashier(a) => cashiers.push(a),
            }
        }
        let catalog = Catalog::new(items.clone())?;
        let store = self.store.clone();
        let old: MasterData = match self
            .off_executor(move || store.read(|r| r.meta("master")))
            .await??
        {
            Some(m) => serde_json::from_str(&m)?,
            None => MasterData::default(),
        };
        // Accounts: HQ's name, role and PIN; a till keeps its lock-out counters. A cashier
        // HQ deleted is locked out for good.
        let store = self.store.clone();
        let (held, was_hq) = self
            .off_executor(move || -> anyhow::Result<_> {
                let held: HashMap<String, Account> = store
                    .read(|r| r.accounts_all())?
                    .into_iter()
                    .map(|a| (a.employee_id.clone(), a))
                    .collect();
                Ok((held, old_cashiers(&store)?))
            })
            .await??;
        let accounts = cashier::merge_hq_accounts(&cashiers, &held, &was_hq);
        let master = MasterData {
            version,
            items,
            prices: chain,
            promotions,
            opening_stock: old.opening_stock,
        };
        let now = self.now();
        let (conflicts, rx) = {
            let (mut core, slot) = self.core_for_write()?;
            if version <= self.hq_version() {
                return Ok(Vec::new());
            }
            let mut prices = PriceBook::new(master.prices.clone());
            for (sku, (price, eff)) in core.replica.state().store_prices.iter() {
                prices.insert(ScheduledPrice {
                    sku: sku.clone(),
                    price: *price,
                    effective_from_ms: *eff,
                    scope: PriceScope::Store,
                });
            }
            // HQ wins over a store override when HQ changes that item's price.
            let chain_only = PriceBook::new(master.prices.clone());
            let old_chain = PriceBook::new(old.prices.clone());
            let mut conflicts = Vec::new();
            for (sku, (price, eff)) in core.replica.state().store_prices.iter() {
                let (Ok(new_item), Ok(old_item)) = (catalog.get(sku), core.catalog.get(sku)) else {
                    continue;
                };
                let hq_new = chain_only.price_at(sku, new_item.base_price, at_ms);
                let hq_old = old_chain.price_at(sku, old_item.base_price, at_ms);
                if *eff <= at_ms && hq_new != hq_old && hq_new != *price {
                    conflicts.push(MasterConflict {
                        sku: sku.clone(),
                        store_price: *price,
                        hq_price: hq_new,
                    });
                }
            }
            let mut audit = vec![audit_rec(
                now,
                "hq",
                "master.apply",
                &format!("v{version}"),
                "ok",
                format!(
                    "{} items, {} prices, {} promotions, {} cashiers (was v{})",
                    master.items.len(),
                    master.prices.len(),
                    master.promotions.len(),
                    cashiers.len(),
                    core.master_version
                ),
            )];
            for c in &conflicts {
                audit.push(audit_rec(
                    now,
                    "hq",
                    "master.conflict",
                    &c.sku,
                    "hq wins",
                    format!(
                        "store override {} replaced by HQ price {} (v{version})",
                        c.store_price, c.hq_price
                    ),
                ));
            }
            let rx = self.submit(
                slot,
                WriteBatch {
                    accounts,
                    audit,
                    meta: vec![
                        ("master".into(), serde_json::to_string(&master)?),
                        (
                            HQ_CASHIERS_KEY.into(),
                            serde_json::to_string(
                                &cashiers
                                    .iter()
                                    .map(|a| a.employee_id.as_str())
                                    .collect::<Vec<_>>(),
                            )?,
                        ),
                        (HQ_VERSION_KEY.into(), version.to_string()),
                    ],
                    ..Default::default()
                },
            )?;
            core.catalog = catalog;
            core.prices = prices;
            core.promotions = master.promotions;
            core.master_version = version;
            self.hq_version
                .store(version, std::sync::atomic::Ordering::Release);
            (conflicts, rx)
        };
        self.committed(rx)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        info!(version, conflicts = conflicts.len(), "master data applied");
        Ok(conflicts)
    }

    /// HQ's price replaces a store override (the leader, after a master-data conflict): a
    /// store price equal to HQ's, effective `at_ms`, replicated like any override.
    pub async fn hq_replaces_override(
        &self,
        c: &MasterConflict,
        at_ms: u64,
    ) -> Result<(), TillError> {
        let now = self.now();
        let rx = {
            let (mut core, slot) = self.core_for_write()?;
            let e = core
                .replica
                .override_price(&c.sku, c.hq_price, at_ms, "hq", now);
            core.prices.insert(ScheduledPrice {
                sku: c.sku.clone(),
                price: c.hq_price,
                effective_from_ms: at_ms,
                scope: PriceScope::Store,
            });
            self.submit(
                slot,
                WriteBatch {
                    events: vec![e],
                    ..Default::default()
                },
            )?
        };
        self.durable(rx).await?;
        Ok(())
    }
}
