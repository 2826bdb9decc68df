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

/// Reads this process's RSS and the system's available memory, refreshing only those: the
/// system's RAM through `sysinfo` (no swap, no CPU, no other processes), and this process's
/// resident set from `/proc/self/statm`, kept open and read again in one `pread` (Linux; through
/// `sysinfo` elsewhere, or if it cannot be opened). `sysinfo`'s refresh of one process opens
/// seven `/proc` files (its directory, `task`, `stat`, `statm`, `status`, `/proc/uptime`...)
/// for the one figure the policy uses.
#[derive(Debug)]
pub struct Probe {
    system: System,
    pid: Pid,
    /// `/proc/self/statm` and the page size, when available.
    statm: Option<(std::fs::File, u64)>,
}

impl Probe {
    /// A probe for the current process.
    pub fn new() -> Result<Self> {
        let system = System::new().map_err(|e| {
            Error::runtime(
                format!("cannot read memory figures ({e})"),
                "w4l needs /proc (Linux) or the platform's equivalent",
            )
        })?;
        let pid = sysinfo::get_current_pid().map_err(|e| {
            Error::runtime(
                format!("cannot find this process's id ({e})"),
                "w4l needs /proc (Linux) or the platform's equivalent",
            )
        })?;
        Ok(Self {
            system,
            pid,
            statm: open_statm(),
        })
    }

    /// A fresh reading.
    pub fn read(&mut self) -> Result<SystemReading> {
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let rss = match self
            .statm
            .as_ref()
            .and_then(|(f, page)| statm_rss(f, *page))
        {
            Some(rss) => rss,
            None => self.sysinfo_rss()?,
        };
        Ok(SystemReading {
            rss,
            available: self.system.available_memory(),
            total: self.system.total_memory(),
            at: Instant::now(),
        })
    }

    fn sysinfo_rss(&mut self) -> Result<u64> {
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            false,
            ProcessRefreshKind::nothing().with_memory(),
        );
        self.system
            .process(self.pid)
            .map(sysinfo::Process::memory)
            .ok_or_else(|| {
                Error::runtime(
                    "cannot read this process's memory use",
                    "w4l needs /proc (Linux) or the platform's equivalent",
                )
            })
    }
}

/// `/proc/self/statm` and the page size, if this is Linux and both can be had.
fn open_statm() -> Option<(std::fs::File, u64)> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    // SAFETY: `sysconf` only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u64::try_from(page).ok().filter(|&p| p > 0)?;
    let file = std::fs::File::open("/proc/self/statm").ok()?;
    // A first read proves the format; otherwise `sysinfo` it is.
    statm_rss(&file, page)?;
    Some((file, page))
}

/// The resident set in bytes from `statm` (`size resident shared ...`, in pages), read afresh.
fn statm_rss(file: &std::fs::File, page: u64) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 128];
    let n = file.read_at(&mut buf, 0).ok()?;
    let text = std::str::from_utf8(buf.get(..n)?).ok()?;
    let pages: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page)
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
    fn statm_rss_agrees_with_sysinfo() {
        let mut p = Probe::new().expect("probe");
        let (file, page) = p.statm.take().expect("/proc/self/statm opens on Linux");
        let big = vec![1u8; 16 << 20];
        let before = statm_rss(&file, page).expect("statm");
        let theirs = p.sysinfo_rss().expect("sysinfo");
        let after = statm_rss(&file, page).expect("statm");
        // Other tests of this process allocate meanwhile: sysinfo's reading lies between the two
        // of statm, give or take a megabyte.
        assert!(
            theirs + (1 << 20) >= before.min(after) && theirs <= before.max(after) + (1 << 20),
            "statm {before} and {after}, sysinfo {theirs}"
        );
        drop(big);
    }
}
