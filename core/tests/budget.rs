//! The Whisper model table, budget construction and buffer-length rules of
//! `w4l_core::budget`.

use w4l_core::accountant::Category;
use w4l_core::budget::{
    AUDIO_BUFFER_LIMIT, Budget, DEFAULT_DISK_LIMIT, DEFAULT_MEMORY_LIMIT, MAX_BUFFER_SECONDS, MIB,
    MIN_BUFFER_SECONDS, Model, OVERHEAD, buffer_bytes, buffer_seconds, clamp_buffer_seconds,
};

/// MB means MiB; the defaults a budget starts from.
#[test]
fn constants_and_defaults() {
    assert_eq!(MIB, 1_048_576);
    assert_eq!(Model::Tiny.total_limit(), 150 * MIB + OVERHEAD);
    assert_eq!(Budget::default().memory, DEFAULT_MEMORY_LIMIT);
    assert_eq!(Budget::default().audio_limit, AUDIO_BUFFER_LIMIT);
    assert_eq!(Budget::default().disk, DEFAULT_DISK_LIMIT);
    assert_eq!(Budget::DEFAULT, Budget::default());
    assert_eq!(Budget::default().with_disk(10 * MIB).disk, 10 * MIB);
}

/// The model table: footprints grow with the model; names parse leniently.
#[test]
fn model_table_and_names() -> Result<(), Box<dyn std::error::Error>> {
    assert_eq!(Model::parse(" Base.en ")?, Model::Base);
    assert_eq!("large-v3".parse::<Model>()?, Model::Large);
    assert_eq!(Model::Medium.footprint(), 1500 * MIB);
    assert_eq!(Model::Tiny.to_string(), "tiny");
    assert!(
        Model::ALL
            .windows(2)
            .all(|w| w[0].footprint() < w[1].footprint())
    );
    assert_eq!(Model::Large.footprint(), 2500 * MIB);
    assert_eq!(Model::Large.total_limit(), 3012 * MIB);
    assert_eq!(Model::Small.name(), "small");
    assert_eq!(Model::parse("SMALL"), Ok(Model::Small));
    assert!(Model::parse("huge").is_err());
    {
        let err = Model::parse("gigantic").unwrap_err();
        assert_eq!(err.text(), "gigantic");
        assert!(!err.truncated());
        assert!(
            err.to_string()
                .starts_with("unknown Whisper model \"gigantic\"")
        );
    }
    assert_eq!(Model::parse(" xl ").unwrap_err().text(), "xl");
    assert!(
        Model::parse("a-model-name-that-is-far-too-long")
            .unwrap_err()
            .truncated()
    );
    Ok(())
}

/// A budget per model, and the accountant it builds (audio limited to 100 MiB).
#[test]
fn budgets_build_accountants() {
    assert_eq!(Budget::for_model(Model::Medium).memory, 2012 * MIB);
    {
        let acc = Budget::default().accountant();
        assert!(acc.try_reserve(Category::Audio, 101 * MIB).is_err());
        assert!(acc.try_reserve(Category::Model, 400 * MIB).is_ok());
    }
}

/// A buffer spans 1 to 30 seconds; its size never overflows.
#[test]
fn buffer_lengths() {
    assert!(buffer_seconds(MIN_BUFFER_SECONDS).is_ok());
    assert!(buffer_seconds(MAX_BUFFER_SECONDS).is_ok());
    {
        let err = buffer_seconds(45).unwrap_err();
        assert_eq!(err.seconds, 45);
        assert!(err.to_string().contains("1 to 30"));
    }
    assert_eq!(buffer_seconds(10), Ok(10));
    assert!(buffer_seconds(0).is_err());
    assert!(buffer_seconds(31).is_err());
    assert_eq!(
        (
            clamp_buffer_seconds(0),
            clamp_buffer_seconds(7),
            clamp_buffer_seconds(99)
        ),
        (1, 7, 30)
    );
    // 30 s of 16 kHz mono f32: 1.92 MB.
    assert_eq!(buffer_bytes(30, 16_000, 1, 4), Some(1_920_000));
    assert_eq!(buffer_bytes(u32::MAX, u32::MAX, u16::MAX, usize::MAX), None);
}
