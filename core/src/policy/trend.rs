//! Least-squares trend estimator over a fixed window of pressure samples.
//!
//! [`Trend`] keeps the last [`HISTORY_LEN`] `(time, pressure)` samples in a ring and fits a
//! straight line through them by ordinary least squares, entirely in exact `i64` integer
//! arithmetic (bounded inputs make every intermediate fit; see [`Trend::forecast`]), so the
//! result is bit-identical on every target and cheap on a 32-bit MCU.
//!
//! Units:
//! - time `x` in milliseconds, taken relative to the oldest sample in the window;
//! - pressure `y` in parts per million (ppm) of the limit: `1_000_000` ppm = 100 % = the limit;
//! - slope `b = (n·Σxy − Σx·Σy) / (n·Σx² − (Σx)²)` in ppm per millisecond, reported rounded
//!   toward zero in ppm per **second** ([`Forecast::slope_ppm_per_s`]);
//! - the fitted pressure at the newest sample `ŷ = ȳ + b·(x_last − x̄)` in ppm;
//! - the time to reach the limit `(1_000_000 − ŷ) / b` in milliseconds, only for a
//!   positive slope.
//!
//! A least-squares fit over 16 samples attenuates uncorrelated noise: with 1 s sampling the
//! slope's standard deviation is σ·√(12 / (n·(n²−1))) ≈ 0.054·σ per second, so ±40 ‰ noise
//! gives a slope jitter of about ±1.3 ‰/s.
//!
//! ```
//! use w4l_core::policy::trend::Trend;
//!
//! let mut trend = Trend::new();
//! for i in 0..16u64 {
//!     trend.push(i * 1000, 500_000 + i as u32 * 10_000); // +1 %/s from 50 %
//! }
//! let f = trend.forecast().unwrap();
//! assert_eq!((f.slope_ppm_per_s, f.fitted_ppm), (10_000, 650_000));
//! assert_eq!(f.eta_ms, Some(35_000)); // 35 % to go at 1 %/s
//! assert_eq!(f.recent_eta_ms, Some(35_000)); // the newest half agrees: sustained growth
//! assert_eq!(f.sustained_eta_ms(), Some(35_000));
//! ```
//!
//! # Why a hand-written ring
//!
//! The window is two arrays and a head index, not a `heapless` container, because measurement
//! said so. As a [`heapless::Deque`] of `(time, pressure)` pairs (drop the oldest when full,
//! iterate oldest first) it was 25 lines shorter, but the core's `.text` on thumbv7m grew by
//! 198 B (7,924 B against 7,726 B, `scripts/firmware`) and a forecast took 1.17× as long on
//! the host (1.2× for a whole `Policy::step`; fastest of 15 alternating rounds of 200 000
//! calls, old and new in the same run): walking the deque's two halves costs more than a
//! masked index. `heapless::HistoryBuf`, made for exactly this, also leaves a bounds-check
//! panic branch in the core (its `write` indexes its storage).

use super::MAX_PRESSURE_PPM;

/// Number of samples the trend window holds (16: 16 s at the recorder's 1 Hz sampling).
pub const HISTORY_LEN: usize = 16;

/// Fewest samples before [`Trend::forecast`] reports anything (half the window).
pub const MIN_SAMPLES: usize = HISTORY_LEN / 2;

/// Pressure of the limit itself, in ppm (100 %).
pub const LIMIT_PPM: u32 = 1_000_000;

/// Result of a trend fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Forecast {
    /// Growth rate in ppm of the limit per second (negative: shrinking).
    pub slope_ppm_per_s: i64,
    /// Fitted pressure at the newest sample, ppm, clamped to `0..=u32::MAX`.
    pub fitted_ppm: u32,
    /// Milliseconds until the fitted line reaches [`LIMIT_PPM`]; `None` when not growing.
    /// `Some(0)` when the fit is already at or past the limit.
    pub eta_ms: Option<u64>,
    /// The same for a fit over only the newest [`MIN_SAMPLES`] samples. A step change (idle
    /// → plateau) looks like growth to the full window for a while, but not to the newest
    /// half once the step is older than [`MIN_SAMPLES`] samples.
    pub recent_eta_ms: Option<u64>,
}

impl Forecast {
    /// Sustained growth: both the full-window and the newest-half fit reach the limit; the
    /// later of the two etas. This is what the policy compares with its horizon.
    pub fn sustained_eta_ms(&self) -> Option<u64> {
        match (self.eta_ms, self.recent_eta_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        }
    }

    /// Milliseconds until the full-window fit reaches `ppm` (`Some(0)` if already there);
    /// `None` when not growing.
    pub fn eta_to_ms(&self, ppm: u32) -> Option<u64> {
        if self.slope_ppm_per_s <= 0 {
            return None;
        }
        let remaining = u64::from(ppm.saturating_sub(self.fitted_ppm));
        let slope = self.slope_ppm_per_s.unsigned_abs();
        Some(remaining.saturating_mul(1000) / slope)
    }
}

/// Fixed ring of the last [`HISTORY_LEN`] samples with a least-squares fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trend {
    t_ms: [u64; HISTORY_LEN],
    ppm: [u32; HISTORY_LEN],
    /// Index of the next slot to write.
    head: usize,
    len: usize,
}

impl Default for Trend {
    fn default() -> Self {
        Self::new()
    }
}

impl Trend {
    /// An empty window.
    pub const fn new() -> Self {
        Self {
            t_ms: [0; HISTORY_LEN],
            ppm: [0; HISTORY_LEN],
            head: 0,
            len: 0,
        }
    }

    /// Number of samples held (at most [`HISTORY_LEN`]).
    pub const fn len(&self) -> usize {
        self.len
    }

    /// `true` before the first sample.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forget every sample.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    /// Append a sample, dropping the oldest when full. Times should not decrease (the policy
    /// clamps them); a decreasing time only makes the fit meaningless, never panics.
    pub fn push(&mut self, t_ms: u64, ppm: u32) {
        // `head < HISTORY_LEN` always; the modulo only lets the compiler see it.
        let head = self.head % HISTORY_LEN;
        if let Some(slot) = self.t_ms.get_mut(head) {
            *slot = t_ms;
        }
        if let Some(slot) = self.ppm.get_mut(head) {
            *slot = ppm;
        }
        self.head = (head + 1) % HISTORY_LEN;
        if self.len < HISTORY_LEN {
            self.len += 1;
        }
    }

    /// Least-squares fit of the window (and of its newest [`MIN_SAMPLES`] samples); `None`
    /// with fewer than [`MIN_SAMPLES`] samples or when every sample has the same time.
    ///
    /// Exact integer arithmetic in `i64` (no `i128`: small and fast on 32-bit MCUs), made
    /// safe by bounding the inputs, documented here because it shows for extreme inputs:
    ///
    /// - pressures above [`MAX_PRESSURE_PPM`] (200 %, the most the policy ever feeds) count
    ///   as [`MAX_PRESSURE_PPM`];
    /// - times are taken relative to the oldest sample; when the window spans more than
    ///   [`MAX_EXACT_SPAN_MS`] (15 samples 2 s apart) they are rounded down to units of
    ///   2<sup>k</sup> ms, with the smallest `k` that brings the span within it. The fit is
    ///   then that of the rounded times (a relative error below 2<sup>−14</sup> of the span)
    ///   and the etas are multiples of 2<sup>k</sup> ms. A window spanning at most
    ///   [`MAX_EXACT_SPAN_MS`] — 1 Hz sampling — is fitted exactly.
    ///
    /// ```
    /// use w4l_core::policy::trend::Trend;
    /// let mut t = Trend::new();
    /// for i in 0..8u64 { t.push(i * 500, 300_000); }
    /// let f = t.forecast().unwrap();
    /// assert_eq!((f.slope_ppm_per_s, f.fitted_ppm, f.eta_ms), (0, 300_000, None));
    ///
    /// // 30 s sampling: times in units of 16 ms, same slope.
    /// let mut t = Trend::new();
    /// for i in 0..16u64 { t.push(i * 30_000, 100_000 + i as u32 * 30_000); }
    /// let f = t.forecast().unwrap();
    /// assert_eq!((f.slope_ppm_per_s, f.fitted_ppm), (1_000, 550_000));
    /// assert_eq!(f.eta_ms, Some(450_000));
    /// ```
    pub fn forecast(&self) -> Option<Forecast> {
        let len = self.len;
        if len < MIN_SAMPLES {
            return None;
        }
        // Oldest sample: `head` when full, else index 0.
        let start = if len == HISTORY_LEN { self.head } else { 0 };
        let t0 = *self.t_ms.get(start)?;
        // Sample `k` (0 = oldest): its time offset from the oldest sample and its pressure.
        let sample = |k: usize| {
            let i = (start + k) % HISTORY_LEN;
            let x = self.t_ms.get(i).map_or(0, |t| t.saturating_sub(t0));
            let y = self.ppm.get(i).map_or(0, |&y| y.min(MAX_PRESSURE_PPM));
            (x, y)
        };
        // The OR of the offsets has the bit length of the largest. The time unit 2^shift ms
        // brings every one below 2^X_BITS.
        let span = (0..len).fold(0, |span, k| span | sample(k).0);
        let shift = (u64::BITS - span.leading_zeros()).saturating_sub(X_BITS);
        let recent_from = len.saturating_sub(MIN_SAMPLES);
        let mut all = Sums::default();
        let mut recent = Sums::default();
        for k in 0..len {
            let (x, y) = sample(k);
            // Below 2^X_BITS and at most MAX_PRESSURE_PPM (< 2^21): both fit in an i32.
            let (x, y) = ((x >> shift) as i32, y as i32);
            all.add(x, y);
            if k >= recent_from {
                recent.add(x, y);
            }
        }
        let recent_eta_ms = recent.fit(shift, None).and_then(|f| f.eta_ms);
        all.fit(shift, recent_eta_ms)
    }
}

/// Widest window span, in ms, that [`Trend::forecast`] fits without rounding times:
/// 2<sup>15</sup> − 1 ms.
pub const MAX_EXACT_SPAN_MS: u64 = (1 << X_BITS) - 1;

/// Bits of a (possibly rounded) time offset: `0 <= x < 2^X_BITS`.
const X_BITS: u32 = 15;

/// `num / den` rounded toward zero, for `den > 0`; 0 when `num <= 0` (and, never reached,
/// when `den == 0`). Unsigned division: no overflow case, no panic path.
#[inline(never)]
fn positive_div(num: i64, den: i64) -> u64 {
    if num <= 0 {
        return 0;
    }
    num.unsigned_abs()
        .checked_div(den.unsigned_abs())
        .unwrap_or(0)
}

/// Running least-squares sums over at most [`HISTORY_LEN`] = 16 points with
/// `0 <= x < X = 2^15` and `0 <= y <= Y = 2·10^6 < 2^21`.
///
/// Every intermediate fits in `i64` (< 2^63 ≈ 9.2·10^18), so plain arithmetic cannot
/// overflow (n ≤ 16); the narrow ones are kept in `i32`, cheap on a 32-bit MCU:
///
/// - `x² < 2^30`, `Σx < 2^19`, `Σy ≤ 3.2·10^7 < 2^25` (`i32`), `Σx² < 2^34`, `Σxy < 2^40`;
/// - `num = nΣxy − ΣxΣy`: both products < 2^44; and `|num| ≤ n²XY/4 < 2^42` (Cauchy–Schwarz
///   on the centred values, with each centred sum of squares at most `n²·range²/4`);
/// - `den = nΣx² − (Σx)²`: both products < 2^38, and `0 <= den <= n²X²/4 = 2^36`;
///   `n·den <= 2^40`;
/// - `D = n·x_last − Σx`: `|D| < 2^19`;
/// - `ŷ·n·den = Σy·den + num·D`: each term < 2.3·10^18, the sum < 4.6·10^18;
/// - `LIMIT·n·den <= 10^6·2^40 < 1.1·10^18`, so `LIMIT·n·den − ŷ·n·den` is below 5.7·10^18;
/// - `n·num < 2^46`, `num·1000 < 2^52`.
#[derive(Clone, Copy, Default)]
struct Sums {
    n: i32,
    sx: i32,
    sy: i32,
    sxx: i64,
    sxy: i64,
    x_last: i32,
}

impl Sums {
    fn add(&mut self, x: i32, y: i32) {
        self.n += 1;
        self.sx += x;
        self.sy += y;
        self.sxx += i64::from(x * x);
        self.sxy += i64::from(x) * i64::from(y);
        self.x_last = x;
    }

    /// The fitted line, x in time units of 2^shift ms: slope = `num / den` ppm per unit,
    /// `ŷ = fitted_num / nden` at the newest sample; `None` when every x is the same (no
    /// slope). `recent_eta_ms` is passed through.
    fn fit(&self, shift: u32, recent_eta_ms: Option<u64>) -> Option<Forecast> {
        let n = i64::from(self.n);
        let (sx, sy) = (i64::from(self.sx), i64::from(self.sy));
        let num = n * self.sxy - sx * sy;
        let den = n * self.sxx - sx * sx;
        if den <= 0 {
            return None;
        }
        let nden = n * den;
        // ŷ·n·den = Σy·den + num·(n·x_last − Σx).
        let fitted_num = sy * den + num * i64::from(self.n * self.x_last - self.sx);
        // Slope in ppm/ms is num / (den · 2^shift); scaled to ppm/s, rounded toward zero:
        // ⌊⌊|num|·1000 / den⌋ / 2^shift⌋ = ⌊|num|·1000 / (den · 2^shift)⌋. |num · 1000| < 2^52
        // and shift < 64 − X_BITS.
        let slope = (positive_div(num.abs() * 1000, den) >> shift) as i64;
        // Eta: (LIMIT − ŷ) / slope = (LIMIT·n·den − ŷ·n·den) / (n·num) time units, floored,
        // in ms; `None` when not growing, `Some(0)` at or past the limit.
        let eta_ms = (num > 0).then(|| {
            let units = positive_div(i64::from(LIMIT_PPM) * nden - fitted_num, n * num);
            if shift < units.leading_zeros() {
                units << shift
            } else {
                u64::MAX
            }
        });
        Some(Forecast {
            slope_ppm_per_s: if num < 0 { -slope } else { slope },
            fitted_ppm: u32::try_from(positive_div(fitted_num, nden)).unwrap_or(u32::MAX),
            eta_ms,
            recent_eta_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_newest_window_and_clears() {
        let mut t = Trend::new();
        assert!(t.is_empty());
        t.push(0, 100);
        assert!(t.forecast().is_none(), "too few samples");
        t.clear();
        let mut newest = Trend::new();
        for i in 0..20u64 {
            t.push(i * 1000, i as u32 * 1000);
            if i >= 4 {
                newest.push(i * 1000, i as u32 * 1000);
            }
        }
        assert_eq!(t.len(), HISTORY_LEN);
        assert_eq!(
            t.forecast(),
            newest.forecast(),
            "the oldest 4 samples were dropped"
        );
        t.clear();
        assert!(t.is_empty());
        t.push(1000, 250_000);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn forecast_etas() {
        let f = Forecast {
            slope_ppm_per_s: 2_000,
            fitted_ppm: 600_000,
            eta_ms: Some(5),
            recent_eta_ms: Some(9),
        };
        assert_eq!(f.sustained_eta_ms(), Some(9), "the later of the two");
        let step = Forecast {
            recent_eta_ms: None,
            ..f
        };
        assert_eq!(
            step.sustained_eta_ms(),
            None,
            "the newest half does not grow"
        );
        assert_eq!(f.eta_to_ms(700_000), Some(50_000));
        assert_eq!(f.eta_to_ms(500_000), Some(0), "already past");
        let flat = Forecast {
            slope_ppm_per_s: 0,
            ..f
        };
        assert_eq!(flat.eta_to_ms(700_000), None);
        // 1 Hz and 0.5 Hz sampling are fitted exactly.
        assert!((HISTORY_LEN as u64 - 1) * 2_000 <= MAX_EXACT_SPAN_MS);
    }

    #[test]
    fn wraps_and_fits_newest_window() {
        let mut t = Trend::new();
        // 40 samples; the last 16 decrease by 0.5 %/s.
        for i in 0..40u64 {
            let y = if i < 24 {
                900_000
            } else {
                900_000 - (i as u32 - 23) * 5_000
            };
            t.push(i * 1000, y);
        }
        let f = t.forecast().unwrap();
        assert_eq!(f.slope_ppm_per_s, -5_000);
        assert_eq!(f.eta_ms, None);
        assert_eq!(f.fitted_ppm, 900_000 - 16 * 5_000);
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        let mut t = Trend::new();
        for i in 0..16u64 {
            t.push(u64::MAX - 16 + i, u32::MAX);
        }
        let _ = t.forecast();
        let mut t = Trend::new();
        for i in 0..16u64 {
            t.push(
                if i % 2 == 0 { 0 } else { u64::MAX },
                (i as u32).wrapping_mul(u32::MAX / 7),
            );
        }
        let _ = t.forecast();
        let mut t = Trend::new();
        for _ in 0..16 {
            t.push(5, 5);
        }
        assert!(t.forecast().is_none());
    }
}
