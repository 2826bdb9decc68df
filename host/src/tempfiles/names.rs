//! The names w4l gives the entries of its temporary directory, and how they are read back.
//!
//! ```text
//! w4l-<pid>-<purpose>-<random>.wav            a temporary file: scratch, or a take's journal
//! w4l-<pid>-<purpose>-<random>.wav.manifest   beside a journal: what the take is (a take, not scratch)
//! w4l-<pid>-<purpose>-<random>.ref            a record naming a file outside the directory
//! w4l-<pid>-<purpose>-<random>.dir            a pointer naming another directory of takes
//! w4l-<pid>.lock                              the owner's flock
//! ```
//!
//! Anything else is not w4l's, and nothing in this module will ever call it w4l's.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Every name this module creates starts with this.
pub(crate) const PREFIX: &str = "w4l-";
/// Suffix of temporary files.
pub(crate) const SUFFIX: &str = ".wav";
/// Suffix of the per-process lock files.
const LOCK_SUFFIX: &str = ".lock";
/// Appended to a journal's name for its manifest.
const MANIFEST_SUFFIX: &str = ".manifest";
/// Suffix of the records that name files outside the directory.
pub(crate) const RECORD_SUFFIX: &str = ".ref";
/// Suffix of the pointers that name another directory holding takes (`super::pointer`).
pub(crate) const POINTER_SUFFIX: &str = ".dir";
/// Random characters in a temporary file's name.
pub(crate) const RAND_LEN: usize = 10;
/// Longest purpose accepted by [`crate::tempfiles::ResourceManager::create`].
pub const MAX_PURPOSE_LEN: usize = 24;

/// What a directory entry's name says it is, and whose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owned {
    /// `w4l-<pid>-<purpose>-<random>.wav`
    File(u32),
    /// `w4l-<pid>-<purpose>-<random>.wav.manifest`
    Manifest(u32),
    /// `w4l-<pid>-<purpose>-<random>.ref`
    Record(u32),
    /// `w4l-<pid>-<purpose>-<random>.dir`
    Pointer(u32),
    /// `w4l-<pid>.lock`
    Lock(u32),
}

/// Parses a canonical decimal pid (no sign, no leading zero).
fn parse_pid(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

/// Whether `p` is `[a-z0-9_]{1,24}`.
pub(crate) fn valid_purpose(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= MAX_PURPOSE_LEN
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The pid of a `<pid>-<purpose>-<random>` stem.
fn parse_stem(stem: &str) -> Option<u32> {
    let mut parts = stem.split('-');
    let pid = parse_pid(parts.next()?)?;
    let purpose = parts.next()?;
    let random = parts.next()?;
    let valid = parts.next().is_none()
        && valid_purpose(purpose)
        && random.len() == RAND_LEN
        && random.bytes().all(|b| b.is_ascii_alphanumeric());
    valid.then_some(pid)
}

/// Classifies a name; `None` for anything this module did not create.
pub(crate) fn parse_name(name: &OsStr) -> Option<Owned> {
    let name = name.to_str()?.strip_prefix(PREFIX)?;
    if let Some(pid) = name.strip_suffix(LOCK_SUFFIX) {
        return parse_pid(pid).map(Owned::Lock);
    }
    if let Some(file) = name.strip_suffix(MANIFEST_SUFFIX) {
        return parse_stem(file.strip_suffix(SUFFIX)?).map(Owned::Manifest);
    }
    if let Some(stem) = name.strip_suffix(RECORD_SUFFIX) {
        return parse_stem(stem).map(Owned::Record);
    }
    if let Some(stem) = name.strip_suffix(POINTER_SUFFIX) {
        return parse_stem(stem).map(Owned::Pointer);
    }
    parse_stem(name.strip_suffix(SUFFIX)?).map(Owned::File)
}

/// `w4l-<pid>.lock`.
pub(crate) fn lock_name(pid: u32) -> String {
    format!("{PREFIX}{pid}{LOCK_SUFFIX}")
}

/// The manifest beside the journal `file` (`<file>.manifest`).
pub fn manifest_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(MANIFEST_SUFFIX);
    PathBuf::from(name)
}

/// The journal a manifest describes.
pub(crate) fn journal_of_manifest(manifest: &Path) -> Option<PathBuf> {
    let name = manifest.to_str()?.strip_suffix(MANIFEST_SUFFIX)?;
    Some(PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_not_ours() {
        let parse = |s: &str| parse_name(OsStr::new(s));
        assert_eq!(parse("w4l-12-take-AbCdEfGhIj.wav"), Some(Owned::File(12)));
        assert_eq!(
            parse("w4l-12-take-AbCdEfGhIj.wav.manifest"),
            Some(Owned::Manifest(12))
        );
        assert_eq!(
            parse("w4l-12-output-AbCdEfGhIj.ref"),
            Some(Owned::Record(12))
        );
        assert_eq!(
            parse("w4l-12-beside-AbCdEfGhIj.dir"),
            Some(Owned::Pointer(12))
        );
        assert_eq!(parse("w4l-12.lock"), Some(Owned::Lock(12)));
        for stranger in [
            "w4l-012-take-AbCdEfGhIj.wav",
            "w4l-12-take-AbCdEfGhI.wav",
            "w4l-12-take-AbCdEfGhIj.wav.bak",
            "w4l-12-take-AbCdEfGhIj.manifest",
            "w4l-12-take-AbCdEfGhIj.wav.manifest.x",
            "w4l-12-Take-AbCdEfGhIj.ref",
            "w4l-12.lock.old",
            "x-w4l-12.lock",
        ] {
            assert_eq!(parse(stranger), None, "{stranger}");
        }
        let journal = Path::new("/d/w4l-12-take-AbCdEfGhIj.wav");
        assert_eq!(
            journal_of_manifest(&manifest_path(journal)).as_deref(),
            Some(journal)
        );
    }
}
