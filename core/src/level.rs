//! Peak / RMS level meter for progress displays.
//!
//! Feed every block the callback (or worker) sees into a [`LevelMeter`], and once per
//! display interval [`take`](LevelMeter::take) a [`Level`] snapshot, which also resets the
//! meter for the next interval.
//!
//! # Conventions
//!
//! * Levels are linear amplitudes on the `f32` scale of [`crate::sample`] (full scale is
//!   1.0); any [`Sample`] format can be fed.
//! * **Peak** is the largest `|x|`; **RMS** is `sqrt(mean(x²))`, so a full-scale sine reads
//!   peak 0 dBFS and RMS −3.01 dBFS (no AES "+3 dB" correction).
//! * **dBFS** is `20·log10(level)`, clamped below at [`DBFS_FLOOR`] (−120 dB), so silence
//!   and an empty interval read −120 dB rather than −∞. There is no upper clamp: float
//!   input above full scale reads above 0 dBFS.
//! * **Non-finite samples (NaN, ±∞) are ignored**: they count neither towards the peak nor
//!   the RMS, only towards [`Level::ignored`], so one corrupt sample cannot poison a whole
//!   interval. Integer formats never produce them.
//! * Squares are summed in `f32` within one [`feed`](LevelMeter::feed) call and in `f64`
//!   across calls, so long intervals keep their precision while the per-sample loop stays
//!   in single precision (cheap on an FPU-equipped microcontroller). Absurd finite float
//!   input (`|x|` above about `1.8e19`, whose square overflows `f32`) reads an RMS of `+∞`;
//!   nothing panics.
//!
//! ```
//! use w4l_core::level::LevelMeter;
//!
//! let mut meter = LevelMeter::new();
//! meter.feed(&[0.5f32, -0.5, 0.5, -0.5]);
//! let level = meter.take();
//! assert_eq!(level.peak, 0.5);
//! assert_eq!(level.rms, 0.5);
//! assert!((level.peak_dbfs() - -6.0206).abs() < 1e-3);
//! assert_eq!(meter.peak_dbfs(), -120.0); // reset by take()
//! ```

use crate::sample::Sample;

/// The lowest dBFS value reported: silence and empty intervals read this instead of −∞.
pub const DBFS_FLOOR: f32 = -120.0;

/// Converts a linear amplitude to dBFS (`20·log10(amplitude)`), clamped below at
/// [`DBFS_FLOOR`]. Zero, negative and NaN amplitudes give the floor; `+∞` gives `+∞`.
pub fn to_dbfs(amplitude: f32) -> f32 {
    // `>` is false for NaN, which therefore takes the floor branch too.
    if amplitude > 0.0 {
        let db = 20.0 * libm::log10f(amplitude);
        if db > DBFS_FLOOR { db } else { DBFS_FLOOR }
    } else {
        DBFS_FLOOR
    }
}

/// The correctly rounded square root of `x` (IEEE 754 `sqrt`, round to nearest, as
/// `libm::sqrt`) for `x >= 0`, `+∞` and NaN (returned unchanged, as is `-0.0`); negative `x`
/// never occurs here (a mean of squares) and gives NaN.
///
/// Digit by digit in integers, two radicand bits per step: a few dozen instructions instead
/// of a general-purpose soft-float implementation, for a figure computed once per display
/// interval.
fn sqrt(x: f64) -> f64 {
    const SIGN: u64 = 1 << 63;
    const INFINITY: u64 = 0x7ff0 << 48;
    let bits = x.to_bits();
    // ±0, +∞ and NaN are their own roots; other negatives (sign set, up to −∞) have none.
    if bits == 0 || bits >= INFINITY {
        return if bits > SIGN && bits <= SIGN | INFINITY {
            f64::NAN
        } else {
            x
        };
    }
    // x = m · 2^e with m < 2^53 (exponent field 0: subnormal, no implicit bit, the
    // exponent of the smallest normal); normalised to m in [2^52, 2^53), then e made even:
    // m in [2^52, 2^54).
    let mut e = (bits >> 52) as i32;
    let mut m = bits & ((1 << 52) - 1);
    if e == 0 {
        e = 1;
    } else {
        m |= 1 << 52;
    }
    e -= 1075;
    while m < 1 << 52 {
        m <<= 1;
        e -= 1;
    }
    if e & 1 != 0 {
        m <<= 1;
        e -= 1;
    }
    // q = floor(sqrt(m · 2^54)), a 54-bit integer in [2^53, 2^54): the 53-bit significand
    // and one rounding bit; `rem` = m · 2^54 − q², the radicand fed two bits at a time from
    // the top (m shifted to the top of `rest`, then zeros).
    let (mut q, mut rem, mut rest) = (0u64, 0u64, m << 10);
    for _ in 0..54 {
        rem = (rem << 2) | (rest >> 62);
        rest <<= 2;
        let trial = (q << 2) | 1;
        q <<= 1;
        if rem >= trial {
            rem -= trial;
            q |= 1;
        }
    }
    // Round to nearest: up when the rounding bit is set. An exact tie would need
    // q² = m · 2^54 with q odd, but m · 2^54 is even; so the bit alone decides. The carry of
    // a significand rounded up to 2^53 correctly bumps the exponent.
    // sqrt(x) = q · 2^(e/2 − 27), i.e. the significand q / 2 times 2^(e/2 − 26).
    let exponent = (e / 2 + 26 + 1023) as u64;
    f64::from_bits((exponent << 52) + q.div_ceil(2) - (1 << 52))
}

/// A snapshot of one display interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Level {
    /// Largest `|x|` seen (linear, full scale 1.0); 0 if nothing was counted.
    pub peak: f32,
    /// Root mean square of the counted samples (linear); 0 if nothing was counted.
    pub rms: f32,
    /// Samples counted (finite ones).
    pub samples: u64,
    /// Non-finite samples (NaN, ±∞) that were ignored.
    pub ignored: u64,
}

impl Level {
    /// [`peak`](Self::peak) in dBFS, floored at [`DBFS_FLOOR`].
    pub fn peak_dbfs(&self) -> f32 {
        to_dbfs(self.peak)
    }

    /// [`rms`](Self::rms) in dBFS, floored at [`DBFS_FLOOR`].
    pub fn rms_dbfs(&self) -> f32 {
        to_dbfs(self.rms)
    }
}

/// Accumulates peak and RMS over the samples fed since the last reset.
///
/// See the [module documentation](self) for conventions.
///
/// ```
/// use w4l_core::level::LevelMeter;
///
/// let mut meter = LevelMeter::new();
/// meter.feed(&[0.25f32, f32::NAN, -1.0]);
/// assert_eq!(meter.peak(), 1.0);
/// assert_eq!(meter.level().ignored, 1);
/// meter.reset();
/// assert_eq!(meter.rms(), 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LevelMeter {
    peak: f32,
    sum_sq: f64,
    samples: u64,
    ignored: u64,
}

impl LevelMeter {
    /// A meter with nothing fed yet.
    pub const fn new() -> Self {
        Self {
            peak: 0.0,
            sum_sq: 0.0,
            samples: 0,
            ignored: 0,
        }
    }

    /// Adds a block of samples (any [`Sample`] format; interleaved channels are metered
    /// together). Non-finite samples are ignored and counted separately.
    pub fn feed<T: Sample>(&mut self, samples: &[T]) {
        let mut peak = self.peak;
        let mut sum_sq = 0.0f32;
        let mut counted: u64 = 0;
        for s in samples {
            let x = s.to_f32();
            if x.is_finite() {
                peak = peak.max(x.abs());
                sum_sq += x * x;
                counted += 1;
            }
        }
        self.peak = peak;
        self.sum_sq += f64::from(sum_sq);
        // Slice lengths fit in u64 on every supported target.
        let total = u64::try_from(samples.len()).unwrap_or(u64::MAX);
        self.samples = self.samples.saturating_add(counted);
        self.ignored = self.ignored.saturating_add(total.saturating_sub(counted));
    }

    /// Largest `|x|` since the last reset (linear).
    pub fn peak(&self) -> f32 {
        self.peak
    }

    /// Root mean square since the last reset (linear); 0 if nothing was counted.
    pub fn rms(&self) -> f32 {
        if self.samples == 0 {
            return 0.0;
        }
        // u64 → f64 may round for astronomically long intervals; harmless for a meter.
        sqrt(self.sum_sq / self.samples as f64) as f32
    }

    /// [`peak`](Self::peak) in dBFS, floored at [`DBFS_FLOOR`].
    pub fn peak_dbfs(&self) -> f32 {
        to_dbfs(self.peak())
    }

    /// [`rms`](Self::rms) in dBFS, floored at [`DBFS_FLOOR`].
    pub fn rms_dbfs(&self) -> f32 {
        to_dbfs(self.rms())
    }

    /// The current figures, without resetting.
    pub fn level(&self) -> Level {
        Level {
            peak: self.peak(),
            rms: self.rms(),
            samples: self.samples,
            ignored: self.ignored,
        }
    }

    /// Forgets everything fed so far.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The current figures, then a reset: call once per display interval.
    pub fn take(&mut self) -> Level {
        let level = self.level();
        self.reset();
        level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digit-by-digit `sqrt` against std's (IEEE, correctly rounded) and libm's, bit for
    /// bit. (libm's uses inline assembly on x86_64, which Miri cannot run.)
    #[test]
    fn sqrt_is_libm_sqrt() {
        let check = |x: f64| {
            let got = sqrt(x);
            let wants = [x.sqrt(), if cfg!(miri) { x.sqrt() } else { libm::sqrt(x) }];
            for want in wants {
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "sqrt({x:e}) = {got:e}, expected {want:e}"
                );
            }
        };
        for x in [
            0.0,
            -0.0,
            1.0,
            2.0,
            4.0,
            0.25,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::INFINITY,
        ] {
            check(x);
        }
        check(f64::NAN);
        check(-1.0);
        check(f64::from_bits(1)); // smallest subnormal
        check(f64::from_bits((1 << 52) - 1)); // largest subnormal
        // Perfect squares and their neighbours, and pseudo-random bit patterns (xorshift).
        let n: u64 = if cfg!(miri) { 300 } else { 300_000 };
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for i in 1..n {
            let s = (i * 7_919) as f64;
            for x in [
                s * s,
                f64::from_bits((s * s).to_bits() + 1),
                f64::from_bits((s * s).to_bits() - 1),
            ] {
                check(x);
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            check(f64::from_bits(state >> 1)); // positive: normal, subnormal, inf or NaN
        }
    }
}
