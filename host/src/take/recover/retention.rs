//! The retention rule of the recovered-takes directory: by age, then by total size, oldest
//! first.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::RecoveryConfig;
use crate::tempfiles::current_uid;

/// Recovered takes are named `take-<UTC start>-<pid>[-N][.NNN].wav` (or `.flac`); nothing else in the
/// directory is touched.
pub(super) const NAME_PREFIX: &str = "take-";

/// Applies the rule to [`RecoveryConfig::recovered_dir`]: removes the recovered takes older than
/// [`RecoveryConfig::max_age`], then the oldest until the rest hold at most
/// [`RecoveryConfig::max_bytes`]. Never one of `keep` (just recovered), never a file w4l did not
/// name, never anything but a regular file of this user. Returns what it removed.
pub fn retire(config: &RecoveryConfig, keep: &[PathBuf]) -> Vec<PathBuf> {
    let Some(dir) = &config.recovered_dir else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let uid = current_uid();
    let mut takes: Vec<(SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.starts_with(NAME_PREFIX) && (n.ends_with(".wav") || n.ends_with(".flac"))
            })
        })
        .filter_map(|e| {
            let meta = fs::symlink_metadata(e.path()).ok()?;
            (meta.is_file() && meta.uid() == uid)
                .then(|| Some((meta.modified().ok()?, meta.len(), e.path())))?
        })
        .filter(|(_, _, path)| !keep.contains(path))
        .collect();
    takes.sort();
    let now = SystemTime::now();
    let too_old =
        |t: &SystemTime| now.duration_since(*t).unwrap_or(Duration::ZERO) > config.max_age;
    let kept_bytes: u64 = keep
        .iter()
        .filter(|p| p.starts_with(dir))
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mut total = kept_bytes + takes.iter().map(|(_, len, _)| len).sum::<u64>();
    let mut retired = Vec::new();
    for (modified, len, path) in takes {
        if !too_old(&modified) && total <= config.max_bytes {
            break;
        }
        if fs::remove_file(&path).is_ok() {
            total -= len;
            retired.push(path);
        }
    }
    retired
}
