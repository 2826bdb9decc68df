//! The streaming encoder: one FLAC frame per block of interleaved samples.
//!
//! Per channel signal it takes three passes over the block and no scratch memory: one
//! measures every fixed predictor at once (and the wasted low bits), one sums the chosen
//! predictor's residuals per partition to pick the Rice parameters, and one writes.

use super::bits::BitWriter;
use super::crc::{crc8, crc16};
use super::{FlacError, Format, MAX_BLOCK_SIZE, Md5, Sample, StreamInfo};

/// Prediction coefficients of the fixed predictors of order 0 to 4, newest sample first:
/// the residual of order `k` is the `k`-th difference of the signal.
pub(crate) const FIXED: [[i32; 4]; 5] = [
    [0, 0, 0, 0],
    [1, 0, 0, 0],
    [2, -1, 0, 0],
    [3, -3, 1, 0],
    [4, -6, 4, -1],
];

/// Finest partition order tried: 64 partitions, of 16 frames in a 1024-frame block (the
/// finest that still pays on speech; 32-frame partitions give 1% more).
const MAX_PARTITION_ORDER: u32 = 6;

/// Sample rates with a 4-bit code in the frame header, at their code (0: see STREAMINFO).
const RATES: [u32; 12] = [
    0, 88_200, 176_400, 192_000, 8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 96_000,
];

/// Encodes blocks of interleaved samples into FLAC frames in caller-supplied buffers.
///
/// Write [`HEADER_LEN`](super::HEADER_LEN) bytes of room first, then one
/// [`encode`](Self::encode) per block; at the end, write
/// [`stream_info`](Self::stream_info) over the room. Every block has `block_size` frames
/// except the last, which may be shorter (a shorter block ends the stream). The
/// [module documentation](super) has a worked example.
#[derive(Debug, Clone)]
pub struct Encoder {
    format: Format,
    block_size: usize,
    md5: Md5,
    /// Frames of audio encoded so far.
    total_samples: u64,
    /// Blocks encoded so far: the next frame's number.
    blocks: u32,
    min_frame: u32,
    max_frame: u32,
    /// A short block was encoded: it must have been the last.
    ended: bool,
}

/// Which signal a subframe codes: a channel, or for stereo `left - right` or
/// `(left + right) >> 1`.
#[derive(Clone, Copy)]
enum Signal {
    Channel(u8),
    Side,
    Mid,
}

/// How one subframe will be coded.
#[derive(Clone, Copy)]
struct Plan {
    signal: Signal,
    /// Bits per sample of the signal (one more for the side signal).
    bits: u32,
    /// Low bits that are zero in every sample ("wasted bits").
    shift: u32,
    constant: bool,
    order: usize,
    /// Estimated bits of the subframe (saturating).
    cost: u32,
}

impl Plan {
    const NONE: Self = Self {
        signal: Signal::Mid,
        bits: 0,
        shift: 0,
        constant: true,
        order: 0,
        cost: 0,
    };
}

impl Encoder {
    /// An encoder for `format` in blocks of `block_size` frames (16 to [`MAX_BLOCK_SIZE`]).
    ///
    /// ```
    /// use w4l_core::flac::{DEFAULT_BLOCK_SIZE, Encoder, FlacError, Format};
    ///
    /// let mono = Format { sample_rate: 16_000, channels: 1, bits_per_sample: 16 };
    /// assert!(Encoder::new(mono, DEFAULT_BLOCK_SIZE).is_ok());
    /// let nine = Format { channels: 9, ..mono };
    /// assert_eq!(Encoder::new(nine, DEFAULT_BLOCK_SIZE).unwrap_err(), FlacError::Format);
    /// ```
    pub fn new(format: Format, block_size: usize) -> Result<Self, FlacError> {
        if !(16..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(FlacError::Format);
        }
        Ok(Self {
            format: format.check()?,
            block_size,
            md5: Md5::new(),
            total_samples: 0,
            blocks: 0,
            min_frame: 0,
            max_frame: 0,
            ended: false,
        })
    }

    /// The largest frame [`encode`](Self::encode) can produce: an `out` this long never
    /// fails with [`FlacError::OutputFull`] (a frame is never larger than its verbatim form).
    pub fn max_frame_bytes(&self) -> usize {
        let ch = usize::from(self.format.channels);
        let bits = ch * 8 + self.block_size * (ch * usize::from(self.format.bits_per_sample) + 1);
        // Frame header at most 14 bytes, CRC-16 two.
        16 + bits.div_ceil(8)
    }

    /// Encodes one block of interleaved samples (1 to `block_size` whole frames) as a FLAC
    /// frame at the start of `out`, and returns the frame's length in bytes.
    ///
    /// Nothing is recorded unless it succeeds, so a block refused for a small `out` can be
    /// passed again with a larger one.
    pub fn encode<S: Sample>(&mut self, samples: &[S], out: &mut [u8]) -> Result<usize, FlacError> {
        let ch = usize::from(self.format.channels);
        let n = samples.len() / ch;
        if n == 0 || n > self.block_size || !samples.len().is_multiple_of(ch) {
            return Err(FlacError::BlockLength);
        }
        if self.ended || self.blocks == 1 << 31 {
            return Err(FlacError::StreamEnded);
        }
        let bps = u32::from(self.format.bits_per_sample);
        if S::BITS > bps {
            let max = (1 << (bps - 1)) - 1;
            if samples
                .iter()
                .any(|s| !(-max - 1..=max).contains(&s.to_i32()))
            {
                return Err(FlacError::SampleRange);
            }
        }
        let (assignment, pair) = stereo(samples, ch, bps);
        let mut w = BitWriter::new(out);
        self.header(&mut w, n, assignment);
        for c in 0..ch {
            let plan = match pair.get(c) {
                Some(&plan) if ch == 2 => plan,
                _ => analyse(samples, ch, Signal::Channel(c as u8), bps),
            };
            subframe(samples, ch, &plan, &mut w);
        }
        w.flush();
        w.put(16, u32::from(crc16(w.written())));
        let len = w.flush();
        if w.full() {
            return Err(FlacError::OutputFull);
        }

        let frame = len as u32;
        self.min_frame = if self.blocks == 0 {
            frame
        } else {
            self.min_frame.min(frame)
        };
        self.max_frame = self.max_frame.max(frame);
        self.blocks += 1;
        self.total_samples += n as u64;
        self.ended = n < self.block_size;
        self.md5.update_samples(samples, bps);
        Ok(len)
    }

    /// STREAMINFO for what was encoded so far: write it over the stream's first
    /// [`HEADER_LEN`](super::HEADER_LEN) bytes (at the start, and again at the end).
    pub fn stream_info(&self) -> StreamInfo {
        StreamInfo {
            format: self.format,
            min_block_size: self.block_size as u16,
            max_block_size: self.block_size as u16,
            min_frame_size: self.min_frame,
            max_frame_size: self.max_frame,
            total_samples: self.total_samples,
            md5: self.md5.finish(),
        }
    }

    /// Writes the frame header (fixed block size strategy, so it carries the block number)
    /// and its CRC-8.
    fn header(&self, w: &mut BitWriter<'_>, n: usize, assignment: u32) {
        // n <= MAX_BLOCK_SIZE: a power of two from 256 on has a code.
        let (size_code, size_bits) = if n >= 256 && n.is_power_of_two() {
            (n.trailing_zeros(), 0) // 256 << (code - 8)
        } else if n <= 256 {
            (6, 8)
        } else {
            (7, 16)
        };
        let rate = RATES
            .iter()
            .position(|&r| r == self.format.sample_rate)
            .unwrap_or(0);
        // 8, 12, 16, 20, 24 bits: codes 1, 2, 4, 5, 6.
        let bps = u32::from(self.format.bits_per_sample);
        let depth = bps / 4 - u32::from(bps < 16);
        // Sync code, reserved bit, fixed-blocksize stream; the codes; a reserved bit.
        w.put(
            32,
            0xFFF8 << 16 | size_code << 12 | (rate as u32) << 8 | assignment << 4 | depth << 1,
        );
        put_utf8(w, self.blocks);
        if size_bits > 0 {
            w.put(size_bits, (n - 1) as u32);
        }
        w.flush();
        w.put(8, u32::from(crc8(w.written())));
    }
}

/// Writes `v` in FLAC's extended UTF-8 coding (up to 31 bits here: a block number).
pub(crate) fn put_utf8(w: &mut BitWriter<'_>, v: u32) {
    if v < 0x80 {
        return w.put(8, v);
    }
    // m bytes carry 5m + 1 bits.
    let m = (35 - v.leading_zeros()) / 5;
    w.put(8, ((0xFF00 >> m) & 0xFF) | v >> (6 * (m - 1)));
    for i in (0..m - 1).rev() {
        w.put(8, 0x80 | (v >> (6 * i)) & 0x3F);
    }
}

/// The signal of one frame: a channel, or stereo side / mid.
fn pick<S: Sample>(frame: &[S], signal: Signal) -> i32 {
    let at = |i: usize| frame.get(i).map_or(0, |s| s.to_i32());
    match signal {
        Signal::Channel(c) => at(usize::from(c)),
        Signal::Side => at(0) - at(1),
        Signal::Mid => (at(0) + at(1)) >> 1,
    }
}

/// The channel assignment (independent channels unless stereo) and, for stereo, the plans
/// of the cheapest of left/right, left/side, side/right and mid/side by estimated size.
fn stereo<S: Sample>(samples: &[S], ch: usize, bps: u32) -> (u32, [Plan; 2]) {
    if ch != 2 {
        return (ch as u32 - 1, [Plan::NONE; 2]);
    }
    let signals = [
        Signal::Channel(0),
        Signal::Channel(1),
        Signal::Side,
        Signal::Mid,
    ];
    let plans = signals.map(|s| analyse(samples, ch, s, bps));
    let mut best = (u32::MAX, 1, [Plan::NONE; 2]);
    // Left/right first and always taken, then whatever is cheaper.
    for (assignment, a, b) in [(1, 0, 1), (8, 0, 2), (9, 2, 1), (10, 3, 2)] {
        if let (Some(&a), Some(&b)) = (plans.get(a), plans.get(b))
            && (assignment == 1 || a.cost.saturating_add(b.cost) < best.0)
        {
            best = (a.cost.saturating_add(b.cost), assignment, [a, b]);
        }
    }
    (best.1, best.2)
}

/// The first pass over a signal: the fixed predictor with the smallest sum of absolute
/// residuals (all orders compared from the fifth sample on, as libFLAC does), wasted low
/// bits, constancy, and the estimated cost.
fn analyse<S: Sample>(samples: &[S], ch: usize, signal: Signal, bps: u32) -> Plan {
    let bits = bps + u32::from(matches!(signal, Signal::Side));
    let values = samples.chunks_exact(ch).map(|f| pick(f, signal));
    let first = first(samples, ch, signal);
    let (mut or, mut differ) = (0i32, 0i32);
    // The previous sample's differences of order 0 to 3.
    let mut prev = [0i32; 4];
    let mut sums = [0u64; 5];
    for (i, x) in values.enumerate() {
        or |= x;
        differ |= x ^ first;
        let d1 = x - prev[0];
        let d2 = d1 - prev[1];
        let d3 = d2 - prev[2];
        let d4 = d3 - prev[3];
        prev = [x, d1, d2, d3];
        if i >= 4 {
            for (s, e) in sums.iter_mut().zip([x, d1, d2, d3, d4]) {
                *s += u64::from(e.unsigned_abs());
            }
        }
    }
    let n = (samples.len() / ch) as u64;
    let mut plan = Plan {
        signal,
        bits,
        shift: 0,
        constant: differ == 0,
        order: 0,
        cost: 8 + bits,
    };
    if plan.constant {
        return plan;
    }
    plan.shift = or.trailing_zeros().min(bits - 1);
    let (order, sum) =
        sums.iter().enumerate().fold(
            (0, u64::MAX),
            |best, (o, &s)| if s < best.1 { (o, s) } else { best },
        );
    plan.order = order;
    let width = u64::from(bits - plan.shift);
    // Residuals as Rice codes of their zigzag form (twice the magnitude).
    let (_, rice) = rice_parameter((sum >> plan.shift) * 2, n.saturating_sub(order as u64), 30);
    let cost = 8 + u64::from(plan.shift) + (order as u64 * width + 6 + 4 + rice).min(n * width);
    plan.cost = u32::try_from(cost).unwrap_or(u32::MAX);
    plan
}

/// The Rice parameter (at most `max`) of least estimated cost for `count` values summing
/// to `sum`, and that cost in bits.
fn rice_parameter(sum: u64, count: u64, max: u32) -> (u32, u64) {
    let cost = |k: u32| count * u64::from(k + 1) + (sum >> k);
    // The cost is convex in k (least near log2(mean * ln 2)): walk up while it falls.
    let mut best = (0, cost(0));
    for k in 1..=max {
        let c = cost(k);
        if c >= best.1 {
            break;
        }
        best = (k, c);
    }
    best
}

/// The first frame's value of a signal: a constant subframe's value, or 0 for no frames.
fn first<S: Sample>(samples: &[S], ch: usize, signal: Signal) -> i32 {
    samples.get(..ch).map_or(0, |f| pick(f, signal))
}

/// Writes one subframe: constant, fixed, or verbatim when fixed would not be smaller.
fn subframe<S: Sample>(samples: &[S], ch: usize, plan: &Plan, w: &mut BitWriter<'_>) {
    if plan.constant {
        w.put(8, 0);
        return w.put_signed(plan.bits, first(samples, ch, plan.signal));
    }
    let n = samples.len() / ch;
    let verbatim = 8 + plan.shift as usize + n * (plan.bits - plan.shift) as usize;
    let start = w.mark();
    let start_bits = w.bits();
    let mut rice = Rice::new(n, plan);
    if (plan.cost as usize) < verbatim {
        // Estimates can be off: keep the fixed subframe only if it is really smaller (and
        // fits), so a frame never exceeds `max_frame_bytes`.
        pass(samples, ch, plan, plan.order, &mut rice, None);
        rice.choose_order();
        put_type(w, 8 | plan.order as u32, plan.shift);
        pass(samples, ch, plan, plan.order, &mut rice, Some(w));
        if !w.full() && w.bits() - start_bits <= verbatim {
            return;
        }
        w.rewind(start);
    }
    put_type(w, 1, plan.shift);
    // Every sample is a warm-up sample: a verbatim subframe.
    pass(samples, ch, plan, n, &mut rice, Some(w));
}

/// The subframe header: type code and the wasted-bits count in unary.
fn put_type(w: &mut BitWriter<'_>, code: u32, shift: u32) {
    w.put(8, code << 1 | u32::from(shift > 0));
    if shift > 0 {
        w.put(shift, 1);
    }
}

fn zigzag(r: i32) -> u32 {
    ((r << 1) ^ (r >> 31)) as u32
}

/// The partitioned Rice coding of a fixed subframe's residuals: the residual sums of the
/// finest partitions, and the partition order in use.
struct Rice {
    /// Sums of the zigzagged residuals of each of the `2^finest` finest partitions.
    sums: [u64; 1 << MAX_PARTITION_ORDER],
    finest: u32,
    /// The partition order in use: `finest` while summing, then the cheapest.
    order: u32,
    /// Frames in the block.
    n: usize,
    /// The predictor order: warm-up samples, which the first partition holds no residual for.
    warm: usize,
    /// 5-bit Rice parameters (up to 30) only for signals wider than 16 bits.
    wide: bool,
}

impl Rice {
    fn new(n: usize, plan: &Plan) -> Self {
        // Partitions must divide the block and hold more than the warm-up.
        let mut finest = MAX_PARTITION_ORDER;
        while finest > 0 && (!n.is_multiple_of(1 << finest) || n >> finest <= plan.order) {
            finest -= 1;
        }
        Self {
            sums: [0; 1 << MAX_PARTITION_ORDER],
            finest,
            order: finest,
            n,
            warm: plan.order,
            wide: plan.bits - plan.shift > 16,
        }
    }

    /// The Rice parameter of partition `j` at partition order `p`, and its cost in bits
    /// (parameter included).
    fn parameter(&self, p: u32, j: usize) -> (u32, u64) {
        let group = 1 << (self.finest - p);
        let sum = self
            .sums
            .get(j * group..(j + 1) * group)
            .map_or(0, |g| g.iter().sum());
        let count = (self.n >> p) - if j == 0 { self.warm } else { 0 };
        let (k, cost) = rice_parameter(sum, count as u64, if self.wide { 30 } else { 14 });
        (k, cost + 4)
    }

    /// Switches to the partition order of least estimated cost.
    fn choose_order(&mut self) {
        let mut best = (u64::MAX, 0);
        for p in 0..=self.finest {
            let cost = (0..1 << p).map(|j| self.parameter(p, j).1).sum();
            if cost < best.0 {
                best = (cost, p);
            }
        }
        self.order = best.1;
    }
}

/// One pass over a signal, through fixed predictor `plan.order`: the first `warm` samples
/// are written as they are (all of them: a verbatim subframe), the residuals after them are
/// summed per partition into `rice` (no `w`) or written as partitioned Rice codes. The same
/// loops for all three, for less code.
fn pass<S: Sample>(
    samples: &[S],
    ch: usize,
    plan: &Plan,
    warm: usize,
    rice: &mut Rice,
    mut w: Option<&mut BitWriter<'_>>,
) {
    let c = FIXED.get(plan.order).copied().unwrap_or_default();
    let mut values = samples
        .chunks_exact(ch)
        .map(|f| pick(f, plan.signal) >> plan.shift);
    // The history, newest first.
    let mut h = [0i32; 4];
    for x in values.by_ref().take(warm) {
        if let Some(w) = w.as_deref_mut() {
            w.put_signed(plan.bits - plan.shift, x);
        }
        h = [x, h[0], h[1], h[2]];
    }
    if warm == rice.n {
        return; // verbatim
    }
    let len = rice.n >> rice.order;
    for j in 0..1 << rice.order {
        let mut k = 0;
        if let Some(w) = w.as_deref_mut() {
            if j == 0 {
                w.put(2, u32::from(rice.wide));
                w.put(4, rice.order);
            }
            k = rice.parameter(rice.order, j).0;
            w.put(4 + u32::from(rice.wide), k);
        }
        let mut sum = 0;
        for x in values.by_ref().take(if j == 0 { len - warm } else { len }) {
            let u = zigzag(x - (c[0] * h[0] + c[1] * h[1] + c[2] * h[2] + c[3] * h[3]));
            h = [x, h[0], h[1], h[2]];
            match w.as_deref_mut() {
                Some(w) => w.put_rice(u >> k, k, u & ((1 << k) - 1)),
                None => sum += u64::from(u),
            }
        }
        if let (None, Some(s)) = (&w, rice.sums.get_mut(j)) {
            *s = sum;
        }
    }
}
