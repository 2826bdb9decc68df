//! The FLAC codec: encode → decode is the identity for any samples, block sizes, channel
//! counts and depths; decoding arbitrary bytes (after a valid header, or raw) never panics,
//! and whatever it accepts fits the stream's shape.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use w4l_core::flac::{Decoder, Encoder, Format, HEADER_LEN};

const DEPTHS: [u8; 5] = [8, 12, 16, 20, 24];

#[derive(Arbitrary, Debug)]
enum Input {
    RoundTrip {
        channels: u8,
        depth: u8,
        block: u16,
        samples: Vec<i32>,
    },
    /// A valid stream header of this shape, then arbitrary frame bytes.
    Frames {
        channels: u8,
        depth: u8,
        bytes: Vec<u8>,
    },
    Raw(Vec<u8>),
}

fn format(channels: u8, depth: u8) -> Format {
    Format {
        sample_rate: 16_000,
        channels: channels % 8 + 1,
        bits_per_sample: DEPTHS[usize::from(depth) % DEPTHS.len()],
    }
}

/// Decodes frames until the first error; checks each accepted frame's shape.
fn decode_all(stream: &[u8]) -> Vec<i32> {
    let Ok((decoder, mut at)) = Decoder::new(stream) else {
        return Vec::new();
    };
    let ch = usize::from(decoder.info().format.channels);
    let mut out = vec![0i32; 65_536 * ch];
    let mut all = Vec::new();
    while at < stream.len() {
        let Ok(frame) = decoder.decode(&stream[at..], &mut out) else {
            break;
        };
        assert!(frame.bytes > 0 && frame.bytes <= stream.len() - at);
        all.extend_from_slice(&out[..frame.block_size * ch]);
        at += frame.bytes;
    }
    all
}

fuzz_target!(|input: Input| match input {
    Input::RoundTrip {
        channels,
        depth,
        block,
        samples,
    } => {
        let format = format(channels, depth);
        let block = usize::from(block) % 2_000 + 16;
        let ch = usize::from(format.channels);
        let shift = 32 - u32::from(format.bits_per_sample);
        let samples: Vec<i32> = samples.iter().map(|&s| s << shift >> shift).collect();
        let samples = &samples[..samples.len() / ch * ch];
        let mut encoder = Encoder::new(format, block).unwrap();
        let mut stream = vec![0u8; HEADER_LEN];
        let mut frame = vec![0u8; encoder.max_frame_bytes()];
        for chunk in samples.chunks(block * ch) {
            let n = encoder.encode(chunk, &mut frame).unwrap();
            stream.extend_from_slice(&frame[..n]);
        }
        encoder.stream_info().write(&mut stream).unwrap();
        assert_eq!(decode_all(&stream), samples);
    }
    Input::Frames {
        channels,
        depth,
        bytes,
    } => {
        let encoder = Encoder::new(format(channels, depth), 4_096).unwrap();
        let mut stream = vec![0u8; HEADER_LEN];
        encoder.stream_info().write(&mut stream).unwrap();
        stream.extend_from_slice(&bytes);
        decode_all(&stream);
    }
    Input::Raw(bytes) => {
        decode_all(&bytes);
    }
});
