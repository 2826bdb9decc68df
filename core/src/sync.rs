//! Atomics used by the lock-free parts: `portable-atomic` normally (so targets without
//! compare-and-swap work through a critical section), `loom`'s model-checked ones under
//! `--cfg loom`. Nothing else in the crate names an atomic type directly.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use portable_atomic::{AtomicUsize, Ordering};
