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
///
/// ```
/// assert_eq!(w4l_core::adc::MAX_CODE, 4095);
/// ```
pub const MAX_CODE: u16 = 0x0FFF;

/// Mid-scale code: silence for a microphone biased at `VREF / 2`.
///
/// ```
/// use w4l_core::adc::{MID_CODE, code_to_sample};
/// assert_eq!(code_to_sample::<i16>(MID_CODE), 0);
/// ```
pub const MID_CODE: u16 = 0x0800;

/// Highest sample rate the MCP3202 supports (at `VDD = 5 V`), in samples per second.
///
/// ```
/// assert_eq!(w4l_core::adc::MAX_SAMPLE_RATE_HZ, 100_000);
/// ```
pub const MAX_SAMPLE_RATE_HZ: u32 = 100_000;

/// Highest SPI clock the MCP3202 supports (at `VDD = 5 V`), in hertz.
///
/// ```
/// assert_eq!(w4l_core::adc::MAX_SPI_CLOCK_HZ, 1_800_000);
/// ```
pub const MAX_SPI_CLOCK_HZ: u32 = 1_800_000;

/// SPI clock assumed by [`Config::new`], in hertz (a safe value at 2.7 V to 5.5 V).
///
/// ```
/// use w4l_core::adc::{Channel, Config, DEFAULT_SPI_CLOCK_HZ};
/// let config = Config::new(Channel::Single0, 8_000).unwrap();
/// assert_eq!(config.spi_clock_hz(), DEFAULT_SPI_CLOCK_HZ);
/// ```
pub const DEFAULT_SPI_CLOCK_HZ: u32 = 1_000_000;

/// Bits clocked per conversion: three bytes.
///
/// ```
/// assert_eq!(w4l_core::adc::FRAME_BITS, 24);
/// ```
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
///
/// ```
/// use w4l_core::adc::Channel;
/// assert_eq!(Channel::Single0.config_byte(), 0xA0);
/// assert_eq!(Channel::Single1.config_byte(), 0xE0);
/// assert_eq!(Channel::Diff01.config_byte(), 0x20);
/// assert_eq!(Channel::Diff10.config_byte(), 0x60);
/// ```
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
    ///
    /// ```
    /// use w4l_core::adc::Channel;
    /// assert_eq!(Channel::Single0.config_byte() & 0x20, 0x20); // MSB first
    /// ```
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
    ///
    /// ```
    /// use w4l_core::adc::Channel;
    /// assert_eq!(Channel::Single1.request(), [0x01, 0xE0, 0x00]);
    /// ```
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
///
/// ```
/// use w4l_core::adc::decode;
/// assert_eq!(decode([0x00, 0x08, 0x00]), Some(2048));
/// assert_eq!(decode([0xFF, 0xEF, 0xFF]), Some(4095)); // don't-care bits are ignored
/// assert_eq!(decode([0xFF, 0xFF, 0xFF]), None); // floating MISO
/// ```
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
///
/// ```
/// use w4l_core::adc::code_to_sample;
/// assert_eq!(code_to_sample::<i16>(0), i16::MIN);
/// assert_eq!(code_to_sample::<i16>(4095), 32752);
/// assert_eq!(code_to_sample::<f32>(1024), -0.5);
/// assert_eq!(code_to_sample::<i16>(0xF800), 0); // only 12 bits count
/// ```
#[must_use]
pub fn code_to_sample<S: Sample>(code: u16) -> S {
    S::from_sample((code & MAX_CODE) << 4)
}

/// Settings of one [`Mcp3202`]: the input, the sample rate and the SPI clock (the clock
/// is not set by the driver, the [`SpiDevice`] owns it; the driver needs it only to pace
/// conversions).
///
/// ```
/// use w4l_core::adc::{Channel, Config, ConfigError};
/// let config = Config::new(Channel::Single0, 16_000).unwrap();
/// assert_eq!(config.period_ns(), 62_500);
/// assert_eq!(config.gap_ns(), 38_500);
/// assert_eq!(Config::new(Channel::Single0, 0), Err(ConfigError::SampleRate));
/// ```
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
    ///
    /// ```
    /// use w4l_core::adc::{Channel, Config, ConfigError};
    /// assert!(Config::new(Channel::Single1, 32_000).is_ok());
    /// assert_eq!(Config::new(Channel::Single1, 100_001), Err(ConfigError::SampleRate));
    /// // 44.1 kHz leaves 22.7 µs per sample, 24 bits at 1 MHz take 24 µs:
    /// assert_eq!(Config::new(Channel::Single1, 44_100), Err(ConfigError::TooFast));
    /// ```
    pub fn new(channel: Channel, sample_rate_hz: u32) -> Result<Self, ConfigError> {
        Self::with_spi_clock(channel, sample_rate_hz, DEFAULT_SPI_CLOCK_HZ)
    }

    /// Settings with an explicit SPI clock.
    ///
    /// # Errors
    ///
    /// As [`Config::new`], plus [`ConfigError::SpiClock`] if the clock is 0 or above
    /// [`MAX_SPI_CLOCK_HZ`].
    ///
    /// ```
    /// use w4l_core::adc::{Channel, Config, ConfigError};
    /// let fast = Config::with_spi_clock(Channel::Single0, 48_000, 1_800_000).unwrap();
    /// assert_eq!(fast.period_ns(), 20_834); // rounded up
    /// assert_eq!(fast.gap_ns(), 20_834 - 13_334);
    /// assert_eq!(
    ///     Config::with_spi_clock(Channel::Single0, 8_000, 2_000_000),
    ///     Err(ConfigError::SpiClock)
    /// );
    /// ```
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
    ///
    /// ```
    /// use w4l_core::adc::{Channel, Config};
    /// assert_eq!(Config::new(Channel::Diff01, 8_000).unwrap().channel(), Channel::Diff01);
    /// ```
    #[must_use]
    pub const fn channel(&self) -> Channel {
        self.channel
    }

    /// The sample rate, in hertz.
    ///
    /// ```
    /// use w4l_core::adc::{Channel, Config};
    /// assert_eq!(Config::new(Channel::Single0, 8_000).unwrap().sample_rate_hz(), 8_000);
    /// ```
    #[must_use]
    pub const fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// The SPI clock the pacing assumes, in hertz.
    ///
    /// ```
    /// use w4l_core::adc::{Channel, Config};
    /// let c = Config::with_spi_clock(Channel::Single0, 8_000, 500_000).unwrap();
    /// assert_eq!(c.spi_clock_hz(), 500_000);
    /// ```
    #[must_use]
    pub const fn spi_clock_hz(&self) -> u32 {
        self.spi_clock_hz
    }

    /// The sample period, in nanoseconds (rounded up).
    ///
    /// ```
    /// use w4l_core::adc::{Channel, Config};
    /// assert_eq!(Config::new(Channel::Single0, 8_000).unwrap().period_ns(), 125_000);
    /// ```
    #[must_use]
    pub const fn period_ns(&self) -> u32 {
        self.period_ns
    }

    /// The wait between two conversions: the period less the transfer time, in
    /// nanoseconds.
    ///
    /// ```
    /// use w4l_core::adc::{Channel, Config};
    /// // 125 µs period, 24 µs on the bus at 1 MHz.
    /// assert_eq!(Config::new(Channel::Single0, 8_000).unwrap().gap_ns(), 101_000);
    /// ```
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
///
/// ```
/// use w4l_core::adc::AdcError;
/// let e: AdcError<()> = AdcError::NoDevice;
/// assert_eq!(e.to_string(), "ADC did not answer (null bit high: MISO floating?)");
/// ```
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
    /// ```
    /// use w4l_core::adc::AdcError;
    /// assert_eq!(AdcError::Spi("bus fault").to_string(), "SPI transfer failed: \"bus fault\"");
    /// assert_eq!(
    ///     AdcError::<()>::Overrun { pushed: 3 }.to_string(),
    ///     "ring full after 3 samples: sample dropped"
    /// );
    /// ```
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
///
/// ```
/// use w4l_core::adc::ConfigError;
/// assert_eq!(
///     ConfigError::TooFast.to_string(),
///     "a 24-bit transfer at this SPI clock is longer than the sample period"
/// );
/// ```
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
    /// ```
    /// use w4l_core::adc::ConfigError;
    /// assert_eq!(
    ///     ConfigError::SampleRate.to_string(),
    ///     "sample rate must be 1 to 100000 Hz for the MCP3202"
    /// );
    /// ```
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
    ///
    /// ```
    /// use embedded_hal_mock::eh1::{delay::NoopDelay, spi::Mock};
    /// use w4l_core::adc::{Channel, Config, Mcp3202};
    /// let config = Config::new(Channel::Single0, 16_000).unwrap();
    /// let adc = Mcp3202::new(Mock::new(&[]), NoopDelay::new(), config);
    /// assert_eq!(adc.config().sample_rate_hz(), 16_000);
    /// adc.release().0.done();
    /// ```
    pub const fn new(spi: SPI, delay: D, config: Config) -> Self {
        Mcp3202 {
            spi,
            delay,
            config,
            primed: false,
        }
    }

    /// The settings in use.
    ///
    /// ```
    /// use embedded_hal_mock::eh1::{delay::NoopDelay, spi::Mock};
    /// use w4l_core::adc::{Channel, Config, Mcp3202};
    /// let config = Config::new(Channel::Single1, 8_000).unwrap();
    /// let adc = Mcp3202::new(Mock::new(&[]), NoopDelay::new(), config);
    /// assert_eq!(adc.config().channel(), Channel::Single1);
    /// adc.release().0.done();
    /// ```
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Forgets the time of the last conversion: the next one starts without waiting
    /// (after the stream was paused, say).
    ///
    /// ```
    /// use embedded_hal_mock::eh1::delay::CheckedDelay;
    /// use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};
    /// use w4l_core::adc::{Channel, Config, Mcp3202};
    /// let one = [
    ///     T::transaction_start(),
    ///     T::transfer(vec![0x01, 0xA0, 0x00], vec![0, 0x08, 0x00]),
    ///     T::transaction_end(),
    /// ];
    /// let spi = Mock::new(one.iter().chain(&one));
    /// let config = Config::new(Channel::Single0, 8_000).unwrap();
    /// let mut adc = Mcp3202::new(spi, CheckedDelay::new(&[]), config);
    /// adc.read_code().unwrap();
    /// adc.restart();
    /// adc.read_code().unwrap(); // no delay expected
    /// let (mut spi, mut delay) = adc.release();
    /// spi.done();
    /// delay.done();
    /// ```
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
    ///
    /// ```
    /// use embedded_hal_mock::eh1::delay::NoopDelay;
    /// use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};
    /// use w4l_core::adc::{AdcError, Channel, Config, Mcp3202};
    /// let spi = Mock::new(&[
    ///     T::transaction_start(),
    ///     T::transfer(vec![0x01, 0xE0, 0x00], vec![0xFF, 0xE5, 0x5A]),
    ///     T::transaction_end(),
    ///     T::transaction_start(),
    ///     T::transfer(vec![0x01, 0xE0, 0x00], vec![0xFF, 0xFF, 0xFF]),
    ///     T::transaction_end(),
    /// ]);
    /// let config = Config::new(Channel::Single1, 8_000).unwrap();
    /// let mut adc = Mcp3202::new(spi, NoopDelay::new(), config);
    /// assert_eq!(adc.read_code(), Ok(0x55A));
    /// assert_eq!(adc.read_code(), Err(AdcError::NoDevice));
    /// adc.release().0.done();
    /// ```
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
    ///
    /// ```
    /// use embedded_hal_mock::eh1::delay::NoopDelay;
    /// use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};
    /// use w4l_core::adc::{Channel, Config, Mcp3202};
    /// let spi = Mock::new(&[
    ///     T::transaction_start(),
    ///     T::transfer(vec![0x01, 0xA0, 0x00], vec![0, 0x0C, 0x00]),
    ///     T::transaction_end(),
    /// ]);
    /// let config = Config::new(Channel::Single0, 8_000).unwrap();
    /// let mut adc = Mcp3202::new(spi, NoopDelay::new(), config);
    /// assert_eq!(adc.read_sample::<f32>(), Ok(0.5));
    /// adc.release().0.done();
    /// ```
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
    ///
    /// ```
    /// use embedded_hal_mock::eh1::delay::NoopDelay;
    /// use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};
    /// use w4l_core::adc::{Channel, Config, Mcp3202};
    /// let frame = |lo: u8| {
    ///     [
    ///         T::transaction_start(),
    ///         T::transfer(vec![0x01, 0x20, 0x00], vec![0, 0x00, lo]),
    ///         T::transaction_end(),
    ///     ]
    /// };
    /// let expected: Vec<_> = frame(0).into_iter().chain(frame(1)).collect();
    /// let config = Config::new(Channel::Diff01, 8_000).unwrap();
    /// let mut adc = Mcp3202::new(Mock::new(&expected), NoopDelay::new(), config);
    /// let mut buf = [0.0f32; 2];
    /// adc.read(&mut buf).unwrap();
    /// assert_eq!(buf, [-1.0, -1.0 + 16.0 / 32768.0]);
    /// adc.release().0.done();
    /// ```
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
    /// let ring = Ring::new(&mut storage[..], Overflow::RejectNewest).unwrap();
    /// let (mut producer, mut consumer) = ring.split().unwrap();
    /// assert_eq!(adc.fill_ring(&mut producer, 2), Ok(2));
    /// // Two more: one fits, the next finds the ring full.
    /// assert_eq!(adc.fill_ring(&mut producer, 2), Err(AdcError::Overrun { pushed: 1 }));
    /// let mut out = [0i16; 4];
    /// assert_eq!(consumer.pop_slice(&mut out), 3);
    /// assert_eq!(out[..3], [16384; 3]);
    /// assert_eq!(ring.stats().dropped, 1);
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
    ///
    /// ```
    /// use embedded_hal_mock::eh1::{delay::NoopDelay, spi::Mock};
    /// use w4l_core::adc::{Channel, Config, Mcp3202};
    /// let config = Config::new(Channel::Single0, 8_000).unwrap();
    /// let adc = Mcp3202::new(Mock::new(&[]), NoopDelay::new(), config);
    /// let (mut spi, _delay) = adc.release();
    /// spi.done();
    /// ```
    pub fn release(self) -> (SPI, D) {
        (self.spi, self.delay)
    }
}
