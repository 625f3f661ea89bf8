//! Reconciliation of a payment provider's statement against the ledger's QR payments (pure;
//! `api/reconcile.rs` serves it).
//!
//! The statement is the CSV a provider's merchant portal exports, reduced to one format:
//! a header line naming at least `reference` (our payment id, which the till sends as the
//! provider's merchant order reference: VNPay's `vnp_TxnRef`, MoMo's `orderId`), `amount`
//! (minor units) and `status` (`captured`, `refunded` or `failed`), optionally
//! `provider_ref` and `paid_at`, in any order; then one line per transaction. Fields may be
//! quoted (`"..."`, `""` for a quote). Only `captured` lines are money taken.
//!
//! Each QR payment the ledger holds for the store and days and each captured statement
//! line is either matched (same reference, same amount) or an exception: missing at the
//! provider (the till recorded a payment the provider never captured), missing in the
//! ledger (the provider captured money no sale recorded: a late capture, to refund), an
//! amount that differs, or a reference the statement lists twice.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most lines a statement may hold.
pub const STATEMENT_LINES_MAX: usize = 200_000;
/// Longest field.
const FIELD_CHARS_MAX: usize = 256;

/// One captured line of a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementLine {
    /// Line number in the file (1 is the header).
    pub line: usize,
    /// Our payment id.
    pub reference: String,
    /// The provider's own transaction id.
    pub provider_ref: String,
    /// Minor units.
    pub amount: i64,
}

/// A QR payment the ledger holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerPayment {
    /// Our payment id.
    pub reference: String,
    /// The sale.
    pub txn_id: String,
    /// Minor units.
    pub amount: i64,
    /// The provider the till used.
    pub provider: String,
    /// The sale's status (`PAID`, `VOID`, `REFUNDED`, ...).
    pub status: String,
}

/// What differs.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionKind {
    /// The ledger has the payment; the provider's statement has no capture for it.
    MissingAtProvider,
    /// The provider captured it; no sale in the ledger has it (refund it).
    MissingInLedger,
    /// Both have it, with different amounts.
    AmountDiffers,
    /// The statement lists the reference more than once.
    DuplicateAtProvider,
}

/// One exception.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Exception {
    /// What differs.
    pub kind: ExceptionKind,
    /// Our payment id.
    pub reference: String,
    /// The sale, when the ledger has one.
    pub txn_id: Option<String>,
    /// The ledger's amount.
    pub ledger_amount: Option<i64>,
    /// The provider's amount.
    pub provider_amount: Option<i64>,
    /// The provider's transaction id.
    pub provider_ref: Option<String>,
}

/// The outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reconciliation {
    /// Payments matched (same reference and amount).
    pub matched: u64,
    /// Their total, minor units.
    pub matched_amount: i64,
    /// Statement lines that were not captures (refunds, failures), not compared.
    pub not_captured: u64,
    /// Everything that differs, by kind then reference.
    pub exceptions: Vec<Exception>,
}

/// Splits one CSV line into fields (quotes as RFC 4180, within one line).
fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
        if cur.len() > FIELD_CHARS_MAX {
            return Err(format!(
                "a field is longer than {FIELD_CHARS_MAX} characters"
            ));
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    out.push(cur);
    Ok(out.into_iter().map(|f| f.trim().to_string()).collect())
}

/// Reads a statement: its captured lines, and how many lines were not captures.
pub fn parse_statement(text: &str) -> Result<(Vec<StatementLine>, u64), String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or("the statement is empty")?;
    let names: Vec<String> = fields(header.trim_start_matches('\u{feff}'))
        .map_err(|e| format!("line 1: {e}"))?
        .into_iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let col = |name: &str| names.iter().position(|n| n == name);
    let (Some(reference), Some(amount), Some(status)) =
        (col("reference"), col("amount"), col("status"))
    else {
        return Err("the header must name reference, amount and status".into());
    };
    let provider_ref = col("provider_ref");
    let mut out = Vec::new();
    let mut other = 0_u64;
    for (i, line) in lines {
        let n = i + 1;
        if n > STATEMENT_LINES_MAX {
            return Err(format!(
                "a statement holds at most {STATEMENT_LINES_MAX} lines"
            ));
        }
        let f = fields(line).map_err(|e| format!("line {n}: {e}"))?;
        let get = |c: usize| f.get(c).map(String::as_str).unwrap_or("");
        let st = get(status).to_ascii_lowercase();
        match st.as_str() {
            "captured" => {}
            "refunded" | "failed" => {
                other = other.saturating_add(1);
                continue;
            }
            s => {
                return Err(format!(
                    "line {n}: status {s:?} is not captured, refunded or failed"
                ));
            }
        }
        let reference = get(reference).to_string();
        if reference.is_empty() {
            return Err(format!("line {n}: no reference"));
        }
        let amount: i64 = get(amount).parse().ok().filter(|a| *a > 0).ok_or_else(|| {
            format!(
                "line {n}: amount {:?} is not a positive whole number of minor units",
                get(amount)
            )
        })?;
        out.push(StatementLine {
            line: n,
            reference,
            provider_ref: provider_ref.map(|c| get(c).to_string()).unwrap_or_default(),
            amount,
        });
    }
    Ok((out, other))
}

/// Matches the ledger's payments against a statement's captured lines.
pub fn reconcile(
    ledger: &[LedgerPayment],
    captured: &[StatementLine],
    not_captured: u64,
) -> Reconciliation {
    let mut r = Reconciliation {
        not_captured,
        ..Default::default()
    };
    let mut at_provider: BTreeMap<&str, Vec<&StatementLine>> = BTreeMap::new();
    for l in captured {
        at_provider.entry(l.reference.as_str()).or_default().push(l);
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in ledger {
        seen.insert(p.reference.as_str());
        let ex = |kind, provider: Option<&StatementLine>| Exception {
            kind,
            reference: p.reference.clone(),
            txn_id: Some(p.txn_id.clone()),
            ledger_amount: Some(p.amount),
            provider_amount: provider.map(|l| l.amount),
            provider_ref: provider.map(|l| l.provider_ref.clone()),
        };
        match at_provider.get(p.reference.as_str()).map(Vec::as_slice) {
            None | Some([]) => r
                .exceptions
                .push(ex(ExceptionKind::MissingAtProvider, None)),
            Some([one]) if one.amount == p.amount => {
                r.matched = r.matched.saturating_add(1);
                r.matched_amount = r.matched_amount.saturating_add(p.amount);
            }
            Some([one]) => r
                .exceptions
                .push(ex(ExceptionKind::AmountDiffers, Some(one))),
            Some(many) => r
                .exceptions
                .push(ex(ExceptionKind::DuplicateAtProvider, Some(many[0]))),
        }
    }
    for (reference, lines) in &at_provider {
        if seen.contains(reference) {
            continue;
        }
        let first = lines[0];
        r.exceptions.push(Exception {
            kind: if lines.len() > 1 {
                ExceptionKind::DuplicateAtProvider
            } else {
                ExceptionKind::MissingInLedger
            },
            reference: (*reference).to_string(),
            txn_id: None,
            ledger_amount: None,
            provider_amount: Some(first.amount),
            provider_ref: Some(first.provider_ref.clone()),
        });
    }
    r.exceptions
        .sort_by(|a, b| (a.kind, &a.reference).cmp(&(b.kind, &b.reference)));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paid(reference: &str, amount: i64) -> LedgerPayment {
        LedgerPayment {
            reference: reference.into(),
            txn_id: reference.trim_end_matches("-P1").into(),
            amount,
            provider: "vnpay".into(),
            status: "PAID".into(),
        }
    }

    #[test]
    fn every_planted_discrepancy_is_found_and_nothing_else() {
        let ledger: Vec<LedgerPayment> = (1..=50)
            .map(|i| paid(&format!("T1-{i}-P1"), 10_000 + i))
            .collect();
        let mut csv = String::from("paid_at,Reference,provider_ref,amount,status\n");
        for p in &ledger {
            let amount = match p.reference.as_str() {
                "T1-7-P1" => 999, // amount differs
                _ => p.amount,
            };
            if p.reference == "T1-13-P1" {
                continue; // missing at the provider
            }
            csv.push_str(&format!(
                "2026-12-01 10:00,\"{}\",VNP{},{amount},captured\n",
                p.reference, p.amount
            ));
        }
        csv.push_str("2026-12-01 10:05,T9-1-P1,VNP1,5000,captured\n"); // missing in the ledger
        csv.push_str("2026-12-01 10:06,T1-20-P1,VNP2,10020,captured\n"); // listed twice
        csv.push_str("2026-12-01 10:07,T1-21-P1,VNP3,10021,refunded\n"); // not a capture
        csv.push_str("2026-12-01 10:08,T1-99-P1,VNP4,10099,failed\n");
        let (lines, other) = parse_statement(&csv).unwrap();
        let r = reconcile(&ledger, &lines, other);
        let found: Vec<(ExceptionKind, &str)> = r
            .exceptions
            .iter()
            .map(|e| (e.kind, e.reference.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (ExceptionKind::MissingAtProvider, "T1-13-P1"),
                (ExceptionKind::MissingInLedger, "T9-1-P1"),
                (ExceptionKind::AmountDiffers, "T1-7-P1"),
                (ExceptionKind::DuplicateAtProvider, "T1-20-P1"),
            ]
        );
        assert_eq!((r.matched, r.not_captured), (47, 2));
        let differs = &r.exceptions[2];
        assert_eq!(
            (differs.ledger_amount, differs.provider_amount),
            (Some(10_007), Some(999))
        );
        // A clean statement: everything matched.
        let clean: String = std::iter::once("reference,amount,status\n".to_string())
            .chain(
                ledger
                    .iter()
                    .map(|p| format!("{},{},captured\n", p.reference, p.amount)),
            )
            .collect();
        let (lines, other) = parse_statement(&clean).unwrap();
        let r = reconcile(&ledger, &lines, other);
        assert_eq!((r.matched, r.exceptions.len()), (50, 0));
    }

    #[test]
    fn a_malformed_statement_is_refused_with_its_line() {
        for (bad, says) in [
            ("", "empty"),
            ("ref,amount\nx,1\n", "header"),
            ("reference,amount,status\nA,12.5,captured\n", "line 2"),
            ("reference,amount,status\nA,-3,captured\n", "line 2"),
            ("reference,amount,status\nA,3,pending\n", "line 2"),
            ("reference,amount,status\n,3,captured\n", "line 2"),
            ("reference,amount,status\n\"A,3,captured\n", "line 2"),
        ] {
            let e = parse_statement(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}
