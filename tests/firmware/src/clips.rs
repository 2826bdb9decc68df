//! Clips: snapshots of the window's newest 50 ms, kept in a static pool of slots. Memory is
//! bookkept the way w4l does it: every buffer's bytes are reserved from the accountant
//! *before* it is filled, every reservation is owned by its tracker entry, and when the
//! budget refuses a clip the tracker picks the victims (lowest priority, oldest first)
//! whose release makes room.

use w4l_core::accountant::{Accountant, Category, Reservation};
use w4l_core::tracker::{BufferId, Order, Priority, Tracker};
use w4l_core::window::Window;

/// Samples per clip (50 ms at 16 kHz).
pub const CLIP_LEN: usize = 800;
/// Bytes per clip.
pub const CLIP_BYTES: usize = CLIP_LEN * core::mem::size_of::<i16>();
/// Slots in the pool (more than the budget lets live at once).
pub const CLIP_SLOTS: usize = 4;
/// Buffers the tracker can hold: the ring, the window and the clips.
pub const TRACKED: usize = 8;

/// The static storage of the clips.
pub type Pool = [[i16; CLIP_LEN]; CLIP_SLOTS];
/// What a tracker entry owns: the buffer's reservation and its slot in the pool.
pub type Payload = (Reservation<&'static Accountant>, usize);

/// The clip store and its tallies.
pub struct Clips {
    accountant: &'static Accountant,
    tracker: &'static mut Tracker<Payload, TRACKED>,
    pool: &'static mut Pool,
    in_use: [bool; CLIP_SLOTS],
    next_id: u64,
    /// Clips stored.
    pub taken: u32,
    /// Reservations the budget refused.
    pub refused: u32,
    /// Clips released to make room.
    pub evicted: u32,
    /// Clips whose contents differed from what was expected, or that could not be stored.
    pub errors: u32,
}

impl Clips {
    pub fn new(
        accountant: &'static Accountant,
        tracker: &'static mut Tracker<Payload, TRACKED>,
        pool: &'static mut Pool,
    ) -> Self {
        Clips {
            accountant,
            tracker,
            pool,
            in_use: [false; CLIP_SLOTS],
            next_id: 100,
            taken: 0,
            refused: 0,
            evicted: 0,
            errors: 0,
        }
    }

    /// Tracks a long-lived buffer (the ring's or the window's storage) under `id`, with
    /// `bytes` reserved for it; `false` if the budget or the tracker refused.
    pub fn track_buffer(&mut self, id: u64, bytes: usize) -> bool {
        match self.accountant.try_reserve(Category::Audio, bytes) {
            Ok(r) => self
                .tracker
                .register(BufferId(id), 0, Priority::High, (r, usize::MAX))
                .is_ok(),
            Err(e) => {
                defmt::error!("reserve {=usize} B for buffer {=u64}: {}", bytes, id, e);
                false
            }
        }
    }

    /// Copies the window's newest `CLIP_LEN` samples into a free slot at `now_ms`, making
    /// room first if the budget refuses; `expected(i)` is the sample the `i`-th of them
    /// should be.
    pub fn take<S: AsRef<[i16]> + AsMut<[i16]>>(
        &mut self,
        window: &Window<i16, S>,
        now_ms: u64,
        expected: impl Fn(usize) -> i16,
    ) {
        let reservation = match self.accountant.try_reserve(Category::Audio, CLIP_BYTES) {
            Ok(r) => r,
            Err(e) => {
                self.refused += 1;
                defmt::info!("clip at {=u64} ms refused: {}", now_ms, e);
                self.make_room(now_ms);
                match self.accountant.try_reserve(Category::Audio, CLIP_BYTES) {
                    Ok(r) => r,
                    Err(e) => {
                        defmt::error!("still no room for a clip: {}", e);
                        self.errors += 1;
                        return;
                    }
                }
            }
        };
        let Some(slot) = self.in_use.iter().position(|used| !used) else {
            defmt::error!("no free clip slot");
            self.errors += 1;
            return;
        };
        let clip = &mut self.pool[slot];
        let copied = window.latest(CLIP_LEN, clip);
        let intact = copied == CLIP_LEN && clip.iter().enumerate().all(|(i, &s)| s == expected(i));
        let id = BufferId(self.next_id);
        match self
            .tracker
            .register(id, now_ms, Priority::Low, (reservation, slot))
        {
            Ok(()) => {
                self.in_use[slot] = true;
                self.next_id += 1;
                self.taken += 1;
                if !intact {
                    self.errors += 1;
                }
                defmt::info!(
                    "clip {} at {=u64} ms in slot {=usize}: {=usize} samples, audio memory {=usize}/{=usize} B",
                    id,
                    now_ms,
                    slot,
                    copied,
                    self.accountant.memory_used(),
                    self.accountant.memory_budget()
                );
            }
            Err(e) => {
                defmt::error!("tracker refused clip: {}", e);
                self.errors += 1;
            }
        }
    }

    /// Releases the oldest low-priority buffers until one clip's bytes are free.
    fn make_room(&mut self, now_ms: u64) {
        let mut victims = [BufferId(0); TRACKED];
        let free = self.accountant.available(Category::Audio);
        let need = CLIP_BYTES.saturating_sub(free);
        let picked = self
            .tracker
            .select_victims(Order::OldestFirst, true, need, &mut victims);
        for &id in &victims[..picked.count] {
            match self.tracker.release(id) {
                Ok(entry) => {
                    defmt::info!(
                        "evict clip {} ({=u64} ms old, {=usize} B)",
                        id,
                        entry.age_ms(now_ms),
                        entry.bytes()
                    );
                    let (reservation, slot) = entry.payload;
                    if let Some(used) = self.in_use.get_mut(slot) {
                        *used = false;
                    }
                    drop(reservation); // gives the bytes back to the accountant
                    self.evicted += 1;
                }
                Err(e) => {
                    defmt::error!("release {}: {}", id, e);
                    self.errors += 1;
                }
            }
        }
    }

    /// Buffers tracked and the bytes they hold.
    pub fn tracked(&self) -> (usize, usize) {
        (self.tracker.len(), self.tracker.total_bytes())
    }
}
