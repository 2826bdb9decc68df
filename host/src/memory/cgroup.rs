//! The memory limit the service manager (systemd scope, Flatpak, container) put on this
//! process's control group, and how close the group is to it.
//!
//! # Layouts
//!
//! `/proc/self/cgroup` has one line per hierarchy, `ID:CONTROLLERS:PATH`:
//!
//! - **v1**: the memory controller has its own hierarchy (`4:memory:/user.slice`), mounted at
//!   `<root>/memory` (or `<root>/<controllers>` when it shares one, e.g. `memory,cpu`). Files:
//!   `memory.limit_in_bytes`, `memory.usage_in_bytes`, `memory.failcnt`, `memory.oom_control`.
//! - **v2** (unified): one line `0::/user.slice/app.scope`, the hierarchy mounted at `<root>`.
//!   Files: `memory.max`, `memory.high`, `memory.current`, `memory.events`.
//! - **hybrid**: both. The unified hierarchy sits at `<root>/unified` and usually carries no
//!   controller; when a v1 hierarchy has the memory controller, the figures come from v1.
//!
//! # Decisions
//!
//! - **Ancestors count.** A limit on a parent (a slice) binds this process as much as one on its
//!   own group, so [`CgroupMemory::limit`] is the smallest over the own group and every parent
//!   up to the mount's root, and [`CgroupMemory::headroom`] the smallest `limit - usage` among
//!   them (a parent's usage includes its other children).
//! - **Unlimited.** v2 writes `max`. v1 writes the largest page count times the page size:
//!   9223372036854771712 with 4 KiB pages, 9223372036854710272 with 64 KiB pages. Any value at
//!   or above 2^62 (4 EiB, far beyond any machine) is read as unlimited.
//! - **Unreadable is unlimited.** A file that cannot be read or parsed gives no limit; the
//!   caller's own budget and the system's available memory still apply.
//! - **Paths outside the mount.** Without a cgroup namespace a container may see its own group
//!   at the mount's root while `/proc/self/cgroup` names the host's path; when that path does
//!   not exist under the mount, the mount's root is taken as the own group.
//! - **Headroom counts the working set.** Usage includes the page cache charged to the group,
//!   which the kernel drops before it throttles or kills; [`CgroupMemory::headroom`] subtracts
//!   `inactive_file` (of `memory.stat`, v1 `total_inactive_file`) from usage, as `docker stats`
//!   and the kubelet do, so a group that merely read large files is not taken as full.
//! - **`high` and `max`.** `memory.high` is where the kernel starts throttling and reclaiming,
//!   `memory.max` where it OOM-kills: both are limits for w4l, the smaller one counts.

use std::fs;
use std::path::{Path, PathBuf};

/// The usual mount point of the cgroup file systems.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// This process's cgroup membership.
pub const PROC_SELF_CGROUP: &str = "/proc/self/cgroup";

/// Limits at or above this are "unlimited" (see the module docs).
const UNLIMITED_FROM: u64 = 1 << 62;

/// Which cgroup version the memory figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The legacy memory controller (`memory.limit_in_bytes`).
    V1,
    /// The unified hierarchy (`memory.max`, `memory.high`).
    V2,
}

/// The two limits of a group (or of the tightest in its chain). `None`: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Throttling and reclaim start here (v2 `memory.high`; v1 has none).
    pub high: Option<u64>,
    /// The hard limit: the OOM killer acts here (v2 `memory.max`, v1 `memory.limit_in_bytes`).
    pub max: Option<u64>,
}

impl Limits {
    /// The smaller of the two, if any.
    pub fn smaller(&self) -> Option<u64> {
        match (self.high, self.max) {
            (Some(h), Some(m)) => Some(h.min(m)),
            (h, m) => h.or(m),
        }
    }
}

/// How often the group met its limits: counters that only grow, so a change between two
/// readings is the signal.
///
/// v2: the keys of `memory.events`. v1 has fewer: `max` is `memory.failcnt` (times usage hit
/// the limit), `oom_kill` the counter of `memory.oom_control`; `high` and `oom` stay 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryEvents {
    /// Times usage went over `memory.high` (the group was throttled and reclaimed).
    pub high: u64,
    /// Times usage was about to go over the hard limit.
    pub max: u64,
    /// Times the group ran out of memory despite reclaim.
    pub oom: u64,
    /// Processes the OOM killer killed in the group.
    pub oom_kill: u64,
}

/// This process's memory cgroup: where its files are, and readings of them.
///
/// Detected once ([`CgroupMemory::of_this_process`] or, with injected paths,
/// [`CgroupMemory::detect`]); every reading reads the files again (each a few µs).
///
/// ```
/// use w4l::memory::cgroup::CgroupMemory;
///
/// if let Some(cg) = CgroupMemory::of_this_process() {
///     println!("{:?} cgroup {}", cg.version(), cg.dir().display());
///     match cg.limit() {
///         Some(limit) => println!("limit {limit} B, headroom {:?}", cg.headroom()),
///         None => println!("no limit"),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMemory {
    version: Version,
    /// The own group's directory first, then each parent up to the mount's root.
    chain: Vec<PathBuf>,
}

impl CgroupMemory {
    /// The memory cgroup of this process on this machine ([`CGROUP_ROOT`], [`PROC_SELF_CGROUP`]).
    pub fn of_this_process() -> Option<Self> {
        Self::detect(Path::new(CGROUP_ROOT), Path::new(PROC_SELF_CGROUP))
    }

    /// The memory cgroup named in `proc_self_cgroup` under the cgroup mounts at `root`.
    /// `None` when no hierarchy has the memory controller (or the files are missing).
    pub fn detect(root: &Path, proc_self_cgroup: &Path) -> Option<Self> {
        let text = fs::read_to_string(proc_self_cgroup).ok()?;
        let entries: Vec<Entry<'_>> = text.lines().filter_map(Entry::parse).collect();
        if let Some(v1) = entries.iter().find(|e| e.has_controller("memory")) {
            let mount = [root.join("memory"), root.join(v1.controllers)]
                .into_iter()
                .find(|m| m.join("memory.limit_in_bytes").is_file())?;
            return Some(Self::new(Version::V1, mount, v1.path));
        }
        let v2 = entries.iter().find(|e| e.is_unified())?;
        let mount = unified_mount(root)?;
        let controllers = fs::read_to_string(mount.join("cgroup.controllers")).ok()?;
        controllers
            .split_ascii_whitespace()
            .any(|c| c == "memory")
            .then_some(())?;
        Some(Self::new(Version::V2, mount, v2.path))
    }

    fn new(version: Version, mount: PathBuf, path: &str) -> Self {
        let own = mount.join(path.trim_start_matches('/'));
        let own = if own.is_dir() { own } else { mount.clone() };
        let chain = own
            .ancestors()
            .take_while(|dir| dir.starts_with(&mount))
            .map(Path::to_path_buf)
            .collect();
        Self { version, chain }
    }

    /// v1 or v2.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The own group's directory.
    pub fn dir(&self) -> &Path {
        self.chain.first().map_or(Path::new(""), PathBuf::as_path)
    }

    /// The effective limits: for each, the smallest over the own group and its parents.
    pub fn limits(&self) -> Limits {
        let smallest = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.chain.iter().fold(Limits::default(), |acc, dir| {
            let l = self.limits_of(dir);
            Limits {
                high: smallest(acc.high, l.high),
                max: smallest(acc.max, l.max),
            }
        })
    }

    /// The limit this process lives under: the smaller of [`Limits::high`] and [`Limits::max`]
    /// over the own group and its parents. `None`: unlimited (or unreadable).
    pub fn limit(&self) -> Option<u64> {
        self.limits().smaller()
    }

    /// Bytes the own group uses now (v2 `memory.current`, v1 `memory.usage_in_bytes`: the
    /// process's pages and the page cache and tmpfs pages charged to it).
    pub fn usage(&self) -> Option<u64> {
        self.usage_of(self.dir())
    }

    /// The own group's usage less its inactive file cache (what reclaim cannot easily take).
    pub fn working_set(&self) -> Option<u64> {
        self.working_set_of(self.dir())
    }

    /// Bytes the group may still grow before a limit binds: the smallest
    /// `limit - working set` over the limited groups of the chain. `None`: no limit.
    pub fn headroom(&self) -> Option<u64> {
        self.binding().map(|(_, headroom)| headroom)
    }

    /// The events of the group whose limit binds first (the own group when none is limited):
    /// those counters grow when the limit this process lives under is hit.
    pub fn events(&self) -> Option<MemoryEvents> {
        let dir = self.binding().map_or(self.dir(), |(dir, _)| dir);
        match self.version {
            Version::V2 => parse_events(&fs::read_to_string(dir.join("memory.events")).ok()?),
            Version::V1 => Some(MemoryEvents {
                max: read_number(&dir.join("memory.failcnt"))?,
                oom_kill: fs::read_to_string(dir.join("memory.oom_control"))
                    .ok()
                    .and_then(|t| parse_events(&t))
                    .map_or(0, |e| e.oom_kill),
                ..MemoryEvents::default()
            }),
        }
    }

    /// The limited group with the least headroom, and that headroom.
    fn binding(&self) -> Option<(&Path, u64)> {
        self.chain
            .iter()
            .filter_map(|dir| {
                let limit = self.limits_of(dir).smaller()?;
                // A group whose usage cannot be read is taken as full: the safe side.
                let used = self.working_set_of(dir).unwrap_or(limit);
                Some((dir.as_path(), limit.saturating_sub(used)))
            })
            .min_by_key(|&(_, headroom)| headroom)
    }

    fn limits_of(&self, dir: &Path) -> Limits {
        match self.version {
            Version::V2 => Limits {
                high: read_limit(&dir.join("memory.high")),
                max: read_limit(&dir.join("memory.max")),
            },
            Version::V1 => Limits {
                high: None,
                max: read_limit(&dir.join("memory.limit_in_bytes")),
            },
        }
    }

    fn working_set_of(&self, dir: &Path) -> Option<u64> {
        let key = match self.version {
            Version::V2 => "inactive_file",
            Version::V1 => "total_inactive_file",
        };
        let inactive = fs::read_to_string(dir.join("memory.stat"))
            .ok()
            .and_then(|stat| {
                stat.lines()
                    .filter_map(|l| l.split_once(' '))
                    .find(|&(k, _)| k == key)
                    .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
        Some(self.usage_of(dir)?.saturating_sub(inactive))
    }

    fn usage_of(&self, dir: &Path) -> Option<u64> {
        read_number(&dir.join(match self.version {
            Version::V2 => "memory.current",
            Version::V1 => "memory.usage_in_bytes",
        }))
    }
}

/// The own group's `memory.pressure` in the unified hierarchy (present in v2 and in hybrid
/// layouts whatever hierarchy holds the memory controller), if the file exists.
pub fn own_pressure_file(root: &Path, proc_self_cgroup: &Path) -> Option<PathBuf> {
    let text = fs::read_to_string(proc_self_cgroup).ok()?;
    let entry = text
        .lines()
        .filter_map(Entry::parse)
        .find(Entry::is_unified)?;
    let mount = unified_mount(root)?;
    let own = mount.join(entry.path.trim_start_matches('/'));
    let file = own.join("memory.pressure");
    file.is_file().then_some(file)
}

/// Where the unified hierarchy is mounted: `root` itself (v2) or `root/unified` (hybrid).
fn unified_mount(root: &Path) -> Option<PathBuf> {
    [root.to_path_buf(), root.join("unified")]
        .into_iter()
        .find(|m| m.join("cgroup.controllers").is_file())
}

/// One line of `/proc/self/cgroup`.
struct Entry<'a> {
    id: &'a str,
    controllers: &'a str,
    path: &'a str,
}

impl<'a> Entry<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let mut parts = line.splitn(3, ':');
        let id = parts.next()?;
        let controllers = parts.next()?;
        // A group removed while we are in it reads "/path (deleted)".
        let path = parts.next()?.trim_end_matches(" (deleted)");
        Some(Self {
            id,
            controllers,
            path,
        })
    }

    fn has_controller(&self, name: &str) -> bool {
        self.controllers.split(',').any(|c| c == name)
    }

    fn is_unified(&self) -> bool {
        self.id == "0" && self.controllers.is_empty()
    }
}

/// A limit file: a number of bytes, or `max`; unlimited and unreadable both give `None`.
fn read_limit(path: &Path) -> Option<u64> {
    read_number(path).filter(|&v| v < UNLIMITED_FROM)
}

fn read_number(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key value` lines (v2 `memory.events`, v1 `memory.oom_control`); unknown keys are skipped.
fn parse_events(text: &str) -> Option<MemoryEvents> {
    let mut events = MemoryEvents::default();
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let (Some(key), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let value: u64 = value.parse().ok()?;
        match key {
            "high" => events.high = value,
            "max" => events.max = value,
            "oom" => events.oom = value,
            "oom_kill" => events.oom_kill = value,
            _ => {}
        }
    }
    Some(events)
}
