//! Files outside the directory that a manager looks after: an app's own file handed over
//! ([`Adopted`]), and w4l's unfinished files beside an output ([`OutsideFile`]).
//!
//! Each gets a *record* in the manager's directory, `w4l-<pid>-<purpose>-<random>.ref`, naming
//! it (path, device, inode). The record is owned like any file of that pid: while the process
//! lives, nobody touches the file; once it is dead, the next reap removes the file — if it is
//! still the very file recorded, never a new one at the same path — and then the record.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::TempError;
use super::manager::ResourceManager;
use super::names::{PREFIX, RAND_LEN, RECORD_SUFFIX};
use super::record::{Ident, Record};
use super::registry::{Entry, Kind, Shared, delist_unmanaged, enlist_unmanaged, remove_if_present};
use crate::units::lock;

/// Registers the regular file `path` (of ours) with `shared` as `kind`, with a record in the
/// directory; returns the entry's id.
pub(crate) fn track(shared: &Shared, path: &Path, kind: Kind) -> Result<u64, TempError> {
    let refuse = |reason: &str| TempError::NotAdoptable {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    let meta = fs::symlink_metadata(path).map_err(|e| refuse(&e.to_string()))?;
    if !meta.is_file() {
        return Err(refuse(
            "it is not a regular file (a link, a directory or a device)",
        ));
    }
    if meta.uid() != shared.uid {
        return Err(refuse("it belongs to another user"));
    }
    let target = std::path::absolute(path).map_err(|e| refuse(&e.to_string()))?;
    let purpose = if kind == Kind::Adopted {
        "adopted"
    } else {
        "outside"
    };
    let mut registry = lock(&shared.registry);
    if registry.closed {
        return Err(TempError::Closed);
    }
    let io_err = |source| TempError::Io {
        op: "write a record in",
        path: shared.dir.clone(),
        source,
    };
    let (mut file, record) = tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-{purpose}-", shared.pid))
        .suffix(RECORD_SUFFIX)
        .rand_bytes(RAND_LEN)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(&shared.dir)
        .map_err(io_err)?
        .keep()
        .map_err(|e| io_err(e.error))?;
    let ident = Ident::of(&meta);
    let rendered = Record {
        target: target.clone(),
        ident,
    }
    .render();
    if let Err(e) = file.write_all(&rendered).and_then(|()| file.sync_data()) {
        let _ = fs::remove_file(&record);
        return Err(io_err(e));
    }
    let mut entry = Entry::new(target, kind);
    entry.bytes = meta.len();
    entry.ident = Some(ident);
    entry.companion = Some(record);
    Ok(registry.insert(entry))
}

/// Takes entry `id` off `shared`'s list and removes its record; the file itself only if
/// `remove_file`.
fn untrack(shared: &Shared, id: u64, remove_file: bool) {
    let Some(entry) = lock(&shared.registry).entries.remove(&id) else {
        return;
    };
    if remove_file {
        let _ = entry.remove();
    } else if let Some(record) = &entry.companion {
        let _ = remove_if_present(record);
    }
}

/// An app's file in a manager's care ([`ResourceManager::adopt`]): removed when this handle
/// drops, on [`ResourceManager::cleanup`], by the signal and panic paths, and — after a crash —
/// by the next start. Never removed by a memory-pressure reap. [`Adopted::keep`] lets it go.
#[derive(Debug)]
pub struct Adopted {
    path: PathBuf,
    id: u64,
    shared: Arc<Shared>,
}

impl Adopted {
    pub(crate) fn new(path: PathBuf, id: u64, shared: Arc<Shared>) -> Self {
        Self { path, id, shared }
    }

    /// The file (absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the manager still looks after it (a cleanup removes it).
    pub fn is_registered(&self) -> bool {
        lock(&self.shared.registry).entries.contains_key(&self.id)
    }

    /// Gives the file back: it stays, and nothing of w4l's will remove it. Returns its path.
    pub fn keep(mut self) -> PathBuf {
        untrack(&self.shared, self.id, false);
        std::mem::take(&mut self.path)
    }
}

impl Drop for Adopted {
    fn drop(&mut self) {
        untrack(&self.shared, self.id, true);
    }
}

/// Keeps an unfinished file w4l writes outside its temporary directory (an output's hidden
/// temporary beside `-o`, a copy on its way) on the lists of files to remove if the process
/// ends before the file is done: by a signal or a panic (which run no destructors) through
/// [`crate::tempfiles::cleanup_all`], or by a kill, through a record the next start finds.
/// Dropping the guard forgets the file without removing it (its owner renamed or removed it).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join(".out.wav.w4l-tmp");
/// std::fs::write(&path, b"unfinished")?;
/// let guard = w4l::tempfiles::OutsideFile::register(&path);
/// w4l::tempfiles::cleanup_all();
/// assert!(!path.exists());
/// drop(guard);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct OutsideFile {
    path: PathBuf,
    tracked: Option<(Arc<Shared>, u64)>,
    /// Keeps the process's shared manager open while the file is on its list.
    _manager: Option<Arc<ResourceManager>>,
}

impl OutsideFile {
    /// Puts `path` on the lists, with its record in the directory of
    /// [`ResourceManager::shared`]. Without a usable directory, only a signal or a panic
    /// removes it.
    pub fn register(path: &Path) -> Self {
        match ResourceManager::shared() {
            Ok(manager) => {
                let mut guard = Self::register_with(manager.inner(), path);
                guard._manager = Some(manager);
                guard
            }
            Err(e) => {
                tracing::debug!("{} is not recorded for after a crash: {e}", path.display());
                Self::unmanaged(path)
            }
        }
    }

    /// Puts `path` on the lists of `manager` (its record in `manager`'s directory).
    pub fn register_in(manager: &ResourceManager, path: &Path) -> Self {
        Self::register_with(manager.inner(), path)
    }

    /// Puts `path` on the lists of the manager behind `shared`.
    pub(crate) fn register_with(shared: &Arc<Shared>, path: &Path) -> Self {
        match track(shared, path, Kind::Outside) {
            Ok(id) => Self {
                path: path.to_path_buf(),
                tracked: Some((Arc::clone(shared), id)),
                _manager: None,
            },
            Err(e) => {
                tracing::debug!("{} is not recorded for after a crash: {e}", path.display());
                Self::unmanaged(path)
            }
        }
    }

    fn unmanaged(path: &Path) -> Self {
        enlist_unmanaged(path);
        Self {
            path: path.to_path_buf(),
            tracked: None,
            _manager: None,
        }
    }
}

impl Drop for OutsideFile {
    fn drop(&mut self) {
        match &self.tracked {
            Some((shared, id)) => untrack(shared, *id, false),
            None => delist_unmanaged(&self.path),
        }
    }
}
