//! The temporary-file manager from an app's side (the earlier design's resource manager): the
//! app's scratch file, reaped under memory pressure once finished; the app's own file handed
//! over with `adopt`, removed when its handle goes; and a take recorded through the *same*
//! manager (one per directory per process, so the recorder never fights the app for it).
//!
//! ```text
//! cargo run -p w4l --example temp_files
//! ```

use std::io::Write;
use std::time::Duration;

use w4l::prelude::*;
use w4l::source::Synthetic;
use w4l::tempfiles::ResourceManager;

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let base = tempfile::tempdir()?;
    // The app's manager: mode 0700, files 0600, one lock per process; what a killed process
    // left here is reaped by the next open (takes are recovered instead).
    let manager = ResourceManager::open(base.path().join("w4l"))?;
    println!("temp dir: {}", manager.dir().display());

    // Scratch: removed when dropped; once finished, memory pressure may reap it early.
    let mut scratch = manager.create("features")?;
    scratch.write_all(&[0u8; 64 << 10])?;
    scratch.finish()?;
    let reaped = manager.reap_finished();
    println!(
        "memory pressure reaped {} finished file(s), {} bytes",
        reaped.files.len(),
        reaped.bytes
    );
    assert!(!scratch.path().exists());

    // An app's own file handed over: spared by pressure while held, removed when dropped (also
    // on SIGINT/SIGTERM with `signals`, and by the next start after a kill).
    let draft = base.path().join("transcript.draft.txt");
    std::fs::write(&draft, "so the budget is")?;
    let adopted = manager.adopt(&draft)?;
    assert!(manager.reap_finished().files.is_empty());
    drop(adopted);
    println!("adopted draft removed on drop: {}", !draft.exists());
    assert!(!draft.exists());

    // A take through the same manager: its journal lives in the app's directory while it records.
    let session = Dictation::new()
        .budget(16 << 20)
        .source(Box::new(Synthetic::new(16_000, 1, 7, 32_000, false)))
        .temp_files(manager.clone())
        .start()?;
    assert!(
        session.wait(Duration::from_secs(30)),
        "the synthetic take ends"
    );
    let take = session.stop()?;
    let output = base.path().join("take.wav");
    let saved = take.save(&output)?;
    println!(
        "take: {} frames saved to {}",
        saved.frames,
        output.display()
    );

    // Nothing is left behind: no scratch, no journal.
    let left: Vec<_> = manager.files().into_iter().map(|f| f.path).collect();
    println!("files the manager still holds: {left:?}");
    assert!(left.is_empty());
    Ok(())
}
