//! Memory readings of this process and the system, through `sysinfo`.

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

/// Reads this process's RSS and the system's available memory, refreshing only those: one
/// process (ours), memory only; RAM only, no swap, no CPU, no other processes.
#[derive(Debug)]
pub struct Probe {
    system: System,
    pid: Pid,
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
        Ok(Self { system, pid })
    }

    /// A fresh reading.
    pub fn read(&mut self) -> Result<SystemReading> {
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            false,
            ProcessRefreshKind::nothing().with_memory(),
        );
        let rss = self
            .system
            .process(self.pid)
            .map(sysinfo::Process::memory)
            .ok_or_else(|| {
                Error::runtime(
                    "cannot read this process's memory use",
                    "w4l needs /proc (Linux) or the platform's equivalent",
                )
            })?;
        Ok(SystemReading {
            rss,
            available: self.system.available_memory(),
            total: self.system.total_memory(),
            at: Instant::now(),
        })
    }
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
}
