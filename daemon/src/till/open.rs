//! Opening a till: its database (refusing a damaged one), first-start seeding of master data,
//! opening stock and staff, and the rebuild of memory from the event log.

use super::*;

impl Till {
    /// Opens the store, seeds it on first start (master data, opening stock, staff), and
    /// rebuilds the in-memory state from the event log.
    pub fn open(
        cfg: TerminalConfig,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        links: Arc<dyn crate::links::Links>,
    ) -> anyhow::Result<Till> {
        let now = clock.now_ms();
        // A model that does not match its card stops the till here, with the reason.
        let vision = match &cfg.vision {
            Some(v) => Some(Arc::new(Vision::load(v)?)),
            None => None,
        };
        let placed = super::template::place(&cfg, now)?;
        let (store, deferred_check) = open_store(&cfg, now)?;
        let seeded = store.read(|r| r.meta("seeded"))?.is_some();
        // A first start keeps the master data and catalog it just seeded (no second parse).
        let fresh = match (placed, seeded) {
            (Some(copied), _) => {
                super::template::claim(&store, &cfg)?;
                Some(copied)
            }
            (None, true) => None,
            (None, false) => Some(seed(&store, &cfg, now)?),
        };
        let me = match store.read(|r| r.meta("replica_id"))? {
            Some(v) => ReplicaId(v.parse()?),
            None => anyhow::bail!("the database has no replica id"),
        };
        if me.terminal() != cfg.terminal.id {
            anyhow::bail!(
                "the database in {} belongs to terminal {}, not {}",
                cfg.terminal.data_dir.display(),
                me.terminal(),
                cfg.terminal.id
            );
        }
        let (master, catalog) = match fresh {
            Some(seeded) => seeded,
            None => {
                // The whole value the first start seeded (or an earlier version wrote) until
                // HQ's master data is applied; from then on, HQ's records as rows.
                let mut master: MasterData = match store.read(|r| r.meta("master"))? {
                    Some(m) => serde_json::from_str(&m)?,
                    None => {
                        let rows = store.read(|r| r.master_all())?;
                        if rows.is_empty() {
                            anyhow::bail!("the database has no master data");
                        }
                        let version = store
                            .read(|r| r.meta(HQ_VERSION_KEY))?
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        let pairs = rows.iter().map(|(k, v)| (k, v));
                        super::master::parse_records(version, pairs, |_| true)?.0
                    }
                };
                // The items move to the catalog (nothing after this reads them from the
                // master data): a big store's 50,000 were copied, then dropped.
                let catalog = Catalog::new(std::mem::take(&mut master.items))?;
                (master, catalog)
            }
        };
        let seeded_ms = store
            .read(|r| r.meta("seeded"))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(now);
        let override_until = store
            .read(|r| r.meta(OVERRIDE_KEY))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let hq_version = store
            .read(|r| r.meta(HQ_VERSION_KEY))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let base = match store.read(|r| r.base())? {
            Some(bytes) => Base::decode(&bytes).map_err(|e| {
                anyhow::anyhow!("the compacted base in the database is unreadable: {e}")
            })?,
            None => Base::default(),
        };
        let compaction = base.compaction.clone();
        let events = store.read(|r| r.events_all())?;
        let quarantined: std::collections::BTreeSet<(ReplicaId, u64)> = store
            .read(|r| r.quarantined())?
            .into_iter()
            .map(|q| (ReplicaId(q.origin), q.seq))
            .collect();
        let replica = Replica::restore_skipping(me, base, &events, &quarantined);
        let mut prices = PriceBook::new(master.prices.clone());
        for (sku, (price, eff)) in replica.state().store_prices.iter() {
            prices.insert(ScheduledPrice {
                sku: sku.clone(),
                price: *price,
                effective_from_ms: *eff,
                scope: PriceScope::Store,
            });
        }
        // Transaction ids carry the database incarnation, so a till rebuilt on a new disk never
        // reuses an id its peers still hold.
        let prefix = format!("T{}-{:08X}-", cfg.terminal.id, me.incarnation());
        let mut drafts = HashMap::new();
        // Pending QR payments are asked about again by the poller.
        for (_, json) in store.read(|r| r.meta_prefix(DRAFT_KEY))? {
            let d: Draft = serde_json::from_str(&json)?;
            drafts.insert(d.txn_id.clone(), d);
        }
        let provider = match &cfg.payments.qr {
            Some(q) => Some(tillmesh_pay::Provider::new(q.clone())?),
            None => None,
        };
        let draft_max = drafts
            .keys()
            .filter_map(|id| id.strip_prefix(&prefix).and_then(|n| n.parse::<u64>().ok()))
            .max()
            .unwrap_or(0);
        // Records of old sales may have been deleted (retention): the highest number ever
        // used is kept beside them.
        let used_high = store
            .read(|r| r.meta(TXN_HIGH_KEY))?
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let next_txn = store
            .read(|r| r.max_txn_number(me, &prefix))?
            .max(draft_max)
            .max(used_high)
            + 1;
        let shift = store.read(super::cash::load_shift)?;
        // Accounts seeded from the config's clear-text PINs; a database seeded before this
        // was recorded takes the config's staff as its demo accounts.
        let demo_accounts: std::collections::BTreeSet<String> = store
            .read(|r| r.meta(DEMO_ACCOUNTS_KEY))?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_else(|| cfg.staff.iter().map(|s| s.employee_id.clone()).collect());
        let dummy_hash = cashier::hash_pin_with(
            "00000000",
            &random_bytes::<16>(),
            if cfg.terminal.simulated.is_some() {
                cashier::PinCost::Simulation
            } else {
                cashier::PinCost::Standard
            },
        )?;
        metrics.drafts.set(drafts.len() as i64);
        metrics.events.set(events.len() as i64);
        metrics
            .info
            .get_or_create(&vec![
                ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
                ("store".to_string(), cfg.store.store_id.clone()),
                ("terminal".to_string(), format!("T{}", me.0)),
                ("currency".to_string(), cfg.store.currency.clone()),
                (
                    "currency_digits".to_string(),
                    cfg.store.currency_decimals.to_string(),
                ),
            ])
            .set(1);
        info!(
            terminal = me.0,
            events = events.len(),
            items = catalog.len(),
            "till state restored"
        );
        Ok(Till {
            core: Mutex::new(Core {
                replica,
                catalog,
                prices,
                hq: Arc::new(HqRecords::of(&master)),
                promotions: master.promotions,
                master_version: master.version,
                drafts,
                sessions: HashMap::new(),
                pay: Default::default(),
                next_txn,
                compaction,
                quarantined,
                clock_ahead: Default::default(),
                peer_behind: Default::default(),
                shift,
                expired_qr: Default::default(),
                asks: Vec::new(),
                asked: HashMap::new(),
                used: HashMap::new(),
                live: BTreeMap::new(),
            }),
            cfg: Arc::new(cfg),
            store,
            clock,
            metrics,
            prefix,
            changes: tokio::sync::watch::channel(0).0,
            fatal: tokio::sync::watch::channel(None).0,
            deferred_check,
            links,
            seeded_ms,
            override_until: override_until.into(),
            hq_version: hq_version.into(),
            vision,
            throttle: Default::default(),
            dummy_hash,
            demo_accounts,
            seals: Default::default(),
            provider,
            http_url: Default::default(),
            provider_ok_ms: Default::default(),
            provider_failing: Default::default(),
            traces: Default::default(),
        })
    }
}

/// Opens the till's database. A file SQLite calls corrupt (not a database, corrupt pages, or
/// a failed quick check) is moved aside when the till has a mesh to rebuild from: it then
/// starts fresh under a new incarnation and its peers send everything back, its own old
/// events included. Without a mesh there is nothing to rebuild from, and the till refuses to
/// start. Any other error (a newer schema, permissions, a lock held elsewhere, a full disk)
/// stops the till with the reason and leaves the file untouched: it may hold sales no peer
/// has yet.
///
/// The quick check reads every page, so a database over `startup_check_max_mb` (months of
/// sales) opens unchecked and is checked right after start ([`Till::spawn_deferred_check`]),
/// unless a check after an earlier start found damage: then its marker file is beside it and
/// this start checks first. Returns the store and whether its check was left for later.
pub(super) fn open_store(cfg: &TerminalConfig, now: u64) -> anyhow::Result<(Store, bool)> {
    let (store, deferred) = open_store_file(cfg, now)?;
    store.set_disk_free_min(cfg.terminal.disk_free_min_mb.saturating_mul(1 << 20));
    Ok((store, deferred))
}

/// The file beside the database that makes the next start check it before opening: written
/// when the check after a start found damage.
fn recheck_marker(db: &std::path::Path) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}.recheck", db.display()))
}

fn open_store_file(cfg: &TerminalConfig, now: u64) -> anyhow::Result<(Store, bool)> {
    if cfg.terminal.simulated.is_some() {
        let path = cfg.terminal.data_dir.join("till.db");
        return Ok((
            Store::open_with(&path, tillmesh_store::Mode::Inline)?,
            false,
        ));
    }
    let path = cfg.db_path();
    if path.exists() {
        let marker = recheck_marker(&path);
        let big = std::fs::metadata(&path).map_or(0, |m| m.len())
            > cfg.terminal.startup_check_max_mb.saturating_mul(1 << 20);
        // One that does not even open is judged below, as any other.
        if big
            && !marker.exists()
            && let Ok(store) = Store::open(&path)
        {
            return Ok((store, true));
        }
        let verdict = Store::open(&path).and_then(|s| s.read(|r| r.quick_check()));
        let why = match verdict {
            Ok(v) if v == "ok" => {
                let _ = std::fs::remove_file(&marker);
                return Ok((Store::open(&path)?, false));
            }
            Ok(v) => v,
            Err(e) if e.is_corruption() => e.to_string(),
            Err(e) => anyhow::bail!(
                "cannot open database {} ({e}); the file is left as it is",
                path.display()
            ),
        };
        if cfg.mesh.is_none() {
            anyhow::bail!(
                "database {} is damaged ({why}) and no mesh is configured to rebuild it from; restore it from a backup",
                path.display()
            );
        }
        tracing::error!(path = %path.display(), cause = %why, "database is damaged; moving it aside and rebuilding from peers");
        for suffix in ["", "-wal", "-shm"] {
            let from = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if from.exists() {
                std::fs::rename(&from, format!("{}.damaged-{now}{suffix}", path.display()))?;
            }
        }
        let _ = std::fs::remove_file(&marker);
    }
    Ok((Store::open(&path)?, false))
}

impl Till {
    /// Checks, beside the till's work, a database whose check [`open_store`] left until after
    /// start. Damage found raises [`Till::fatal`] (the daemon stops) and leaves the marker
    /// that makes the next start check first, and rebuild from the peers. `None` when the
    /// database was checked before opening.
    pub fn spawn_deferred_check(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if !self.deferred_check {
            return None;
        }
        let till = self.clone();
        Some(tokio::spawn(async move {
            let path = till.cfg.db_path();
            let file = path.clone();
            let verdict =
                tokio::task::spawn_blocking(move || tillmesh_store::quick_check_file(&file)).await;
            let why = match verdict {
                Ok(Ok(v)) if v == "ok" => {
                    tracing::info!("database checked after start: sound");
                    return;
                }
                Ok(Ok(v)) => v,
                Ok(Err(e)) if e.is_corruption() => e.to_string(),
                Ok(Err(e)) => {
                    tracing::warn!(cause = %e, "could not check the database after start");
                    return;
                }
                Err(_) => return,
            };
            if let Err(e) = std::fs::write(recheck_marker(&path), &why) {
                tracing::error!(cause = %e, "cannot write the recheck marker");
            }
            tracing::error!(cause = %why, "database is damaged; stopping so that the next start checks it first and rebuilds it");
            till.fatal.send_replace(Some(format!(
                "database {} is damaged: {why}",
                path.display()
            )));
        }))
    }
}
pub(super) fn old_cashiers(store: &Store) -> anyhow::Result<std::collections::HashSet<String>> {
    Ok(match store.read(|r| r.meta(HQ_CASHIERS_KEY))? {
        Some(j) => serde_json::from_str(&j)?,
        None => Default::default(),
    })
}

/// The replica id of a new database: the terminal and a fresh incarnation (the configured
/// one in a simulation).
pub(super) fn new_replica_id(cfg: &TerminalConfig) -> anyhow::Result<ReplicaId> {
    let terminal = u32::try_from(cfg.terminal.id)?;
    let incarnation = loop {
        let i = match &cfg.terminal.simulated {
            Some(sim) => sim.incarnation,
            None => u32::from_le_bytes(random_bytes::<4>()),
        };
        if i != 0 {
            break i;
        }
    };
    Ok(ReplicaId::for_terminal(terminal, incarnation))
}

/// Seeds a new database from the configured catalog file; answers the master data and its
/// catalog, as committed.
pub(super) fn seed(
    store: &Store,
    cfg: &TerminalConfig,
    now: u64,
) -> anyhow::Result<(MasterData, Catalog)> {
    let text = std::fs::read_to_string(&cfg.catalog.path)
        .map_err(|e| anyhow::anyhow!("cannot read catalog {}: {e}", cfg.catalog.path.display()))?;
    let master: MasterData = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("catalog {} is invalid: {e}", cfg.catalog.path.display()))?;
    let catalog = Catalog::new(master.items.clone())?;
    // Opening stock is recorded under the reserved origin 0 at time 0, so every till of a
    // store seeding from the same file produces identical events, which dedupe on merge.
    let mut replica = Replica::new(ReplicaId(0));
    let mut events = Vec::new();
    let mut opening: Vec<_> = master
        .opening_stock
        .iter()
        .filter(|(_, q)| **q > 0)
        .collect();
    opening.sort();
    for (sku, qty) in opening {
        events.push(replica.adjust(
            sku,
            *qty,
            Reason::Receiving,
            Some("opening stock".into()),
            None,
            "system",
            0,
        ));
    }
    let replica_id = new_replica_id(cfg)?;
    let mut accounts = Vec::new();
    for s in &cfg.staff {
        accounts.push(Account {
            employee_id: s.employee_id.clone(),
            name: s.name.clone(),
            role: s.role,
            pin_hash: cashier::hash_pin_with(
                &s.pin,
                &random_bytes::<16>(),
                if cfg.terminal.simulated.is_some() {
                    cashier::PinCost::Simulation
                } else {
                    cashier::PinCost::Standard
                },
            )?,
            failed_attempts: 0,
            locked_until_ms: 0,
        });
    }
    let batch = WriteBatch {
        events,
        accounts,
        master: super::master::master_rows(&master, &catalog)?.unwrap_or_default(),
        audit: vec![audit_rec(
            now,
            "system",
            "till.seed",
            &cfg.store.store_id,
            "ok",
            format!("{} items, master v{}", master.items.len(), master.version),
        )],
        meta: vec![
            (
                DEMO_ACCOUNTS_KEY.into(),
                serde_json::to_string(
                    &cfg.staff.iter().map(|s| &s.employee_id).collect::<Vec<_>>(),
                )?,
            ),
            ("master".into(), serde_json::to_string(&master)?),
            ("seeded".into(), now.to_string()),
            ("replica_id".into(), replica_id.0.to_string()),
        ],
        ..Default::default()
    };
    store.commit_blocking(batch)?;
    Ok((master, catalog))
}
