//! The hash-chained audit log: each entry carries the SHA-256 of the previous entry, so an
//! edited, inserted or deleted entry breaks the chain and `verify` names the first bad one.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, before it is chained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    /// When (ms since epoch).
    pub at_ms: u64,
    /// Who (employee id, or `-` before login).
    pub actor: String,
    /// What (`transaction.void`, `auth.login`, ...).
    pub action: String,
    /// On what (transaction id, SKU, ...).
    pub target: String,
    /// `ok`, or `refused: <code>`.
    pub outcome: String,
    /// More detail (approver, reason, ...).
    pub detail: String,
}

/// A chained entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// The record.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// Hash of this entry.
    pub hash: String,
}

/// Chains a record after `(prev_seq, prev_hash)`.
pub fn chain(prev_seq: u64, prev_hash: &str, record: AuditRecord) -> AuditEntry {
    let seq = prev_seq.saturating_add(1);
    let hash = digest(seq, prev_hash, &record);
    AuditEntry {
        seq,
        record,
        prev_hash: prev_hash.to_string(),
        hash,
    }
}

fn digest(seq: u64, prev_hash: &str, r: &AuditRecord) -> String {
    let mut h = Sha256::new();
    h.update(seq.to_be_bytes());
    h.update(prev_hash.as_bytes());
    h.update(r.at_ms.to_be_bytes());
    // Length-prefix each field so that moving text between fields changes the hash.
    for f in [&r.actor, &r.action, &r.target, &r.outcome, &r.detail] {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at entry {seq}: {problem}")]
pub struct AuditError {
    /// The first bad entry.
    pub seq: u64,
    /// What is wrong.
    pub problem: &'static str,
}

/// Verifies a chain read in `seq` order; returns the number of entries and the head hash.
pub fn verify<'a>(
    entries: impl IntoIterator<Item = &'a AuditEntry>,
) -> Result<(u64, String), AuditError> {
    let mut prev = (0_u64, GENESIS.to_string());
    for e in entries {
        if e.seq != prev.0.saturating_add(1) {
            return Err(AuditError {
                seq: prev.0.saturating_add(1),
                problem: "entry missing (sequence gap)",
            });
        }
        if e.prev_hash != prev.1 {
            return Err(AuditError {
                seq: e.seq,
                problem: "previous-hash link does not match",
            });
        }
        if digest(e.seq, &e.prev_hash, &e.record) != e.hash {
            return Err(AuditError {
                seq: e.seq,
                problem: "entry was modified (hash mismatch)",
            });
        }
        prev = (e.seq, e.hash.clone());
    }
    Ok(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u64) -> AuditRecord {
        AuditRecord {
            at_ms: i,
            actor: "E1".into(),
            action: "transaction.void".into(),
            target: format!("T1-{i}"),
            outcome: "ok".into(),
            detail: String::new(),
        }
    }

    fn build(n: u64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let (s, h) = out
                .last()
                .map_or((0, GENESIS.to_string()), |e| (e.seq, e.hash.clone()));
            out.push(chain(s, &h, rec(i)));
        }
        out
    }

    #[test]
    fn detects_edits_deletions_and_relinks() {
        let good = build(5);
        assert_eq!(verify(&good).unwrap().0, 5);

        let mut edited = good.clone();
        edited[2].record.outcome = "refused".into();
        assert_eq!(verify(&edited).unwrap_err().seq, 3);

        let mut deleted = good.clone();
        deleted.remove(1);
        assert_eq!(verify(&deleted).unwrap_err().seq, 2);

        // Deleting an entry and renumbering still breaks the prev-hash link.
        let mut relinked = good.clone();
        relinked.remove(1);
        for (i, e) in relinked.iter_mut().enumerate() {
            e.seq = i as u64 + 1;
        }
        assert!(verify(&relinked).is_err());
    }
}
