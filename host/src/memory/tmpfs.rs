//! Files that live in RAM: a spilled or file-mode take on tmpfs (often `/tmp`, always
//! `$XDG_RUNTIME_DIR` and `/dev/shm`) relieves nothing, its bytes are memory.
//!
//! The file system is told by `statfs`'s magic number (tmpfs `0x01021994`, ramfs `0x858458f6`),
//! not by reading mount tables: one system call, right for bind mounts and namespaces. The
//! bytes a file holds in RAM are its allocated blocks (`st_blocks × 512`), not its length: a
//! sparse file holds less, and tmpfs pages swapped out still count (the figure errs high).
//! Elsewhere than Linux, nothing is reported in RAM.

use std::io;
use std::path::Path;

/// `TMPFS_MAGIC` of `<linux/magic.h>`.
const TMPFS_MAGIC: u32 = 0x0102_1994;
/// `RAMFS_MAGIC` of `<linux/magic.h>`.
const RAMFS_MAGIC: u32 = 0x8584_58f6;

/// Whether `path` (a file or directory) is on a RAM-backed file system (tmpfs or ramfs).
///
/// ```
/// use std::path::Path;
/// use w4l::memory::tmpfs::is_tmpfs;
///
/// if Path::new("/dev/shm").is_dir() {
///     assert!(is_tmpfs(Path::new("/dev/shm"))?);
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// `statfs`'s error: the path does not exist, or is not reachable.
pub fn is_tmpfs(path: &Path) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut stats = std::mem::MaybeUninit::<libc::statfs>::uninit();
        // SAFETY: `c_path` is a NUL-terminated string and `stats` points to writable memory of
        // the right size and alignment, both alive for the call.
        if unsafe { libc::statfs(c_path.as_ptr(), stats.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: statfs returned 0, so it filled `stats` in.
        let stats = unsafe { stats.assume_init() };
        // The magic numbers are 32-bit; `f_type`'s width differs between architectures.
        let magic = stats.f_type as u32;
        Ok(magic == TMPFS_MAGIC || magic == RAMFS_MAGIC)
    }
    #[cfg(not(target_os = "linux"))]
    {
        std::fs::metadata(path).map(|_| false)
    }
}

/// The bytes the file at `path` holds in RAM: its allocated size on tmpfs or ramfs, 0
/// elsewhere.
///
/// # Errors
///
/// `stat`'s or `statfs`'s error.
pub fn bytes_in_memory(path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    if !is_tmpfs(path)? {
        return Ok(0);
    }
    let meta = std::fs::metadata(path)?;
    Ok(if meta.is_file() {
        meta.blocks().saturating_mul(512)
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    #[cfg(target_os = "linux")]
    fn tells_ram_from_disk() {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            assert!(is_tmpfs(shm).expect("statfs /dev/shm"));
            let mut file = tempfile::NamedTempFile::new_in(shm).expect("a file in /dev/shm");
            file.write_all(&[1u8; 100_000]).expect("write");
            file.flush().expect("flush");
            let bytes = bytes_in_memory(file.path()).expect("stat");
            assert!((100_000..=110_000).contains(&bytes), "{bytes}");
        }
        // /proc is neither tmpfs nor ramfs.
        assert!(!is_tmpfs(Path::new("/proc")).expect("statfs /proc"));
        assert_eq!(
            bytes_in_memory(Path::new("/proc/self/status")).expect("stat"),
            0
        );
        let missing = is_tmpfs(Path::new("/nonexistent/w4l")).expect_err("missing");
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
