//! Where the temporary files live: a private directory on a disk, never in RAM by default.
//!
//! A file spilled to a tmpfs (`$XDG_RUNTIME_DIR`, `/tmp` on many distributions) stays in RAM:
//! the machine gets no memory back. So the default directory is the user's cache,
//! `$XDG_CACHE_HOME/w4l` (else `~/.cache/w4l`), and `<tmp>/w4l-<uid>` only as a last resort,
//! each taken only if `statfs` says it is not a tmpfs or ramfs. `$W4L_TEMP_DIR` is honoured
//! wherever it points; the manager then reports [`is_ram_backed`] so its bytes can be charged
//! to memory. Lock files live in the same directory as the files they guard: one directory,
//! one set of rules.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::TempError;

/// Environment variable naming the temporary directory itself (overrides the default).
pub const DIR_ENV: &str = "W4L_TEMP_DIR";

/// `statfs` magic of a tmpfs.
const TMPFS_MAGIC: i64 = 0x0102_1994;
/// `statfs` magic of a ramfs.
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// The effective user id.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether `path` (or, if it does not exist yet, its nearest existing ancestor) is on a file
/// system that keeps its files in RAM (tmpfs, ramfs). Always `false` off Linux.
pub fn is_ram_backed(path: &Path) -> io::Result<bool> {
    let existing = path
        .ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
        .unwrap_or(Path::new("."));
    fs_magic(existing).map(|magic| magic == TMPFS_MAGIC || magic == RAMFS_MAGIC)
}

#[cfg(target_os = "linux")]
fn fs_magic(path: &Path) -> io::Result<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    let mut out = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call; `out` is a valid,
    // writable `statfs` the kernel fills in completely when the call succeeds.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), out.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0, so it initialized `out`.
    let stat = unsafe { out.assume_init() };
    #[allow(clippy::unnecessary_cast)] // `f_type`'s width differs between targets
    Ok(stat.f_type as i64)
}

#[cfg(not(target_os = "linux"))]
fn fs_magic(_path: &Path) -> io::Result<i64> {
    Ok(0)
}

/// The directory [`crate::tempfiles::ResourceManager::shared`] uses: `$W4L_TEMP_DIR` if set
/// (wherever it points), else the first of `$XDG_CACHE_HOME/w4l`, `$HOME/.cache/w4l` and
/// `<system temp dir>/w4l-<uid>` that is not RAM-backed ([`is_ram_backed`]). The directory
/// need not exist yet.
///
/// # Errors
///
/// Every candidate is RAM-backed or unusable.
pub fn default_dir() -> Result<PathBuf, TempError> {
    choose_dir(&|name| std::env::var_os(name), current_uid())
}

/// [`default_dir`] with the environment read through `var`.
fn choose_dir(var: &dyn Fn(&str) -> Option<OsString>, uid: u32) -> Result<PathBuf, TempError> {
    if let Some(dir) = var(DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let absolute = |name: &str| var(name).map(PathBuf::from).filter(|d| d.is_absolute());
    let tmp = var("TMPDIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let candidates: Vec<PathBuf> = [
        absolute("XDG_CACHE_HOME").map(|c| c.join("w4l")),
        absolute("HOME").map(|h| h.join(".cache").join("w4l")),
        Some(tmp.join(format!("w4l-{uid}"))),
    ]
    .into_iter()
    .flatten()
    .collect();
    candidates
        .iter()
        .find(|c| matches!(is_ram_backed(c), Ok(false)))
        .cloned()
        .ok_or(TempError::NoDiskDir { tried: candidates })
}

/// Creates the missing parents of `dir` (mode 0700, as the XDG base directories want).
pub(crate) fn create_parents(dir: &Path) -> Result<(), TempError> {
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.exists() => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| TempError::Dir {
                dir: dir.to_path_buf(),
                source,
            }),
        _ => Ok(()),
    }
}

/// Creates `dir` (mode 0700) if needed and checks that it is ours and private.
pub(crate) fn ensure_private_dir(dir: &Path, uid: u32) -> Result<fs::Metadata, TempError> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(TempError::Dir {
                dir: dir.to_path_buf(),
                source,
            });
        }
    }
    check_private_dir(dir, uid)
}

/// Checks that the existing `dir` is a real directory of ours, closed to everyone else.
pub(crate) fn check_private_dir(dir: &Path, uid: u32) -> Result<fs::Metadata, TempError> {
    let meta = fs::symlink_metadata(dir).map_err(|source| TempError::Dir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let unsafe_dir = |reason: String| TempError::UnsafeDir {
        dir: dir.to_path_buf(),
        reason,
    };
    if meta.file_type().is_symlink() {
        return Err(unsafe_dir("is a symbolic link".into()));
    }
    if !meta.is_dir() {
        return Err(unsafe_dir("is not a directory".into()));
    }
    if meta.uid() != uid {
        return Err(unsafe_dir(format!(
            "is owned by uid {}, not by you (uid {uid})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(unsafe_dir(format!(
            "has mode {:o}, open to other users (it must be 700)",
            meta.mode() & 0o7777
        )));
    }
    Ok(meta)
}

/// Fsyncs a directory so a rename or unlink in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The permissions of a file the user asked for (an output, a recovered take): `0666` less the
/// process's umask, as any program's new file gets. Temporary files and journals stay 0600.
/// The umask is read from `/proc/self/status` (setting it to read it would race with other
/// threads); without it, `022` is assumed.
pub fn ordinary_permissions() -> Permissions {
    let umask = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022);
    Permissions::from_mode(0o666 & !umask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(pairs: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> {
        let map: BTreeMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_os_str().to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn a_ram_backed_cache_is_passed_over_for_one_on_disk() {
        let disk = tempfile::tempdir().expect("disk dir");
        let shm = Path::new("/dev/shm");
        if !matches!(is_ram_backed(shm), Ok(true)) || matches!(is_ram_backed(disk.path()), Ok(true))
        {
            return; // no tmpfs beside a disk on this machine
        }
        let ram_cache = shm.join("w4l-test-cache-does-not-exist");
        let chosen = choose_dir(
            &env(&[("XDG_CACHE_HOME", &ram_cache), ("HOME", disk.path())]),
            7,
        )
        .expect("a disk dir");
        assert_eq!(chosen, disk.path().join(".cache/w4l"));
        // Nothing but RAM: no default at all.
        let err = choose_dir(&env(&[("HOME", shm), ("TMPDIR", shm)]), 7).expect_err("RAM only");
        assert!(err.to_string().contains(DIR_ENV), "{err}");
        // An explicit directory is honoured wherever it is.
        let explicit = shm.join("x");
        assert_eq!(
            choose_dir(&env(&[(DIR_ENV, &explicit)]), 7).expect("explicit"),
            explicit
        );
    }

    #[test]
    fn ordinary_permissions_follow_the_umask() {
        let mode = ordinary_permissions().mode();
        assert_eq!(mode & 0o111, 0, "never executable");
        assert_eq!(mode & 0o600, 0o600, "{mode:o}");
    }
}
