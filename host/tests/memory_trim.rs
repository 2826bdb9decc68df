//! Memory the allocator keeps after a take, and what `release_freed` gives back.
//!
//! One test in its own process (an integration-test binary), so no other test allocates while
//! the resident set is read. The take is stored as the recorder's block store does: many
//! 64 KiB blocks, with a small allocation that outlives the take (a timeline entry, a log line,
//! bookkeeping) made after every eighth block, about every half second of 48 kHz stereo: those
//! pin the heap, so freeing the blocks alone leaves them resident. Each keeps its own page
//! resident after the trim.

use std::time::Instant;

use w4l::memory::trim::release_freed;

const BLOCK: usize = 64 << 10;
/// A small allocation that outlives the take after this many blocks.
const KEEP_EVERY: usize = 8;
const TAKE: usize = 64 << 20;
const MIB: f64 = (1 << 20) as f64;

/// This process's resident set, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm's second field");
    pages * page()
}

fn page() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).expect("a page size")
}

#[test]
fn rss_returns_near_baseline_after_a_take_is_trimmed() {
    let baseline = rss();
    let mut blocks = Vec::with_capacity(TAKE / BLOCK);
    let mut kept = Vec::with_capacity(TAKE / BLOCK / KEEP_EVERY);
    for i in 0..TAKE / BLOCK {
        // Written, so resident (calloc'd zero pages might not be).
        blocks.push(vec![(i % 251 + 1) as u8; BLOCK]);
        if i % KEEP_EVERY == 0 {
            kept.push(Box::new([i as u8; 48]));
        }
    }
    let peak = rss();
    drop(blocks);
    let freed = rss();
    let t = Instant::now();
    let released = release_freed();
    let took = t.elapsed();
    let trimmed = rss();
    let mib = |b: u64| b as f64 / MIB;
    eprintln!(
        "64 MiB take in {} blocks of 64 KiB, {} small allocations kept: RSS baseline {:.1} MiB, \
         peak {:.1} MiB, after free {:.1} MiB, after release_freed {:.1} MiB (released: \
         {released}, {took:?})",
        TAKE / BLOCK,
        kept.len(),
        mib(baseline),
        mib(peak),
        mib(freed),
        mib(trimmed),
    );
    assert!(
        peak >= baseline + (TAKE as u64) * 15 / 16,
        "the take was resident"
    );
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        assert!(
            freed > baseline + (TAKE as u64) / 2,
            "glibc kept the freed blocks"
        );
        assert!(released);
        // Near the baseline: the kept allocations' pages remain, one each, and 1 MiB of slack.
        let pinned = kept.len() as u64 * page();
        assert!(
            trimmed < baseline + pinned + (1 << 20),
            "RSS did not come back"
        );
    }
    drop(kept);
}
