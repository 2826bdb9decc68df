//! Saturating conversion between the sample formats an audio callback delivers
//! (`f32`, `i16`, `u16`, `i32`, `u8`, `i8`) and the `f32` / `i16` formats w4l stores.
//!
//! # Conventions
//!
//! * **Scaling by a power of two.** An `N`-bit signed integer maps to `f32` by dividing by
//!   `2^(N-1)`: `i16` by 32768, `i8` by 128, `i32` by 2³¹. So the most negative integer maps
//!   to exactly `-1.0` and the most positive one to slightly less than `+1.0`
//!   (`i16::MAX` ↔ `32767 / 32768 ≈ 0.99997`). Unsigned formats are offset binary: the
//!   midpoint (`128u8`, `32768u16`) is silence, and `u8`/`u16` behave exactly like
//!   `i8`/`i16` with the top bit flipped.
//! * **Float → integer rounds to nearest, ties to even, then saturates.** Anything at or
//!   above the largest representable value (for `i16`: `>= 32767.5 / 32768`, including
//!   `+1.0`, `+1.2` and `+∞`) becomes the integer maximum; anything at or below the minimum
//!   becomes the integer minimum; **NaN becomes silence** ([`Sample::EQUILIBRIUM`]). The
//!   earlier design wrapped around (`+1.2` → `-26216`); this one never does.
//! * **`f32` → `f32` is the identity**: out-of-range values (headroom) and even NaN pass
//!   through unchanged. Saturation happens only where an integer format is produced.
//! * **Round trips.** `i8`, `u8`, `i16` and `u16` survive `x → f32 → x` exactly, for every
//!   value (the scale is a power of two and every such integer is exact in `f32`).
//!   `i32` keeps only `f32`'s 24 significant bits: values with `|x| <= 2^24` round-trip
//!   exactly; larger ones come back within half an `f32` step of `x`, that is
//!   `|back - x| <= 2^(⌊log2|x|⌋ - 24)`, at most 64 (and `i32::MAX`, which rounds up to
//!   `2^31`, saturates back to itself).
//! * **Integer → integer is direct**, without a float round trip: widening shifts left
//!   (exact), narrowing to `i16` from `i32` rounds to nearest, ties to even, like the float
//!   route.
//!
//! [`convert`] is the slice entry point used in the audio callback: a straight loop with
//! no branch per sample. Float → 16/8-bit conversion is a multiply, a NaN select, a clamp
//! and an add of a rounding constant whose bits then hold the integer (no float → int
//! instruction), so it vectorizes fully (checked on x86-64 SSE2: `mulps`, `cmpordps`,
//! `maxps`, `minps`, `addps`, shuffle); on Cortex-M4F it is predicated, branch-free code.
//!
//! ```
//! use w4l_core::sample::{Sample, convert};
//!
//! assert_eq!(i16::from_f32(1.2), 32767);
//! assert_eq!(i16::from_f32(-1.2), -32768);
//! assert_eq!(i16::from_f32(f32::NAN), 0);
//! assert_eq!(i16::MIN.to_f32(), -1.0);
//!
//! let cpal_data: [u16; 3] = [0, 32768, 65535];
//! let mut stored = [0i16; 3];
//! assert_eq!(convert(&cpal_data, &mut stored), 3);
//! assert_eq!(stored, [-32768, 0, 32767]);
//! ```

/// `2^23`: every `f32` at or above it in magnitude is an integer.
const TWO_POW_23: f32 = 8_388_608.0;

/// `1.5 · 2^23`, the rounding constant of [`round_clamped`].
const ROUND_MAGIC: f32 = 12_582_912.0;
/// The bit pattern of [`ROUND_MAGIC`].
const ROUND_MAGIC_BITS: i32 = 0x4B40_0000;

/// Rounds `x` to the nearest integer (ties to even) after clamping it to `[lo, hi]`;
/// NaN gives 0. Requires `-2^22 <= lo <= hi <= 2^22`.
///
/// Adding `1.5 · 2^23` moves the value into the binade where the `f32` step is exactly 1,
/// so the hardware's round-to-nearest-even does the rounding, and the integer then sits in
/// the low mantissa bits. No branch, no float→int conversion instruction: the slice loop
/// vectorizes to compare/select, min/max, add and integer subtract.
#[inline(always)]
fn round_clamped(x: f32, lo: f32, hi: f32) -> i32 {
    let x = if x.is_nan() { 0.0 } else { x };
    let x = x.clamp(lo, hi);
    (x + ROUND_MAGIC).to_bits() as i32 - ROUND_MAGIC_BITS
}

/// Rounds to the nearest integer, ties to even, without `std`, for any `f32` (the `i32`
/// path, whose range exceeds [`round_clamped`]'s).
///
/// For `|x| < 2^23`, adding `2^23` to `|x|` pushes the value into the binade where the
/// `f32` step is exactly 1, so the hardware's round-to-nearest-even does the rounding;
/// larger values are already integers. NaN stays NaN (and becomes 0 in the final `as`
/// cast). Compiles to a select, not a branch.
#[inline(always)]
fn round_ties_even(x: f32) -> f32 {
    let a = x.abs();
    if a < TWO_POW_23 {
        ((a + TWO_POW_23) - TWO_POW_23).copysign(x)
    } else {
        x
    }
}

/// A sample format that can be converted to and from every other one.
///
/// Implemented for `f32`, `i16`, `u16`, `i32`, `u8` and `i8` (the formats cpal delivers);
/// see the [module documentation](self) for the scaling and rounding conventions.
///
/// ```
/// use w4l_core::sample::Sample;
///
/// assert_eq!(u8::EQUILIBRIUM, 128);
/// assert_eq!(0u8.to_f32(), -1.0);
/// assert_eq!(u8::from_f32(0.0), 128);
/// assert_eq!(i8::MIN.to_i16(), i16::MIN);
/// assert_eq!(i16::from_sample(0x4000_0000i32), 0x4000);
/// ```
pub trait Sample: Copy + PartialEq + core::fmt::Debug {
    /// The value that means silence: 0 for signed and float formats, the midpoint for
    /// unsigned ones.
    const EQUILIBRIUM: Self;

    /// Converts to `f32` in the nominal range `[-1.0, 1.0)` (exact for every format except
    /// `i32`, which is rounded to 24 significant bits).
    fn to_f32(self) -> f32;

    /// Converts from `f32`, rounding to nearest (ties to even) and saturating; NaN becomes
    /// [`Self::EQUILIBRIUM`]. For `f32` itself this is the identity.
    fn from_f32(v: f32) -> Self;

    /// Converts to `i16` directly (no float round trip for integer formats).
    ///
    /// Equal to `i16::from_f32(self.to_f32())` for every format except `i32`, where the
    /// direct route is the correctly rounded one (the float route may differ by one step
    /// because it rounds twice).
    fn to_i16(self) -> i16 {
        i16::from_f32(self.to_f32())
    }

    /// Converts to `i32` directly; exact for every integer format.
    fn to_i32(self) -> i32 {
        i32::from_f32(self.to_f32())
    }

    /// Converts from any other sample format, taking the most precise route: `f32` via
    /// [`Sample::to_f32`], `i16`/`u16` via [`Sample::to_i16`], `i32` via
    /// [`Sample::to_i32`], `i8`/`u8` via `f32`.
    fn from_sample<A: Sample>(a: A) -> Self {
        Self::from_f32(a.to_f32())
    }
}

impl Sample for f32 {
    const EQUILIBRIUM: Self = 0.0;

    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }

    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }

    #[inline(always)]
    fn from_sample<A: Sample>(a: A) -> Self {
        a.to_f32()
    }
}

impl Sample for i16 {
    const EQUILIBRIUM: Self = 0;

    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from(self) * (1.0 / 32_768.0)
    }

    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        round_clamped(v * 32_768.0, -32_768.0, 32_767.0) as i16
    }

    #[inline(always)]
    fn to_i16(self) -> i16 {
        self
    }

    #[inline(always)]
    fn to_i32(self) -> i32 {
        i32::from(self) << 16
    }

    #[inline(always)]
    fn from_sample<A: Sample>(a: A) -> Self {
        a.to_i16()
    }
}

impl Sample for u16 {
    const EQUILIBRIUM: Self = 0x8000;

    #[inline(always)]
    fn to_f32(self) -> f32 {
        self.to_i16().to_f32()
    }

    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        (i16::from_f32(v) as u16) ^ 0x8000
    }

    #[inline(always)]
    fn to_i16(self) -> i16 {
        (self ^ 0x8000) as i16
    }

    #[inline(always)]
    fn to_i32(self) -> i32 {
        i32::from(self.to_i16()) << 16
    }

    #[inline(always)]
    fn from_sample<A: Sample>(a: A) -> Self {
        (a.to_i16() as u16) ^ 0x8000
    }
}

impl Sample for i8 {
    const EQUILIBRIUM: Self = 0;

    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from(self) * (1.0 / 128.0)
    }

    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        round_clamped(v * 128.0, -128.0, 127.0) as i8
    }

    #[inline(always)]
    fn to_i16(self) -> i16 {
        i16::from(self) << 8
    }

    #[inline(always)]
    fn to_i32(self) -> i32 {
        i32::from(self) << 24
    }
}

impl Sample for u8 {
    const EQUILIBRIUM: Self = 0x80;

    #[inline(always)]
    fn to_f32(self) -> f32 {
        ((self ^ 0x80) as i8).to_f32()
    }

    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        (i8::from_f32(v) as u8) ^ 0x80
    }

    #[inline(always)]
    fn to_i16(self) -> i16 {
        ((self ^ 0x80) as i8).to_i16()
    }

    #[inline(always)]
    fn to_i32(self) -> i32 {
        ((self ^ 0x80) as i8).to_i32()
    }
}

impl Sample for i32 {
    const EQUILIBRIUM: Self = 0;

    #[inline(always)]
    fn to_f32(self) -> f32 {
        // `as` rounds to nearest (ties to even); the power-of-two scale is exact.
        (self as f32) * (1.0 / 2_147_483_648.0)
    }

    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        // The saturating `as` cast clamps (2^31 → i32::MAX) and maps NaN to 0.
        round_ties_even(v * 2_147_483_648.0) as i32
    }

    #[inline(always)]
    fn to_i16(self) -> i16 {
        // Round to nearest, ties to even, on the top 16 bits; saturate the one case that
        // rounds past i16::MAX.
        let q = self >> 16;
        let r = self & 0xFFFF;
        let up = (r + 0x7FFF + (q & 1)) >> 16;
        // `q + up` is at most 32768 and at least -32768: no overflow in i32.
        (q + up).min(i32::from(i16::MAX)) as i16
    }

    #[inline(always)]
    fn to_i32(self) -> i32 {
        self
    }

    #[inline(always)]
    fn from_sample<A: Sample>(a: A) -> Self {
        a.to_i32()
    }
}

/// Converts `src` into `dst` sample by sample with [`Sample::from_sample`], saturating.
///
/// Copies `min(src.len(), dst.len())` samples and returns that count; the rest of `dst` is
/// left untouched. Never panics. Runs in the audio callback: the loop has no branch besides
/// the clamp and auto-vectorizes.
///
/// ```
/// use w4l_core::sample::convert;
///
/// let from_cpal = [0.5f32, 1.2, -1.2, f32::NAN];
/// let mut stored = [0i16; 8];
/// assert_eq!(convert(&from_cpal, &mut stored), 4);
/// assert_eq!(stored[..4], [16384, 32767, -32768, 0]);
///
/// let mut back = [0f32; 2];
/// assert_eq!(convert(&stored, &mut back), 2);
/// assert_eq!(back, [0.5, 32767.0 / 32768.0]);
/// ```
#[inline]
pub fn convert<A: Sample, B: Sample>(src: &[A], dst: &mut [B]) -> usize {
    let n = src.len().min(dst.len());
    for (d, s) in dst.iter_mut().zip(src) {
        *d = B::from_sample(*s);
    }
    n
}
