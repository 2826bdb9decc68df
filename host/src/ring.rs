//! The ring between a source and the recorder's worker: the core's heap ring
//! ([`w4l_core::ring::HeapRing`], feature `alloc`) of interleaved 16-bit samples, created
//! split: the format of the take, so a 16-bit device's samples are never converted, and the
//! ring holds twice the audio that `f32` would in the same memory.
//! The [`AudioProducer`] is `Send + 'static` (it moves into a capture callback), the
//! [`AudioConsumer`] lives in the recorder's worker. Also the zeroed allocation the window's
//! storage comes from.
//!
//! ```
//! use w4l::ring::AudioRing;
//! use w4l::core::ring::Overflow;
//!
//! let (mut producer, mut consumer) = AudioRing::new(1024, Overflow::RejectNewest)?;
//! assert_eq!(producer.push_slice(&[16_384; 10]), 10);
//! let mut out = [0; 16];
//! assert_eq!(consumer.pop_slice(&mut out), 10);
//! # Ok::<(), w4l::core::ring::RingError>(())
//! ```

use w4l_core::ring::{Consumer, HeapRing, Producer};

/// The ring the recorder uses: interleaved 16-bit samples on the heap.
pub type AudioRing = HeapRing<i16>;

/// The writing half a source pushes into (`Send + 'static`, fit for a capture callback).
pub type AudioProducer = Producer<AudioRing>;

/// The reading half the recorder's worker drains.
pub type AudioConsumer = Consumer<AudioRing>;

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
