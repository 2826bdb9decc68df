//! What a source and the recorder share while it runs: the end of the input, a failure, lost
//! audio, and the wake-ups between the source's thread and the worker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;

use crate::error::Error;
use crate::units::lock;

/// What a source and the recorder's worker share while it runs: the end of the input or a
/// failure, and for a non-real-time source (file, synthetic) the wake-ups between its thread
/// and the worker, so neither polls: the source wakes the worker when it pushed, the worker wakes
/// the source when it made room. A real-time source never calls those (waking a thread may be a
/// syscall, which a device callback must not make): the worker then polls the ring.
#[derive(Default)]
pub struct SourceStatus {
    finished: AtomicBool,
    error: Mutex<Option<Error>>,
    /// The thread draining the ring.
    consumer: Mutex<Option<Thread>>,
    /// The thread of a non-real-time source, waiting for room in the ring.
    producer: Mutex<Option<Thread>>,
    /// Called when the source counts lost audio (the recorder ends its waits with it).
    on_loss: Mutex<Option<LossHook>>,
}

/// What [`SourceStatus::note_loss`] calls.
type LossHook = Box<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for SourceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceStatus")
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

impl SourceStatus {
    /// A fresh status: running, no error.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The source has delivered everything it will (end of file, end of the synthetic take).
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        self.wake_consumer();
    }

    /// The calling thread drains the ring: [`wake_consumer`](Self::wake_consumer) unparks it.
    pub fn set_consumer(&self) {
        *lock(&self.consumer) = Some(std::thread::current());
    }

    /// The calling thread feeds the ring: [`wake_producer`](Self::wake_producer) unparks it.
    pub fn set_producer(&self) {
        *lock(&self.producer) = Some(std::thread::current());
    }

    /// Wakes the consumer (if parked): there is something new in the ring. Not from a real-time
    /// callback.
    pub fn wake_consumer(&self) {
        wake(&self.consumer);
    }

    /// Wakes the producer (if parked): there is room in the ring.
    pub fn wake_producer(&self) {
        wake(&self.producer);
    }

    /// The source failed; it delivers nothing more. The first error is kept.
    pub fn fail(&self, error: Error) {
        let mut slot = lock(&self.error);
        if slot.is_none() {
            *slot = Some(error);
        }
        drop(slot);
        self.finish();
    }

    /// Has [`note_loss`](Self::note_loss) call `hook` (replacing an earlier one): the recorder
    /// wakes its waiter with it, so a warning needs no thread polling the counters.
    pub fn on_loss(&self, hook: impl Fn() + Send + Sync + 'static) {
        *lock(&self.on_loss) = Some(Box::new(hook));
    }

    /// The source counted lost audio (more than it had before): tells whoever asked
    /// ([`on_loss`](Self::on_loss)). Not from a real-time callback.
    pub fn note_loss(&self) {
        if let Some(hook) = &*lock(&self.on_loss) {
            hook();
        }
    }

    /// Whether the source is done (finished or failed).
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// The failure, if any (taken: reported once).
    pub fn take_error(&self) -> Option<Error> {
        lock(&self.error).take()
    }
}

/// Unparks the thread in `slot`, if any: an uncontended lock, and an atomic swap unless that
/// thread is parked (a syscall only then).
fn wake(slot: &Mutex<Option<Thread>>) {
    if let Some(t) = &*lock(slot) {
        t.unpark();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::SourceStatus;

    #[test]
    fn a_noted_loss_reaches_the_hook_each_time() {
        let status = SourceStatus::new();
        status.note_loss(); // no hook yet: nothing happens
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        status.on_loss(move || {
            seen.fetch_add(1, Ordering::Relaxed);
        });
        status.note_loss();
        status.note_loss();
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }
}
