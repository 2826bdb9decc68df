//! Lock-free single-producer single-consumer (SPSC) ring that hands samples from the
//! real-time audio callback to a worker thread.
//!
//! * **Caller-supplied storage, or one allocation.** [`Ring::new`] works on a borrowed slice:
//!   `&'static mut [T]` (or a stack array) on firmware. With the `alloc` feature,
//!   `HeapRing::new` allocates the ring once, on the heap, for hosts and tests.
//! * **One producer, one consumer, by construction.** [`Ring::split`] borrows the ring
//!   exclusively for as long as its [`Producer`] and [`Consumer`] live; `HeapRing::new`
//!   returns the two halves and never the ring itself (like rtrb's `RingBuffer::new`). So there
//!   is no "already split" state to check at run time. Both halves are `Send`.
//! * **Bulk copies.** [`Producer::push_slice`] and [`Consumer::pop_slice`] move a whole slice
//!   with at most two `copy_nonoverlapping` calls and a handful of atomic operations per
//!   call, never per sample. Each half keeps a cached copy of the opposite index and only
//!   reloads it when the cache says there is not enough room/data.
//! * **Never blocks**, never allocates, never makes a syscall, never panics.
//!
//! # Overflow policies
//!
//! Chosen once, at construction ([`Overflow`]):
//!
//! * [`Overflow::RejectNewest`] (default): what does not fit is dropped and counted in
//!   [`RingStats::dropped`].
//! * [`Overflow::OverwriteOldest`]: the producer never fails; when the ring is full it
//!   discards the oldest unread samples and counts them in [`RingStats::overwritten`]. The
//!   consumer learns exactly how many samples it missed through [`Consumer::take_missed`].
//!
//! # Design
//!
//! Positions are counted modulo `2 * capacity` (so "full" and "empty" differ without
//! sacrificing a slot); the slot of position `p` is `p mod capacity`, computed with one
//! conditional subtraction. Three atomics are shared:
//!
//! * `tail` — written only by the producer: the next position to write.
//! * `head` — the next unread position. Under `RejectNewest` it is written only by the
//!   consumer. Under `OverwriteOldest` its top bit is the consumer's **busy** flag, and the
//!   producer may advance it too (see below).
//! * the statistics counters, each written by one side only (plain stores of a local
//!   count, no read-modify-write).
//!
//! The producer writes positions `tail..head + capacity`, the consumer reads `head..tail`;
//! these ranges never share a slot. Publication uses release stores and acquire loads:
//! the producer's `tail` store releases the written samples to the consumer, the
//! consumer's `head` store releases the slots it has finished reading back to the producer.
//!
//! ## `OverwriteOldest` without data races
//!
//! The producer can only overwrite slots that the consumer is not reading, so the consumer
//! brackets every copy with a claim:
//!
//! 1. `fetch_or(BUSY)` on `head` (acquire) returns the position `p` to read from and tells
//!    the producer "do not move `head` now";
//! 2. it loads `tail` (acquire) and copies `n = min(wanted, tail - p)` samples;
//! 3. it stores `head = p + n` (release), which also clears the busy flag.
//!
//! The producer computes its room from `head`'s position (busy or not). When the ring is
//! too full for the incoming samples and the consumer is *not* busy, it advances `head`
//! with a compare-exchange (`h -> h + need`, expecting the busy flag clear; acquire-release,
//! so a consumer claiming from `h + need` also sees a `tail` at or past it), discarding the
//! `need` oldest samples, then writes. The compare-exchange fails exactly when the
//! consumer claimed in between; the producer reloads and retries (a bounded number of
//! times). If the consumer is busy copying, no room can be made without racing with that
//! copy, so the producer keeps what fits and discards the **newest** samples of that
//! call instead. Both kinds of loss are counted in [`RingStats::overwritten`], so the
//! count stays exact; the second kind only happens while the consumer is in the middle of
//! one `pop_slice` (a memcpy of at most `capacity` samples), and it never makes the
//! producer wait.
//!
//! The consumer reads `tail` *after* its claim, so even a `head` value that has wrapped all
//! the way around (ABA) while the consumer was preempted cannot make it read a slot that
//! is being written: with the busy flag set, `head` cannot move, and `tail - p` is exact.
//!
//! # Counters
//!
//! [`RingStats`] is readable from either side and from the [`Ring`] itself. After
//! quiescence (both sides idle) it satisfies `pushed == popped + overwritten + len` and
//! `dropped` is the exact number of rejected samples. Under `OverwriteOldest`, `pushed`
//! counts every sample handed to the producer (it never refuses). Counters are `usize`
//! and wrap: modulo 2^32 on 32-bit targets, i.e. after about 12 hours at 96 000 samples/s;
//! differences between two readings stay exact across a wrap. The host is 64-bit. A
//! snapshot taken while the halves are active is not one atomic picture.
//!
//! # Cache lines
//!
//! The producer's and the consumer's shared words live in separate cache-line-aligned
//! blocks so that the two cores do not fight over one line (false sharing). The padding
//! is 128 bytes on x86_64 (Intel's spatial prefetcher pulls lines in pairs), aarch64
//! (Apple cores have 128-byte lines) and powerpc64; 32 bytes on 32-bit Arm, RISC-V and
//! MIPS (Cortex-M7 has 32-byte lines, Cortex-M4 has no data cache, so keep RAM overhead
//! small); 64 bytes elsewhere.
//!
//! # Example (firmware style: borrowed storage)
//!
//! ```
//! use w4l_core::ring::{Overflow, Ring};
//!
//! // RejectNewest: what does not fit is refused, and counted.
//! let mut storage = [0.0f32; 4];
//! let mut ring = Ring::new(&mut storage[..], Overflow::RejectNewest)?;
//! let (mut producer, mut consumer) = ring.split(); // each half may go to its own thread
//! assert_eq!(producer.push_slice(&[0.1, 0.2, 0.3, 0.4, 0.5]), 4);
//! let mut out = [0.0f32; 8];
//! assert_eq!(consumer.pop_slice(&mut out), 4);
//! assert_eq!(&out[..4], &[0.1, 0.2, 0.3, 0.4]);
//! assert_eq!(consumer.take_missed(), 1); // the 0.5
//! let stats = consumer.stats();
//! assert_eq!((stats.pushed, stats.popped, stats.dropped), (4, 4, 1));
//!
//! // OverwriteOldest: the producer never fails; the consumer learns what it missed.
//! let mut storage = [0i16; 4];
//! let mut ring = Ring::new(&mut storage[..], Overflow::OverwriteOldest)?;
//! let (mut producer, mut consumer) = ring.split();
//! assert_eq!(producer.push_slice(&[1, 2, 3, 4, 5, 6]), 6);
//! let mut out = [0i16; 4];
//! assert_eq!(consumer.pop_slice(&mut out), 4);
//! assert_eq!(out, [3, 4, 5, 6]);
//! assert_eq!(consumer.take_missed(), 2); // 1 and 2
//! assert_eq!(producer.stats().overwritten, 2);
//! # Ok::<(), w4l_core::ring::RingError>(())
//! ```
//!
//! See `HeapRing` for the heap version, whose halves are `'static`.

use core::fmt;
use core::mem::MaybeUninit;
use core::ops::Deref;
use core::ptr;

use crate::sync::{AtomicUsize, Ordering, SlotTracker};

#[cfg(feature = "alloc")]
mod heap;
#[cfg(feature = "alloc")]
pub use heap::{HeapRing, HeapStorage};

/// The top bit of `head`: set by the consumer while it copies out of the ring
/// (`OverwriteOldest` only).
const BUSY: usize = 1 << (usize::BITS - 1);

/// How many times the producer retries its compare-exchange on `head` before it gives up
/// making room and discards the newest samples instead. Each failure means the consumer
/// made progress, so this only bounds the producer's work.
const MAX_CAS_TRIES: usize = 4;

/// Memory a [`Ring`] keeps its samples in: a borrowed slice (`&mut [T]`) or, with the `alloc`
/// feature, a `HeapRing`'s allocation. Sealed: the ring's soundness rests on these two
/// implementations, so no other can be written (name it in bounds freely).
///
/// # Safety
///
/// Implementors promise that:
///
/// * [`len`](Storage::len) always returns the same value, and
///   [`as_mut_ptr`](Storage::as_mut_ptr) returns a pointer to `len()` properly aligned
///   `Item`s that is valid for reads and writes (the items need not be initialised: the
///   ring writes a slot before it ever reads it);
/// * the pointer is the same on every call and stays valid for as long as the storage
///   value lives, **even when the storage value itself is moved** (it points to memory the
///   value refers to, such as a borrowed or heap-allocated slice, never into the value);
/// * nothing else reads or writes those items while the storage value is alive, except
///   through the pointer (the [`Ring`] owns the storage and is the only user).
///
/// Outside this crate, an implementation does not compile:
///
/// ```compile_fail,E0277
/// struct Mine(*mut f32);
///
/// // SAFETY: (none could be argued: the trait is sealed)
/// unsafe impl w4l_core::ring::Storage for Mine {
///     type Item = f32;
///     fn as_mut_ptr(&mut self) -> *mut f32 {
///         self.0
///     }
///     fn len(&self) -> usize {
///         4
///     }
/// }
/// ```
pub unsafe trait Storage: sealed::Sealed {
    /// The sample type.
    type Item: Copy;

    /// Pointer to the first item; see the trait's safety contract.
    fn as_mut_ptr(&mut self) -> *mut Self::Item;

    /// Number of items, i.e. the ring's capacity.
    fn len(&self) -> usize;

    /// `len() == 0`.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// SAFETY: a `&mut [T]` is the exclusive borrow of `len` initialised items; its data
// pointer does not change when the reference is moved, and nobody else can touch the
// items while the borrow lives.
unsafe impl<T: Copy> Storage for &mut [T] {
    type Item = T;

    #[inline]
    fn as_mut_ptr(&mut self) -> *mut T {
        <[T]>::as_mut_ptr(self)
    }

    #[inline]
    fn len(&self) -> usize {
        <[T]>::len(self)
    }
}

/// A handle to a [`Ring`] that the [`Producer`] and [`Consumer`] keep: `&'a Ring` for a
/// borrowed ring ([`Ring::split`]), `HeapRing` (an `Arc`) for the heap ring. Sealed, like
/// [`Storage`].
///
/// # Safety
///
/// Every clone of a value must dereference to the **same** [`Ring`] (the same address),
/// on every call, and that ring must stay alive and must not move while any clone exists.
pub unsafe trait RingRef:
    sealed::Sealed + Clone + Deref<Target = Ring<<Self as RingRef>::Storage>>
{
    /// The ring's storage type.
    type Storage: Storage;
}

// SAFETY: copies of a shared reference point to the same ring, which the borrow keeps
// alive and in place.
unsafe impl<S: Storage> RingRef for &Ring<S> {
    type Storage = S;
}

impl<T: Copy> sealed::Sealed for &mut [T] {}
impl<S: Storage> sealed::Sealed for &Ring<S> {}

/// The seal of [`Storage`] and [`RingRef`]: public, so that they can name it as a supertrait,
/// in a private module, so that no other crate can implement it.
mod sealed {
    pub trait Sealed {}
}

/// What the ring does when the producer offers more than fits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Overflow {
    /// Keep what is in the ring; drop (and count in [`RingStats::dropped`]) the samples
    /// that do not fit.
    #[default]
    RejectNewest,
    /// Never refuse: discard the oldest unread samples to make room (counted in
    /// [`RingStats::overwritten`]).
    OverwriteOldest,
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Overflow::RejectNewest => "reject newest",
            Overflow::OverwriteOldest => "overwrite oldest",
        })
    }
}

/// Why a ring could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RingError {
    /// The storage has no room for a single sample.
    ZeroCapacity,
    /// The storage is larger than [`Ring::MAX_CAPACITY`] (positions would not fit the
    /// wrapping index scheme).
    CapacityTooLarge {
        /// The storage's length.
        capacity: usize,
        /// The largest supported capacity.
        max: usize,
    },
    /// The allocator refused the memory for a heap ring of this many samples (feature
    /// `alloc`).
    AllocFailed {
        /// The capacity asked for.
        capacity: usize,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::ZeroCapacity => {
                f.write_str("ring storage has zero capacity; give the ring at least one slot")
            }
            RingError::CapacityTooLarge { capacity, max } => write!(
                f,
                "ring capacity {capacity} exceeds the maximum {max}; ask for a smaller ring"
            ),
            RingError::AllocFailed { capacity } => write!(
                f,
                "cannot allocate a ring of {capacity} samples; ask for a smaller ring"
            ),
        }
    }
}

impl core::error::Error for RingError {}

/// A single [`Producer::push`] that did not fit (`RejectNewest` only); the sample is
/// handed back and counted as dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PushError<T> {
    /// The ring was full; here is the sample back.
    Full(T),
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => f.write_str("ring full"),
        }
    }
}

impl<T: fmt::Debug> core::error::Error for PushError<T> {}

/// Exact sample counters of a ring (see the module docs for their invariants).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RingStats {
    /// Samples the producer put into the ring (`OverwriteOldest`: every sample offered).
    pub pushed: usize,
    /// Samples the consumer took out.
    pub popped: usize,
    /// Samples refused because the ring was full (`RejectNewest`).
    pub dropped: usize,
    /// Samples lost to make room for newer ones (`OverwriteOldest`).
    pub overwritten: usize,
}

/// Aligns its content to the cache-line size that avoids false sharing on the target
/// (see the module docs).
#[cfg_attr(
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "powerpc64"
    ),
    repr(align(128))
)]
#[cfg_attr(
    any(
        target_arch = "arm",
        target_arch = "riscv32",
        target_arch = "mips",
        target_arch = "mips64"
    ),
    repr(align(32))
)]
#[cfg_attr(
    not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "powerpc64",
        target_arch = "arm",
        target_arch = "riscv32",
        target_arch = "mips",
        target_arch = "mips64"
    )),
    repr(align(64))
)]
struct CachePadded<T>(T);

/// Words written by the producer only.
struct ProducerShared {
    tail: AtomicUsize,
    pushed: AtomicUsize,
    dropped: AtomicUsize,
    overwritten: AtomicUsize,
}

/// Words written by the consumer (and, under `OverwriteOldest`, `head` by the producer's
/// compare-exchange).
struct ConsumerShared {
    head: AtomicUsize,
    popped: AtomicUsize,
}

/// The lock-free SPSC ring. Build it with [`Ring::new`], then [`Ring::split`] it into a
/// [`Producer`] and a [`Consumer`] (or build a `HeapRing`, which comes split).
pub struct Ring<S: Storage> {
    producer: CachePadded<ProducerShared>,
    consumer: CachePadded<ConsumerShared>,
    buf: *mut S::Item,
    cap: usize,
    /// `2 * cap`: positions live in `0..wrap`.
    wrap: usize,
    overflow: Overflow,
    tracker: SlotTracker,
    /// Owned so that it lives (and is dropped) with the ring. Behind `MaybeUninit` so that
    /// moving the ring never re-asserts uniqueness of a `&mut`/`Box` inside the storage
    /// (which would invalidate `buf` under Miri's aliasing model). Always initialised;
    /// dropped in `Drop`.
    storage: MaybeUninit<S>,
}

// SAFETY: the ring owns the storage (so sending the ring sends the `S` and its items) and
// only hands items across threads by value. Nothing in it is tied to a thread.
unsafe impl<S: Storage + Send> Send for Ring<S> where S::Item: Send {}

// SAFETY: through `&Ring` the samples are only reached by the single producer and single
// consumer (one pair by construction: `Ring::split` holds the exclusive borrow of the ring
// while its halves live, and a `HeapRing` exists only as its halves), which touch disjoint
// slots ordered by the acquire/release protocol described in the module docs; items move
// between threads, so they must be `Send`. `&Ring` never exposes `&S`, and the storage is only dropped via
// `&mut Ring`, so `S: Send` is enough.
unsafe impl<S: Storage + Send> Sync for Ring<S> where S::Item: Send {}

impl<S: Storage> Drop for Ring<S> {
    fn drop(&mut self) {
        // SAFETY: `storage` is initialised in `new` and dropped only here, once.
        unsafe { self.storage.assume_init_drop() }
    }
}

impl<S: Storage> fmt::Debug for Ring<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.cap)
            .field("overflow", &self.overflow)
            .field("len", &self.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl<S: Storage> Ring<S> {
    /// The largest supported capacity: `2^(usize::BITS - 2)` (positions run up to twice the
    /// capacity and the top bit of `head` is the consumer's busy flag).
    pub const MAX_CAPACITY: usize = 1 << (usize::BITS - 2);

    /// Builds a ring over `storage` (its length is the capacity) with the given overflow
    /// policy. Storage contents are ignored: the ring starts empty.
    ///
    /// # Errors
    ///
    /// [`RingError::ZeroCapacity`] for empty storage, [`RingError::CapacityTooLarge`] above
    /// [`Ring::MAX_CAPACITY`]. The storage is dropped in both cases.
    ///
    /// ```
    /// use w4l_core::ring::{Overflow, Ring, RingError};
    ///
    /// let mut storage = [0.0f32; 1024];
    /// let ring = Ring::new(&mut storage[..], Overflow::OverwriteOldest)?;
    /// assert_eq!((ring.capacity(), ring.overflow()), (1024, Overflow::OverwriteOldest));
    /// assert!(ring.is_empty());
    ///
    /// let empty: &mut [f32] = &mut [];
    /// assert_eq!(Ring::new(empty, Overflow::RejectNewest).unwrap_err(), RingError::ZeroCapacity);
    /// # Ok::<(), RingError>(())
    /// ```
    pub fn new(storage: S, overflow: Overflow) -> Result<Self, RingError> {
        let cap = storage.len();
        Self::check_capacity(cap)?;
        let mut storage = MaybeUninit::new(storage);
        // SAFETY: initialised on the line above.
        let buf = unsafe { storage.assume_init_mut() }.as_mut_ptr();
        Ok(Self {
            producer: CachePadded(ProducerShared {
                tail: AtomicUsize::new(0),
                pushed: AtomicUsize::new(0),
                dropped: AtomicUsize::new(0),
                overwritten: AtomicUsize::new(0),
            }),
            consumer: CachePadded(ConsumerShared {
                head: AtomicUsize::new(0),
                popped: AtomicUsize::new(0),
            }),
            buf,
            cap,
            // Cannot overflow: cap <= 2^(BITS-2).
            wrap: cap.wrapping_mul(2),
            overflow,
            tracker: SlotTracker::new(cap),
            storage,
        })
    }

    /// Whether the ring supports `capacity` samples (see [`new`](Self::new)'s errors).
    fn check_capacity(capacity: usize) -> Result<(), RingError> {
        if capacity == 0 {
            Err(RingError::ZeroCapacity)
        } else if capacity > Self::MAX_CAPACITY {
            Err(RingError::CapacityTooLarge {
                capacity,
                max: Self::MAX_CAPACITY,
            })
        } else {
            Ok(())
        }
    }

    /// Splits the ring into its two halves. They borrow the ring exclusively, so there is
    /// one producer and one consumer at a time; once both are gone, the ring may be split
    /// again, and the new halves carry on where the old ones stopped (only `take_missed`
    /// starts afresh). A half's [`handle`](Consumer::handle) reads the ring's counters
    /// meanwhile.
    ///
    /// ```
    /// use w4l_core::ring::{Overflow, Ring};
    ///
    /// let mut storage = [0u16; 4];
    /// let mut ring = Ring::new(&mut storage[..], Overflow::RejectNewest)?;
    /// let (mut producer, consumer) = ring.split();
    /// producer.push_slice(&[1, 2, 3]);
    /// let watcher = consumer.handle(); // a `&Ring`: counters and fill level only
    /// assert_eq!((watcher.len(), watcher.stats().pushed), (3, 3));
    /// # Ok::<(), w4l_core::ring::RingError>(())
    /// ```
    ///
    /// A second pair while the first lives does not compile:
    ///
    /// ```compile_fail,E0499
    /// # use w4l_core::ring::{Overflow, Ring};
    /// let mut storage = [0u16; 4];
    /// let mut ring = Ring::new(&mut storage[..], Overflow::RejectNewest).unwrap();
    /// let (mut producer, _consumer) = ring.split();
    /// let (mut second, _) = ring.split();
    /// producer.push_slice(&[1]);
    /// ```
    pub fn split(&mut self) -> (Producer<&Self>, Consumer<&Self>) {
        // SAFETY: the halves hold the exclusive borrow of the ring, so no other halves of it
        // exist while they live.
        unsafe { halves(&*self) }
    }

    /// Number of samples the ring can hold.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The overflow policy chosen at construction.
    #[inline]
    pub fn overflow(&self) -> Overflow {
        self.overflow
    }

    /// Number of unread samples (a snapshot while the halves are active).
    pub fn len(&self) -> usize {
        let head = self.consumer.0.head.load(Ordering::Acquire) & !BUSY;
        let tail = self.producer.0.tail.load(Ordering::Acquire);
        self.dist(tail, head).min(self.cap)
    }

    /// `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free slots: `capacity() - len()`.
    pub fn free(&self) -> usize {
        self.cap - self.len()
    }

    /// The counters (see [`RingStats`]).
    #[inline(never)]
    pub fn stats(&self) -> RingStats {
        RingStats {
            pushed: self.producer.0.pushed.load(Ordering::Acquire),
            popped: self.consumer.0.popped.load(Ordering::Acquire),
            dropped: self.producer.0.dropped.load(Ordering::Acquire),
            overwritten: self.producer.0.overwritten.load(Ordering::Acquire),
        }
    }

    /// Distance from position `from` to position `to` (both in `0..wrap`).
    #[inline(always)]
    fn dist(&self, to: usize, from: usize) -> usize {
        if to >= from {
            to - from
        } else {
            // No overflow: to < wrap <= 2^(BITS-1).
            to.wrapping_add(self.wrap).wrapping_sub(from)
        }
    }

    /// Position `pos` advanced by `n <= cap`.
    #[inline(always)]
    fn advance(&self, pos: usize, n: usize) -> usize {
        // No overflow: pos + n < 3 * cap <= 3 * 2^(BITS-2).
        let next = pos.wrapping_add(n);
        if next >= self.wrap {
            next - self.wrap
        } else {
            next
        }
    }

    /// The slot index of position `pos` (in `0..wrap`).
    #[inline(always)]
    fn slot(&self, pos: usize) -> usize {
        if pos >= self.cap { pos - self.cap } else { pos }
    }

    /// Copies `len` items from `src` into the ring at position `pos` (wrapping).
    ///
    /// # Safety
    ///
    /// `len <= cap`, `src` is valid for `len` reads, and the caller (the producer) has
    /// exclusive access to positions `pos..pos + len` under the ring protocol.
    #[inline(always)]
    unsafe fn write_at(&self, pos: usize, src: *const S::Item, len: usize) {
        let start = self.slot(pos);
        let first = len.min(self.cap - start);
        let second = len - first;
        self.tracker.write(start, first);
        self.tracker.write(0, second);
        // SAFETY: `start + first <= cap` and `second <= start` (because `len <= cap`), so both
        // destinations lie inside the storage; the caller guarantees `src` and exclusivity.
        unsafe {
            ptr::copy_nonoverlapping(src, self.buf.add(start), first);
            ptr::copy_nonoverlapping(src.add(first), self.buf, second);
        }
    }

    /// Copies `len` items out of the ring at position `pos` (wrapping) into `dst`.
    ///
    /// # Safety
    ///
    /// `len <= cap`, `dst` is valid for `len` writes, and the caller (the consumer) owns
    /// positions `pos..pos + len` under the ring protocol (the producer published them and
    /// will not write them before the consumer releases them).
    #[inline(always)]
    unsafe fn read_at(&self, pos: usize, dst: *mut S::Item, len: usize) {
        let start = self.slot(pos);
        let first = len.min(self.cap - start);
        let second = len - first;
        self.tracker.read(start, first);
        self.tracker.read(0, second);
        // SAFETY: as in `write_at`, both sources lie inside the storage.
        unsafe {
            ptr::copy_nonoverlapping(self.buf.add(start), dst, first);
            ptr::copy_nonoverlapping(self.buf, dst.add(first), second);
        }
    }
}

/// The two halves of `ring`, starting from its current state.
///
/// # Safety
///
/// No other halves of this ring may exist while these live: the ring protocol has one
/// producer and one consumer.
unsafe fn halves<R: RingRef>(ring: R) -> (Producer<R>, Consumer<R>) {
    let head = ring.consumer.0.head.load(Ordering::Acquire) & !BUSY;
    let tail = ring.producer.0.tail.load(Ordering::Acquire);
    let stats = ring.stats();
    let producer = Producer {
        ring: ring.clone(),
        tail,
        head_cache: head,
        pushed: stats.pushed,
        dropped: stats.dropped,
        overwritten: stats.overwritten,
    };
    let consumer = Consumer {
        ring,
        head,
        tail_cache: tail,
        popped: stats.popped,
        missed_seen: stats.dropped.wrapping_add(stats.overwritten),
    };
    (producer, consumer)
}

/// The writing half (the audio callback's side). `Send`; not `Clone`.
pub struct Producer<R: RingRef> {
    ring: R,
    /// Authoritative: only the producer writes `tail`.
    tail: usize,
    /// A position at or behind the real head (never ahead of it).
    head_cache: usize,
    pushed: usize,
    dropped: usize,
    overwritten: usize,
}

impl<R: RingRef> fmt::Debug for Producer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.ring.cap)
            .field("overflow", &self.ring.overflow)
            .field("pushed", &self.pushed)
            .field("dropped", &self.dropped)
            .field("overwritten", &self.overwritten)
            .finish()
    }
}

impl<R: RingRef> Producer<R> {
    /// Free slots for at least `want` samples, or as many as there are; reloads `head` only
    /// when the cached value says there are not enough.
    #[inline(always)]
    fn free_for(&mut self, want: usize) -> usize {
        let ring: &Ring<R::Storage> = &self.ring;
        let mut free = ring.cap - ring.dist(self.tail, self.head_cache);
        if free < want {
            self.head_cache = ring.consumer.0.head.load(Ordering::Acquire) & !BUSY;
            free = ring.cap - ring.dist(self.tail, self.head_cache);
        }
        free
    }

    /// `OverwriteOldest`: makes room for `want <= cap` samples by discarding the oldest
    /// unread ones (counted). Returns the free room, which is below `want` only when the
    /// consumer is busy copying.
    #[inline]
    fn make_room(&mut self, want: usize) -> usize {
        let mut free = self.free_for(want);
        if free >= want {
            return free;
        }
        let ring: &Ring<R::Storage> = &self.ring;
        for _ in 0..MAX_CAS_TRIES {
            let word = ring.consumer.0.head.load(Ordering::Acquire);
            let pos = word & !BUSY;
            self.head_cache = pos;
            free = ring.cap - ring.dist(self.tail, pos);
            if free >= want || word & BUSY != 0 {
                break;
            }
            // need <= len (because want <= cap), so the new head stays at or behind tail.
            // Release on success: a consumer whose claim reads `new_head` must also see a
            // `tail` at least as new as ours, or `tail - new_head` could underflow and it would
            // read slots being written (Miri and loom both catch that with `Acquire` here).
            let need = want - free;
            let new_head = ring.advance(pos, need);
            if ring
                .consumer
                .0
                .head
                .compare_exchange(word, new_head, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.head_cache = new_head;
                self.overwritten = self.overwritten.wrapping_add(need);
                return want;
            }
        }
        free
    }

    /// Writes `data` (`data.len() <= free room`) at `tail` and publishes it together with the
    /// counters.
    #[inline(always)]
    fn commit(&mut self, data: &[<R::Storage as Storage>::Item], offered: usize) {
        let ring: &Ring<R::Storage> = &self.ring;
        // SAFETY: the caller checked `data.len()` against the free room, i.e. positions
        // `tail..tail + len` lie in `tail..head + cap`, which only the producer touches.
        unsafe { ring.write_at(self.tail, data.as_ptr(), data.len()) };
        self.publish(data.len(), offered);
    }

    /// Advances `tail` past `stored` written samples and publishes it together with the
    /// counters (`offered` samples pushed).
    #[inline(always)]
    fn publish(&mut self, stored: usize, offered: usize) {
        let ring: &Ring<R::Storage> = &self.ring;
        self.tail = ring.advance(self.tail, stored);
        self.pushed = self.pushed.wrapping_add(offered);
        // Counters first, so that whoever acquires `tail` sees them at least this high.
        ring.producer.0.pushed.store(self.pushed, Ordering::Relaxed);
        ring.producer.0.tail.store(self.tail, Ordering::Release);
    }

    /// Pushes as much of `data` as the policy allows and returns how many samples were
    /// accepted.
    ///
    /// * `RejectNewest`: stores the longest prefix that fits and returns its length; the
    ///   rest is dropped and counted in [`RingStats::dropped`].
    /// * `OverwriteOldest`: always returns `data.len()`. Makes room by discarding the oldest
    ///   unread samples; if `data` is longer than the capacity, only its last `capacity`
    ///   samples can survive. If the consumer is in the middle of a copy, the newest samples
    ///   that do not fit are discarded instead. Every loss is counted in
    ///   [`RingStats::overwritten`].
    ///
    /// At most two `memcpy`s, no per-sample atomics, never blocks.
    pub fn push_slice(&mut self, data: &[<R::Storage as Storage>::Item]) -> usize {
        let len = data.len();
        match self.ring.overflow {
            Overflow::RejectNewest => {
                let n = self.free_for(len).min(len);
                let rejected = len - n;
                if rejected != 0 {
                    self.dropped = self.dropped.wrapping_add(rejected);
                    self.ring
                        .producer
                        .0
                        .dropped
                        .store(self.dropped, Ordering::Relaxed);
                }
                // `n <= data.len()`, so `get` always succeeds.
                if let Some(accepted) = data.get(..n).filter(|a| !a.is_empty()) {
                    self.commit(accepted, n);
                }
                n
            }
            Overflow::OverwriteOldest => {
                let skipped = len.saturating_sub(self.ring.cap);
                let data = data.split_at(skipped).1;
                let m = data.len();
                let before = self.overwritten;
                let n = self.make_room(m).min(m);
                let lost = skipped + (m - n);
                self.overwritten = self.overwritten.wrapping_add(lost);
                if self.overwritten != before {
                    self.ring
                        .producer
                        .0
                        .overwritten
                        .store(self.overwritten, Ordering::Relaxed);
                }
                if len != 0 {
                    self.commit(data.split_at(n).0, len);
                }
                len
            }
        }
    }

    /// Stores the longest prefix of `data` that fits without discarding anything and
    /// returns its length. Unlike [`push_slice`](Self::push_slice), the rest is **not**
    /// counted as dropped: it stays with the caller, who may retry. Under `OverwriteOldest`
    /// this is the same as `push_slice` (nothing is ever refused).
    pub fn push_slice_partial(&mut self, data: &[<R::Storage as Storage>::Item]) -> usize {
        match self.ring.overflow {
            Overflow::RejectNewest => {
                let n = self.free_for(data.len()).min(data.len());
                // `n <= data.len()`, so `get` always succeeds.
                if let Some(accepted) = data.get(..n).filter(|a| !a.is_empty()) {
                    self.commit(accepted, n);
                }
                n
            }
            Overflow::OverwriteOldest => self.push_slice(data),
        }
    }

    /// Pushes one sample.
    ///
    /// # Errors
    ///
    /// `RejectNewest` only: [`PushError::Full`] with the sample when the ring is full (the
    /// sample is counted as dropped). `OverwriteOldest` never fails.
    pub fn push(
        &mut self,
        value: <R::Storage as Storage>::Item,
    ) -> Result<(), PushError<<R::Storage as Storage>::Item>> {
        // `push_slice` of one sample, without its slice arithmetic and copies.
        let stored = match self.ring.overflow {
            Overflow::RejectNewest => {
                if self.free_for(1) == 0 {
                    self.dropped = self.dropped.wrapping_add(1);
                    self.ring
                        .producer
                        .0
                        .dropped
                        .store(self.dropped, Ordering::Relaxed);
                    return Err(PushError::Full(value));
                }
                1
            }
            Overflow::OverwriteOldest => {
                // Full with the consumer mid-copy: the sample is lost (and counted).
                let before = self.overwritten;
                let n = self.make_room(1).min(1);
                self.overwritten = self.overwritten.wrapping_add(1 - n);
                if self.overwritten != before {
                    self.ring
                        .producer
                        .0
                        .overwritten
                        .store(self.overwritten, Ordering::Relaxed);
                }
                n
            }
        };
        if stored == 1 {
            let ring: &Ring<R::Storage> = &self.ring;
            let slot = ring.slot(self.tail);
            ring.tracker.write(slot, 1);
            // SAFETY: there is room for one sample (checked or made above), so position
            // `tail` lies in `tail..head + cap`, which only the producer touches; `slot(tail)`
            // is below `cap`, inside the storage.
            unsafe { ring.buf.add(slot).write(value) };
        }
        self.publish(stored, 1);
        Ok(())
    }

    /// Free slots as the producer sees them (the consumer may free more at any moment).
    pub fn free(&mut self) -> usize {
        self.free_for(usize::MAX)
    }

    /// Unread samples as the producer sees them: `capacity() - free()`.
    pub fn len(&mut self) -> usize {
        self.ring.cap - self.free()
    }

    /// `len() == 0`.
    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> usize {
        self.ring.cap
    }

    /// The ring's counters (see [`RingStats`]).
    pub fn stats(&self) -> RingStats {
        self.ring.stats()
    }

    /// The shared ring.
    pub fn ring(&self) -> &Ring<R::Storage> {
        &self.ring
    }

    /// A handle to the shared ring that outlives this half, for whoever watches the ring's
    /// fill level and counters (a `&Ring` can neither push, pop nor split).
    pub fn handle(&self) -> R {
        self.ring.clone()
    }
}

/// The reading half (the worker's side). `Send`; not `Clone`.
pub struct Consumer<R: RingRef> {
    ring: R,
    /// `RejectNewest`: authoritative (only the consumer writes `head`). `OverwriteOldest`:
    /// unused, `head` is re-read on every claim.
    head: usize,
    /// A position at or behind the real tail.
    tail_cache: usize,
    popped: usize,
    /// `dropped + overwritten` at the last [`Consumer::take_missed`].
    missed_seen: usize,
}

impl<R: RingRef> fmt::Debug for Consumer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.ring.cap)
            .field("overflow", &self.ring.overflow)
            .field("popped", &self.popped)
            .finish()
    }
}

impl<R: RingRef> Consumer<R> {
    /// Claims up to `want > 0` samples: returns the start position and count (possibly 0).
    /// Must be followed by [`end_read`](Self::end_read) with the same values when it returns
    /// `Some`.
    #[inline(always)]
    fn begin_read(&mut self, want: usize) -> Option<(usize, usize)> {
        let ring: &Ring<R::Storage> = &self.ring;
        match ring.overflow {
            Overflow::RejectNewest => {
                let mut avail = ring.dist(self.tail_cache, self.head);
                if avail < want {
                    self.tail_cache = ring.producer.0.tail.load(Ordering::Acquire);
                    avail = ring.dist(self.tail_cache, self.head);
                }
                if avail == 0 {
                    None
                } else {
                    Some((self.head, avail.min(want)))
                }
            }
            Overflow::OverwriteOldest => {
                // Cheap emptiness check without a read-modify-write (a stale answer only
                // means "nothing yet").
                let head = ring.consumer.0.head.load(Ordering::Relaxed) & !BUSY;
                let tail = ring.producer.0.tail.load(Ordering::Acquire);
                if head == tail {
                    return None;
                }
                // Claim: from now on the producer does not move `head`.
                let pos = ring.consumer.0.head.fetch_or(BUSY, Ordering::Acquire) & !BUSY;
                // Read `tail` after the claim: `tail - pos` is then exact (<= cap).
                let tail = ring.producer.0.tail.load(Ordering::Acquire);
                self.tail_cache = tail;
                Some((pos, ring.dist(tail, pos).min(want)))
            }
        }
    }

    /// Releases the claimed samples `pos..pos + n` back to the producer.
    #[inline(always)]
    fn end_read(&mut self, pos: usize, n: usize) {
        let ring: &Ring<R::Storage> = &self.ring;
        let next = ring.advance(pos, n);
        self.head = next;
        self.popped = self.popped.wrapping_add(n);
        ring.consumer.0.popped.store(self.popped, Ordering::Relaxed);
        // Also clears the busy flag under `OverwriteOldest`.
        ring.consumer.0.head.store(next, Ordering::Release);
    }

    /// Moves up to `out.len()` of the oldest samples into `out` and returns how many. At
    /// most two `memcpy`s, no per-sample atomics, never blocks.
    pub fn pop_slice(&mut self, out: &mut [<R::Storage as Storage>::Item]) -> usize {
        if out.is_empty() {
            return 0;
        }
        let Some((pos, n)) = self.begin_read(out.len()) else {
            return 0;
        };
        // SAFETY: `n <= out.len()` and `n <= cap`; positions `pos..pos + n` were published by
        // the producer (acquired through `tail`) and are claimed by the consumer until
        // `end_read`.
        unsafe { self.ring.read_at(pos, out.as_mut_ptr(), n) };
        self.end_read(pos, n);
        n
    }

    /// Takes the oldest sample, if any.
    pub fn pop(&mut self) -> Option<<R::Storage as Storage>::Item> {
        let (pos, n) = self.begin_read(1)?;
        let mut value = MaybeUninit::uninit();
        if n == 1 {
            // SAFETY: as in `pop_slice`, with room for one item in `value`.
            unsafe { self.ring.read_at(pos, value.as_mut_ptr(), 1) };
        }
        self.end_read(pos, n);
        // SAFETY: initialised by the copy above when `n == 1`.
        (n == 1).then(|| unsafe { value.assume_init() })
    }

    /// Samples the consumer missed since the previous call (or since the split): those
    /// dropped because the ring was full (`RejectNewest`) plus those overwritten
    /// (`OverwriteOldest`). Losses that happened before a sample was pushed are counted by
    /// the time that sample can be popped.
    pub fn take_missed(&mut self) -> usize {
        let shared = &self.ring.producer.0;
        let total = shared
            .dropped
            .load(Ordering::Acquire)
            .wrapping_add(shared.overwritten.load(Ordering::Acquire));
        let missed = total.wrapping_sub(self.missed_seen);
        self.missed_seen = total;
        missed
    }

    /// Unread samples as the consumer sees them (the producer may add more, or under
    /// `OverwriteOldest` discard some, at any moment).
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> usize {
        self.ring.cap
    }

    /// The ring's counters (see [`RingStats`]).
    pub fn stats(&self) -> RingStats {
        self.ring.stats()
    }

    /// The shared ring.
    pub fn ring(&self) -> &Ring<R::Storage> {
        &self.ring
    }

    /// A handle to the shared ring that outlives this half, for whoever watches the ring's
    /// fill level and counters (a `&Ring` can neither push, pop nor split).
    pub fn handle(&self) -> R {
        self.ring.clone()
    }
}

#[cfg(test)]
mod tests;
