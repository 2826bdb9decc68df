//! The limits the machine puts on a budget: the system's available memory and the cgroup's
//! headroom under its limit, and what [`MemoryMonitor::detected`](super::MemoryMonitor::detected)
//! reports of them.

use std::path::PathBuf;

use crate::memory::cgroup::{CgroupMemory, Version};

use super::Probe;
use super::pressure::PressureStatus;

/// The most memory a budget may promise now, and what set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryCeiling {
    /// Bytes.
    pub bytes: u64,
    /// Where the figure comes from.
    pub source: CeilingSource,
}

/// What bounds a [`MemoryCeiling`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeilingSource {
    /// The system's `MemAvailable`.
    Available,
    /// The own cgroup's headroom: its limit less its working set.
    Cgroup,
}

impl std::fmt::Display for MemoryCeiling {
    /// `1.2 GiB free now` / `300.0 MiB of headroom under the cgroup's limit`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = crate::units::format_bytes(self.bytes);
        match self.source {
            CeilingSource::Available => write!(f, "{bytes} free now"),
            CeilingSource::Cgroup => write!(f, "{bytes} of headroom under the cgroup's limit"),
        }
    }
}

/// The most memory a budget may promise now: the smaller of what the system can give without
/// swapping (`MemAvailable` of `/proc/meminfo`, see [`Probe`]) and the headroom of
/// this process's cgroup under its `memory.high`/`memory.max` (v2) or `memory.limit_in_bytes`
/// (v1) (see [`CgroupMemory::headroom`]). `None` when neither can be read; budgets then stand
/// as given.
///
/// `w4l record` and `w4l monitor` cap their budget by it, and refuse a take whose ring and
/// window alone need more.
pub fn memory_ceiling() -> Option<u64> {
    machine_ceiling().map(|c| c.bytes)
}

/// [`memory_ceiling`] with what set it.
pub fn machine_ceiling() -> Option<MemoryCeiling> {
    let available = Probe::new()
        .ok()
        .and_then(|mut p| p.read().ok())
        .map(|r| r.available);
    ceiling(available, CgroupMemory::of_this_process().as_ref())
}

/// The smaller of `available` (0 counts as unknown) and `cgroup`'s headroom.
pub fn ceiling(available: Option<u64>, cgroup: Option<&CgroupMemory>) -> Option<MemoryCeiling> {
    let available = available.filter(|&a| a > 0).map(|bytes| MemoryCeiling {
        bytes,
        source: CeilingSource::Available,
    });
    let headroom = cgroup
        .and_then(CgroupMemory::headroom)
        .map(|bytes| MemoryCeiling {
            bytes,
            source: CeilingSource::Cgroup,
        });
    match (available, headroom) {
        (Some(a), Some(h)) => Some(if h.bytes < a.bytes { h } else { a }),
        (a, h) => a.or(h),
    }
}

/// The RSS limit a monitor works with: `configured` (0: none), or the cgroup's limit when that
/// is tighter. The limit binds the whole group, of which this process is a part: the policy
/// then acts before the kernel reclaims or kills.
pub(super) fn rss_limit(configured: u64, cgroup_limit: Option<u64>) -> u64 {
    match cgroup_limit {
        Some(limit) if configured == 0 || limit < configured => limit,
        _ => configured,
    }
}

/// What a monitor found on the machine when it started, with the cgroup's figures as they are
/// now: what `w4l monitor` shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Detected {
    /// The own memory cgroup, if the monitor observes the system and one was found.
    pub cgroup: Option<CgroupInfo>,
    /// Where kernel pressure events come from, or why none come.
    pub pressure: PressureStatus,
    /// The RSS limit the policy uses (the configured one or the cgroup's, whichever is
    /// tighter; 0: none).
    pub rss_limit: u64,
}

/// A cgroup as `w4l monitor` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CgroupInfo {
    /// `v1` or `v2`.
    pub version: &'static str,
    /// The own group's directory.
    pub dir: PathBuf,
    /// The limit binding the group (the smallest of its own and its parents'); `None`: none.
    pub limit: Option<u64>,
    /// Bytes the group may still grow before a limit binds; `None`: no limit.
    pub headroom: Option<u64>,
}

impl CgroupInfo {
    pub(super) fn of(cgroup: &CgroupMemory) -> Self {
        Self {
            version: match cgroup.version() {
                Version::V1 => "v1",
                Version::V2 => "v2",
            },
            dir: cgroup.dir().to_path_buf(),
            limit: cgroup.limit(),
            headroom: cgroup.headroom(),
        }
    }
}

impl std::fmt::Display for CgroupInfo {
    /// `cgroup v1 /sys/fs/cgroup/memory/user.slice, limit none`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cgroup {} {}, limit ", self.version, self.dir.display())?;
        match (self.limit, self.headroom) {
            (Some(limit), Some(headroom)) => write!(
                f,
                "{} ({} headroom)",
                crate::units::format_bytes(limit),
                crate::units::format_bytes(headroom)
            ),
            (Some(limit), None) => write!(f, "{}", crate::units::format_bytes(limit)),
            (None, _) => write!(f, "none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tighter_of_available_and_headroom_wins() {
        let a = |bytes| {
            Some(MemoryCeiling {
                bytes,
                source: CeilingSource::Available,
            })
        };
        assert_eq!(ceiling(Some(100), None), a(100));
        assert_eq!(ceiling(Some(0), None), None);
        assert_eq!(ceiling(None, None), None);
        assert_eq!(rss_limit(0, None), 0);
        assert_eq!(rss_limit(0, Some(7)), 7);
        assert_eq!(rss_limit(5, Some(7)), 5);
        assert_eq!(rss_limit(9, Some(7)), 7);
    }
}
