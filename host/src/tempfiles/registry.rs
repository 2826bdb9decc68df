//! What a manager looks after, shared by the manager, its file handles and the emergency paths
//! (signals, panics), which may run on any thread while the rest is busy.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};
use std::time::Duration;

use super::disk::DiskHold;
use super::lock::LockFile;
use super::reap::ReapReport;
use super::record::Ident;
use crate::units::lock;

/// How long the panic and signal paths wait for a lock before giving up.
const EMERGENCY_LOCK_ATTEMPTS: u32 = 200;

/// Whether a file is still in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Being written (a take in progress) or held (an adopted file): never removed by a
    /// memory-pressure reap.
    InProgress,
    /// Complete and no longer needed by anyone: may be removed under memory pressure.
    Finished,
}

/// What kind of file an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A temporary file in the directory.
    Own,
    /// A file of ours outside the directory, unfinished (a partial copy, an output's hidden
    /// temporary): removed by cleanups, not listed as a temporary file.
    Outside,
    /// An app's file handed over with [`crate::tempfiles::ResourceManager::adopt`].
    Adopted,
}

/// One registered file.
pub(crate) struct Entry {
    pub(crate) path: PathBuf,
    pub(crate) kind: Kind,
    pub(crate) bytes: u64,
    pub(crate) state: FileState,
    pub(crate) hold: Option<Box<dyn DiskHold>>,
    /// Device and inode of a file outside the directory: only that file is ever removed.
    pub(crate) ident: Option<Ident>,
    /// The small file in the directory that speaks for it: a journal's manifest, an outside
    /// file's record. Removed with it.
    pub(crate) companion: Option<PathBuf>,
}

impl Entry {
    /// Whether the entry is a take's journal (its own file with a manifest beside it).
    pub(crate) fn is_take(&self) -> bool {
        self.kind == Kind::Own
            && self
                .companion
                .as_ref()
                .is_some_and(|c| c.extension().is_some_and(|e| e == "manifest"))
    }

    /// A new entry of `kind` for `path`, empty and in progress.
    pub(crate) fn new(path: PathBuf, kind: Kind) -> Self {
        Self {
            path,
            kind,
            bytes: 0,
            state: FileState::InProgress,
            hold: None,
            ident: None,
            companion: None,
        }
    }

    /// Removes the file (if it is still the one registered) and its companion. Returns
    /// whether the file was removed.
    pub(crate) fn remove(&self) -> io::Result<bool> {
        let removed = match self.ident {
            Some(ident) if !ident.names(&self.path) => false,
            _ => remove_if_present(&self.path)?,
        };
        if let Some(companion) = &self.companion {
            remove_if_present(companion)?;
        }
        Ok(removed)
    }
}

/// Removes `path`; a missing file is not an error. Returns whether it was there.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The registered files of one manager.
pub(crate) struct Registry {
    pub(crate) closed: bool,
    next_id: u64,
    pub(crate) entries: BTreeMap<u64, Entry>,
    pub(crate) lock: Option<LockFile>,
}

impl Registry {
    pub(crate) fn new(lock: LockFile) -> Self {
        Self {
            closed: false,
            next_id: 0,
            entries: BTreeMap::new(),
            lock: Some(lock),
        }
    }

    /// Registers `entry`; returns its id.
    pub(crate) fn insert(&mut self, entry: Entry) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(id, entry);
        id
    }
}

/// A manager's state, shared with its files.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    /// Device and inode of the directory: one manager per directory per process.
    pub(crate) dir_id: (u64, u64),
    pub(crate) pid: u32,
    pub(crate) uid: u32,
    pub(crate) ram_backed: bool,
    pub(crate) registry: Mutex<Registry>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("dir", &self.dir)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Removes every registered file and, if `close`, shuts the registry: unlinks the lock
    /// file and refuses new files. With `keep_takes`, a take's journal (a file with a manifest)
    /// stays with its manifest: the process is about to end abruptly, and the next start
    /// recovers the take instead of losing it.
    pub(crate) fn remove_all(
        &self,
        registry: &mut Registry,
        close: bool,
        keep_takes: bool,
    ) -> ReapReport {
        let mut report = ReapReport::default();
        for (_, entry) in std::mem::take(&mut registry.entries) {
            if keep_takes && entry.is_take() {
                continue;
            }
            match entry.remove() {
                Ok(true) if entry.kind != Kind::Outside => report.removed(entry.path, entry.bytes),
                Ok(_) => {}
                Err(e) => report.failed(entry.path, &e),
            }
            // `entry.hold` drops here: its bytes are released.
        }
        if close {
            registry.closed = true;
            if let Some(lock) = registry.lock.take() {
                lock.release();
            }
        }
        report
    }

    /// Every name in the directory this manager speaks for: its files and their companions.
    pub(crate) fn registered(&self) -> BTreeSet<PathBuf> {
        let registry = lock(&self.registry);
        let mut names = BTreeSet::new();
        for entry in registry.entries.values() {
            if entry.kind == Kind::Own {
                names.insert(entry.path.clone());
            }
            names.extend(entry.companion.clone());
        }
        names
    }
}

/// Every manager of this process, for the signal and panic paths.
static MANAGERS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Puts a new manager on the list [`cleanup_all`] goes through.
pub(crate) fn enlist(shared: &Arc<Shared>) {
    let mut managers = lock(&MANAGERS);
    managers.retain(|w| w.strong_count() > 0);
    managers.push(Arc::downgrade(shared));
}

/// Files outside any manager (no manager could be opened) that [`cleanup_all`] removes too.
static UNMANAGED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Puts `path` on the list of unmanaged files [`cleanup_all`] removes.
pub(crate) fn enlist_unmanaged(path: &Path) {
    lock(&UNMANAGED).push(path.to_path_buf());
}

/// Takes `path` off that list.
pub(crate) fn delist_unmanaged(path: &Path) {
    let mut list = lock(&UNMANAGED);
    if let Some(i) = list.iter().position(|p| p == path) {
        list.swap_remove(i);
    }
}

/// Locks `m` without risking a deadlock on the panic path (the panicking thread may hold
/// it): tries for about two seconds, then gives up.
fn lock_patiently<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    for _ in 0..EMERGENCY_LOCK_ATTEMPTS {
        match m.try_lock() {
            Ok(guard) => return Some(guard),
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    None
}

/// Removes every file of every manager of this process but the takes' journals (left with
/// their manifests for the next start to recover) and shuts them down (no new files; lock
/// files unlinked). For the signal path ([`crate::tempfiles::signals`]) and anything about to
/// call [`std::process::exit`]. Never blocks for more than a few seconds, never panics.
pub fn cleanup_all() -> ReapReport {
    let managers: Vec<Arc<Shared>> = match lock_patiently(&MANAGERS) {
        Some(list) => list.iter().filter_map(Weak::upgrade).collect(),
        None => return ReapReport::default(),
    };
    let mut report = ReapReport::default();
    for shared in managers {
        if let Some(mut registry) = lock_patiently(&shared.registry) {
            report.merge(shared.remove_all(&mut registry, true, true));
        }
    }
    if let Some(mut unmanaged) = lock_patiently(&UNMANAGED) {
        for path in unmanaged.drain(..) {
            if let Err(e) = remove_if_present(&path) {
                report.failed(path, &e);
            }
        }
    }
    report
}

/// For the application's panic hook: removes every temporary file of this process, as
/// [`cleanup_all`] does. Safe to call from a hook running on a thread that holds a manager's
/// lock (it gives up on that manager after about two seconds instead of deadlocking).
///
/// [`crate::tempfiles::signals::install_panic_cleanup`] installs a hook that calls it.
pub fn cleanup_after_panic() -> ReapReport {
    cleanup_all()
}
