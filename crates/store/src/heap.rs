//! The memory SQLite holds in this process: page caches, schemas, prepared statements.
//!
//! A till has five connections (the store's writer and reader, the checkpointer, `raft.db`'s
//! writer and reader), each keeping up to its `cache_size` of pages for as long as it is
//! open. Read at scrape time as `tillmesh_sqlite_heap_bytes`.

/// Bytes SQLite has allocated in this process now.
pub fn used() -> i64 {
    #[allow(unsafe_code)]
    // SAFETY: `sqlite3_memory_used` takes no pointers and is thread-safe (SQLite is built
    // with SQLITE_THREADSAFE=1).
    unsafe {
        rusqlite::ffi::sqlite3_memory_used()
    }
}
