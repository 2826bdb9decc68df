//! [`ResourceManager`]: one per directory per process, shared by everyone who asks.

use std::fmt;
use std::fs::Permissions;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};

use super::adopt::{Adopted, track};
use super::dirs::{create_parents, current_uid, default_dir, ensure_private_dir, is_ram_backed};
use super::disk::DiskLedger;
use super::error::TempError;
use super::file::TempFile;
use super::lock::take_own_lock;
use super::names::{PREFIX, RAND_LEN, SUFFIX, valid_purpose};
use super::reap::{ReapReport, reap_in};
use super::registry::{Entry, FileState, Kind, Registry, Shared, enlist};
use crate::units::lock;

/// One tracked temporary file, as [`ResourceManager::files`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedFile {
    /// The file.
    pub path: PathBuf,
    /// Its size as last reported.
    pub bytes: u64,
    /// In progress or finished.
    pub state: FileState,
}

/// Owns this process's temporary files in one directory: creates, tracks, accounts, removes
/// them, looks after files an app hands over, and reaps what dead processes left behind. See
/// the [module documentation](super).
pub struct ResourceManager {
    shared: Arc<Shared>,
    startup: ReapReport,
}

impl fmt::Debug for ResourceManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceManager")
            .field("dir", &self.shared.dir)
            .field("pid", &self.shared.pid)
            .finish_non_exhaustive()
    }
}

/// The open managers of this process, one per directory.
static OPEN: Mutex<Vec<Weak<ResourceManager>>> = Mutex::new(Vec::new());

impl ResourceManager {
    /// The manager of `dir` in this process: the one already open if there is one (everyone
    /// who asks shares it), else a new one, which creates `dir` (mode 0700; its parent must
    /// exist) or checks it, takes this process's lock there and reaps what dead processes left
    /// ([`startup_report`](Self::startup_report)).
    ///
    /// ```
    /// use w4l::tempfiles::ResourceManager;
    ///
    /// let base = tempfile::tempdir()?;
    /// let mine = ResourceManager::open(base.path().join("w4l"))?;
    /// let theirs = ResourceManager::open(base.path().join("w4l"))?;
    /// assert!(std::sync::Arc::ptr_eq(&mine, &theirs));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The directory cannot be created, is not a private directory of this user, or this
    /// process's lock in it cannot be taken.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Arc<Self>, TempError> {
        let dir = dir.into();
        let uid = current_uid();
        let meta = ensure_private_dir(&dir, uid)?;
        let dir_id = (meta.dev(), meta.ino());
        let mut open = lock(&OPEN);
        open.retain(|w| w.strong_count() > 0);
        if let Some(manager) = find_open(&open, dir_id) {
            return Ok(manager);
        }
        let pid = std::process::id();
        let own_lock = take_own_lock(&dir, pid, uid)?;
        let shared = Arc::new(Shared {
            ram_backed: is_ram_backed(&dir).unwrap_or(false),
            dir,
            dir_id,
            pid,
            uid,
            registry: Mutex::new(Registry::new(own_lock)),
        });
        enlist(&shared);
        let mut manager = Self {
            shared,
            startup: ReapReport::default(),
        };
        manager.startup = manager.reap(false);
        let manager = Arc::new(manager);
        open.push(Arc::downgrade(&manager));
        Ok(manager)
    }

    /// The process's manager of [`default_dir`] (its missing parents created 0700): what the
    /// recorder uses unless given another.
    ///
    /// # Errors
    ///
    /// As for [`default_dir`] and [`open`](Self::open).
    pub fn shared() -> Result<Arc<Self>, TempError> {
        let dir = default_dir()?;
        create_parents(&dir)?;
        Self::open(dir)
    }

    /// The open manager of the directory `dir` names, if this process has one.
    pub(crate) fn open_here(dir: &Path) -> Option<Arc<Self>> {
        let meta = std::fs::symlink_metadata(dir).ok()?;
        find_open(&lock(&OPEN), (meta.dev(), meta.ino()))
    }

    pub(crate) fn inner(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// What the start-up reap removed.
    pub fn startup_report(&self) -> &ReapReport {
        &self.startup
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Whether the directory keeps its files in RAM (a tmpfs or ramfs: only when chosen
    /// explicitly, `$W4L_TEMP_DIR`): bytes written there cost memory, not disk.
    pub fn is_ram_backed(&self) -> bool {
        self.shared.ram_backed
    }

    /// Creates a new temporary file `w4l-<pid>-<purpose>-<random>.wav` (mode 0600), registered
    /// and [`FileState::InProgress`]. `purpose` is 1 to
    /// [`MAX_PURPOSE_LEN`](super::MAX_PURPOSE_LEN) characters of `a-z`, `0-9`, `_` (e.g. `take`,
    /// `scratch`).
    ///
    /// ```
    /// use std::io::Write;
    /// use w4l::tempfiles::{FileState, ResourceManager};
    ///
    /// let base = tempfile::tempdir()?;
    /// let manager = ResourceManager::open(base.path().join("w4l"))?;
    /// let mut take = manager.create("take")?;
    /// take.write_all(&[0; 1000])?;
    /// assert_eq!(manager.total_bytes(), 1000);
    ///
    /// // Memory pressure leaves the file being written alone.
    /// assert!(manager.reap_finished().files.is_empty());
    /// assert_eq!(take.state(), Some(FileState::InProgress));
    ///
    /// let out = base.path().join("take.wav");
    /// take.persist(&out)?;
    /// assert!(out.exists());
    /// assert_eq!(manager.total_bytes(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(&self, purpose: &str) -> Result<TempFile, TempError> {
        self.create_in_ledger(purpose, None)
    }

    /// Like [`create`](Self::create), with the file's bytes charged to `ledger` (an
    /// accountant's [`Category::Disk`](w4l_core::accountant::Category::Disk)): several
    /// recorders sharing one manager each charge their own accountant.
    pub fn create_charged(
        &self,
        purpose: &str,
        ledger: &dyn DiskLedger,
    ) -> Result<TempFile, TempError> {
        self.create_in_ledger(purpose, Some(ledger))
    }

    fn create_in_ledger(
        &self,
        purpose: &str,
        ledger: Option<&dyn DiskLedger>,
    ) -> Result<TempFile, TempError> {
        if !valid_purpose(purpose) {
            return Err(TempError::InvalidPurpose {
                purpose: purpose.to_owned(),
            });
        }
        let shared = &self.shared;
        // Created and registered under the registry lock, so no cleanup can miss it.
        let mut registry = lock(&shared.registry);
        if registry.closed {
            return Err(TempError::Closed);
        }
        let io_err = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| TempError::Io { op, path, source }
        };
        let (file, path) = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-{purpose}-", shared.pid))
            .suffix(SUFFIX)
            .rand_bytes(RAND_LEN)
            .permissions(Permissions::from_mode(0o600))
            .tempfile_in(&shared.dir)
            .map_err(io_err("create a temporary file in", &shared.dir))?
            .keep()
            .map_err(|e| io_err("keep the temporary file", e.file.path())(e.error))?;
        let mut entry = Entry::new(path.clone(), Kind::Own);
        entry.hold = ledger.map(|l| l.hold());
        let id = registry.insert(entry);
        Ok(TempFile {
            file,
            path,
            id,
            shared: Arc::clone(shared),
            pos: 0,
            accounted: AtomicU64::new(0),
        })
    }

    /// Takes the app's regular file `path` into this manager's care, wherever it is: it is
    /// removed when the returned handle drops, on [`cleanup`](Self::cleanup), by the signal and
    /// panic paths, and after a crash by the next start (a record in this directory names it);
    /// a memory-pressure reap never touches it. [`Adopted::keep`] gives it back.
    ///
    /// ```
    /// use w4l::tempfiles::ResourceManager;
    ///
    /// let base = tempfile::tempdir()?;
    /// let manager = ResourceManager::open(base.path().join("w4l"))?;
    /// let model_input = base.path().join("chunk.raw");
    /// std::fs::write(&model_input, b"samples for the model")?;
    /// let adopted = manager.adopt(&model_input)?;
    /// drop(adopted);
    /// assert!(!model_input.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `path` is not a regular file of this user (links are not followed), the manager was
    /// shut down, or the record cannot be written.
    pub fn adopt(&self, path: &Path) -> Result<Adopted, TempError> {
        let id = track(&self.shared, path, Kind::Adopted)?;
        let absolute = lock(&self.shared.registry)
            .entries
            .get(&id)
            .map(|e| e.path.clone())
            .unwrap_or_else(|| path.to_path_buf());
        Ok(Adopted::new(absolute, id, Arc::clone(&self.shared)))
    }

    /// The tracked temporary files, oldest first.
    pub fn files(&self) -> Vec<TrackedFile> {
        lock(&self.shared.registry)
            .entries
            .values()
            .filter(|e| e.kind == Kind::Own)
            .map(|e| TrackedFile {
                path: e.path.clone(),
                bytes: e.bytes,
                state: e.state,
            })
            .collect()
    }

    /// Total bytes of the tracked temporary files.
    pub fn total_bytes(&self) -> u64 {
        self.files().iter().map(|f| f.bytes).sum()
    }

    /// Removes every file of this process in this directory (in progress or not, adopted
    /// ones too). The manager stays usable; handles of removed files report
    /// [`TempError::Removed`] on their next growth.
    pub fn cleanup(&self) -> ReapReport {
        let mut registry = lock(&self.shared.registry);
        self.shared.remove_all(&mut registry, false, false)
    }

    /// Removes what dead processes left (their takes excepted: see `w4l::take::recover`).
    /// With `dry_run`, removes nothing and reports what it would remove. Never touches a live
    /// process's files, this process's registered files, or anything it did not create.
    pub fn reap(&self, dry_run: bool) -> ReapReport {
        let shared = &self.shared;
        let registered = || shared.registered();
        reap_in(
            &shared.dir,
            shared.uid,
            Some((shared.pid, &registered)),
            dry_run,
        )
    }

    /// The cleanup policy's `ReapTempFiles` action
    /// ([`w4l_core::policy::Action::ReapTempFiles`]), for the recorder's worker: removes this
    /// process's [`FileState::Finished`] temporary files and what dead processes left. Never a
    /// take in progress (its journal is in progress until saved), never an adopted file, never
    /// a dead process's take (the next start recovers it). Cheap when there is nothing to do.
    pub fn reap_finished(&self) -> ReapReport {
        let mut report = ReapReport::default();
        {
            let mut registry = lock(&self.shared.registry);
            let finished: Vec<u64> = registry
                .entries
                .iter()
                .filter(|(_, e)| e.kind == Kind::Own && e.state == FileState::Finished)
                .map(|(id, _)| *id)
                .collect();
            for id in finished {
                let Some(entry) = registry.entries.remove(&id) else {
                    continue;
                };
                match entry.remove() {
                    Ok(true) => report.removed(entry.path, entry.bytes),
                    Ok(false) => {}
                    Err(e) => {
                        report.failed(entry.path.clone(), &e);
                        // Still there: keep tracking it.
                        registry.entries.insert(id, entry);
                    }
                }
            }
        }
        report.merge(self.reap(false));
        report
    }
}

/// The open, not shut down, manager of the directory `dir_id` among `open`.
fn find_open(open: &[Weak<ResourceManager>], dir_id: (u64, u64)) -> Option<Arc<ResourceManager>> {
    open.iter()
        .filter_map(Weak::upgrade)
        .find(|m| m.shared.dir_id == dir_id && !lock(&m.shared.registry).closed)
}

impl Drop for ResourceManager {
    fn drop(&mut self) {
        let mut registry = lock(&self.shared.registry);
        self.shared.remove_all(&mut registry, true, false);
    }
}
