//! Memory as the machine sees it: readings of this process and the system, fed to the core's
//! cleanup policy by the [`MemoryMonitor`](monitor::MemoryMonitor).

pub mod monitor;
