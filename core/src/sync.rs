//! Atomics used by the lock-free parts: `portable-atomic` normally (so targets without
//! compare-and-swap work through a critical section), `loom`'s model-checked ones under
//! `--cfg loom`. Nothing else in the crate names an atomic type directly.
//!
//! [`SlotTracker`] lets loom see the ring's accesses to its caller-supplied storage: the
//! storage is plain memory reached through a raw pointer, which loom cannot observe, so under
//! `--cfg loom` every slot gets a shadow `loom::cell::UnsafeCell<()>` that is touched (read or
//! written) exactly where the ring touches the real slot. Loom then reports any access that is
//! not ordered by the ring's atomics as a data race. Outside loom the tracker is a zero-sized
//! no-op that compiles away.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use portable_atomic::{AtomicUsize, Ordering};

#[cfg(loom)]
extern crate std;

/// Shadow of the ring's slots for loom's data-race detection (see the module docs).
#[cfg(loom)]
pub(crate) struct SlotTracker {
    slots: std::vec::Vec<loom::cell::UnsafeCell<()>>,
}

#[cfg(loom)]
impl SlotTracker {
    /// One shadow cell per slot.
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            slots: (0..slots)
                .map(|_| loom::cell::UnsafeCell::new(()))
                .collect(),
        }
    }

    /// Records a read of slots `start..start + len` (no wrap-around).
    pub(crate) fn read(&self, start: usize, len: usize) {
        for cell in self.slots.iter().skip(start).take(len) {
            cell.with(|_| ());
        }
    }

    /// Records a write of slots `start..start + len` (no wrap-around).
    pub(crate) fn write(&self, start: usize, len: usize) {
        for cell in self.slots.iter().skip(start).take(len) {
            cell.with_mut(|_| ());
        }
    }
}

/// Outside loom: nothing to track.
#[cfg(not(loom))]
pub(crate) struct SlotTracker;

#[cfg(not(loom))]
impl SlotTracker {
    /// Nothing to allocate.
    #[inline(always)]
    pub(crate) fn new(_slots: usize) -> Self {
        Self
    }

    /// No-op.
    #[inline(always)]
    pub(crate) fn read(&self, _start: usize, _len: usize) {}

    /// No-op.
    #[inline(always)]
    pub(crate) fn write(&self, _start: usize, _len: usize) {}
}
