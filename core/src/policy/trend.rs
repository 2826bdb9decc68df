//! Least-squares trend estimator over a fixed window of pressure samples.
//!
//! [`Trend`] keeps the last [`HISTORY_LEN`] `(time, pressure)` samples in a ring and fits a
//! straight line through them by ordinary least squares, entirely in integer arithmetic
//! (`i128` intermediates, every operation checked), so the result is bit-identical on every
//! target.
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

/// Number of samples the trend window holds (16: 16 s at the recorder's 1 Hz sampling).
///
/// ```
/// assert_eq!(w4l_core::policy::trend::HISTORY_LEN, 16);
/// ```
pub const HISTORY_LEN: usize = 16;

/// Fewest samples before [`Trend::forecast`] reports anything (half the window).
///
/// ```
/// assert_eq!(w4l_core::policy::trend::MIN_SAMPLES, 8);
/// ```
pub const MIN_SAMPLES: usize = HISTORY_LEN / 2;

/// Pressure of the limit itself, in ppm (100 %).
///
/// ```
/// assert_eq!(w4l_core::policy::trend::LIMIT_PPM, 1_000_000);
/// ```
pub const LIMIT_PPM: u32 = 1_000_000;

/// Result of a trend fit.
///
/// ```
/// use w4l_core::policy::trend::Trend;
/// let mut t = Trend::new();
/// for i in 0..16u64 {
///     t.push(i * 1000, 500_000 + (i as u32) * 10_000); // +1 %/s from 50 %
/// }
/// let f = t.forecast().unwrap();
/// assert_eq!(f.slope_ppm_per_s, 10_000);
/// assert_eq!(f.fitted_ppm, 650_000);
/// assert_eq!(f.eta_ms, Some(35_000)); // 35 % to go at 1 %/s
/// assert_eq!(f.recent_eta_ms, Some(35_000)); // the newest half agrees
/// ```
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
    ///
    /// ```
    /// use w4l_core::policy::trend::Forecast;
    /// let f = Forecast { slope_ppm_per_s: 1, fitted_ppm: 0, eta_ms: Some(5), recent_eta_ms: Some(9) };
    /// assert_eq!(f.sustained_eta_ms(), Some(9));
    /// let step = Forecast { recent_eta_ms: None, ..f };
    /// assert_eq!(step.sustained_eta_ms(), None);
    /// ```
    pub fn sustained_eta_ms(&self) -> Option<u64> {
        match (self.eta_ms, self.recent_eta_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        }
    }

    /// Milliseconds until the full-window fit reaches `ppm` (`Some(0)` if already there);
    /// `None` when not growing.
    ///
    /// ```
    /// use w4l_core::policy::trend::Forecast;
    /// let f = Forecast { slope_ppm_per_s: 2_000, fitted_ppm: 600_000, eta_ms: None, recent_eta_ms: None };
    /// assert_eq!(f.eta_to_ms(700_000), Some(50_000));
    /// assert_eq!(f.eta_to_ms(500_000), Some(0));
    /// ```
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
///
/// ```
/// use w4l_core::policy::trend::Trend;
/// let mut t = Trend::new();
/// t.push(0, 100);
/// assert!(t.forecast().is_none()); // too few samples
/// assert_eq!(t.len(), 1);
/// ```
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
    ///
    /// ```
    /// assert!(w4l_core::policy::trend::Trend::new().is_empty());
    /// ```
    pub const fn new() -> Self {
        Self {
            t_ms: [0; HISTORY_LEN],
            ppm: [0; HISTORY_LEN],
            head: 0,
            len: 0,
        }
    }

    /// Number of samples held (at most [`HISTORY_LEN`]).
    ///
    /// ```
    /// let mut t = w4l_core::policy::trend::Trend::new();
    /// for i in 0..20 { t.push(i, 0); }
    /// assert_eq!(t.len(), 16);
    /// ```
    pub const fn len(&self) -> usize {
        self.len
    }

    /// `true` before the first sample.
    ///
    /// ```
    /// assert!(w4l_core::policy::trend::Trend::new().is_empty());
    /// ```
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forget every sample.
    ///
    /// ```
    /// let mut t = w4l_core::policy::trend::Trend::new();
    /// t.push(1, 2);
    /// t.clear();
    /// assert!(t.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    /// Append a sample, dropping the oldest when full. Times should not decrease (the policy
    /// clamps them); a decreasing time only makes the fit meaningless, never panics.
    ///
    /// ```
    /// let mut t = w4l_core::policy::trend::Trend::new();
    /// t.push(1000, 250_000);
    /// assert_eq!(t.len(), 1);
    /// ```
    pub fn push(&mut self, t_ms: u64, ppm: u32) {
        if let Some(slot) = self.t_ms.get_mut(self.head) {
            *slot = t_ms;
        }
        if let Some(slot) = self.ppm.get_mut(self.head) {
            *slot = ppm;
        }
        self.head = (self.head + 1) % HISTORY_LEN;
        if self.len < HISTORY_LEN {
            self.len += 1;
        }
    }

    /// Least-squares fit of the window (and of its newest [`MIN_SAMPLES`] samples); `None`
    /// with fewer than [`MIN_SAMPLES`] samples, when every sample has the same time, or if
    /// an intermediate would overflow `i128`.
    ///
    /// ```
    /// use w4l_core::policy::trend::Trend;
    /// let mut t = Trend::new();
    /// for i in 0..8u64 { t.push(i * 500, 300_000); }
    /// let f = t.forecast().unwrap();
    /// assert_eq!((f.slope_ppm_per_s, f.fitted_ppm, f.eta_ms), (0, 300_000, None));
    /// ```
    pub fn forecast(&self) -> Option<Forecast> {
        if self.len < MIN_SAMPLES {
            return None;
        }
        // Oldest sample: `head` when full, else index 0.
        let start = if self.len == HISTORY_LEN {
            self.head
        } else {
            0
        };
        let t0 = *self.t_ms.get(start)?;
        let recent_from = self.len.saturating_sub(MIN_SAMPLES);
        // Fast path in i64 (typical windows: x ≤ minutes, y ≤ 2·10⁶); any overflow falls back
        // to i128. Both paths compute the same exact integer results.
        let fits = self
            .fit_with::<Sums64>(start, t0, recent_from)
            .or_else(|| self.fit_with::<Sums128>(start, t0, recent_from))?;
        let ((slope, fitted, eta), recent) = fits;
        Some(Forecast {
            slope_ppm_per_s: slope,
            fitted_ppm: fitted,
            eta_ms: eta,
            recent_eta_ms: recent,
        })
    }

    fn fit_with<S: LeastSquares>(
        &self,
        start: usize,
        t0: u64,
        recent_from: usize,
    ) -> Option<(Fit, Option<u64>)> {
        let mut all = S::default();
        let mut recent = S::default();
        for k in 0..self.len {
            let i = (start + k) % HISTORY_LEN;
            let x = self.t_ms.get(i)?.saturating_sub(t0);
            let y = *self.ppm.get(i)?;
            all.add(x, y)?;
            if k >= recent_from {
                recent.add(x, y)?;
            }
        }
        let all = all.fit()?;
        Some((all, recent.eta_only()))
    }
}

/// `(slope ppm/s, fitted ppm at the newest sample, eta ms)`.
type Fit = (i64, u32, Option<u64>);

/// Running least-squares sums in some integer width; every operation checked.
trait LeastSquares: Default {
    fn add(&mut self, x: u64, y: u32) -> Option<()>;
    fn fit(&self) -> Option<Fit>;
    /// Only the eta of the fit (one division instead of three).
    fn eta_only(&self) -> Option<u64>;
}

macro_rules! sums {
    ($name:ident, $t:ty) => {
        #[derive(Clone, Copy, Default)]
        struct $name {
            n: $t,
            sx: $t,
            sy: $t,
            sxx: $t,
            sxy: $t,
            x_last: $t,
        }

        impl LeastSquares for $name {
            fn add(&mut self, x: u64, y: u32) -> Option<()> {
                let x = <$t>::try_from(x).ok()?;
                let y = <$t>::from(y);
                self.n = self.n.checked_add(1)?;
                self.sx = self.sx.checked_add(x)?;
                self.sy = self.sy.checked_add(y)?;
                self.sxx = self.sxx.checked_add(x.checked_mul(x)?)?;
                self.sxy = self.sxy.checked_add(x.checked_mul(y)?)?;
                self.x_last = x;
                Some(())
            }

            fn fit(&self) -> Option<Fit> {
                let (num, den, nden, fitted_num) = self.terms()?;
                let fitted = fitted_num.checked_div(nden)?;
                let slope = num.checked_mul(1000)?.checked_div(den)?;
                let eta = self.eta(num, nden, fitted_num)?;
                let slope =
                    i64::try_from(slope).unwrap_or(if slope < 0 { i64::MIN } else { i64::MAX });
                let fitted = u32::try_from(fitted.max(0)).unwrap_or(u32::MAX);
                Some((slope, fitted, eta))
            }

            fn eta_only(&self) -> Option<u64> {
                let (num, _, nden, fitted_num) = self.terms()?;
                self.eta(num, nden, fitted_num)?
            }
        }

        impl $name {
            /// `(num, den, n·den, ŷ·n·den)` with slope = num/den (ppm/ms) and
            /// ŷ·n·den = Σy·den + num·(n·x_last − Σx).
            fn terms(&self) -> Option<($t, $t, $t, $t)> {
                let n = self.n;
                let num = n
                    .checked_mul(self.sxy)?
                    .checked_sub(self.sx.checked_mul(self.sy)?)?;
                let den = n
                    .checked_mul(self.sxx)?
                    .checked_sub(self.sx.checked_mul(self.sx)?)?;
                if den <= 0 {
                    return None;
                }
                let nden = n.checked_mul(den)?;
                let fitted_num = self.sy.checked_mul(den)?.checked_add(
                    num.checked_mul(n.checked_mul(self.x_last)?.checked_sub(self.sx)?)?,
                )?;
                Some((num, den, nden, fitted_num))
            }

            /// `(LIMIT − ŷ) / slope` = `(LIMIT·n·den − ŷ·n·den) / (n·num)`, exact then floored;
            /// `Some(None)` when not growing, `None` on overflow.
            #[allow(clippy::option_option)]
            fn eta(&self, num: $t, nden: $t, fitted_num: $t) -> Option<Option<u64>> {
                if num <= 0 {
                    return Some(None);
                }
                let remaining = <$t>::from(LIMIT_PPM)
                    .checked_mul(nden)?
                    .checked_sub(fitted_num)?;
                if remaining <= 0 {
                    return Some(Some(0));
                }
                let eta = remaining.checked_div(self.n.checked_mul(num)?)?;
                Some(Some(u64::try_from(eta).unwrap_or(u64::MAX)))
            }
        }
    };
}

sums!(Sums64, i64);
sums!(Sums128, i128);

#[cfg(test)]
mod tests {
    use super::*;

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
