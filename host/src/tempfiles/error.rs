//! What can go wrong with temporary files. Every message is one line: what was wrong; what to do.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::dirs::DIR_ENV;
use super::disk::DiskRefused;
use super::file::TempFile;
use super::names::MAX_PURPOSE_LEN;

/// Why a temporary-file operation failed.
#[derive(Debug)]
pub enum TempError {
    /// The temporary directory exists but is not safe to use.
    UnsafeDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The temporary directory could not be created or inspected.
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// No default directory is on a disk (see [`crate::tempfiles::default_dir`]).
    NoDiskDir {
        /// The directories considered, in order.
        tried: Vec<PathBuf>,
    },
    /// The per-process lock file could not be taken.
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another holder keeps this process's lock file locked.
    LockBusy {
        /// The lock file.
        path: PathBuf,
    },
    /// The purpose given to [`crate::tempfiles::ResourceManager::create`] is not
    /// `[a-z0-9_]{1,24}`.
    InvalidPurpose {
        /// The purpose given.
        purpose: String,
    },
    /// [`crate::tempfiles::ResourceManager::adopt`] was given something it cannot look after.
    NotAdoptable {
        /// The path given.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// The manager was cleaned up for exit (signal, panic, drop): no new files.
    Closed,
    /// The file was already removed by a cleanup or a memory-pressure reap.
    Removed {
        /// The file.
        path: PathBuf,
    },
    /// Creating, writing, syncing or moving a file failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The disk ledger refused to account for the file's growth.
    Budget(DiskRefused),
}

impl fmt::Display for TempError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsafeDir { dir, reason } => write!(
                f,
                "refusing to use the temporary directory {}: it {reason}; remove it or set {DIR_ENV} to a private directory",
                dir.display()
            ),
            Self::Dir { dir, source } => write!(
                f,
                "could not create the temporary directory {}: {source}; check that its parent exists and is writable, or set {DIR_ENV}",
                dir.display()
            ),
            Self::NoDiskDir { tried } => {
                let tried: Vec<String> = tried.iter().map(|d| d.display().to_string()).collect();
                write!(
                    f,
                    "no directory on a disk for temporary files ({} are RAM-backed or unusable); set {DIR_ENV} to a directory on a disk",
                    tried.join(", ")
                )
            }
            Self::Lock { path, source } => write!(
                f,
                "could not take the lock file {}: {source}; check the temporary directory or set {DIR_ENV}",
                path.display()
            ),
            Self::LockBusy { path } => write!(
                f,
                "the lock file {} stays locked by someone else; another process with the same pid (another pid namespace?) shares the directory: set {DIR_ENV} to a separate one",
                path.display()
            ),
            Self::InvalidPurpose { purpose } => write!(
                f,
                "invalid temporary-file purpose {purpose:?}; use 1 to {MAX_PURPOSE_LEN} characters of a-z, 0-9 and _"
            ),
            Self::NotAdoptable { path, reason } => write!(
                f,
                "cannot look after {}: {reason}; adopt a regular file of your own",
                path.display()
            ),
            Self::Closed => f.write_str(
                "the temporary-file manager was shut down (signal, panic or exit); no new temporary files can be created",
            ),
            Self::Removed { path } => write!(
                f,
                "the temporary file {} was already removed by a cleanup; the data written to it is lost, record again",
                path.display()
            ),
            Self::Io { op, path, source } => write!(
                f,
                "could not {op} {}: {source}; check free space and permissions",
                path.display()
            ),
            Self::Budget(refused) => write!(f, "{refused}"),
        }
    }
}

impl std::error::Error for TempError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Dir { source, .. } | Self::Lock { source, .. } | Self::Io { source, .. } => {
                Some(source)
            }
            Self::Budget(refused) => Some(refused),
            _ => None,
        }
    }
}

/// Splits a one-line `what; fix` message at its last `; `.
pub(crate) fn what_and_fix(message: &str) -> (&str, &str) {
    message.rsplit_once("; ").unwrap_or((message, ""))
}

impl From<TempError> for crate::error::Error {
    fn from(e: TempError) -> Self {
        let message = e.to_string();
        let (what, fix) = what_and_fix(&message);
        match e {
            TempError::InvalidPurpose { .. } | TempError::NotAdoptable { .. } => {
                crate::error::Error::usage(what, fix)
            }
            _ => crate::error::Error::runtime(what, fix),
        }
    }
}

/// A [`TempFile::persist`] that failed.
#[derive(Debug)]
pub struct PersistError {
    /// What went wrong.
    pub error: TempError,
    /// The temporary file, still registered and intact, if the recording did not reach its
    /// destination (retry with another path); `None` if it did and only the final sync
    /// failed.
    pub file: Option<TempFile>,
}

impl fmt::Display for PersistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for PersistError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
