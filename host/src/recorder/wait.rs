//! Waiting for a take to complete, and ending a wait early from another thread.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::{Recorder, Shared};
use crate::units::lock;

impl Recorder {
    /// Waits until the take is complete — the `limit_frames` were captured, or the source ran
    /// out (end of file) or failed — or `timeout` passed, or a [`WaitInterrupter`] cut the
    /// wait short, or the source counted lost audio (see [`source_stats`](Self::source_stats)).
    /// Returns whether it is complete.
    pub fn wait(&self, timeout: Duration) -> bool {
        let shared = &self.shared;
        let done = lock(&shared.done);
        let (done, _) = shared
            .done_cv
            .wait_timeout_while(done, timeout, |d| {
                !*d && !shared.interrupted.load(Ordering::Relaxed)
            })
            .unwrap_or_else(PoisonError::into_inner);
        shared.interrupted.store(false, Ordering::Relaxed);
        *done
    }

    /// A handle another thread (a signal watcher, a push-to-talk release) uses to make a
    /// [`wait`](Self::wait) return early, so the waiting thread need not wake up periodically
    /// to look for a reason to stop.
    ///
    /// ```
    /// use std::time::Duration;
    /// use w4l::prelude::*;
    /// use w4l::source::Synthetic;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let temp = w4l::tempfiles::ResourceManager::open(dir.path().join("w4l"))?;
    /// // An hour of audio, in real time.
    /// let session = Dictation::new()
    ///     .source(Box::new(Synthetic::new(16_000, 1, 7, 3_600 * 16_000, true)))
    ///     # .temp_files(temp)
    ///     .start()?;
    /// let interrupter = session.recorder().interrupter();
    /// std::thread::spawn(move || interrupter.interrupt()); // a key released, a signal...
    /// // Returns as soon as the other thread interrupts it, not in an hour.
    /// assert!(!session.recorder().wait(Duration::from_secs(3_600)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn interrupter(&self) -> WaitInterrupter {
        WaitInterrupter(self.shared.clone())
    }

    /// Whether the take is complete (see [`wait`](Self::wait)).
    pub fn is_complete(&self) -> bool {
        *lock(&self.shared.done)
    }
}

/// Makes the current (or else the next) [`Recorder::wait`] return early; from
/// [`Recorder::interrupter`]. `Clone`, `Send` and `Sync`.
#[derive(Clone)]
pub struct WaitInterrupter(Arc<Shared>);

impl WaitInterrupter {
    /// Ends the current wait, or the next one if nobody waits now.
    pub fn interrupt(&self) {
        let _done = lock(&self.0.done);
        self.0.interrupted.store(true, Ordering::Relaxed);
        self.0.done_cv.notify_all();
    }
}

impl std::fmt::Debug for WaitInterrupter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WaitInterrupter")
    }
}
