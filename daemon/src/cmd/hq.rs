//! `tillmesh hq`: HQ's administration of the cloud (stores, credentials, master data,
//! fleet), on its database directly.

use crate::cli::HqAction;

/// `tillmesh hq ...`: works on the database directly, so it needs no running cloud.
pub(super) async fn run(
    cfg: tillmesh_cloud::config::CloudConfig,
    action: HqAction,
) -> anyhow::Result<()> {
    use tillmesh_cloud::ledger::StoreInfo;
    use tillmesh_cloud::master::{CashierInput, EditInput, MasterRef, validate};
    use tillmesh_cloud_proto::MasterBody;
    use tillmesh_pos::pricing::{PriceScope, ScheduledPrice};
    if let HqAction::HashPassword = action {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']);
        if password.len() < 12 {
            anyhow::bail!("a dashboard password needs at least 12 characters");
        }
        println!("{}", tillmesh_cloud::auth::hash_password(password)?);
        return Ok(());
    }
    if let HqAction::MasterKey = action {
        let seed = cfg.auth.master_key_seed.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "the cloud config has no auth.master_key_seed: master data is not signed"
            )
        })?;
        println!(
            "{}",
            tillmesh_cloud::MasterKey::from_seed_hex(seed)?.public_hex()
        );
        return Ok(());
    }
    let ledger = tillmesh_cloud::open_ledger(&cfg.database).await?;
    if let HqAction::Migrate = action {
        println!(
            "the cloud's {} database is at this build's schema ({})",
            ledger.backend(),
            env!("CARGO_PKG_VERSION")
        );
        return Ok(());
    }
    let cloud = tillmesh_cloud::Cloud::new(&cfg, ledger.clone())?;
    // The configured stores exist for `hq` as they do for a running cloud.
    cloud.seed(&cfg).await?;
    let apply = |edit: EditInput| async {
        let edit = validate(edit).map_err(anyhow::Error::msg)?;
        let v = ledger.master_apply(vec![edit]).await?;
        println!("master data now at version {v}");
        anyhow::Ok(())
    };
    let edit = |store: Option<String>| EditInput {
        store,
        put: None,
        cashier: None,
        delete: None,
    };
    match action {
        HqAction::AddStore {
            id,
            name,
            utc_offset_minutes,
            ca_cert,
            ca_dir,
        } => {
            tillmesh_cloud::check_store_id(&id).map_err(anyhow::Error::msg)?;
            let ca = match &ca_cert {
                Some(path) => {
                    use rustls::pki_types::{CertificateDer, pem::PemObject};
                    let der = CertificateDer::from_pem_file(path)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    tillmesh_pos::seal::Keyring::new(&id, der.as_ref())
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    Some(der.to_vec())
                }
                None => None,
            };
            if !(-720..=840).contains(&utc_offset_minutes) {
                anyhow::bail!("--utc-offset-minutes must be between -720 and 840");
            }
            let old = ledger.store(&id).await?;
            ledger
                .put_store(StoreInfo {
                    store_id: id.clone(),
                    name,
                    utc_offset_minutes,
                    enabled: old.as_ref().is_none_or(|s| s.enabled),
                    tokens_valid_after_ms: old.map_or(0, |s| s.tokens_valid_after_ms),
                })
                .await?;
            if let Some(ca) = ca {
                ledger
                    .put_seal_keys(&id, Some(ca.clone()), Vec::new(), None)
                    .await?;
                if ledger.seal_keys(&id).await?.ca != Some(ca) {
                    anyhow::bail!(
                        "store {id} already has another CA pinned; it stays (the store is registered)"
                    );
                }
            }
            if let Some(dir) = ca_dir {
                let (ca, dir_store, next) = super::pki::for_hq(&dir)?;
                if dir_store != id {
                    anyhow::bail!("{} is store {dir_store}'s CA, not {id}'s", dir.display());
                }
                cloud
                    .hold_store_ca(&id, ca, next)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
                super::pki::mark_at_hq(&dir, &id)?;
                println!(
                    "HQ holds store {id}'s CA: it admits tills a manager approves, from terminal {next} on"
                );
            }
            println!("store {id} registered");
        }
        HqAction::JoinToken {
            store,
            valid_for,
            peer,
            http_peer,
            cloud_url,
            cloud_plain_http,
        } => {
            let valid_for_ms = super::pki::duration_ms(&valid_for)?;
            if valid_for_ms > 30 * 86_400_000 {
                anyhow::bail!("a join token is valid for at most 30 days (--valid-for 30d)");
            }
            let (key, csr) = tillmesh_pki::request()?;
            let request = tillmesh_pki::Request::parse(&csr).map_err(anyhow::Error::msg)?;
            let now = tillmesh_cloud::now_ms();
            let id = super::pki::token_id()?;
            let issued = ledger
                .enrol(
                    &store,
                    tillmesh_cloud::ledger::Enrolment {
                        key_sha256: request.key_sha256(),
                        code: request.code(),
                        approved_by: format!("join token {id}"),
                        at_ms: now,
                    },
                )
                .await?;
            let Some((terminal, ca)) = issued else {
                anyhow::bail!(
                    "HQ does not hold store {store}'s CA: hand it over with `tillmesh hq add-store {store} --name ... --ca-dir pki/`, or make the token with `tillmesh store token --ca-dir pki/`"
                );
            };
            if terminal > tillmesh_cloud::api::TERMINAL_ID_MAX {
                anyhow::bail!("store {store} has used every terminal id");
            }
            let pem = tillmesh_pki::Pem {
                cert: ca.cert.clone(),
                key: ca.key,
            };
            let cert = request
                .sign(&pem, &store, terminal)
                .map_err(anyhow::Error::msg)?;
            super::pki::print_token(&tillmesh::enrol::JoinToken {
                store_id: store,
                terminal,
                id,
                expires_ms: now + valid_for_ms,
                ca: ca.cert,
                cert,
                key: key.serialize_pem(),
                peers: peer,
                http_peers: http_peer,
                cloud: cloud_url.map(|url| tillmesh::enrol::CloudHint {
                    url,
                    allow_plain_http: cloud_plain_http,
                    ca_pem: None,
                }),
            })?;
        }
        HqAction::Stores => {
            for s in ledger.stores().await? {
                println!(
                    "{}\t{}\tUTC{:+}min\t{}",
                    s.store_id,
                    s.name,
                    s.utc_offset_minutes,
                    if s.enabled { "enabled" } else { "disabled" }
                );
            }
        }
        HqAction::Token {
            store,
            admin,
            days,
            revoke_older,
        } => {
            if store.is_none() && !admin {
                anyhow::bail!("give --store ID or --admin");
            }
            if days.is_some_and(|d| !(1..=400).contains(&d)) {
                anyhow::bail!("--days must be 1 to 400");
            }
            if admin && days.is_some_and(|d| d > 1) {
                anyhow::bail!(
                    "an admin credential lasts at most a day; people sign in to the dashboard instead"
                );
            }
            let (token, claims) = cloud
                .issue(store.as_deref(), days.map(|d| u64::from(d) * 86_400_000))
                .await?;
            if revoke_older && let Some(id) = &store {
                let mut s = ledger
                    .store(id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("store {id} is not registered"))?;
                s.tokens_valid_after_ms = claims.iat_ms;
                ledger.put_store(s).await?;
                eprintln!("older credentials of store {id} are revoked");
            }
            println!("{token}");
        }
        HqAction::HashPassword | HqAction::MasterKey | HqAction::Migrate => {
            unreachable!("answered before the database opens")
        }
        HqAction::ResetTerm { store } => {
            if !ledger.reset_term(&store).await? {
                anyhow::bail!("store {store} is not registered");
            }
            tracing::warn!(store = %store, "store's Raft term reset by an admin: its next leader is admitted at any term");
            println!("store {store}: term reset; its next leader's uploads are admitted");
        }
        HqAction::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let edits = tillmesh_cloud::master::import(&text).map_err(anyhow::Error::msg)?;
            let n = edits.len();
            let v = ledger.master_apply(edits).await?;
            println!("imported {n} records; master data now at version {v}");
        }
        HqAction::Price {
            sku,
            price,
            store,
            from_ms,
        } => {
            let scope = if store.is_some() {
                PriceScope::Store
            } else {
                PriceScope::Chain
            };
            apply(EditInput {
                put: Some(MasterBody::Price(ScheduledPrice {
                    sku,
                    price,
                    effective_from_ms: from_ms.unwrap_or_else(tillmesh_cloud::now_ms),
                    scope,
                })),
                ..edit(store)
            })
            .await?;
        }
        HqAction::Cashier {
            employee_id,
            name,
            role,
            pin,
            store,
        } => {
            apply(EditInput {
                cashier: Some(CashierInput {
                    employee_id,
                    name,
                    role,
                    pin,
                }),
                ..edit(store)
            })
            .await?;
        }
        HqAction::Delete { kind, key, store } => {
            apply(EditInput {
                delete: Some(MasterRef { kind, key }),
                ..edit(store)
            })
            .await?;
        }
        HqAction::Master { since, store } => {
            let current = ledger.master_version().await?;
            let limit = tillmesh_cloud_proto::MASTER_CHANGES_MAX;
            let rows = ledger
                .master_since(store.as_deref(), since, limit, false)
                .await?;
            let changes = tillmesh_cloud::master::changes(rows, current, limit)?;
            println!("{}", serde_json::to_string_pretty(&changes)?);
        }
        HqAction::Fleet => {
            let now = tillmesh_cloud::now_ms();
            println!("store\tleader\tterm\ttills\tlast upload\tbacklog\tevents");
            for f in ledger.fleet().await? {
                let last = if f.last_upload_ms == 0 {
                    "never".to_string()
                } else {
                    format!("{} s ago", now.saturating_sub(f.last_upload_ms) / 1000)
                };
                println!(
                    "{}\t{}\t{}\t{}\t{last}\t{}\t{}",
                    f.store_id,
                    f.leader,
                    f.term,
                    f.tills_seen.len(),
                    f.backlog,
                    f.events
                );
            }
        }
    }
    Ok(())
}
