//! The plan on every header shape, and repairs of real files.

use super::plan::*;
use super::*;

fn pcm16_header(channels: u16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&FORMAT_PCM.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&16_000u32.to_le_bytes());
    h.extend_from_slice(&(32_000u32 * u32::from(channels)).to_le_bytes());
    h.extend_from_slice(&(2 * channels).to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data\0\0\0\0");
    h
}

#[test]
fn stale_sizes_are_planned_to_whole_frames() {
    let h = pcm16_header(2);
    let plan = plan_repair(&h, 44 + 4 * 10 + 3).unwrap();
    assert_eq!(plan.data_offset, 44);
    assert_eq!(plan.data_size_offset, 40);
    assert_eq!(plan.data_size, 40);
    assert_eq!(plan.riff_size, 36 + 40);
    assert_eq!(plan.new_file_len, 84);
    assert_eq!(plan.dropped_bytes(), 3);
    assert!(plan.needed());
}

#[test]
fn consistent_file_needs_nothing() {
    let mut h = pcm16_header(1);
    h[4..8].copy_from_slice(&(36u32 + 8).to_le_bytes());
    h[40..44].copy_from_slice(&8u32.to_le_bytes());
    let plan = plan_repair(&h, 52).unwrap();
    assert!(!plan.needed());
    assert_eq!(plan.frames(), 4);
}

#[test]
fn consistent_file_with_a_chunk_after_the_data_is_left_alone() {
    let mut h = pcm16_header(1);
    h[40..44].copy_from_slice(&8u32.to_le_bytes());
    let file_len = 44 + 8 + 8 + 4; // samples, then a LIST chunk of 4 bytes
    h[4..8].copy_from_slice(&(file_len as u32 - 8).to_le_bytes());
    let plan = plan_repair(&h, file_len).unwrap();
    assert!(!plan.needed());
    assert_eq!(plan.data_size, 8);
}

#[test]
fn declared_samples_all_there_are_kept_and_what_follows_too() {
    // 4 frames declared and present, then bytes the RIFF size leaves out: a LIST chunk
    // (12 bytes), or 9 stray bytes.
    for trailing in [12u64, 9, 1, 2, 3] {
        let mut h = pcm16_header(1);
        h[4..8].copy_from_slice(&(36u32 + 8).to_le_bytes());
        h[40..44].copy_from_slice(&8u32.to_le_bytes());
        let file_len = 52 + trailing;
        let plan = plan_repair(&h, file_len).unwrap();
        assert!(plan.needed(), "{trailing}");
        assert_eq!(plan.data_size, 8, "{trailing}");
        assert_eq!(plan.new_file_len, file_len, "{trailing}");
        assert_eq!(u64::from(plan.riff_size), file_len - 8);
        assert_eq!((plan.dropped_bytes(), plan.kept_after()), (0, trailing));
        // Asked to, the trailing bytes become samples (whole frames of them).
        let to_end = plan_samples_to_end(&h, file_len).unwrap();
        assert_eq!(u64::from(to_end.data_size), 8 + trailing / 2 * 2);
    }
}

#[test]
fn an_unfinished_writers_samples_run_to_the_end() {
    // A checkpoint at 4 frames, then 3 more frames and half of one.
    let mut h = pcm16_header(1);
    h[4..8].copy_from_slice(&UNKNOWN_LENGTH.to_le_bytes());
    h[40..44].copy_from_slice(&8u32.to_le_bytes());
    let plan = plan_repair(&h, 52 + 7).unwrap();
    assert_eq!(plan.data_size, 14);
    assert_eq!(plan.new_file_len, 58);
    assert_eq!(plan.riff_size, 50);
    // Declared beyond the end: the same.
    let mut h = pcm16_header(1);
    h[40..44].copy_from_slice(&1000u32.to_le_bytes());
    assert_eq!(plan_repair(&h, 52).unwrap().data_size, 8);
}

#[test]
fn empty_data_is_fine() {
    let plan = plan_repair(&pcm16_header(1), 44).unwrap();
    assert_eq!(plan.data_size, 0);
    assert_eq!(plan.riff_size, 36);
}

#[test]
fn header_cut_short_is_an_error() {
    let h = pcm16_header(1);
    for len in 0..44 {
        let err = plan_repair(&h[..len], len as u64).unwrap_err();
        assert!(
            matches!(err, RecoverError::Truncated { .. } | RecoverError::NotWav),
            "{len}: {err}"
        );
        assert!(!err.to_string().contains('\n'));
    }
}

#[test]
fn garbage_is_rejected() {
    assert!(matches!(
        plan_repair(b"RIFX\0\0\0\0WAVEfmt ", 100),
        Err(RecoverError::NotWav)
    ));
    let mut h = pcm16_header(1);
    h[22..24].copy_from_slice(&0u16.to_le_bytes());
    assert!(matches!(
        plan_repair(&h, 100),
        Err(RecoverError::BadFormat { .. })
    ));
    let mut h = pcm16_header(1);
    h[20..22].copy_from_slice(&2u16.to_le_bytes()); // ADPCM
    assert!(matches!(
        plan_repair(&h, 100),
        Err(RecoverError::Unsupported { .. })
    ));
}

#[test]
fn huge_chunk_sizes_do_not_panic() {
    let mut h = pcm16_header(1);
    h[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(plan_repair(&h, u64::MAX).is_err());
    let mut h = b"RIFF\0\0\0\0WAVEjunk".to_vec();
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(plan_repair(&h, u64::MAX).is_err());
    assert!(plan_repair(&h, 20).is_err());
}

#[test]
fn too_large_data_is_an_error() {
    let h = pcm16_header(1);
    assert!(matches!(
        plan_repair(&h, 1 << 33),
        Err(RecoverError::TooLarge { .. })
    ));
    // The largest representable file is fine.
    let max = u64::from(u32::MAX) + 8;
    let plan = plan_repair(&h, max - 1).unwrap();
    assert!(u64::from(plan.riff_size) + 8 <= max);
}

#[test]
fn junk_chunks_before_data_are_skipped() {
    let mut h = b"RIFF\0\0\0\0WAVE".to_vec();
    h.extend_from_slice(b"LIST");
    h.extend_from_slice(&3u32.to_le_bytes());
    h.extend_from_slice(b"abc\0"); // odd size + pad byte
    h.extend_from_slice(&pcm16_header(1)[12..]);
    let plan = plan_repair(&h, h.len() as u64 + 10).unwrap();
    assert_eq!(plan.data_offset, h.len() as u64);
    assert_eq!(plan.data_size, 10);
}

/// A small deterministic fuzz: every prefix and many byte flips of valid headers.
#[test]
fn mutated_headers_never_panic() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let base = pcm16_header(2);
    for _ in 0..20_000 {
        let mut h = base.clone();
        let flips = next() % 4 + 1;
        for _ in 0..flips {
            let i = (next() as usize) % h.len();
            h[i] = next() as u8;
        }
        let cut = (next() as usize) % (h.len() + 1);
        let len = next() % 200;
        let _ = plan_repair(&h[..cut], len);
        let _ = plan_repair(&h, len);
    }
}
