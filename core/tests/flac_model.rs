//! `w4l_core::flac`: encode → decode is the identity for any samples, block sizes, channel
//! counts and bit depths; `claxon` (an independent decoder) agrees; the STREAMINFO figures
//! are right; and decoding garbage, torn or damaged streams fails cleanly.

use proptest::prelude::*;
use w4l_core::flac::{Decoder, Encoder, FlacError, Format, HEADER_LEN, Md5};

/// The whole stream for `samples` (interleaved) in blocks of `block` frames.
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

/// Every sample of a stream, through our decoder, checking each frame's bookkeeping.
fn decode(stream: &[u8]) -> Vec<i32> {
    let (dec, mut at) = Decoder::new(stream).unwrap();
    let info = *dec.info();
    let ch = usize::from(info.format.channels);
    let mut out = vec![0; usize::from(info.max_block_size) * ch];
    let mut all = Vec::new();
    let mut number = 0;
    while at < stream.len() {
        let frame = dec.decode(&stream[at..], &mut out).unwrap();
        assert_eq!(frame.number, number);
        assert!(
            frame.bytes as u32 >= info.min_frame_size && frame.bytes as u32 <= info.max_frame_size
        );
        all.extend_from_slice(&out[..frame.block_size * ch]);
        at += frame.bytes;
        number += 1;
    }
    all
}

fn claxon_decode(stream: &[u8]) -> Vec<i32> {
    let mut reader = claxon::FlacReader::new(stream).unwrap();
    reader.samples().map(|s| s.unwrap()).collect()
}

/// A signal shape: what real audio and nasty inputs look like to a predictor.
#[derive(Debug, Clone)]
enum Shape {
    Random,
    Constant(i32),
    /// A slow sine plus a little noise (predictable).
    Smooth {
        period: u32,
        noise: u32,
    },
    /// Alternating extremes (the worst case of every predictor).
    Square {
        period: u32,
    },
    /// Random values with the low bits zero (wasted bits).
    Coarse {
        shift: u32,
    },
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Random),
        any::<i32>().prop_map(Shape::Constant),
        (2u32..400, 0u32..8).prop_map(|(period, noise)| Shape::Smooth { period, noise }),
        (1u32..50).prop_map(|period| Shape::Square { period }),
        (1u32..12).prop_map(|shift| Shape::Coarse { shift }),
    ]
}

/// `len` samples of `shape` in the range of `bits`, from `seed`.
fn samples(shape: &Shape, bits: u32, len: usize, seed: u64) -> Vec<i32> {
    let (min, max) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
    let mut state = seed | 1;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..len)
        .map(|i| {
            let r = random() as i64 >> (64 - bits);
            let v = match *shape {
                Shape::Random => r,
                Shape::Constant(c) => i64::from(c) >> (32 - bits),
                Shape::Smooth { period, noise } => {
                    let phase = i as f64 * std::f64::consts::TAU / f64::from(period);
                    (phase.sin() * max as f64 * 0.9) as i64
                        + (r >> (bits - 1).saturating_sub(noise))
                }
                Shape::Square { period } => {
                    if (i as u32 / period).is_multiple_of(2) {
                        max
                    } else {
                        min
                    }
                }
                Shape::Coarse { shift } => (r >> shift.min(bits - 1)) << shift.min(bits - 1),
            };
            v.clamp(min, max) as i32
        })
        .collect()
}

fn case() -> impl Strategy<Value = (Format, usize, Vec<i32>)> {
    (
        1u8..=8,
        prop_oneof![Just(8u8), Just(12), Just(16), Just(20), Just(24)],
        16usize..=600,
        shape(),
        any::<u64>(),
    )
        .prop_flat_map(|(channels, bits, block, shape, seed)| {
            // 12 345 Hz has no code in a frame header: STREAMINFO's counts.
            let sample_rate = [8_000, 16_000, 44_100, 48_000, 12_345][seed as usize % 5];
            let format = Format {
                sample_rate,
                channels,
                bits_per_sample: bits,
            };
            (Just(format), Just(block), 1usize..=3 * block).prop_map(
                move |(format, block, frames)| {
                    let len = frames * usize::from(channels);
                    (format, block, samples(&shape, u32::from(bits), len, seed))
                },
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_is_exact((format, block, input) in case()) {
        let stream = encode(format, block, &input);
        prop_assert_eq!(decode(&stream), input.clone());
        prop_assert_eq!(claxon_decode(&stream), input.clone());
        let (dec, _) = Decoder::new(&stream).unwrap();
        let info = dec.info();
        let ch = usize::from(format.channels);
        prop_assert_eq!(info.total_samples, (input.len() / ch) as u64);
        let mut md5 = Md5::new();
        md5.update_samples(&input, u32::from(format.bits_per_sample));
        prop_assert_eq!(info.md5, md5.finish());
        // Never larger than verbatim plus headers.
        let raw_bits = input.len() * usize::from(format.bits_per_sample);
        prop_assert!(stream.len() <= HEADER_LEN + raw_bits / 8 + input.len().div_ceil(block * ch) * (16 + 2 * ch));
    }

    #[test]
    fn i16_and_i32_input_give_the_same_stream((format, block, input) in case()) {
        prop_assume!(format.bits_per_sample <= 16);
        let narrow: Vec<i16> = input.iter().map(|&s| s as i16).collect();
        let mut a = Encoder::new(format, block).unwrap();
        let mut b = a.clone();
        let (mut fa, mut fb) = (vec![0u8; a.max_frame_bytes()], vec![0u8; b.max_frame_bytes()]);
        for (wide, narrow) in input.chunks(block * usize::from(format.channels)).zip(narrow.chunks(block * usize::from(format.channels))) {
            let (na, nb) = (a.encode(wide, &mut fa).unwrap(), b.encode(narrow, &mut fb).unwrap());
            prop_assert_eq!(&fa[..na], &fb[..nb]);
        }
    }

    #[test]
    fn a_torn_stream_decodes_to_its_last_whole_frame((format, block, input) in case(), cut in any::<prop::sample::Index>()) {
        let stream = encode(format, block, &input);
        let cut = HEADER_LEN + cut.index(stream.len() - HEADER_LEN);
        let (dec, mut at) = Decoder::new(&stream).unwrap();
        let mut out = vec![0; block * usize::from(format.channels)];
        let torn = &stream[..cut];
        loop {
            match dec.decode(&torn[at..], &mut out) {
                Ok(frame) => at += frame.bytes,
                Err(e) => {
                    // The same bytes in the whole stream: a frame boundary (or the end).
                    prop_assert_eq!(e, FlacError::Truncated);
                    break;
                }
            }
        }
        prop_assert!(at <= cut);
    }

    #[test]
    fn a_damaged_frame_is_refused((format, block, input) in case(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut stream = encode(format, block, &input);
        let at = HEADER_LEN + at.index(stream.len() - HEADER_LEN);
        stream[at] ^= 1 << bit;
        let (dec, start) = Decoder::new(&stream).unwrap();
        let mut out = vec![0; block * usize::from(format.channels)];
        // Every single-bit error in a frame is caught (by a CRC if by nothing else) or,
        // where it changed the frame's length, shows at the frame after.
        let mut at_frame = start;
        let mut refused = false;
        while at_frame < stream.len() {
            match dec.decode(&stream[at_frame..], &mut out) {
                Ok(frame) => at_frame += frame.bytes,
                Err(_) => {
                    refused = true;
                    break;
                }
            }
        }
        prop_assert!(refused);
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), header in any::<bool>()) {
        let format = Format { sample_rate: 8_000, channels: 2, bits_per_sample: 16 };
        let mut stream = encode(format, 16, &[0; 32]);
        stream.truncate(HEADER_LEN);
        if header {
            // A plausible frame header start, so the fuzzing gets past the sync code.
            stream.extend_from_slice(&[0xFF, 0xF8]);
        }
        stream.extend_from_slice(&bytes);
        let (dec, start) = Decoder::new(&stream).unwrap();
        let mut out = vec![0; 2 * 65_536];
        let _ = dec.decode(&stream[start..], &mut out);
        let _ = Decoder::new(&bytes);
    }
}

#[test]
fn thousands_of_blocks_number_their_frames_in_multi_byte_codes() {
    // 5000 blocks: frame numbers of one, two and three bytes.
    let format = Format {
        sample_rate: 8_000,
        channels: 1,
        bits_per_sample: 16,
    };
    let input: Vec<i32> = (0..5_000 * 16).map(|i| (i % 97) * 100 - 4_800).collect();
    let stream = encode(format, 16, &input);
    assert_eq!(decode(&stream), input);
    assert_eq!(claxon_decode(&stream), input);
}

#[test]
fn refusals() {
    let format = Format {
        sample_rate: 16_000,
        channels: 2,
        bits_per_sample: 16,
    };
    assert_eq!(Encoder::new(format, 15).unwrap_err(), FlacError::Format);
    assert_eq!(
        Encoder::new(
            Format {
                bits_per_sample: 25,
                ..format
            },
            16
        )
        .unwrap_err(),
        FlacError::Format
    );
    assert_eq!(
        Encoder::new(
            Format {
                bits_per_sample: 15,
                ..format
            },
            16
        )
        .unwrap_err(),
        FlacError::Format
    );
    assert_eq!(
        Encoder::new(
            Format {
                sample_rate: 0,
                ..format
            },
            16
        )
        .unwrap_err(),
        FlacError::Format
    );
    let mut enc = Encoder::new(format, 16).unwrap();
    let mut out = [0u8; 1024];
    assert_eq!(
        enc.encode(&[0i16; 3], &mut out),
        Err(FlacError::BlockLength)
    );
    assert_eq!(
        enc.encode(&[0i16; 34], &mut out),
        Err(FlacError::BlockLength)
    );
    assert_eq!(
        enc.encode::<i16>(&[], &mut out),
        Err(FlacError::BlockLength)
    );
    assert_eq!(
        enc.encode(&[0i32, 40_000], &mut out),
        Err(FlacError::SampleRange)
    );
    let noise = samples(&Shape::Random, 16, 32, 7);
    assert_eq!(
        enc.encode(&noise, &mut out[..20]),
        Err(FlacError::OutputFull)
    );
    assert!(enc.encode(&noise, &mut out).is_ok());
    assert!(enc.encode(&[1i16, 2], &mut out).is_ok()); // a short last block
    assert_eq!(
        enc.encode(&[1i16, 2], &mut out),
        Err(FlacError::StreamEnded)
    );
    for e in [
        FlacError::Format,
        FlacError::Truncated,
        FlacError::Unsupported,
    ] {
        let msg = e.to_string();
        assert!(msg.contains("; ") && !msg.contains('\n'), "{msg}");
    }
}

#[test]
fn a_frame_never_exceeds_max_frame_bytes() {
    // Full-scale noise in every channel: the verbatim bound is reached, not exceeded.
    for (channels, bits) in [(1u8, 16u8), (2, 24), (8, 8)] {
        let format = Format {
            sample_rate: 48_000,
            channels,
            bits_per_sample: bits,
        };
        let mut enc = Encoder::new(format, 4096).unwrap();
        let mut out = vec![0u8; enc.max_frame_bytes()];
        let noise = samples(
            &Shape::Random,
            u32::from(bits),
            4096 * usize::from(channels),
            3,
        );
        let n = enc.encode(&noise, &mut out).unwrap();
        assert!(n <= enc.max_frame_bytes());
        let square = samples(
            &Shape::Square { period: 1 },
            u32::from(bits),
            4096 * usize::from(channels),
            3,
        );
        assert!(enc.encode(&square, &mut out).is_ok());
    }
}
