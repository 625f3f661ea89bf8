//! Master data from HQ, applied at the same Raft log index on every till; an HQ price that meets a
//! store override.

use super::*;

impl Till {
    /// The store's master-data version this till last switched to (0: none yet).
    pub fn hq_version(&self) -> u64 {
        self.hq_version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The version of HQ's second stream (categories, customers) this till applied.
    pub fn hq_ext_version(&self) -> u64 {
        self.core().hq.ext_version
    }

    /// HQ's categories and customers as this till holds them.
    pub fn hq_records(&self) -> Arc<HqRecords> {
        self.core().hq.clone()
    }

    /// Whether the master data at `version` (and `ext_version` of the second stream) is
    /// newer than what this till runs.
    fn master_is_newer(&self, version: u64, ext_version: u64) -> bool {
        version > self.hq_version() || ext_version > self.hq_ext_version()
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
        let ext_version: u64 = records
            .get(tillmesh_consensus::machine::MASTER_EXT_VERSION_KEY)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if !self.master_is_newer(version, ext_version) {
            return Ok(Vec::new());
        }
        let mut items = Vec::new();
        let mut chain = Vec::new();
        let mut promotions = Vec::new();
        let mut cashiers = Vec::new();
        let mut categories = Vec::new();
        let mut customers = Vec::new();
        // `~` keys are the Raft machine's own (the second stream's version).
        for (key, json) in records.iter().filter(|(k, _)| !k.starts_with('~')) {
            let body: MasterBody = serde_json::from_str(json)
                .map_err(|e| anyhow::anyhow!("master record {key}: {e}"))?;
            match body {
                MasterBody::Item(i) => items.push(i),
                MasterBody::Price(p) => chain.push(p),
                MasterBody::Promotion(p) => promotions.push(p),
                MasterBody::Cashier(a) => cashiers.push(a),
                MasterBody::Category(c) => categories.push(c),
                MasterBody::Customer(c) => customers.push(c),
            }
        }
        let catalog = Catalog::new(items.clone())?;
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
            // The catalog file's opening stock was recorded as events at the first start.
            opening_stock: HashMap::new(),
            ext_version,
            categories,
            customers,
        };
        let hq = Arc::new(HqRecords::of(&master));
        let now = self.now();
        let (conflicts, rx) = {
            let (mut core, slot) = self.core_for_write()?;
            if version <= self.hq_version() && ext_version <= core.hq.ext_version {
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
            let mut conflicts = Vec::new();
            for (sku, (price, eff)) in core.replica.state().store_prices.iter() {
                let (Ok(new_item), Ok(old_item)) = (catalog.get(sku), core.catalog.get(sku)) else {
                    continue;
                };
                let hq_new = chain_only.price_at(sku, new_item.base_price, at_ms);
                let hq_old = core.prices.chain_price_at(sku, old_item.base_price, at_ms);
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
                    "{} items, {} prices, {} promotions, {} cashiers (was v{}); {} categories, {} customers (second stream v{ext_version})",
                    master.items.len(),
                    master.prices.len(),
                    master.promotions.len(),
                    cashiers.len(),
                    core.master_version,
                    master.categories.len(),
                    master.customers.len(),
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
            core.hq = hq;
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
