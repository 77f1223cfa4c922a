//! A deterministic generator of malformed and extreme input: cron expressions
//! mutated token by token, schedule specs with extreme periods, offsets,
//! instants, zones and bounds, and job specs with extreme durations and
//! policies. Everything goes through the public parse and validate functions.
//! Nothing may panic; what compiles must answer with fires strictly after the
//! reference instant and within its bounds. The seed is fixed, so a failure
//! names a case that fails again.

use chrono::{DateTime, Utc};
use cronactor_actors::schedule::{
    preview_lines, DstPolicy, FoldPolicy, GapPolicy, NextFire, ScheduleKind, ScheduleSpec,
};
use cronactor_actors::{
    Backoff, InterruptedPolicy, JobSpec, MisfirePolicy, OverlapPolicy, RetryPolicy, MAX_JITTER,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

const SEED: u64 = 0x00C0_FFEE_2026;

/// Valid expressions to mutate.
const BASES: [&str; 14] = [
    "0 30 9 * * Mon-Fri",
    "*/15 * * * *",
    "0 0 0 L * *",
    "0 0 12 LW * ?",
    "0 0 12 15W * *",
    "0 0 9 ? * 5#3",
    "0 0 9 ? * FRIL",
    "0 0 0 1 1 * 2027-2030",
    "0 0 0 29 2 *",
    "0 30 2 * * *",
    "59 59 23 31 12 * 2099",
    "@daily",
    "0 0 0 L-3 JAN-MAR *",
    "1-59/7 */5 1,2,3 * * 0-7",
];

/// Tokens that are wrong, extreme or special somewhere.
const TOKENS: [&str; 48] = [
    "*",
    "?",
    "L",
    "W",
    "LW",
    "L-",
    "L-0",
    "L-30",
    "L-31",
    "#",
    "5#",
    "#5",
    "1#6",
    "0#1",
    "7L",
    "8L",
    "/",
    "*/",
    "*/0",
    "*/1",
    "*/60",
    "*/4294967296",
    "-",
    "5-",
    "-5",
    "5-2",
    ",",
    "1,,2",
    "0",
    "7",
    "23",
    "24",
    "31",
    "32",
    "59",
    "60",
    "61",
    "1969",
    "1970",
    "2099",
    "2100",
    "99999999999",
    "4294967296",
    "MON",
    "JAN",
    "Fri-Sun",
    "é",
    "٣",
];

const ZONES: [Option<&str>; 9] = [
    None,
    Some("UTC"),
    Some("America/New_York"),
    Some("Australia/Lord_Howe"),
    Some("Pacific/Chatham"),
    Some("Mars/Olympus"),
    Some(""),
    Some("utc"),
    Some("Etc/GMT+14"),
];

fn instants(rng: &mut StdRng) -> DateTime<Utc> {
    let fixed = [
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        DateTime::<Utc>::UNIX_EPOCH,
        "1800-01-01T00:00:00Z".parse().expect("instant"),
        "2026-03-08T07:00:00Z".parse().expect("instant"),
        "2099-12-31T23:59:59.999Z".parse().expect("instant"),
        "9999-12-31T23:59:59Z".parse().expect("instant"),
    ];
    if rng.random_bool(0.6) {
        fixed[rng.random_range(0..fixed.len())]
    } else {
        let secs = rng.random_range(-8_000_000_000_000i64..8_000_000_000_000);
        let nanos = rng.random_range(0..1_000_000_000u32);
        DateTime::from_timestamp(secs, nanos).unwrap_or_default()
    }
}

fn durations(rng: &mut StdRng) -> Duration {
    let fixed = [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_micros(999),
        Duration::from_millis(1),
        Duration::from_secs(1),
        MAX_JITTER,
        MAX_JITTER + Duration::from_nanos(1),
        Duration::from_secs(u64::MAX / 1000),
        Duration::from_millis(u64::MAX),
        Duration::MAX,
    ];
    if rng.random_bool(0.7) {
        fixed[rng.random_range(0..fixed.len())]
    } else {
        Duration::new(rng.random(), rng.random_range(0..1_000_000_000))
    }
}

fn millis(rng: &mut StdRng) -> u64 {
    let fixed = [
        0,
        1,
        2,
        999,
        1000,
        86_400_000,
        i64::MAX as u64,
        i64::MAX as u64 + 1,
        u64::MAX - 1,
        u64::MAX,
    ];
    if rng.random_bool(0.7) {
        fixed[rng.random_range(0..fixed.len())]
    } else {
        rng.random()
    }
}

/// A valid expression with one to three token-level mutations, or a string
/// of random characters.
fn cron_text(rng: &mut StdRng) -> String {
    if rng.random_bool(0.1) {
        let len = rng.random_range(0..24);
        return (0..len)
            .map(|_| {
                let pool = "0123456789*/,-#?LW@ \t\u{a0}éMONJAN";
                let chars: Vec<char> = pool.chars().collect();
                chars[rng.random_range(0..chars.len())]
            })
            .collect();
    }
    let base = BASES[rng.random_range(0..BASES.len())];
    let mut fields: Vec<String> = base.split_whitespace().map(str::to_owned).collect();
    for _ in 0..rng.random_range(1..=3) {
        let token = TOKENS[rng.random_range(0..TOKENS.len())].to_owned();
        let i = rng.random_range(0..fields.len());
        match rng.random_range(0..6) {
            0 => fields[i] = token,
            1 => fields.insert(i, token),
            2 if fields.len() > 1 => {
                fields.remove(i);
            }
            3 => fields[i].push_str(&token),
            4 => fields[i] = format!("{},{token}", fields[i]),
            _ => fields[i] = format!("{}/{token}", fields[i]),
        }
    }
    fields.join(" ")
}

/// Valid cron expressions, some with DST-sensitive times or rare matches.
const VALID_CRON: [&str; 5] = [
    "0 30 2 * * *",
    "*/7 * * * * *",
    "@yearly",
    "0 0 0 29 2 * 2096",
    "0 0 1 * * Sun",
];

fn schedule_spec(rng: &mut StdRng) -> ScheduleSpec {
    let mut spec = match rng.random_range(0..6) {
        0 | 1 => ScheduleSpec::cron(cron_text(rng)),
        5 => ScheduleSpec::cron(VALID_CRON[rng.random_range(0..VALID_CRON.len())]),
        2 => {
            let every = millis(rng);
            let offset = match rng.random_range(0..4) {
                0 => 0,
                1 => every.saturating_sub(1),
                2 => every,
                _ => millis(rng),
            };
            let mut spec = ScheduleSpec::every(Duration::from_millis(every))
                .offset(Duration::from_millis(offset));
            if rng.random_bool(0.3) {
                spec = spec.starting_at(instants(rng));
            }
            spec
        }
        3 => ScheduleSpec::every(durations(rng)),
        _ => ScheduleSpec::at(instants(rng)),
    };
    if let Some(tz) = ZONES[rng.random_range(0..ZONES.len())] {
        spec = spec.in_tz(tz);
    }
    if rng.random_bool(0.3) {
        spec = spec.dst(DstPolicy {
            gap: [GapPolicy::RunAtTransition, GapPolicy::Skip][rng.random_range(0..2)],
            fold: [FoldPolicy::First, FoldPolicy::Last, FoldPolicy::Both][rng.random_range(0..3)],
        });
    }
    if rng.random_bool(0.2) {
        spec = spec.not_before(instants(rng));
    }
    if rng.random_bool(0.2) {
        spec = spec.not_after(instants(rng));
    }
    if rng.random_bool(0.2) {
        spec = spec.max_fires([0, 1, 2, u64::MAX][rng.random_range(0..4)]);
    }
    // Extra cron expressions: a union for a cron schedule, refused for the
    // other kinds.
    for _ in 0..[0, 0, 0, 0, 1, 2][rng.random_range(0..6)] {
        spec = spec.or_cron(if rng.random_bool(0.5) {
            VALID_CRON[rng.random_range(0..VALID_CRON.len())].to_owned()
        } else {
            cron_text(rng)
        });
    }
    spec
}

/// Checks what a compiled schedule answers after `after`.
fn check_answers(spec: &ScheduleSpec, after: DateTime<Utc>) {
    let schedule = spec.compile(chrono_tz::UTC).expect("compiled before");
    let bounds = &spec.bounds;
    let within = |at: DateTime<Utc>| {
        assert!(at > after, "{spec}: {at} is not after {after}");
        assert!(
            bounds.not_before.is_none_or(|nb| at >= nb),
            "{spec}: {at} is before not_before"
        );
        assert!(
            bounds.not_after.is_none_or(|na| at <= na),
            "{spec}: {at} is after not_after"
        );
    };
    let next = schedule.next_after(after);
    if let Some(at) = next {
        within(at);
    }
    match schedule.next_fire(after, 0) {
        NextFire::At(at) => assert_eq!(Some(at), next, "{spec}"),
        NextFire::Exhausted => assert_eq!(next, None, "{spec}"),
    }
    let preview = schedule.preview(after, 3);
    // Rendering never fails either, even at the ends of the calendar.
    let lines = preview_lines(&preview);
    assert_eq!(lines.fires.len(), preview.len(), "{spec}");
    assert_eq!(preview.first().map(|f| f.at), next, "{spec}");
    for pair in preview.windows(2) {
        assert!(pair[0].at < pair[1].at, "{spec}: preview goes back");
    }
    for fire in &preview {
        within(fire.at);
    }
    if let ScheduleKind::Interval {
        every_ms,
        offset_ms,
    } = spec.kind
    {
        // Every fire is on the interval's grid.
        for fire in &preview {
            let ns = i128::from(fire.at.timestamp()) * 1_000_000_000
                + i128::from(fire.at.timestamp_subsec_nanos());
            let step = i128::from(every_ms) * 1_000_000;
            assert_eq!(
                (ns - i128::from(offset_ms) * 1_000_000).rem_euclid(step),
                0,
                "{spec}: {} is off the grid",
                fire.at
            );
        }
    }
}

#[test]
fn generated_schedule_specs_compile_or_fail_cleanly_and_fire_after_the_reference() {
    let mut rng = StdRng::seed_from_u64(SEED);
    let (mut compiled, mut refused, mut unions) = (0, 0, 0);
    for _ in 0..3000 {
        let spec = schedule_spec(&mut rng);
        assert!(!spec.describe().is_empty());
        match spec.compile(chrono_tz::UTC) {
            Ok(_) => {
                compiled += 1;
                unions += usize::from(!spec.also.is_empty());
                for _ in 0..2 {
                    check_answers(&spec, instants(&mut rng));
                }
            }
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty(), "{spec}");
            }
        }
    }
    // The generator covers both sides.
    assert!(compiled > 500 && refused > 500, "{compiled} / {refused}");
    assert!(unions > 30, "{unions}");
}

#[test]
fn an_interval_started_at_an_instant_first_fires_at_that_instant() {
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    for _ in 0..2000 {
        let every = millis(&mut rng);
        let start = instants(&mut rng);
        let spec = ScheduleSpec::every(Duration::from_millis(every)).starting_at(start);
        let Ok(schedule) = spec.compile(chrono_tz::UTC) else {
            assert_eq!(every, 0, "{spec}");
            continue;
        };
        // Whole milliseconds: the grid is anchored at the first millisecond
        // at or after the start.
        let floor = DateTime::from_timestamp_millis(start.timestamp_millis()).expect("in range");
        let first = if floor < start {
            match floor.checked_add_signed(chrono::Duration::milliseconds(1)) {
                Some(first) => first,
                None => continue,
            }
        } else {
            start
        };
        let before = DateTime::<Utc>::MIN_UTC;
        let last_day = DateTime::<Utc>::MAX_UTC - chrono::Duration::days(1);
        if start == before || first > last_day {
            continue;
        }
        let expected =
            (first.timestamp() >= DateTime::<Utc>::MIN_UTC.timestamp() + 86_400).then_some(first);
        let got = schedule.next_after(before);
        if expected.is_some() {
            assert_eq!(got, expected, "{spec}");
        } else {
            // In chrono's first day nothing fires: the first fire is later.
            assert!(got.is_none_or(|g| g > first), "{spec}");
        }
    }
}

fn retry(rng: &mut StdRng) -> RetryPolicy {
    let backoff = if rng.random_bool(0.5) {
        Backoff::Fixed(durations(rng))
    } else {
        let factors = [f64::NAN, f64::INFINITY, -1.0, 0.0, 0.5, 1.0, 2.0, 1e308];
        Backoff::Exponential {
            base: durations(rng),
            factor: factors[rng.random_range(0..factors.len())],
            cap: durations(rng),
        }
    };
    RetryPolicy::new([0, 1, 5, u32::MAX][rng.random_range(0..4)], backoff)
        .with_jitter(durations(rng))
}

#[test]
fn generated_job_specs_build_or_fail_cleanly_and_their_policies_never_panic() {
    let mut rng = StdRng::seed_from_u64(SEED ^ 2);
    let ids = [
        "",
        "a",
        "nightly-report",
        "a/b c?d#e",
        "é",
        "\u{7}",
        "line\nbreak",
    ];
    let long = "x".repeat(201);
    let (mut built, mut refused) = (0, 0);
    for _ in 0..3000 {
        // Mostly valid parts, so that the extreme ones are reached.
        let id = match rng.random_range(0..20) {
            0 => long.clone(),
            1..=4 => ids[rng.random_range(0..ids.len())].to_owned(),
            _ => "job".to_owned(),
        };
        let handler = if rng.random_bool(0.1) { " " } else { "h" };
        let schedule = if rng.random_bool(0.5) {
            schedule_spec(&mut rng)
        } else {
            ScheduleSpec::every(Duration::from_secs(60))
        };
        let mut b = JobSpec::builder(id, schedule, handler);
        if rng.random_bool(0.5) {
            b = b.jitter(durations(&mut rng));
        }
        if rng.random_bool(0.7) {
            b = b.retry(retry(&mut rng));
        }
        b = b
            .overlap(match rng.random_range(0..5) {
                0 => OverlapPolicy::Skip,
                1 => OverlapPolicy::Concurrent { max: None },
                2 => OverlapPolicy::Concurrent {
                    max: Some([0, 1, u32::MAX][rng.random_range(0..3)]),
                },
                3 => OverlapPolicy::Queue {
                    max: [0, 1, u32::MAX][rng.random_range(0..3)],
                },
                _ => OverlapPolicy::Replace,
            })
            .misfire(match rng.random_range(0..3) {
                0 => MisfirePolicy::Skip,
                1 => MisfirePolicy::FireOnce,
                _ => MisfirePolicy::FireAll {
                    max: [0, 1, u32::MAX][rng.random_range(0..3)],
                },
            })
            .interrupted(
                [InterruptedPolicy::Retry, InterruptedPolicy::Abandon][rng.random_range(0..2)],
            )
            .priority(rng.random());
        if rng.random_bool(0.5) {
            b = b.timeout(durations(&mut rng));
        }
        if rng.random_bool(0.5) {
            b = b.catch_up_window(durations(&mut rng));
        }
        if rng.random_bool(0.1) {
            b = b.pause_after_failures([0, 1, u32::MAX][rng.random_range(0..3)]);
        }
        if rng.random_bool(0.3) {
            b = b.listen(["", " ", "deploy"][rng.random_range(0..3)]);
        }
        if rng.random_bool(0.3) {
            b = b.tag(["", "db", "é"][rng.random_range(0..3)]);
        }
        match b.build() {
            Ok(spec) => {
                built += 1;
                // What the runtime computes from the policies must not panic.
                for attempt in [1, 2, 40, u32::MAX] {
                    for random in [0.0, 0.5, 1.0] {
                        let _ = spec.retry.next_delay(attempt, random);
                    }
                }
                let json = serde_json::to_string(&spec).expect("a valid spec serialises");
                let back: JobSpec = serde_json::from_str(&json).expect("and reads back");
                assert_eq!(back.id, spec.id);
            }
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    assert!(built > 100 && refused > 100, "{built} / {refused}");
}
