//! The cgroup reader against fixture trees of every layout (v1, v2, hybrid; limited and
//! unlimited), and against this machine's own files (read only: no cgroup is created or
//! changed).

use std::fs;
use std::path::{Path, PathBuf};

use w4l::memory::cgroup::{self, CgroupMemory, Limits, MemoryEvents, Version};

/// v1's "unlimited" with 4 KiB pages (`PAGE_COUNTER_MAX * 4096`).
const V1_UNLIMITED: &str = "9223372036854771712\n";
/// The same with 64 KiB pages (arm64, ppc64 kernels).
const V1_UNLIMITED_64K: &str = "9223372036854710272\n";
const MIB: u64 = 1 << 20;

/// A cgroup mount tree and a `/proc/self/cgroup` file: `files` are (path, contents) pairs.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(proc_self_cgroup: &str, files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("fixture directory");
        let fixture = Self { dir };
        fixture.write("proc-self-cgroup", proc_self_cgroup);
        for (path, text) in files {
            fixture.write(&format!("sys/{path}"), text);
        }
        fixture
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.dir.path().join(path);
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("sys")
    }

    fn detect(&self) -> Option<CgroupMemory> {
        CgroupMemory::detect(&self.root(), &self.dir.path().join("proc-self-cgroup"))
    }

    fn pressure_file(&self) -> Option<PathBuf> {
        cgroup::own_pressure_file(&self.root(), &self.dir.path().join("proc-self-cgroup"))
    }
}

const V2_EVENTS: &str = "low 0\nhigh 7\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n";

#[test]
fn v2_limited_by_its_own_high_and_a_parents_max() {
    let app = "user.slice/user-1000.slice/app.scope";
    let f = Fixture::new(
        &format!("0::/{app}\n"),
        &[
            ("cgroup.controllers", "cpuset cpu io memory pids\n"),
            (&format!("{app}/memory.max"), "max\n"),
            (&format!("{app}/memory.high"), "805306368\n"),
            (&format!("{app}/memory.current"), "104857600\n"),
            (
                &format!("{app}/memory.events"),
                "low 0\nhigh 2\nmax 0\noom 0\noom_kill 0\n",
            ),
            (&format!("{app}/memory.pressure"), "some avg10=0.00\n"),
            ("user.slice/memory.max", "536870912\n"),
            ("user.slice/memory.high", "max\n"),
            ("user.slice/memory.current", "576716800\n"),
            // 100 MiB of the slice's 550 MiB are file cache the kernel drops first.
            (
                "user.slice/memory.stat",
                "anon 400000000\nfile 150000000\ninactive_file 104857600\n",
            ),
            ("user.slice/memory.events", V2_EVENTS),
        ],
    );
    let cg = f.detect().expect("a v2 memory cgroup");
    assert_eq!(cg.version(), Version::V2);
    assert_eq!(cg.dir(), f.root().join(app));
    assert_eq!(
        cg.limits(),
        Limits {
            high: Some(768 * MIB),
            max: Some(512 * MIB)
        }
    );
    assert_eq!(cg.limit(), Some(512 * MIB));
    assert_eq!(cg.usage(), Some(100 * MIB));
    // The slice binds first: 512 - (550 - 100) MiB left, although the scope has 668 MiB.
    assert_eq!(cg.headroom(), Some(62 * MIB));
    // Its counters are the ones that move when that limit is hit.
    let events = MemoryEvents {
        high: 7,
        max: 3,
        oom: 1,
        oom_kill: 1,
    };
    assert_eq!(cg.events(), Some(events));
    assert_eq!(
        f.pressure_file(),
        Some(f.root().join(app).join("memory.pressure"))
    );
}

#[test]
fn v2_unlimited() {
    let f = Fixture::new(
        "0::/app.scope\n",
        &[
            ("cgroup.controllers", "memory pids\n"),
            ("app.scope/memory.max", "max\n"),
            ("app.scope/memory.high", "max\n"),
            ("app.scope/memory.current", "4096\n"),
            ("app.scope/memory.events", V2_EVENTS),
        ],
    );
    let cg = f.detect().expect("a v2 memory cgroup");
    assert_eq!(
        (cg.limits(), cg.limit(), cg.headroom()),
        (Limits::default(), None, None)
    );
    assert_eq!(cg.usage(), Some(4096));
    assert_eq!(
        cg.events().map(|e| e.high),
        Some(7),
        "the own group's events"
    );
    assert_eq!(f.pressure_file(), None, "no memory.pressure in the fixture");
}

#[test]
fn v2_without_the_memory_controller_has_no_memory_cgroup() {
    let f = Fixture::new(
        "0::/app.scope\n",
        &[
            ("cgroup.controllers", "cpu io pids\n"),
            ("app.scope/memory.pressure", ""),
        ],
    );
    assert_eq!(f.detect(), None);
    assert!(
        f.pressure_file().is_some(),
        "PSI works without the controller"
    );
}

#[test]
fn v1_limited_and_unlimited() {
    let dir = "process_api/28f7c676";
    let lines = format!("4:memory:/{dir}\n3:cpuset:/\n2:cpu,cpuacct:/\n1:name=systemd:/\n");
    let files = |limit: &'static str| {
        vec![
            ("memory/memory.limit_in_bytes", V1_UNLIMITED),
            ("memory/process_api/memory.limit_in_bytes", V1_UNLIMITED_64K),
            ("memory/process_api/memory.usage_in_bytes", "900000000\n"),
            ("memory/process_api/28f7c676/memory.limit_in_bytes", limit),
            (
                "memory/process_api/28f7c676/memory.usage_in_bytes",
                "3035136\n",
            ),
            (
                "memory/process_api/28f7c676/memory.stat",
                "cache 1000\ninactive_file 9\ntotal_inactive_file 35136\n",
            ),
            ("memory/process_api/28f7c676/memory.failcnt", "5\n"),
            (
                "memory/process_api/28f7c676/memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            ),
        ]
    };
    let f = Fixture::new(&lines, &files(V1_UNLIMITED));
    let cg = f.detect().expect("a v1 memory cgroup");
    assert_eq!(cg.version(), Version::V1);
    assert_eq!(cg.dir(), f.root().join("memory").join(dir));
    assert_eq!(
        (cg.limit(), cg.headroom()),
        (None, None),
        "both sentinels are unlimited"
    );
    assert_eq!(cg.usage(), Some(3_035_136));
    assert_eq!(
        cg.working_set(),
        Some(3_000_000),
        "less the hierarchical inactive cache"
    );
    let events = MemoryEvents {
        max: 5,
        oom_kill: 2,
        ..MemoryEvents::default()
    };
    assert_eq!(cg.events(), Some(events));

    let f = Fixture::new(&lines, &files("268435456\n"));
    let cg = f.detect().expect("a v1 memory cgroup");
    assert_eq!(
        cg.limits(),
        Limits {
            high: None,
            max: Some(256 * MIB)
        }
    );
    assert_eq!(cg.headroom(), Some(256 * MIB - 3_000_000));
}

#[test]
fn v1_controller_sharing_a_hierarchy() {
    let f = Fixture::new(
        "5:cpu,memory:/box\n",
        &[
            ("cpu,memory/box/memory.limit_in_bytes", "1048576\n"),
            ("cpu,memory/box/memory.usage_in_bytes", "1000\n"),
            ("cpu,memory/memory.limit_in_bytes", V1_UNLIMITED),
        ],
    );
    let cg = f.detect().expect("found under the joint mount");
    assert_eq!((cg.version(), cg.limit()), (Version::V1, Some(MIB)));
}

#[test]
fn hybrid_takes_the_v1_memory_controller_and_the_unified_pressure_file() {
    // This development machine's layout: v1 controllers, a unified hierarchy without memory.
    let f = Fixture::new(
        "9:name=systemd:/\n4:memory:/user.slice\n1:cpu:/\n0::/user.slice\n",
        &[
            ("unified/cgroup.controllers", "hugetlb\n"),
            ("unified/user.slice/memory.pressure", "some avg10=0.00\n"),
            ("memory/memory.limit_in_bytes", V1_UNLIMITED),
            ("memory/user.slice/memory.limit_in_bytes", "2147483648\n"),
            ("memory/user.slice/memory.usage_in_bytes", "1073741824\n"),
        ],
    );
    let cg = f.detect().expect("a v1 memory cgroup");
    assert_eq!(cg.version(), Version::V1);
    assert_eq!(
        (cg.limit(), cg.headroom()),
        (Some(2048 * MIB), Some(1024 * MIB))
    );
    assert_eq!(
        f.pressure_file(),
        Some(f.root().join("unified/user.slice/memory.pressure"))
    );
}

#[test]
fn hybrid_with_memory_on_the_unified_side() {
    let f = Fixture::new(
        "1:name=systemd:/app\n0::/app\n",
        &[
            ("unified/cgroup.controllers", "memory\n"),
            ("unified/app/memory.max", "1073741824\n"),
            ("unified/app/memory.current", "0\n"),
        ],
    );
    let cg = f.detect().expect("a v2 memory cgroup under unified/");
    assert_eq!((cg.version(), cg.limit()), (Version::V2, Some(1024 * MIB)));
}

#[test]
fn a_path_outside_the_mount_is_the_mounts_root() {
    // A container without a cgroup namespace: its own group is bind-mounted as the root.
    let f = Fixture::new(
        "0::/system.slice/docker-0123.scope\n",
        &[
            ("cgroup.controllers", "memory\n"),
            ("memory.max", "67108864\n"),
            ("memory.current", "33554432\n"),
        ],
    );
    let cg = f.detect().expect("the mount's root");
    assert_eq!(cg.dir(), f.root());
    assert_eq!(cg.headroom(), Some(32 * MIB));
}

#[test]
fn unreadable_or_garbage_files_give_no_limit() {
    let f = Fixture::new(
        "0::/a (deleted)\n",
        &[
            ("cgroup.controllers", "memory\n"),
            ("a/memory.max", "lots\n"),
            ("a/memory.events", "max many\n"),
        ],
    );
    let cg = f.detect().expect("detected");
    assert_eq!((cg.limit(), cg.usage(), cg.events()), (None, None, None));
    assert_eq!(Fixture::new("", &[]).detect(), None);
    assert_eq!(Fixture::new("garbage\n", &[]).detect(), None);
    assert_eq!(
        CgroupMemory::detect(Path::new("/nonexistent"), Path::new("/nonexistent/cgroup")),
        None
    );
}

/// This machine's files: whatever the layout, the reader agrees with a direct read.
#[test]
fn this_machine() {
    let text = fs::read_to_string(cgroup::PROC_SELF_CGROUP).unwrap_or_default();
    eprintln!("/proc/self/cgroup:\n{text}");
    let Some(cg) = CgroupMemory::of_this_process() else {
        assert!(
            !text.lines().any(|l| l.contains(":memory:")),
            "a v1 memory controller is listed but was not found"
        );
        eprintln!("no memory cgroup on this machine");
        return;
    };
    eprintln!(
        "{:?} {}: limits {:?}, usage {:?}, working set {:?}, headroom {:?}, events {:?}; \
         pressure file {:?}",
        cg.version(),
        cg.dir().display(),
        cg.limits(),
        cg.usage(),
        cg.working_set(),
        cg.headroom(),
        cg.events(),
        cgroup::own_pressure_file(
            Path::new(cgroup::CGROUP_ROOT),
            Path::new(cgroup::PROC_SELF_CGROUP)
        ),
    );
    assert!(cg.dir().is_dir());
    if text.lines().any(|l| l.contains(":memory:")) {
        assert_eq!(cg.version(), Version::V1);
        let direct = fs::read_to_string(cg.dir().join("memory.limit_in_bytes")).expect("read");
        let direct: u64 = direct.trim().parse().expect("a number");
        if direct < 1 << 62 {
            assert!(cg.limit().is_some_and(|l| l <= direct));
        }
    }
    if let (Some(limit), Some(headroom)) = (cg.limit(), cg.headroom()) {
        assert!(headroom <= limit);
    }
}
