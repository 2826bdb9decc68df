//! Moving a repaired take to where it belongs, never replacing a file.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Placement, RecoveryConfig, io_error};
use crate::error::{Error, Result};
use crate::tempfiles::{OutsideFile, ResourceManager, ordinary_permissions};
use crate::wav::numbered_path;

/// Most `-N` suffixes tried for a free name.
const MAX_SUFFIX: u32 = 1000;

/// Moves the repaired `parts` (a take's files, in order) to their intended path `intended`
/// (or beside it), else to the recovered-takes directory as `name`. Returns the files written
/// and where they went.
pub(super) fn place(
    parts: &[PathBuf],
    intended: Option<&Path>,
    name: &str,
    config: &RecoveryConfig,
    manager: &ResourceManager,
) -> Result<(Vec<PathBuf>, Placement)> {
    if let Some(out) = intended.filter(|o| writable_dir(parent_dir(o))) {
        let target = if free(out, parts.len()) {
            Some((out.to_path_buf(), Placement::Intended))
        } else {
            beside(out, parts.len()).map(|b| (b, Placement::Beside))
        };
        if let Some((dest, placement)) = target {
            match move_all(parts, &dest, manager) {
                Ok(files) => return Ok((files, placement)),
                Err(e) => tracing::warn!("{e}; trying the recovered-takes directory"),
            }
        }
    }
    let Some(dir) = &config.recovered_dir else {
        return Err(Error::runtime(
            "there is no directory for recovered takes (neither XDG_DATA_HOME nor HOME is set)",
            "set HOME or XDG_DATA_HOME and run w4l recover",
        ));
    };
    fs::create_dir_all(dir).map_err(|e| io_error("create", dir, &e))?;
    let dest = unique(&dir.join(name), parts.len()).ok_or_else(|| {
        Error::runtime(
            format!("no free name for a recovered take in {}", dir.display()),
            "remove old recovered takes there",
        )
    })?;
    move_all(parts, &dest, manager).map(|files| (files, Placement::RecoveredDir))
}

/// `name.recovered-N.ext` beside `out`, the first N whose numbered files are all free.
fn beside(out: &Path, parts: usize) -> Option<PathBuf> {
    let stem = out.file_stem()?.to_string_lossy().into_owned();
    let ext = out
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (1..MAX_SUFFIX)
        .map(|n| out.with_file_name(format!("{stem}.recovered-{n}{ext}")))
        .find(|candidate| free(candidate, parts))
}

/// `path` if free, else `stem-N.ext` for the first free N.
fn unique(path: &Path, parts: usize) -> Option<PathBuf> {
    if free(path, parts) {
        return Some(path.to_path_buf());
    }
    let stem = path.file_stem()?.to_string_lossy().into_owned();
    let ext = path.extension()?.to_string_lossy().into_owned();
    (2..MAX_SUFFIX)
        .map(|n| path.with_file_name(format!("{stem}-{n}.{ext}")))
        .find(|candidate| free(candidate, parts))
}

/// Moves each part to `dest`'s numbered path; returns them.
fn move_all(parts: &[PathBuf], dest: &Path, manager: &ResourceManager) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        let to = numbered_path(dest, index);
        move_no_clobber(part, &to, manager).map_err(|e| io_error("move the take to", &to, &e))?;
        files.push(to);
    }
    Ok(files)
}

/// Moves `src` to the new name `dst` with ordinary permissions: a hard link and an unlink on
/// the same file system (which fails rather than replace a file), else a copy beside `dst`
/// first. On failure `src` is left as it was.
fn move_no_clobber(src: &Path, dst: &Path, manager: &ResourceManager) -> io::Result<()> {
    make_ordinary(src)?;
    let moved = match fs::hard_link(src, dst) {
        Ok(()) => fs::remove_file(src),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => copy_no_clobber(src, dst, manager),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        // A file system without hard links: check, then rename.
        Err(_) => rename_if_free(src, dst),
    };
    if moved.is_err() {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(src, fs::Permissions::from_mode(0o600));
        return moved;
    }
    File::open(parent_dir(dst))?.sync_all()
}

/// Renames `src` to `dst` unless something is at `dst`.
fn rename_if_free(src: &Path, dst: &Path) -> io::Result<()> {
    if fs::symlink_metadata(dst).is_ok() {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    fs::rename(src, dst)
}

/// Copies `src` to a hidden file beside `dst` (recorded before it exists: a kill leaves
/// nothing the next start does not remove), syncs it, gives it the name `dst`, then removes
/// `src`.
fn copy_no_clobber(src: &Path, dst: &Path, manager: &ResourceManager) -> io::Result<()> {
    let name = (".w4l-partial-", ".wav");
    let mode = ordinary_permissions().mode();
    let (mut partial, path, _guard) = OutsideFile::create_in(manager, parent_dir(dst), name, mode)?;
    let placed = io::copy(&mut File::open(src)?, &mut partial)
        .and_then(|_| partial.sync_all())
        .and_then(|()| match fs::hard_link(&path, dst) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => rename_if_free(&path, dst),
            linked => linked,
        });
    let _ = fs::remove_file(&path);
    placed.and_then(|()| fs::remove_file(src))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Whether none of the `n` numbered files of `path` exists.
fn free(path: &Path, n: usize) -> bool {
    (0..n).all(|i| fs::symlink_metadata(numbered_path(path, i)).is_err())
}

/// Sets ordinary permissions on the file at `path` (a take becoming the user's file).
fn make_ordinary(path: &Path) -> io::Result<()> {
    fs::set_permissions(path, ordinary_permissions())
}

/// Whether this process may create files in `dir` (and it is a directory).
fn writable_dir(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated string that outlives the call; access reads it only.
    let ok = unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0;
    ok && dir.is_dir()
}
