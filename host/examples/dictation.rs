//! Push-to-talk dictation with a stand-in speech model: record within a 200 MiB budget, feed
//! the newest 5 s (16 kHz mono, as Whisper wants it) to the model every second, let the memory
//! policy unload the model under pressure (it reloads on the next use). The device stays open
//! for the whole session (takes in a row): two key presses, scripted, each a take that starts
//! at once with half a second from before the press, saved while the session goes on.
//!
//! ```text
//! cargo run -p w4l --example dictation                  # the default microphone
//! cargo run -p w4l --example dictation -- --synthetic   # a built-in voice, no microphone
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use w4l::core::accountant::{Accountant, Category, Reservation};
use w4l::prelude::*;
use w4l::source::Synthetic;

/// A stand-in for a speech model: memory of a small model's size, charged to the budget's model
/// category, that "transcribes" by measuring the audio it is given.
struct StandInModel {
    weights: Vec<u8>,
    _charged: Reservation<Arc<Accountant>>,
}

impl StandInModel {
    const BYTES: usize = 64 << 20;

    fn load(accountant: &Arc<Accountant>) -> Result<Self> {
        let charged = Accountant::try_reserve_in(accountant.clone(), Category::Model, Self::BYTES)
            .map_err(|e| Error::runtime(format!("the model does not fit ({e})"), "free memory"))?;
        Ok(Self {
            weights: vec![1; Self::BYTES],
            _charged: charged,
        })
    }

    fn transcribe(&self, audio: &[f32]) -> String {
        let rms = (audio.iter().map(|s| s * s).sum::<f32>() / audio.len().max(1) as f32).sqrt();
        format!(
            "{:.1} s of audio, RMS {rms:.3} ({} MiB of weights)",
            audio.len() as f32 / 16_000.0,
            self.weights.len() >> 20
        )
    }
}

/// When the scripted key goes down (`true`) and up, in seconds of the session.
const PRESSES: [(u32, bool); 3] = [(1, true), (3, false), (4, true)];

fn main() -> Result<()> {
    let mut dictation = Dictation::new()
        .budget(200 << 20)
        .window(Duration::from_secs(30))
        .model_input(true)
        .takes_in_a_row(true)
        .duration(Duration::from_secs(6));
    if std::env::args().any(|a| a == "--synthetic") {
        // A voice of 6 s at 16 kHz mono, delivered in real time like a microphone.
        dictation = dictation.source(Box::new(Synthetic::new(16_000, 1, 7, 6 * 16_000, true)));
    }
    let session = dictation.start()?;
    let accountant = session.monitor().accountant().clone();
    let model = Arc::new(Mutex::new(Some(StandInModel::load(&accountant)?)));
    unload_under_pressure(&session, model.clone());
    let mut second = 0;
    while !session.wait(Duration::from_secs(1)) {
        second += 1;
        match PRESSES.iter().find(|(at, _)| *at == second) {
            Some((_, true)) => session.begin_take(Duration::from_millis(500))?,
            Some((_, false)) => save(session.end_take()?, 1)?,
            None => {}
        }
        let audio = session.latest(5.0);
        let mut slot = model.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(StandInModel::load(&accountant)?);
        }
        if let Some(m) = slot.as_ref() {
            println!("heard {}", m.transcribe(&audio));
        }
    }
    // The session ends with the key still down: stop ends that take too.
    save(session.stop()?, 2)
}

/// Under High pressure the policy asks for `UnloadModel`: the app gives the memory back.
fn unload_under_pressure(session: &Session, model: Arc<Mutex<Option<StandInModel>>>) {
    session.monitor().add_cleanup_callback(move |request| {
        if !request.wants(Action::UnloadModel) {
            return 0;
        }
        let mut slot = model.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.take() {
            Some(_) => {
                println!("memory pressure {}: model unloaded", request.level);
                StandInModel::BYTES as u64
            }
            None => 0,
        }
    });
}

fn save(take: Take, n: u32) -> Result<()> {
    let path = std::env::temp_dir().join(format!("w4l-dictation-example-{n}.wav"));
    let first = take.first_frame();
    let saved = take.save(&path)?;
    println!(
        "take {n}: saved {} frames ({} lost) from frame {first} to {}",
        saved.frames,
        saved.frames_lost,
        path.display()
    );
    std::fs::remove_file(&path).ok();
    Ok(())
}
