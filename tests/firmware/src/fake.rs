//! The simulated hardware: an MCP3202 on the SPI bus answering a deterministic waveform,
//! and a delay provider that advances a virtual clock instead of spinning.

use core::sync::atomic::{AtomicU32, Ordering};

use embedded_hal::delay::DelayNs;
use embedded_hal::spi::{self, ErrorType, Operation, SpiDevice};

/// Samples per period of the test tone: 16 kHz / 40 = 400 Hz.
const TONE_PERIOD: u32 = 40;
/// Samples per step of the amplitude envelope (100 ms at 16 kHz).
const ENVELOPE_STEP: u32 = 1_600;

/// The 12-bit code the fake converter answers for conversion number `n` on CH0: a 400 Hz
/// triangle whose amplitude steps through 0..=7 (x 240 codes) every 100 ms, plus +-3 codes
/// of hashed noise, around mid-scale. Pure function of `n`, so the firmware can check what
/// arrived in the window.
pub const fn waveform(n: u32) -> u16 {
    let phase = n % TONE_PERIOD;
    let half = TONE_PERIOD / 2;
    // -10..=10
    let tri = if phase < half {
        phase
    } else {
        TONE_PERIOD - phase
    } as i32
        - (half / 2) as i32;
    let amp = ((n / ENVELOPE_STEP) % 8) as i32 * 24;
    let mut h = n.wrapping_mul(0x9E37_79B9);
    h ^= h >> 15;
    let noise = (h % 7) as i32 - 3;
    (2048 + tri * amp + noise) as u16
}

/// A protocol error the fake device reports when the driver's frame is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum FakeError {
    /// Not exactly one three-byte transfer in the transaction.
    Frame,
    /// Byte 0 was not the start bit or MSBF was clear.
    Request,
}

impl spi::Error for FakeError {
    fn kind(&self) -> spi::ErrorKind {
        spi::ErrorKind::Other
    }
}

/// An MCP3202 behind its chip select. CH0 carries [`waveform`]; CH1 and the differential
/// pairs read mid-scale. `unplugged` makes MISO float high.
pub struct FakeMcp3202 {
    /// Conversions answered so far.
    pub conversions: u32,
    /// When set, every bit reads 1 (no chip on the bus).
    pub unplugged: bool,
}

impl FakeMcp3202 {
    pub const fn new() -> Self {
        FakeMcp3202 {
            conversions: 0,
            unplugged: false,
        }
    }
}

impl ErrorType for FakeMcp3202 {
    type Error = FakeError;
}

impl SpiDevice<u8> for FakeMcp3202 {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), FakeError> {
        let [Operation::Transfer(read, write)] = operations else {
            return Err(FakeError::Frame);
        };
        let (Ok(read), Ok(write)) = (
            <&mut [u8; 3]>::try_from(&mut **read),
            <&[u8; 3]>::try_from(&**write),
        ) else {
            return Err(FakeError::Frame);
        };
        if write[0] != 0x01 || write[1] & 0x20 == 0 {
            return Err(FakeError::Request);
        }
        if self.unplugged {
            *read = [0xFF; 3];
            return Ok(());
        }
        let single_ch0 = write[1] & 0xC0 == 0x80;
        let code = if single_ch0 {
            waveform(self.conversions)
        } else {
            0x800
        };
        self.conversions = self.conversions.wrapping_add(1);
        // MISO is high-Z (reads 1) until the null bit; then B11..B0.
        *read = [0xFF, 0xE0 | (code >> 8) as u8, code as u8];
        Ok(())
    }
}

/// Virtual time: each delay advances it instead of burning cycles (QEMU's clock is not
/// cycle-accurate anyway), so the run is deterministic and fast. Counts nanoseconds in a
/// `u32` (thumbv7m has no 64-bit atomics): saturates after 4.29 s of waiting, far beyond
/// what the firmware streams.
pub struct VirtualClock {
    ns: AtomicU32,
}

impl VirtualClock {
    pub const fn new() -> Self {
        VirtualClock {
            ns: AtomicU32::new(0),
        }
    }

    pub fn now_ns(&self) -> u64 {
        u64::from(self.ns.load(Ordering::Relaxed))
    }
}

impl DelayNs for &VirtualClock {
    fn delay_ns(&mut self, ns: u32) {
        // One writer at a time (the driver that owns this handle): load + store suffices.
        let now = self.ns.load(Ordering::Relaxed);
        self.ns.store(now.saturating_add(ns), Ordering::Relaxed);
    }
}
