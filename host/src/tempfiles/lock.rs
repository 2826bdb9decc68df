//! Who owns a file: one `flock` per process on `w4l-<pid>.lock`.
//!
//! Every process that creates files holds an exclusive `flock` on its lock file for as long as
//! it lives; the kernel drops the lock when the process dies, however it dies. A file
//! `w4l-<pid>-…` is an orphan iff `w4l-<pid>.lock` can be locked by someone else. The reaper
//! takes that lock itself (creating the lock file if it is missing), deals with the orphans
//! while holding it, then unlinks the lock file and lets go. A process starting with a reused
//! pid takes its lock the same way and, after locking, checks that the path still names the
//! file it locked (it retries if a reaper unlinked it in between), so a live process's files
//! are never reaped and pid reuse does not matter. Lock files are opened with `O_NOFOLLOW`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::TempError;
use super::names::lock_name;

/// How long a start waits for its own lock file while a reaper briefly holds it.
const OWN_LOCK_ATTEMPTS: u32 = 100;

/// The exclusive `flock` on `w4l-<pid>.lock`.
#[derive(Debug)]
pub(crate) struct LockFile {
    file: File,
    path: PathBuf,
}

impl LockFile {
    /// Unlinks the lock file while still holding the lock, then lets go.
    pub(crate) fn release(self) {
        let _ = fs::remove_file(&self.path);
        drop(self.file);
    }
}

/// Opens a lock file without following a symbolic link and checks it is our regular file.
pub(crate) fn open_lock_file(path: &Path, create: bool, uid: u32) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.uid() != uid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "not a regular file owned by this user",
        ));
    }
    Ok(file)
}

/// Whether `path` still names the file `file` has open.
pub(crate) fn still_named(file: &File, path: &Path) -> io::Result<bool> {
    let open = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Outcome of trying to take another process's lock.
pub(crate) enum Liveness {
    /// Its owner is alive (or its lock file is not ours to judge): leave its files alone.
    Live,
    /// Its owner is gone; for a real reap we now hold its lock.
    Dead(Option<LockFile>),
}

/// Takes the lock of `pid` if its owner is dead. A dry run creates nothing and holds nothing.
pub(crate) fn probe_owner(dir: &Path, pid: u32, uid: u32, dry_run: bool) -> io::Result<Liveness> {
    let path = dir.join(lock_name(pid));
    let file = match open_lock_file(&path, !dry_run, uid) {
        Ok(file) => file,
        Err(e) if dry_run && e.kind() == io::ErrorKind::NotFound => {
            return Ok(Liveness::Dead(None));
        }
        // A symbolic link (ELOOP under O_NOFOLLOW), or a file that is not a regular file of
        // ours: not a lock w4l made, so its pid's files are not ours to judge. Leaving them
        // alone is the answer, not a failure to report.
        Err(e)
            if e.raw_os_error() == Some(libc::ELOOP)
                || e.kind() == io::ErrorKind::PermissionDenied =>
        {
            return Ok(Liveness::Live);
        }
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(Liveness::Live),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    if dry_run {
        return Ok(Liveness::Dead(None));
    }
    // Someone unlinked the file between our open and our lock: it is in flux, judge later.
    if !still_named(&file, &path)? {
        return Ok(Liveness::Live);
    }
    Ok(Liveness::Dead(Some(LockFile { file, path })))
}

/// Takes this process's own lock, waiting out a reaper that briefly holds it.
pub(crate) fn take_own_lock(dir: &Path, pid: u32, uid: u32) -> Result<LockFile, TempError> {
    let path = dir.join(lock_name(pid));
    let lock_err = |source| TempError::Lock {
        path: path.clone(),
        source,
    };
    for _ in 0..OWN_LOCK_ATTEMPTS {
        let file = open_lock_file(&path, true, uid).map_err(lock_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(e)),
        }
        // A reaper may have unlinked the file we opened before we locked it: then our lock
        // protects nothing, start over with the file the path names now.
        if still_named(&file, &path).map_err(lock_err)? {
            return Ok(LockFile { file, path });
        }
    }
    Err(TempError::LockBusy { path })
}
