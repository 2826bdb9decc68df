//! The WAV header repair plans (`w4l recover`, with and without `--samples-to-end`) on
//! arbitrary bytes and file lengths: never panic, and every plan accepted is self-consistent
//! and stays inside the file.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use w4l::wav::repair::{plan_repair, plan_samples_to_end};

#[derive(Arbitrary, Debug)]
struct Input {
    header: Vec<u8>,
    extra_len: u32,
    to_end: bool,
}

fuzz_target!(|input: Input| {
    let file_len = input.header.len() as u64 + u64::from(input.extra_len);
    let planner = if input.to_end {
        plan_samples_to_end
    } else {
        plan_repair
    };
    let Ok(plan) = planner(&input.header, file_len) else {
        return;
    };
    let align = u64::from(plan.format.block_align);
    assert!(align > 0, "a plan with zero-sized frames");
    assert_eq!(
        u64::from(plan.data_size) % align,
        0,
        "data is not whole frames"
    );
    // The samples end where the file does, or before what the repair keeps after them (a
    // chunk or stray bytes behind a data chunk that is all there); then nothing is cut.
    let data_end = plan.data_offset + u64::from(plan.data_size);
    assert!(plan.new_file_len >= data_end, "the cut goes into the samples");
    assert!(
        plan.new_file_len == data_end || plan.new_file_len == file_len,
        "bytes after the samples are cut"
    );
    assert!(
        plan.new_file_len <= file_len,
        "the repair would grow the file"
    );
    assert_eq!(u64::from(plan.riff_size), plan.new_file_len - 8);
    assert!(
        plan.data_size_offset + 4 <= plan.data_offset,
        "size field overlaps the samples"
    );
    assert_eq!(plan.frames(), u64::from(plan.data_size) / align);
});
