//! [`Probe`]: one reading of this process's resident set and the system's memory.

use std::time::Instant;

use sysinfo::{MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::error::{Error, Result};

/// One reading of the process's and the system's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemReading {
    /// Resident set size of this process, bytes.
    pub rss: u64,
    /// Memory the system can still give out without swapping, bytes.
    pub available: u64,
    /// Total physical memory, bytes.
    pub total: u64,
    /// When the reading was taken.
    pub at: Instant,
}

/// Reads this process's RSS and the system's available memory. On Linux from `/proc/self/statm`
/// and `/proc/meminfo`, both kept open and read again with one `pread` each; elsewhere (or if
/// those cannot be read) through `sysinfo`, refreshing only those figures. `sysinfo` opens its
/// files afresh at every reading (and `/proc/stat` when created), several system calls a
/// second for two numbers.
#[derive(Debug)]
pub struct Probe {
    kernel: Option<Kernel>,
    sysinfo: Option<(System, Pid)>,
}

impl Probe {
    /// A probe for the current process.
    pub fn new() -> Result<Self> {
        if let Some(kernel) = Kernel::open() {
            return Ok(Self {
                kernel: Some(kernel),
                sysinfo: None,
            });
        }
        Ok(Self {
            kernel: None,
            sysinfo: Some(open_sysinfo()?),
        })
    }

    /// A fresh reading.
    pub fn read(&mut self) -> Result<SystemReading> {
        if let Some(reading) = self.kernel.as_ref().and_then(Kernel::read) {
            return Ok(reading);
        }
        self.sysinfo_read()
    }

    fn sysinfo_read(&mut self) -> Result<SystemReading> {
        let (system, pid) = match &mut self.sysinfo {
            Some(s) => s,
            None => self.sysinfo.insert(open_sysinfo()?),
        };
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[*pid]),
            false,
            ProcessRefreshKind::nothing().with_memory(),
        );
        let rss = system
            .process(*pid)
            .map(sysinfo::Process::memory)
            .ok_or_else(|| {
                Error::runtime(
                    "cannot read this process's memory use",
                    "w4l needs /proc (Linux) or the platform's equivalent",
                )
            })?;
        Ok(SystemReading {
            rss,
            available: system.available_memory(),
            total: system.total_memory(),
            at: Instant::now(),
        })
    }
}

fn open_sysinfo() -> Result<(System, Pid)> {
    let needs_proc = |e: &dyn std::fmt::Display, what: &str| {
        Error::runtime(
            format!("cannot {what} ({e})"),
            "w4l needs /proc (Linux) or the platform's equivalent",
        )
    };
    let system = System::new().map_err(|e| needs_proc(&e, "read memory figures"))?;
    let pid = sysinfo::get_current_pid().map_err(|e| needs_proc(&e, "find this process's id"))?;
    Ok((system, pid))
}

/// `/proc/self/statm`, `/proc/meminfo` and the page size (Linux).
#[derive(Debug)]
struct Kernel {
    statm: std::fs::File,
    meminfo: std::fs::File,
    page: u64,
}

impl Kernel {
    /// Both files, if this is Linux and a first reading of them makes sense.
    fn open() -> Option<Self> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        // SAFETY: `sysconf` only reads a configuration value.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let kernel = Kernel {
            statm: std::fs::File::open("/proc/self/statm").ok()?,
            meminfo: std::fs::File::open("/proc/meminfo").ok()?,
            page: u64::try_from(page).ok().filter(|&p| p > 0)?,
        };
        kernel.read()?;
        Some(kernel)
    }

    fn read(&self) -> Option<SystemReading> {
        let mut buf = [0u8; 4096];
        let meminfo = read_at_start(&self.meminfo, &mut buf)?;
        let total = meminfo_bytes(meminfo, "MemTotal:")?;
        let available = meminfo_bytes(meminfo, "MemAvailable:")?;
        let statm = read_at_start(&self.statm, &mut buf)?;
        let pages: u64 = statm.split_ascii_whitespace().nth(1)?.parse().ok()?;
        Some(SystemReading {
            rss: pages.checked_mul(self.page)?,
            available,
            total,
            at: Instant::now(),
        })
    }
}

/// The start of `file` (as much as fits `buf`), read afresh, as text.
fn read_at_start<'a>(file: &std::fs::File, buf: &'a mut [u8]) -> Option<&'a str> {
    use std::os::unix::fs::FileExt;
    let n = file.read_at(buf, 0).ok()?;
    std::str::from_utf8(buf.get(..n)?).ok()
}

/// A `/proc/meminfo` figure (`MemAvailable:   123456 kB`) in bytes.
fn meminfo_bytes(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reads_plausible_figures() {
        let mut p = Probe::new().expect("probe");
        let r = p.read().expect("reading");
        assert!(r.rss > 100_000, "rss {}", r.rss);
        assert!(r.total >= r.available && r.available > 0, "{r:?}");
        // Grows with a big allocation that is touched.
        let big = vec![1u8; 64 << 20];
        let r2 = p.read().expect("reading");
        assert!(r2.rss >= r.rss + (32 << 20), "{} -> {}", r.rss, r2.rss);
        drop(big);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_kernel_files_agree_with_sysinfo() {
        let kernel = Kernel::open().expect("/proc/self/statm and /proc/meminfo open on Linux");
        let mut theirs = Probe {
            kernel: None,
            sysinfo: None,
        };
        let big = vec![1u8; 16 << 20];
        let before = kernel.read().expect("statm");
        let sysinfo = theirs.read().expect("sysinfo");
        let after = kernel.read().expect("statm");
        // Other tests of this process allocate meanwhile, and other processes use memory:
        // sysinfo's reading lies between the two of the files, give or take some.
        let near = |a: u64, lo: u64, hi: u64, slack: u64| {
            a + slack >= lo.min(hi) && a <= lo.max(hi) + slack
        };
        assert!(
            near(sysinfo.rss, before.rss, after.rss, 1 << 20),
            "{before:?} {sysinfo:?} {after:?}"
        );
        assert_eq!(sysinfo.total, before.total);
        assert!(
            near(
                sysinfo.available,
                before.available,
                after.available,
                64 << 20
            ),
            "{before:?} {sysinfo:?} {after:?}"
        );
        drop(big);
    }

    #[test]
    fn meminfo_figures_are_read_in_bytes() {
        let text =
            "MemTotal:       24589028 kB\nMemFree:         1000 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(meminfo_bytes(text, "MemTotal:"), Some(24_589_028 * 1024));
        assert_eq!(
            meminfo_bytes(text, "MemAvailable:"),
            Some(20_000_000 * 1024)
        );
        assert_eq!(meminfo_bytes(text, "SwapTotal:"), None);
        assert_eq!(meminfo_bytes("MemTotal: lots kB", "MemTotal:"), None);
    }
}
