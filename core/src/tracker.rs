//! Fixed-capacity registry of tracked buffers, with victim selection for cleanup.
//!
//! The earlier design's `AudioBufferTracker` "cleaned up" by forgetting list entries while
//! the memory stayed allocated. Here every entry **owns** its payload — normally the
//! buffer's [`Reservation`] (or a tuple of the reservation and the buffer itself) — so
//! releasing an entry and dropping it frees the memory for real.
//!
//! The tracker holds at most `N` entries in place (a [`heapless::Vec`], no heap). Time is an
//! input: creation times and "now" are milliseconds on whatever clock the caller uses.
//! Releasing an entry moves the last one into its place (a swap-remove written without
//! `Vec::swap_remove`'s bounds assertion, so no panic branch), hence [`Tracker::iter`]'s order
//! is unspecified; every result that picks an entry breaks ties by id and does not depend on it.
//!
//! ```
//! use w4l_core::accountant::{Accountant, Category};
//! use w4l_core::tracker::{BufferId, Order, Priority, Tracker};
//!
//! let acc = Accountant::new(10_000, 0);
//! let mut tracker: Tracker<_, 8> = Tracker::new();
//! for (id, bytes, at) in [(1, 1000, 0), (2, 3000, 10), (3, 2000, 20)] {
//!     let r = acc.try_reserve(Category::Audio, bytes).unwrap();
//!     tracker.register(BufferId(id), at, Priority::Normal, r).unwrap();
//! }
//!
//! // Free at least 2500 bytes, oldest first: buffers 1 and 2.
//! let mut victims = [BufferId(0); 8];
//! let picked = tracker.select_victims(Order::OldestFirst, false, 2500, &mut victims);
//! assert_eq!((&victims[..picked.count], picked.bytes), (&[BufferId(1), BufferId(2)][..], 4000));
//! for id in &victims[..picked.count] {
//!     drop(tracker.release(*id).unwrap()); // frees the reservation
//! }
//! assert_eq!(acc.memory_used(), 2000);
//! ```

use core::fmt;
use core::ops::Deref;

use heapless::Vec;

use crate::accountant::{Accountant, Reservation};

/// Something that holds a number of bytes: what a [`Tracker`] entry owns.
pub trait Tracked {
    /// Bytes held.
    fn tracked_bytes(&self) -> usize;
}

impl<A: Deref<Target = Accountant>> Tracked for Reservation<A> {
    fn tracked_bytes(&self) -> usize {
        self.bytes()
    }
}

/// A plain byte count (for bookkeeping without an accountant, and tests).
impl Tracked for usize {
    fn tracked_bytes(&self) -> usize {
        *self
    }
}

/// A tracked value together with anything else the entry should own (e.g. the buffer
/// itself): the bytes are the first element's.
impl<T: Tracked, U> Tracked for (T, U) {
    fn tracked_bytes(&self) -> usize {
        self.0.tracked_bytes()
    }
}

/// Identifier of a tracked buffer, chosen by the caller; unique within a tracker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BufferId(pub u64);

impl fmt::Display for BufferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// How much a buffer is worth keeping; with `lowest_priority_first` victims are taken
/// from [`Priority::Low`] up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Priority {
    /// Cheap to lose (e.g. already transcribed, kept for replay).
    Low,
    /// The usual.
    #[default]
    Normal,
    /// Expensive to lose (e.g. not yet transcribed).
    High,
}

/// Order in which [`Tracker::select_victims`] picks buffers. Ties go to the smaller id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Order {
    /// Earliest `created_ms` first.
    OldestFirst,
    /// Most bytes first (fewest buffers to free).
    LargestFirst,
}

/// One tracked buffer: metadata plus the payload it owns.
#[derive(Debug)]
pub struct Entry<P> {
    /// The caller's id.
    pub id: BufferId,
    /// When the buffer was created, in the caller's milliseconds.
    pub created_ms: u64,
    /// Its priority.
    pub priority: Priority,
    /// What the entry owns (normally the reservation); dropping it frees the memory.
    pub payload: P,
}

impl<P: Tracked> Entry<P> {
    /// Bytes the payload holds.
    pub fn bytes(&self) -> usize {
        self.payload.tracked_bytes()
    }
}

impl<P> Entry<P> {
    /// Milliseconds since creation at `now_ms` (0 if `now_ms` is earlier).
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.created_ms)
    }
}

/// Why [`Tracker::register`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RegisterErrorKind {
    /// All `capacity` slots are taken.
    Full {
        /// The tracker's capacity `N`.
        capacity: usize,
    },
    /// The id is already registered.
    Duplicate(BufferId),
}

/// [`Tracker::register`] refused; the payload is handed back unchanged.
#[derive(Debug)]
pub struct RegisterError<P> {
    /// Why.
    pub kind: RegisterErrorKind,
    /// The id that was asked for.
    pub id: BufferId,
    /// The payload, back to the caller (dropping it frees its reservation).
    pub payload: P,
}

impl<P> fmt::Display for RegisterError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RegisterErrorKind::Full { capacity } => write!(
                f,
                "cannot track buffer {}: all {capacity} slots are taken; release a buffer first \
                 or build the tracker with a larger capacity",
                self.id
            ),
            RegisterErrorKind::Duplicate(id) => write!(
                f,
                "cannot track buffer {id}: that id is already tracked; release it first or use \
                 another id"
            ),
        }
    }
}

impl<P: fmt::Debug> core::error::Error for RegisterError<P> {}

#[cfg(feature = "defmt")]
impl<P> defmt::Format for RegisterError<P> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "RegisterError {{ kind: {}, id: {} }}",
            self.kind,
            self.id
        );
    }
}

/// [`Tracker::release`] was asked for an id it does not track.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UnknownBuffer {
    /// The id asked for.
    pub id: BufferId,
    /// How many buffers are tracked.
    pub tracked: usize,
}

impl fmt::Display for UnknownBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no tracked buffer {} among the {} tracked; pass an id that was registered and not yet released",
            self.id, self.tracked
        )
    }
}

impl core::error::Error for UnknownBuffer {}

/// Result of [`Tracker::select_victims`]: how many ids were written and the bytes they
/// hold together (less than asked when the tracker or the output slice ran out).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Selection {
    /// Ids written to the front of the output slice.
    pub count: usize,
    /// Bytes those buffers hold.
    pub bytes: usize,
}

/// Plain summary of a tracker. See [`Tracker::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TrackerStats {
    /// Buffers tracked.
    pub count: usize,
    /// Capacity `N`.
    pub capacity: usize,
    /// Bytes they hold together (saturating).
    pub total_bytes: usize,
    /// `total_bytes / count`, rounded down; 0 when empty.
    pub average_bytes: usize,
    /// The oldest buffer.
    pub oldest: Option<BufferId>,
    /// Its age at the `now_ms` given; 0 when empty.
    pub oldest_age_ms: u64,
    /// The largest buffer.
    pub largest: Option<BufferId>,
}

/// Fixed-capacity registry of up to `N` tracked buffers, each owning its payload `P`.
///
/// `Tracker::new` is a `const fn`. Lookups, totals and victim selection are linear
/// scans over the entries (selection is `O(N²)`): meant for tens of buffers.
#[derive(Debug)]
pub struct Tracker<P, const N: usize> {
    /// In no particular order: releasing one moves the last into its place.
    entries: Vec<Entry<P>, N>,
}

impl<P, const N: usize> Default for Tracker<P, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P, const N: usize> Tracker<P, N> {
    /// An empty tracker.
    pub const fn new() -> Self {
        Tracker {
            entries: Vec::new(),
        }
    }

    /// Buffers tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `true` when all `N` slots are taken.
    pub fn is_full(&self) -> bool {
        self.entries.is_full()
    }

    /// The capacity `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Starts tracking buffer `id`, created at `created_ms`, owning `payload`.
    ///
    /// # Errors
    ///
    /// [`RegisterError`] (with the payload handed back) when all `N` slots are taken or
    /// `id` is already tracked.
    ///
    /// ```
    /// use w4l_core::tracker::{BufferId, Priority, RegisterErrorKind, Tracker};
    /// let mut t: Tracker<usize, 1> = Tracker::new();
    /// t.register(BufferId(1), 0, Priority::Normal, 10).unwrap();
    /// let err = t.register(BufferId(1), 0, Priority::Normal, 20).unwrap_err();
    /// assert_eq!((err.kind, err.payload), (RegisterErrorKind::Duplicate(BufferId(1)), 20));
    /// let err = t.register(BufferId(2), 0, Priority::Normal, 30).unwrap_err();
    /// assert_eq!(err.kind, RegisterErrorKind::Full { capacity: 1 });
    /// ```
    pub fn register(
        &mut self,
        id: BufferId,
        created_ms: u64,
        priority: Priority,
        payload: P,
    ) -> Result<(), RegisterError<P>> {
        let (kind, payload) = if self.contains(id) {
            (RegisterErrorKind::Duplicate(id), payload)
        } else {
            let entry = Entry {
                id,
                created_ms,
                priority,
                payload,
            };
            match self.entries.push(entry) {
                Ok(()) => return Ok(()),
                Err(entry) => (RegisterErrorKind::Full { capacity: N }, entry.payload),
            }
        };
        Err(RegisterError { kind, id, payload })
    }

    /// Stops tracking `id` and hands its entry back; dropping the entry (or its payload)
    /// frees the reservation.
    ///
    /// # Errors
    ///
    /// [`UnknownBuffer`] when `id` is not tracked.
    pub fn release(&mut self, id: BufferId) -> Result<Entry<P>, UnknownBuffer> {
        let unknown = UnknownBuffer {
            id,
            tracked: self.len(),
        };
        let index = self.position(id).ok_or(unknown)?;
        // Swap-remove without a panic path: swap the released entry with the last, pop it.
        if let Some((released, rest)) = self
            .entries
            .get_mut(index..)
            .and_then(|t| t.split_first_mut())
            && let Some(last) = rest.last_mut()
        {
            core::mem::swap(released, last);
        }
        self.entries.pop().ok_or(unknown)
    }

    /// The entry of `id`, if tracked.
    pub fn get(&self, id: BufferId) -> Option<&Entry<P>> {
        self.iter().find(|e| e.id == id)
    }

    /// `true` when `id` is tracked.
    pub fn contains(&self, id: BufferId) -> bool {
        self.position(id).is_some()
    }

    /// Changes the priority of `id`.
    ///
    /// # Errors
    ///
    /// [`UnknownBuffer`] when `id` is not tracked.
    pub fn set_priority(&mut self, id: BufferId, priority: Priority) -> Result<(), UnknownBuffer> {
        let tracked = self.len();
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.id == id)
            .ok_or(UnknownBuffer { id, tracked })?;
        entry.priority = priority;
        Ok(())
    }

    /// The tracked entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry<P>> {
        self.entries.iter()
    }

    /// The oldest entry (earliest `created_ms`, then smallest id).
    pub fn oldest(&self) -> Option<&Entry<P>> {
        self.iter().min_by_key(|e| (e.created_ms, e.id))
    }

    fn position(&self, id: BufferId) -> Option<usize> {
        self.entries.iter().position(|e| e.id == id)
    }
}

impl<P: Tracked, const N: usize> Tracker<P, N> {
    /// Bytes all tracked payloads hold together (saturating at `usize::MAX`).
    pub fn total_bytes(&self) -> usize {
        self.iter()
            .fold(0usize, |sum, e| sum.saturating_add(e.bytes()))
    }

    /// Average bytes per buffer (rounded down), `None` when empty.
    pub fn average_bytes(&self) -> Option<usize> {
        self.total_bytes().checked_div(self.len())
    }

    /// The largest entry (most bytes, then smallest id).
    pub fn largest(&self) -> Option<&Entry<P>> {
        self.iter()
            .min_by_key(|e| (core::cmp::Reverse(e.bytes()), e.id))
    }

    /// A plain summary at `now_ms`.
    pub fn stats(&self, now_ms: u64) -> TrackerStats {
        let oldest = self.oldest();
        TrackerStats {
            count: self.len(),
            capacity: N,
            total_bytes: self.total_bytes(),
            average_bytes: self.average_bytes().unwrap_or(0),
            oldest: oldest.map(|e| e.id),
            oldest_age_ms: oldest.map_or(0, |e| e.age_ms(now_ms)),
            largest: self.largest().map(|e| e.id),
        }
    }

    /// Picks buffers to free until they cover `bytes`, writing their ids to the front of
    /// `out` in the order they should go; returns how many and the bytes they hold.
    ///
    /// Buffers are taken in `order`; with `lowest_priority_first` all [`Priority::Low`]
    /// buffers come before any [`Priority::Normal`], and those before
    /// [`Priority::High`]. Ties go to the smaller id. Stops once the picked buffers
    /// cover `bytes`, when `out` is full, or when no buffer is left (then
    /// [`Selection::bytes`] is below `bytes`). Nothing is released: pass the ids to
    /// [`release`](Self::release).
    ///
    /// ```
    /// use w4l_core::tracker::{BufferId, Order, Priority, Tracker};
    /// let mut t: Tracker<usize, 4> = Tracker::new();
    /// t.register(BufferId(1), 0, Priority::High, 500).unwrap();
    /// t.register(BufferId(2), 1, Priority::Low, 100).unwrap();
    /// t.register(BufferId(3), 2, Priority::Low, 300).unwrap();
    /// let mut out = [BufferId(0); 4];
    ///
    /// let s = t.select_victims(Order::LargestFirst, false, 600, &mut out);
    /// assert_eq!(&out[..s.count], &[BufferId(1), BufferId(3)]);
    ///
    /// let s = t.select_victims(Order::LargestFirst, true, 600, &mut out);
    /// assert_eq!(&out[..s.count], &[BufferId(3), BufferId(2), BufferId(1)]);
    /// assert_eq!(s.bytes, 900);
    /// ```
    pub fn select_victims(
        &self,
        order: Order,
        lowest_priority_first: bool,
        bytes: usize,
        out: &mut [BufferId],
    ) -> Selection {
        let mut picked = [false; N];
        let mut selection = Selection::default();
        // Sort key, smallest first: priority (if asked), then age or size (larger first:
        // bitwise not reverses the order), then id.
        let key = |e: &Entry<P>| {
            let priority = if lowest_priority_first {
                e.priority
            } else {
                Priority::Low
            };
            let rank = match order {
                Order::OldestFirst => e.created_ms,
                Order::LargestFirst => !(e.bytes() as u64),
            };
            (priority, rank, e.id)
        };
        for slot_out in out.iter_mut() {
            if selection.bytes >= bytes {
                break;
            }
            let mut best = None;
            for (i, (entry, taken)) in self.entries.iter().zip(picked.iter()).enumerate() {
                if !*taken && best.is_none_or(|(_, b)| key(entry) < key(b)) {
                    best = Some((i, entry));
                }
            }
            let Some((index, entry)) = best else {
                break;
            };
            if let Some(flag) = picked.get_mut(index) {
                *flag = true;
            }
            *slot_out = entry.id;
            selection.count += 1;
            selection.bytes = selection.bytes.saturating_add(entry.bytes());
        }
        selection
    }
}
