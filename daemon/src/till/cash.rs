//! The till's cash drawer: shift open with a float, pay-ins and pay-outs (a manager),
//! no-sale drawer opens (audited), and the close with expected against counted cash.

use super::*;
use tillmesh_pos::cash::{CashError, Movement, MovementKind, Shift, Summary};

/// Meta key of the open shift (JSON).
const SHIFT_KEY: &str = "shift:current";
/// Meta key prefix of closed shifts (`shift:closed:<opened ms, 16 digits>:<id>`).
const CLOSED_PREFIX: &str = "shift:closed:";
/// Closed shifts kept on the till (about a year of three shifts a day); older ones are
/// dropped at each close.
pub const CLOSED_SHIFTS_MAX: usize = 1_200;

/// The drawer now: the open shift, if any, and what it should hold.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DrawerView {
    /// The open shift (none: the drawer is not in use).
    pub shift: Option<Shift>,
    /// What the drawer should hold, and from what.
    pub summary: Option<Summary>,
}

/// A closed shift with its figures.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ClosedShift {
    /// The shift, with its close.
    pub shift: Shift,
    /// What the drawer should have held at the close.
    pub summary: Summary,
}

fn cash_error(e: CashError) -> TillError {
    let code = match e {
        CashError::Amount(_) => "bad_amount",
        CashError::Reason => "bad_reason",
        CashError::TooMany => "too_many_movements",
        CashError::Closed => return TillError::conflict("shift_closed", e.to_string()),
        CashError::NotInDrawer { .. } => "not_in_drawer",
    };
    TillError::unprocessable(code, e.to_string())
}

fn no_shift() -> TillError {
    TillError::conflict(
        "no_shift",
        "no shift is open on this till: open one with the float in the drawer",
    )
}

impl Till {
    /// The store's sales paid since `from_ms` (the shift keeps this till's own).
    async fn drawer_sales(&self, from_ms: u64) -> Result<Vec<(Sale, Status)>, TillError> {
        self.sales_between(from_ms, self.now().saturating_add(1))
            .await
    }

    fn summary_of(shift: &Shift, sales: &[(Sale, Status)], until_ms: u64) -> Summary {
        shift.summary(&super::reports::reported(sales), until_ms)
    }

    /// The drawer now.
    pub async fn drawer(&self) -> Result<DrawerView, TillError> {
        let Some(shift) = self.core().shift.clone() else {
            return Ok(DrawerView {
                shift: None,
                summary: None,
            });
        };
        let sales = self.drawer_sales(shift.opened_ms).await?;
        let summary = Self::summary_of(&shift, &sales, self.now().saturating_add(1));
        Ok(DrawerView {
            shift: Some(shift),
            summary: Some(summary),
        })
    }

    /// Opens a shift with `float` counted into the drawer.
    pub async fn open_shift(&self, s: &Session, float: i64) -> Result<DrawerView, TillError> {
        self.audited(&s.employee_id, "cash.open", "-", async {
            let now = self.now();
            let rx = {
                let (mut core, slot) = self.core_for_write()?;
                if let Some(open) = &core.shift {
                    return Err(TillError::conflict(
                        "shift_open",
                        format!(
                            "shift {} is open already (by {}): close it first",
                            open.shift_id, open.opened_by
                        ),
                    ));
                }
                let id = format!("T{}-SH{now}", self.cfg.terminal.id);
                let shift =
                    Shift::open(id.clone(), self.cfg.terminal.id, &s.employee_id, float, now)
                        .map_err(cash_error)?;
                let rx = self.submit(
                    slot,
                    WriteBatch {
                        audit: vec![audit_rec(
                            now,
                            &s.employee_id,
                            "cash.open",
                            &id,
                            "ok",
                            format!("float {float}"),
                        )],
                        meta: vec![(SHIFT_KEY.into(), json_of(&shift))],
                        ..Default::default()
                    },
                )?;
                core.shift = Some(shift);
                rx
            };
            self.committed(rx).await?;
            self.drawer().await
        })
        .await
    }

    /// A pay-in or pay-out: a manager's (their own session or their approval).
    pub async fn cash_movement(
        &self,
        s: &Session,
        kind: MovementKind,
        amount: i64,
        reason: &str,
        approval: Option<&Approval>,
    ) -> Result<DrawerView, TillError> {
        let action = match kind {
            MovementKind::PayIn => "cash.pay_in",
            MovementKind::PayOut => "cash.pay_out",
        };
        self.audited(&s.employee_id, action, "-", async {
            let opened = self.core().shift.as_ref().map(|sh| sh.opened_ms);
            let Some(opened) = opened else {
                return Err(no_shift());
            };
            let approver = self.approve(s, Permission::ManageCash, approval).await?;
            let sales = self.drawer_sales(opened).await?;
            let now = self.now();
            let rx = {
                let (mut core, slot) = self.core_for_write()?;
                let shift = core.shift.as_mut().ok_or_else(no_shift)?;
                let held = Self::summary_of(shift, &sales, now.saturating_add(1)).expected;
                shift
                    .record(
                        Movement {
                            kind,
                            amount,
                            reason: reason.trim().to_string(),
                            by: s.employee_id.clone(),
                            approved_by: approver.clone(),
                            at_ms: now,
                        },
                        held,
                    )
                    .map_err(cash_error)?;
                let json = json_of(shift);
                let id = shift.shift_id.clone();
                self.submit(
                    slot,
                    WriteBatch {
                        audit: vec![audit_rec(
                            now,
                            &s.employee_id,
                            action,
                            &id,
                            "ok",
                            format!("{amount} approved by {approver}: {}", reason.trim()),
                        )],
                        meta: vec![(SHIFT_KEY.into(), json)],
                        ..Default::default()
                    },
                )?
            };
            self.committed(rx).await?;
            self.drawer().await
        })
        .await
    }

    /// Opens the drawer without a sale (audited, counted in the shift).
    pub async fn no_sale(&self, s: &Session, reason: &str) -> Result<DrawerView, TillError> {
        self.audited(&s.employee_id, "cash.no_sale", "-", async {
            let now = self.now();
            let rx = {
                let (mut core, slot) = self.core_for_write()?;
                let shift = core.shift.as_mut().ok_or_else(no_shift)?;
                shift.no_sale().map_err(cash_error)?;
                let json = json_of(shift);
                let id = shift.shift_id.clone();
                self.submit(
                    slot,
                    WriteBatch {
                        audit: vec![audit_rec(
                            now,
                            &s.employee_id,
                            "cash.no_sale",
                            &id,
                            "ok",
                            reason.chars().take(200).collect(),
                        )],
                        meta: vec![(SHIFT_KEY.into(), json)],
                        ..Default::default()
                    },
                )?
            };
            self.committed(rx).await?;
            self.drawer().await
        })
        .await
    }

    /// Closes the shift with the cash counted: a manager's. Answers the closed shift with
    /// expected against counted.
    pub async fn close_shift(
        &self,
        s: &Session,
        counted: i64,
        approval: Option<&Approval>,
    ) -> Result<ClosedShift, TillError> {
        self.audited(&s.employee_id, "cash.close", "-", async {
            let opened = self.core().shift.as_ref().map(|sh| sh.opened_ms);
            let Some(opened) = opened else {
                return Err(no_shift());
            };
            let approver = self.approve(s, Permission::ManageCash, approval).await?;
            let sales = self.drawer_sales(opened).await?;
            let store = self.store.clone();
            let old = self
                .off_executor(move || store.read(|r| r.meta_prefix(CLOSED_PREFIX)))
                .await??;
            let now = self.now();
            let (closed, rx) = {
                let (mut core, slot) = self.core_for_write()?;
                let mut shift = core.shift.clone().ok_or_else(no_shift)?;
                let summary = Self::summary_of(&shift, &sales, now.saturating_add(1));
                let c = shift
                    .close(&approver, counted, summary.expected, now)
                    .map_err(cash_error)?;
                let closed = ClosedShift { shift, summary };
                let key = format!(
                    "{CLOSED_PREFIX}{:016}:{}",
                    closed.shift.opened_ms, closed.shift.shift_id
                );
                let drop = old
                    .len()
                    .saturating_add(1)
                    .saturating_sub(CLOSED_SHIFTS_MAX);
                let rx = self.submit(
                    slot,
                    WriteBatch {
                        audit: vec![audit_rec(
                            now,
                            &s.employee_id,
                            "cash.close",
                            &closed.shift.shift_id,
                            "ok",
                            format!(
                                "counted {} expected {} difference {} by {approver}",
                                c.counted, c.expected, c.difference
                            ),
                        )],
                        meta: vec![(key, json_of(&closed))],
                        meta_delete: std::iter::once(SHIFT_KEY.to_string())
                            .chain(old.into_iter().take(drop).map(|(k, _)| k))
                            .collect(),
                        ..Default::default()
                    },
                )?;
                core.shift = None;
                (closed, rx)
            };
            self.committed(rx).await?;
            Ok(closed)
        })
        .await
    }

    /// Shifts closed in `[from_ms, to_ms)` (by their close), oldest first.
    pub(super) async fn closed_shifts(
        &self,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<ClosedShift>, TillError> {
        let store = self.store.clone();
        let rows = self
            .off_executor(move || store.read(|r| r.meta_prefix(CLOSED_PREFIX)))
            .await??;
        Ok(rows
            .into_iter()
            .filter_map(|(_, json)| serde_json::from_str::<ClosedShift>(&json).ok())
            .filter(|c| {
                c.shift
                    .closed
                    .as_ref()
                    .is_some_and(|x| (from_ms..to_ms).contains(&x.at_ms))
            })
            .collect())
    }
}

fn json_of<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The open shift kept in the database, if any (read at start).
pub(super) fn load_shift(r: &tillmesh_store::Reader) -> Result<Option<Shift>, StoreError> {
    Ok(r.meta(SHIFT_KEY)?
        .and_then(|json| serde_json::from_str(&json).ok()))
}
