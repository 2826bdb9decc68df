//! Gives memory the allocator kept after `free` back to the system.
//!
//! glibc's `malloc` serves blocks under its mmap threshold (128 KiB to 32 MiB, adapting) from
//! heaps, and returns a heap's memory to the system only from its top, above 128 KiB of free
//! space. A take stored as many 64 KiB blocks, freed while anything small allocated between them
//! lives on, stays resident: the process's RSS stays at its peak after the take is handed over.
//! `malloc_trim(0)` walks every arena and releases each whole free page (`MADV_DONTNEED`), so RSS
//! comes back near where it was before the take (measured in `host/tests/memory_trim.rs`).
//!
//! Call it after a take is handed over or its blocks are spilled, and on a pressure event; not
//! per block, and not on the capture path: it walks every free chunk of every arena under the
//! arena's lock, one `madvise` per chunk (2.6 to 6.7 ms after a 64 MiB take whose blocks sat
//! between 128 live allocations; 27 ms with 1,024 of them), and an allocation on another thread
//! waits meanwhile. On other C libraries (musl returns memory itself) and systems it does
//! nothing.

/// Returns the free memory of every `malloc` arena to the system. `true` if glibc released
/// some; always `false` where there is nothing to do (not glibc).
///
/// ```
/// let big: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 64 << 10]).collect();
/// drop(big);
/// let _released = w4l::memory::trim::release_freed();
/// ```
pub fn release_freed() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` takes a padding size and only works on glibc's own allocator
        // state under its arena locks; it is safe to call from any thread at any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
