//! Sample conversion: saturating, never wrapping, and round trips within their bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use w4l_core::sample::convert;

fuzz_target!(|data: &[u8]| {
    // Reinterpret the input as every format cpal delivers.
    let floats: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut i16s = vec![0i16; floats.len()];
    assert_eq!(convert(&floats, &mut i16s), floats.len());
    for (&f, &s) in floats.iter().zip(&i16s) {
        // The documented convention: scale by 32768, round half to even, saturate, NaN -> 0.
        let want = if f.is_nan() {
            0
        } else {
            (f64::from(f) * 32768.0)
                .round_ties_even()
                .clamp(-32768.0, 32767.0) as i16
        };
        assert_eq!(s, want, "{f} -> {s}, want {want}");
    }
    // Integer formats survive the round trip through f32 exactly.
    let i16_in: Vec<i16> = data
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let mut f = vec![0f32; i16_in.len()];
    let mut back = vec![0i16; i16_in.len()];
    convert(&i16_in, &mut f);
    convert(&f, &mut back);
    assert_eq!(i16_in, back);
    let u8_in: Vec<u8> = data.to_vec();
    let mut f = vec![0f32; u8_in.len()];
    let mut back = vec![0u8; u8_in.len()];
    convert(&u8_in, &mut f);
    convert(&f, &mut back);
    assert_eq!(u8_in, back);
    let i32_in: Vec<i32> = data
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut f = vec![0f32; i32_in.len()];
    let mut back = vec![0i32; i32_in.len()];
    convert(&i32_in, &mut f);
    convert(&f, &mut back);
    for (&a, &b) in i32_in.iter().zip(&back) {
        // f32 keeps 24 significant bits: the error is at most half a unit in the last place.
        assert!((i64::from(a) - i64::from(b)).abs() <= 128, "{a} -> {b}");
    }
});
