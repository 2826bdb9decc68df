//! SPI ADC sample source for firmware: a driver for the Microchip **MCP3202**
//! (12-bit, 2-channel successive-approximation ADC, the usual front end of an electret
//! microphone pre-amplifier on small boards), generic over `embedded-hal` 1.0.
//!
//! The driver owns an [`SpiDevice`] (the bus plus the chip-select line) and a [`DelayNs`]
//! that paces conversions at the configured sample rate. It converts the 12-bit codes to
//! any [`Sample`] format through the core's [`sample`](crate::sample) conversions and can
//! push them straight into the producer side of the core's [`ring`](crate::ring).
//!
//! # Frame format
//!
//! One conversion is one SPI transaction of three bytes, SPI mode 0 (or 3), MSB first,
//! chip select asserted for the whole transaction (datasheet DS21034, section 6.1,
//! "Using the MCP3202 with microcontroller SPI ports"):
//!
//! ```text
//!          byte 0       byte 1                    byte 2
//! MOSI:  0000 0001    S O M x xxxx              xxxx xxxx
//! MISO:  ???? ????    ? ? ? 0 B11 B10 B9 B8     B7 B6 B5 B4 B3 B2 B1 B0
//! ```
//!
//! * byte 0 carries seven leading zeros and the **start bit**;
//! * byte 1 carries `S` = SGL/DIFF (1: single-ended, 0: pseudo-differential),
//!   `O` = ODD/SIGN (the channel, or the polarity of the pair), `M` = MSBF (always 1 here:
//!   MSB-first only, so the chip does not repeat the word LSB first); the chip answers with
//!   a **null bit** (always 0) and the four most significant result bits;
//! * byte 2 clocks out the eight least significant bits.
//!
//! The result is an unsigned, offset-binary 12-bit code: `0` is the negative rail, `2048`
//! the mid-scale (silence for an AC-coupled microphone biased at `VREF/2`), `4095` the
//! positive rail. The driver shifts it left by four into a `u16` offset-binary sample and
//! lets [`Sample`] do the rest, so `2048` becomes `0i16` / `0.0f32`, `0` becomes
//! `-32768i16` / `-1.0f32` and `4095` becomes `32752i16` / `0.99951f32`.
//!
//! A null bit read as `1` means nothing drove MISO (no chip, a floating line pulled up):
//! the driver reports [`AdcError::NoDevice`] instead of returning a bogus sample.
//!
//! # Pacing
//!
//! The SPI transfer takes `24 / spi_clock_hz` seconds, the sample period
//! `1 / sample_rate_hz`. Before every conversion except the first one after
//! [`Mcp3202::new`] (or [`Mcp3202::restart`]) the driver waits the difference, so with a
//! delay provider that is exact the samples are evenly spaced. Limits from the datasheet
//! at `VDD = 5 V`: at most 100 ksps and an SPI clock of at most 1.8 MHz; [`Config`]
//! rejects settings outside them, or where the transfer alone is longer than the period,
//! with a [`ConfigError`].
//!
//! # Example
//!
//! Two conversions of channel 0, on a mocked bus (`embedded-hal-mock`) that asserts every
//! byte written and chip-select transaction:
//!
//! ```
//! use embedded_hal_mock::eh1::delay::{CheckedDelay, Transaction as D};
//! use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};
//! use w4l_core::adc::{Channel, Config, Mcp3202};
//!
//! let frame = |hi: u8, lo: u8| {
//!     [
//!         T::transaction_start(),
//!         T::transfer(vec![0x01, 0xA0, 0x00], vec![0x00, hi, lo]),
//!         T::transaction_end(),
//!     ]
//! };
//! let mut expected = Vec::new();
//! expected.extend(frame(0x08, 0x00)); // code 2048: mid-scale
//! expected.extend(frame(0x0F, 0xFF)); // code 4095: positive rail
//! let spi = Mock::new(&expected);
//! // 16 kHz => 62 500 ns period; 24 bits at 1 MHz => 24 000 ns on the bus.
//! let delay = CheckedDelay::new(&[D::delay_ns(38_500)]);
//!
//! let config = Config::new(Channel::Single0, 16_000).unwrap();
//! let mut adc = Mcp3202::new(spi, delay, config);
//! let mut samples = [0i16; 2];
//! adc.read(&mut samples).unwrap();
//! assert_eq!(samples, [0, 32752]);
//!
//! let (mut spi, mut delay) = adc.release();
//! spi.done();
//! delay.done();
//! ```

use core::fmt;

use embedded_hal::delay::DelayNs;
use embedded_hal::spi::{Operation, SpiDevice};

use crate::ring::{Producer, RingRef, Storage};
use crate::sample::Sample;

/// Largest code the MCP3202 returns (12 bits, offset binary).
pub const MAX_CODE: u16 = 0x0FFF;

/// Mid-scale code: silence for a microphone biased at `VREF / 2`.
pub const MID_CODE: u16 = 0x0800;

/// Highest sample rate the MCP3202 supports (at `VDD = 5 V`), in samples per second.
pub const MAX_SAMPLE_RATE_HZ: u32 = 100_000;

/// Highest SPI clock the MCP3202 supports (at `VDD = 5 V`), in hertz.
pub const MAX_SPI_CLOCK_HZ: u32 = 1_800_000;

/// SPI clock assumed by [`Config::new`], in hertz (a safe value at 2.7 V to 5.5 V).
pub const DEFAULT_SPI_CLOCK_HZ: u32 = 1_000_000;

/// Bits clocked per conversion: three bytes.
pub const FRAME_BITS: u32 = 24;

/// Byte 0 of every request frame: seven leading zeros and the start bit.
const START: u8 = 0x01;
/// ODD/SIGN bit of byte 1.
const ODD: u8 = 0x40;
/// SGL/DIFF bit of byte 1.
const SGL: u8 = 0x80;
/// MSBF bit of byte 1.
const MSBF: u8 = 0x20;
/// Null bit in byte 1 of the answer: the chip always drives it low.
const NULL_BIT: u8 = 0x10;

/// The input the MCP3202 converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Channel {
    /// CH0, single-ended (against ground).
    Single0,
    /// CH1, single-ended (against ground).
    Single1,
    /// Pseudo-differential, CH0 = IN+, CH1 = IN−.
    Diff01,
    /// Pseudo-differential, CH1 = IN+, CH0 = IN−.
    Diff10,
}

impl Channel {
    /// Byte 1 of the request frame for this input: SGL/DIFF, ODD/SIGN and MSBF = 1.
    #[must_use]
    pub const fn config_byte(self) -> u8 {
        match self {
            Channel::Single0 => SGL | MSBF,
            Channel::Single1 => SGL | ODD | MSBF,
            Channel::Diff01 => MSBF,
            Channel::Diff10 => ODD | MSBF,
        }
    }

    /// The three bytes written for one conversion of this input.
    #[must_use]
    pub const fn request(self) -> [u8; 3] {
        [START, self.config_byte(), 0x00]
    }
}

/// Decodes the three bytes read during a conversion into the 12-bit code.
///
/// Returns `None` when the null bit is `1`: nothing drove MISO (an absent chip, a line
/// pulled up). Byte 0 and the three high bits of byte 1 are clocked out while the chip is
/// still receiving the request and are ignored.
#[must_use]
pub const fn decode(frame: [u8; 3]) -> Option<u16> {
    if frame[1] & NULL_BIT != 0 {
        return None;
    }
    Some((((frame[1] & 0x0F) as u16) << 8) | frame[2] as u16)
}

/// Converts a 12-bit offset-binary code to any sample format via the core's
/// [`Sample`] conversions (the code becomes a `u16` offset-binary sample first).
///
/// Codes above [`MAX_CODE`] cannot come from the chip; their extra bits are dropped.
#[must_use]
pub fn code_to_sample<S: Sample>(code: u16) -> S {
    S::from_sample((code & MAX_CODE) << 4)
}

/// Settings of one [`Mcp3202`]: the input, the sample rate and the SPI clock (the clock
/// is not set by the driver, the [`SpiDevice`] owns it; the driver needs it only to pace
/// conversions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    channel: Channel,
    sample_rate_hz: u32,
    spi_clock_hz: u32,
    period_ns: u32,
    gap_ns: u32,
}

impl Config {
    /// Settings for `channel` at `sample_rate_hz`, with the SPI clock at
    /// [`DEFAULT_SPI_CLOCK_HZ`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::SampleRate`] if the rate is 0 or above [`MAX_SAMPLE_RATE_HZ`];
    /// [`ConfigError::TooFast`] if one 24-bit transfer does not fit in a sample period.
    pub fn new(channel: Channel, sample_rate_hz: u32) -> Result<Self, ConfigError> {
        Self::with_spi_clock(channel, sample_rate_hz, DEFAULT_SPI_CLOCK_HZ)
    }

    /// Settings with an explicit SPI clock.
    ///
    /// # Errors
    ///
    /// As [`Config::new`], plus [`ConfigError::SpiClock`] if the clock is 0 or above
    /// [`MAX_SPI_CLOCK_HZ`].
    pub fn with_spi_clock(
        channel: Channel,
        sample_rate_hz: u32,
        spi_clock_hz: u32,
    ) -> Result<Self, ConfigError> {
        if sample_rate_hz == 0 || sample_rate_hz > MAX_SAMPLE_RATE_HZ {
            return Err(ConfigError::SampleRate);
        }
        if spi_clock_hz == 0 || spi_clock_hz > MAX_SPI_CLOCK_HZ {
            return Err(ConfigError::SpiClock);
        }
        let period_ns = div_ceil_ns(1, sample_rate_hz);
        let transfer_ns = div_ceil_ns(FRAME_BITS, spi_clock_hz);
        let Some(gap_ns) = period_ns.checked_sub(transfer_ns) else {
            return Err(ConfigError::TooFast);
        };
        Ok(Config {
            channel,
            sample_rate_hz,
            spi_clock_hz,
            period_ns,
            gap_ns,
        })
    }

    /// The input converted.
    #[must_use]
    pub const fn channel(&self) -> Channel {
        self.channel
    }

    /// The sample rate, in hertz.
    #[must_use]
    pub const fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// The SPI clock the pacing assumes, in hertz.
    #[must_use]
    pub const fn spi_clock_hz(&self) -> u32 {
        self.spi_clock_hz
    }

    /// The sample period, in nanoseconds (rounded up).
    #[must_use]
    pub const fn period_ns(&self) -> u32 {
        self.period_ns
    }

    /// The wait between two conversions: the period less the transfer time, in
    /// nanoseconds.
    #[must_use]
    pub const fn gap_ns(&self) -> u32 {
        self.gap_ns
    }
}

/// `ceil(bits * 1e9 / hz)` for `hz > 0`; saturates instead of overflowing.
fn div_ceil_ns(bits: u32, hz: u32) -> u32 {
    let num = u64::from(bits) * 1_000_000_000;
    let ns = num.div_ceil(u64::from(hz.max(1)));
    u32::try_from(ns).unwrap_or(u32::MAX)
}

/// What went wrong in the [`Mcp3202`] driver. `E` is the [`SpiDevice`]'s error type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AdcError<E> {
    /// The SPI device failed; carries its error.
    Spi(E),
    /// The answer's null bit was `1`: nothing drove MISO.
    NoDevice,
    /// The ring refused a sample: only `pushed` samples of this call went into it, the
    /// conversion that found it full was dropped (the consumer is too slow).
    Overrun {
        /// Samples pushed into the ring before it was full.
        pushed: usize,
    },
}

impl<E: fmt::Debug> fmt::Display for AdcError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdcError::Spi(e) => write!(f, "SPI transfer failed: {e:?}"),
            AdcError::NoDevice => f.write_str("ADC did not answer (null bit high: MISO floating?)"),
            AdcError::Overrun { pushed } => {
                write!(f, "ring full after {pushed} samples: sample dropped")
            }
        }
    }
}

impl<E: fmt::Debug> core::error::Error for AdcError<E> {}

/// A [`Config`] the MCP3202 cannot run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// The sample rate is 0 or above [`MAX_SAMPLE_RATE_HZ`].
    SampleRate,
    /// The SPI clock is 0 or above [`MAX_SPI_CLOCK_HZ`].
    SpiClock,
    /// One transfer at this SPI clock takes longer than a sample period.
    TooFast,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::SampleRate => write!(
                f,
                "sample rate must be 1 to {MAX_SAMPLE_RATE_HZ} Hz for the MCP3202"
            ),
            ConfigError::SpiClock => {
                write!(
                    f,
                    "SPI clock must be 1 to {MAX_SPI_CLOCK_HZ} Hz for the MCP3202"
                )
            }
            ConfigError::TooFast => {
                f.write_str("a 24-bit transfer at this SPI clock is longer than the sample period")
            }
        }
    }
}

impl core::error::Error for ConfigError {}

/// Driver of one MCP3202 on an [`SpiDevice`], paced by a [`DelayNs`].
///
/// See the [module documentation](self) for the frame format and the pacing; the example
/// there reads two samples on a mocked bus.
#[derive(Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Mcp3202<SPI, D> {
    spi: SPI,
    delay: D,
    config: Config,
    primed: bool,
}

impl<SPI, D, E> Mcp3202<SPI, D>
where
    SPI: SpiDevice<u8, Error = E>,
    D: DelayNs,
{
    /// A driver for the chip behind `spi`, paced with `delay`. Does not touch the bus.
    pub const fn new(spi: SPI, delay: D, config: Config) -> Self {
        Mcp3202 {
            spi,
            delay,
            config,
            primed: false,
        }
    }

    /// The settings in use.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Forgets the time of the last conversion: the next one starts without waiting
    /// (after the stream was paused, say).
    pub fn restart(&mut self) {
        self.primed = false;
    }

    /// One paced conversion: waits the gap (unless it is the first conversion), then runs
    /// the three-byte transaction and returns the 12-bit code.
    ///
    /// # Errors
    ///
    /// [`AdcError::Spi`] if the transfer failed, [`AdcError::NoDevice`] if the null bit
    /// was high.
    pub fn read_code(&mut self) -> Result<u16, AdcError<E>> {
        if self.primed {
            self.delay.delay_ns(self.config.gap_ns);
        }
        self.primed = true;
        let request = self.config.channel.request();
        let mut answer = [0u8; 3];
        self.spi
            .transaction(&mut [Operation::Transfer(&mut answer, &request)])
            .map_err(AdcError::Spi)?;
        decode(answer).ok_or(AdcError::NoDevice)
    }

    /// One paced conversion, converted to `S` with [`code_to_sample`].
    ///
    /// # Errors
    ///
    /// As [`Mcp3202::read_code`].
    pub fn read_sample<S: Sample>(&mut self) -> Result<S, AdcError<E>> {
        self.read_code().map(code_to_sample)
    }

    /// Fills `buf` with paced conversions, converted to `S` (`i16`, `f32`, … any
    /// [`Sample`]).
    ///
    /// # Errors
    ///
    /// As [`Mcp3202::read_code`]; on an error the samples before it are in `buf` and the
    /// rest of `buf` is unchanged.
    pub fn read<S: Sample>(&mut self, buf: &mut [S]) -> Result<(), AdcError<E>> {
        for slot in buf.iter_mut() {
            *slot = self.read_sample()?;
        }
        Ok(())
    }

    /// Runs `count` paced conversions and pushes each, converted to the ring's sample
    /// type, into the ring `producer` as soon as it is read; returns `count`.
    ///
    /// # Errors
    ///
    /// [`AdcError::Overrun`] when the ring refuses a sample (full under
    /// [`Overflow::RejectNewest`](crate::ring::Overflow::RejectNewest); the ring counts it
    /// as dropped, and the driver stops there); otherwise as [`Mcp3202::read_code`].
    /// Samples pushed before an error stay in the ring.
    ///
    /// ```
    /// use embedded_hal_mock::eh1::delay::NoopDelay;
    /// use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};
    /// use w4l_core::adc::{AdcError, Channel, Config, Mcp3202};
    /// use w4l_core::ring::{Overflow, Ring};
    ///
    /// let frame = [
    ///     T::transaction_start(),
    ///     T::transfer(vec![0x01, 0xA0, 0x00], vec![0, 0x0C, 0x00]),
    ///     T::transaction_end(),
    /// ];
    /// let expected: Vec<_> = frame.iter().cycle().take(3 * 4).cloned().collect();
    /// let config = Config::new(Channel::Single0, 8_000).unwrap();
    /// let mut adc = Mcp3202::new(Mock::new(&expected), NoopDelay::new(), config);
    ///
    /// let mut storage = [0i16; 3];
    /// let mut ring = Ring::new(&mut storage[..], Overflow::RejectNewest).unwrap();
    /// let (mut producer, mut consumer) = ring.split();
    /// assert_eq!(adc.fill_ring(&mut producer, 2), Ok(2));
    /// // Two more: one fits, the next finds the ring full.
    /// assert_eq!(adc.fill_ring(&mut producer, 2), Err(AdcError::Overrun { pushed: 1 }));
    /// let mut out = [0i16; 4];
    /// assert_eq!(consumer.pop_slice(&mut out), 3);
    /// assert_eq!(out[..3], [16384; 3]);
    /// assert_eq!(consumer.stats().dropped, 1);
    /// adc.release().0.done();
    /// ```
    pub fn fill_ring<R>(
        &mut self,
        producer: &mut Producer<R>,
        count: usize,
    ) -> Result<usize, AdcError<E>>
    where
        R: RingRef,
        <R::Storage as Storage>::Item: Sample,
    {
        for pushed in 0..count {
            let sample = self.read_sample()?;
            if producer.push(sample).is_err() {
                return Err(AdcError::Overrun { pushed });
            }
        }
        Ok(count)
    }

    /// Gives back the SPI device and the delay provider.
    pub fn release(self) -> (SPI, D) {
        (self.spi, self.delay)
    }
}
