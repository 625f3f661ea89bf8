//! SQLite's soft heap limit (`tillmesh_store::heap`): with it, a connection whose page cache
//! would hold a whole table keeps SQLite's memory near the limit; without it, the cache fills.
//! One test in this binary: the limit and the count are the process's.

use rusqlite::Connection;
use tillmesh_store::heap;

/// Reads every row of `t` on a fresh connection with an 8 MiB page cache under `limit`;
/// returns what SQLite held at the end, with the connection still open.
fn scan(path: &std::path::Path, limit: i64) -> i64 {
    heap::set_soft_limit(limit);
    let c = Connection::open(path).unwrap();
    c.execute_batch("PRAGMA cache_size=-8192").unwrap();
    let hits: i64 = c
        .query_row("SELECT count(*) FROM t WHERE x LIKE '%zz%'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(hits, 0);
    let used = heap::used();
    drop(c);
    used
}

#[test]
fn a_soft_limit_keeps_sqlite_s_page_caches_near_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let mut c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE t(x TEXT)").unwrap();
        let tx = c.transaction().unwrap();
        // 6 MB of rows, each well within a page (no overflow pages).
        for i in 0..15_000 {
            tx.execute("INSERT INTO t VALUES (?1)", [format!("{i:0>400}")])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let free = scan(&path, 0);
    let limited = scan(&path, 1 << 20);
    let again = scan(&path, 0);
    assert!(
        free > 5 << 20 && again > 5 << 20,
        "without a limit the cache should hold the table: {free} B, {again} B"
    );
    assert!(
        limited < 2 << 20,
        "under a 1 MiB soft limit SQLite held {limited} B"
    );
}
