//! Inventory at the till: adjustments, receiving, counts with shrinkage, movements, and store price
//! overrides.

use super::*;

impl Till {
    pub(super) async fn stock_events(
        &self,
        s: &Session,
        action: &str,
        target: &str,
        approval: Option<&Approval>,
        make: impl FnOnce(&mut Core, u64) -> Result<(Vec<Event>, String), TillError>,
    ) -> Result<Vec<Event>, TillError> {
        self.audited(&s.employee_id, action, target, async {
            let approver = self.approve(s, Permission::AdjustStock, approval).await?;
            let now = self.now();
            let (rx, events) = {
                let (mut core, slot) = self.core_for_write()?;
                let (events, detail) = make(&mut core, now)?;
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    action,
                    target,
                    "ok",
                    format!("approved by {approver}; {detail}"),
                );
                let rx = self.submit(
                    slot,
                    WriteBatch {
                        events: events.clone(),
                        audit: vec![rec],
                        ..Default::default()
                    },
                )?;
                (rx, events)
            };
            self.durable(rx).await?;
            Ok(events)
        })
        .await
    }

    /// A manual adjustment with a reason code (manager).
    pub async fn adjust(&self, s: &Session, req: &AdjustRequest) -> Result<ItemView, TillError> {
        pos_inventory::check_adjustment(req.change, req.reason).map_err(TillError::from)?;
        let sku = req.sku.clone();
        self.stock_events(
            s,
            "inventory.adjust",
            &sku,
            req.approval.as_ref(),
            |core, now| {
                core.catalog.get(&req.sku)?;
                let e = core.replica.adjust(
                    &req.sku,
                    req.change,
                    req.reason,
                    None,
                    req.note.clone(),
                    &s.employee_id,
                    now,
                );
                Ok((vec![e], format!("{} {:?}", req.change, req.reason)))
            },
        )
        .await?;
        self.item(&sku)
    }

    /// Receiving a delivery from a supplier.
    pub async fn receive(
        &self,
        s: &Session,
        req: &ReceiveRequest,
    ) -> Result<Vec<ItemView>, TillError> {
        if req.supplier.trim().is_empty() {
            return Err(TillError::unprocessable(
                "missing_supplier",
                "name the supplier of the delivery",
            ));
        }
        if req.lines.is_empty() || req.lines.len() > 1000 {
            return Err(TillError::unprocessable(
                "bad_lines",
                "a delivery has 1 to 1000 lines",
            ));
        }
        for l in &req.lines {
            pos_inventory::check_adjustment(l.quantity, Reason::Receiving)?;
        }
        self.stock_events(
            s,
            "inventory.receive",
            &req.supplier,
            req.approval.as_ref(),
            |core, now| {
                for l in &req.lines {
                    core.catalog.get(&l.sku)?;
                }
                let events = req
                    .lines
                    .iter()
                    .map(|l| {
                        core.replica.adjust(
                            &l.sku,
                            l.quantity,
                            Reason::Receiving,
                            Some(req.supplier.clone()),
                            req.reference.clone(),
                            &s.employee_id,
                            now,
                        )
                    })
                    .collect();
                Ok((
                    events,
                    format!("{} lines from {}", req.lines.len(), req.supplier),
                ))
            },
        )
        .await?;
        req.lines.iter().map(|l| self.item(&l.sku)).collect()
    }

    /// A physical count: records COUNT adjustments and returns shrinkage, flagging > 5 %.
    pub async fn count(
        &self,
        s: &Session,
        req: &CountRequest,
    ) -> Result<Vec<CountOutcome>, TillError> {
        if req.counts.is_empty() || req.counts.len() > 10_000 {
            return Err(TillError::unprocessable(
                "bad_lines",
                "a count has 1 to 10000 lines",
            ));
        }
        let mut outcomes = Vec::new();
        self.stock_events(
            s,
            "inventory.count",
            "-",
            req.approval.as_ref(),
            |core, now| {
                let mut events = Vec::new();
                for c in &req.counts {
                    core.catalog.get(&c.sku)?;
                    outcomes.push(pos_inventory::count(
                        &c.sku,
                        core.replica.state().stock(&c.sku),
                        c.counted,
                    )?);
                }
                for o in &outcomes {
                    if o.shrinkage != 0 {
                        events.push(core.replica.adjust(
                            &o.sku,
                            -o.shrinkage,
                            Reason::Count,
                            None,
                            Some(format!("counted {}", o.counted)),
                            &s.employee_id,
                            now,
                        ));
                    }
                }
                let flagged = outcomes.iter().filter(|o| o.flagged).count();
                if flagged > 0 {
                    warn!(flagged, "stock count discrepancies above 5% need review");
                }
                Ok((
                    events,
                    format!("{} counted, {flagged} flagged", outcomes.len()),
                ))
            },
        )
        .await?;
        Ok(outcomes)
    }

    /// Recent stock movements of one SKU.
    pub async fn movements(
        &self,
        sku: &str,
    ) -> Result<Vec<tillmesh_store::StockMovement>, TillError> {
        self.item(sku)?;
        let store = self.store.clone();
        let sku = sku.to_string();
        Ok(self
            .off_executor(move || store.read(|r| r.movements(&sku, 200)))
            .await??)
    }

    /// A store price override from a time on (manager).
    pub async fn override_price(
        &self,
        s: &Session,
        req: &PriceOverrideRequest,
    ) -> Result<ItemView, TillError> {
        if !tillmesh_pos::money::valid_price(req.price) {
            return Err(TillError::unprocessable(
                "wrong_amount",
                format!(
                    "a price is 0 to {} minor units",
                    tillmesh_pos::money::PRICE_MAX
                ),
            ));
        }
        self.audited(&s.employee_id, "price.override", &req.sku, async {
            let approver = self
                .approve(s, Permission::PriceOverride, req.approval.as_ref())
                .await?;
            let now = self.now();
            let eff = req.effective_from_ms.unwrap_or(now);
            let rx = {
                let (mut core, slot) = self.core_for_write()?;
                core.catalog.get(&req.sku)?;
                let e = core
                    .replica
                    .override_price(&req.sku, req.price, eff, &s.employee_id, now);
                core.prices.insert(ScheduledPrice {
                    sku: req.sku.clone(),
                    price: req.price,
                    effective_from_ms: eff,
                    scope: PriceScope::Store,
                });
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    "price.override",
                    &req.sku,
                    "ok",
                    format!("{} from {} approved by {approver}", req.price, rfc3339(eff)),
                );
                self.submit(
                    slot,
                    WriteBatch {
                        events: vec![e],
                        audit: vec![rec],
                        ..Default::default()
                    },
                )?
            };
            self.durable(rx).await?;
            self.item(&req.sku)
        })
        .await
    }
}
