//! [`TempFile`]: one registered temporary file, and how it becomes an output.

use std::fmt;
use std::fs::{self, File, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::adopt::OutsideFile;
use super::dirs::{ordinary_permissions, parent_dir, sync_dir};
use super::error::{PersistError, TempError};
use super::names::manifest_path;
use super::record::{Manifest, write_new};
use super::registry::{FileState, Shared, remove_if_present};
use crate::units::lock;

/// One registered temporary file. Reads, writes and seeks like a [`File`] (wrap it in a
/// `BufWriter` for hound's `WavWriter`); writing past the end charges the growth to the disk
/// ledger. Dropping it removes the file unless it was [persisted](TempFile::persist) or
/// [left for recovery](TempFile::leave_for_recovery).
pub struct TempFile {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) id: u64,
    pub(crate) shared: Arc<Shared>,
    pub(crate) pos: u64,
    pub(crate) accounted: AtomicU64,
}

impl fmt::Debug for TempFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TempFile")
            .field("path", &self.path)
            .field("bytes", &self.accounted.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl TempFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, for writers that need a [`File`].
    pub fn as_file(&self) -> &File {
        &self.file
    }

    /// The file's size as last accounted (by a write past the end, [`TempFile::account`] or
    /// [`TempFile::finish`]).
    pub fn size(&self) -> u64 {
        self.accounted.load(Ordering::Relaxed)
    }

    /// In progress or finished; `None` if a cleanup or memory-pressure reap removed it.
    pub fn state(&self) -> Option<FileState> {
        lock(&self.shared.registry)
            .entries
            .get(&self.id)
            .map(|e| e.state)
    }

    /// Whether the file is still registered (a cleanup or memory-pressure reap removes it).
    pub fn is_registered(&self) -> bool {
        lock(&self.shared.registry).entries.contains_key(&self.id)
    }

    /// Makes the file a take's journal: writes `manifest` beside it (`<file>.manifest`, 0600,
    /// synced). From now on, if this process dies, the next start finishes the file into a WAV
    /// file instead of reaping it (`w4l::take::recover`); the manifest goes with the file.
    ///
    /// # Errors
    ///
    /// The file was removed, or the manifest cannot be written.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), TempError> {
        let mut registry = lock(&self.shared.registry);
        let Some(entry) = registry.entries.get_mut(&self.id) else {
            return Err(self.removed());
        };
        let path = manifest_path(&self.path);
        write_new(&path, &manifest.render()).map_err(|source| TempError::Io {
            op: "write the manifest",
            path: path.clone(),
            source,
        })?;
        entry.companion = Some(path);
        Ok(())
    }

    /// Reports the file's total size (for writers that bypass this handle's `Write`): updates
    /// the tracked size and the disk ledger's hold. On refusal the previous charge stays.
    pub fn account(&self, total_bytes: u64) -> Result<(), TempError> {
        let mut registry = lock(&self.shared.registry);
        let Some(entry) = registry.entries.get_mut(&self.id) else {
            return Err(self.removed());
        };
        if let Some(hold) = entry.hold.as_mut() {
            hold.resize(total_bytes).map_err(TempError::Budget)?;
        }
        entry.bytes = total_bytes;
        self.accounted.store(total_bytes, Ordering::Relaxed);
        Ok(())
    }

    fn removed(&self) -> TempError {
        TempError::Removed {
            path: self.path.clone(),
        }
    }

    /// Syncs the file to disk and accounts its real size.
    fn sync(&mut self) -> Result<(), TempError> {
        let io_err = |op| {
            let path = self.path.clone();
            move |source| TempError::Io { op, path, source }
        };
        self.file.sync_data().map_err(io_err("sync"))?;
        let len = self.file.metadata().map_err(io_err("inspect"))?.len();
        self.account(len)
    }

    /// Marks the file complete and no longer needed: syncs it and makes it
    /// [`FileState::Finished`], which a memory-pressure reap may remove.
    pub fn finish(&mut self) -> Result<(), TempError> {
        self.sync()?;
        let mut registry = lock(&self.shared.registry);
        match registry.entries.get_mut(&self.id) {
            Some(entry) => {
                entry.state = FileState::Finished;
                Ok(())
            }
            None => Err(self.removed()),
        }
    }

    /// Lets go of the file without removing it: it stays where it is, with its manifest, and
    /// the next start (after this process is gone) finishes it into a WAV file. Returns its
    /// path. For a take that could not be saved.
    pub fn leave_for_recovery(mut self) -> PathBuf {
        let _ = self.file.sync_data();
        lock(&self.shared.registry).entries.remove(&self.id);
        std::mem::take(&mut self.path)
    }

    /// Forgets the file, now at its destination: its manifest goes, its disk charge is released.
    fn delivered(self) {
        let entry = lock(&self.shared.registry).entries.remove(&self.id);
        if let Some(companion) = entry.and_then(|e| e.companion) {
            let _ = remove_if_present(&companion);
        }
    }

    /// Moves the file to `to` (replacing a file there, like `mv`): a rename when `to` is on
    /// the same file system, else a copy to a hidden file beside `to`, fsync, rename, and
    /// removal of the temporary file. The output gets ordinary permissions (0666 less the
    /// umask), the destination's directory is fsynced. On failure before the recording reached
    /// `to`, the temporary file comes back in [`PersistError::file`], still 0600.
    pub fn persist(mut self, to: &Path) -> Result<(), PersistError> {
        let failed = |error, file| PersistError { error, file };
        if let Err(error) = self.sync() {
            let file = self.is_registered().then_some(self);
            return Err(failed(error, file));
        }
        let io_err = |op, source| TempError::Io {
            op,
            path: to.to_path_buf(),
            source,
        };
        if let Err(source) = self.file.set_permissions(ordinary_permissions()) {
            return Err(failed(io_err("set the permissions of", source), Some(self)));
        }
        match fs::rename(&self.path, to) {
            Ok(()) => {
                self.delivered();
                sync_dir(parent_dir(to))
                    .map_err(|source| failed(io_err("sync the directory of", source), None))
            }
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => self.persist_by_copy(to),
            Err(source) => Err(self.not_persisted(io_err("move the recording to", source))),
        }
    }

    /// [`TempFile::persist`] across file systems: the copy is registered (and recorded in the
    /// directory before it exists), so a signal, a panic or a kill during the copy leaves
    /// nothing behind.
    fn persist_by_copy(mut self, to: &Path) -> Result<(), PersistError> {
        let io_err = |op, source| TempError::Io {
            op,
            path: to.to_path_buf(),
            source,
        };
        let name = (".w4l-partial-", ".wav");
        let mode = ordinary_permissions().mode();
        let (mut partial, partial_path, guard) =
            match OutsideFile::create_with(&self.shared, parent_dir(to), name, mode) {
                Ok(created) => created,
                Err(source) => {
                    return Err(self.not_persisted(io_err("create a file beside", source)));
                }
            };
        let copied = self
            .file
            .seek(SeekFrom::Start(0))
            .and_then(|_| io::copy(&mut self.file, &mut partial))
            .and_then(|_| partial.sync_all());
        let result = match copied {
            Ok(()) => fs::rename(&partial_path, to).map_err(|e| io_err("move the recording to", e)),
            Err(source) => Err(io_err("copy the recording to", source)),
        };
        if let Err(error) = result {
            let _ = fs::remove_file(&partial_path);
            drop(guard);
            return Err(self.not_persisted(error));
        }
        // `to` holds the recording now: the manifest goes first (a kill from here on leaves no
        // take to recover twice), then the record of the copy, then the temporary file.
        let temp = self.path.clone();
        self.delivered();
        drop(guard);
        let _ = fs::remove_file(temp);
        sync_dir(parent_dir(to)).map_err(|source| PersistError {
            error: io_err("sync the directory of", source),
            file: None,
        })
    }

    /// A persist that did not reach its destination: the file, private again, comes back.
    fn not_persisted(self, error: TempError) -> PersistError {
        let _ = self.file.set_permissions(Permissions::from_mode(0o600));
        PersistError {
            error,
            file: Some(self),
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let entry = lock(&self.shared.registry).entries.remove(&self.id);
        if let Some(entry) = entry {
            let _ = entry.remove();
        }
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.pos += n as u64;
        if self.pos > self.accounted.load(Ordering::Relaxed) {
            self.account(self.pos).map_err(io::Error::other)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for TempFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = self.file.seek(pos)?;
        Ok(self.pos)
    }
}

impl Read for TempFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}
