//! Signal and panic plumbing for the temporary-file cleanup.
//!
//! SIGINT, SIGTERM and SIGHUP are caught with `signal-hook`: its handler only writes to a
//! self-pipe; a normal thread reads the pipe and does the work there — remove every temporary
//! file of the process ([`crate::tempfiles::cleanup_all`]) and exit with status `128 + signo`,
//! as a shell reports a process killed by that signal. With [`OnSignal::NotifyFirst`] the first
//! signal only raises a flag the application polls to stop gracefully (finish the take, drop
//! its [`crate::tempfiles::ResourceManager`]); a second signal cleans up and exits at once.
//!
//! [`install_panic_cleanup`] chains a panic hook that removes the temporary files before the
//! previous hook (the default one prints the message) runs.
//!
//! ```no_run
//! use w4l::tempfiles::signals::{OnSignal, SignalCleanup};
//!
//! let signals = SignalCleanup::install(OnSignal::NotifyFirst)?;
//! w4l::tempfiles::signals::install_panic_cleanup();
//! while signals.received().is_none() {
//!     // record...
//! #   break;
//! }
//! // finish the take; dropping the ResourceManager removes the temporary files.
//! # Ok::<(), w4l::tempfiles::signals::SignalError>(())
//! ```

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::tempfiles;

/// The signals that trigger the cleanup.
pub const CLEANUP_SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// The exit status after cleaning up for signal `signo`: `128 + signo`.
pub fn exit_code(signo: i32) -> i32 {
    128 + signo
}

/// What the watcher thread does on a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSignal {
    /// Remove every temporary file and exit with `128 + signo` at once.
    CleanupAndExit,
    /// First signal: only record it ([`SignalCleanup::received`]) so the application stops
    /// gracefully; a second one: remove every temporary file and exit with `128 + signo`.
    NotifyFirst,
}

/// Installing the signal handlers failed.
#[derive(Debug)]
pub struct SignalError {
    source: io::Error,
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "could not install the SIGINT/SIGTERM/SIGHUP handlers: {}; temporary files would survive a signal, so w4l does not start",
            self.source
        )
    }
}

impl std::error::Error for SignalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The installed signal handling: a watcher thread on signal-hook's self-pipe. Dropping it
/// stops the watcher (signal-hook's handlers are unregistered; a later SIGINT, SIGTERM or
/// SIGHUP is no longer turned into a cleanup).
pub struct SignalCleanup {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
    received: Arc<AtomicI32>,
    on_first: Listener,
}

/// What the watcher calls on the first signal (see [`SignalCleanup::on_first_signal`]).
type Listener = Arc<Mutex<Option<Box<dyn Fn() + Send>>>>;

impl fmt::Debug for SignalCleanup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalCleanup")
            .field("received", &self.received())
            .finish_non_exhaustive()
    }
}

impl SignalCleanup {
    /// Installs the handlers for [`CLEANUP_SIGNALS`] and starts the watcher thread.
    pub fn install(on_signal: OnSignal) -> Result<Self, SignalError> {
        let mut signals = Signals::new(CLEANUP_SIGNALS).map_err(|source| SignalError { source })?;
        let handle = signals.handle();
        let received = Arc::new(AtomicI32::new(0));
        let seen = Arc::clone(&received);
        let on_first: Listener = Arc::default();
        let listener = Arc::clone(&on_first);
        let thread = std::thread::Builder::new()
            .name("w4l-signals".into())
            .spawn(move || {
                for signo in signals.forever() {
                    let first = seen
                        .compare_exchange(0, signo, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok();
                    if on_signal == OnSignal::NotifyFirst && first {
                        if let Some(f) = listener
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .as_ref()
                        {
                            f();
                        }
                        continue;
                    }
                    cleanup_and_exit(signo);
                }
            })
            .map_err(|source| SignalError { source })?;
        Ok(Self {
            handle,
            thread: Some(thread),
            received,
            on_first,
        })
    }

    /// With [`OnSignal::NotifyFirst`]: calls `f` on the watcher thread when the first signal
    /// arrives (at once if it already has), so an application blocked in a wait (for example
    /// the recorder's `wait`, ended through its `interrupter`) stops without polling
    /// [`received`](Self::received). Replaces the previous `f`.
    pub fn on_first_signal(&self, f: impl Fn() + Send + 'static) {
        let mut slot = self.on_first.lock().unwrap_or_else(PoisonError::into_inner);
        // Under the lock: a signal arriving now either finds `f` or is seen here.
        if self.received().is_some() {
            f();
        }
        *slot = Some(Box::new(f));
    }

    /// The first signal received, if any.
    pub fn received(&self) -> Option<i32> {
        match self.received.load(Ordering::SeqCst) {
            0 => None,
            signo => Some(signo),
        }
    }

    /// The exit status the application should use after stopping for the signal received
    /// (`128 + signo`), if any.
    pub fn exit_code(&self) -> Option<i32> {
        self.received().map(exit_code)
    }
}

impl Drop for SignalCleanup {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Removes every temporary file of the process and exits with `128 + signo`. What the watcher
/// thread does; also usable by an application that handles signals itself.
pub fn cleanup_and_exit(signo: i32) -> ! {
    let report = tempfiles::cleanup_all();
    if !report.files.is_empty() || !report.failures.is_empty() {
        tracing::info!(signal = signo, "{report}");
    }
    std::process::exit(exit_code(signo))
}

/// Chains a panic hook that removes every temporary file of the process
/// ([`tempfiles::cleanup_after_panic`]) when the panic ends the process — a panic on the main
/// thread, or any panic in a build with `panic = "abort"` — then runs the hook that was
/// installed before (the default one prints the panic message).
///
/// A panic on another thread of an unwinding build leaves the files alone: the process goes
/// on (the unwinding drops that thread's own files), and removing the take being recorded by
/// another thread would lose it.
pub fn install_panic_cleanup() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if panic_ends_process() {
            tempfiles::cleanup_after_panic();
        }
        previous(info);
    }));
}

/// Whether the panic now being raised on this thread will end the process.
fn panic_ends_process() -> bool {
    cfg!(panic = "abort") || std::thread::current().name() == Some("main")
}
