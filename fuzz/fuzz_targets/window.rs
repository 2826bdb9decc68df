//! The rolling window against a naive model: every sample ever written, frames aligned on
//! absolute sample indices, `latest` = the newest complete frames still stored.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use w4l_core::window::Window;

#[derive(Arbitrary, Debug)]
enum Op {
    Write(u8),
    Latest { frames: u8, out_len: u8 },
    Clear,
}

#[derive(Arbitrary, Debug)]
struct Input {
    channels: u8,
    storage: u8,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let (channels, len) = (usize::from(input.channels), usize::from(input.storage));
    let Ok(mut window) = Window::new(vec![0u32; len], channels) else {
        assert!(
            channels == 0 || len == 0 || len % channels != 0,
            "a valid shape was refused"
        );
        return;
    };
    let mut all: Vec<u32> = Vec::new();
    let mut cleared_at = 0;
    for op in input.ops {
        match op {
            Op::Write(n) => {
                let start = all.len() as u32;
                let data: Vec<u32> = (start..start + u32::from(n)).collect();
                window.write(&data);
                all.extend_from_slice(&data);
            }
            Op::Latest { frames, out_len } => {
                let begin = cleared_at.max(all.len().saturating_sub(len));
                let complete: Vec<&[u32]> = all
                    .chunks_exact(channels)
                    .enumerate()
                    .filter(|(i, _)| i * channels >= begin)
                    .map(|(_, f)| f)
                    .collect();
                let k = usize::from(frames)
                    .min(usize::from(out_len) / channels)
                    .min(complete.len());
                let mut out = vec![0u32; usize::from(out_len)];
                assert_eq!(window.latest(usize::from(frames), &mut out), k);
                assert_eq!(
                    &out[..k * channels],
                    complete[complete.len() - k..].concat()
                );
                assert_eq!(window.frames_available(), complete.len());
            }
            Op::Clear => {
                window.clear();
                cleared_at = all.len();
            }
        }
        assert_eq!(window.samples_written(), all.len() as u64);
        assert_eq!(window.pending_samples(), all.len() % channels);
        let (available, capacity) = window.fill();
        assert!(available <= capacity && capacity == len / channels);
    }
});
