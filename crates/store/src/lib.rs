//! SQLite persistence for a till (the only crate that imports rusqlite).
//!
//! One writer thread owns the write connection and commits in groups: every request that is
//! queued while a commit is in flight joins the next one, so concurrent sales share an fsync.
//! A request is answered only after its group's `COMMIT` returned with `synchronous=FULL` in
//! WAL mode, i.e. after the WAL is fsync'd. Reads use their own connection.

pub mod codec;
mod error;
pub mod heap;
pub mod raft;
mod read;
pub mod schema;
mod write;

pub use error::StoreError;
pub use read::{QuarantineRow, Reader, StockMovement};
pub use write::{CommitInfo, Prune, Quarantined, SealFn, WriteBatch};

use crossbeam_channel::{Sender, TrySendError, bounded};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A promised place in the write queue ([`Store::reserve`]); given back when dropped unused.
#[derive(Debug)]
pub struct Slot {
    inner: Option<Arc<Inner>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(i) = &self.inner {
            i.reserved.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Bytes kept free on the database's disk by default (64 MiB: a checkpoint and the WAL's
/// growth fit in it, so SQLite itself never meets a full disk mid-commit).
pub const DISK_FREE_MIN_DEFAULT: u64 = 64 << 20;
/// How often the free space is looked up, ms.
pub const DISK_CHECK_MS: u64 = 250;

/// Most write requests waiting for the writer.
pub const WRITE_QUEUE_MAX: usize = 4096;
/// Most requests committed in one group.
pub const GROUP_REQUESTS_MAX: usize = 512;

/// Longest a group commit waits for company under load, microseconds (see `Writer::run`).
pub const GROUP_LINGER_US: u64 = 300;
pub use tillmesh_checkpoint::{CHECKPOINT_INTERVAL_MS, Checkpointer, WAL_BYTES_MAX};

/// `PRAGMA quick_check` of the database at `path` on a connection of its own, read-only:
/// "ok" when every page is sound. It reads the whole file, so a till runs it beside its
/// work (the store's own connections stay free); in WAL mode it checks one snapshot.
pub fn quick_check_file(path: &std::path::Path) -> Result<String, StoreError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    Ok(conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?)
}

type Job = (WriteBatch, oneshot::Sender<Result<CommitInfo, StoreError>>);

/// How a store runs its writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// A writer thread commits in groups, `synchronous=FULL`, checkpoints off the commit
    /// path (the till).
    #[default]
    Durable,
    /// Every commit runs on the caller's thread, at once, `synchronous=OFF` (the OS keeps
    /// what was committed when a process dies, which is what a simulated crash is), and
    /// SQLite checkpoints inline. No threads and no waiting: the simulator's single
    /// thread stays deterministic.
    Inline,
}

/// In [`Mode::Inline`], closing a connection leaves the WAL as it is instead of
/// checkpointing it into the database file (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`). That is what
/// a dying process leaves, which is what a simulated crash is; the next open recovers from
/// the WAL as after a kill -9. The simulator closes every till at the end of each seed, and
/// that checkpoint was work nothing read.
pub fn keep_wal_at_close(conn: &rusqlite::Connection) -> Result<(), StoreError> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    Ok(())
}

/// Folds the WAL that a database's connections left at close ([`keep_wal_at_close`]) into
/// its file: a plain connection's close, the last one, checkpoints it and removes it. For a
/// database copied as one file (the simulator's till template).
pub fn fold_wal(path: &Path) -> Result<(), StoreError> {
    rusqlite::Connection::open(path)?.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(())
}

/// Handle to a till's database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// In [`Mode::Inline`], the writer itself.
    inline: Option<Mutex<write::Writer>>,
    jobs: Sender<Job>,
    queued: Arc<AtomicUsize>,
    /// Queue slots promised to callers that will submit (see [`Store::reserve`]).
    reserved: AtomicUsize,
    reader: Mutex<Reader>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer: Mutex<Option<Checkpointer>>,
    /// The database's directory, whose free space `reserve` checks.
    dir: PathBuf,
    /// Bytes kept free on that disk; below it new writes are refused (`DiskFull`).
    disk_free_min: AtomicU64,
    /// Free bytes when last looked (at most every [`DISK_CHECK_MS`]).
    disk_free: Mutex<(Option<std::time::Instant>, u64)>,
    /// The till's sealer, shared with the writer.
    seal: write::SealSlot,
}

/// The read connection's page cache, in KiB (SQLite's default is 2,000). Reads are off the
/// sale path (history, reports, master data at start) and mostly run once, and the OS's page
/// cache holds the file as well: a big store's start filled the default with master-data
/// pages no sale reads again.
const READ_CACHE_KIB: u32 = 512;

impl Store {
    /// Opens (creating and migrating as needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Self::open_with(path, Mode::Durable)
    }

    /// Opens the database at `path` in `mode`.
    pub fn open_with(path: impl AsRef<Path>, mode: Mode) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        if mode == Mode::Inline {
            let conn = schema::open(&path)?;
            conn.execute_batch(
                "PRAGMA synchronous=OFF; PRAGMA wal_autocheckpoint=1000; PRAGMA cache_size=-256;",
            )?;
            keep_wal_at_close(&conn)?;
            let read = schema::open_read(&path)?;
            read.execute_batch("PRAGMA synchronous=OFF; PRAGMA cache_size=-256;")?;
            keep_wal_at_close(&read)?;
            let (dead, _) = bounded::<Job>(0);
            let seal = write::SealSlot::default();
            return Ok(Store {
                inner: Arc::new(Inner {
                    inline: Some(Mutex::new(write::Writer::new(conn, seal.clone())?)),
                    jobs: dead,
                    queued: Arc::new(AtomicUsize::new(0)),
                    reserved: AtomicUsize::new(0),
                    reader: Mutex::new(Reader::new(read)),
                    writer: Mutex::new(None),
                    checkpointer: Mutex::new(None),
                    dir: PathBuf::new(),
                    disk_free_min: AtomicU64::new(0),
                    disk_free: Mutex::new((None, u64::MAX)),
                    seal,
                }),
            });
        }
        let conn = schema::open(&path)?;
        let (tx, rx) = bounded::<Job>(WRITE_QUEUE_MAX);
        let queued = Arc::new(AtomicUsize::new(0));
        let seal = write::SealSlot::default();
        let writer = write::Writer::new(conn, seal.clone())?;
        let q = queued.clone();
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx, q))
            .map_err(|e| StoreError::Io(e.to_string()))?;
        let read = schema::open_read(&path)?;
        read.execute_batch(&format!("PRAGMA cache_size=-{READ_CACHE_KIB};"))?;
        let reader = Reader::new(read);
        let checkpointer = Checkpointer::start(&path).map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(Store {
            inner: Arc::new(Inner {
                inline: None,
                jobs: tx,
                queued,
                reserved: AtomicUsize::new(0),
                reader: Mutex::new(reader),
                writer: Mutex::new(Some(handle)),
                checkpointer: Mutex::new(Some(checkpointer)),
                dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
                disk_free_min: AtomicU64::new(DISK_FREE_MIN_DEFAULT),
                disk_free: Mutex::new((None, u64::MAX)),
                seal,
            }),
        })
    }

    /// Installs the sealer: from now on the writer seals each event it stores that carries
    /// no seal and that `seal` answers for (this till's own). Set once; a second call is
    /// refused.
    pub fn set_sealer(&self, seal: SealFn) -> Result<(), StoreError> {
        self.inner
            .seal
            .0
            .set(seal)
            .map_err(|_| StoreError::Io("the store already has a sealer".into()))
    }

    /// Queues a batch and waits until it is durable. Fails fast with `Overloaded` when the
    /// queue is full, so a burst cannot grow memory without bound.
    pub async fn commit(&self, batch: WriteBatch) -> Result<CommitInfo, StoreError> {
        let rx = self.submit(batch)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Promises one place in the write queue, or answers `Overloaded` at once. A caller that
    /// must not fail between changing its memory and queueing the batch (a till holding its
    /// core lock) reserves first, so [`Store::submit_reserved`] never blocks and never fails
    /// for room: a stalled disk shows as `Overloaded`, not as a till frozen under its lock.
    pub fn reserve(&self) -> Result<Slot, StoreError> {
        if self.inner.inline.is_some() {
            return Ok(Slot { inner: None });
        }
        self.check_disk()?;
        let mut r = self.inner.reserved.load(Ordering::Acquire);
        loop {
            if r + self.inner.jobs.len() >= WRITE_QUEUE_MAX {
                return Err(StoreError::Overloaded);
            }
            match self.inner.reserved.compare_exchange_weak(
                r,
                r + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Slot {
                        inner: Some(self.inner.clone()),
                    });
                }
                Err(now) => r = now,
            }
        }
    }

    /// Keeps `bytes` free on the database's disk: below it, writes are refused with
    /// `DiskFull` before anything is queued (0 turns the guard off).
    pub fn set_disk_free_min(&self, bytes: u64) {
        self.inner.disk_free_min.store(bytes, Ordering::Relaxed);
    }

    /// Free and total bytes of the database's filesystem, as the disk guard sees them (for
    /// metrics; `None` when the filesystem cannot say).
    pub fn disk_space(&self) -> Option<(u64, u64)> {
        let v = rustix::fs::statvfs(&self.inner.dir).ok()?;
        Some((
            v.f_bavail.saturating_mul(v.f_frsize),
            v.f_blocks.saturating_mul(v.f_frsize),
        ))
    }

    /// Refuses with `DiskFull` while the disk has less than the minimum free (looked up at
    /// most every [`DISK_CHECK_MS`]; a filesystem that cannot say is taken as having room).
    fn check_disk(&self) -> Result<(), StoreError> {
        let min = self.inner.disk_free_min.load(Ordering::Relaxed);
        if min == 0 {
            return Ok(());
        }
        let mut d = self
            .inner
            .disk_free
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let stale =
            d.0.is_none_or(|t| t.elapsed().as_millis() as u64 >= DISK_CHECK_MS);
        if stale {
            let free = rustix::fs::statvfs(&self.inner.dir)
                .map(|v| v.f_bavail.saturating_mul(v.f_frsize))
                .unwrap_or(u64::MAX);
            *d = (Some(std::time::Instant::now()), free);
        }
        if d.1 < min {
            return Err(StoreError::DiskFull { free: d.1, min });
        }
        Ok(())
    }

    /// Queues a batch in a reserved place and returns the receiver of its outcome without
    /// waiting. Batches submitted in order are committed in order.
    pub fn submit_reserved(
        &self,
        slot: Slot,
        batch: WriteBatch,
    ) -> Result<oneshot::Receiver<Result<CommitInfo, StoreError>>, StoreError> {
        let (tx, rx) = oneshot::channel();
        if let Some(w) = &self.inner.inline {
            let _ = tx.send(inline_commit(w, batch));
            return Ok(rx);
        }
        self.inner.queued.fetch_add(1, Ordering::Relaxed);
        // Every sender reserved first, so the channel has room for this one.
        let sent = self.inner.jobs.try_send((batch, tx));
        drop(slot);
        match sent {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => {
                self.inner.queued.fetch_sub(1, Ordering::Relaxed);
                Err(StoreError::Overloaded)
            }
            Err(TrySendError::Disconnected(_)) => {
                self.inner.queued.fetch_sub(1, Ordering::Relaxed);
                Err(StoreError::Closed)
            }
        }
    }

    /// Queues a batch and returns the receiver of its outcome without waiting; `Overloaded`
    /// at once when the queue is full (never blocks).
    pub fn submit(
        &self,
        batch: WriteBatch,
    ) -> Result<oneshot::Receiver<Result<CommitInfo, StoreError>>, StoreError> {
        let slot = self.reserve()?;
        self.submit_reserved(slot, batch)
    }

    /// Blocking variant of [`Store::commit`] for non-async callers (CLI tools, benches).
    pub fn commit_blocking(&self, batch: WriteBatch) -> Result<CommitInfo, StoreError> {
        if let Some(w) = &self.inner.inline {
            return inline_commit(w, batch);
        }
        let rx = self.submit(batch)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Whether writes and reads run on the caller's thread ([`Mode::Inline`]): callers that
    /// would move a read off the async executor run it in place instead.
    pub fn is_inline(&self) -> bool {
        self.inner.inline.is_some()
    }

    /// The mode the store was opened in.
    pub fn mode(&self) -> Mode {
        if self.is_inline() {
            Mode::Inline
        } else {
            Mode::Durable
        }
    }

    /// Requests waiting for or inside the current commit.
    pub fn queue_len(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    /// Runs `f` with the read connection (blocking; call from `spawn_blocking` in async code).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Reader) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let r = self.inner.reader.lock().map_err(|_| StoreError::Closed)?;
        f(&r)
    }
}

fn inline_commit(w: &Mutex<write::Writer>, batch: WriteBatch) -> Result<CommitInfo, StoreError> {
    let mut w = w.lock().map_err(|_| StoreError::Closed)?;
    w.commit_one(batch)
}

/// Runs raw SQL on a closed database file. Only for tests that must tamper with what the
/// store wrote (to prove that verification notices); the till never calls it.
#[doc(hidden)]
pub fn tamper_for_tests(path: &Path, sql: &str) -> Result<(), StoreError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(sql)?;
    Ok(())
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Close the queue, then wait for the writer to drain what was accepted.
        let (dead, _) = bounded::<Job>(0);
        drop(std::mem::replace(&mut self.jobs, dead));
        if let Ok(mut h) = self.writer.lock()
            && let Some(h) = h.take()
        {
            let _ = h.join();
        }
        if let Ok(mut c) = self.checkpointer.lock() {
            drop(c.take());
        }
    }
}
