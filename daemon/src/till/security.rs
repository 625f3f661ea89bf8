//! Revocation of till certificates: an admin hands the till a list the store CA signed
//! (`tillmesh store revoke`); the till checks the signature and proposes the list to the
//! store's Raft group, through which every till applies it (`consensus::spawn_revocations`).

use super::*;
use tillmesh_mesh::revocation::SignedRevocations;

/// The store setting that holds the newest revocation list (JSON `SignedRevocations`).
pub const REVOCATIONS_KEY: &str = tillmesh_consensus::REVOCATIONS_SETTING;

/// A revocation list as the till accepted it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RevocationsView {
    /// The store.
    pub store_id: String,
    /// When the CA made the list (RFC 3339).
    pub issued_at: String,
    /// The terminals it revokes.
    pub revoked: Vec<u64>,
}

/// The till's meta key holding the newest revocation list it applied (JSON
/// `SignedRevocations`): a restarted till applies it at once, and a leader proposing an older
/// list (a replay, still signed) cannot lift a revocation.
const APPLIED_KEY: &str = "revocations";

impl Till {
    /// The newest revocation list this till applied (it checks the signature again).
    pub fn applied_revocations(&self) -> Option<SignedRevocations> {
        let json = self.store.read(|r| r.meta(APPLIED_KEY)).ok()??;
        serde_json::from_str(&json).ok()
    }

    /// Remembers `signed` as the newest revocation list applied (durably).
    pub async fn remember_revocations(&self, signed: &SignedRevocations) -> anyhow::Result<()> {
        let rx = self.store.submit(WriteBatch {
            meta: vec![(APPLIED_KEY.into(), serde_json::to_string(signed)?)],
            ..Default::default()
        })?;
        rx.await??;
        Ok(())
    }

    /// Checks `signed` against the store CA and proposes it to the store's Raft group (on
    /// the leader; another till answers which one leads). An admin's action, audited.
    pub async fn publish_revocations(
        &self,
        s: &Session,
        signed: &SignedRevocations,
    ) -> Result<RevocationsView, TillError> {
        self.audited(&s.employee_id, "security.revoke", "-", async {
            if s.role != Role::Admin {
                return Err(TillError::forbidden(
                    "admin_only",
                    "only an admin hands the store a revocation list",
                ));
            }
            let Some(m) = &self.cfg.mesh else {
                return Err(TillError::conflict(
                    "no_mesh",
                    "this till has no [mesh]: there is no store to revoke a till from",
                ));
            };
            let ca = std::fs::read_to_string(&m.ca_cert).map_err(|e| {
                TillError::unavailable("no_ca", format!("cannot read the store CA: {e}"))
            })?;
            let list = tillmesh_mesh::revocation::verify_pem(signed, &ca, &self.cfg.store.store_id)
                .map_err(|e| TillError::unprocessable("bad_revocations", e))?;
            let raft = self.links.store_raft().ok_or_else(|| {
                TillError::unavailable("no_raft", "the store's Raft group is not running yet")
            })?;
            let value = serde_json::to_string(signed)
                .map_err(|e| TillError::unprocessable("bad_revocations", e.to_string()))?;
            raft.propose(tillmesh_consensus::Command::Setting {
                key: REVOCATIONS_KEY.into(),
                value,
            })
            .await
            .map_err(|e| match e {
                tillmesh_consensus::node::ConsensusError::NotLeader { leader } => {
                    TillError::conflict(
                        "not_leader",
                        match leader {
                            Some(l) => format!("till T{l} leads the store: hand the list to it"),
                            None => "the store has no leader right now: try again".into(),
                        },
                    )
                }
                other => TillError::unavailable("raft", other.to_string()),
            })?;
            Ok(RevocationsView {
                store_id: list.store_id,
                issued_at: rfc3339(list.issued_ms),
                revoked: list.revoked.keys().copied().collect(),
            })
        })
        .await
    }
}
