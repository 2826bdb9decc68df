//! `record --model X` is a budget, not a load: `w4l record` only records (the transcriber,
//! and its model, run elsewhere or later). The model's table entry sets the budget and the RSS
//! limit; before recording, the model is tried against that budget, as capped by the machine,
//! through the library's [`ModelManager`] with budget-only stand-ins (reserved, never
//! allocated): a warning says when it does not fit beside the take's buffers, and which
//! smaller Whisper model would.

use std::sync::Arc;
use std::time::Duration;

use w4l::memory::models::{ModelConfig, ModelError, ModelManager, ModelSpec};
use w4l_core::accountant::{Accountant, Category};
use w4l_core::budget::Model;

use crate::cli::format_bytes;

/// Warns (one line) if `accountant`'s budget, with `fixed` bytes of the take's buffers held,
/// cannot hold `model` now.
pub fn warn_if_model_does_not_fit(accountant: &Arc<Accountant>, model: Model, fixed: u64) {
    let budget = format_bytes(accountant.memory_budget() as u64);
    match try_load(accountant, model, fixed) {
        Ok(Some(smaller)) => tracing::warn!(
            "the {budget} budget cannot hold Whisper {model} ({}) beside the take's buffers now; \
             pass --model {smaller} (it fits), or free memory",
            format_bytes(model.footprint() as u64)
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!("{e}"),
    }
}

/// Loads `model`'s stand-in into `accountant` beside `fixed` bytes of audio, allowing a
/// smaller Whisper model; `Some(smaller)` when one had to be taken instead. Everything is
/// released on return.
fn try_load(
    accountant: &Arc<Accountant>,
    model: Model,
    fixed: u64,
) -> Result<Option<Model>, ModelError> {
    let fixed = usize::try_from(fixed).unwrap_or(usize::MAX);
    let _take = Accountant::try_reserve_in(accountant.clone(), Category::Audio, fixed).ok();
    let config = ModelConfig {
        idle_timeout: Duration::ZERO,
        allow_downsize: true,
    };
    let models = ModelManager::<()>::new(accountant.clone(), config);
    for m in Model::ALL.into_iter().filter(|&m| m <= model) {
        models.register(ModelSpec::whisper(m), || Ok(()), |()| Ok(()))?;
    }
    let loaded = models.load(model.name())?;
    Ok(loaded
        .downsized_from
        .and_then(|_| Model::ALL.into_iter().find(|m| m.name() == loaded.name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use w4l_core::budget::{Budget, MIB};

    #[test]
    fn a_model_that_does_not_fit_names_the_one_that_does() {
        let full = Arc::new(Budget::for_model(Model::Small).accountant());
        assert_eq!(try_load(&full, Model::Small, MIB as u64), Ok(None));
        assert_eq!(full.memory_used(), 0, "everything released");
        // Capped to 400 MiB by the machine: base (250 MiB) fits, small (500 MiB) does not.
        let capped = Arc::new(Accountant::new(400 * MIB, 0));
        assert_eq!(
            try_load(&capped, Model::Small, MIB as u64),
            Ok(Some(Model::Base))
        );
        let tiny = Arc::new(Accountant::new(100 * MIB, 0));
        let e = try_load(&tiny, Model::Base, MIB as u64).expect_err("nothing fits");
        assert!(e.to_string().contains("choose a smaller model"), "{e}");
    }
}
