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
    ///
    /// Only what changed is applied: the records are compared with the rows this till holds,
    /// only the changed rows are written, and only the kinds of record that changed are
    /// parsed and rebuilt (a price change rebuilds the price book, not the catalog). A first
    /// start wrote the catalog file's records as rows, so HQ's first master data applies
    /// only where it differs from the file; a database an earlier version wrote holds no
    /// rows, and its first apply rebuilds everything. One task applies (the master-data
    /// applier), so the rows compared are the rows it last wrote.
    pub async fn apply_master(
        &self,
        version: u64,
        at_ms: u64,
        records: &std::collections::BTreeMap<String, String>,
    ) -> anyhow::Result<Vec<MasterConflict>> {
        let ext_version = tillmesh_consensus::machine::ext_version_of(records);
        if !self.master_is_newer(version, ext_version) {
            return Ok(Vec::new());
        }
        let store = self.store.clone();
        let (held_rows, held, was_hq) = self
            .off_executor(move || -> anyhow::Result<_> {
                let rows: HashMap<String, String> =
                    store.read(|r| r.master_all())?.into_iter().collect();
                let held: HashMap<String, Account> = store
                    .read(|r| r.accounts_all())?
                    .into_iter()
                    .map(|a| (a.employee_id.clone(), a))
                    .collect();
                Ok((rows, held, old_cashiers(&store)?))
            })
            .await??;
        let mut diff = MasterDiff::of(&held_rows, records);
        drop(held_rows);
        // Categories and customers are one record set in memory (`HqRecords`): a change to
        // either rebuilds both.
        let hq_dirty = diff.dirty("category") || diff.dirty("customer");
        let wanted =
            |kind: &str| diff.dirty(kind) || (hq_dirty && matches!(kind, "category" | "customer"));
        let (mut master, cashiers) = parse_records(version, records, wanted)?;
        let catalog = match diff.dirty("item") {
            true => Some(Catalog::new(std::mem::take(&mut master.items))?),
            false => None,
        };
        // Accounts: HQ's name, role and PIN; a till keeps its lock-out counters. A cashier
        // HQ deleted is locked out for good.
        let accounts = match diff.dirty("cashier") {
            true => cashier::merge_hq_accounts(&cashiers, &held, &was_hq),
            false => Vec::new(),
        };
        let changed = diff.writes.len();
        let kinds = diff.changed.iter().cloned().collect::<Vec<_>>().join(",");
        let now = self.now();
        let (conflicts, rx) = {
            let (mut core, slot) = self.core_for_write()?;
            if version <= self.hq_version() && ext_version <= core.hq.ext_version {
                return Ok(Vec::new());
            }
            let prices = diff.dirty("price").then(|| {
                let mut prices = PriceBook::new(master.prices.iter().cloned());
                for (sku, (price, eff)) in core.replica.state().store_prices.iter() {
                    prices.insert(ScheduledPrice {
                        sku: sku.clone(),
                        price: *price,
                        effective_from_ms: *eff,
                        scope: PriceScope::Store,
                    });
                }
                prices
            });
            // HQ wins over a store override when HQ changes that item's price.
            let mut conflicts = Vec::new();
            if catalog.is_some() || prices.is_some() {
                let new_catalog = catalog.as_ref().unwrap_or(&core.catalog);
                let new_chain = prices.as_ref().unwrap_or(&core.prices);
                for (sku, (price, eff)) in core.replica.state().store_prices.iter() {
                    let (Ok(new_item), Ok(old_item)) =
                        (new_catalog.get(sku), core.catalog.get(sku))
                    else {
                        continue;
                    };
                    let hq_new = new_chain.chain_price_at(sku, new_item.base_price, at_ms);
                    let hq_old = core.prices.chain_price_at(sku, old_item.base_price, at_ms);
                    if *eff <= at_ms && hq_new != hq_old && hq_new != *price {
                        conflicts.push(MasterConflict {
                            sku: sku.clone(),
                            store_price: *price,
                            hq_price: hq_new,
                        });
                    }
                }
            }
            let count = |kind: &str| diff.count(kind);
            let mut audit = vec![audit_rec(
                now,
                "hq",
                "master.apply",
                &format!("v{version}"),
                "ok",
                format!(
                    "{} items, {} prices, {} promotions, {} cashiers (was v{}); {} categories, {} customers (second stream v{ext_version}); {} records changed",
                    count("item"),
                    count("price"),
                    count("promotion"),
                    count("cashier"),
                    core.master_version,
                    count("category"),
                    count("customer"),
                    changed,
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
            let mut meta = vec![(HQ_VERSION_KEY.into(), version.to_string())];
            if diff.dirty("cashier") {
                meta.push((
                    HQ_CASHIERS_KEY.into(),
                    serde_json::to_string(
                        &cashiers
                            .iter()
                            .map(|a| a.employee_id.as_str())
                            .collect::<Vec<_>>(),
                    )?,
                ));
            }
            let rx = self.submit(
                slot,
                WriteBatch {
                    accounts,
                    audit,
                    master: std::mem::take(&mut diff.writes),
                    meta,
                    // The whole-value form of earlier versions (and of the first start's
                    // seed): the rows replace it.
                    meta_delete: vec!["master".into()],
                    ..Default::default()
                },
            )?;
            if let Some(c) = catalog {
                core.catalog = c;
            }
            if let Some(p) = prices {
                core.prices = p;
            }
            if hq_dirty {
                core.hq = Arc::new(HqRecords::of(&master));
            } else if core.hq.ext_version != ext_version {
                core.hq = Arc::new(HqRecords {
                    ext_version,
                    categories: core.hq.categories.clone(),
                    customers: core.hq.customers.clone(),
                });
            }
            if diff.dirty("promotion") {
                core.promotions = master.promotions;
            }
            core.master_version = version;
            self.hq_version
                .store(version, std::sync::atomic::Ordering::Release);
            (conflicts, rx)
        };
        self.committed(rx)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        info!(
            version,
            changed,
            kinds,
            conflicts = conflicts.len(),
            "master data applied"
        );
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

/// The kind of a master-data record from its key (`kind:key`); `~` for the Raft machine's own
/// marks (the second stream's version).
pub(super) fn record_kind(key: &str) -> &str {
    match key.split_once(':') {
        _ if key.starts_with('~') => "~",
        Some((kind, _)) => kind,
        None => "",
    }
}

/// Master data as HQ's records (`kind:key` keys, JSON `MasterBody` bodies, as HQ's pages
/// carry them) for the `master` table's rows, the items as `catalog` holds them (barcodes
/// normalised, as HQ normalises them): a first start's seed is compared with HQ's first
/// master data by these rows, so that what the catalog file already holds is not applied
/// again. `None` when two records share a key (a catalog file's duplicate SKU or price): the
/// rows would not be what the till runs, so the first apply rebuilds it all.
pub(super) fn master_rows(m: &MasterData, catalog: &Catalog) -> anyhow::Result<Option<MasterRows>> {
    use tillmesh_cloud_proto::MasterBody;
    if catalog.len() != m.items.len() {
        return Ok(None);
    }
    let bodies = catalog
        .items()
        .cloned()
        .map(MasterBody::Item)
        .chain(m.prices.iter().cloned().map(MasterBody::Price))
        .chain(m.promotions.iter().cloned().map(MasterBody::Promotion))
        .chain(m.categories.iter().cloned().map(MasterBody::Category))
        .chain(m.customers.iter().cloned().map(MasterBody::Customer));
    let mut rows = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for body in bodies {
        let key = tillmesh_cloud_proto::record_key(body.kind(), &body.key());
        if !keys.insert(key.clone()) {
            return Ok(None);
        }
        let kind = body.kind().as_str().to_owned();
        rows.push((kind, key, Some(serde_json::to_string(&body)?)));
    }
    Ok(Some(rows))
}

/// Rows of till.db's `master` table to write: `(kind, key, body)`, `None` deletes.
pub(super) type MasterRows = Vec<(String, String, Option<String>)>;

/// HQ's records parsed into master data at `version` (and the cashier accounts), only those
/// of the kinds `wanted` takes: the others stay empty. A record whose body is not of the kind
/// its key names is refused, so that a kind is always parsed whole.
pub(super) fn parse_records<'a>(
    version: u64,
    records: impl IntoIterator<Item = (&'a String, &'a String)>,
    wanted: impl Fn(&str) -> bool,
) -> anyhow::Result<(MasterData, Vec<Account>)> {
    use tillmesh_cloud_proto::MasterBody;
    let mut m = MasterData {
        version,
        items: Vec::new(),
        prices: Vec::new(),
        promotions: Vec::new(),
        // The catalog file's opening stock was recorded as events at the first start.
        opening_stock: HashMap::new(),
        ext_version: 0,
        categories: Vec::new(),
        customers: Vec::new(),
    };
    let mut cashiers = Vec::new();
    for (key, json) in records {
        let kind = record_kind(key);
        if kind == "~" {
            if key == tillmesh_consensus::machine::MASTER_EXT_VERSION_KEY {
                m.ext_version = tillmesh_consensus::machine::ext_version_from(Some(json));
            }
            continue;
        }
        if !wanted(kind) {
            continue;
        }
        let body: MasterBody =
            serde_json::from_str(json).map_err(|e| anyhow::anyhow!("master record {key}: {e}"))?;
        if body.kind().as_str() != kind {
            anyhow::bail!("master record {key} holds a {}", body.kind().as_str());
        }
        match body {
            MasterBody::Item(i) => m.items.push(i),
            MasterBody::Price(p) => m.prices.push(p),
            MasterBody::Promotion(p) => m.promotions.push(p),
            MasterBody::Cashier(a) => cashiers.push(a),
            MasterBody::Category(c) => m.categories.push(c),
            MasterBody::Customer(c) => m.customers.push(c),
        }
    }
    Ok((m, cashiers))
}

/// What a set of HQ's records changes against the rows a till holds.
struct MasterDiff {
    /// No rows were held (the first apply on this database): everything is rebuilt.
    whole: bool,
    /// The kinds with a record added, changed or removed.
    changed: std::collections::BTreeSet<String>,
    /// Records per kind in the new set.
    counts: HashMap<String, usize>,
    /// The rows to write.
    writes: MasterRows,
}

impl MasterDiff {
    fn of(
        held: &HashMap<String, String>,
        records: &std::collections::BTreeMap<String, String>,
    ) -> Self {
        let mut d = MasterDiff {
            whole: held.is_empty(),
            changed: Default::default(),
            counts: HashMap::new(),
            writes: Vec::new(),
        };
        for (key, body) in records {
            let kind = record_kind(key);
            *d.counts.entry(kind.to_owned()).or_default() += 1;
            if held.get(key) != Some(body) {
                d.changed.insert(kind.to_owned());
                d.writes
                    .push((kind.to_owned(), key.clone(), Some(body.clone())));
            }
        }
        for key in held.keys().filter(|k| !records.contains_key(*k)) {
            let kind = record_kind(key);
            d.changed.insert(kind.to_owned());
            d.writes.push((kind.to_owned(), key.clone(), None));
        }
        d
    }

    /// Whether the records of `kind` are to be parsed and rebuilt.
    fn dirty(&self, kind: &str) -> bool {
        self.whole || self.changed.contains(kind)
    }

    /// The records of `kind` in the new set.
    fn count(&self, kind: &str) -> usize {
        self.counts.get(kind).copied().unwrap_or(0)
    }
}
