//! Properties of `w4l_core::level::LevelMeter`.

use proptest::prelude::*;
use w4l_core::level::{DBFS_FLOOR, Level, LevelMeter, to_dbfs};

#[test]
fn full_scale_sine_reads_0_and_minus_3_dbfs() {
    let sine: Vec<f32> = (0..48_000)
        .map(|i| (i as f32 * 2.0 * core::f32::consts::PI * 1000.0 / 48_000.0).sin())
        .collect();
    let mut m = LevelMeter::new();
    for block in sine.chunks(480) {
        m.feed(block);
    }
    assert!(m.peak_dbfs() > -0.01 && m.peak_dbfs() <= 0.0);
    assert!((m.rms_dbfs() - -3.0103).abs() < 0.01, "{}", m.rms_dbfs());
}

#[test]
fn silence_and_empty_read_the_floor() {
    let mut m = LevelMeter::new();
    assert_eq!(m.take(), Level::default());
    m.feed::<f32>(&[]);
    assert_eq!(m.rms_dbfs(), DBFS_FLOOR);
    m.feed(&[0.0f32; 64]);
    assert_eq!(m.peak_dbfs(), DBFS_FLOOR);
    assert_eq!(m.rms_dbfs(), DBFS_FLOOR);
    assert_eq!(m.level().samples, 64);
    assert_eq!(to_dbfs(-1.0), DBFS_FLOOR);
    assert_eq!(to_dbfs(f32::INFINITY), f32::INFINITY);
    assert!((to_dbfs(2.0) - 6.0206).abs() < 1e-3, "no upper clamp");
}

#[test]
fn non_finite_samples_are_ignored() {
    let mut m = LevelMeter::new();
    m.feed(&[0.5f32, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.5]);
    let l = m.take();
    assert_eq!(
        l,
        Level {
            peak: 0.5,
            rms: 0.5,
            samples: 2,
            ignored: 3
        }
    );
    m.feed(&[f32::NAN]);
    assert_eq!(
        m.take(),
        Level {
            peak: 0.0,
            rms: 0.0,
            samples: 0,
            ignored: 1
        }
    );
}

#[test]
fn integer_formats_are_metered_on_the_float_scale() {
    let mut m = LevelMeter::new();
    m.feed(&[i16::MIN, 0, 0, 0]);
    assert_eq!(m.peak(), 1.0);
    assert_eq!(m.rms(), 0.5);
    m.reset();
    m.feed(&[32768u16; 10]);
    assert_eq!(m.peak(), 0.0);
    m.feed(&[i32::MIN]);
    assert_eq!(m.peak(), 1.0);
}

proptest! {
    #[test]
    fn matches_naive_computation(
        blocks in prop::collection::vec(
            prop::collection::vec(prop_oneof![9 => -2.0f32..2.0, 1 => Just(f32::NAN)], 0..200),
            0..10,
        )
    ) {
        let mut m = LevelMeter::new();
        for b in &blocks {
            m.feed(b);
        }
        let finite: Vec<f64> = blocks.iter().flatten().filter(|x| x.is_finite()).map(|&x| f64::from(x)).collect();
        let total: usize = blocks.iter().map(Vec::len).sum();
        let peak = finite.iter().fold(0.0f64, |p, x| p.max(x.abs()));
        let rms = if finite.is_empty() { 0.0 } else {
            (finite.iter().map(|x| x * x).sum::<f64>() / finite.len() as f64).sqrt()
        };
        let l = m.take();
        prop_assert_eq!(f64::from(l.peak), peak);
        prop_assert!((f64::from(l.rms) - rms).abs() <= 1e-5 * (1.0 + rms));
        prop_assert_eq!(l.samples, finite.len() as u64);
        prop_assert_eq!(l.ignored, (total - finite.len()) as u64);
        prop_assert!(l.peak_dbfs() >= DBFS_FLOOR && l.rms_dbfs() >= DBFS_FLOOR);
        prop_assert!(l.rms <= l.peak * (1.0 + 1e-6));
        prop_assert_eq!(m.take(), Level::default());
    }
}

/// dBFS: 20·log10, floored at DBFS_FLOOR (silence, NaN), for levels and meters alike.
#[test]
fn dbfs_conversion_and_floor() {
    assert_eq!(to_dbfs(0.0), DBFS_FLOOR);
    assert_eq!(to_dbfs(1.0), 0.0);
    assert!((to_dbfs(0.1) - -20.0).abs() < 1e-4);
    assert_eq!(to_dbfs(1e-9), -120.0);
    assert_eq!(to_dbfs(f32::NAN), -120.0);
    {
        let l = Level {
            peak: 1.0,
            rms: 0.5,
            samples: 4,
            ignored: 0,
        };
        assert_eq!(l.peak_dbfs(), 0.0);
    }
    {
        let l = Level {
            peak: 1.0,
            rms: 0.1,
            samples: 4,
            ignored: 0,
        };
        assert!((l.rms_dbfs() - -20.0).abs() < 1e-4);
    }
    {
        let mut meter = LevelMeter::new();
        assert_eq!(meter.peak_dbfs(), -120.0);
        meter.feed(&[1.0f32]);
        assert_eq!(meter.peak_dbfs(), 0.0);
    }
    {
        let mut meter = LevelMeter::new();
        meter.feed(&[0.1f32, -0.1]);
        assert!((meter.rms_dbfs() - -20.0).abs() < 1e-3);
    }
}

/// What a meter reports between resets, for any sample format.
#[test]
fn meter_accessors_reset_and_take() {
    {
        let mut meter = LevelMeter::new();
        meter.feed(&[16384i16, -16384]);
        let level: Level = meter.take();
        assert_eq!(
            level,
            Level {
                peak: 0.5,
                rms: 0.5,
                samples: 2,
                ignored: 0
            }
        );
        assert_eq!(Level::default().rms_dbfs(), -120.0);
    }
    {
        const METER: LevelMeter = LevelMeter::new();
        assert_eq!(METER.peak(), 0.0);
    }
    {
        let mut meter = LevelMeter::new();
        meter.feed(&[0u8, 128, 128, 128]); // u8: 0 is full-scale negative
        assert_eq!(meter.peak(), 1.0);
        assert_eq!(meter.rms(), 0.5);
    }
    {
        let mut meter = LevelMeter::new();
        meter.feed(&[-0.75f32, 0.5]);
        assert_eq!(meter.peak(), 0.75);
    }
    {
        let mut meter = LevelMeter::new();
        meter.feed(&[0.6f32, -0.8]);
        assert!((meter.rms() - 0.5f32.sqrt()).abs() < 1e-6);
    }
    {
        let mut meter = LevelMeter::new();
        meter.feed(&[0.5f32]);
        assert_eq!(meter.level().samples, 1);
        assert_eq!(meter.level(), meter.level());
    }
    {
        let mut meter = LevelMeter::new();
        meter.feed(&[0.5f32]);
        meter.reset();
        assert_eq!(meter, LevelMeter::new());
    }
    {
        let mut meter = LevelMeter::new();
        meter.feed(&[0.5f32]);
        assert_eq!(meter.take().peak, 0.5);
        assert_eq!(meter.take().peak, 0.0);
    }
}
