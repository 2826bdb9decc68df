//! Files outside the directory that a manager looks after: an app's own file handed over
//! ([`Adopted`]), and w4l's unfinished files beside an output ([`OutsideFile`]).
//!
//! Each gets a *record* in the manager's directory, `w4l-<pid>-<purpose>-<random>.ref`, naming
//! it (path, device, inode). The record is owned like any file of that pid: while the process
//! lives, nobody touches the file; once it is dead, the next reap removes the file — if it is
//! still the very file recorded, never a new one at the same path — and then the record.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
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
    let mut entry = Entry::new(target, kind);
    entry.bytes = meta.len();
    entry.ident = Some(Ident::of(&meta));
    record(shared, entry)
}

/// Writes the record of `entry` (a file outside the directory) and registers it.
fn record(shared: &Shared, mut entry: Entry) -> Result<u64, TempError> {
    let purpose = if entry.kind == Kind::Adopted {
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
    let rendered = Record {
        target: entry.path.clone(),
        ident: entry.ident,
    }
    .render();
    if let Err(e) = file.write_all(&rendered).and_then(|()| file.sync_data()) {
        let _ = fs::remove_file(&record);
        return Err(io_err(e));
    }
    entry.companion = Some(record);
    Ok(registry.insert(entry))
}

/// Creates the new file `<dir>/<prefix><random><suffix>` (mode `mode`; never following a link,
/// never replacing anything) for `shared`, its record written *before* it exists, so a kill
/// at any moment leaves nothing the next start does not find. Returns the file, its absolute
/// path and the entry's id.
fn create_recorded(
    shared: &Shared,
    dir: &Path,
    (prefix, suffix): (&str, &str),
    mode: u32,
) -> io::Result<(File, PathBuf, u64)> {
    let dir = std::path::absolute(dir)?;
    for _ in 0..CREATE_ATTEMPTS {
        let path = dir.join(format!("{prefix}{}{suffix}", random_name()));
        let id =
            record(shared, Entry::new(path.clone(), Kind::Outside)).map_err(io::Error::other)?;
        match new_file(&path, mode) {
            Ok(file) => return Ok((file, path, id)),
            Err(e) => {
                untrack(shared, id, false);
                if e.kind() != io::ErrorKind::AlreadyExists {
                    return Err(e);
                }
            }
        }
    }
    Err(io::Error::from(io::ErrorKind::AlreadyExists))
}

/// Names tried by [`create_recorded`] before it gives up.
const CREATE_ATTEMPTS: u32 = 16;

/// Creates `path` exclusively, without following a link.
fn new_file(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// [`RAND_LEN`] random letters and digits (`O_EXCL` settles any collision).
fn random_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let mut bits = hasher.finish();
    (0..RAND_LEN)
        .map(|_| {
            let c = ALPHABET.get((bits % 62) as usize).copied().unwrap_or(b'x');
            bits /= 62;
            char::from(c)
        })
        .collect()
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

/// An unfinished file w4l writes outside its temporary directory (an output's hidden temporary
/// beside `-o`, a copy on its way), created by [`OutsideFile::create`] and removed if the
/// process ends before the file is done: by a signal or a panic (which run no destructors)
/// through [`crate::tempfiles::cleanup_all`], or, after a kill, by the next start, through a
/// record written before the file existed. Dropping the guard forgets the file without removing
/// it (its owner renamed or removed it).
///
/// ```
/// use w4l::tempfiles::OutsideFile;
///
/// let dir = tempfile::tempdir()?;
/// let (_file, path, guard) = OutsideFile::create(dir.path(), (".out.wav.", ".w4l-tmp"), 0o600)?;
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
    /// Creates the new file `<dir>/<prefix><random><suffix>` (`name` is `(prefix, suffix)`)
    /// with `mode`, recorded in the directory of [`ResourceManager::shared`]. Without a usable
    /// directory, only a signal or a panic removes it. Returns the file, its absolute path
    /// and the guard.
    ///
    /// # Errors
    ///
    /// The file cannot be created.
    pub fn create(dir: &Path, name: (&str, &str), mode: u32) -> io::Result<(File, PathBuf, Self)> {
        let recorded = ResourceManager::shared()
            .map_err(|e| e.to_string())
            .and_then(|manager| {
                let (file, path, mut guard) = Self::create_with(manager.inner(), dir, name, mode)
                    .map_err(|e| e.to_string())?;
                guard._manager = Some(manager);
                Ok((file, path, guard))
            });
        match recorded {
            Ok(created) => Ok(created),
            // No record (no manager, or its directory is full): the file is still removed by
            // this process's cleanup, just not found again after a crash.
            Err(why) => {
                tracing::debug!(
                    "a file in {} is not recorded for after a crash: {why}",
                    dir.display()
                );
                let path = std::path::absolute(dir)?.join(format!(
                    "{}{}{}",
                    name.0,
                    random_name(),
                    name.1
                ));
                let file = new_file(&path, mode)?;
                enlist_unmanaged(&path);
                let guard = Self {
                    path: path.clone(),
                    tracked: None,
                    _manager: None,
                };
                Ok((file, path, guard))
            }
        }
    }

    /// Like [`create`](Self::create), recorded in `manager`'s directory.
    ///
    /// # Errors
    ///
    /// The file or its record cannot be created.
    pub fn create_in(
        manager: &ResourceManager,
        dir: &Path,
        name: (&str, &str),
        mode: u32,
    ) -> io::Result<(File, PathBuf, Self)> {
        Self::create_with(manager.inner(), dir, name, mode)
    }

    pub(crate) fn create_with(
        shared: &Arc<Shared>,
        dir: &Path,
        name: (&str, &str),
        mode: u32,
    ) -> io::Result<(File, PathBuf, Self)> {
        let (file, path, id) = create_recorded(shared, dir, name, mode)?;
        let guard = Self {
            path: path.clone(),
            tracked: Some((Arc::clone(shared), id)),
            _manager: None,
        };
        Ok((file, path, guard))
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
