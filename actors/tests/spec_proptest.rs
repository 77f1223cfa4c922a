//! Property tests over whole user input: any schedule spec (kind, extra
//! expressions, zone name, DST policy, bounds, exclusions) either compiles
//! or is refused, and a compiled schedule answers within its bounds without
//! panicking; retry and misfire policies keep their bounds and accounting
//! for any parameters.

use chrono::{DateTime, Utc};
use cronactor_actors::policy::MisfireDecision;
use cronactor_actors::schedule::{
    preview_lines, Bounds, DstPolicy, FoldPolicy, GapPolicy, ScheduleKind, ScheduleSpec,
};
use cronactor_actors::{Backoff, MisfirePolicy, RetryPolicy};
use proptest::prelude::*;
use std::time::Duration;

/// Any instant chrono can hold, with chrono's limits and the years around
/// now more likely.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        Just(DateTime::<Utc>::MIN_UTC),
        Just(DateTime::<Utc>::MAX_UTC),
        (any::<i64>(), 0..1_000_000_000u32).prop_map(|(s, n)| {
            DateTime::from_timestamp(s % 8_300_000_000_000, n).unwrap_or_default()
        }),
        (0..5_000_000_000i64, 0..1_000_000_000u32)
            .prop_map(|(s, n)| DateTime::from_timestamp(s, n).expect("in range")),
    ]
}

fn cron_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9A-Za-z*/,#?@ LW-]{0,40}",
        "([0-9*/,#?LW-]{1,6} ){4,6}[0-9*/,#?LW-]{1,6}",
        prop::sample::select(vec![
            "* * * * * *",
            "0 30 2 * * *",
            "0 0 0 29 2 *",
            "0 */15 1 * * *",
            "0 0 0 * * * 1970-1980",
            "* * * 25 12 *",
            "* * * * * Sat,Sun",
            "@daily",
        ])
        .prop_map(String::from),
    ]
}

fn zone() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        any::<String>().prop_map(Some),
        prop::sample::select(vec![
            "UTC",
            "America/New_York",
            "America/Santiago",
            "Asia/Beirut",
            "Australia/Lord_Howe",
            "Pacific/Apia",
            "Pacific/Kiritimati",
            "Antarctica/Troll",
        ])
        .prop_map(|z| Some(z.to_string())),
    ]
}

fn kind() -> impl Strategy<Value = ScheduleKind> {
    prop_oneof![
        cron_text().prop_map(ScheduleKind::Cron),
        (any::<u64>(), any::<u64>()).prop_map(|(every_ms, offset_ms)| ScheduleKind::Interval {
            every_ms,
            offset_ms
        }),
        (1..100_000_000u64, any::<u64>()).prop_map(|(every_ms, o)| ScheduleKind::Interval {
            every_ms,
            offset_ms: o % every_ms
        }),
        instant().prop_map(ScheduleKind::Once),
    ]
}

fn spec() -> impl Strategy<Value = ScheduleSpec> {
    (
        kind(),
        prop::collection::vec(cron_text(), 0..3),
        zone(),
        (any::<bool>(), 0..3usize),
        (
            prop::option::of(instant()),
            prop::option::of(instant()),
            prop::option::of(any::<u64>()),
        ),
        prop::collection::vec(cron_text(), 0..3),
    )
        .prop_map(
            |(kind, also, tz, (skip, fold), (not_before, not_after, max_fires), exclude)| {
                ScheduleSpec {
                    kind,
                    also,
                    tz,
                    dst: DstPolicy {
                        gap: if skip {
                            GapPolicy::Skip
                        } else {
                            GapPolicy::RunAtTransition
                        },
                        fold: [FoldPolicy::First, FoldPolicy::Last, FoldPolicy::Both][fold],
                    },
                    bounds: Bounds {
                        not_before,
                        not_after,
                        max_fires,
                    },
                    exclude,
                }
            },
        )
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0..100_000u64, 0..1_000_000_000u32).prop_map(|(s, n)| Duration::new(s, n)),
        (any::<u64>(), 0..1_000_000_000u32).prop_map(|(s, n)| Duration::new(s, n)),
        // Not exact as f64 seconds.
        ((1u64 << 53)..(1 << 60)).prop_map(Duration::from_secs),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any spec compiles or is refused; a compiled one answers strictly
    /// after its start, within its bounds, in order, and shows its fires.
    #[test]
    fn any_spec_compiles_or_is_refused_and_answers_within_its_bounds(
        spec in spec(),
        after in instant(),
        fired in any::<u64>(),
    ) {
        let _ = spec.to_string();
        let Ok(schedule) = spec.compile(chrono_tz::UTC) else {
            return Ok(());
        };
        if let Some(next) = schedule.next_after(after) {
            prop_assert!(next > after);
            prop_assert!(spec.bounds.not_before.is_none_or(|nb| next >= nb));
            prop_assert!(spec.bounds.not_after.is_none_or(|na| next <= na));
        }
        let _ = schedule.next_fire(after, fired);
        let preview = schedule.preview(after, 3);
        prop_assert!(preview.len() <= 3);
        prop_assert!(spec.bounds.max_fires.is_none_or(|max| preview.len() as u64 <= max));
        let mut previous = after;
        for fire in &preview {
            prop_assert!(fire.at > previous);
            prop_assert_eq!(fire.local, fire.at.with_timezone(&schedule.timezone()).fixed_offset());
            previous = fire.at;
        }
        prop_assert_eq!(preview_lines(&preview).fires.len(), preview.len());
        let _ = schedule.preview_remaining(after, fired, 2);
    }

    /// A retry's delay is at most the cap (or the fixed delay) plus the
    /// jitter, whatever the attempt count, factor or random draw.
    #[test]
    fn retry_delays_stay_within_their_cap_and_jitter(
        max_retries in any::<u32>(),
        base in duration(),
        cap in duration(),
        factor in prop_oneof![any::<f64>(), 1.0..4.0f64],
        fixed in any::<bool>(),
        jitter in duration(),
        attempt in any::<u32>(),
        random in prop_oneof![any::<f64>(), 0.0..=1.0f64, Just(1.0)],
    ) {
        let backoff = if fixed {
            Backoff::Fixed(base)
        } else {
            Backoff::Exponential { base, factor, cap }
        };
        let policy = RetryPolicy::new(max_retries, backoff).with_jitter(jitter);
        let delay = policy.next_delay(attempt, random);
        prop_assert_eq!(delay.is_some(), attempt <= max_retries);
        let Some(delay) = delay else {
            return Ok(());
        };
        let longest = if fixed { base } else { cap };
        if fixed || (factor.is_finite() && factor >= 1.0 && cap >= base) {
            prop_assert!(delay <= longest.saturating_add(jitter), "{delay:?}");
        }
    }

    /// Every due slot, and every uncounted one, is run, skipped or
    /// coalesced exactly once; runs are oldest first, only the last on time.
    #[test]
    fn misfire_plans_account_for_every_slot(
        mut due in prop::collection::vec(instant(), 0..8),
        uncounted in 0..1_000_000u64,
        now in instant(),
        threshold in duration(),
        window in prop::option::of(duration()),
        max in any::<u32>(),
        which in 0..3usize,
    ) {
        due.sort();
        let policy = [
            MisfirePolicy::Skip,
            MisfirePolicy::FireOnce,
            MisfirePolicy::FireAll { max },
        ][which];
        let plan = policy.plan(&due, uncounted, now, threshold, window);
        let total = plan.runs.len() as u64 + plan.skipped + plan.coalesced;
        prop_assert_eq!(total, due.len() as u64 + uncounted);
        prop_assert!(plan.runs.windows(2).all(|w| w[0].0 <= w[1].0));
        let on_time = plan
            .runs
            .iter()
            .position(|(_, d)| *d == MisfireDecision::OnTime);
        prop_assert!(on_time.is_none_or(|i| i + 1 == plan.runs.len()));
    }
}
