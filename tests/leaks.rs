//! Shutting a till, a simulated store or the cloud down closes everything it opened: a till
//! stopped and reopened a hundred times in one process, and many simulator seeds in one
//! process, leave no database file descriptor behind (a leaked one keeps a removed file's
//! space and, past the process's limit, stops the next till from opening its database).
//!
//! The two tests share one lock: each counts the process's descriptors, which the other
//! would disturb.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use support::{Pki, TestCloud, TestTill, mesh_config};

static SERIAL: Mutex<()> = Mutex::new(());

/// Where each open descriptor of this process points.
fn open_files() -> Vec<PathBuf> {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn open_under(dir: &Path) -> Vec<PathBuf> {
    open_files()
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect()
}

#[test]
fn a_meshed_till_stopped_and_reopened_100_times_leaves_no_descriptor_open() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(till_reopened_100_times());
}

async fn till_reopened_100_times() {
    let cloud = TestCloud::start().await;
    let pki = Pki::new("S001");
    let mut dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let mut cfg = mesh_config(&data, &pki, 1, 0);
    cfg.cloud = Some(cloud.section());
    let mut baseline = None;
    for round in 0..100 {
        let till = TestTill::start_with(cfg.clone(), dir).await;
        assert!(
            !open_under(&data).is_empty(),
            "round {round}: a running till has its databases open"
        );
        dir = till.stop().await;
        let left = open_under(&data);
        assert!(
            left.is_empty(),
            "round {round}: a stopped till still holds {left:?}"
        );
        let total = open_files().len();
        let base = *baseline.get_or_insert(total);
        assert!(
            total <= base + 16,
            "round {round}: {total} descriptors open, {base} after the first round"
        );
    }
    drop(cloud.stop().await);
}

#[test]
fn many_simulated_seeds_in_one_process_leave_no_descriptor_open() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let run = |seed: u64| {
        let s = tillmesh::sim::fuzz_scenario(seed);
        let opts = tillmesh::sim::Options {
            seed,
            progress: false,
            reproduce: format!("fuzz --seed {seed}"),
        };
        tillmesh::sim::run(&s, &opts).unwrap()
    };
    let sim_files = || {
        open_files()
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("tillmesh-sim-"))
            .collect::<Vec<_>>()
    };
    run(7000);
    let before = open_files().len();
    for seed in 7001..7009 {
        run(seed);
        let left = sim_files();
        assert!(left.is_empty(), "seed {seed} left {left:?} open");
    }
    let after = open_files().len();
    assert!(
        after <= before + 16,
        "{after} descriptors open after 8 seeds, {before} before"
    );
}
