//! Load, unload and user functions that panic. In a process of their own: the panic hook's
//! backtrace (with `RUST_BACKTRACE=1`) allocates megabytes, which would disturb the library's
//! tests that compare RSS readings.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use w4l::memory::models::{ManualClock, ModelConfig, ModelManager, ModelSpec, ModelStatus};
use w4l_core::accountant::{Accountant, Category};
use w4l_core::budget::MIB;

fn manager() -> Arc<ModelManager<String>> {
    let accountant = Arc::new(Accountant::new(1000 * MIB, 0));
    let clock = Arc::new(ManualClock::new(0));
    Arc::new(ModelManager::new(accountant, ModelConfig::default()).with_clock(clock))
}

#[test]
fn a_panicking_load_or_unload_function_is_caught() {
    let models = manager();
    models
        .register(
            ModelSpec::declared("p", MIB),
            || panic!("bad weights"),
            |_| Ok(()),
        )
        .unwrap();
    models
        .register(
            ModelSpec::declared("q", MIB),
            || Ok(String::new()),
            |_| panic!("bad unload"),
        )
        .unwrap();
    let e = models.load("p").unwrap_err();
    assert!(e.to_string().contains("it panicked (bad weights)"), "{e}");
    // The manager is not stuck: another load runs.
    models.load("q").unwrap();
    assert_eq!(models.unload("q").unwrap(), MIB);
    assert_eq!(models.stats().unload_failures, 1);
    assert_eq!(models.accountant().used(Category::Model), 0);
}

#[test]
fn a_panicking_user_leaves_the_model_unused_and_unloadable() {
    let models = manager();
    let unloads = Arc::new(AtomicUsize::new(0));
    let counted = unloads.clone();
    models
        .register(
            ModelSpec::declared("a", 100 * MIB),
            || Ok("a".to_owned()),
            move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
        )
        .unwrap();
    let user = models.clone();
    let outcome = catch_unwind(AssertUnwindSafe(move || {
        user.with("a", |_| panic!("inference bug"))
    }));
    assert!(outcome.is_err());
    assert!(matches!(
        models.status("a"),
        Some(ModelStatus::Loaded { users: 0, .. })
    ));
    assert_eq!(models.unload("a").unwrap(), 100 * MIB);
    assert_eq!(
        unloads.load(Ordering::SeqCst),
        1,
        "the unload function got the model back"
    );
}
