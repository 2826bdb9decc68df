//! The buffers w4l and its app hold, registered with the core's [`Tracker`] (the earlier
//! design's `AudioBufferTracker`): each with its name, bytes (fixed, or live for one that grows
//! and shrinks, like the take's cache), priority and age. [`Buffers::info`] is the earlier
//! design's `get_buffer_info()`; under memory pressure the recorder asks
//! [`Buffers::victims`] which buffers to act on (priority, then age), so the policy's actions
//! and the tracker agree. Sized for tens of entries: it is not a per-block index.
//!
//! ```
//! use std::sync::Arc;
//! use w4l::core::tracker::Priority;
//! use w4l::memory::buffers::Buffers;
//!
//! let buffers = Arc::new(Buffers::new());
//! let features = buffers.track("features", 4 << 20, Priority::Normal)?;
//! assert_eq!((buffers.info().count, buffers.info().bytes), (1, 4 << 20));
//! drop(features); // released with its handle
//! assert_eq!(buffers.info().count, 0);
//! # Ok::<(), w4l::error::Error>(())
//! ```

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use w4l_core::tracker::{BufferId, Order, Priority, Tracked, Tracker};

use crate::error::{Error, Result};
use crate::units::lock;

/// Most buffers tracked at once.
pub const CAPACITY: usize = 64;

/// What an entry owns: its name and its bytes (read live).
#[derive(Debug)]
struct Held {
    name: String,
    bytes: Arc<AtomicUsize>,
}

impl Tracked for Held {
    fn tracked_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// The registry of a process's (or a session's) buffers.
#[derive(Debug)]
pub struct Buffers {
    tracker: Mutex<Tracker<Held, CAPACITY>>,
    next_id: AtomicU64,
    started: Instant,
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

/// One buffer as [`Buffers::info`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BufferEntry {
    /// What it is (`ring`, `window`, `take cache`, an app's name).
    pub name: String,
    /// Bytes it holds now.
    pub bytes: u64,
    /// How much it is worth keeping.
    #[serde(serialize_with = "priority_name")]
    pub priority: Priority,
    /// Milliseconds since it was registered.
    pub age_ms: u64,
}

fn priority_name<S: serde::Serializer>(p: &Priority, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(match p {
        Priority::Low => "low",
        Priority::Normal => "normal",
        Priority::High => "high",
    })
}

/// Every buffer tracked, and the totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BufferInfo {
    /// Buffers tracked.
    pub count: u64,
    /// Bytes they hold together.
    pub bytes: u64,
    /// Each of them, oldest first.
    pub entries: Vec<BufferEntry>,
}

/// A tracked buffer: released from the registry when dropped. Its bytes can change
/// ([`set_bytes`](Self::set_bytes)) for a buffer that grows and shrinks.
#[derive(Debug)]
pub struct BufferHandle {
    buffers: Arc<Buffers>,
    id: BufferId,
    bytes: Arc<AtomicUsize>,
}

impl BufferHandle {
    /// The buffer's id in the registry.
    pub fn id(&self) -> BufferId {
        self.id
    }

    /// The buffer holds `bytes` now.
    pub fn set_bytes(&self, bytes: usize) {
        self.bytes.store(bytes, Ordering::Relaxed);
    }
}

impl Drop for BufferHandle {
    fn drop(&mut self) {
        let _ = lock(&self.buffers.tracker).release(self.id);
    }
}

impl Buffers {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            tracker: Mutex::new(Tracker::new()),
            next_id: AtomicU64::new(1),
            started: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Tracks a buffer of `bytes` called `name` until the handle is dropped.
    ///
    /// # Errors
    ///
    /// The registry is full ([`CAPACITY`] buffers).
    pub fn track(
        self: &Arc<Self>,
        name: impl Into<String>,
        bytes: usize,
        priority: Priority,
    ) -> Result<BufferHandle> {
        let id = BufferId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let bytes = Arc::new(AtomicUsize::new(bytes));
        let held = Held {
            name: name.into(),
            bytes: bytes.clone(),
        };
        lock(&self.tracker)
            .register(id, self.now_ms(), priority, held)
            .map_err(|e| {
                Error::runtime(
                    format!("cannot track the buffer {}: {e}", e.payload.name),
                    "release buffers that are no longer needed",
                )
            })?;
        Ok(BufferHandle {
            buffers: self.clone(),
            id,
            bytes,
        })
    }

    /// Every buffer tracked, oldest first, and the totals.
    pub fn info(&self) -> BufferInfo {
        let now = self.now_ms();
        let tracker = lock(&self.tracker);
        let mut entries: Vec<BufferEntry> = tracker
            .iter()
            .map(|e| BufferEntry {
                name: e.payload.name.clone(),
                bytes: e.bytes() as u64,
                priority: e.priority,
                age_ms: e.age_ms(now),
            })
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.age_ms));
        BufferInfo {
            count: entries.len() as u64,
            bytes: tracker.total_bytes() as u64,
            entries,
        }
    }

    /// The buffers to act on to free `bytes`, among those `eligible` says can be freed: lowest
    /// priority first, then oldest first (the tracker's choice). Returns their ids and names.
    pub fn victims(
        &self,
        bytes: usize,
        eligible: impl Fn(BufferId) -> bool,
    ) -> Vec<(BufferId, String)> {
        let tracker = lock(&self.tracker);
        let mut out = [BufferId(0); CAPACITY];
        let picked = tracker.select_victims(Order::OldestFirst, true, usize::MAX, &mut out);
        let mut freed = 0usize;
        let mut victims = Vec::new();
        for id in out.iter().take(picked.count) {
            if freed >= bytes.max(1) {
                break;
            }
            if !eligible(*id) {
                continue;
            }
            if let Some(entry) = tracker.get(*id) {
                freed += entry.bytes();
                victims.push((*id, entry.payload.name.clone()));
            }
        }
        victims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn victims_by_priority_then_age_among_the_eligible() {
        let buffers = Arc::new(Buffers::new());
        let ring = buffers.track("ring", 1000, Priority::High).expect("track");
        let cache = buffers
            .track("take cache", 0, Priority::Low)
            .expect("track");
        let model = buffers
            .track("model", 5000, Priority::Normal)
            .expect("track");
        cache.set_bytes(3000);
        let info = buffers.info();
        assert_eq!((info.count, info.bytes), (3, 9000));
        // The cache first (low priority), then the model; the ring is not eligible.
        let all = buffers.victims(6000, |id| id != ring.id());
        let names: Vec<&str> = all.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["take cache", "model"]);
        // Enough with the cache alone.
        let some = buffers.victims(2000, |_| true);
        assert_eq!(some, vec![(cache.id(), "take cache".to_owned())]);
        drop(model);
        assert_eq!(buffers.info().count, 2);
    }
}
