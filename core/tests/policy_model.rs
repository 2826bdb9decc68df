//! Property tests of the cleanup policy: hysteresis, dwell, action order, determinism and
//! configuration validation, over random noisy reading sequences.

use proptest::prelude::*;
use w4l_core::policy::trend::{
    Forecast, HISTORY_LEN, LIMIT_PPM, MAX_EXACT_SPAN_MS, MIN_SAMPLES, Trend,
};
use w4l_core::policy::{
    Action, Level, MAX_PRESSURE_PPM, Policy, PolicyConfig, PolicyParams, Reading, Step,
};

/// One scripted input: time advance, rss pressure (‰ of the limit), system available
/// (MiB, 0 = not observed), force, and feedback to give if actions were emitted.
#[derive(Clone, Debug)]
struct Input {
    dt_ms: u64,
    rss_permille: u64,
    available_mib: u64,
    force: bool,
    feedback: Option<u64>,
}

const LIMIT: u64 = 1_000_000_000;

fn input() -> impl Strategy<Value = Input> {
    (
        0u64..5_000,
        0u64..1_300,
        prop_oneof![4 => Just(0u64), 1 => 100u64..2_000],
        prop::bool::weighted(0.03),
        prop::option::of(0u64..2 * LIMIT),
    )
        .prop_map(
            |(dt_ms, rss_permille, available_mib, force, feedback)| Input {
                dt_ms,
                rss_permille,
                available_mib,
                force,
                feedback,
            },
        )
}

/// Noisy walk: a slowly drifting base plus per-sample noise, as readings arrive.
fn noisy_inputs() -> impl Strategy<Value = Vec<Input>> {
    (
        prop::collection::vec((0u64..3_000, -30i64..=30, 0u64..=120), 1..400),
        0i64..1_000,
    )
        .prop_map(|(raw, start)| {
            let mut base = start;
            raw.into_iter()
                .enumerate()
                .map(|(i, (dt, drift, noise))| {
                    base = (base + drift).clamp(0, 1_200);
                    Input {
                        dt_ms: dt,
                        rss_permille: (base as u64 + noise).saturating_sub(60),
                        available_mib: 0,
                        force: i % 97 == 13,
                        feedback: if i % 3 == 0 { Some(dt * 1_000) } else { None },
                    }
                })
                .collect()
        })
}

fn valid_params() -> impl Strategy<Value = PolicyParams> {
    (
        (1u16..200, 1u16..150, 1u16..150, 1u16..150),
        (1u16..100, 1u16..100, 1u16..100),
        (0u32..3_000, 0u32..3_000, 0u32..3_000),
        (1u32..20_000, 0u32..10_000, 1u32..5_000, 0u32..120_000),
        (1usize..4, 0u64..(1 << 30), 0u16..=1000),
    )
        .prop_filter_map(
            "thresholds fit in 1000‰",
            |(
                (e0, g1, g2, _),
                (b0, b1, b2),
                (c0, c1, c2),
                (dwell, calm, cool, horizon),
                (pm, reserve, ineff),
            )| {
                // enter[i] = e0 + gaps; exit[i] = enter[i] - band, kept increasing.
                let enter = [300 + e0, 300 + e0 + g1, 300 + e0 + g1 + g2];
                if enter[2] > 1000 {
                    return None;
                }
                let exit = [enter[0] - b0, enter[1] - b1.min(g1), enter[2] - b2.min(g2)];
                if !(exit[0] < exit[1] && exit[1] < exit[2]) {
                    return None;
                }
                Some(PolicyParams {
                    enter_permille: enter,
                    exit_permille: exit,
                    confirm_ms: [c0, c0 + c1, c0 + c1 + c2],
                    dwell_ms: dwell,
                    calm_ms: calm,
                    cooldown_ms: cool,
                    horizon_ms: horizon,
                    predict_max: Level::ALL[pm],
                    available_reserve: reserve,
                    ineffective_permille: ineff,
                })
            },
        )
}

fn run(config: PolicyConfig, inputs: &[Input]) -> (Vec<(u64, Step)>, Policy) {
    let mut p = Policy::new(config);
    let mut now = 0u64;
    let mut out = Vec::with_capacity(inputs.len());
    for i in inputs {
        now += i.dt_ms;
        let r = Reading {
            rss: i.rss_permille * (LIMIT / 1000),
            rss_limit: LIMIT,
            available: if i.available_mib == 0 {
                u64::MAX
            } else {
                i.available_mib << 20
            },
            force: i.force,
            ..Reading::new(now)
        };
        let s = p.step(&r);
        if !s.actions.is_empty()
            && let Some(f) = i.feedback
        {
            p.feedback(f);
        }
        out.push((now, s));
    }
    (out, p)
}

fn exit_permille(cfg: &PolicyConfig, level: Level) -> u32 {
    cfg.exit_ppm(level) / 1000
}

fn check_invariants(
    cfg: &PolicyConfig,
    steps: &[(u64, Step)],
    policy: &Policy,
) -> Result<(), TestCaseError> {
    let dwell = u64::from(cfg.params().dwell_ms);
    let mut level = Level::Normal;
    let mut last_change: Option<u64> = None;
    let mut logged = 0u64;
    for (now, s) in steps {
        if let Some(t) = s.transition {
            logged += 1;
            prop_assert_eq!(t.at_ms, *now);
            prop_assert_eq!(t.from, level);
            prop_assert_eq!(t.to, s.level);
            if t.to < t.from {
                // Down: one level at a time, after the dwell, below the exit threshold.
                prop_assert_eq!(t.from.down(), Some(t.to));
                let since = now - last_change.unwrap_or(0);
                prop_assert!(
                    since >= dwell,
                    "stepped down {since} ms after a change (dwell {dwell})"
                );
                prop_assert!(
                    u32::from(s.pressure.permille) < exit_permille(cfg, t.from),
                    "stepped down from {:?} at {}‰",
                    t.from,
                    s.pressure.permille
                );
            }
            if t.is_level_change() {
                last_change = Some(*now);
            }
        } else {
            prop_assert_eq!(s.level, level, "level changed without a transition");
        }
        // Actions: strictly ordered, at most up to the level (Elevated for a forced cleanup
        // at Normal), and always a whole level's set.
        let acts = s.actions.as_slice();
        prop_assert!(
            acts.windows(2)
                .all(|w| w[0] < w[1] && w[0].level() <= w[1].level())
        );
        let cap = s.level.max(Level::Elevated);
        prop_assert!(acts.iter().all(|a| a.level() <= cap));
        if let Some(top) = acts.last() {
            let whole = top.level().actions();
            prop_assert_eq!(acts, whole.as_slice());
        }
        prop_assert!(acts.iter().all(|a| Action::ALL.contains(a)));
        level = s.level;
    }
    prop_assert_eq!(policy.level(), level);
    prop_assert_eq!(policy.log().len() as u64 + policy.log().dropped(), logged);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn default_policy_invariants_on_noisy_walks(inputs in noisy_inputs()) {
        let cfg = PolicyConfig::default();
        let (steps, policy) = run(cfg, &inputs);
        check_invariants(&cfg, &steps, &policy)?;
    }

    #[test]
    fn random_policy_invariants_on_random_inputs(
        params in valid_params(),
        inputs in prop::collection::vec(input(), 1..300),
    ) {
        let cfg = PolicyConfig::new(params).expect("generated params are valid");
        let (steps, policy) = run(cfg, &inputs);
        check_invariants(&cfg, &steps, &policy)?;
    }

    #[test]
    fn deterministic(params in valid_params(), inputs in prop::collection::vec(input(), 1..200)) {
        let cfg = PolicyConfig::new(params).unwrap();
        let (a, pa) = run(cfg, &inputs);
        let (b, pb) = run(cfg, &inputs);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(pa, pb.clone());
        let la: Vec<String> = pb.log().iter().map(|t| t.to_string()).collect();
        let lb: Vec<String> = pb.log().iter().map(|t| t.to_string()).collect();
        prop_assert_eq!(la, lb);
    }

    #[test]
    fn noise_inside_the_band_never_changes_level(
        center in 510u64..580, seed in any::<u64>(), n in 20usize..300, start_elevated in any::<bool>(),
    ) {
        // Pressure noise confined to (exit, enter) of Elevated, arriving at 1 Hz: from
        // Elevated it never leaves, from Normal it never enters (default config, prediction on).
        let mut x = seed | 1;
        let mut inputs: Vec<Input> = Vec::new();
        if start_elevated {
            inputs.push(Input { dt_ms: 0, rss_permille: 650, available_mib: 0, force: false, feedback: None });
        }
        inputs.extend((0..n).map(|_| {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            Input { dt_ms: 1_000, rss_permille: (center + x % 20).clamp(501, 599),
                    available_mib: 0, force: false, feedback: None }
        }));
        let want = if start_elevated { Level::Elevated } else { Level::Normal };
        let (steps, _) = run(PolicyConfig::default(), &inputs);
        let skip = usize::from(start_elevated);
        prop_assert!(steps.iter().skip(skip).all(|(_, s)| s.transition.is_none() && s.level == want));
    }

    #[test]
    fn arbitrary_params_validate_without_panicking(
        enter in any::<[u16; 3]>(), exit in any::<[u16; 3]>(), confirm in any::<[u32; 3]>(),
        dwell in any::<u32>(), calm in any::<u32>(), cool in any::<u32>(), horizon in any::<u32>(),
        pm in 0usize..4, reserve in any::<u64>(), ineff in any::<u16>(),
    ) {
        let params = PolicyParams {
            enter_permille: enter, exit_permille: exit, confirm_ms: confirm, dwell_ms: dwell,
            calm_ms: calm, cooldown_ms: cool, horizon_ms: horizon, predict_max: Level::ALL[pm],
            available_reserve: reserve, ineffective_permille: ineff,
        };
        let ordered = (0..3).all(|i| exit[i] > 0 && exit[i] < enter[i] && enter[i] <= 1000)
            && enter[0] < enter[1] && enter[1] < enter[2]
            && exit[0] < exit[1] && exit[1] < exit[2]
            && confirm[0] <= confirm[1] && confirm[1] <= confirm[2]
            && dwell > 0 && cool > 0 && ineff <= 1000 && pm > 0;
        prop_assert_eq!(PolicyConfig::new(params).is_ok(), ordered);
    }

    #[test]
    fn swapped_thresholds_are_rejected(params in valid_params(), which in 0usize..3) {
        let mut bad = params;
        std::mem::swap(&mut bad.enter_permille[which], &mut bad.exit_permille[which]);
        prop_assert!(PolicyConfig::new(bad).is_err());
    }

    #[test]
    fn extreme_readings_never_panic(
        raw in prop::collection::vec(
            (any::<u64>(), any::<usize>(), any::<usize>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<bool>(), any::<u64>()),
            1..(HISTORY_LEN * 4),
        ),
    ) {
        let mut p = Policy::default();
        for (now_ms, accounted, budget, rss, rss_limit, available, force, fb) in raw {
            let s = p.step(&Reading { now_ms, accounted, budget, rss, rss_limit, available, force });
            p.feedback(fb);
            let _ = s.transition.map(|t| t.to_string());
            prop_assert!(s.pressure.permille <= 2000);
        }
    }
}

/// The properties above are not vacuous: a fixed noisy walk goes up and comes back down.
#[test]
fn noisy_walk_exercises_up_and_down() {
    let inputs: Vec<Input> = (0..600u64)
        .map(|i| {
            let base = if (100..300).contains(&i) { 950 } else { 300 };
            Input {
                dt_ms: 700 + (i * 7919) % 900,
                rss_permille: base + (i * 104_729) % 80,
                available_mib: 0,
                force: i == 50,
                feedback: Some(1),
            }
        })
        .collect();
    let cfg = PolicyConfig::default();
    let (steps, policy) = run(cfg, &inputs);
    check_invariants(&cfg, &steps, &policy).unwrap();
    let ts: Vec<_> = steps.iter().filter_map(|(_, s)| s.transition).collect();
    assert!(ts.iter().any(|t| t.to == Level::Critical));
    assert_eq!(ts.iter().filter(|t| t.to < t.from).count(), 3, "{ts:?}");
    assert_eq!(policy.level(), Level::Normal);
}

#[test]
fn levels_actions_and_log_lines() {
    use w4l_core::policy::{Pressure, Reason, Source, Transition};
    assert_eq!(Level::ALL.map(Level::index), [0, 1, 2, 3]);
    assert_eq!(
        Level::ALL.map(Level::name),
        ["Normal", "Elevated", "High", "Critical"]
    );
    assert_eq!(
        (Level::High.up(), Level::Critical.up()),
        (Some(Level::Critical), None)
    );
    assert_eq!(
        (Level::Elevated.down(), Level::Normal.down()),
        (Some(Level::Normal), None)
    );
    // Each level asks for its own actions and every lower level's, cheapest first.
    assert!(Level::Normal.actions().is_empty());
    assert_eq!(
        Level::Elevated.actions().as_slice(),
        [Action::ReleaseIdleBuffers, Action::ReapTempFiles]
    );
    let high = Level::High.actions();
    assert_eq!(high.len(), 4);
    assert!(high.contains(Action::SpillOldestAudio) && !high.contains(Action::DropOldestAudio));
    assert_eq!(
        Level::Critical.actions().iter().collect::<Vec<_>>(),
        Action::ALL
    );
    assert!(
        Action::ALL
            .windows(2)
            .all(|w| w[0] < w[1] && w[0].level() <= w[1].level())
    );
    assert_eq!(Action::UnloadModel.level(), Level::High);
    assert_eq!(
        [Source::Accounted, Source::Rss, Source::Available].map(Source::name),
        ["accounted", "rss", "available"]
    );

    let p = Pressure {
        permille: 712,
        source: Source::Rss,
    };
    let line = |from, to, reason| {
        Transition {
            at_ms: 125_000,
            from,
            to,
            reason,
        }
        .to_string()
    };
    assert_eq!(
        line(Level::Normal, Level::Elevated, Reason::Pressure(p)),
        "t=125000ms Normal->Elevated pressure=712‰ rss"
    );
    assert_eq!(
        line(
            Level::Elevated,
            Level::High,
            Reason::Predicted {
                pressure: p,
                eta_ms: 45_000
            }
        ),
        "t=125000ms Elevated->High pressure=712‰ rss predicted eta=45000ms"
    );
    assert_eq!(
        line(
            Level::High,
            Level::Critical,
            Reason::Ineffective {
                freed: 1024,
                wanted: 4096
            }
        ),
        "t=125000ms High->Critical ineffective freed=1024B wanted=4096B"
    );
    let forced = Transition {
        at_ms: 0,
        from: Level::High,
        to: Level::High,
        reason: Reason::Forced(p),
    };
    assert!(!forced.is_level_change());
    assert_eq!(
        forced.to_string(),
        "t=0ms High->High forced pressure=712‰ rss"
    );
}

#[test]
fn readings_pressure_and_the_first_step() {
    let r = Reading::new(5_000);
    assert_eq!(
        (r.now_ms, r.budget, r.rss_limit, r.available, r.force),
        (5_000, 0, 0, u64::MAX, false)
    );
    let mut p = Policy::default();
    assert_eq!(
        (p.level(), p.config().params().horizon_ms),
        (Level::Normal, 60_000)
    );
    let pr = p.pressure(&Reading {
        accounted: 300,
        budget: 1000,
        rss: 400,
        rss_limit: 1000,
        ..Reading::new(0)
    });
    assert_eq!(
        (pr.permille, pr.source),
        (400, w4l_core::policy::Source::Rss)
    );
    // 95 %: Elevated at once; High and Critical need confirmation.
    let s = p.step(&Reading {
        accounted: 95,
        budget: 100,
        ..Reading::new(0)
    });
    assert_eq!(
        (s.level, s.pressure.permille, s.actions.len()),
        (Level::Elevated, 950, 2)
    );
    assert!(s.transition.is_some_and(|t| t.is_level_change()));
}

#[test]
fn the_log_keeps_the_newest_entries_and_counts_the_rest() {
    let mut p = Policy::default();
    assert!(p.log().is_empty() && p.log().iter().next().is_none());
    p.step(&Reading {
        force: true,
        ..Reading::new(0)
    });
    assert_eq!((p.log().len(), p.log().dropped()), (1, 0));
    assert_eq!(
        p.log().iter().next().unwrap().to_string(),
        "t=0ms Normal->Normal forced pressure=0‰ accounted"
    );
    for i in 1..40 {
        p.step(&Reading {
            force: true,
            ..Reading::new(i * 2_000)
        });
    }
    assert_eq!(
        (p.log().len(), p.log().dropped()),
        (w4l_core::policy::LOG_CAPACITY, 8)
    );
    assert_eq!(p.log().iter().next().unwrap().at_ms, 16_000);
    assert_eq!(p.log().iter().next_back().unwrap().at_ms, 78_000);
}

#[test]
fn config_validation_and_thresholds() {
    use w4l_core::policy::ConfigError;
    let ok = PolicyParams::default();
    let cfg = PolicyConfig::new(ok).unwrap();
    assert_eq!(cfg, PolicyConfig::default());
    assert_eq!(cfg.params(), &ok);
    assert_eq!(
        (
            cfg.enter_ppm(Level::High),
            cfg.exit_ppm(Level::Elevated),
            cfg.confirm_ms(Level::Critical)
        ),
        (750_000, 500_000, 3_000)
    );
    assert_eq!(
        (
            cfg.enter_ppm(Level::Normal),
            cfg.exit_ppm(Level::Normal),
            cfg.confirm_ms(Level::Normal)
        ),
        (0, 0, 0)
    );
    assert!(
        PolicyConfig::new(PolicyParams {
            horizon_ms: 0,
            ..ok
        })
        .is_ok(),
        "no prediction"
    );
    let cases = [
        (
            PolicyParams {
                exit_permille: [600, 650, 800],
                ..ok
            },
            ConfigError::ExitNotBelowEnter(Level::Elevated),
        ),
        (
            PolicyParams {
                exit_permille: [0, 650, 800],
                ..ok
            },
            ConfigError::ExitZero(Level::Elevated),
        ),
        (
            PolicyParams {
                enter_permille: [600, 590, 900],
                exit_permille: [500, 550, 800],
                ..ok
            },
            ConfigError::EnterNotIncreasing(Level::High),
        ),
        (
            PolicyParams {
                exit_permille: [500, 500, 800],
                ..ok
            },
            ConfigError::ExitNotIncreasing(Level::High),
        ),
        (
            PolicyParams {
                enter_permille: [600, 750, 1001],
                ..ok
            },
            ConfigError::EnterAboveLimit(Level::Critical),
        ),
        (
            PolicyParams {
                confirm_ms: [0, 1_000, 999],
                ..ok
            },
            ConfigError::ConfirmNotIncreasing(Level::Critical),
        ),
        (PolicyParams { dwell_ms: 0, ..ok }, ConfigError::ZeroDwell),
        (
            PolicyParams {
                cooldown_ms: 0,
                ..ok
            },
            ConfigError::ZeroCooldown,
        ),
        (
            PolicyParams {
                ineffective_permille: 1001,
                ..ok
            },
            ConfigError::IneffectiveAboveLimit,
        ),
        (
            PolicyParams {
                predict_max: Level::Normal,
                ..ok
            },
            ConfigError::PredictMaxNormal,
        ),
    ];
    for (params, err) in cases {
        assert_eq!(PolicyConfig::new(params), Err(err));
        assert!(!err.to_string().is_empty());
    }
}

// --- The trend estimator against an exact i128 reference ---------------------------------

/// The least-squares fit in exact `i128` arithmetic (the estimator's original form): x in
/// ms relative to the oldest sample of the window, y in ppm; `None` when `den <= 0`.
fn reference_forecast(samples: &[(u64, u32)]) -> Option<Forecast> {
    let window = &samples[samples.len().saturating_sub(HISTORY_LEN)..];
    if window.len() < MIN_SAMPLES {
        return None;
    }
    let t0 = window[0].0;
    // (slope ppm/s, fitted, eta) of a sub-window; None when den <= 0.
    let fit = |pts: &[(u64, u32)]| -> Option<(i64, u32, Option<u64>)> {
        let n = pts.len() as i128;
        let (mut sx, mut sy, mut sxx, mut sxy) = (0i128, 0i128, 0i128, 0i128);
        let mut x_last = 0i128;
        for &(t, y) in pts {
            let x = i128::from(t.saturating_sub(t0));
            let y = i128::from(y);
            sx += x;
            sy += y;
            sxx += x * x;
            sxy += x * y;
            x_last = x;
        }
        let num = n * sxy - sx * sy;
        let den = n * sxx - sx * sx;
        if den <= 0 {
            return None;
        }
        let nden = n * den;
        let fitted_num = sy * den + num * (n * x_last - sx);
        let slope = i64::try_from(num * 1000 / den).unwrap();
        let fitted = u32::try_from((fitted_num / nden).max(0)).unwrap_or(u32::MAX);
        let eta = (num > 0).then(|| {
            let remaining = i128::from(LIMIT_PPM) * nden - fitted_num;
            u64::try_from((remaining / (n * num)).max(0)).unwrap()
        });
        Some((slope, fitted, eta))
    };
    let (slope, fitted, eta) = fit(window)?;
    let recent = fit(&window[window.len() - MIN_SAMPLES..]).and_then(|(_, _, eta)| eta);
    Some(Forecast {
        slope_ppm_per_s: slope,
        fitted_ppm: fitted,
        eta_ms: eta,
        recent_eta_ms: recent,
    })
}

/// An offset in `0..=MAX_EXACT_SPAN_MS`, often at the extremes.
fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0u64),
        1 => Just(MAX_EXACT_SPAN_MS),
        3 => 0..=MAX_EXACT_SPAN_MS,
    ]
}

/// A pressure in `0..=MAX_PRESSURE_PPM`, often at the extremes.
fn pressure() -> impl Strategy<Value = u32> {
    prop_oneof![
        1 => Just(0u32),
        1 => Just(MAX_PRESSURE_PPM),
        3 => 0..=MAX_PRESSURE_PPM,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Windows spanning at most `MAX_EXACT_SPAN_MS` with pressures up to
    /// `MAX_PRESSURE_PPM` (everything the policy feeds at 1 Hz and 0.5 Hz) are fitted
    /// exactly as in `i128`, including worst-case magnitudes and out-of-order times.
    #[test]
    fn trend_matches_exact_reference(
        base in prop_oneof![Just(0u64), 0..u64::MAX / 2],
        points in prop::collection::vec((offset(), pressure()), 1..40),
        monotonic in any::<bool>(),
    ) {
        let mut points = points;
        if monotonic {
            let mut sorted: Vec<u64> = points.iter().map(|p| p.0).collect();
            sorted.sort_unstable();
            for (p, t) in points.iter_mut().zip(sorted) {
                p.0 = t;
            }
        }
        let samples: Vec<(u64, u32)> = points.iter().map(|&(x, y)| (base + x, y)).collect();
        let mut trend = Trend::new();
        for &(t, y) in &samples {
            trend.push(t, y);
        }
        prop_assert_eq!(trend.forecast(), reference_forecast(&samples));
    }

    /// Wider windows (slow sampling, gaps) are fitted on rounded times: the slope stays
    /// within a small relative error of the exact one, and nothing panics on any input.
    #[test]
    fn trend_wide_windows_stay_close(
        gaps in prop::collection::vec(1u64..10_000_000, 15),
        slope_ppm_per_s in 1u32..10_000,
        extreme in prop::collection::vec((any::<u64>(), any::<u32>()), 16),
    ) {
        let mut trend = Trend::new();
        let mut t = 0u64;
        for (i, gap) in gaps.iter().enumerate() {
            let y = 100_000 + (t / 1000) as u128 * u128::from(slope_ppm_per_s);
            trend.push(t, u32::try_from(y.min(u128::from(MAX_PRESSURE_PPM))).unwrap());
            if i < 15 {
                t += gap;
            }
        }
        let y = 100_000 + (t / 1000) as u128 * u128::from(slope_ppm_per_s);
        trend.push(t, u32::try_from(y.min(u128::from(MAX_PRESSURE_PPM))).unwrap());
        let f = trend.forecast().unwrap();
        if t / 1000 * u64::from(slope_ppm_per_s) + 100_000 <= u64::from(MAX_PRESSURE_PPM) {
            // A straight line (up to the 1 ms rounding of t / 1000): the slope is close.
            let want = f64::from(slope_ppm_per_s);
            let got = f.slope_ppm_per_s as f64;
            prop_assert!((got - want).abs() <= want * 2e-3 + 2.0, "{} vs {}", got, want);
        }
        let mut trend = Trend::new();
        for &(t, y) in &extreme {
            trend.push(t, y);
            let _ = trend.forecast();
        }
    }
}
