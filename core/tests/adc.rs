//! The MCP3202 driver against `embedded-hal-mock` (eh1): every SPI transaction, byte and
//! delay is asserted exactly.
#![cfg(feature = "embedded-hal")]

use embedded_hal::spi::{ErrorKind, ErrorType, Operation, SpiDevice};
use embedded_hal_mock::eh1::delay::{CheckedDelay, NoopDelay, Transaction as Delay};
use embedded_hal_mock::eh1::spi::{Mock, Transaction as Spi};
use proptest::prelude::*;
use w4l_core::adc::{
    AdcError, Channel, Config, ConfigError, DEFAULT_SPI_CLOCK_HZ, MAX_CODE, MAX_SAMPLE_RATE_HZ,
    MAX_SPI_CLOCK_HZ, MID_CODE, Mcp3202, code_to_sample, decode,
};
use w4l_core::ring::{Overflow, Ring};
use w4l_core::sample::Sample;

/// The expected transaction of one conversion of `channel` answering `code`.
fn conversion(channel: Channel, code: u16) -> [Spi<u8>; 3] {
    let write = vec![0x01, channel.config_byte(), 0x00];
    let read = vec![0x00, (code >> 8) as u8 & 0x0F, code as u8];
    [
        Spi::transaction_start(),
        Spi::transfer(write, read),
        Spi::transaction_end(),
    ]
}

fn conversions(channel: Channel, codes: &[u16]) -> Vec<Spi<u8>> {
    codes.iter().flat_map(|&c| conversion(channel, c)).collect()
}

#[test]
fn request_bytes_per_channel() {
    // Datasheet DS21034 table 5-1 with MSBF = 1.
    for (channel, byte) in [
        (Channel::Single0, 0b1010_0000),
        (Channel::Single1, 0b1110_0000),
        (Channel::Diff01, 0b0010_0000),
        (Channel::Diff10, 0b0110_0000),
    ] {
        let config = Config::new(channel, 8_000).unwrap();
        let spi = Mock::new(&conversion(channel, 0x123));
        let mut adc = Mcp3202::new(spi, NoopDelay::new(), config);
        assert_eq!(adc.read_code(), Ok(0x123), "{channel:?}");
        assert_eq!(channel.request(), [0x01, byte, 0x00]);
        adc.release().0.done();
    }
}

#[test]
fn paced_read_into_i16_buffer() {
    let codes = [0, 1, 2047, 2048, 2049, 4095];
    let spi = Mock::new(&conversions(Channel::Single0, &codes));
    // 16 kHz, 1 MHz SPI clock: 62.5 µs period - 24 µs transfer = 38.5 µs between
    // conversions, none before the first.
    let delay = CheckedDelay::new(&vec![Delay::delay_ns(38_500); 5]);
    let config = Config::new(Channel::Single0, 16_000).unwrap();
    let mut adc = Mcp3202::new(spi, delay, config);
    let mut buf = [0x5555i16; 6];
    adc.read(&mut buf).unwrap();
    assert_eq!(buf, [-32768, -32752, -16, 0, 16, 32752]);
    let (mut spi, mut delay) = adc.release();
    spi.done();
    delay.done();
}

#[test]
fn pacing_continues_across_calls_and_restart_resets_it() {
    let spi = Mock::new(&conversions(Channel::Single1, &[10, 20, 30, 40]));
    let gap = Config::with_spi_clock(Channel::Single1, 8_000, 1_800_000)
        .unwrap()
        .gap_ns();
    // 125 000 ns period, ceil(24 / 1.8 MHz) = 13 334 ns transfer.
    assert_eq!(gap, 111_666);
    let delay = CheckedDelay::new(&[Delay::delay_ns(gap), Delay::delay_ns(gap)]);
    let config = Config::with_spi_clock(Channel::Single1, 8_000, 1_800_000).unwrap();
    let mut adc = Mcp3202::new(spi, delay, config);
    let mut one = [0i16; 1];
    adc.read(&mut one).unwrap(); // first: no wait
    adc.read(&mut one).unwrap(); // waits
    adc.read_code().unwrap(); // waits
    adc.restart();
    adc.read_code().unwrap(); // first again: no wait
    let (mut spi, mut delay) = adc.release();
    spi.done();
    delay.done();
}

#[test]
fn read_into_f32_buffer_uses_core_conversion() {
    let codes = [0, 1024, 2048, 3072, 4095];
    let spi = Mock::new(&conversions(Channel::Diff10, &codes));
    let config = Config::new(Channel::Diff10, 8_000).unwrap();
    let mut adc = Mcp3202::new(spi, NoopDelay::new(), config);
    let mut buf = [f32::NAN; 5];
    adc.read(&mut buf).unwrap();
    assert_eq!(buf, [-1.0, -0.5, 0.0, 0.5, 2047.0 / 2048.0]);
    for (&code, &got) in codes.iter().zip(&buf) {
        assert_eq!(got, code_to_sample::<i16>(code).to_f32());
    }
    adc.release().0.done();
}

#[test]
fn empty_buffer_touches_nothing() {
    let config = Config::new(Channel::Single0, 8_000).unwrap();
    let mut adc = Mcp3202::new(Mock::new(&[]), CheckedDelay::new(&[]), config);
    adc.read::<i16>(&mut []).unwrap();
    let (mut spi, mut delay) = adc.release();
    spi.done();
    delay.done();
}

#[test]
fn floating_miso_is_no_device_and_stops_the_read() {
    let mut expected = conversions(Channel::Single0, &[2048]);
    expected.extend([
        Spi::transaction_start(),
        Spi::transfer(vec![0x01, 0xA0, 0x00], vec![0xFF, 0xFF, 0xFF]),
        Spi::transaction_end(),
    ]);
    let config = Config::new(Channel::Single0, 8_000).unwrap();
    let mut adc = Mcp3202::new(Mock::new(&expected), NoopDelay::new(), config);
    let mut buf = [7i16; 4];
    assert_eq!(adc.read(&mut buf), Err(AdcError::NoDevice));
    // The sample before the error is kept, the rest is untouched.
    assert_eq!(buf, [0, 7, 7, 7]);
    adc.release().0.done();
}

/// An SPI device whose bus fails on the `n`-th transaction.
struct FailingSpi {
    left: usize,
}

impl ErrorType for FailingSpi {
    type Error = ErrorKind;
}

impl SpiDevice<u8> for FailingSpi {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), ErrorKind> {
        if self.left == 0 {
            return Err(ErrorKind::ModeFault);
        }
        self.left -= 1;
        for op in operations {
            if let Operation::Transfer(read, _) = op {
                read.copy_from_slice(&[0, 0x08, 0x00]);
            }
        }
        Ok(())
    }
}

#[test]
fn spi_error_is_wrapped() {
    let config = Config::new(Channel::Single0, 8_000).unwrap();
    let mut adc = Mcp3202::new(FailingSpi { left: 2 }, NoopDelay::new(), config);
    let mut buf = [1i16; 3];
    let err = adc.read(&mut buf).unwrap_err();
    assert_eq!(err, AdcError::Spi(ErrorKind::ModeFault));
    assert_eq!(buf, [0, 0, 1]);
    assert!(
        err.to_string()
            .starts_with("SPI transfer failed: ModeFault")
    );
    let dyn_err: &dyn core::error::Error = &err;
    assert!(!dyn_err.to_string().is_empty());
}

#[test]
fn config_limits() {
    assert_eq!(
        Config::new(Channel::Single0, 0),
        Err(ConfigError::SampleRate)
    );
    assert_eq!(
        Config::new(Channel::Single0, MAX_SAMPLE_RATE_HZ + 1),
        Err(ConfigError::SampleRate)
    );
    assert_eq!(
        Config::with_spi_clock(Channel::Single0, 8_000, 0),
        Err(ConfigError::SpiClock)
    );
    assert_eq!(
        Config::with_spi_clock(Channel::Single0, 8_000, MAX_SPI_CLOCK_HZ + 1),
        Err(ConfigError::SpiClock)
    );
    // The fastest rate the chip allows, at the fastest clock: 10 µs period, 13.3 µs
    // transfer.
    assert_eq!(
        Config::with_spi_clock(Channel::Single0, MAX_SAMPLE_RATE_HZ, MAX_SPI_CLOCK_HZ),
        Err(ConfigError::TooFast)
    );
    // 1 Hz at 1 Hz clock: 1 s period, 24 s transfer.
    assert_eq!(
        Config::with_spi_clock(Channel::Single0, 1, 1),
        Err(ConfigError::TooFast)
    );
    let slow = Config::with_spi_clock(Channel::Single0, 1, 24).unwrap();
    assert_eq!((slow.period_ns(), slow.gap_ns()), (1_000_000_000, 0));
    let fastest = Config::with_spi_clock(Channel::Single0, 75_000, MAX_SPI_CLOCK_HZ).unwrap();
    assert_eq!((fastest.period_ns(), fastest.gap_ns()), (13_334, 0));
}

#[test]
fn fill_ring_pushes_each_conversion() {
    let codes: Vec<u16> = (0..6).map(|i| 2048 + 100 * i).collect();
    let spi = Mock::new(&conversions(Channel::Single0, &codes));
    let delay = CheckedDelay::new(&vec![Delay::delay_ns(101_000); 5]);
    let config = Config::new(Channel::Single0, 8_000).unwrap();
    let mut adc = Mcp3202::new(spi, delay, config);

    let mut storage = [0f32; 8];
    let mut ring = Ring::new(&mut storage[..], Overflow::RejectNewest).unwrap();
    let (mut producer, mut consumer) = ring.split();
    assert_eq!(adc.fill_ring(&mut producer, 4), Ok(4));
    let mut out = [0f32; 8];
    assert_eq!(consumer.pop_slice(&mut out), 4);
    assert_eq!(adc.fill_ring(&mut producer, 2), Ok(2));
    assert_eq!(consumer.pop_slice(&mut out[4..]), 2);
    let expected: Vec<f32> = codes.iter().map(|&c| code_to_sample(c)).collect();
    assert_eq!(out[..6], expected[..]);
    assert_eq!(consumer.stats().pushed, 6);
    let (mut spi, mut delay) = adc.release();
    spi.done();
    delay.done();
}

#[test]
fn fill_ring_reports_overrun_when_full() {
    let spi = Mock::new(&conversions(Channel::Single1, &[1, 2, 3, 4]));
    let config = Config::new(Channel::Single1, 8_000).unwrap();
    let mut adc = Mcp3202::new(spi, NoopDelay::new(), config);
    let mut storage = [0i16; 3];
    let mut ring = Ring::new(&mut storage[..], Overflow::RejectNewest).unwrap();
    let (mut producer, mut consumer) = ring.split();
    // The fourth conversion is read from the bus, then refused by the full ring.
    assert_eq!(
        adc.fill_ring(&mut producer, 10),
        Err(AdcError::Overrun { pushed: 3 })
    );
    assert_eq!(consumer.stats().dropped, 1);
    let mut out = [0i16; 4];
    assert_eq!(consumer.pop_slice(&mut out), 3);
    assert_eq!(out[..3], [-32752, -32736, -32720]);
    adc.release().0.done();
}

#[test]
fn fill_ring_overwrite_oldest_never_overruns() {
    let codes = [10, 20, 30, 40, 50];
    let spi = Mock::new(&conversions(Channel::Single0, &codes));
    let config = Config::new(Channel::Single0, 8_000).unwrap();
    let mut adc = Mcp3202::new(spi, NoopDelay::new(), config);
    let mut storage = [0i16; 2];
    let mut ring = Ring::new(&mut storage[..], Overflow::OverwriteOldest).unwrap();
    let (mut producer, mut consumer) = ring.split();
    assert_eq!(adc.fill_ring(&mut producer, 5), Ok(5));
    let mut out = [0i16; 2];
    assert_eq!(consumer.pop_slice(&mut out), 2);
    assert_eq!(out, [code_to_sample(40), code_to_sample(50)]);
    assert_eq!(consumer.take_missed(), 3);
    adc.release().0.done();
}

proptest! {
    /// Any three answer bytes decode without panicking, to a 12-bit code or `NoDevice`
    /// exactly when the null bit is high; the driver returns the same.
    #[test]
    fn any_answer_decodes(frame in any::<[u8; 3]>()) {
        let decoded = decode(frame);
        prop_assert_eq!(decoded.is_none(), frame[1] & 0x10 != 0);
        if let Some(code) = decoded {
            prop_assert!(code <= MAX_CODE);
            prop_assert_eq!(code, u16::from(frame[1] & 0x0F) << 8 | u16::from(frame[2]));
        }
        let spi = Mock::new(&[
            Spi::transaction_start(),
            Spi::transfer(vec![0x01, 0xA0, 0x00], frame.to_vec()),
            Spi::transaction_end(),
        ]);
        let config = Config::new(Channel::Single0, 8_000).unwrap();
        let mut adc = Mcp3202::new(spi, NoopDelay::new(), config);
        prop_assert_eq!(adc.read_code(), decoded.ok_or(AdcError::NoDevice));
        adc.release().0.done();
    }

    /// Every code maps monotonically onto i16 and f32, mid-scale to silence.
    #[test]
    fn conversion_is_monotonic(code in 0u16..MAX_CODE) {
        let (a, b) = (code_to_sample::<i16>(code), code_to_sample::<i16>(code + 1));
        prop_assert_eq!(i32::from(b) - i32::from(a), 16);
        prop_assert!(code_to_sample::<f32>(code) < code_to_sample::<f32>(code + 1));
        prop_assert_eq!(code_to_sample::<i16>(code) == 0, code == 2048);
    }

    /// Any sample rate and clock give a config or an error, never a panic, and a config
    /// always has a transfer that fits in the period.
    #[test]
    fn any_config_is_checked(rate in any::<u32>(), clock in any::<u32>()) {
        if let Ok(c) = Config::with_spi_clock(Channel::Single0, rate, clock) {
            prop_assert!(c.gap_ns() <= c.period_ns());
            prop_assert!((1..=MAX_SAMPLE_RATE_HZ).contains(&rate));
            prop_assert!((1..=MAX_SPI_CLOCK_HZ).contains(&clock));
        }
    }
}

/// The chip's limits, its channel bytes and frame decoding, from the datasheet.
#[test]
fn constants_channels_and_frames() {
    assert_eq!(w4l_core::adc::MAX_CODE, 4095);
    assert_eq!(code_to_sample::<i16>(MID_CODE), 0);
    assert_eq!(w4l_core::adc::MAX_SAMPLE_RATE_HZ, 100_000);
    assert_eq!(w4l_core::adc::MAX_SPI_CLOCK_HZ, 1_800_000);
    {
        let config = Config::new(Channel::Single0, 8_000).unwrap();
        assert_eq!(config.spi_clock_hz(), DEFAULT_SPI_CLOCK_HZ);
    }
    assert_eq!(w4l_core::adc::FRAME_BITS, 24);
    assert_eq!(Channel::Single0.config_byte(), 0xA0);
    assert_eq!(Channel::Single1.config_byte(), 0xE0);
    assert_eq!(Channel::Diff01.config_byte(), 0x20);
    assert_eq!(Channel::Diff10.config_byte(), 0x60);
    assert_eq!(Channel::Single0.config_byte() & 0x20, 0x20); // MSB first
    assert_eq!(Channel::Single1.request(), [0x01, 0xE0, 0x00]);
    assert_eq!(decode([0x00, 0x08, 0x00]), Some(2048));
    assert_eq!(decode([0xFF, 0xEF, 0xFF]), Some(4095)); // don't-care bits are ignored
    assert_eq!(decode([0xFF, 0xFF, 0xFF]), None); // floating MISO
    assert_eq!(code_to_sample::<i16>(0), i16::MIN);
    assert_eq!(code_to_sample::<i16>(4095), 32752);
    assert_eq!(code_to_sample::<f32>(1024), -0.5);
    assert_eq!(code_to_sample::<i16>(0xF800), 0); // only 12 bits count
}

/// Settings, their derived timing and why they are refused.
#[test]
fn configs_and_their_timing() {
    {
        let config = Config::new(Channel::Single0, 16_000).unwrap();
        assert_eq!(config.period_ns(), 62_500);
        assert_eq!(config.gap_ns(), 38_500);
        assert_eq!(
            Config::new(Channel::Single0, 0),
            Err(ConfigError::SampleRate)
        );
    }
    assert!(Config::new(Channel::Single1, 32_000).is_ok());
    assert_eq!(
        Config::new(Channel::Single1, 100_001),
        Err(ConfigError::SampleRate)
    );
    // 44.1 kHz leaves 22.7 µs per sample, 24 bits at 1 MHz take 24 µs:
    assert_eq!(
        Config::new(Channel::Single1, 44_100),
        Err(ConfigError::TooFast)
    );
    {
        let fast = Config::with_spi_clock(Channel::Single0, 48_000, 1_800_000).unwrap();
        assert_eq!(fast.period_ns(), 20_834); // rounded up
        assert_eq!(fast.gap_ns(), 20_834 - 13_334);
        assert_eq!(
            Config::with_spi_clock(Channel::Single0, 8_000, 2_000_000),
            Err(ConfigError::SpiClock)
        );
    }
    assert_eq!(
        Config::new(Channel::Diff01, 8_000).unwrap().channel(),
        Channel::Diff01
    );
    assert_eq!(
        Config::new(Channel::Single0, 8_000)
            .unwrap()
            .sample_rate_hz(),
        8_000
    );
    {
        let c = Config::with_spi_clock(Channel::Single0, 8_000, 500_000).unwrap();
        assert_eq!(c.spi_clock_hz(), 500_000);
    }
    assert_eq!(
        Config::new(Channel::Single0, 8_000).unwrap().period_ns(),
        125_000
    );
    // 125 µs period, 24 µs on the bus at 1 MHz.
    assert_eq!(
        Config::new(Channel::Single0, 8_000).unwrap().gap_ns(),
        101_000
    );
    assert_eq!(
        ConfigError::TooFast.to_string(),
        "a 24-bit transfer at this SPI clock is longer than the sample period"
    );
    assert_eq!(
        AdcError::Spi("bus fault").to_string(),
        "SPI transfer failed: \"bus fault\""
    );
    assert_eq!(
        AdcError::<()>::Overrun { pushed: 3 }.to_string(),
        "ring full after 3 samples: sample dropped"
    );
}

/// The driver, one conversion at a time, with its errors.
#[test]
fn driver_reads_restarts_and_releases() {
    {
        let e: AdcError<()> = AdcError::NoDevice;
        assert_eq!(
            e.to_string(),
            "ADC did not answer (null bit high: MISO floating?)"
        );
    }
    assert_eq!(
        ConfigError::SampleRate.to_string(),
        "sample rate must be 1 to 100000 Hz for the MCP3202"
    );
    {
        use embedded_hal_mock::eh1::{delay::NoopDelay, spi::Mock};
        let config = Config::new(Channel::Single0, 16_000).unwrap();
        let adc = Mcp3202::new(Mock::new(&[]), NoopDelay::new(), config);
        assert_eq!(adc.config().sample_rate_hz(), 16_000);
        adc.release().0.done();
    }
    {
        use embedded_hal_mock::eh1::{delay::NoopDelay, spi::Mock};
        let config = Config::new(Channel::Single1, 8_000).unwrap();
        let adc = Mcp3202::new(Mock::new(&[]), NoopDelay::new(), config);
        assert_eq!(adc.config().channel(), Channel::Single1);
        adc.release().0.done();
    }
    {
        use embedded_hal_mock::eh1::delay::CheckedDelay;
        use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};
        let one = [
            T::transaction_start(),
            T::transfer(vec![0x01, 0xA0, 0x00], vec![0, 0x08, 0x00]),
            T::transaction_end(),
        ];
        let spi = Mock::new(one.iter().chain(&one));
        let config = Config::new(Channel::Single0, 8_000).unwrap();
        let mut adc = Mcp3202::new(spi, CheckedDelay::new(&[]), config);
        adc.read_code().unwrap();
        adc.restart();
        adc.read_code().unwrap(); // no delay expected
        let (mut spi, mut delay) = adc.release();
        spi.done();
        delay.done();
    }
    {
        use embedded_hal_mock::eh1::delay::NoopDelay;
        use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};
        let spi = Mock::new(&[
            T::transaction_start(),
            T::transfer(vec![0x01, 0xE0, 0x00], vec![0xFF, 0xE5, 0x5A]),
            T::transaction_end(),
            T::transaction_start(),
            T::transfer(vec![0x01, 0xE0, 0x00], vec![0xFF, 0xFF, 0xFF]),
            T::transaction_end(),
        ]);
        let config = Config::new(Channel::Single1, 8_000).unwrap();
        let mut adc = Mcp3202::new(spi, NoopDelay::new(), config);
        assert_eq!(adc.read_code(), Ok(0x55A));
        assert_eq!(adc.read_code(), Err(AdcError::NoDevice));
        adc.release().0.done();
    }
    {
        use embedded_hal_mock::eh1::delay::NoopDelay;
        use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};
        let spi = Mock::new(&[
            T::transaction_start(),
            T::transfer(vec![0x01, 0xA0, 0x00], vec![0, 0x0C, 0x00]),
            T::transaction_end(),
        ]);
        let config = Config::new(Channel::Single0, 8_000).unwrap();
        let mut adc = Mcp3202::new(spi, NoopDelay::new(), config);
        assert_eq!(adc.read_sample::<f32>(), Ok(0.5));
        adc.release().0.done();
    }
    {
        use embedded_hal_mock::eh1::delay::NoopDelay;
        use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};
        let frame = |lo: u8| {
            [
                T::transaction_start(),
                T::transfer(vec![0x01, 0x20, 0x00], vec![0, 0x00, lo]),
                T::transaction_end(),
            ]
        };
        let expected: Vec<_> = frame(0).into_iter().chain(frame(1)).collect();
        let config = Config::new(Channel::Diff01, 8_000).unwrap();
        let mut adc = Mcp3202::new(Mock::new(&expected), NoopDelay::new(), config);
        let mut buf = [0.0f32; 2];
        adc.read(&mut buf).unwrap();
        assert_eq!(buf, [-1.0, -1.0 + 16.0 / 32768.0]);
        adc.release().0.done();
    }
    {
        use embedded_hal_mock::eh1::{delay::NoopDelay, spi::Mock};
        let config = Config::new(Channel::Single0, 8_000).unwrap();
        let adc = Mcp3202::new(Mock::new(&[]), NoopDelay::new(), config);
        let (mut spi, _delay) = adc.release();
        spi.done();
    }
}
