//! The reaper: what dead processes left in the directory goes, except their takes.
//!
//! Only entries directly in the directory (no recursion, no `..`) whose names w4l gives
//! ([`super::names`]), that are regular files (checked with `symlink_metadata`: a symbolic
//! link is never followed, its target never touched) and owned by this user, are considered.
//! Of a dead owner's files:
//!
//! * a journal with a manifest beside it is a **take**: never reaped, left for
//!   `w4l::take::recover` to finish into a WAV file;
//! * a manifest whose journal is gone (the take was saved or recovered) is removed;
//! * a record's file outside the directory (an adopted file, an unfinished output) is removed
//!   if it is still the very file recorded (same device and inode, a regular file of ours),
//!   then the record;
//! * any other file is scratch, and removed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::dirs::check_private_dir;
use super::error::TempError;
use super::lock::{Liveness, probe_owner};
use super::names::{Owned, journal_of_manifest, lock_name, manifest_path, parse_name};
use super::record::Record;
use super::registry::remove_if_present;

/// A file a reap could not remove.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReapFailure {
    /// The file.
    pub path: PathBuf,
    /// Why (the OS error).
    pub reason: String,
}

/// What a cleanup or a reap removed (or, for a dry run, would remove).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReapReport {
    /// The files removed (lock files, manifests and records are not listed).
    pub files: Vec<PathBuf>,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Files that matched but could not be removed.
    pub failures: Vec<ReapFailure>,
    /// Whether this was a dry run (nothing removed).
    pub dry_run: bool,
}

impl ReapReport {
    pub(crate) fn merge(&mut self, other: ReapReport) {
        self.files.extend(other.files);
        self.bytes += other.bytes;
        self.failures.extend(other.failures);
    }

    pub(crate) fn removed(&mut self, path: PathBuf, bytes: u64) {
        self.files.push(path);
        self.bytes += bytes;
    }

    pub(crate) fn failed(&mut self, path: PathBuf, error: &io::Error) {
        self.failures.push(ReapFailure {
            path,
            reason: error.to_string(),
        });
    }
}

impl fmt::Display for ReapReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let n = self.files.len();
        write!(
            f,
            "{verb} {n} temporary file{} ({} bytes)",
            if n == 1 { "" } else { "s" },
            self.bytes
        )?;
        if !self.failures.is_empty() {
            write!(f, "; {} could not be removed", self.failures.len())?;
        }
        Ok(())
    }
}

/// One owner's entries in the directory.
#[derive(Debug, Default)]
pub(crate) struct Group {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) manifests: Vec<PathBuf>,
    pub(crate) records: Vec<PathBuf>,
}

impl Group {
    /// The journals with a manifest beside them: takes.
    pub(crate) fn takes(&self) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|f| self.manifests.contains(&manifest_path(f)))
            .cloned()
            .collect()
    }
}

/// Lists the directory's entries by owner pid; a pid with only a lock file gets an empty
/// group (so its stale lock file is reaped).
pub(crate) fn scan(dir: &Path) -> io::Result<BTreeMap<u32, Group>> {
    let mut groups: BTreeMap<u32, Group> = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let path = dir.join(&name);
        match parse_name(&name) {
            Some(Owned::File(pid)) => groups.entry(pid).or_default().files.push(path),
            Some(Owned::Manifest(pid)) => groups.entry(pid).or_default().manifests.push(path),
            Some(Owned::Record(pid)) => groups.entry(pid).or_default().records.push(path),
            Some(Owned::Lock(pid)) => {
                groups.entry(pid).or_default();
            }
            // Pointers are recovery's (`super::pointer`): the reaper never follows them.
            Some(Owned::Pointer(_)) | None => {}
        }
    }
    Ok(groups)
}

/// `w4l clean [--dry-run]`: removes (or only reports) what dead processes left in `dir`,
/// without opening a manager; their takes stay for `w4l::take::recover`. A missing `dir`
/// has nothing to clean (and is not created); an unsafe one is refused like
/// [`crate::tempfiles::ResourceManager::open`] does.
pub fn reap_dir(dir: &Path, dry_run: bool) -> Result<ReapReport, TempError> {
    let uid = super::dirs::current_uid();
    if let Err(e) = fs::symlink_metadata(dir)
        && e.kind() == io::ErrorKind::NotFound
    {
        return Ok(ReapReport {
            dry_run,
            ..ReapReport::default()
        });
    }
    check_private_dir(dir, uid)?;
    Ok(reap_in(dir, uid, None, dry_run))
}

/// The reaper. `own` is this process's pid and the names its manager speaks for, when it
/// holds its own lock in `dir`: files with that pid that are not registered are a previous
/// process's. Without `own`, every pid is judged by its lock.
pub(crate) fn reap_in(
    dir: &Path,
    uid: u32,
    own: Option<(u32, &dyn Fn() -> BTreeSet<PathBuf>)>,
    dry_run: bool,
) -> ReapReport {
    let mut report = ReapReport {
        dry_run,
        ..ReapReport::default()
    };
    let groups = match scan(dir) {
        Ok(groups) => groups,
        Err(e) => {
            report.failed(dir.to_path_buf(), &e);
            return report;
        }
    };
    for (pid, group) in groups {
        if let Some((own_pid, registered)) = own
            && pid == own_pid
        {
            // Listed after the scan: a file created since is not in `group`.
            reap_group(&mut report, &group, &registered(), uid, dry_run);
            continue;
        }
        match probe_owner(dir, pid, uid, dry_run) {
            Ok(Liveness::Live) => {}
            Ok(Liveness::Dead(lock)) => {
                reap_group(&mut report, &group, &BTreeSet::new(), uid, dry_run);
                if let Some(lock) = lock {
                    lock.release();
                }
            }
            Err(e) => report.failed(dir.join(lock_name(pid)), &e),
        }
    }
    report
}

/// Reaps a dead owner's `group` (but what is in `keep`) into `report`.
fn reap_group(
    report: &mut ReapReport,
    group: &Group,
    keep: &BTreeSet<PathBuf>,
    uid: u32,
    dry_run: bool,
) {
    let takes = group.takes();
    for file in group.files.iter().filter(|f| !keep.contains(*f)) {
        if !takes.contains(file) {
            reap_one(report, file.clone(), uid, dry_run);
        }
    }
    for manifest in group.manifests.iter().filter(|m| !keep.contains(*m)) {
        let journal = journal_of_manifest(manifest);
        let dangling = journal.is_none_or(|j| !group.files.contains(&j));
        if dangling && !dry_run {
            let _ = remove_checked(manifest, uid, false);
        }
    }
    for record in group.records.iter().filter(|r| !keep.contains(*r)) {
        reap_record(report, record, uid, dry_run);
    }
}

/// Removes the file a dead owner's record names (if it is still that file) and the record.
fn reap_record(report: &mut ReapReport, record: &Path, uid: u32, dry_run: bool) {
    // A record of ours: a regular file, not a link to something else.
    if !fs::symlink_metadata(record).is_ok_and(|m| m.is_file() && m.uid() == uid) {
        return;
    }
    if let Ok(Some(rec)) = Record::read(record)
        && rec.names_target()
    {
        reap_one(report, rec.target, uid, dry_run);
    }
    if !dry_run && let Err(e) = remove_if_present(record) {
        report.failed(record.to_path_buf(), &e);
    }
}

/// Reaps one orphan into `report`.
fn reap_one(report: &mut ReapReport, path: PathBuf, uid: u32, dry_run: bool) {
    match remove_checked(&path, uid, dry_run) {
        Ok(Some(bytes)) => report.removed(path, bytes),
        Ok(None) => {}
        Err(e) => report.failed(path, &e),
    }
}

/// Removes (or, for a dry run, measures) `path` if it is a regular file owned by `uid`.
/// Returns its size, or `None` if it is gone or not ours to touch.
pub(crate) fn remove_checked(path: &Path, uid: u32, dry_run: bool) -> io::Result<Option<u64>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_file() || meta.uid() != uid {
        return Ok(None);
    }
    if !dry_run && !remove_if_present(path)? {
        return Ok(None);
    }
    Ok(Some(meta.len()))
}
