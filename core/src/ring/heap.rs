//! The heap-backed ring (feature `alloc`): one allocation, created already split, like rtrb's
//! `RingBuffer::new`. Both halves hold an `Arc` of the ring, so they are `Send + 'static`: the
//! producer can move into an audio callback, the consumer into a worker thread.

use alloc::boxed::Box;
use core::alloc::Layout;
use core::mem::MaybeUninit;
use core::ops::Deref;
use core::ptr::{self, NonNull};

// Under loom the halves share the ring through loom's `Arc`, so that the model checker sees
// the last drop (and the storage's release) as an access ordered with the other thread's.
#[cfg(loom)]
use loom::sync::Arc;

#[cfg(not(loom))]
use alloc::sync::Arc;

use super::{Consumer, Overflow, Producer, Ring, RingError, RingRef, Storage, sealed};

/// The heap memory of a [`HeapRing`]: `capacity` slots, zeroed by the allocator. Only
/// [`HeapRing::new`] makes one.
///
/// The slots are `MaybeUninit` because all-zero bytes need not be a valid `T`; the ring never
/// reads a slot it has not written, so any `T: Copy` works.
pub struct HeapStorage<T>(Box<[MaybeUninit<T>]>);

impl<T> HeapStorage<T> {
    /// `capacity` slots, or `None` if the allocator refuses (never an abort: capacities come
    /// from command lines and files). Zeroed memory: for a large ring the allocator maps fresh
    /// pages, which cost resident memory only once the ring writes them.
    fn try_new(capacity: usize) -> Option<Self> {
        let layout = Layout::array::<T>(capacity).ok()?;
        if layout.size() == 0 {
            // Zero-sized samples need no memory; this does not allocate.
            return Some(Self(Box::new_uninit_slice(capacity)));
        }
        // SAFETY: the layout's size is not zero (checked above).
        let ptr = NonNull::new(unsafe { alloc::alloc::alloc_zeroed(layout) })?;
        let slots = ptr::slice_from_raw_parts_mut(ptr.as_ptr().cast::<MaybeUninit<T>>(), capacity);
        // SAFETY: `slots` comes from the global allocator with the layout of `[T; capacity]`,
        // which is the layout of `[MaybeUninit<T>; capacity]` that the box frees it with; any
        // bytes are a valid `MaybeUninit<T>`; nothing else owns the memory.
        Some(Self(unsafe { Box::from_raw(slots) }))
    }
}

impl<T> sealed::Sealed for HeapStorage<T> {}

// SAFETY: the boxed slice owns `len` slots on the heap, aligned for `T`; its data pointer does
// not change when the box (or this newtype) moves and stays valid until the box is dropped,
// i.e. as long as the storage lives. Its length never changes. Once inside the ring nothing
// else reaches the slots: this type has no other accessor.
unsafe impl<T: Copy> Storage for HeapStorage<T> {
    type Item = T;

    #[inline]
    fn as_mut_ptr(&mut self) -> *mut T {
        self.0.as_mut_ptr().cast()
    }

    #[inline]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// A ring on the heap, shared by its [`Producer`] and [`Consumer`] (and by read-only handles
/// from [`Producer::handle`] / [`Consumer::handle`]). It is never handed out unsplit, so there
/// is exactly one producer and one consumer by construction.
///
/// ```
/// use w4l_core::ring::{HeapRing, Overflow};
///
/// let (mut producer, mut consumer) = HeapRing::<f32>::new(16_384, Overflow::RejectNewest)?;
/// let callback = std::thread::spawn(move || producer.push_slice(&[0.25, 0.5, 0.75]));
/// assert_eq!(callback.join().unwrap(), 3);
/// let mut out = [0.0f32; 8];
/// assert_eq!(consumer.pop_slice(&mut out), 3);
/// assert_eq!(consumer.stats().popped, 3);
/// # Ok::<(), w4l_core::ring::RingError>(())
/// ```
pub struct HeapRing<T: Copy>(Arc<Ring<HeapStorage<T>>>);

impl<T: Copy> HeapRing<T> {
    /// Allocates a ring of `capacity` samples and returns its two halves.
    ///
    /// # Errors
    ///
    /// [`RingError::ZeroCapacity`] for 0, [`RingError::CapacityTooLarge`] above
    /// [`Ring::MAX_CAPACITY`], [`RingError::AllocFailed`] when the allocator refuses the
    /// memory (never an abort).
    #[allow(clippy::type_complexity)]
    pub fn new(
        capacity: usize,
        overflow: Overflow,
    ) -> Result<(Producer<Self>, Consumer<Self>), RingError> {
        // Checked before allocating, so that an absurd capacity is named as such.
        Ring::<HeapStorage<T>>::check_capacity(capacity)?;
        let storage = HeapStorage::try_new(capacity).ok_or(RingError::AllocFailed { capacity })?;
        let ring = Self(Arc::new(Ring::new(storage, overflow)?));
        // SAFETY: the ring was created on the line above and is never handed out but as
        // these halves, so no other halves of it can exist.
        Ok(unsafe { super::halves(ring) })
    }
}

impl<T: Copy> Clone for HeapRing<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: Copy> Deref for HeapRing<T> {
    type Target = Ring<HeapStorage<T>>;

    #[inline]
    fn deref(&self) -> &Ring<HeapStorage<T>> {
        &self.0
    }
}

impl<T: Copy> sealed::Sealed for HeapRing<T> {}

// SAFETY: every clone of the `Arc` dereferences to the same heap allocation, which is freed
// only with the last clone and never moves, so the ring stays alive and in place while any
// clone exists.
unsafe impl<T: Copy> RingRef for HeapRing<T> {
    type Storage = HeapStorage<T>;
}

impl<T: Copy> core::fmt::Debug for HeapRing<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests;
