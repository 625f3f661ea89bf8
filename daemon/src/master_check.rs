//! The check a till makes before applying a master-data page from the store's Raft log:
//! HQ's Ed25519 signature of the page, for this store, continuing from what the till holds.
//! Whoever leads the store proposes pages; only HQ's key makes them count (so a till that
//! becomes leader cannot create an account or change a price on the others).

use std::sync::Arc;
use tillmesh_cloud_proto::{MasterSignature, master_message};
use tillmesh_consensus::machine::{MASTER_EXT_KEY, MASTER_SIGNATURE_KEY, MasterCheck, MasterPage};

/// The check for `store_id`, trusting HQ's public key `key_hex` (64 hex digits).
pub fn master_check(store_id: &str, key_hex: &str) -> anyhow::Result<MasterCheck> {
    let key = hex::decode(key_hex.trim())
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or_else(|| anyhow::anyhow!("security.hq_master_key must be 64 hex digits"))?;
    let store = store_id.to_owned();
    Ok(Arc::new(move |p: &MasterPage<'_>| verify(&store, &key, p)))
}

fn verify(store: &str, key: &[u8], p: &MasterPage<'_>) -> Result<(), String> {
    let Some((_, Some(json))) = p.changes.iter().find(|(k, _)| k == MASTER_SIGNATURE_KEY) else {
        return Err("the page is not signed by HQ".into());
    };
    let sig: MasterSignature =
        serde_json::from_str(json).map_err(|e| format!("HQ's signature is malformed: {e}"))?;
    // A page of the second stream is signed under another name (no page passes for one of
    // the other stream).
    let store = if p.ext {
        tillmesh_cloud_proto::records::ext_signing_name(store)
    } else {
        store.to_owned()
    };
    let store = store.as_str();
    if sig.store != store {
        return Err(format!("signed for store {}, not {store}", sig.store));
    }
    if sig.version != p.version {
        return Err(format!(
            "signed for version {}, proposed as {}",
            sig.version, p.version
        ));
    }
    if sig.since > p.held_version {
        return Err(format!(
            "the page starts after version {}, this till holds {}",
            sig.since, p.held_version
        ));
    }
    let rest: Vec<(String, Option<String>)> = p
        .changes
        .iter()
        .filter(|(k, _)| k != MASTER_SIGNATURE_KEY && k != MASTER_EXT_KEY)
        .cloned()
        .collect();
    let msg = master_message(store, sig.since, sig.version, &rest);
    let bytes = hex::decode(&sig.sig).map_err(|_| "HQ's signature is not hex".to_string())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
        .verify(&msg, &bytes)
        .map_err(|_| "HQ's signature does not match the page (or another key signed it)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn signed(
        pair: &Ed25519KeyPair,
        store: &str,
        since: u64,
        version: u64,
        changes: &[(String, Option<String>)],
    ) -> Vec<(String, Option<String>)> {
        let sig = MasterSignature {
            store: store.into(),
            since,
            version,
            key_id: "k".into(),
            sig: hex::encode(
                pair.sign(&master_message(store, since, version, changes))
                    .as_ref(),
            ),
        };
        let mut out = changes.to_vec();
        out.push((
            MASTER_SIGNATURE_KEY.into(),
            Some(serde_json::to_string(&sig).unwrap()),
        ));
        out
    }

    #[test]
    fn only_hqs_signature_of_this_page_for_this_store_passes() {
        let hq = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
        let rogue = Ed25519KeyPair::from_seed_unchecked(&[8; 32]).unwrap();
        let check = master_check("S001", &hex::encode(hq.public_key().as_ref())).unwrap();
        let changes = vec![
            ("item:A".to_string(), Some("{\"x\":1}".to_string())),
            ("cashier:E9".to_string(), None),
        ];
        let page = |held_version, version, changes: &[(String, Option<String>)]| {
            check(&MasterPage {
                ext: false,
                held_version,
                version,
                changes,
            })
        };
        let good = signed(&hq, "S001", 3, 5, &changes);
        assert_eq!(page(3, 5, &good), Ok(()));
        assert_eq!(
            page(4, 5, &good),
            Ok(()),
            "a page starting earlier still applies"
        );
        let why = |r: Result<(), String>| r.unwrap_err();
        assert!(why(page(2, 5, &good)).contains("starts after"));
        assert!(why(page(3, 6, &good)).contains("version"));
        assert!(why(page(3, 5, &changes)).contains("not signed"));
        assert!(
            why(page(3, 5, &signed(&rogue, "S001", 3, 5, &changes))).contains("does not match")
        );
        assert!(why(page(3, 5, &signed(&hq, "S002", 3, 5, &changes))).contains("S002"));
        // A record added to a signed page (an admin account) breaks the signature.
        let mut more = good.clone();
        more.insert(0, ("cashier:X".into(), Some("{}".into())));
        assert!(why(page(3, 5, &more)).contains("does not match"));
        assert!(master_check("S001", "abc").is_err());
    }

    #[test]
    fn a_page_of_one_stream_never_passes_for_the_other() {
        let hq = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
        let check = master_check("S001", &hex::encode(hq.public_key().as_ref())).unwrap();
        let changes = vec![("customer:C1".to_string(), Some("{}".to_string()))];
        let ext_name = tillmesh_cloud_proto::records::ext_signing_name("S001");
        let marked = |mut c: Vec<(String, Option<String>)>| {
            c.push((MASTER_EXT_KEY.to_string(), Some("1".to_string())));
            c
        };
        let ext_page = marked(signed(&hq, &ext_name, 0, 4, &changes));
        let first_page = signed(&hq, "S001", 0, 4, &changes);
        let run = |ext, changes: &[(String, Option<String>)]| {
            check(&MasterPage {
                ext,
                held_version: 0,
                version: 4,
                changes,
            })
        };
        assert_eq!(run(true, &ext_page), Ok(()));
        assert_eq!(run(false, &first_page), Ok(()));
        // Unmarked, the second stream's page is refused by the first; marked, the first's
        // page is refused by the second.
        let unmarked: Vec<_> = ext_page
            .iter()
            .filter(|(k, _)| k != MASTER_EXT_KEY)
            .cloned()
            .collect();
        assert!(run(false, &unmarked).is_err());
        assert!(run(true, &marked(first_page)).is_err());
    }
}
