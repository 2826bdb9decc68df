//! What the library's integration tests share: a test signal, and WAV files written and read
//! back with `hound`.

#![allow(dead_code)]

use std::path::Path;

/// `n` samples of a sweep with noise on top: never constant, never silent.
pub fn signal(n: usize, seed: u32) -> Vec<i16> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let sweep = ((i as f64 * 0.002).sin() * 20_000.0) as i32;
            (sweep + (x % 8_192) as i32 - 4_096).clamp(-32_768, 32_767) as i16
        })
        .collect()
}

/// Writes a 16-bit WAV file.
pub fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create WAV");
    for &s in samples {
        w.write_sample(s).expect("sample");
    }
    w.finalize().expect("finalize");
}

/// The samples of a 16-bit WAV file.
pub fn read_i16(path: &Path) -> Vec<i16> {
    hound::WavReader::open(path)
        .expect("open WAV")
        .samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .expect("samples")
}
