//! w4l-core as Cortex-M3 firmware (TI LM3S6965, run under QEMU).
//!
//! Uses the core exactly as a microphone node would, with no heap and every buffer static:
//!
//! 1. **Audio path.** The SysTick interrupt is the "audio callback": on every tick it reads
//!    [`CHUNK`] samples from an MCP3202 ([`w4l_core::adc::Mcp3202`], on a simulated SPI
//!    device answering a deterministic waveform) and pushes them into the lock-free ring.
//!    The main loop is the worker: it pops what arrived, feeds the rolling window and the
//!    level meter, and checks every sample against the waveform.
//! 2. **Memory bookkeeping.** The ring's and the window's storage are reserved from a static
//!    accountant and tracked; every 250 ms the worker keeps a 50 ms clip of the window in a
//!    static pool, reserving its bytes first. The audio budget holds two clips: when it
//!    refuses the next one, the tracker picks the oldest clip to release (see `clips.rs`).
//! 3. **Compression.** The streamed second goes through a FLAC encoder in 64 ms blocks
//!    (see `flac.rs`); the stream is decoded back and checked, and its size logged.
//! 4. **Memory scenario.** Runs the scripted one-hour scenario of [`w4l_core::scenario`]
//!    (the one the host's `core/tests/simulation.rs` checks) and writes every policy
//!    transition with its `Display` form, one per line, verbatim on semihosting **stderr**
//!    between two marker lines; `scripts/firmware` compares that block byte for byte with
//!    `core/tests/data/scenario.log`.
//!
//! Everything else is logged with `defmt` over semihosting **stdout** (decode it with
//! `defmt-print`). Ends with a semihosting exit: success if every self-check passed.
//!
//! `scripts/firmware` builds, runs and checks all of it. By hand, from `tests/firmware`:
//!
//! ```text
//! cargo run --release | defmt-print -e target/thumbv7m-none-eabi/release/w4l-firmware
//! ```
#![no_std]
#![no_main]

mod clips;
mod fake;
mod flac;

use core::cell::{RefCell, UnsafeCell};
use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use cortex_m::interrupt::{self, Mutex};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hio};
use defmt_semihosting as _;
use panic_semihosting as _;

use w4l_core::accountant::Accountant;
use w4l_core::adc::{AdcError, Channel, Config, Mcp3202, code_to_sample};
use w4l_core::level::LevelMeter;
use w4l_core::policy::Level;
use w4l_core::ring::{Consumer, Overflow, Producer, Ring};
use w4l_core::scenario::{self, Run};
use w4l_core::tracker::Tracker;
use w4l_core::window::Window;

use clips::{CLIP_BYTES, CLIP_LEN, CLIP_SLOTS, Clips, Payload, Pool, TRACKED};
use fake::{FakeMcp3202, VirtualClock, waveform};

/// Sample rate of the simulated microphone.
const SAMPLE_RATE_HZ: u32 = 16_000;
/// Samples the interrupt reads per tick.
const CHUNK: usize = 32;
/// Samples streamed in all: one second of audio.
const TOTAL: usize = 16_000;
/// Ring capacity, samples (64 ms).
const RING_LEN: usize = 1_024;
/// Window capacity, samples (500 ms, mono).
const WINDOW_LEN: usize = 8_000;
/// SysTick reload: 12 000 cycles of the 12 MHz core clock, 1 ms.
const TICK_CYCLES: u32 = 12_000;
/// Bytes of the two streaming buffers.
const RING_BYTES: usize = RING_LEN * core::mem::size_of::<i16>();
const WINDOW_BYTES: usize = WINDOW_LEN * core::mem::size_of::<i16>();
/// The audio memory budget: the ring, the window and two and a half clips.
const AUDIO_BUDGET: usize = RING_BYTES + WINDOW_BYTES + 2 * CLIP_BYTES + CLIP_BYTES / 2;
/// A clip every 250 ms of audio.
const CLIP_EVERY: usize = 4_000;

/// Marker lines around the transition log on stderr.
const LOG_BEGIN: &str = "--- w4l scenario transitions: begin ---";
const LOG_END: &str = "--- w4l scenario transitions: end ---";

type Adc = Mcp3202<FakeMcp3202, &'static VirtualClock>;
type AudioRing = Ring<&'static mut [i16]>;

/// A statically allocated buffer handed out once as `&'static mut`.
struct StaticBuffer<T> {
    taken: AtomicBool,
    cell: UnsafeCell<T>,
}

// SAFETY: the contents are reachable only through the one `&'static mut` that `take`
// hands out (guarded by `taken`), so sharing the wrapper between contexts is sound.
unsafe impl<T: Send> Sync for StaticBuffer<T> {}

impl<T> StaticBuffer<T> {
    const fn new(value: T) -> Self {
        StaticBuffer {
            taken: AtomicBool::new(false),
            cell: UnsafeCell::new(value),
        }
    }

    /// The buffer, the first time; `None` afterwards.
    #[allow(clippy::mut_from_ref)] // guarded by `taken`: handed out once
    fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: `taken` was false, so no other reference to the contents exists, and
        // none will be made again.
        Some(unsafe { &mut *self.cell.get() })
    }
}

// The two big buffers, caller-supplied storage of the ring and the window (zeroed: .bss).
// Named so that the footprint report can leave them out.
static W4L_RING_STORAGE: StaticBuffer<[i16; RING_LEN]> = StaticBuffer::new([0; RING_LEN]);
static W4L_WINDOW_STORAGE: StaticBuffer<[i16; WINDOW_LEN]> = StaticBuffer::new([0; WINDOW_LEN]);

static W4L_CLIP_POOL: StaticBuffer<Pool> = StaticBuffer::new([[0; CLIP_LEN]; CLIP_SLOTS]);
static W4L_FLAC_OUT: StaticBuffer<flac::Out> = StaticBuffer::new([0; flac::OUT_BYTES]);
static TRACKER: StaticBuffer<Tracker<Payload, TRACKED>> = StaticBuffer::new(Tracker::new());
static ACCOUNTANT: Accountant = Accountant::new(AUDIO_BUDGET, 0);

static CLOCK: VirtualClock = VirtualClock::new();

/// What the interrupt owns while streaming: the ADC driver and the ring's producer half.
type AudioSide = (Adc, Producer<&'static AudioRing>);
static AUDIO_SIDE: Mutex<RefCell<Option<AudioSide>>> = Mutex::new(RefCell::new(None));
static PRODUCED: AtomicUsize = AtomicUsize::new(0);
static OVERRUNS: AtomicUsize = AtomicUsize::new(0);
static ADC_ERRORS: AtomicUsize = AtomicUsize::new(0);

/// The "audio callback": read up to `CHUNK` samples and push them into the ring.
#[exception]
fn SysTick() {
    interrupt::free(|cs| {
        let mut side = AUDIO_SIDE.borrow(cs).borrow_mut();
        let Some((adc, producer)) = side.as_mut() else {
            return;
        };
        let done = PRODUCED.load(Ordering::Relaxed);
        let want = CHUNK.min(TOTAL - done.min(TOTAL));
        let pushed = match adc.fill_ring(producer, want) {
            Ok(n) => n,
            Err(AdcError::Overrun { pushed }) => {
                OVERRUNS.fetch_add(1, Ordering::Relaxed);
                pushed
            }
            Err(_) => {
                ADC_ERRORS.fetch_add(1, Ordering::Relaxed);
                0
            }
        };
        PRODUCED.store(done + pushed, Ordering::Relaxed);
    });
}

/// Self-check tally.
struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    fn check(&mut self, ok: bool, what: &str) {
        if ok {
            self.passed += 1;
            defmt::info!("check ok: {=str}", what);
        } else {
            self.failed += 1;
            defmt::error!("check FAILED: {=str}", what);
        }
    }
}

fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Not reached under QEMU; on hardware without a debugger, park.
    loop {
        cortex_m::asm::wfi();
    }
}

fn fatal(what: &str) -> ! {
    defmt::error!("fatal: {=str}", what);
    exit(false)
}

#[entry]
fn main() -> ! {
    defmt::info!(
        "w4l firmware: Cortex-M3, {=usize} B RAM of buffers, no heap",
        core::mem::size_of::<[i16; RING_LEN]>() + core::mem::size_of::<[i16; WINDOW_LEN]>()
    );
    let mut checks = Checks {
        passed: 0,
        failed: 0,
    };

    let Some(mut cp) = cortex_m::Peripherals::take() else {
        fatal("core peripherals taken twice")
    };
    let (Some(ring_storage), Some(window_storage)) =
        (W4L_RING_STORAGE.take(), W4L_WINDOW_STORAGE.take())
    else {
        fatal("buffers taken twice")
    };
    let ring = match Ring::new(&mut ring_storage[..], Overflow::RejectNewest) {
        Ok(ring) => ring,
        Err(e) => {
            defmt::error!("ring: {}", e);
            fatal("ring")
        }
    };
    let Some(ring) = cortex_m::singleton!(: AudioRing = ring) else {
        fatal("ring singleton")
    };
    let (producer, mut consumer) = ring.split();
    // Read-only from here on: the ring's counters.
    let ring: &'static AudioRing = consumer.handle();
    let Ok(mut window) = Window::new(window_storage, 1) else {
        fatal("window")
    };
    let (Some(pool), Some(tracker)) = (W4L_CLIP_POOL.take(), TRACKER.take()) else {
        fatal("clip pool taken twice")
    };
    let mut clips = Clips::new(&ACCOUNTANT, tracker, pool);
    let Some(flac_out) = W4L_FLAC_OUT.take() else {
        fatal("flac buffer taken twice")
    };
    let mut recorder = match flac::Recorder::new(flac_out, SAMPLE_RATE_HZ) {
        Ok(r) => r,
        Err(e) => {
            defmt::error!("flac: {}", e);
            fatal("flac encoder")
        }
    };
    checks.check(
        clips.track_buffer(1, RING_BYTES) && clips.track_buffer(2, WINDOW_BYTES),
        "ring and window storage reserved and tracked",
    );
    let Ok(config) = Config::new(Channel::Single0, SAMPLE_RATE_HZ) else {
        fatal("adc config")
    };
    defmt::info!("adc: {}", config);
    let adc = Mcp3202::new(FakeMcp3202::new(), &CLOCK, config);

    // 1. Stream one second of audio: SysTick produces, main consumes.
    interrupt::free(|cs| AUDIO_SIDE.borrow(cs).replace(Some((adc, producer))));
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(TICK_CYCLES - 1);
    cp.SYST.clear_current();
    cp.SYST.enable_counter();
    cp.SYST.enable_interrupt();

    let mut meter = LevelMeter::new();
    let (consumed, mismatches, expected_peak) =
        consume(&mut consumer, &mut window, &mut meter, &mut clips);

    cp.SYST.disable_interrupt();
    cp.SYST.disable_counter();
    let Some((mut adc, mut producer)) = interrupt::free(|cs| AUDIO_SIDE.borrow(cs).take()) else {
        fatal("audio side lost")
    };

    let stats = ring.stats();
    defmt::info!(
        "stream: {=usize} samples, ring {}, window {=usize}/{=usize} frames, overruns {=usize}",
        consumed,
        stats,
        window.frames_available(),
        window.capacity_frames(),
        OVERRUNS.load(Ordering::Relaxed)
    );
    checks.check(
        consumed == TOTAL && mismatches == 0,
        "every sample arrived in order",
    );
    checks.check(
        stats.pushed == TOTAL && stats.popped == TOTAL && stats.dropped == 0,
        "ring counted every sample once",
    );
    checks.check(
        OVERRUNS.load(Ordering::Relaxed) == 0 && ADC_ERRORS.load(Ordering::Relaxed) == 0,
        "no overrun, no ADC error",
    );
    checks.check(
        window_holds_latest(&window),
        "window holds the latest 500 ms",
    );
    let level = meter.level();
    defmt::info!(
        "level: peak {=f32} dBFS, rms {=f32} dBFS",
        level.peak_dbfs(),
        level.rms_dbfs()
    );
    checks.check(meter.peak() == expected_peak, "level meter peak");
    let expected_ns = (TOTAL as u64 - 1) * u64::from(config.gap_ns());
    defmt::info!(
        "virtual time waited between conversions: {=u64} ns",
        CLOCK.now_ns()
    );
    checks.check(
        CLOCK.now_ns() == expected_ns,
        "pacing: one gap per conversion",
    );

    let (tracked, tracked_bytes) = clips.tracked();
    defmt::info!(
        "memory: {=usize}/{=usize} B reserved (peak {=usize}), {=usize} buffers tracked holding {=usize} B",
        ACCOUNTANT.memory_used(),
        ACCOUNTANT.memory_budget(),
        ACCOUNTANT.figures().memory_peak,
        tracked,
        tracked_bytes
    );
    checks.check(
        clips.taken == 4 && clips.refused == 2 && clips.evicted == 2 && clips.errors == 0,
        "clips: budget refused two, the oldest were evicted, contents intact",
    );
    checks.check(
        ACCOUNTANT.memory_used() == RING_BYTES + WINDOW_BYTES + 2 * CLIP_BYTES
            && tracked == 4
            && tracked_bytes == ACCOUNTANT.memory_used(),
        "accountant and tracker agree",
    );

    check_flac(&mut checks, &mut recorder);

    // 2. Back-pressure: with nobody consuming, the ring fills and the driver reports it.
    let before = ring.stats();
    let overrun = adc.fill_ring(&mut producer, RING_LEN + 1);
    defmt::info!("fill an idle ring: {}", overrun);
    checks.check(
        overrun == Err(AdcError::Overrun { pushed: RING_LEN })
            && ring.stats().dropped == before.dropped + 1,
        "full ring reports overrun",
    );
    let mut drain = [0i16; 64];
    while consumer.pop_slice(&mut drain) > 0 {}

    // 3. An unplugged converter: MISO floats high.
    let (mut spi, delay) = adc.release();
    spi.unplugged = true;
    let mut adc = Mcp3202::new(spi, delay, config);
    checks.check(
        adc.read_code() == Err(AdcError::NoDevice),
        "unplugged ADC is NoDevice",
    );

    // 4. The scripted memory scenario through the cleanup policy.
    let (transitions, final_level) = run_scenario();
    defmt::info!(
        "scenario: {=usize} transitions, ends {}",
        transitions,
        final_level
    );
    checks.check(final_level == Some(Level::Normal), "scenario ends Normal");

    defmt::info!(
        "firmware self-checks: {=u32} passed, {=u32} failed",
        checks.passed,
        checks.failed
    );
    exit(checks.failed == 0)
}

/// The worker loop: pops what the interrupt pushed until `TOTAL` samples arrived (sleeping
/// in between), writes them into the window, meters them and compares each with the
/// waveform; keeps a clip every `CLIP_EVERY` samples. Returns (samples consumed,
/// mismatches, expected peak).
fn consume(
    consumer: &mut Consumer<&'static AudioRing>,
    window: &mut Window<i16, &'static mut [i16; WINDOW_LEN]>,
    meter: &mut LevelMeter,
    clips: &mut Clips,
) -> (usize, usize, f32) {
    let mut block = [0i16; 256];
    let mut consumed = 0usize;
    let mut mismatches = 0usize;
    let mut expected_peak = 0.0f32;
    let mut idle_wakeups = 0u32;
    while consumed < TOTAL {
        let n = consumer.pop_slice(&mut block);
        if n == 0 {
            idle_wakeups += 1;
            if idle_wakeups > 100_000 {
                defmt::error!("no samples for too long");
                break;
            }
            cortex_m::asm::wfi();
            continue;
        }
        let got = &block[..n];
        for (i, &s) in got.iter().enumerate() {
            let want: i16 = code_to_sample(waveform((consumed + i) as u32));
            expected_peak = expected_peak.max((f32::from(want) / 32_768.0).abs());
            if s != want {
                mismatches += 1;
            }
        }
        window.write(got);
        meter.feed(got);
        let before = consumed;
        consumed += n;
        if consumed / CLIP_EVERY != before / CLIP_EVERY {
            defmt::info!(
                "worker: {=usize} samples, window {=u16}‰ full",
                consumed,
                window.fill_permille()
            );
            let now_ms = (consumed as u64) * 1_000 / u64::from(SAMPLE_RATE_HZ);
            let first = consumed - CLIP_LEN;
            clips.take(window, now_ms, |i| {
                code_to_sample(waveform((first + i) as u32))
            });
        }
    }
    (consumed, mismatches, expected_peak)
}

/// Compresses the streamed second (the waveform the worker checked, sample for sample) in
/// 64 ms blocks as they would arrive, decodes the stream back against the waveform, and logs
/// its size against raw 16-bit samples. Apart from the worker loop and not inlined, so that
/// the code size report of the rest of the core does not move with it.
#[inline(never)]
fn check_flac(checks: &mut Checks, recorder: &mut flac::Recorder) {
    let mut chunk = [0i16; 256];
    for start in (0..TOTAL).step_by(chunk.len()) {
        let len = chunk.len().min(TOTAL - start);
        for (i, s) in chunk[..len].iter_mut().enumerate() {
            *s = code_to_sample(waveform((start + i) as u32));
        }
        recorder.push(&chunk[..len]);
    }
    let stream = recorder.finish();
    let raw = TOTAL * core::mem::size_of::<i16>();
    defmt::info!(
        "flac: {=usize} samples -> {=usize} B, {=usize}/1000 of raw 16-bit ({=usize} B)",
        TOTAL,
        stream.len(),
        stream.len() * 1_000 / raw,
        raw
    );
    let expected = |i: usize| -> i16 { code_to_sample(waveform(i as u32)) };
    match flac::verify(stream, expected) {
        Ok((decoded, mismatches)) => checks.check(
            decoded == TOTAL && mismatches == 0 && recorder.errors == 0,
            "flac: the second decodes back sample-exact",
        ),
        Err(e) => {
            defmt::error!("flac: decode: {}", e);
            checks.check(false, "flac: the second decodes back sample-exact");
        }
    }
}

/// Does the window hold exactly the last `WINDOW_LEN` samples of the waveform? Checks the
/// newest 256 through `latest` (chronological) and the whole storage as a rotation of the
/// expected 500 ms (ring order).
fn window_holds_latest(window: &Window<i16, &'static mut [i16; WINDOW_LEN]>) -> bool {
    let expected = |i: usize| -> i16 { code_to_sample(waveform((TOTAL - WINDOW_LEN + i) as u32)) };
    let mut newest = [0i16; 256];
    let k = newest.len();
    let latest_ok = window.latest(k, &mut newest) == k
        && newest
            .iter()
            .enumerate()
            .all(|(j, &s)| s == expected(WINDOW_LEN - k + j));
    let storage = window.storage();
    let rotation_ok = (0..WINDOW_LEN)
        .any(|off| (0..WINDOW_LEN).all(|i| storage[(off + i) % WINDOW_LEN] == expected(i)));
    window.frames_available() == WINDOW_LEN
        && window.samples_written() == TOTAL as u64
        && latest_ok
        && rotation_ok
}

/// Runs the scenario; writes the transition log verbatim on semihosting stderr. Returns
/// the number of transitions and the final level (`None` if stderr was unavailable).
fn run_scenario() -> (usize, Option<Level>) {
    let Ok(mut err) = hio::hstderr() else {
        defmt::error!("semihosting stderr unavailable");
        return (0, None);
    };
    // The policy (and its transition log) lives in a static, not on the stack.
    let Some(run) = cortex_m::singleton!(: Run = scenario::transitions()) else {
        return (0, None);
    };
    let mut n = 0;
    let mut ok = writeln!(err, "{LOG_BEGIN}").is_ok();
    for t in run.by_ref() {
        ok &= writeln!(err, "{t}").is_ok();
        defmt::info!("policy: {}", t);
        n += 1;
    }
    ok &= writeln!(err, "{LOG_END}").is_ok();
    let level = ok.then(|| run.policy().level());
    (n, level)
}
