//! [`StreamClock`]: frames a stream should have delivered by now against the frames it did, so
//! that audio lost anywhere between the microphone and w4l is counted, whatever the backend.
//!
//! A backend may lose audio without a word: a client library that caps its queue (cpal 0.18's
//! PulseAudio host delivered 49 % of the frames with every counter at zero), a server whose
//! queue overflowed while the process was stopped, an outage between two streams. The only
//! witness that cannot be fooled is time: a stream of `rate` frames per second that has run for
//! `t` seconds owes `rate · t` frames.
//!
//! The clock starts at the first delivery, not at the stream's start (a PulseAudio monitor may
//! take seconds to deliver its first fragment; that is latency, not loss). A stream delivers in
//! buffers, so between two deliveries it falls behind by up to one buffer (the saw tooth); a
//! delivery that comes early moves the clock forward (it never counts a lead as credit for a
//! later shortfall). A shortfall beyond [`StreamClock::tolerance`] — two buffers (one in flight,
//! one of jitter) plus [`DRIFT_PPM`] of the time since the clock was last set, for a device whose
//! crystal runs slow — seen at two observations in a row (one late observation may follow a
//! suspended process, whose backlog is still on its way) is loss: counted, less the one buffer
//! that may still be in flight, and the clock is set anew so the same loss is not counted twice.
//! After an outage (a stream rebuilt) the first look counts everything beyond one buffer at
//! once: the stream is known to have broken. Exact to about one buffer.

use std::time::{Duration, Instant};

/// How much slower than its nominal rate a device's clock may run without its shortfall
/// counting as loss: 500 ppm (sound cards' crystals are specified within about 100 ppm).
pub const DRIFT_PPM: u64 = 500;

/// What a reading of [`StreamClock::observe`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// A look while the stream runs: a shortfall beyond the tolerance is loss once the next
    /// look confirms it.
    Periodic,
    /// The stop, once every frame up to that instant was awaited: a shortfall beyond the
    /// tolerance counts at once.
    Final,
    /// The first look after a rebuilt stream delivered: the stream broke, so everything beyond
    /// the one buffer that may be in flight was lost in the outage, counted at once.
    AfterOutage,
}

/// The loss detector of one capture (across stream rebuilds).
#[derive(Debug, Clone)]
pub(crate) struct StreamClock {
    rate: u32,
    buffer_frames: u64,
    /// When the frame count was `anchor.1`, by the schedule the stream is held to.
    anchor: Option<(Instant, u64)>,
    /// The shortfall beyond tolerance seen at the previous observation, if any.
    pending: Option<u64>,
    lost: u64,
}

impl StreamClock {
    pub(crate) fn new(rate: u32, buffer_frames: u32) -> Self {
        Self {
            rate: rate.max(1),
            buffer_frames: u64::from(buffer_frames.max(1)),
            anchor: None,
            pending: None,
            lost: 0,
        }
    }

    /// Frames found lost so far.
    pub(crate) fn lost(&self) -> u64 {
        self.lost
    }

    /// The shortfall a stream may show `elapsed` after the clock was set without it counting as
    /// loss.
    pub(crate) fn tolerance(&self, elapsed: Duration) -> u64 {
        let elapsed_frames = self.frames_in(elapsed);
        2 * self.buffer_frames + elapsed_frames.saturating_mul(DRIFT_PPM) / 1_000_000
    }

    fn frames_in(&self, d: Duration) -> u64 {
        (d.as_nanos() * u128::from(self.rate) / 1_000_000_000).min(u128::from(u64::MAX)) as u64
    }

    /// Starts the clock at `at`, when `delivered` frames had arrived, unless it already runs
    /// (the first delivery, noted by the callback, so that a supervisor that looks late does
    /// not hide what was lost meanwhile).
    pub(crate) fn start_at(&mut self, at: Instant, delivered: u64) {
        if self.anchor.is_none() && delivered > 0 {
            self.anchor = Some((at, delivered));
        }
    }

    /// Notes that `delivered` frames had arrived by `now`; returns the frames newly found lost.
    pub(crate) fn observe(&mut self, now: Instant, delivered: u64, reading: Reading) -> u64 {
        let Some((t0, f0)) = self.anchor else {
            if delivered > 0 {
                self.anchor = Some((now, delivered));
            }
            return 0;
        };
        let elapsed = now.saturating_duration_since(t0);
        let expected = f0.saturating_add(self.frames_in(elapsed));
        if delivered >= expected {
            self.anchor = Some((now, delivered));
            self.pending = None;
            return 0;
        }
        let shortfall = expected - delivered;
        let tolerance = match reading {
            Reading::AfterOutage => self.buffer_frames,
            Reading::Periodic | Reading::Final => self.tolerance(elapsed),
        };
        if shortfall <= tolerance {
            self.pending = None;
            return 0;
        }
        let confirmed = match self.pending.replace(shortfall) {
            _ if reading != Reading::Periodic => shortfall,
            Some(before) => before.min(shortfall),
            None => return 0,
        };
        let lost = confirmed.saturating_sub(self.buffer_frames);
        self.lost += lost;
        self.pending = None;
        // Held to the schedule again from here, as if one buffer were in flight.
        self.anchor = Some((now, delivered.saturating_add(shortfall - lost)));
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;
    const BUFFER: u32 = 9_600;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// A stream that delivers one buffer every 200 ms, observed every `poll` ms, losing the
    /// deliveries for which `drop` says so. Returns (delivered, lost by the clock).
    fn run(seconds: u64, poll: u64, drop: impl Fn(u64) -> bool) -> (u64, u64) {
        let t0 = Instant::now();
        let mut clock = StreamClock::new(RATE, BUFFER);
        let mut delivered = 0;
        let mut next_poll = 0;
        for k in 0..seconds * 5 {
            let t = k * 200;
            if !drop(k) {
                delivered += u64::from(BUFFER);
            }
            clock.observe(at(t0, t), delivered, Reading::Periodic);
            while next_poll < t + 200 {
                clock.observe(at(t0, next_poll), delivered, Reading::Periodic);
                next_poll += poll;
            }
        }
        (delivered, clock.lost())
    }

    #[test]
    fn a_steady_stream_loses_nothing() {
        assert_eq!(run(600, 1000, |_| false).1, 0);
        assert_eq!(run(60, 70, |_| false).1, 0);
    }

    #[test]
    fn half_the_buffers_missing_is_found_within_a_buffer() {
        let (delivered, lost) = run(8, 1000, |k| k % 2 == 1);
        let expected_lost = 8 * u64::from(RATE) - delivered;
        assert!(
            lost + u64::from(BUFFER) * 3 >= expected_lost && lost <= expected_lost,
            "lost {lost} of {expected_lost}"
        );
    }

    #[test]
    fn a_gap_of_a_second_is_counted_once() {
        let (_, lost) = run(30, 1000, |k| (50..55).contains(&k));
        let gap = 5 * u64::from(BUFFER);
        assert!(
            lost <= gap && lost + u64::from(BUFFER) >= gap,
            "lost {lost} of {gap}"
        );
    }

    #[test]
    fn a_slow_crystal_is_not_loss() {
        // 200 ppm slow for an hour: 35 s of audio short by 0.7 s... spread evenly.
        let t0 = Instant::now();
        let mut clock = StreamClock::new(RATE, BUFFER);
        for s in 0..=3600u64 {
            let delivered = s * u64::from(RATE) * (1_000_000 - 200) / 1_000_000;
            clock.observe(at(t0, s * 1000), delivered.max(1), Reading::Periodic);
        }
        assert_eq!(clock.lost(), 0);
    }

    #[test]
    fn a_late_observation_alone_is_not_loss() {
        // The process was stopped for 3 s: the first look afterwards sees the backlog missing,
        // the next sees it delivered.
        let t0 = Instant::now();
        let mut clock = StreamClock::new(RATE, BUFFER);
        clock.observe(at(t0, 0), 9_600, Reading::Periodic);
        clock.observe(at(t0, 1000), 57_600, Reading::Periodic);
        assert_eq!(clock.observe(at(t0, 4000), 57_600, Reading::Periodic), 0);
        assert_eq!(clock.observe(at(t0, 4200), 201_600, Reading::Periodic), 0);
        assert_eq!(clock.lost(), 0);
    }

    #[test]
    fn the_final_reading_counts_at_once() {
        let t0 = Instant::now();
        let mut clock = StreamClock::new(RATE, BUFFER);
        clock.observe(at(t0, 0), 9_600, Reading::Periodic);
        let lost = clock.observe(at(t0, 2000), 9_600 + 48_000, Reading::Final);
        assert_eq!(lost, 96_000 - 48_000 - 9_600);
    }

    #[test]
    fn a_late_first_look_counts_from_the_first_delivery() {
        // Half the buffers go missing from the start; the supervisor first looks 1 s after the
        // first delivery. Started where the callback saw that delivery, the clock counts the
        // loss of that first second too; started at the first look, it would not.
        let t0 = Instant::now();
        let half = |ms: u64| u64::from(BUFFER) * (ms / 400 + 1);
        let mut clock = StreamClock::new(RATE, BUFFER);
        clock.start_at(t0, half(0));
        clock.start_at(at(t0, 500), half(500)); // Already running: no effect.
        clock.observe(at(t0, 1000), half(1000), Reading::Periodic);
        let lost = clock.observe(at(t0, 2000), half(2000), Reading::Final);
        let missing = 2 * u64::from(RATE) + u64::from(BUFFER) - half(2000);
        assert!(
            lost + u64::from(BUFFER) >= missing && lost <= missing,
            "lost {lost} of {missing}"
        );
        let mut late = StreamClock::new(RATE, BUFFER);
        late.observe(at(t0, 1000), half(1000), Reading::Periodic);
        assert!(late.observe(at(t0, 2000), half(2000), Reading::Final) < lost);
    }

    #[test]
    fn an_outage_counts_beyond_one_buffer_at_once() {
        let t0 = Instant::now();
        let mut clock = StreamClock::new(RATE, BUFFER);
        clock.observe(at(t0, 0), 9_600, Reading::Periodic);
        // 300 ms without audio: under the periodic tolerance, but the stream broke.
        let lost = clock.observe(at(t0, 500), 9_600 + 9_600, Reading::AfterOutage);
        assert_eq!(lost, 24_000 - 9_600 - 9_600);
        // Short of one buffer: in flight, not lost.
        let mut clock = StreamClock::new(RATE, BUFFER);
        clock.observe(at(t0, 0), 9_600, Reading::Periodic);
        assert_eq!(clock.observe(at(t0, 300), 19_200, Reading::AfterOutage), 0);
    }
}
