//! Storage errors.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value could not be read or written.
    #[error("stored value is unreadable: {0}")]
    Codec(String),
    /// The write queue is full.
    #[error("the till is overloaded; try again")]
    Overloaded,
    /// The writer has stopped.
    #[error("the database is closed")]
    Closed,
    /// A filesystem error.
    #[error("i/o error: {0}")]
    Io(String),
    /// The disk holding the database is (nearly) full: nothing was written.
    #[error(
        "the disk holding the till's database has {free} bytes free and {min} are kept free; free some space, then try again"
    )]
    DiskFull {
        /// Bytes free for this process.
        free: u64,
        /// Bytes kept free.
        min: u64,
    },
    /// The database was written by a newer tillmesh, or a migration failed.
    #[error(transparent)]
    Schema(#[from] tillmesh_checkpoint::migrate::MigrateError),
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Codec(e.to_string())
    }
}

impl StoreError {
    /// Whether the error says the file itself is damaged (not a database, or corrupt), as
    /// opposed to one that leaves a healthy file alone (a newer schema, permissions, a lock,
    /// a full disk).
    pub fn is_corruption(&self) -> bool {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ),
            StoreError::Schema(m) => matches!(
                m.sqlite(),
                Some(rusqlite::Error::SqliteFailure(e, _)) if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
                )
            ),
            _ => false,
        }
    }

    /// Whether the disk is full (the guard's refusal, or SQLite's own `SQLITE_FULL`).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::DiskFull { .. } => true,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            _ => false,
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Overloaded)
    }
}
