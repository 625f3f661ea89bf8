//! The back office's reads and account care: sales history, product search and favourites,
//! customers by phone, declining a refund request, the cashier list and unlocking accounts.

use super::*;

/// Most sales a history page lists.
pub const HISTORY_MAX: usize = 500;
/// Most products a name search answers.
pub const SEARCH_MAX: usize = 24;

/// One sale in the history.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SaleSummary {
    /// Transaction id (the receipt number).
    pub txn_id: String,
    /// Status now.
    pub status: Status,
    /// Cashier.
    pub cashier: String,
    /// Paid at (RFC 3339).
    pub paid_at: String,
    /// Total.
    pub total: i64,
    /// Units.
    pub items: u32,
    /// Payment methods used.
    pub methods: Vec<String>,
}

/// A cashier account as a manager sees it (never its PIN hash).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CashierView {
    /// Employee id.
    pub employee_id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Wrong PINs in a row.
    pub failed_attempts: u32,
    /// Locked until (RFC 3339), when locked now.
    pub locked_until: Option<String>,
}

impl Till {
    /// The store's sales paid on a local day (default today), newest first, at most
    /// [`HISTORY_MAX`]; `q` keeps those whose receipt number or cashier contains it.
    pub async fn history(
        &self,
        date: Option<&str>,
        q: Option<&str>,
    ) -> Result<Vec<SaleSummary>, TillError> {
        let (_, _, sales) = self.sales_of_day(date).await?;
        let q = q.map(|q| q.trim().to_uppercase()).filter(|q| !q.is_empty());
        Ok(sales
            .into_iter()
            .rev()
            .filter(|(s, _)| {
                q.as_ref().is_none_or(|q| {
                    s.txn_id.to_uppercase().contains(q) || s.cashier.to_uppercase().contains(q)
                })
            })
            .take(HISTORY_MAX)
            .map(|(s, status)| {
                let mut methods: Vec<String> = s
                    .payments
                    .iter()
                    .map(|p| p.method.as_str().to_string())
                    .collect();
                methods.dedup();
                SaleSummary {
                    txn_id: s.txn_id,
                    status,
                    cashier: s.cashier,
                    paid_at: rfc3339(s.paid_ms),
                    total: s.totals.total,
                    items: s.totals.items,
                    methods,
                }
            })
            .collect())
    }

    /// Products whose name, SKU or barcode contains `q` (case-insensitive), active first.
    pub fn search(&self, q: &str) -> Vec<ItemView> {
        let q = q.trim().to_lowercase();
        if q.is_empty() {
            return Vec::new();
        }
        let now = self.now();
        let core = self.core();
        let mut hits: Vec<&Item> = core
            .catalog
            .items()
            .filter(|i| {
                i.name.to_lowercase().contains(&q)
                    || i.sku.to_lowercase().contains(&q)
                    || i.barcodes.iter().any(|b| b.contains(&q))
            })
            .collect();
        hits.sort_by_key(|i| (!i.active, i.name.to_lowercase()));
        hits.into_iter()
            .take(SEARCH_MAX)
            .map(|i| item_view(&core, i.clone(), now))
            .collect()
    }

    /// The favourites grid: the configured SKUs that are in the catalog, in order.
    pub fn favourites(&self) -> Vec<ItemView> {
        let now = self.now();
        let core = self.core();
        self.cfg
            .checkout
            .favourites
            .iter()
            .filter_map(|sku| core.catalog.get(sku).ok())
            .filter(|i| i.active)
            .map(|i| item_view(&core, i.clone(), now))
            .collect()
    }

    /// Customers whose phone number has the digits of `phone` (at least 4 of them).
    pub fn customers_by_phone(&self, phone: &str) -> Result<Vec<CustomerView>, TillError> {
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        if digits.len() < 4 {
            return Err(TillError::bad_request(
                "bad_phone",
                "give at least 4 digits of the phone number",
            ));
        }
        let core = self.core();
        let store = &self.cfg.store.store_id;
        let mut ids: Vec<String> = core
            .replica
            .state()
            .customers
            .find_by_phone(&digits, SEARCH_MAX)
            .into_iter()
            .map(|c| c.id)
            .collect();
        // Then the chain's customers HQ knows, registered at other stores.
        let mut hq: Vec<&String> = core
            .hq
            .customers
            .values()
            .filter(|h| {
                h.customer.phone.as_ref().is_some_and(|p| {
                    p.chars()
                        .filter(char::is_ascii_digit)
                        .collect::<String>()
                        .contains(&digits)
                })
            })
            .map(|h| &h.customer.id)
            .collect();
        hq.sort();
        for id in hq {
            if ids.len() >= SEARCH_MAX {
                break;
            }
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        Ok(ids
            .iter()
            .filter_map(|id| customers::customer_view(&core, store, id))
            .collect())
    }

    /// REFUND_REQUESTED -> PAID (a manager): the request is declined, nothing moves.
    pub async fn decline_refund(
        &self,
        s: &Session,
        id: &str,
        reason: &str,
        approval: Option<&Approval>,
    ) -> Result<TxnView, TillError> {
        self.audited(&s.employee_id, "transaction.refund_decline", id, async {
            let now = self.now();
            self.load_sale(id).await?;
            let no_request = |current: Status| {
                TillError::conflict(
                    "invalid_transition",
                    format!("sale {id} has no refund request ({current})"),
                )
            };
            let current = status_of(&self.core(), id);
            if current != Status::RefundRequested {
                return Err(no_request(current));
            }
            let approver = self.approve(s, Permission::Refund, approval).await?;
            let rx = {
                let (mut core, slot) = self.core_for_write()?;
                let current = status_of(&core, id);
                if current != Status::RefundRequested {
                    return Err(no_request(current));
                }
                let ev = core.replica.set_status(
                    id,
                    Status::Paid,
                    |status| EventBody::RefundRecorded {
                        txn_id: id.into(),
                        amount: 0,
                        by: s.employee_id.clone(),
                        approved_by: approver.clone(),
                        reason: format!("declined: {reason}"),
                        status,
                    },
                    now,
                );
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    "transaction.refund_decline",
                    id,
                    "ok",
                    format!("declined by {approver}: {reason}"),
                );
                self.submit(
                    slot,
                    WriteBatch {
                        events: vec![ev],
                        audit: vec![rec],
                        ..Default::default()
                    },
                )?
            };
            self.durable(rx).await?;
            self.get_txn(id).await
        })
        .await
    }

    /// Every cashier account of the store (a manager's view).
    pub async fn cashiers(&self, s: &Session) -> Result<Vec<CashierView>, TillError> {
        self.approve(s, Permission::ManageCash, None).await?;
        let store = self.store.clone();
        let now = self.now();
        let all = self
            .off_executor(move || store.read(|r| r.accounts_all()))
            .await??;
        Ok(all
            .into_iter()
            .map(|a| CashierView {
                locked_until: (a.locked_until_ms > now).then(|| rfc3339(a.locked_until_ms)),
                employee_id: a.employee_id,
                name: a.name,
                role: a.role,
                failed_attempts: a.failed_attempts,
            })
            .collect())
    }

    /// Unlocks an account locked after wrong PINs (a manager, audited).
    pub async fn unlock(&self, s: &Session, employee_id: &str) -> Result<CashierView, TillError> {
        self.audited(&s.employee_id, "auth.unlock", employee_id, async {
            self.approve(s, Permission::ManageCash, None).await?;
            let id = employee_id.to_string();
            let store = self.store.clone();
            let mut account = self
                .off_executor(move || store.read(|r| r.account(&id)))
                .await??
                .ok_or_else(|| {
                    TillError::not_found("unknown_employee", format!("no employee {employee_id}"))
                })?;
            account.failed_attempts = 0;
            account.locked_until_ms = 0;
            let rec = audit_rec(
                self.now(),
                &s.employee_id,
                "auth.unlock",
                employee_id,
                "ok",
                String::new(),
            );
            let info = self
                .store
                .commit(WriteBatch {
                    accounts: vec![account.clone()],
                    audit: vec![rec],
                    ..Default::default()
                })
                .await?;
            self.observe(&info);
            Ok(CashierView {
                employee_id: account.employee_id,
                name: account.name,
                role: account.role,
                failed_attempts: 0,
                locked_until: None,
            })
        })
        .await
    }
}
