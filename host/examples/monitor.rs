//! The memory monitor on its own (the earlier design's `MemoryMonitor`): a budget, a cleanup
//! callback that frees what the policy asks for, and the background thread that reads memory
//! once a second. Here a cache grows past the budget's thresholds and the callback shrinks it.
//!
//! ```text
//! cargo run -p w4l --example monitor
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use w4l::core::accountant::{Accountant, Category, Reservation};
use w4l::memory::monitor::MonitorConfig;
use w4l::prelude::*;

fn main() -> Result<()> {
    // 64 MiB of memory budget (and no disk): Elevated at 60 %, High at 75 %, Critical at 90 %.
    let accountant = Arc::new(Accountant::new(64 << 20, 0));
    let monitor = MemoryMonitor::new(
        accountant.clone(),
        MonitorConfig {
            interval: Duration::from_millis(200),
            ..MonitorConfig::default()
        },
    )?;
    // An app's cache of 4 MiB entries, each charged to the budget.
    let cache: Arc<Mutex<Vec<Reservation<Arc<Accountant>>>>> = Arc::default();
    let held = cache.clone();
    monitor.add_cleanup_callback(move |request| {
        let mut entries = held.lock().unwrap_or_else(PoisonError::into_inner);
        let mut freed = 0;
        // Free what the policy wants, oldest first; at High and above at least one entry (the
        // policy may escalate on the trend alone, before the budget is short).
        let want = if request.level >= Level::High {
            request.wanted.max(1)
        } else {
            request.wanted
        };
        while freed < want && !entries.is_empty() {
            let entry = entries.remove(0);
            freed += entry.bytes() as u64;
        }
        println!(
            "{}: {:?} asked for {} KiB, freed {} KiB",
            request.level,
            request.actions,
            request.wanted >> 10,
            freed >> 10
        );
        freed
    });
    monitor.start()?;
    for _ in 0..14 {
        if let Ok(entry) = Accountant::try_reserve_in(accountant.clone(), Category::Audio, 4 << 20)
        {
            cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(entry);
        }
        let usage = monitor.usage();
        println!(
            "accounted {:>2} MiB of {} MiB, level {}",
            usage.accounted >> 20,
            usage.budget >> 20,
            usage.level.name()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    monitor.stop();
    for event in monitor.timeline().0 {
        println!("timeline: {event}");
    }
    Ok(())
}
