//! Saturation, rounding and round-trip properties of `w4l_core::sample`.

use proptest::prelude::*;
use w4l_core::sample::{Sample, convert};

// ---- The exact values the earlier (wrapping) design got wrong ----

#[test]
fn f32_to_i16_saturates_instead_of_wrapping() {
    assert_eq!(i16::from_f32(1.2), 32767);
    assert_eq!(i16::from_f32(-1.2), -32768);
    assert_eq!(i16::from_f32(f32::NAN), 0);
    assert_eq!(i16::from_f32(-f32::NAN), 0);
    assert_eq!(i16::from_f32(1.0), 32767);
    // Just below full scale but above 32767.5 / 32768: saturates too (a proptest case once).
    assert_eq!(i16::from_f32(0.999_989_8), 32767);
    assert_eq!(i16::from_f32(32_767.5 / 32_768.0), 32767);
    assert_eq!(i16::from_f32(-1.0), -32768);
    assert_eq!(i16::from_f32(f32::INFINITY), 32767);
    assert_eq!(i16::from_f32(f32::NEG_INFINITY), -32768);
    assert_eq!(i16::from_f32(f32::MAX), 32767);
    assert_eq!(i16::from_f32(f32::MIN), -32768);
    assert_eq!(i16::from_f32(0.0), 0);
    assert_eq!(i16::from_f32(-0.0), 0);
    assert_eq!(1.2f32.to_i16(), 32767);
    assert_eq!((-1.2f32).to_i16(), -32768);
    assert_eq!(f32::NAN.to_i16(), 0);

    let src = [1.2f32, -1.2, f32::NAN];
    let mut dst = [1i16; 3];
    assert_eq!(convert(&src, &mut dst), 3);
    assert_eq!(dst, [32767, -32768, 0]);
}

#[test]
fn saturation_and_nan_for_every_integer_format() {
    for v in [1.2f32, 1.0, f32::INFINITY, 1e30] {
        assert_eq!(i8::from_f32(v), i8::MAX);
        assert_eq!(u8::from_f32(v), u8::MAX);
        assert_eq!(u16::from_f32(v), u16::MAX);
        assert_eq!(i32::from_f32(v), i32::MAX);
        assert_eq!(i8::from_f32(-v), i8::MIN);
        assert_eq!(u8::from_f32(-v), u8::MIN);
        assert_eq!(u16::from_f32(-v), u16::MIN);
        assert_eq!(i32::from_f32(-v), i32::MIN);
    }
    assert_eq!(i8::from_f32(f32::NAN), 0);
    assert_eq!(u8::from_f32(f32::NAN), 128);
    assert_eq!(u16::from_f32(f32::NAN), 32768);
    assert_eq!(i32::from_f32(f32::NAN), 0);
    assert!(
        f32::from_f32(f32::NAN).is_nan(),
        "f32 -> f32 is the identity"
    );
    assert_eq!(f32::from_f32(1.2), 1.2);
}

#[test]
fn equilibrium_is_silence() {
    assert_eq!(f32::EQUILIBRIUM.to_f32(), 0.0);
    assert_eq!(i16::EQUILIBRIUM.to_f32(), 0.0);
    assert_eq!(u16::EQUILIBRIUM.to_f32(), 0.0);
    assert_eq!(i32::EQUILIBRIUM.to_f32(), 0.0);
    assert_eq!(u8::EQUILIBRIUM.to_f32(), 0.0);
    assert_eq!(i8::EQUILIBRIUM.to_f32(), 0.0);
    assert_eq!(u16::EQUILIBRIUM.to_i16(), 0);
    assert_eq!(u8::EQUILIBRIUM.to_i16(), 0);
}

#[test]
fn scale_endpoints() {
    assert_eq!(i16::MIN.to_f32(), -1.0);
    assert_eq!(i16::MAX.to_f32(), 32767.0 / 32768.0);
    assert_eq!(i8::MIN.to_f32(), -1.0);
    assert_eq!(u8::MIN.to_f32(), -1.0);
    assert_eq!(u16::MIN.to_f32(), -1.0);
    assert_eq!(i32::MIN.to_f32(), -1.0);
    assert_eq!(i32::MAX.to_f32(), 1.0, "rounded to 24 bits");
    assert_eq!(i32::from_f32(i32::MAX.to_f32()), i32::MAX);
    assert_eq!(i32::MAX.to_i16(), i16::MAX);
    assert_eq!(i32::MIN.to_i16(), i16::MIN);
}

#[test]
fn rounding_is_to_nearest_ties_to_even() {
    let lsb = 1.0 / 32768.0;
    assert_eq!(i16::from_f32(0.5 * lsb), 0);
    assert_eq!(i16::from_f32(1.5 * lsb), 2);
    assert_eq!(i16::from_f32(2.5 * lsb), 2);
    assert_eq!(i16::from_f32(-2.5 * lsb), -2);
    assert_eq!(i16::from_f32(0.49 * lsb), 0);
    assert_eq!(i16::from_f32(0.51 * lsb), 1);
    assert_eq!(i16::from_f32(-0.51 * lsb), -1);
    // Just below the top: 32766.5 ties to even 32766, 32766.6 rounds to 32767.
    assert_eq!(i16::from_f32(32766.5 * lsb), 32766);
    assert_eq!(i16::from_f32(32766.6 * lsb), 32767);
    // Largest f32 below 0.5 (a classic `+0.5` rounding pitfall) with i8 scaling.
    assert_eq!(i8::from_f32(0.499_999_97 / 128.0), 0);
    // i32 direct narrowing uses the same tie rule.
    assert_eq!(0x0000_8000i32.to_i16(), 0);
    assert_eq!(0x0001_8000i32.to_i16(), 2);
    assert_eq!(0x0001_8001i32.to_i16(), 2);
    assert_eq!(0x0000_8001i32.to_i16(), 1);
    assert_eq!((-0x0000_8000i32).to_i16(), 0);
    assert_eq!((-0x0001_8000i32).to_i16(), -2);
    assert_eq!(0x7FFF_8000i32.to_i16(), i16::MAX);
}

// ---- Exhaustive round trips ----

#[test]
fn i16_round_trips_exactly_through_f32() {
    for x in i16::MIN..=i16::MAX {
        let f = x.to_f32();
        assert_eq!(i16::from_f32(f), x, "{x}");
        assert_eq!(f32::from_sample(x), f);
        assert_eq!(x.to_i16(), x);
        assert_eq!(i16::from_sample(x.to_i32()), x);
        assert_eq!(i32::from_f32(f), x.to_i32());
    }
}

#[test]
fn u16_round_trips_exactly_through_f32() {
    for x in u16::MIN..=u16::MAX {
        assert_eq!(u16::from_f32(x.to_f32()), x, "{x}");
        assert_eq!(u16::from_sample(x.to_i16()), x);
        assert_eq!(x.to_i16(), i16::from_f32(x.to_f32()));
        assert_eq!(u16::from_sample(x.to_i32()), x);
    }
}

#[test]
fn i8_and_u8_round_trip_exactly() {
    for x in i8::MIN..=i8::MAX {
        assert_eq!(i8::from_f32(x.to_f32()), x, "{x}");
        assert_eq!(i8::from_sample(x.to_i16()), x);
        assert_eq!(x.to_i16(), i16::from_f32(x.to_f32()));
        assert_eq!(x.to_i32(), i32::from_f32(x.to_f32()));
    }
    for x in u8::MIN..=u8::MAX {
        assert_eq!(u8::from_f32(x.to_f32()), x, "{x}");
        assert_eq!(u8::from_sample(x.to_i16()), x);
        assert_eq!(x.to_i16(), i16::from_f32(x.to_f32()));
        assert_eq!(x.to_i32(), i32::from_f32(x.to_f32()));
        // u8 and i8 are the same signal with the top bit flipped.
        assert_eq!(x.to_f32(), ((x ^ 0x80) as i8).to_f32());
    }
}

#[test]
fn slice_convert_matches_scalar_and_respects_lengths() {
    let src: Vec<i16> = (i16::MIN..=i16::MAX).step_by(7).collect();
    let mut f = vec![0.0f32; src.len() + 3];
    assert_eq!(convert(&src, &mut f), src.len());
    assert_eq!(&f[src.len()..], &[0.0; 3]);
    let mut back = vec![0i16; src.len() - 5];
    assert_eq!(convert(&f, &mut back), src.len() - 5);
    assert_eq!(back[..], src[..src.len() - 5]);
    let mut none: [u8; 0] = [];
    assert_eq!(convert(&src, &mut none), 0);
    assert_eq!(convert::<u8, i16>(&[], &mut back), 0);
}

// ---- Reference model for f32 -> integer: round half to even in f64, clamp ----

fn reference(v: f32, scale: f64, lo: f64, hi: f64) -> f64 {
    if v.is_nan() {
        return 0.0;
    }
    let x = f64::from(v) * scale; // exact: f32 * power of two fits in f64
    x.round_ties_even().clamp(lo, hi)
}

fn any_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        -1.0f32..1.0,
        -4.0f32..4.0,
        -1e-4f32..1e-4,
        any::<f32>(),
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn f32_to_ints_match_reference(v in any_f32()) {
        prop_assert_eq!(f64::from(i16::from_f32(v)), reference(v, 32768.0, -32768.0, 32767.0));
        prop_assert_eq!(f64::from(i8::from_f32(v)), reference(v, 128.0, -128.0, 127.0));
        prop_assert_eq!(
            f64::from(u16::from_f32(v)),
            reference(v, 32768.0, -32768.0, 32767.0) + 32768.0
        );
        prop_assert_eq!(f64::from(u8::from_f32(v)), reference(v, 128.0, -128.0, 127.0) + 128.0);
        prop_assert_eq!(
            f64::from(i32::from_f32(v)),
            reference(v, 2_147_483_648.0, -2_147_483_648.0, 2_147_483_647.0)
        );
        prop_assert_eq!(v.to_i16(), i16::from_f32(v));
        prop_assert_eq!(v.to_i32(), i32::from_f32(v));
    }

    #[test]
    fn out_of_range_f32_saturates(mag in 1.0f32..=f32::MAX, neg in any::<bool>()) {
        let v = if neg { -mag } else { mag };
        let (i, u) = if neg { (i16::MIN, u16::MIN) } else { (i16::MAX, u16::MAX) };
        prop_assert_eq!(i16::from_f32(v), i);
        prop_assert_eq!(u16::from_f32(v), u);
        prop_assert_eq!(i8::from_f32(v), if neg { i8::MIN } else { i8::MAX });
        prop_assert_eq!(u8::from_f32(v), if neg { u8::MIN } else { u8::MAX });
        prop_assert_eq!(i32::from_f32(v), if neg { i32::MIN } else { i32::MAX });
    }

    // The range ends at 32767.5 / 32768 (exact in f32), not at 1.0: above it `i16` saturates at
    // 32767 by design (module docs), up to 0.5 LSB further away. A run drew 0.9999898 here.
    #[test]
    fn in_range_f32_round_trips_within_half_lsb(v in -1.0f32..(32767.5 / 32768.0)) {
        let back = i16::from_f32(v).to_f32();
        prop_assert!((back - v).abs() <= 0.5 / 32768.0 + f32::EPSILON / 4.0, "{} -> {}", v, back);
        let back = i32::from_f32(v).to_f32();
        prop_assert!((back - v).abs() <= f32::EPSILON, "{} -> {}", v, back);
    }

    #[test]
    fn i32_round_trip_within_documented_bound(x in any::<i32>()) {
        let back = i32::from_f32(x.to_f32());
        let err = (i64::from(back) - i64::from(x)).abs();
        let mag = i64::from(x).unsigned_abs();
        if mag <= 1 << 24 {
            prop_assert_eq!(back, x);
        } else {
            // Half an f32 step at |x|: 2^(floor(log2|x|) - 24).
            let bound = 1i64 << (63 - mag.leading_zeros() - 24);
            prop_assert!(err <= bound, "{} -> {} (err {}, bound {})", x, back, err, bound);
            prop_assert!(err <= 64);
        }
    }

    #[test]
    fn i32_to_i16_is_correctly_rounded(x in any::<i32>()) {
        let exact = (f64::from(x) / 65536.0).round_ties_even().clamp(-32768.0, 32767.0);
        prop_assert_eq!(f64::from(x.to_i16()), exact);
        // The float route rounds twice and may differ by one step at most.
        let via_f32 = i16::from_f32(x.to_f32());
        prop_assert!((i32::from(via_f32) - i32::from(x.to_i16())).abs() <= 1);
    }

    #[test]
    fn u16_conversions_agree(x in any::<u16>()) {
        prop_assert_eq!(u16::from_f32(x.to_f32()), x);
        prop_assert_eq!(i16::from_sample(x), (x ^ 0x8000) as i16);
        prop_assert_eq!(u16::from_sample(f32::from_sample(x)), x);
        prop_assert_eq!(f32::from_sample(x), ((x ^ 0x8000) as i16).to_f32());
    }
}

/// Silence, the nominal range's ends, saturation and the direct integer routes.
#[test]
fn one_sample_at_a_time() {
    assert_eq!(
        (u16::EQUILIBRIUM, u8::EQUILIBRIUM, f32::EQUILIBRIUM),
        (32768, 128, 0.0)
    );
    assert_eq!((16384i16.to_f32(), i32::MIN.to_f32()), (0.5, -1.0));
    assert_eq!(i16::from_f32(1.0), i16::MAX);
    assert_eq!(u8::from_f32(f32::NEG_INFINITY), 0);
    assert_eq!(u16::from_f32(f32::NAN), 32768);
    assert_eq!((255u8.to_i16(), 1.2f32.to_i16()), (127 << 8, i16::MAX));
    assert_eq!(((-1i16).to_i32(), 1.0f32.to_i32()), (-65536, i32::MAX));
    assert_eq!(f32::from_sample(i16::MIN), -1.0);
    assert_eq!(i32::from_sample(i32::MAX), i32::MAX);
    assert_eq!(u16::from_sample(0u8), 0);
}
