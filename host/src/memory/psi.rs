//! Pressure stall information (PSI): the kernel's own word that tasks wait for memory.
//!
//! [`PsiConfig::open`] registers a *trigger* on a pressure file, which makes the file's
//! descriptor poll ready (`POLLPRI`) whenever tasks stalled on memory for more than a threshold
//! within a window. The caller waits on it through a [`PressureWatch`] between its periodic
//! readings. (The figures of the same files are read by [`psi_stats`](super::psi_stats).)
//!
//! # Where the events come from, first match wins
//!
//! 1. `$MEMORY_PRESSURE_WATCH`, set by systemd for a service with `MemoryPressureWatch=`
//!    (systemd's "Resource Pressure Handling" protocol): `/dev/null` turns events off; a regular
//!    file is a PSI file to which the Base64-decoded `$MEMORY_PRESSURE_WRITE` is written (our
//!    [`Trigger::DEFAULT`] when unset: a PSI file without a trigger never fires); a FIFO is
//!    opened, an `AF_UNIX` socket connected, the decoded data written to either, and readable
//!    data are events. No fallback past it: the service manager chose.
//! 2. The own cgroup's `memory.pressure` in the unified hierarchy (a limit on the group shows
//!    there first), if the kernel takes the trigger there.
//! 3. `/proc/pressure/memory`, the whole system.
//!
//! When none works, [`Unavailable`] says why, with the kernel's errno, and the caller keeps
//! its 1 s readings.
//!
//! # The kernel's terms (measured, Linux 6.18, as root without `CAP_SYS_RESOURCE`)
//!
//! `some 150000 2000000` and `some 200000 2000000` (systemd's) are accepted, so are 4 s and
//! 10 s windows; `some 150000 1000000`, 500 ms, 3 s and 20 s windows get `EINVAL`. Without
//! `CAP_SYS_RESOURCE` (the usual case, in containers too) the window must be a multiple of 2 s,
//! at most 10 s. [`Trigger::DEFAULT`] is `some 150000 2000000`: one 2 s window, the shortest
//! allowed, and a threshold a little under systemd's 200 ms, since w4l's first reactions
//! (trimming the heap, spilling a take) are cheap.
//!
//! The kernel replaces the last byte of the write with a NUL before parsing, so a trigger is
//! written NUL-terminated (as systemd's `$MEMORY_PRESSURE_WRITE` is): without it,
//! `some 150000 2000000` reads as a 200 ms window and gets `EINVAL`.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::base64;
use super::cgroup::{self, CGROUP_ROOT, PROC_SELF_CGROUP};
use super::watch::{PressureWatch, Readiness};

/// The system-wide memory pressure file.
pub const PROC_PRESSURE_MEMORY: &str = "/proc/pressure/memory";

/// Which stall a trigger watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallKind {
    /// At least one task waited for memory.
    Some,
    /// Every non-idle task waited at once.
    Full,
}

/// A PSI trigger: fire when tasks stalled longer than `threshold` within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trigger {
    /// `some` or `full`.
    pub kind: StallKind,
    /// Stall time within one window that fires the trigger.
    pub threshold: Duration,
    /// The window; a multiple of 2 s unless the process has `CAP_SYS_RESOURCE`.
    pub window: Duration,
}

impl Trigger {
    /// `some 150000 2000000` (see the module docs).
    pub const DEFAULT: Self = Self {
        kind: StallKind::Some,
        threshold: Duration::from_millis(150),
        window: Duration::from_secs(2),
    };

    /// A `some` trigger.
    pub fn some(threshold: Duration, window: Duration) -> Self {
        Self {
            kind: StallKind::Some,
            threshold,
            window,
        }
    }
}

impl fmt::Display for Trigger {
    /// The line the kernel reads: `some 150000 2000000` (µs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            StallKind::Some => "some",
            StallKind::Full => "full",
        };
        let (threshold, window) = (self.threshold.as_micros(), self.window.as_micros());
        write!(f, "{kind} {threshold} {window}")
    }
}

/// Why no pressure events will come: one line, with the kernel's errno when it refused.
#[derive(Debug)]
pub struct Unavailable {
    what: String,
    fix: &'static str,
    errno: Option<i32>,
}

impl Unavailable {
    fn new(what: impl Into<String>, fix: &'static str) -> Self {
        Self {
            what: what.into(),
            fix,
            errno: None,
        }
    }

    fn io(what: impl fmt::Display, e: &io::Error) -> Self {
        let errno = e.raw_os_error();
        let fix = match errno {
            Some(libc::EINVAL) => {
                "without CAP_SYS_RESOURCE the window must be a multiple of 2 s, at most 10 s"
            }
            Some(libc::EACCES | libc::EPERM) => {
                "the file is not writable here (systemd delegates it with MemoryPressureWatch=)"
            }
            Some(libc::ENOENT | libc::EOPNOTSUPP) => {
                "the kernel lacks PSI (CONFIG_PSI=y, and psi=1 on its command line)"
            }
            _ => "check the file",
        };
        Self {
            what: format!("{what} ({}: {e})", errno_name(errno)),
            fix,
            errno,
        }
    }

    /// The errno of the refusal (`EINVAL` for a window the kernel does not take), if the kernel
    /// gave one.
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no memory pressure events: {}; {}, and w4l reads memory once a second meanwhile",
            self.what, self.fix
        )
    }
}

impl std::error::Error for Unavailable {}

fn errno_name(errno: Option<i32>) -> String {
    match errno {
        Some(libc::EINVAL) => "EINVAL".into(),
        Some(libc::EACCES) => "EACCES".into(),
        Some(libc::EPERM) => "EPERM".into(),
        Some(libc::ENOENT) => "ENOENT".into(),
        Some(libc::EOPNOTSUPP) => "EOPNOTSUPP".into(),
        Some(libc::EBUSY) => "EBUSY".into(),
        Some(libc::ECONNREFUSED) => "ECONNREFUSED".into(),
        Some(n) => format!("errno {n}"),
        None => "no errno".into(),
    }
}

/// Where to look for pressure events (see the module docs); every path injectable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsiConfig {
    /// The trigger written to a PSI file when the service manager gives none.
    pub trigger: Trigger,
    /// `$MEMORY_PRESSURE_WATCH`.
    pub watch: Option<PathBuf>,
    /// `$MEMORY_PRESSURE_WRITE` (Base64).
    pub write: Option<String>,
    /// The own cgroup's `memory.pressure`, if there is one.
    pub cgroup_file: Option<PathBuf>,
    /// The system-wide file, [`PROC_PRESSURE_MEMORY`].
    pub proc_file: PathBuf,
}

impl PsiConfig {
    /// This process's environment and cgroup, with [`Trigger::DEFAULT`].
    pub fn from_env() -> Self {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        Self {
            trigger: Trigger::DEFAULT,
            watch: var("MEMORY_PRESSURE_WATCH").map(PathBuf::from),
            write: var("MEMORY_PRESSURE_WRITE").map(|v| v.to_string_lossy().into_owned()),
            cgroup_file: cgroup::own_pressure_file(
                Path::new(CGROUP_ROOT),
                Path::new(PROC_SELF_CGROUP),
            ),
            proc_file: PathBuf::from(PROC_PRESSURE_MEMORY),
        }
    }

    /// Opens the first source that works (see the module docs).
    ///
    /// # Errors
    ///
    /// [`Unavailable`] with the reason (the last one tried) when none does.
    pub fn open(&self) -> Result<PressureWatch, Unavailable> {
        if let Some(watch) = &self.watch {
            return open_announced(watch, self.write.as_deref(), &self.trigger);
        }
        if let Some(file) = &self.cgroup_file {
            match register_trigger(file, &self.trigger) {
                Ok(watch) => return Ok(watch),
                Err(e) => tracing::debug!("{e}; trying {}", self.proc_file.display()),
            }
        }
        register_trigger(&self.proc_file, &self.trigger)
    }
}

/// Writes `trigger` to the PSI file at `path`; the watch fires when it is exceeded.
///
/// # Errors
///
/// [`Unavailable`] with the kernel's errno: `EINVAL` for a window it does not take (see the
/// module docs), `EACCES` for a file this user may not write, `ENOENT` without PSI.
///
/// ```no_run
/// use std::path::Path;
/// use std::time::Duration;
/// use w4l::memory::psi::{register_trigger, Trigger, PROC_PRESSURE_MEMORY};
///
/// let path = Path::new(PROC_PRESSURE_MEMORY);
/// assert!(register_trigger(path, &Trigger::DEFAULT).is_ok());
/// let one_second = Trigger::some(Duration::from_millis(150), Duration::from_secs(1));
/// assert_eq!(register_trigger(path, &one_second).unwrap_err().errno(), Some(libc::EINVAL));
/// ```
pub fn register_trigger(path: &Path, trigger: &Trigger) -> Result<PressureWatch, Unavailable> {
    write_trigger(path, trigger.to_string().as_bytes())
}

fn write_trigger(path: &Path, trigger: &[u8]) -> Result<PressureWatch, Unavailable> {
    // The kernel overwrites the last byte written with a NUL before parsing: without one of
    // our own, `some 150000 2000000` would read as a 200 ms window (and be refused).
    let mut trigger = trigger.to_vec();
    while trigger.last() == Some(&0) {
        trigger.pop();
    }
    let shown = String::from_utf8_lossy(&trigger).into_owned();
    trigger.push(0);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Unavailable::io(format_args!("cannot open {}", path.display()), &e))?;
    // The kernel takes the trigger in one write, or not at all.
    match file.write(&trigger) {
        Ok(n) if n == trigger.len() => Ok(PressureWatch::new(
            file,
            Readiness::Priority,
            format!("{} ({shown})", path.display()),
        )),
        Ok(n) => Err(Unavailable::new(
            format!(
                "{} took {n} of the {} bytes of `{shown}`",
                path.display(),
                trigger.len()
            ),
            "check the file",
        )),
        Err(e) => Err(Unavailable::io(
            format_args!(
                "the kernel refused the trigger `{shown}` on {}",
                path.display()
            ),
            &e,
        )),
    }
}

/// `$MEMORY_PRESSURE_WATCH` and `$MEMORY_PRESSURE_WRITE`, after systemd's protocol.
fn open_announced(
    path: &Path,
    write: Option<&str>,
    default: &Trigger,
) -> Result<PressureWatch, Unavailable> {
    if path == Path::new("/dev/null") {
        return Err(Unavailable::new(
            "MEMORY_PRESSURE_WATCH=/dev/null: the service manager turned them off",
            "set MemoryPressureWatch= to auto or on in the unit to have them",
        ));
    }
    let data = match write {
        Some(text) => Some(base64::decode(text).ok_or_else(|| {
            Unavailable::new(
                "MEMORY_PRESSURE_WRITE is not Base64",
                "fix MemoryPressureThresholdSec= or the variable",
            )
        })?),
        None => None,
    };
    let kind = fs::metadata(path)
        .map_err(|e| Unavailable::io(format_args!("cannot stat {}", path.display()), &e))?
        .file_type();
    if !(kind.is_fifo() || kind.is_socket()) {
        let trigger = data.unwrap_or_else(|| default.to_string().into_bytes());
        return write_trigger(path, &trigger);
    }
    let failed = |e: io::Error| Unavailable::io(format_args!("cannot use {}", path.display()), &e);
    let mut file = if kind.is_socket() {
        File::from(std::os::fd::OwnedFd::from(
            UnixStream::connect(path).map_err(failed)?,
        ))
    } else {
        // Read and write: a reader that is also a writer never sees the FIFO hang up.
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(failed)?
    };
    file.write_all(data.as_deref().unwrap_or_default())
        .map_err(failed)?;
    let mut watch = PressureWatch::new(file, Readiness::Readable, path.display().to_string());
    // A FIFO hands our own announcement back: not an event.
    watch.discard_pending().map_err(failed)?;
    Ok(watch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_read_as_the_kernel_wants() {
        assert_eq!(Trigger::DEFAULT.to_string(), "some 150000 2000000");
        let full = Trigger {
            kind: StallKind::Full,
            ..Trigger::some(Duration::from_millis(100), Duration::from_secs(4))
        };
        assert_eq!(full.to_string(), "full 100000 4000000");
    }

    #[test]
    fn refusals_name_the_errno_and_the_fallback() {
        let e = Unavailable::io("the kernel refused", &io::Error::from_raw_os_error(22));
        assert_eq!(e.errno(), Some(libc::EINVAL));
        let line = e.to_string();
        assert!(
            line.contains("(EINVAL: Invalid argument (os error 22))"),
            "{line}"
        );
        assert!(line.contains("multiple of 2 s"), "{line}");
        assert!(line.ends_with("once a second meanwhile"), "{line}");
        assert!(!line.contains('\n'));
    }
}
