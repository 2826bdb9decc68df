//! The host's side of the core ring: heap storage and a shared `'static` handle.
//!
//! [`w4l_core::ring`] never allocates; it works on any [`Storage`] and is shared through any
//! [`RingRef`]. On the host the storage is a boxed slice ([`HeapStorage`]) and the handle an
//! `Arc` ([`SharedRing`]), so the [`AudioProducer`] can move into a cpal callback (which must be
//! `'static`) while the [`AudioConsumer`] lives in the recorder's worker thread.
//!
//! ```
//! use w4l::ring::{AudioRing, SharedRing};
//! use w4l_core::ring::Overflow;
//!
//! let ring = SharedRing::<f32>::with_capacity(1024, Overflow::RejectNewest)?;
//! let (mut producer, mut consumer) = ring.split()?;
//! assert_eq!(producer.push_slice(&[0.5; 10]), 10);
//! let mut out = [0.0; 16];
//! assert_eq!(consumer.pop_slice(&mut out), 10);
//! # let _: AudioRing = ring;
//! # Ok::<(), w4l_core::ring::RingError>(())
//! ```

use std::ops::Deref;
use std::sync::Arc;

use w4l_core::ring::{Consumer, Overflow, Producer, Ring, RingError, RingRef, Storage};

/// An owned, heap-allocated slice of samples: the ring's storage on the host.
#[derive(Debug)]
pub struct HeapStorage<T>(Box<[T]>);

impl<T: Copy + Default> HeapStorage<T> {
    /// `len` samples, all `T::default()` (the ring treats them as unwritten).
    pub fn new(len: usize) -> Self {
        Self(vec![T::default(); len].into_boxed_slice())
    }
}

impl<T: ZeroIsDefault> HeapStorage<T> {
    /// Like [`new`](Self::new), but a size the allocator refuses is `None` instead of an
    /// abort: for sizes that come from the command line or an input file.
    pub fn try_new(len: usize) -> Option<Self> {
        try_zeroed(len).map(Self)
    }
}

/// Sample types whose all-zero bytes are their `T::default()` (`0`, `+0.0`).
///
/// # Safety
///
/// All-zero bytes must be a valid value of the type, equal to `T::default()`.
pub unsafe trait ZeroIsDefault: Copy + Default {}

// SAFETY: zero is all-zero bytes for every integer type, and +0.0 is all-zero bytes in IEEE 754.
unsafe impl ZeroIsDefault for f32 {}
// SAFETY: as above.
unsafe impl ZeroIsDefault for i16 {}
// SAFETY: as above.
unsafe impl ZeroIsDefault for i32 {}
// SAFETY: as above.
unsafe impl ZeroIsDefault for u8 {}

/// `len` copies of `T::default()` in a boxed slice, or `None` if the allocator refuses (never
/// an abort). The memory comes zeroed from the allocator (`calloc`: for large sizes, pages the
/// kernel maps on first touch), so a window of minutes costs resident memory only as it fills.
pub fn try_zeroed<T: ZeroIsDefault>(len: usize) -> Option<Box<[T]>> {
    if len == 0 || size_of::<T>() == 0 {
        return Some(vec![T::default(); len].into_boxed_slice());
    }
    let layout = std::alloc::Layout::array::<T>(len).ok()?;
    // SAFETY: the layout's size is not zero (`len > 0`, `T` is not zero-sized).
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `ptr` comes from the global allocator with the layout of `[T; len]`, which is
    // what `Box<[T]>` frees it with; its `len` elements are all-zero bytes, each a valid `T`
    // (`ZeroIsDefault`); nothing else owns it.
    Some(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) })
}

impl<T> HeapStorage<T> {
    /// Wraps an existing boxed slice.
    pub fn from_box(samples: Box<[T]>) -> Self {
        Self(samples)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no room at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

// SAFETY: `Box<[T]>` owns `len` initialised, aligned `T`s on the heap. Its data pointer does not
// change when the box (or this newtype) is moved, and stays valid until the box is dropped,
// i.e. for as long as the storage value lives. The slice's length never changes (nothing here
// resizes it). Once the storage is inside a `Ring`, the ring owns it and this type offers no
// other way to reach the items, so the ring's pointer is the only access.
unsafe impl<T: Copy> Storage for HeapStorage<T> {
    type Item = T;

    #[inline]
    fn as_mut_ptr(&mut self) -> *mut T {
        self.0.as_mut_ptr()
    }

    #[inline]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// A shared, `'static`, `Send` handle to a [`Ring`] over [`HeapStorage`].
#[derive(Debug)]
pub struct SharedRing<T: Copy>(Arc<Ring<HeapStorage<T>>>);

impl<T: Copy> Clone for SharedRing<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: Copy> Deref for SharedRing<T> {
    type Target = Ring<HeapStorage<T>>;

    #[inline]
    fn deref(&self) -> &Ring<HeapStorage<T>> {
        &self.0
    }
}

// SAFETY: every clone of the inner `Arc` points to the same heap allocation holding the ring;
// `Deref` always returns a reference to that allocation. It is freed only when the last clone
// is dropped and an `Arc`'s allocation never moves, so the ring stays alive and in place while
// any clone exists.
unsafe impl<T: Copy> RingRef for SharedRing<T> {
    type Storage = HeapStorage<T>;
}

impl<T: Copy + Default> SharedRing<T> {
    /// A ring of `capacity` samples on the heap.
    ///
    /// # Errors
    ///
    /// [`RingError::ZeroCapacity`] for 0, [`RingError::CapacityTooLarge`] past
    /// [`Ring::MAX_CAPACITY`].
    pub fn with_capacity(capacity: usize, overflow: Overflow) -> Result<Self, RingError> {
        if capacity > Ring::<HeapStorage<T>>::MAX_CAPACITY {
            return Err(RingError::CapacityTooLarge {
                capacity,
                max: Ring::<HeapStorage<T>>::MAX_CAPACITY,
            });
        }
        Ok(Self(Arc::new(Ring::new(
            HeapStorage::new(capacity),
            overflow,
        )?)))
    }
}

impl<T: Copy> SharedRing<T> {
    /// A ring over `storage` (e.g. [`HeapStorage::try_new`]'s).
    ///
    /// # Errors
    ///
    /// As for [`with_capacity`](Self::with_capacity).
    pub fn from_storage(storage: HeapStorage<T>, overflow: Overflow) -> Result<Self, RingError> {
        Ok(Self(Arc::new(Ring::new(storage, overflow)?)))
    }

    /// Splits into the producer (for the source) and the consumer (for the worker); both keep a
    /// clone of this handle.
    ///
    /// # Errors
    ///
    /// [`RingError::AlreadySplit`] on the second call.
    #[allow(clippy::type_complexity)]
    pub fn split(&self) -> Result<(Producer<Self>, Consumer<Self>), RingError> {
        w4l_core::ring::split(self.clone())
    }
}

/// The ring the recorder uses: interleaved `f32` samples.
pub type AudioRing = SharedRing<f32>;
/// The writing half a source pushes into (`Send + 'static`, fit for a cpal callback).
pub type AudioProducer = Producer<AudioRing>;
/// The reading half the recorder's worker drains.
pub type AudioConsumer = Consumer<AudioRing>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_and_consumer_cross_threads() {
        let ring = AudioRing::with_capacity(256, Overflow::RejectNewest).expect("ring");
        let (mut producer, mut consumer) = ring.split().expect("split");
        assert_eq!(ring.split().unwrap_err(), RingError::AlreadySplit);
        let total = 100_000usize;
        let writer = std::thread::spawn(move || {
            let mut next = 0usize;
            while next < total {
                let chunk: Vec<f32> = (next..(next + 100).min(total)).map(|i| i as f32).collect();
                let n = producer.push_slice_partial(&chunk);
                next += n;
                if n == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let mut got = 0usize;
        let mut buf = [0.0f32; 64];
        while got < total {
            let n = consumer.pop_slice(&mut buf);
            for (i, x) in buf[..n].iter().enumerate() {
                assert_eq!(*x, (got + i) as f32);
            }
            got += n;
            if n == 0 {
                std::thread::yield_now();
            }
        }
        writer.join().expect("writer");
        let stats = ring.stats();
        assert_eq!(
            (stats.pushed, stats.popped, stats.dropped),
            (total, total, 0)
        );
    }

    #[test]
    fn capacity_errors() {
        assert_eq!(
            AudioRing::with_capacity(0, Overflow::RejectNewest).unwrap_err(),
            RingError::ZeroCapacity
        );
        assert!(matches!(
            AudioRing::with_capacity(usize::MAX, Overflow::RejectNewest),
            Err(RingError::CapacityTooLarge { .. })
        ));
    }
}
