//! [`LocalError`]: what the embedded backend reports, and how the paywall reads it.

use paywall::backend::BackendError;

/// An embedded backend failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A customer, product or plan does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The database was written by a newer version of this crate.
    #[error("the ledger's schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// The version found in the file.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// A customer with that email or external reference already exists.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The blocking task running the query did not complete (runtime shutting down).
    #[error("the ledger task did not complete")]
    TaskFailed,
}

impl From<LocalError> for BackendError {
    fn from(err: LocalError) -> Self {
        match err {
            LocalError::NotFound(what) => BackendError::NotFound(what),
            LocalError::Conflict(what) => BackendError::Rejected(what),
            other => BackendError::unavailable(other.to_string()),
        }
    }
}
