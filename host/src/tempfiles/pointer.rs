//! Pointers: how the temporary directory remembers *another* directory holding takes (a take's
//! journal beside its output, `w4l::take::beside`), so a start after a kill finds them.
//!
//! A pointer is `w4l-<pid>-beside-<random>.dir` in the temporary directory, mode 0600, whose
//! body is a record ([`Record`]) of the other directory's absolute path. It is written and
//! synced before the other directory gets any audio. Unlike the other names, a pointer is not
//! reaped with its owner: it goes only once the directory it names is gone — removed by its
//! owner when its last take there was saved, else by the recovery that finished what a killed
//! owner left there ([`tidy`]). The reaper never follows a pointer; recovery and
//! `w4l recover --list` do ([`pointed_dirs`]), and they judge each take there by its owner's
//! lock in *that* directory.

use std::fs::{self, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::dirs::{current_uid, sync_dir};
use super::error::TempError;
use super::manager::ResourceManager;
use super::names::{Owned, POINTER_SUFFIX, PREFIX, RAND_LEN, parse_name};
use super::record::Record;
use super::registry::remove_if_present;

/// Writes a pointer to `target` in `dir` (see the [module docs](self)); returns its path.
pub(crate) fn write_pointer(dir: &Path, target: &Path) -> Result<PathBuf, TempError> {
    let io_err = |source| TempError::Io {
        op: "write a pointer in",
        path: dir.to_path_buf(),
        source,
    };
    let (mut file, pointer) = tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-beside-", std::process::id()))
        .suffix(POINTER_SUFFIX)
        .rand_bytes(RAND_LEN)
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(io_err)?
        .keep()
        .map_err(|e| io_err(e.error))?;
    let body = Record {
        target: target.to_path_buf(),
        ident: None,
    }
    .render();
    // The pointer must outlive a power cut as surely as the journal it leads to.
    let written = file
        .write_all(&body)
        .and_then(|()| file.sync_data())
        .and_then(|()| sync_dir(dir));
    if let Err(e) = written {
        let _ = fs::remove_file(&pointer);
        return Err(io_err(e));
    }
    Ok(pointer)
}

/// The pointers in `dir` and the directories they name, as `(pointer, directory)`. Only
/// regular files of this user with a pointer's name and an absolute path in them count;
/// anything unreadable is skipped (a missing `dir` has none).
pub fn pointed_dirs(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let uid = current_uid();
    let mut found: Vec<(PathBuf, PathBuf)> = entries
        .flatten()
        .filter(|e| matches!(parse_name(&e.file_name()), Some(Owned::Pointer(_))))
        .map(|e| e.path())
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.uid() == uid))
        .filter_map(|p| match Record::read(&p) {
            Ok(Some(rec)) if rec.target.is_absolute() => Some((p, rec.target)),
            _ => None,
        })
        .collect();
    found.sort();
    found
}

/// After recovery in `target`: reaps what dead owners left there (a stale lock, scratch),
/// removes `target` if that emptied it, and then `pointer`. A directory still holding
/// something (a live take, a take that could not be finished) keeps both.
pub(crate) fn tidy(pointer: &Path, target: &Path) {
    // `open` would create a missing directory: only an existing one is visited.
    if fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
        drop(ResourceManager::open(target));
        let _ = fs::remove_dir(target);
    }
    forget_if_gone(pointer, target);
}

/// Removes `pointer` if the directory `target` it names is gone.
pub(crate) fn forget_if_gone(pointer: &Path, target: &Path) {
    let gone =
        matches!(fs::symlink_metadata(target), Err(e) if e.kind() == io::ErrorKind::NotFound);
    if gone {
        let _ = remove_if_present(pointer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pointer_leads_to_its_directory_until_that_is_gone() {
        let base = tempfile::tempdir().expect("dir");
        let temp = base.path().join("temp");
        let other = base.path().join("out/.w4l");
        fs::create_dir_all(&other).expect("other dir");
        fs::create_dir(&temp).expect("temp dir");
        let pointer = write_pointer(&temp, &other).expect("pointer");
        let mode = fs::metadata(&pointer).expect("meta").mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(pointed_dirs(&temp), vec![(pointer.clone(), other.clone())]);
        fs::write(other.join("keep"), b"x").expect("a stranger's file");
        tidy(&pointer, &other);
        assert!(
            pointer.exists(),
            "the directory is not empty: the pointer stays"
        );
        fs::remove_file(other.join("keep")).expect("rm");
        tidy(&pointer, &other);
        assert!(!other.exists() && !pointer.exists());
        assert!(pointed_dirs(&temp).is_empty());
    }
}
