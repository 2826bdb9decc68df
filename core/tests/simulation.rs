//! Runs the scripted one-hour scenario and compares the full transition log with the golden
//! file `tests/data/scenario.log`. Regenerate it with `W4L_BLESS=1 cargo test -p w4l-core
//! --test simulation` — and read the diff before committing it.

use std::fmt::Write as _;

use w4l_core::policy::{Action, Level, Policy, PolicyConfig, PolicyParams, Reason};
use w4l_core::scenario;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/scenario.log");

fn rendered() -> String {
    let mut out = String::new();
    for t in scenario::transitions() {
        writeln!(out, "{t}").unwrap();
    }
    out
}

#[test]
fn scenario_log_matches_golden() {
    let got = rendered();
    if std::env::var_os("W4L_BLESS").is_some() {
        std::fs::write(GOLDEN, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(GOLDEN)
        .expect("golden log missing: run with W4L_BLESS=1 to create it");
    if got != want {
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            if g != w {
                panic!("line {}: got\n  {g}\nwant\n  {w}", i + 1);
            }
        }
        panic!(
            "line count differs: got {} want {}",
            got.lines().count(),
            want.lines().count()
        );
    }
}

#[test]
fn scenario_is_deterministic_and_ends_normal() {
    assert_eq!(rendered(), rendered());
    let mut run = scenario::transitions();
    let _ = run.by_ref().count();
    assert_eq!(run.policy().level(), Level::Normal);
    assert_eq!(
        run.policy().log().dropped() + run.policy().log().len() as u64,
        scenario::transitions().count() as u64
    );
}

#[test]
fn scenario_story_holds() {
    let ts: Vec<_> = scenario::transitions().collect();
    let in_phase = |lo: u64, hi: u64| {
        ts.iter()
            .filter(move |t| (lo * 1000..hi * 1000).contains(&t.at_ms))
    };
    // Idle: nothing.
    assert_eq!(in_phase(0, 300).count(), 0);
    // Noisy plateau: exactly one step up, none down.
    let plateau: Vec<_> = in_phase(300, 900).collect();
    assert_eq!(plateau.len(), 1, "{plateau:?}");
    assert_eq!(
        (plateau[0].from, plateau[0].to),
        (Level::Normal, Level::Elevated)
    );
    // The recording's growth: prediction escalates before the measured threshold.
    assert!(
        in_phase(1200, 1400)
            .any(|t| matches!(t.reason, Reason::Predicted { .. }) && t.to == Level::Critical)
    );
    // Short spikes never reach Critical.
    assert!(in_phase(1800, 1950).all(|t| t.to != Level::Critical));
    assert!(in_phase(1950, 2000).any(|t| t.to == Level::Critical));
    // Forced cleanups are logged without a level change.
    assert_eq!(
        ts.iter()
            .filter(|t| matches!(t.reason, Reason::Forced(_)))
            .count(),
        2
    );
    // The leak: Critical by prediction; measured pressure never reaches 90 %.
    assert!(
        in_phase(2400, 2700)
            .any(|t| t.to == Level::Critical && matches!(t.reason, Reason::Predicted { .. }))
    );
    // Ends quiet.
    assert_eq!(in_phase(2800, 3600).count(), 0);
}

/// The script itself: one reading a second for an hour, the phases the policy reacts to, what each action frees.
#[test]
fn the_script_and_its_constants() {
    assert_eq!(scenario::PERIOD_MS, 1_000);
    assert_eq!(scenario::readings().count(), scenario::STEPS as usize);
    assert_eq!(scenario::BUDGET, 512 << 20);
    assert_eq!(scenario::RSS_LIMIT, 1 << 30);
    assert_eq!(scenario::reading(0).available, scenario::AVAILABLE);
    assert_eq!(scenario::reading(2250).available, scenario::LOW_AVAILABLE);
    assert!(
        scenario::FORCE_AT_S
            .iter()
            .all(|&s| scenario::reading(s).force)
    );
    {
        let r = scenario::reading(1370);
        assert_eq!(r.now_ms, 1_370_000);
        assert_eq!(r.budget, scenario::BUDGET);
        assert_eq!(r.rss_limit, scenario::RSS_LIMIT);
        assert!(r.accounted > scenario::BUDGET / 100 * 94); // the recording is at its peak
    }
    {
        let mut it = scenario::readings();
        assert_eq!(it.next().unwrap().now_ms, 0);
        assert_eq!(it.last().unwrap().now_ms, 3_599_000);
    }
    assert_eq!(scenario::freed_by(Action::ReapTempFiles), 32 << 20);
    assert_eq!(scenario::freed_by(Action::RefuseNewRecordings), 0);
}

/// A run yields the logged transitions and keeps the policy to look at afterwards.
#[test]
fn runs_with_any_policy() {
    let lines: Vec<String> = scenario::transitions().map(|t| t.to_string()).collect();
    assert!(lines.iter().any(|l| l.contains("Normal->Elevated")));
    {
        let mut run = scenario::transitions();
        let _ = run.by_ref().count();
        assert_eq!(run.policy().level(), Level::Normal);
    }
    {
        let cfg = PolicyConfig::new(PolicyParams {
            horizon_ms: 0,
            ..PolicyParams::default()
        })
        .unwrap();
        let without_prediction = scenario::run(Policy::new(cfg)).count();
        assert!(without_prediction > 0);
    }
    assert!(scenario::transitions().count() > 10);
}
