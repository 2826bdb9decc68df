//! A rolling window of the latest `N` frames: "give me the last 5 s" for live
//! transcription (the earlier Python design's `AudioBuffer`).
//!
//! [`Window`] is a single-owner circular buffer of interleaved samples over storage the
//! caller supplies (`[T; N]`, `&mut [T]`, a host `Box<[T]>`, …); it never allocates.
//! A worker [`write`](Window::write)s whatever the ring hands it, and asks for the newest
//! frames with [`latest`](Window::latest).
//!
//! # Frames, partial frames and wrap-around
//!
//! * The storage holds `capacity_frames() = storage.len() / channels` frames. Writes of
//!   any length are accepted; once the storage is full, every new sample overwrites the
//!   oldest one.
//! * The **channel phase belongs to the stream**, not to a write: a write may end in the
//!   middle of a frame, and the next write continues that frame. The number of samples of
//!   the unfinished frame is [`pending_samples`](Window::pending_samples)
//!   (`samples_written() % channels`); they are stored but never returned by
//!   [`latest`](Window::latest) until the frame is complete.
//! * Because frames always start at a multiple of `channels` in the storage, a pending
//!   partial frame in a **full** window occupies the slots of the oldest frame, which is
//!   therefore no longer complete: while a frame is pending, a full window reports
//!   `capacity_frames() - 1` frames available. Completing the frame brings it back to
//!   `capacity_frames()`.
//! * A write longer than the storage keeps only its newest `storage.len()` samples (the
//!   effect is the same as writing it in pieces).
//! * [`clear`](Window::clear) forgets every stored sample but keeps the stream's channel
//!   phase and [`samples_written`](Window::samples_written): if a frame was pending, the
//!   samples that complete it are still taken as the end of *that* frame (so channels stay
//!   aligned), and since its beginning was cleared, it is not returned; the first frame
//!   returned after a clear is the first one that begins after it.
//!
//! ```
//! use w4l_core::window::Window;
//!
//! // Stereo, room for 4 frames.
//! let mut w = Window::new([0i16; 8], 2)?;
//! w.write(&[1, -1, 2, -2, 3]); // the third frame is still missing its right sample
//! assert_eq!(w.frames_available(), 2);
//! assert_eq!(w.pending_samples(), 1);
//!
//! w.write(&[-3, 4, -4, 5, -5]); // completes frame 3, wraps around
//! let mut out = [0i16; 8];
//! assert_eq!(w.latest(10, &mut out), 4);
//! assert_eq!(out, [2, -2, 3, -3, 4, -4, 5, -5]);
//!
//! let mut two = [0i16; 4];
//! assert_eq!(w.latest(2, &mut two), 2);
//! assert_eq!(two, [4, -4, 5, -5]);
//! # Ok::<(), w4l_core::window::WindowError>(())
//! ```

use core::fmt;
use core::marker::PhantomData;

/// Why a [`Window`] could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WindowError {
    /// `channels` was 0.
    ZeroChannels,
    /// The storage has no room for a single sample.
    EmptyStorage,
    /// The storage length is not a whole number of frames.
    NotWholeFrames {
        /// Storage length in samples.
        len: usize,
        /// Channels per frame.
        channels: usize,
    },
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroChannels => f.write_str("window needs at least one channel"),
            Self::EmptyStorage => f.write_str("window storage is empty"),
            Self::NotWholeFrames { len, channels } => write!(
                f,
                "window storage of {len} samples is not a whole number of {channels}-channel frames"
            ),
        }
    }
}

impl core::error::Error for WindowError {}

/// A rolling buffer of the latest complete frames of an interleaved stream.
///
/// See the [module documentation](self) for the partial-frame and wrap-around rules.
///
/// ```
/// use w4l_core::window::Window;
///
/// let mut storage = [0.0f32; 3];
/// let mut w = Window::new(&mut storage[..], 1)?;
/// w.write(&[0.1, 0.2, 0.3, 0.4]);
/// let mut out = [0.0; 3];
/// assert_eq!(w.latest(3, &mut out), 3);
/// assert_eq!(out, [0.2, 0.3, 0.4]);
/// # Ok::<(), w4l_core::window::WindowError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Window<T, S> {
    storage: S,
    /// `storage.len()` at construction, a non-zero multiple of `channels`.
    cap: usize,
    /// Channels per frame, non-zero.
    channels: usize,
    /// Storage index the next sample goes to, `< cap`.
    head: usize,
    /// Samples of the current unfinished frame, `< channels`.
    phase: usize,
    /// Samples stored since creation or the last clear, `<= cap`.
    valid: usize,
    /// Total samples ever written (saturating).
    written: u64,
    _sample: PhantomData<T>,
}

impl<T: Copy, S: AsRef<[T]> + AsMut<[T]>> Window<T, S> {
    /// Creates an empty window over `storage` for `channels`-channel interleaved frames.
    ///
    /// The initial contents of `storage` are ignored. Fails if `channels` is 0, the storage
    /// is empty, or its length is not a multiple of `channels`.
    ///
    /// ```
    /// use w4l_core::window::{Window, WindowError};
    ///
    /// let w = Window::new([0i16; 16_000 * 2], 2)?; // 16 000 stereo frames
    /// assert_eq!((w.capacity_frames(), w.frames_available()), (16_000, 0));
    ///
    /// assert_eq!(Window::new([0f32; 8], 0).unwrap_err(), WindowError::ZeroChannels);
    /// assert_eq!(Window::new([0f32; 0], 2).unwrap_err(), WindowError::EmptyStorage);
    /// assert_eq!(
    ///     Window::new([0f32; 7], 2).unwrap_err(),
    ///     WindowError::NotWholeFrames { len: 7, channels: 2 },
    /// );
    /// # Ok::<(), WindowError>(())
    /// ```
    pub fn new(storage: S, channels: usize) -> Result<Self, WindowError> {
        let cap = storage.as_ref().len();
        if channels == 0 {
            return Err(WindowError::ZeroChannels);
        }
        if cap == 0 {
            return Err(WindowError::EmptyStorage);
        }
        if cap % channels != 0 {
            return Err(WindowError::NotWholeFrames { len: cap, channels });
        }
        Ok(Self {
            storage,
            cap,
            channels,
            head: 0,
            phase: 0,
            valid: 0,
            written: 0,
            _sample: PhantomData,
        })
    }

    /// Appends interleaved samples, overwriting the oldest ones once full.
    ///
    /// Any length is accepted, including partial frames (completed by the next write) and
    /// writes longer than the storage (only the newest `storage.len()` samples are kept).
    pub fn write(&mut self, samples: &[T]) {
        let n = samples.len();
        if n == 0 {
            return;
        }
        // Only the newest `cap` samples can survive; the skipped ones still advance the
        // write position and the channel phase.
        let skip = n.saturating_sub(self.cap);
        let kept = samples.get(skip..).unwrap_or(&[]);
        let start = add_mod(self.head, skip % self.cap, self.cap);
        copy_in(self.storage.as_mut(), start, kept);

        self.head = add_mod(start, kept.len(), self.cap);
        self.phase = add_mod(self.phase, n % self.channels, self.channels);
        self.valid = self.valid.saturating_add(n).min(self.cap);
        self.written = self
            .written
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Copies the newest `frames` complete frames, oldest first, into the start of `out`,
    /// and returns how many frames were copied.
    ///
    /// The count is clamped to [`frames_available`](Self::frames_available) and to
    /// `out.len() / channels`; samples of a pending partial frame are never copied, and
    /// the rest of `out` is left untouched.
    pub fn latest(&self, frames: usize, out: &mut [T]) -> usize {
        let k = frames
            .min(self.frames_available())
            .min(out.len() / self.channels);
        // k <= frames_available() <= cap / channels, so these cannot overflow.
        let len = k * self.channels;
        // The newest complete frame ends where the pending partial frame begins.
        let end = sub_mod(self.head, self.phase, self.cap);
        let start = sub_mod(end, len, self.cap);
        if let Some(dst) = out.get_mut(..len) {
            copy_out(self.storage.as_ref(), start, dst);
        }
        k
    }

    /// Forgets every stored frame (the storage is not overwritten).
    ///
    /// [`samples_written`](Self::samples_written) and the channel phase are kept: if a
    /// frame was pending, the samples completing it are stored, but the frame is not
    /// returned (its beginning was cleared).
    pub fn clear(&mut self) {
        self.valid = 0;
    }

    /// Complete frames that [`latest`](Self::latest) can return now.
    ///
    /// At most [`capacity_frames`](Self::capacity_frames), and one less than that when the
    /// window is full and a partial frame is pending.
    pub fn frames_available(&self) -> usize {
        // Complete frames lie in the valid samples before the pending ones; the valid region
        // may begin mid-frame after a clear, hence the floor division.
        self.valid.saturating_sub(self.phase) / self.channels
    }

    /// How many frames the storage holds: `storage.len() / channels`.
    pub fn capacity_frames(&self) -> usize {
        self.cap / self.channels
    }

    /// Channels per frame.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Total samples ever written, including those overwritten or cleared since
    /// (saturates at `u64::MAX`).
    pub fn samples_written(&self) -> u64 {
        self.written
    }

    /// Samples of the frame currently being written (`samples_written() % channels`),
    /// stored but not yet returned by [`latest`](Self::latest).
    pub fn pending_samples(&self) -> usize {
        self.phase
    }

    /// Fill level as `(frames_available(), capacity_frames())`.
    pub fn fill(&self) -> (usize, usize) {
        (self.frames_available(), self.capacity_frames())
    }

    /// Fill level in per mille (0..=1000), rounded down.
    pub fn fill_permille(&self) -> u16 {
        let (avail, cap) = self.fill();
        // u128 cannot overflow for usize operands; cap is non-zero; the result is <= 1000.
        let permille = (avail as u128 * 1000) / (cap.max(1) as u128);
        u16::try_from(permille).unwrap_or(1000)
    }

    /// The storage, with the samples in ring order (not chronological).
    pub fn storage(&self) -> &[T] {
        self.storage.as_ref()
    }

    /// Gives the storage back.
    pub fn into_storage(self) -> S {
        self.storage
    }
}

/// `(a + b) mod m` without overflow, for `a < m` and `b <= m`.
fn add_mod(a: usize, b: usize, m: usize) -> usize {
    let room = m.saturating_sub(b);
    if a >= room { a - room } else { a + b }
}

/// `(a - b) mod m` without overflow, for `a < m` and `b <= m`.
fn sub_mod(a: usize, b: usize, m: usize) -> usize {
    if a >= b {
        a - b
    } else {
        m.saturating_sub(b - a)
    }
}

/// Copies `src` into the ring `buf` starting at index `at`, wrapping once.
/// Requires `src.len() <= buf.len()` and `at < buf.len()`; otherwise copies what fits.
fn copy_in<T: Copy>(buf: &mut [T], at: usize, src: &[T]) {
    let first = src.len().min(buf.len().saturating_sub(at));
    let (a, b) = src.split_at(first);
    if let Some(d) = buf.get_mut(at..at + a.len()) {
        d.copy_from_slice(a);
    }
    if let Some(d) = buf.get_mut(..b.len()) {
        d.copy_from_slice(b);
    }
}

/// Fills `dst` from the ring `buf` starting at index `at`, wrapping once.
/// Requires `dst.len() <= buf.len()` and `at < buf.len()`; otherwise copies what fits.
fn copy_out<T: Copy>(buf: &[T], at: usize, dst: &mut [T]) {
    let first = dst.len().min(buf.len().saturating_sub(at));
    let (a, b) = dst.split_at_mut(first);
    if let Some(s) = buf.get(at..at + a.len()) {
        a.copy_from_slice(s);
    }
    if let Some(s) = buf.get(..b.len()) {
        b.copy_from_slice(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_window_with_pending_frame_loses_oldest() {
        let mut w = Window::new([0i16; 6], 3).unwrap();
        w.write(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(w.fill(), (2, 2));
        w.write(&[7, 8]);
        assert_eq!(w.fill(), (1, 2));
        let mut out = [0i16; 6];
        assert_eq!(w.latest(5, &mut out), 1);
        assert_eq!(out[..3], [4, 5, 6]);
        w.write(&[9]);
        assert_eq!(w.latest(5, &mut out), 2);
        assert_eq!(out, [4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn huge_write_keeps_phase() {
        let mut w = Window::new([0u32; 4], 2).unwrap();
        let data: [u32; 11] = core::array::from_fn(|i| i as u32);
        w.write(&data);
        assert_eq!(w.pending_samples(), 1);
        let mut out = [0u32; 4];
        assert_eq!(w.latest(9, &mut out), 1);
        assert_eq!(out[..2], [8, 9]);
    }

    /// Storage whose `AsRef`/`AsMut` length changes after construction must not panic.
    struct Shrinking {
        data: [u8; 8],
        calls: core::cell::Cell<usize>,
    }
    impl AsRef<[u8]> for Shrinking {
        fn as_ref(&self) -> &[u8] {
            let c = self.calls.get();
            self.calls.set(c + 1);
            if c == 0 { &self.data } else { &self.data[..1] }
        }
    }
    impl AsMut<[u8]> for Shrinking {
        fn as_mut(&mut self) -> &mut [u8] {
            &mut self.data[..3]
        }
    }

    #[test]
    fn lying_storage_does_not_panic() {
        let s = Shrinking {
            data: [0; 8],
            calls: core::cell::Cell::new(0),
        };
        let mut w = Window::new(s, 2).unwrap();
        for _ in 0..5 {
            w.write(&[1, 2, 3, 4, 5]);
            let mut out = [0u8; 16];
            let _ = w.latest(8, &mut out);
        }
    }
}
