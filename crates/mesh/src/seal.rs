//! A till's sealer: it signs the events it originates with its certificate's key (ECDSA
//! P-256, `r || s`) and announces that key in a [`KeyRecord`]. Checking seals is pure and
//! lives in `tillmesh_pos::seal`.

use crate::identity::{IdentityError, TillIdentity};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use tillmesh_pos::event::Event;
use tillmesh_pos::seal::{self, KeyRecord};

/// Signs one origin's events with its till's certificate key.
pub struct Sealer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    store_id: String,
    origin: u64,
    cert: Vec<u8>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("store_id", &self.store_id)
            .field("origin", &self.origin)
            .finish()
    }
}

impl Sealer {
    /// A sealer for `origin` (which must be the identity's terminal's) with the identity's key.
    pub fn new(identity: &TillIdentity, origin: u64) -> Result<Self, IdentityError> {
        if tillmesh_crdt::ReplicaId(origin).terminal() != identity.terminal {
            return Err(IdentityError::Names(format!(
                "T{} cannot seal for origin {origin}",
                identity.terminal
            )));
        }
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, identity.key_der(), &rng)
                .map_err(|e| IdentityError::Names(format!("the till key cannot sign: {e}")))?;
        Ok(Sealer {
            key,
            rng,
            store_id: identity.store_id.clone(),
            origin,
            cert: identity.cert_der().to_vec(),
        })
    }

    /// The seal of `e`, if it is this sealer's origin's (others' events are not ours to seal).
    pub fn seal(&self, e: &Event) -> Option<Vec<u8>> {
        if e.origin.0 != self.origin {
            return None;
        }
        let msg = seal::message(&self.store_id, e).ok()?;
        self.key
            .sign(&self.rng, &msg)
            .ok()
            .map(|s| s.as_ref().to_vec())
    }

    /// Signs `msg` (a batch seal: the message carries its own domain tag).
    pub fn sign(&self, msg: &[u8]) -> Option<Vec<u8>> {
        self.key
            .sign(&self.rng, msg)
            .ok()
            .map(|s| s.as_ref().to_vec())
    }

    /// This till's key record: its certificate, and that it seals its origin from
    /// `signs_from` on.
    pub fn record(&self, signs_from: u64) -> Result<KeyRecord, IdentityError> {
        let msg = KeyRecord::message(&self.store_id, self.origin, signs_from);
        let sig = self
            .key
            .sign(&self.rng, &msg)
            .map_err(|e| IdentityError::Names(format!("cannot sign the key record: {e}")))?;
        Ok(KeyRecord {
            origin: self.origin,
            signs_from,
            cert: self.cert.clone(),
            sig: sig.as_ref().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{create_store_ca, enroll};
    use tillmesh_crdt::ReplicaId;
    use tillmesh_pos::seal::{Keyring, Sealed};

    fn till(ca: &crate::identity::Pem, store: &str, t: u64) -> TillIdentity {
        TillIdentity::from_pem(store, &ca.cert, &enroll(ca, store, t).unwrap()).unwrap()
    }

    fn event(origin: ReplicaId, seq: u64) -> Event {
        let mut r = tillmesh_pos::state::Replica::new(origin);
        let mut e = r.adjust(
            "SKU1",
            5,
            tillmesh_pos::inventory::Reason::Receiving,
            None,
            None,
            "E1",
            1_000,
        );
        e.seq = seq;
        e
    }

    #[test]
    fn a_seal_holds_only_for_its_event_its_origin_and_its_store() {
        let ca = create_store_ca("S1").unwrap();
        let t1 = till(&ca, "S1", 1);
        let t2 = till(&ca, "S1", 2);
        let o1 = ReplicaId::for_terminal(1, 1);
        let o2 = ReplicaId::for_terminal(2, 1);
        let s1 = Sealer::new(&t1, o1.0).unwrap();
        let s2 = Sealer::new(&t2, o2.0).unwrap();
        assert!(Sealer::new(&t1, o2.0).is_err(), "T1 cannot seal for T2");
        let mut ring = Keyring::new("S1", t1.ca_der()).unwrap();
        assert!(ring.admit(&s1.record(1).unwrap()).unwrap());
        assert!(
            !ring.admit(&s1.record(1).unwrap()).unwrap(),
            "known already"
        );
        ring.admit(&s2.record(3).unwrap()).unwrap();

        let mut e = event(o1, 1);
        e.sig = s1.seal(&e);
        assert_eq!(ring.check(&e), Ok(Sealed::Signed));
        // The same seal on another event, or a changed body, fails.
        let mut moved = event(o1, 2);
        moved.sig = e.sig.clone();
        assert!(ring.check(&moved).is_err());
        let mut changed = e.clone();
        if let tillmesh_pos::event::EventBody::InventoryAdjusted { change, .. } = &mut changed.body
        {
            *change = 500;
        }
        assert!(ring.check(&changed).is_err());
        // T2 forging T1's event: its key is not T1's.
        let mut forged = event(o1, 2);
        forged.sig = {
            let mut as_t2 = forged.clone();
            as_t2.origin = o2;
            s2.seal(&as_t2)
        };
        assert!(ring.check(&forged).is_err());
        // Unsealed: refused once the origin seals, accepted below signs_from.
        assert!(ring.check(&event(o1, 2)).is_err());
        assert_eq!(ring.check(&event(o2, 2)), Ok(Sealed::Legacy));
        assert!(ring.check(&event(o2, 3)).is_err());
        // An origin that announced nothing: legacy.
        assert_eq!(
            ring.check(&event(ReplicaId::for_terminal(9, 1), 1)),
            Ok(Sealed::Legacy)
        );
    }

    #[test]
    fn records_from_another_store_or_for_another_terminal_are_refused() {
        let ca = create_store_ca("S1").unwrap();
        let other = create_store_ca("S2").unwrap();
        let t1 = till(&ca, "S1", 1);
        let mut ring = Keyring::new("S1", t1.ca_der()).unwrap();
        let stranger = till(&other, "S2", 1);
        let rec = Sealer::new(&stranger, ReplicaId::for_terminal(1, 1).0)
            .unwrap()
            .record(1)
            .unwrap();
        assert!(ring.admit(&rec).unwrap_err().contains("CA"));
        // T1's record moved to T2's origin: the signature no longer holds, and the
        // certificate names T1.
        let mut rec = Sealer::new(&t1, ReplicaId::for_terminal(1, 1).0)
            .unwrap()
            .record(1)
            .unwrap();
        rec.origin = ReplicaId::for_terminal(2, 1).0;
        assert!(ring.admit(&rec).is_err());
        rec.origin = ReplicaId::for_terminal(1, 1).0;
        rec.signs_from = 50;
        assert!(ring.admit(&rec).is_err(), "signs_from is signed");
        assert!(ring.records().is_empty());
    }
}
