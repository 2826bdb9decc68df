//! Memory as the machine sees it: the [`MemoryMonitor`](monitor::MemoryMonitor) that feeds
//! readings of this process and the system to the core's cleanup policy, and the readers beside
//! it: the service manager's limit, the kernel's pressure signal, memory the allocator keeps,
//! and files that live in RAM.
//!
//! Each reader is optional and detected once at start; every path is injectable so tests run
//! against fixture trees instead of the machine's cgroups (which w4l never creates or changes).
//!
//! | module | what it gives | where from |
//! |---|---|---|
//! | [`buffers`] | the buffers held, tracked with the core's tracker: counts, bytes, victims under pressure | the recorder, the app |
//! | [`monitor`] | readings → the policy → cleanups, on a recorder's steps or a thread of its own; wires the readers below in (the cgroup's limit, pressure events, tmpfs bytes) and keeps the chart's history | `/proc/self/statm`, `sysinfo`, the readers |
//! | [`cgroup`] | the own cgroup's memory limit, usage, headroom and `high`/`max`/`oom` events | `/proc/self/cgroup`, `/sys/fs/cgroup` (v1, v2, hybrid) |
//! | [`psi`] | the choice and registration of a pressure trigger | `$MEMORY_PRESSURE_WATCH`, the own cgroup's `memory.pressure`, `/proc/pressure/memory` |
//! | [`psi_stats`] | stall figures (`avg10`, `avg60`, `avg300`, `total`) | the same pressure files |
//! | [`watch`] | a descriptor that becomes ready under pressure, waited on by the caller or a thread | a PSI trigger, a FIFO or socket, or a test's pipe |
//! | [`trim`] | gives memory the allocator keeps after `free` back to the system | glibc's `malloc_trim` |
//! | [`tmpfs`] | whether a file lives in RAM (tmpfs, ramfs) and how many bytes it holds there | `statfs`, `stat` |
//! | [`models`] | an app's models: budget-checked loads, one at a time, idle and pressure unloads, LRU | the accountant |
//! | [`timeline`], [`timeline_svg`], [`sparkline`] | memory over time: the data, an SVG chart, a terminal view | the monitor's readings |
//!
//! # How the pieces fit (for the monitor)
//!
//! ```no_run
//! use w4l::memory::{cgroup::CgroupMemory, psi::PsiConfig, trim, tmpfs};
//!
//! // Once at start: the cgroup's limit caps the budget, like the system's available memory.
//! let cgroup = CgroupMemory::of_this_process();
//! let cap = cgroup.as_ref().and_then(CgroupMemory::headroom);
//!
//! // A pressure trigger, or the reason there is none (the 1 s poll then carries on alone).
//! match PsiConfig::from_env().open() {
//!     Ok(watch) => {
//!         let thread = watch
//!             .spawn(|event| {
//!                 // Runs on the watcher thread: hand over to the monitor (a forced step).
//!                 eprintln!("memory pressure #{}", event.count);
//!             })
//!             .expect("watcher thread");
//!         # drop(thread);
//!     }
//!     Err(why) => eprintln!("{why}"),
//! }
//!
//! // After a take is handed over: give the freed blocks back to the system.
//! trim::release_freed();
//! // A spilled take on tmpfs is RAM, not disk.
//! let in_ram = tmpfs::bytes_in_memory(std::path::Path::new("/tmp")).unwrap_or(0);
//! # let _ = (cap, in_ram);
//! ```

mod base64;
pub mod buffers;
pub mod cgroup;
pub mod models;
pub mod monitor;
pub mod psi;
pub mod psi_stats;
pub mod sparkline;
pub mod timeline;
pub mod timeline_svg;
pub mod tmpfs;
pub mod trim;
pub mod watch;
