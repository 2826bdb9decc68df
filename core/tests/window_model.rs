//! `w4l_core::window::Window` against a naive model: a `Vec` of every sample ever written,
//! plus the position of the last clear.

use proptest::prelude::*;
use w4l_core::window::{Window, WindowError};

/// Everything ever written; `latest` is the tail of the complete frames that are still
/// inside the last `cap` samples and begin after the last clear.
struct Model {
    all: Vec<u32>,
    cleared_at: usize,
    channels: usize,
    cap: usize,
}

impl Model {
    fn complete_frames(&self) -> Vec<&[u32]> {
        let end = self.all.len();
        let begin = self.cleared_at.max(end.saturating_sub(self.cap));
        // Frames are aligned on absolute sample indices (multiples of `channels`).
        self.all
            .chunks_exact(self.channels)
            .enumerate()
            .filter(|(i, _)| i * self.channels >= begin)
            .map(|(_, f)| f)
            .collect()
    }

    fn latest(&self, frames: usize, out_len: usize) -> Vec<u32> {
        let complete = self.complete_frames();
        let k = frames.min(out_len / self.channels).min(complete.len());
        complete[complete.len() - k..].concat()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Write(usize),
    Latest { frames: usize, out_len: usize },
    Clear,
}

fn op(cap: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..=cap / 2 + 3).prop_map(Op::Write),
        2 => (0..=3 * cap + 7).prop_map(Op::Write), // often bigger than the capacity
        4 => (0..=cap + 3, 0..=cap + 9).prop_map(|(frames, out_len)| Op::Latest { frames, out_len }),
        1 => Just(Op::Clear),
    ]
}

fn case() -> impl Strategy<Value = (usize, usize, Vec<Op>)> {
    (1usize..=8, 1usize..=12).prop_flat_map(|(channels, frames)| {
        let cap = channels * frames;
        (
            Just(channels),
            Just(frames),
            prop::collection::vec(op(cap), 1..60),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn window_matches_model((channels, frames, ops) in case()) {
        let cap = channels * frames;
        let mut w = Window::new(vec![0u32; cap], channels).unwrap();
        let mut m = Model { all: Vec::new(), cleared_at: 0, channels, cap };
        let mut next = 1u32;

        for op in ops {
            match op {
                Op::Write(n) => {
                    let data: Vec<u32> = (next..next + n as u32).collect();
                    next += n as u32;
                    w.write(&data);
                    m.all.extend_from_slice(&data);
                }
                Op::Latest { frames, out_len } => {
                    let mut out = vec![0u32; out_len];
                    let got = w.latest(frames, &mut out);
                    let want = m.latest(frames, out_len);
                    prop_assert_eq!(got * channels, want.len());
                    prop_assert_eq!(&out[..want.len()], &want[..]);
                    prop_assert!(out[want.len()..].iter().all(|&x| x == 0), "tail untouched");
                }
                Op::Clear => {
                    w.clear();
                    m.cleared_at = m.all.len();
                }
            }
            // Invariants after every operation.
            let avail = m.complete_frames().len();
            prop_assert_eq!(w.frames_available(), avail);
            prop_assert_eq!(w.samples_written(), m.all.len() as u64);
            prop_assert_eq!(w.pending_samples(), m.all.len() % channels);
            prop_assert_eq!(w.capacity_frames(), frames);
            prop_assert_eq!(w.channels(), channels);
            prop_assert_eq!(w.fill(), (avail, frames));
            prop_assert_eq!(usize::from(w.fill_permille()), avail * 1000 / frames);
            prop_assert!(avail <= frames);
            if w.pending_samples() > 0 {
                prop_assert!(avail < frames, "a pending frame costs the oldest one when full");
            }
        }
    }

    /// Splitting a stream into arbitrary chunks never changes what the window holds.
    #[test]
    fn chunking_is_invisible(
        channels in 1usize..=8,
        frames in 1usize..=10,
        cuts in prop::collection::vec(0usize..40, 0..20),
    ) {
        let cap = channels * frames;
        let total: usize = cuts.iter().sum();
        let data: Vec<i16> = (0..total).map(|i| i as i16).collect();
        let mut whole = Window::new(vec![0i16; cap], channels).unwrap();
        whole.write(&data);
        let mut pieces = Window::new(vec![0i16; cap], channels).unwrap();
        let mut at = 0;
        for c in cuts {
            pieces.write(&data[at..at + c]);
            at += c;
        }
        let (mut a, mut b) = (vec![0i16; cap], vec![0i16; cap]);
        prop_assert_eq!(whole.latest(frames, &mut a), pieces.latest(frames, &mut b));
        prop_assert_eq!(a, b);
        prop_assert_eq!(whole.storage(), pieces.storage());
    }
}

#[test]
fn construction_errors() {
    assert_eq!(
        Window::new([0u8; 4], 0).unwrap_err(),
        WindowError::ZeroChannels
    );
    assert_eq!(
        Window::new([0u8; 0], 1).unwrap_err(),
        WindowError::EmptyStorage
    );
    assert_eq!(
        Window::new(vec![0u8; 10], 4).unwrap_err(),
        WindowError::NotWholeFrames {
            len: 10,
            channels: 4
        }
    );
    let e: &dyn std::error::Error = &WindowError::NotWholeFrames {
        len: 10,
        channels: 4,
    };
    assert_eq!(
        e.to_string(),
        "window storage of 10 samples is not a whole number of 4-channel frames"
    );
    assert!(Window::new([0u8; 1], 1).is_ok());
}

#[test]
fn storage_kinds() {
    // Array, borrowed slice and boxed slice all work.
    let mut arr = Window::new([0f32; 4], 2).unwrap();
    arr.write(&[0.1, 0.2, 0.3]);
    let mut backing = [0f32; 4];
    let mut sl = Window::new(&mut backing[..], 2).unwrap();
    sl.write(&[0.1, 0.2, 0.3]);
    let mut boxed = Window::new(vec![0f32; 4].into_boxed_slice(), 2).unwrap();
    boxed.write(&[0.1, 0.2, 0.3]);
    let mut out = [0f32; 4];
    assert_eq!(arr.latest(2, &mut out), 1);
    assert_eq!(out[..2], [0.1, 0.2]);
    assert_eq!(sl.latest(2, &mut out), 1);
    assert_eq!(boxed.latest(2, &mut out), 1);
    let backing = sl.into_storage();
    assert_eq!(backing[..3], [0.1, 0.2, 0.3]);
}

#[test]
fn five_seconds_of_stereo_at_16k() {
    const CH: usize = 2;
    const FRAMES: usize = 5 * 16_000;
    let mut w = Window::new(vec![0i16; FRAMES * CH].into_boxed_slice(), CH).unwrap();
    // Ten seconds in odd-sized chunks (partial frames included).
    let mut t = 0u32;
    let mut chunk = Vec::new();
    while t < 2 * FRAMES as u32 * CH as u32 {
        chunk.clear();
        for _ in 0..333 {
            chunk.push((t % 30_000) as i16);
            t += 1;
        }
        w.write(&chunk);
    }
    assert_eq!(w.samples_written(), u64::from(t));
    let mut out = vec![0i16; FRAMES * CH];
    let got = w.latest(FRAMES, &mut out);
    assert_eq!(got, w.frames_available());
    let pending = (t as usize) % CH;
    let last_complete = t as usize - pending; // one past the last complete sample
    let first = last_complete - got * CH;
    for (i, &s) in out[..got * CH].iter().enumerate() {
        assert_eq!(s, ((first + i) % 30_000) as i16);
    }
}

#[test]
fn long_writes_small_outputs_and_clear() {
    // A write longer than the storage keeps its newest samples; 7 starts a frame.
    let mut w = Window::new([0u8; 4], 2).unwrap();
    assert_eq!((w.capacity_frames(), w.channels()), (2, 2));
    w.write(&[1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(
        (
            w.samples_written(),
            w.frames_available(),
            w.pending_samples()
        ),
        (7, 1, 1)
    );
    assert_eq!(w.storage(), &[5, 6, 7, 4], "raw storage, in slot order");
    let mut out = [0u8; 4];
    assert_eq!(w.latest(2, &mut out), 1);
    assert_eq!(out[..2], [5, 6]);

    // `latest` copies whole frames only, as many as fit in `out`.
    let mut w = Window::new([0i32; 6], 3).unwrap();
    w.write(&[1, 2, 3, 4, 5]);
    let mut out = [0i32; 5];
    assert_eq!(w.latest(2, &mut out), 1);
    assert_eq!(out, [1, 2, 3, 0, 0]);

    // A pending sample in a full window takes the oldest frame's slot.
    let mut w = Window::new([0i16; 4], 2).unwrap();
    w.write(&[1, 2, 3, 4]);
    assert_eq!(
        (w.frames_available(), w.fill(), w.fill_permille()),
        (2, (2, 2), 1000)
    );
    w.write(&[5]);
    assert_eq!(w.frames_available(), 1);
    w.write(&[6]);
    assert_eq!(w.frames_available(), 2);

    // `clear` keeps the channel phase: 4 completes the cleared frame, 5, 6 is a new one.
    let mut w = Window::new([0i16; 4], 2).unwrap();
    w.write(&[1, 2, 3]);
    w.clear();
    assert_eq!(w.frames_available(), 0);
    w.write(&[4, 5, 6]);
    let mut out = [0i16; 4];
    assert_eq!(w.latest(2, &mut out), 1);
    assert_eq!(out[..2], [5, 6]);
    assert_eq!(w.samples_written(), 6);
    assert_eq!(w.into_storage(), [5, 6, 3, 4], "clear does not overwrite");

    let mut w = Window::new([0f32; 3], 1).unwrap();
    w.write(&[0.0; 2]);
    assert_eq!((w.fill(), w.fill_permille()), ((2, 3), 666));
}
