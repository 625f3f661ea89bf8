//! The memory SQLite holds in this process (page caches, schemas, prepared statements), and
//! a till's soft limit on it.
//!
//! Each connection keeps up to its `cache_size` of pages (2,000 KiB by default) for as long as
//! it is open, and a till has five: the store's writer and reader, the checkpointer, and
//! `raft.db`'s writer and reader. A big store's start (migrations, master data read and
//! compared, the log replayed) filled them with pages no sale reads again. Under a soft heap
//! limit SQLite reuses its least recently used clean pages once the whole process's SQLite
//! memory is at the limit, instead of allocating more; a page it drops is read back from the
//! OS's page cache when next needed. Dirty pages of a transaction are never dropped, so a
//! large write still completes (the limit is soft).

/// A till process's soft limit on SQLite's memory, bytes.
///
/// A sale's commit touches the right-hand pages of a few B-trees (tens of pages); a
/// transaction's reads are served from the OS's page cache when SQLite's is short.
pub const TILL_SOFT_LIMIT: i64 = 2 << 20;

/// Sets the process-wide soft limit on SQLite's memory to `bytes` (0: none) and returns the
/// limit before. Applies to every connection, open or opened later.
pub fn set_soft_limit(bytes: i64) -> i64 {
    #[allow(unsafe_code)]
    // SAFETY: `sqlite3_soft_heap_limit64` takes no pointers and is thread-safe (SQLite is
    // built with SQLITE_THREADSAFE=1); it initialises the library itself when needed.
    unsafe {
        rusqlite::ffi::sqlite3_soft_heap_limit64(bytes)
    }
}

/// Bytes SQLite has allocated in this process now.
pub fn used() -> i64 {
    #[allow(unsafe_code)]
    // SAFETY: `sqlite3_memory_used` takes no pointers and is thread-safe.
    unsafe {
        rusqlite::ffi::sqlite3_memory_used()
    }
}
