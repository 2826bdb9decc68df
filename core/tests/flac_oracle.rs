//! `w4l_core::flac` against the reference: every stream we write passes `flac -t` (libFLAC
//! checks the frames, CRCs and the MD5), decodes sample-exact with `claxon`, and its MD5 is
//! `md5sum` of the raw PCM. Corpus: silence, full-scale square waves, white noise and
//! espeak-ng speech, 1 and 2 channels, 8, 16 and 24 bits. Also: our decoder reads what
//! `flac -0` writes (fixed predictors only) and refuses `flac -8`'s LPC cleanly.
//!
//! Needs `flac`, `espeak-ng` and `sox` (`scripts/setup --test` installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use w4l_core::flac::{Decoder, Encoder, FlacError, Format, HEADER_LEN};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("w4l-flac-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("run {cmd:?} ({e}); scripts/setup --test installs flac, espeak-ng and sox")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn encode(format: Format, block: usize, samples: &[i32]) -> Vec<u8> {
    let mut enc = Encoder::new(format, block).unwrap();
    let mut stream = vec![0u8; HEADER_LEN];
    let mut frame = vec![0u8; enc.max_frame_bytes()];
    for chunk in samples.chunks(block * usize::from(format.channels)) {
        let n = enc.encode(chunk, &mut frame).unwrap();
        stream.extend_from_slice(&frame[..n]);
    }
    enc.stream_info().write(&mut stream).unwrap();
    stream
}

fn decode(stream: &[u8]) -> Result<Vec<i32>, FlacError> {
    let (dec, mut at) = Decoder::new(stream)?;
    let info = *dec.info();
    let mut out = vec![0; usize::from(info.max_block_size) * usize::from(info.format.channels)];
    let mut all = Vec::new();
    while at < stream.len() {
        let frame = dec.decode(&stream[at..], &mut out)?;
        all.extend_from_slice(&out[..frame.block_size * usize::from(info.format.channels)]);
        at += frame.bytes;
    }
    Ok(all)
}

/// Raw little-endian PCM as FLAC hashes it.
fn raw_pcm(samples: &[i32], bits: u8) -> Vec<u8> {
    let width = usize::from(bits).div_ceil(8);
    samples
        .iter()
        .flat_map(|s| s.to_le_bytes().into_iter().take(width))
        .collect()
}

/// `stream` passes `flac -t`, `claxon` and our decoder give back `samples`, and
/// STREAMINFO's MD5 is `md5sum` of the raw PCM.
fn check(dir: &Path, name: &str, format: Format, samples: &[i32]) {
    // 16-frame blocks: hundreds of frames, numbered in two-byte codes.
    for block in [4096, 1000, 16] {
        let stream = encode(format, block, samples);
        let file = dir.join(format!("{name}-{block}.flac"));
        std::fs::write(&file, &stream).unwrap();
        run(Command::new("flac").args(["-t", "-s", "-w"]).arg(&file));

        let mut claxon = claxon::FlacReader::new(stream.as_slice()).unwrap();
        let decoded: Vec<i32> = claxon.samples().map(|s| s.unwrap()).collect();
        assert!(decoded == samples, "{name}: claxon decoded other samples");
        assert!(
            decode(&stream).unwrap() == samples,
            "{name}: our decoder disagrees"
        );

        let raw = dir.join(format!("{name}.raw"));
        std::fs::write(&raw, raw_pcm(samples, format.bits_per_sample)).unwrap();
        let md5sum = run(Command::new("md5sum").arg(&raw));
        let want = String::from_utf8_lossy(&md5sum.stdout)[..32].to_string();
        let got: String = Decoder::new(&stream)
            .unwrap()
            .0
            .info()
            .md5
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, want, "{name}: STREAMINFO MD5");
        let metaflac = run(Command::new("metaflac").arg("--show-md5sum").arg(&file));
        assert_eq!(
            String::from_utf8_lossy(&metaflac.stdout).trim(),
            want,
            "{name}: metaflac"
        );
    }
}

/// Deterministic white noise over the full range of `bits`.
fn noise(len: usize, bits: u8, seed: u64) -> Vec<i32> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 32) as i32 >> (32 - u32::from(bits))
        })
        .collect()
}

fn square(len: usize, channels: usize, bits: u8, period: usize) -> Vec<i32> {
    let max = (1i32 << (bits - 1)) - 1;
    (0..len)
        .map(|i| {
            if (i / channels / period).is_multiple_of(2) {
                max
            } else {
                -max - 1
            }
        })
        .collect()
}

/// espeak-ng speech through sox at `rate`, `channels` and `bits`, as interleaved samples,
/// with a little white noise added to each channel (so stereo decorrelation has work to do
/// and the low bits are not wasted).
fn speech(dir: &Path, rate: u32, channels: u8, bits: u8) -> Vec<i32> {
    let wav = dir.join("speech.wav");
    if !wav.exists() {
        run(Command::new("espeak-ng")
            .arg("-w")
            .arg(&wav)
            .arg("Lossless compression holds more seconds of speech in the same memory budget."));
    }
    let raw = dir.join(format!("speech-{rate}-{channels}-{bits}.raw"));
    run(Command::new("sox")
        .arg(&wav)
        .args(["-r", &rate.to_string(), "-c", &channels.to_string()])
        .args(["-t", "raw", "-e", "signed", "-b", &bits.to_string()])
        .arg(&raw));
    let bytes = std::fs::read(&raw).unwrap();
    let width = usize::from(bits) / 8;
    let max = (1i32 << (bits - 1)) - 1;
    let floor = noise(bytes.len() / width, bits, 99);
    bytes
        .chunks_exact(width)
        .zip(floor)
        .map(|(b, n)| {
            let mut le = [0u8; 4];
            le[4 - width..].copy_from_slice(b);
            let s = i32::from_le_bytes(le) >> (32 - u32::from(bits));
            // Noise at about -54 dBFS.
            (s + (n >> 9)).clamp(-max - 1, max)
        })
        .collect()
}

#[test]
fn libflac_and_claxon_accept_every_stream() {
    let dir = TempDir::new("oracle");
    for (channels, bits) in [(1u8, 16u8), (2, 16), (1, 24), (2, 24), (2, 8)] {
        let format = Format {
            sample_rate: 16_000,
            channels,
            bits_per_sample: bits,
        };
        let len = 10_000 * usize::from(channels);
        let tag = format!("{channels}ch-{bits}bit");
        check(&dir.0, &format!("silence-{tag}"), format, &vec![0; len]);
        check(
            &dir.0,
            &format!("square-{tag}"),
            format,
            &square(len, usize::from(channels), bits, 20),
        );
        check(
            &dir.0,
            &format!("noise-{tag}"),
            format,
            &noise(len, bits, u64::from(bits)),
        );
        let rate = if channels == 1 { 16_000 } else { 48_000 };
        let format = Format {
            sample_rate: rate,
            ..format
        };
        check(
            &dir.0,
            &format!("speech-{tag}"),
            format,
            &speech(&dir.0, rate, channels, bits),
        );
    }
}

#[test]
fn our_decoder_reads_flac_0_and_refuses_lpc() {
    let dir = TempDir::new("reverse");
    let samples = speech(&dir.0, 16_000, 2, 16);
    let raw = dir.0.join("speech-with-noise.raw");
    std::fs::write(&raw, raw_pcm(&samples, 16)).unwrap();
    for (level, lpc) in [("-0", false), ("-8", true)] {
        let file = dir.0.join(format!("libflac{level}.flac"));
        run(Command::new("flac")
            .args([
                "-s",
                "-f",
                level,
                "--endian=little",
                "--sign=signed",
                "--channels=2",
            ])
            .args(["--bps=16", "--sample-rate=16000", "-o"])
            .arg(&file)
            .arg(&raw));
        let stream = std::fs::read(&file).unwrap();
        match decode(&stream) {
            Ok(decoded) => assert!(!lpc && decoded == samples, "flac {level}: wrong samples"),
            Err(e) => assert!(lpc && e == FlacError::Unsupported, "flac {level}: {e}"),
        }
    }
}
