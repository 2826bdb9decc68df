//! Where samples come from: a cpal device ([`crate::capture`]), a WAV file replayed through the
//! same ring ([`WavReplay`]), or the built-in synthetic voice of `w4l demo` ([`Synthetic`]).
//!
//! Every source pushes interleaved `f32` samples into the producer half of the core ring. The
//! device source is a real-time callback: when the ring is full it drops and the ring counts an
//! overrun. The file and synthetic sources are not real-time: when the ring is full they wait
//! for the worker, so a replay never loses a sample however slow the consumer is.

/// A deterministic, speech-like test signal: voiced "syllables" (a gliding fundamental with a
/// few harmonics shaped like vowel formants) under raised-cosine envelopes, separated by short
/// gaps, longer gaps between words and long pauses between phrases.
///
/// The same seed always produces the same samples, on every run.
#[derive(Debug, Clone)]
pub struct SyntheticVoice {
    rate: f64,
    channels: usize,
    rng: SplitMix64,
    /// Frames produced so far.
    frame: u64,
    segment: Segment,
    /// Frame at which the current segment ends.
    segment_end: u64,
    /// Frame at which the current segment began.
    segment_start: u64,
    /// Syllables left in the current word, words left in the current phrase.
    syllables_left: u32,
    words_left: u32,
    /// Phase of the fundamental, in cycles.
    phase: f64,
    /// Sample of the current frame already emitted (for outputs that end mid-frame).
    channel: usize,
    current: f32,
}

#[derive(Debug, Clone, Copy)]
enum Segment {
    Silence,
    Syllable {
        f0_start: f64,
        f0_end: f64,
        amplitude: f64,
        /// Harmonic weights (harmonics 1..=8) for this syllable's vowel.
        vowel: usize,
    },
}

/// Relative weights of harmonics 1..=8 for a few vowel-like spectra.
const VOWELS: [[f64; 8]; 4] = [
    [1.0, 0.8, 0.6, 0.3, 0.15, 0.1, 0.05, 0.03],  // "ah"
    [1.0, 0.3, 0.1, 0.05, 0.3, 0.4, 0.2, 0.1],    // "ee"
    [1.0, 0.9, 0.2, 0.05, 0.02, 0.02, 0.01, 0.0], // "oo"
    [1.0, 0.6, 0.5, 0.4, 0.2, 0.1, 0.1, 0.05],    // "eh"
];
/// Sum of each vowel's weights, to normalise the peak below the syllable's amplitude.
fn vowel_norm(v: usize) -> f64 {
    VOWELS[v].iter().sum()
}

impl SyntheticVoice {
    /// A voice at `rate` Hz on `channels` channels (the same signal on every channel).
    pub fn new(rate: u32, channels: u16, seed: u64) -> Self {
        let mut v = Self {
            rate: f64::from(rate.max(1)),
            channels: usize::from(channels.max(1)),
            rng: SplitMix64(seed),
            frame: 0,
            segment: Segment::Silence,
            segment_end: 0,
            segment_start: 0,
            syllables_left: 0,
            words_left: 0,
            phase: 0.0,
            channel: 0,
            current: 0.0,
        };
        // Start with a short lead-in of silence, like a speaker drawing breath.
        v.segment_end = v.frames_for(0.25);
        v
    }

    /// Frames produced so far.
    pub fn frames(&self) -> u64 {
        self.frame
    }

    /// Whether the voice is currently in a pause (the current frame is silent).
    pub fn in_pause(&self) -> bool {
        matches!(self.segment, Segment::Silence)
    }

    fn frames_for(&self, seconds: f64) -> u64 {
        (seconds * self.rate).round().max(1.0) as u64
    }

    fn next_segment(&mut self) {
        self.segment_start = self.frame;
        let (segment, seconds) = match self.segment {
            Segment::Syllable { .. } => {
                // After a syllable: a gap, whose length tells syllable / word / phrase apart.
                let seconds = if self.syllables_left > 0 {
                    self.rng.range(0.03, 0.08)
                } else if self.words_left > 0 {
                    self.rng.range(0.12, 0.3)
                } else {
                    self.rng.range(0.6, 1.2)
                };
                (Segment::Silence, seconds)
            }
            Segment::Silence => {
                if self.syllables_left == 0 {
                    if self.words_left == 0 {
                        self.words_left = 3 + self.rng.below(4) as u32;
                    }
                    self.words_left -= 1;
                    self.syllables_left = 1 + self.rng.below(3) as u32;
                }
                self.syllables_left -= 1;
                let f0 = self.rng.range(110.0, 220.0);
                let glide = self.rng.range(-0.15, 0.1);
                (
                    Segment::Syllable {
                        f0_start: f0,
                        f0_end: f0 * (1.0 + glide),
                        amplitude: self.rng.range(0.25, 0.7),
                        vowel: self.rng.below(VOWELS.len() as u64) as usize,
                    },
                    self.rng.range(0.12, 0.3),
                )
            }
        };
        self.segment = segment;
        self.segment_end = self.frame + self.frames_for(seconds);
    }

    fn next_frame_value(&mut self) -> f32 {
        while self.frame >= self.segment_end {
            self.next_segment();
        }
        let value = match self.segment {
            Segment::Silence => {
                self.phase = 0.0;
                0.0
            }
            Segment::Syllable {
                f0_start,
                f0_end,
                amplitude,
                vowel,
            } => {
                let len = (self.segment_end - self.segment_start) as f64;
                let x = (self.frame - self.segment_start) as f64 / len;
                let f0 = f0_start + (f0_end - f0_start) * x;
                self.phase = (self.phase + f0 / self.rate).fract();
                let envelope = {
                    let s = (std::f64::consts::PI * x).sin();
                    s * s
                };
                let tau = std::f64::consts::TAU;
                let mut sum = 0.0;
                for (k, w) in VOWELS[vowel].iter().enumerate() {
                    sum += w * (tau * self.phase * (k + 1) as f64).sin();
                }
                amplitude * envelope * sum / vowel_norm(vowel)
            }
        };
        self.frame += 1;
        value as f32
    }

    /// Fills `out` with the next interleaved samples.
    pub fn fill(&mut self, out: &mut [f32]) {
        for s in out {
            if self.channel == 0 {
                self.current = self.next_frame_value();
            }
            *s = self.current;
            self.channel = (self.channel + 1) % self.channels;
        }
    }
}

/// A tiny deterministic PRNG (SplitMix64): the demo must print the same timeline every run.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_voice_is_deterministic_and_speech_like() {
        let mut a = SyntheticVoice::new(16_000, 1, 7);
        let mut b = SyntheticVoice::new(16_000, 1, 7);
        let mut xa = vec![0.0; 16_000 * 10];
        let mut xb = vec![0.0; 16_000 * 10];
        a.fill(&mut xa);
        // Different chunking, same samples.
        for chunk in xb.chunks_mut(333) {
            b.fill(chunk);
        }
        assert_eq!(xa, xb);
        let peak = xa.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(peak > 0.2 && peak <= 0.7, "peak {peak}");
        // Both voiced and silent stretches of at least 100 ms.
        let silent = xa
            .chunks(1600)
            .filter(|c| c.iter().all(|x| *x == 0.0))
            .count();
        let voiced = xa
            .chunks(1600)
            .filter(|c| c.iter().any(|x| x.abs() > 0.05))
            .count();
        assert!(
            silent >= 5 && voiced >= 30,
            "silent {silent} voiced {voiced}"
        );
    }

    #[test]
    fn synthetic_voice_duplicates_channels() {
        let mut v = SyntheticVoice::new(8_000, 2, 1);
        let mut x = vec![0.0; 8_000 * 2];
        v.fill(&mut x[..3]);
        v.fill(&mut x[3..]);
        for f in x.chunks(2) {
            assert_eq!(f[0], f[1]);
        }
        assert_eq!(v.frames(), 8_000);
    }
}
