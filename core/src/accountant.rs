//! Budget-based memory accountant with reservations.
//!
//! The earlier design had a "memory limit" that was checked after the fact. Here memory is
//! *reserved* before it is used: [`Accountant::try_reserve`] either hands out a
//! [`Reservation`] for the bytes or refuses with a [`ReserveError`] that says what was
//! asked, what is available and who holds the rest. A reservation gives its bytes back
//! exactly once, when it is dropped (or [`Reservation::release`]d).
//!
//! # Budgets and categories
//!
//! * One **memory budget** shared by [`Category::Audio`], [`Category::Model`] and
//!   [`Category::Other`].
//! * A separate **disk budget** for [`Category::Disk`] (spill and temporary files); disk
//!   bytes never count against the memory budget.
//! * Optional **per-category limits** on top ([`Accountant::with_limit`]).
//!
//! # Concurrency
//!
//! The accountant is lock-free: every figure is an atomic, updated with compare-and-swap
//! loops or single read-modify-writes. The memory total is raised with a CAS that refuses
//! to pass the budget, so the budget is never exceeded, not even for an instant under
//! contention. A category limit is checked after the total was charged; when it refuses,
//! the total is rolled back. In that instant another thread can see the total higher than
//! the sum of the categories and be refused although the budget would have fit it: the
//! accountant errs on the safe side. A [`Figures`] snapshot taken while other threads
//! reserve is not one atomic picture (each figure is read on its own); at quiescence every
//! figure is exact.
//!
//! A reserve + release round trip costs four atomic read-modify-writes: a CAS on the total
//! and one on the category going up, one add on the category and one on the total going
//! down. Each category keeps its bytes and the low bits of its granted and ended counters
//! in one word (bytes in the bits the larger budget needs, the spare bits split between the
//! two counters); a counter's carry out of its low bits costs one more RMW on a separate
//! high-part word, once every 2<sup>k</sup> events (k = half the spare bits: with a 1 GiB
//! budget on a 64-bit host, once per 2<sup>16</sup> reservations). With budgets that leave
//! no spare bits (near `usize::MAX`), every event takes that extra RMW, as all of them did
//! before.
//!
//! # Byte quantities
//!
//! Bytes are `usize`. On 32-bit firmware budgets are therefore below 4 GiB, which is
//! plenty for a few KiB of RAM; the host is 64-bit. Reservation and refusal *counters*
//! are `usize` too and wrap after `usize::MAX` events (4 billion on 32-bit firmware); the
//! live count is their difference and stays exact across a wrap.
//!
//! # Example
//!
//! ```
//! use w4l_core::accountant::{Accountant, Category};
//!
//! // 4 KiB of memory, 1 KiB of it at most for audio; 8 KiB of disk.
//! static ACCOUNTANT: Accountant = Accountant::new(4096, 8192).with_limit(Category::Audio, 1024);
//!
//! let mut buffer = ACCOUNTANT.try_reserve(Category::Audio, 512)?;
//! buffer.grow(256)?;
//! assert_eq!(ACCOUNTANT.used(Category::Audio), 768);
//!
//! // The audio limit refuses, and says who holds the memory.
//! let err = ACCOUNTANT.try_reserve(Category::Audio, 512).unwrap_err();
//! assert_eq!(err.available, 256);
//! assert_eq!(err.holders.largest().map(|h| h.category), Some(Category::Audio));
//!
//! drop(buffer);
//! assert_eq!(ACCOUNTANT.memory_used(), 0);
//! # Ok::<(), w4l_core::accountant::ReserveError>(())
//! ```

use core::fmt;
use core::ops::Deref;

use crate::sync::{AtomicUsize, Ordering};

/// What a reservation is for. The first three share the memory budget; [`Category::Disk`]
/// has a budget of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Category {
    /// Audio buffers (capture, windows, chunks awaiting transcription).
    Audio,
    /// The speech model (weights and inference state).
    Model,
    /// Everything else held in memory.
    Other,
    /// Spill and temporary files on disk; counted against the disk budget, not memory.
    Disk,
}

/// `array[category]`, one slot per category. The index is below 4, so `get` always
/// succeeds and compiles to plain address arithmetic (the core must not contain a panicking
/// index; the fallback is never taken).
fn slot<T>(array: &[T; 4], category: Category) -> &T {
    array.get(category.index()).unwrap_or(&array[0])
}

/// `&mut array[category]`, as a `match` so that it stays `const` (every arm's index is a
/// constant below 4: nothing can fail).
const fn slot_mut<T>(array: &mut [T; 4], category: Category) -> &mut T {
    match category {
        Category::Audio => &mut array[0],
        Category::Model => &mut array[1],
        Category::Other => &mut array[2],
        Category::Disk => &mut array[3],
    }
}

impl Category {
    /// Every category, in [`index`](Category::index) order.
    pub const ALL: [Category; 4] = [
        Category::Audio,
        Category::Model,
        Category::Other,
        Category::Disk,
    ];

    /// The categories that share the memory budget.
    pub const MEMORY: [Category; 3] = [Category::Audio, Category::Model, Category::Other];

    /// Position of the category in [`Category::ALL`] and in [`Figures::categories`].
    pub const fn index(self) -> usize {
        match self {
            Category::Audio => 0,
            Category::Model => 1,
            Category::Other => 2,
            Category::Disk => 3,
        }
    }

    /// `true` for the categories counted against the memory budget.
    pub const fn is_memory(self) -> bool {
        !matches!(self, Category::Disk)
    }

    /// Lower-case name, as used in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Category::Audio => "audio",
            Category::Model => "model",
            Category::Other => "other",
            Category::Disk => "disk",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which bound refused a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Bound {
    /// The memory budget shared by the memory categories.
    MemoryBudget,
    /// The disk budget of [`Category::Disk`].
    DiskBudget,
    /// The per-category limit set with [`Accountant::with_limit`].
    CategoryLimit,
}

/// Whether a refused request was a new reservation or the growth of an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ReserveOp {
    /// [`Accountant::try_reserve`] / [`Accountant::try_reserve_in`].
    Reserve,
    /// [`Reservation::grow`].
    Grow,
}

/// Usage of one category at the time of a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Holder {
    /// The category.
    pub category: Category,
    /// Bytes it holds.
    pub bytes: usize,
    /// Live reservations it holds them in.
    pub live: usize,
}

/// The categories holding a budget, largest first: "who is using the memory?".
///
/// For a memory refusal these are the three memory categories; for a disk refusal, the
/// disk category alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Holders {
    entries: [Holder; 3],
    len: usize,
}

impl Holders {
    /// The holders, largest first (ties in category order).
    pub fn as_slice(&self) -> &[Holder] {
        self.entries.get(..self.len).unwrap_or(&[])
    }

    /// Iterates over the holders, largest first.
    pub fn iter(&self) -> core::slice::Iter<'_, Holder> {
        self.as_slice().iter()
    }

    /// The largest holder (`None` only if there are no categories to list).
    pub fn largest(&self) -> Option<&Holder> {
        self.as_slice().first()
    }
}

impl fmt::Display for Holders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, h) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} {} B in {}", h.category, h.bytes, h.live)?;
        }
        Ok(())
    }
}

/// A reservation (or growth) was refused.
///
/// Says what was asked ([`requested`](Self::requested) bytes of
/// [`category`](Self::category)), what is available under the bound that refused, and
/// who holds the rest ([`holders`](Self::holders), largest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReserveError {
    /// New reservation or growth of an existing one.
    pub op: ReserveOp,
    /// The category asked for.
    pub category: Category,
    /// Bytes asked for (for a growth: the additional bytes).
    pub requested: usize,
    /// Bytes that were still free under the bound that refused.
    pub available: usize,
    /// The bound that refused.
    pub bound: Bound,
    /// The size of that bound in bytes.
    pub limit: usize,
    /// Per-category usage of that bound's pool at the time of the refusal, largest first.
    pub holders: Holders,
}

impl fmt::Display for ReserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let more = match self.op {
            ReserveOp::Reserve => "",
            ReserveOp::Grow => " more",
        };
        write!(
            f,
            "cannot reserve {}{} bytes of {}: {} of the {}-byte ",
            self.requested, more, self.category, self.available, self.limit
        )?;
        match self.bound {
            Bound::MemoryBudget => f.write_str("memory budget")?,
            Bound::DiskBudget => f.write_str("disk budget")?,
            Bound::CategoryLimit => write!(f, "{} limit", self.category)?,
        }
        write!(f, " available; largest holders: {}; ", self.holders)?;
        match self.bound {
            Bound::MemoryBudget => {
                f.write_str("release or shrink reservations, or raise the memory budget")
            }
            Bound::DiskBudget => f.write_str("delete spill files, or raise the disk budget"),
            Bound::CategoryLimit => write!(
                f,
                "release or shrink {} reservations, or raise the {} limit",
                self.category, self.category
            ),
        }
    }
}

impl core::error::Error for ReserveError {}

/// The operation that asked a reservation for more bytes than it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ReduceOp {
    /// [`Reservation::shrink`].
    Shrink,
    /// [`Reservation::split`].
    Split,
}

/// A shrink or split asked for more bytes than the reservation holds; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReduceError {
    /// Shrink or split.
    pub op: ReduceOp,
    /// The category of the reservation.
    pub category: Category,
    /// Bytes asked for.
    pub requested: usize,
    /// Bytes the reservation holds.
    pub held: usize,
}

impl fmt::Display for ReduceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.op {
            ReduceOp::Shrink => "shrink a reservation by",
            ReduceOp::Split => "split off",
        };
        write!(
            f,
            "cannot {verb} {} bytes: the {} reservation holds only {} bytes; ask for at most {} bytes",
            self.requested, self.category, self.held, self.held
        )
    }
}

impl core::error::Error for ReduceError {}

/// Figures of one category in a [`Figures`] snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CategoryFigures {
    /// Bytes held now.
    pub used: usize,
    /// Highest `used` seen.
    pub peak: usize,
    /// The per-category limit, if one was set.
    pub limit: Option<usize>,
    /// Reservations alive now.
    pub live: usize,
    /// Reservations ever granted (new ones and the parts split off).
    pub granted: usize,
    /// Requests refused (new reservations and growths).
    pub refused: usize,
}

/// A plain snapshot of everything the accountant counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Figures {
    /// The memory budget.
    pub memory_budget: usize,
    /// Memory bytes held now (audio + model + other).
    pub memory_used: usize,
    /// Highest `memory_used` seen.
    pub memory_peak: usize,
    /// The disk budget.
    pub disk_budget: usize,
    /// Disk bytes held now.
    pub disk_used: usize,
    /// Highest `disk_used` seen.
    pub disk_peak: usize,
    /// Per category, indexed by [`Category::index`].
    pub categories: [CategoryFigures; 4],
    /// Reservations alive now, all categories.
    pub live: usize,
    /// Reservations ever granted, all categories.
    pub granted: usize,
    /// Requests refused, all categories.
    pub refused: usize,
}

impl Figures {
    /// The figures of one category.
    pub fn category(&self, category: Category) -> &CategoryFigures {
        slot(&self.categories, category)
    }

    /// Memory bytes not yet reserved.
    pub fn memory_available(&self) -> usize {
        self.memory_budget.saturating_sub(self.memory_used)
    }

    /// Disk bytes not yet reserved.
    pub fn disk_available(&self) -> usize {
        self.disk_budget.saturating_sub(self.disk_used)
    }
}

/// Atomic figures of one category.
#[derive(Debug)]
struct Cell {
    /// Bytes held | granted count, low bits | ended count, low bits (top): see [`Layout`].
    word: AtomicUsize,
    peak: AtomicUsize,
    /// Granted count, high part (carries out of the word's granted bits).
    granted_hi: AtomicUsize,
    /// Ended count, high part (carries out of the word's ended bits).
    ended_hi: AtomicUsize,
    refused: AtomicUsize,
}

/// Defines a constructor as `const fn` normally and as a plain `fn` under `cfg(loom)`
/// (loom's atomics have no `const fn new`).
macro_rules! maybe_const_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($args:tt)*) -> $ret:ty $body:block) => {
        #[cfg(not(loom))]
        $(#[$meta])*
        $vis const fn $name($($args)*) -> $ret $body
        #[cfg(loom)]
        $(#[$meta])*
        $vis fn $name($($args)*) -> $ret $body
    };
}

impl Cell {
    maybe_const_fn! {
        fn new() -> Self {
            Cell {
                word: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                granted_hi: AtomicUsize::new(0),
                ended_hi: AtomicUsize::new(0),
                refused: AtomicUsize::new(0),
            }
        }
    }
}

/// Raises `peak` to `value` if it is higher; a plain load when it is not.
#[inline]
fn bump_peak(peak: &AtomicUsize, value: usize) {
    if value > peak.load(Ordering::Relaxed) {
        peak.fetch_max(value, Ordering::Relaxed);
    }
}

/// Raises `counter` by `bytes` unless that would pass `cap`; returns the new value, or
/// the value that refused.
#[inline]
fn try_add_capped(counter: &AtomicUsize, bytes: usize, cap: usize) -> Result<usize, usize> {
    let mut current = counter.load(Ordering::Relaxed);
    loop {
        let new = match current.checked_add(bytes) {
            Some(new) if new <= cap => new,
            _ => return Err(current),
        };
        match counter.compare_exchange_weak(current, new, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return Ok(new),
            Err(seen) => current = seen,
        }
    }
}

/// How a category word packs its figures, from the low bits up: the bytes held (as many
/// bits as the larger budget needs, so they never carry into the next field), the low bits
/// of the granted count, the low bits of the ended count. The bytes never carry (they stay
/// below the larger budget); the granted bits are only changed by CAS, field by field (no
/// carry); the ended bits are on top, so their carry leaves the word. Either counter's
/// wrap-around is added to its high-part word.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Mask of the bytes field.
    used_mask: usize,
    /// Position and (unshifted) mask of the granted bits; mask 0 when there are none.
    g_shift: u32,
    g_mask: usize,
    /// Position and (unshifted) mask of the ended bits; mask 0 when there are none.
    e_shift: u32,
    e_mask: usize,
}

impl Layout {
    /// The layout for byte counts up to `max_bytes`.
    const fn new(max_bytes: usize) -> Self {
        let used_bits = usize::BITS - max_bytes.leading_zeros();
        let spare = usize::BITS - used_bits;
        let g_bits = spare / 2;
        let e_bits = spare - g_bits;
        // Both at most half the word plus one bit: the shifts below stay below BITS.
        let g_mask = (1usize << g_bits) - 1;
        let e_mask = if e_bits == 0 {
            0
        } else {
            (1usize << (e_bits - 1) << 1) - 1
        };
        Layout {
            used_mask: if used_bits == usize::BITS {
                usize::MAX
            } else {
                (1usize << used_bits) - 1
            },
            g_shift: if g_bits == 0 { 0 } else { used_bits },
            g_mask,
            e_shift: if e_bits == 0 { 0 } else { used_bits + g_bits },
            e_mask,
        }
    }

    fn used(&self, word: usize) -> usize {
        word & self.used_mask
    }

    fn granted_lo(&self, word: usize) -> usize {
        (word >> self.g_shift) & self.g_mask
    }

    fn ended_lo(&self, word: usize) -> usize {
        (word >> self.e_shift) & self.e_mask
    }

    /// One in the ended field (0 without one).
    fn ended_one(&self) -> usize {
        if self.e_mask == 0 {
            0
        } else {
            1 << self.e_shift
        }
    }
}

/// The lock-free memory accountant. See the [module documentation](self).
///
/// Build it with [`Accountant::new`] (a `const fn`, so it can be a `static` on firmware)
/// and [`Accountant::with_limit`], or from a [`Budget`](crate::budget::Budget).
#[derive(Debug)]
pub struct Accountant {
    memory_budget: usize,
    disk_budget: usize,
    /// Per-category limit as set (`usize::MAX` = none).
    limits: [usize; 4],
    memory_used: AtomicUsize,
    memory_peak: AtomicUsize,
    layout: Layout,
    cells: [Cell; 4],
}

impl Accountant {
    maybe_const_fn! {
        /// An accountant with `memory_budget` bytes shared by the memory categories and
        /// `disk_budget` bytes for [`Category::Disk`], and no per-category limits.
        ///
        /// `const fn` (except under `cfg(loom)`), so it can initialise a `static`.
        pub fn new(memory_budget: usize, disk_budget: usize) -> Self {
            Accountant {
                memory_budget,
                disk_budget,
                limits: [usize::MAX; 4],
                memory_used: AtomicUsize::new(0),
                memory_peak: AtomicUsize::new(0),
                // A category holds at most its budget (memory: the total holds its bytes
                // first and gives them back last; disk: capped by its budget).
                layout: Layout::new(if memory_budget > disk_budget {
                    memory_budget
                } else {
                    disk_budget
                }),
                cells: [Cell::new(), Cell::new(), Cell::new(), Cell::new()],
            }
        }
    }

    maybe_const_fn! {
        /// Limits `category` to at most `limit` bytes, on top of its budget.
        ///
        /// A limit above the budget has no effect beyond the budget. For
        /// [`Category::Disk`] the effective limit is the smaller of the two.
        #[must_use]
        pub fn with_limit(mut self, category: Category, limit: usize) -> Self {
            *slot_mut(&mut self.limits, category) = limit;
            self
        }
    }

    /// The memory budget in bytes.
    pub fn memory_budget(&self) -> usize {
        self.memory_budget
    }

    /// The disk budget in bytes.
    pub fn disk_budget(&self) -> usize {
        self.disk_budget
    }

    /// The per-category limit set with [`with_limit`](Self::with_limit), if any.
    pub fn limit(&self, category: Category) -> Option<usize> {
        match *slot(&self.limits, category) {
            usize::MAX => None,
            limit => Some(limit),
        }
    }

    /// Memory bytes held now (audio + model + other).
    pub fn memory_used(&self) -> usize {
        self.memory_used.load(Ordering::Acquire)
    }

    /// Disk bytes held now.
    pub fn disk_used(&self) -> usize {
        self.used(Category::Disk)
    }

    /// Bytes `category` holds now.
    pub fn used(&self, category: Category) -> usize {
        self.layout
            .used(slot(&self.cells, category).word.load(Ordering::Acquire))
    }

    /// Bytes a new reservation of `category` could get right now (the smaller of what its
    /// budget and its limit leave). Another thread may take them first.
    pub fn available(&self, category: Category) -> usize {
        let cap = self.cap(category);
        let by_limit = cap.saturating_sub(self.used(category));
        if category.is_memory() {
            by_limit.min(self.memory_budget.saturating_sub(self.memory_used()))
        } else {
            by_limit
        }
    }

    /// The effective per-category cap: the limit, and for disk also the disk budget.
    #[inline]
    fn cap(&self, category: Category) -> usize {
        let limit = *slot(&self.limits, category);
        if category.is_memory() {
            limit
        } else {
            limit.min(self.disk_budget)
        }
    }

    /// Reserves `bytes` of `category`, borrowing the accountant.
    ///
    /// Use [`try_reserve_in`](Self::try_reserve_in) to have the reservation own a shared
    /// handle (an `Arc<Accountant>`) instead. A zero-byte reservation is granted (and
    /// counted) like any other.
    ///
    /// # Errors
    ///
    /// [`ReserveError`] when the budget or the category limit does not have `bytes` left;
    /// nothing is reserved then.
    ///
    /// ```
    /// use w4l_core::accountant::{Accountant, Bound, Category};
    ///
    /// let acc = Accountant::new(100, 0);
    /// let model = acc.try_reserve(Category::Model, 60)?;
    /// assert_eq!((model.bytes(), acc.available(Category::Audio)), (60, 40));
    ///
    /// let err = acc.try_reserve(Category::Audio, 41).unwrap_err();
    /// assert_eq!((err.available, err.bound), (40, Bound::MemoryBudget));
    /// assert_eq!(err.holders.largest().map(|h| (h.category, h.bytes)), Some((Category::Model, 60)));
    /// assert!(err.to_string().starts_with("cannot reserve 41 bytes of audio"));
    ///
    /// drop(model); // gives the 60 bytes back
    /// assert!(acc.try_reserve(Category::Audio, 41).is_ok());
    /// # Ok::<(), w4l_core::accountant::ReserveError>(())
    /// ```
    #[inline]
    pub fn try_reserve(
        &self,
        category: Category,
        bytes: usize,
    ) -> Result<Reservation<&Self>, ReserveError> {
        Self::try_reserve_in(self, category, bytes)
    }

    /// Reserves `bytes` of `category`; the reservation keeps `handle` (any
    /// `Deref<Target = Accountant>`: `&Accountant`, `Arc<Accountant>`, ...).
    ///
    /// # Errors
    ///
    /// [`ReserveError`] when the budget or the category limit does not have `bytes` left;
    /// nothing is reserved then.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use w4l_core::accountant::{Accountant, Category, Reservation};
    ///
    /// struct Recorder {
    ///     buffer: Reservation<Arc<Accountant>>,
    /// }
    /// let acc = Arc::new(Accountant::new(1 << 20, 0));
    /// let rec = Recorder { buffer: Accountant::try_reserve_in(acc.clone(), Category::Audio, 4096)? };
    /// assert_eq!(acc.used(Category::Audio), 4096);
    /// drop(rec);
    /// assert_eq!(acc.used(Category::Audio), 0);
    /// # Ok::<(), w4l_core::accountant::ReserveError>(())
    /// ```
    pub fn try_reserve_in<A: Deref<Target = Accountant>>(
        handle: A,
        category: Category,
        bytes: usize,
    ) -> Result<Reservation<A>, ReserveError> {
        handle.charge(category, bytes, ReserveOp::Reserve)?;
        Ok(Reservation {
            handle,
            category,
            bytes,
        })
    }

    /// Charges `bytes` to `category` (and to the memory total for memory categories), or
    /// refuses and counts the refusal. A new reservation ([`ReserveOp::Reserve`]) is
    /// counted as granted in the same CAS.
    #[inline]
    fn charge(&self, category: Category, bytes: usize, op: ReserveOp) -> Result<(), ReserveError> {
        let cap = self.cap(category);
        let grant = matches!(op, ReserveOp::Reserve);
        if !category.is_memory() {
            return match self.add_to_cell(category, bytes, cap, grant) {
                Ok(()) => Ok(()),
                Err(current) => {
                    let bound = if cap < self.disk_budget {
                        Bound::CategoryLimit
                    } else {
                        Bound::DiskBudget
                    };
                    Err(self.refuse(category, bytes, op, bound, cap, current))
                }
            };
        }
        // The total first: the CAS never lets it pass the budget. A category without a
        // limit below the budget then holds at most the total, so its CAS cannot refuse.
        let total = match try_add_capped(&self.memory_used, bytes, self.memory_budget) {
            Ok(total) => total,
            Err(current) => {
                return Err(self.refuse(
                    category,
                    bytes,
                    op,
                    Bound::MemoryBudget,
                    self.memory_budget,
                    current,
                ));
            }
        };
        if let Err(current) = self.add_to_cell(category, bytes, cap, grant) {
            // Roll the total back: the category limit refused.
            self.memory_used.fetch_sub(bytes, Ordering::Release);
            return Err(self.refuse(category, bytes, op, Bound::CategoryLimit, cap, current));
        }
        bump_peak(&self.memory_peak, total);
        Ok(())
    }

    /// Adds `bytes` to `category`'s word unless its bytes would pass `cap` (then returns
    /// the bytes it holds), counting a grant if `grant`; one CAS, plus one RMW on the
    /// granted high part when the word's granted bits wrap. Raises the peak.
    #[inline]
    fn add_to_cell(
        &self,
        category: Category,
        bytes: usize,
        cap: usize,
        grant: bool,
    ) -> Result<(), usize> {
        let cell = slot(&self.cells, category);
        let l = self.layout;
        let cap = cap.min(l.used_mask);
        let mut current = cell.word.load(Ordering::Relaxed);
        loop {
            let used = l.used(current);
            let new_used = match used.checked_add(bytes) {
                Some(new) if new <= cap => new,
                _ => return Err(used),
            };
            let mut new = (current & !l.used_mask) | new_used;
            let mut wrapped = false;
            if grant {
                let granted = (l.granted_lo(current) + 1) & l.g_mask;
                wrapped = granted == 0;
                new = (new & !(l.g_mask << l.g_shift)) | (granted << l.g_shift);
            }
            match cell.word.compare_exchange_weak(
                current,
                new,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if wrapped {
                        cell.granted_hi.fetch_add(1, Ordering::Release);
                    }
                    bump_peak(&cell.peak, new_used);
                    return Ok(());
                }
                Err(seen) => current = seen,
            }
        }
    }

    /// Gives `bytes` of `category` back; with `end`, also counts a reservation as ended
    /// (in the same RMW, plus one on the ended high part when the word's ended bits wrap).
    #[inline]
    fn discharge(&self, category: Category, bytes: usize, end: bool) {
        let cell = slot(&self.cells, category);
        let l = self.layout;
        // Category before total: a category never holds bytes the total does not.
        // `used >= bytes`, so the subtraction never borrows from the counters; the ended
        // bits are on top, so their carry leaves the word.
        let add = if end { l.ended_one() } else { 0 };
        let old = cell
            .word
            .fetch_add(add.wrapping_sub(bytes), Ordering::Release);
        if end && l.ended_lo(old) == l.e_mask {
            cell.ended_hi.fetch_add(1, Ordering::Release);
        }
        if category.is_memory() {
            self.memory_used.fetch_sub(bytes, Ordering::Release);
        }
    }

    /// `(bytes held, granted, ended)` of a category, exact at quiescence. Ended first: a
    /// reservation is granted before it ends.
    fn counts(&self, category: Category) -> (usize, usize, usize) {
        let cell = slot(&self.cells, category);
        let l = self.layout;
        let ended_hi = cell.ended_hi.load(Ordering::Acquire);
        let word = cell.word.load(Ordering::Acquire);
        let granted_hi = cell.granted_hi.load(Ordering::Acquire);
        let granted = granted_hi
            .wrapping_mul(l.g_mask + 1)
            .wrapping_add(l.granted_lo(word));
        let ended = ended_hi
            .wrapping_mul(l.e_mask.wrapping_add(1))
            .wrapping_add(l.ended_lo(word));
        (l.used(word), granted, ended)
    }

    /// Counts a refusal and builds its error.
    #[cold]
    fn refuse(
        &self,
        category: Category,
        requested: usize,
        op: ReserveOp,
        bound: Bound,
        limit: usize,
        current: usize,
    ) -> ReserveError {
        slot(&self.cells, category)
            .refused
            .fetch_add(1, Ordering::Relaxed);
        ReserveError {
            op,
            category,
            requested,
            available: limit.saturating_sub(current),
            bound,
            limit,
            holders: self.holders(category),
        }
    }

    /// The categories sharing `category`'s budget with their usage, largest first.
    pub fn holders(&self, category: Category) -> Holders {
        let holder = |c: Category| {
            let (bytes, granted, ended) = self.counts(c);
            Holder {
                category: c,
                bytes,
                live: granted.wrapping_sub(ended),
            }
        };
        if !category.is_memory() {
            let disk = holder(Category::Disk);
            return Holders {
                entries: [disk, disk, disk],
                len: 1,
            };
        }
        let mut entries = Category::MEMORY.map(holder);
        // Largest first; ties keep the categories' order: a stable bubble sort of three.
        for i in [0, 1, 0] {
            if let Some([a, b]) = entries.get_mut(i..i + 2).and_then(|p| p.as_mut_array())
                && b.bytes > a.bytes
            {
                core::mem::swap(a, b);
            }
        }
        Holders { entries, len: 3 }
    }

    /// A snapshot of every figure. See [`Figures`].
    pub fn figures(&self) -> Figures {
        let mut categories = [CategoryFigures::default(); 4];
        let (mut all_live, mut granted, mut refused) = (0usize, 0usize, 0usize);
        for (c, out) in Category::ALL.iter().zip(categories.iter_mut()) {
            let cell = slot(&self.cells, *c);
            let (used, c_granted, c_ended) = self.counts(*c);
            *out = CategoryFigures {
                used,
                peak: cell.peak.load(Ordering::Relaxed),
                limit: self.limit(*c),
                live: c_granted.wrapping_sub(c_ended),
                granted: c_granted,
                refused: cell.refused.load(Ordering::Relaxed),
            };
            all_live = all_live.wrapping_add(out.live);
            granted = granted.wrapping_add(out.granted);
            refused = refused.wrapping_add(out.refused);
        }
        let disk = *slot(&categories, Category::Disk);
        Figures {
            memory_budget: self.memory_budget,
            memory_used: self.memory_used(),
            memory_peak: self.memory_peak.load(Ordering::Relaxed),
            disk_budget: self.disk_budget,
            disk_used: disk.used,
            disk_peak: disk.peak,
            categories,
            live: all_live,
            granted,
            refused,
        }
    }

    /// Same as [`figures`](Self::figures).
    pub fn snapshot(&self) -> Figures {
        self.figures()
    }
}

/// Bytes reserved from an [`Accountant`], given back exactly once when dropped.
///
/// Generic over the handle `A` it keeps: `&Accountant` (firmware statics, scoped use) or
/// an owning shared handle such as `Arc<Accountant>` (long-lived host structs).
///
/// ```
/// use w4l_core::accountant::{Accountant, Category};
///
/// let acc = Accountant::new(1000, 0);
/// let mut r = acc.try_reserve(Category::Audio, 100)?;
/// r.grow(50)?; // 150
/// r.shrink(30).unwrap(); // 120
/// let half = r.split(60).unwrap(); // two reservations of 60, the same bytes in use
/// assert_eq!((r.bytes(), half.bytes(), acc.used(Category::Audio)), (60, 60, 120));
/// r.merge(half).unwrap(); // back to one of 120
/// r.resize(200)?;
/// assert_eq!((acc.used(Category::Audio), acc.figures().live), (200, 1));
/// r.release(); // or drop it
/// assert_eq!(acc.used(Category::Audio), 0);
/// # Ok::<(), w4l_core::accountant::ReserveError>(())
/// ```
pub struct Reservation<A: Deref<Target = Accountant>> {
    handle: A,
    category: Category,
    bytes: usize,
}

impl<A: Deref<Target = Accountant>> Reservation<A> {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The category the bytes are held in.
    pub fn category(&self) -> Category {
        self.category
    }

    /// The accountant the bytes are reserved from.
    pub fn accountant(&self) -> &Accountant {
        &self.handle
    }

    /// Reserves `bytes` more in the same category.
    ///
    /// # Errors
    ///
    /// [`ReserveError`] (with [`ReserveOp::Grow`]) when the budget or the limit does not
    /// have them; the reservation is unchanged then.
    pub fn grow(&mut self, bytes: usize) -> Result<(), ReserveError> {
        self.handle.charge(self.category, bytes, ReserveOp::Grow)?;
        // Cannot overflow: the charge succeeded, so the category holds at least
        // `self.bytes + bytes` and that fits in a usize.
        self.bytes = self.bytes.saturating_add(bytes);
        Ok(())
    }

    /// Gives `bytes` of the reservation back.
    ///
    /// # Errors
    ///
    /// [`ReduceError`] when the reservation holds fewer than `bytes`; nothing changes.
    pub fn shrink(&mut self, bytes: usize) -> Result<(), ReduceError> {
        let rest = self.reduce(bytes, ReduceOp::Shrink)?;
        self.handle.discharge(self.category, bytes, false);
        self.bytes = rest;
        Ok(())
    }

    /// Grows or shrinks the reservation to exactly `bytes`.
    ///
    /// # Errors
    ///
    /// [`ReserveError`] when growing is refused; the reservation is unchanged then.
    pub fn resize(&mut self, bytes: usize) -> Result<(), ReserveError> {
        if bytes >= self.bytes {
            self.grow(bytes - self.bytes)
        } else {
            let by = self.bytes - bytes;
            self.handle.discharge(self.category, by, false);
            self.bytes = bytes;
            Ok(())
        }
    }

    /// Moves `bytes` of this reservation into a new one of the same category and
    /// accountant. Usage does not change; the reservation count goes up by one.
    ///
    /// # Errors
    ///
    /// [`ReduceError`] when the reservation holds fewer than `bytes`; nothing changes.
    pub fn split(&mut self, bytes: usize) -> Result<Reservation<A>, ReduceError>
    where
        A: Clone,
    {
        let rest = self.reduce(bytes, ReduceOp::Split)?;
        // Counts the new part as granted; zero bytes under no cap cannot be refused.
        // Zero bytes under no cap: cannot be refused.
        let _ = self.handle.add_to_cell(self.category, 0, usize::MAX, true);
        self.bytes = rest;
        Ok(Reservation {
            handle: self.handle.clone(),
            category: self.category,
            bytes,
        })
    }

    /// Takes `other`'s bytes into this reservation (same accountant and category); `other`
    /// ends without giving anything back. Usage does not change.
    ///
    /// # Errors
    ///
    /// Returns `other` unchanged when it belongs to another accountant or category.
    pub fn merge(&mut self, mut other: Reservation<A>) -> Result<(), Reservation<A>> {
        if !core::ptr::eq(self.accountant(), other.accountant()) || self.category != other.category
        {
            return Err(other);
        }
        // Both hold bytes of the same category and accountant, so their sum is at most
        // the category's usage and cannot overflow.
        self.bytes = self.bytes.saturating_add(other.bytes);
        other.bytes = 0;
        // Ends `other` (counted as ended) while giving back nothing.
        drop(other);
        Ok(())
    }

    /// Gives the bytes back now (the same as dropping the reservation).
    pub fn release(self) {
        drop(self);
    }

    /// The remaining bytes after taking `bytes` away, or the error.
    fn reduce(&self, bytes: usize, op: ReduceOp) -> Result<usize, ReduceError> {
        self.bytes.checked_sub(bytes).ok_or(ReduceError {
            op,
            category: self.category,
            requested: bytes,
            held: self.bytes,
        })
    }
}

impl<A: Deref<Target = Accountant>> Drop for Reservation<A> {
    fn drop(&mut self) {
        self.handle.discharge(self.category, self.bytes, true);
    }
}

impl<A: Deref<Target = Accountant>> fmt::Debug for Reservation<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("category", &self.category)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}
