//! Unit tests of unions of cron expressions (`ScheduleSpec::or_cron`): their
//! fires, once per instant, across DST transitions under each policy, with
//! bounds and exclusions, their errors, and a fixed-seed comparison with the
//! members compiled alone.

use super::*;
use chrono::NaiveDateTime;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test instants are RFC 3339")
}

fn wall(s: &str) -> NaiveDateTime {
    s.parse().expect("test wall-clock times are ISO 8601")
}

fn fires(s: &Schedule, from: &str, n: usize) -> Vec<String> {
    s.preview(t(from), n)
        .iter()
        .map(|f| f.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .collect()
}

fn compile(spec: ScheduleSpec) -> Schedule {
    spec.compile(chrono_tz::UTC)
        .expect("test schedules are valid")
}

fn policy(gap: GapPolicy, fold: FoldPolicy) -> DstPolicy {
    DstPolicy { gap, fold }
}

#[test]
fn two_expressions_interleave() {
    // Weekdays at 09:00 and 17:30 in Berlin (CET, UTC+1 in January).
    let s = compile(
        ScheduleSpec::cron("0 0 9 * * Mon-Fri")
            .or_cron("0 30 17 * * Mon-Fri")
            .in_tz("Europe/Berlin"),
    );
    assert_eq!(
        fires(&s, "2026-01-08T12:00:00Z", 5),
        [
            "2026-01-08T16:30:00Z", // Thursday 17:30
            "2026-01-09T08:00:00Z", // Friday 09:00
            "2026-01-09T16:30:00Z",
            "2026-01-12T08:00:00Z", // Monday
            "2026-01-12T16:30:00Z",
        ]
    );
    // The order of the expressions does not matter.
    let swapped = compile(
        ScheduleSpec::cron("0 30 17 * * Mon-Fri")
            .or_cron("0 0 9 * * Mon-Fri")
            .in_tz("Europe/Berlin"),
    );
    assert_eq!(
        fires(&swapped, "2026-01-08T12:00:00Z", 5),
        fires(&s, "2026-01-08T12:00:00Z", 5)
    );
    assert!(s.is_fixed_time());
}

#[test]
fn an_instant_matched_by_several_expressions_fires_once() {
    let s = compile(
        ScheduleSpec::cron("0 0 * * * *")
            .or_cron("0 0 12 * * *")
            .or_cron("0 0 */6 * * *"),
    );
    assert_eq!(
        fires(&s, "2026-05-01T10:30:00Z", 3),
        [
            "2026-05-01T11:00:00Z",
            "2026-05-01T12:00:00Z",
            "2026-05-01T13:00:00Z"
        ]
    );
    assert_eq!(
        s.next_after(t("2026-05-01T12:00:00Z")),
        Some(t("2026-05-01T13:00:00Z"))
    );
}

#[test]
fn a_fixed_time_member_follows_the_gap_policy_and_the_other_real_time() {
    // New York springs forward on 2026-03-08 at 02:00 EST (07:00Z) to 03:00
    // EDT. 02:30 (fixed-time) and 02:45 (every hour at :45, not fixed-time)
    // do not exist that night.
    let spec = || {
        ScheduleSpec::cron("0 30 2 * * *")
            .or_cron("0 45 * * * *")
            .in_tz("America/New_York")
    };
    let moved = compile(spec());
    let preview = moved.preview(t("2026-03-08T06:00:00Z"), 3);
    let at: Vec<_> = preview.iter().map(|f| f.at).collect();
    assert_eq!(
        at,
        [
            t("2026-03-08T06:45:00Z"), // 01:45 EST
            t("2026-03-08T07:00:00Z"), // 02:30 moved to 03:00 EDT
            t("2026-03-08T07:45:00Z"), // 03:45 EDT: 02:45 is not moved
        ]
    );
    assert_eq!(preview[0].note, None);
    assert_eq!(
        preview[1].note,
        Some(DstNote::MovedFromGap {
            wanted: wall("2026-03-08T02:30:00")
        })
    );
    assert_eq!(preview[2].note, None);
    assert!(preview.iter().all(|f| f.skipped.is_empty()));

    let skipped = compile(spec().dst(policy(GapPolicy::Skip, FoldPolicy::First)));
    let preview = skipped.preview(t("2026-03-08T06:00:00Z"), 2);
    let at: Vec<_> = preview.iter().map(|f| f.at).collect();
    assert_eq!(at, [t("2026-03-08T06:45:00Z"), t("2026-03-08T07:45:00Z")]);
    // The gap is after the first fire: its note goes with the second one,
    // once, although the fixed-time member's search crossed it already.
    assert!(preview[0].skipped.is_empty(), "{preview:?}");
    assert_eq!(
        preview[1].skipped,
        [DstNote::SkippedInGap {
            wanted: wall("2026-03-08T02:30:00")
        }]
    );
}

#[test]
fn two_fixed_time_members_in_one_gap_are_one_fire_or_one_skip() {
    let spec = || {
        ScheduleSpec::cron("0 30 2 * * *")
            .or_cron("0 15 2 * * *")
            .in_tz("America/New_York")
    };
    // Both move to 03:00 EDT: one fire, with the first member's note.
    let moved = compile(spec());
    let preview = moved.preview(t("2026-03-08T05:00:00Z"), 2);
    assert_eq!(preview[0].at, t("2026-03-08T07:00:00Z"));
    assert_eq!(
        preview[0].note,
        Some(DstNote::MovedFromGap {
            wanted: wall("2026-03-08T02:30:00")
        })
    );
    assert_eq!(preview[1].at, t("2026-03-09T06:15:00Z")); // 02:15 EDT
                                                          // Both skipped: one note for the gap, with the earliest wanted time.
    let skipped = compile(spec().dst(policy(GapPolicy::Skip, FoldPolicy::First)));
    let preview = skipped.preview(t("2026-03-08T05:00:00Z"), 1);
    assert_eq!(preview[0].at, t("2026-03-09T06:15:00Z"));
    assert_eq!(
        preview[0].skipped,
        [DstNote::SkippedInGap {
            wanted: wall("2026-03-08T02:15:00")
        }]
    );
}

#[test]
fn a_fixed_time_member_follows_each_fold_policy_and_the_other_real_time() {
    // New York falls back on 2026-11-01 at 02:00 EDT (06:00Z) to 01:00 EST:
    // 01:00 to 01:59:59 occurs twice. 01:30 is fixed-time; every hour at :45
    // is not, so it fires on both passes whatever the policy.
    let spec = |fold| {
        ScheduleSpec::cron("0 30 1 * * *")
            .or_cron("0 45 * * * *")
            .in_tz("America/New_York")
            .dst(policy(GapPolicy::RunAtTransition, fold))
    };
    let cases = [
        (
            FoldPolicy::First,
            ["04:45", "05:30", "05:45", "06:45", "07:45"],
        ),
        (
            FoldPolicy::Last,
            ["04:45", "05:45", "06:30", "06:45", "07:45"],
        ),
        (
            FoldPolicy::Both,
            ["04:45", "05:30", "05:45", "06:30", "06:45"],
        ),
    ];
    for (fold, want) in cases {
        let s = compile(spec(fold));
        let want: Vec<String> = want
            .iter()
            .map(|hm| format!("2026-11-01T{hm}:00Z"))
            .collect();
        assert_eq!(fires(&s, "2026-11-01T04:00:00Z", 5), want, "{fold:?}");
        let preview = s.preview(t("2026-11-01T04:00:00Z"), 5);
        for fire in &preview {
            let first = fire.at < t("2026-11-01T06:00:00Z");
            let in_fold =
                fire.at >= t("2026-11-01T05:00:00Z") && fire.at < t("2026-11-01T07:00:00Z");
            let wanted = fire.local.naive_local();
            let note = match (in_fold, first) {
                (false, _) => None,
                (true, true) => Some(DstNote::FoldFirst { wanted }),
                (true, false) => Some(DstNote::FoldSecond { wanted }),
            };
            assert_eq!(fire.note, note, "{fold:?} {}", fire.at);
        }
    }
}

#[test]
fn max_fires_counts_the_fires_of_the_union() {
    let s = compile(
        ScheduleSpec::cron("0 0 9 * * *")
            .or_cron("0 30 17 * * *")
            .or_cron("0 0 9 * * *")
            .max_fires(3),
    );
    assert_eq!(
        fires(&s, "2026-01-01T00:00:00Z", 10),
        [
            "2026-01-01T09:00:00Z",
            "2026-01-01T17:30:00Z",
            "2026-01-02T09:00:00Z"
        ]
    );
    assert_eq!(
        s.next_fire(t("2026-01-01T09:00:00Z"), 1),
        NextFire::At(t("2026-01-01T17:30:00Z"))
    );
    assert_eq!(
        s.next_fire(t("2026-01-02T09:00:00Z"), 3),
        NextFire::Exhausted
    );
    assert_eq!(
        s.preview_remaining(t("2026-01-01T09:00:00Z"), 1, 10).len(),
        2
    );
}

#[test]
fn bounds_and_exclusions_apply_to_the_union() {
    // Friday 2026-01-09 to Tuesday 2026-01-13, weekends excluded.
    let s = compile(
        ScheduleSpec::cron("0 0 9 * * *")
            .or_cron("0 30 17 * * *")
            .exclude("* * * * * Sat,Sun")
            .not_before(t("2026-01-09T12:00:00Z"))
            .not_after(t("2026-01-13T09:00:00Z")),
    );
    assert_eq!(
        fires(&s, "2026-01-01T00:00:00Z", 10),
        [
            "2026-01-09T17:30:00Z",
            "2026-01-12T09:00:00Z",
            "2026-01-12T17:30:00Z",
            "2026-01-13T09:00:00Z",
        ]
    );
    // An exclusion that matches one member's times only leaves the other.
    let s = compile(
        ScheduleSpec::cron("0 0 9 * * *")
            .or_cron("0 30 17 * * *")
            .exclude("* * 17 * * *"),
    );
    assert_eq!(
        fires(&s, "2026-01-01T00:00:00Z", 2),
        ["2026-01-01T09:00:00Z", "2026-01-02T09:00:00Z"]
    );
    // A member with no later match leaves the others.
    let s = compile(ScheduleSpec::cron("0 0 9 * * * 2020").or_cron("0 0 10 1 1 *"));
    assert_eq!(
        fires(&s, "2019-12-31T00:00:00Z", 3),
        [
            "2020-01-01T09:00:00Z",
            "2020-01-01T10:00:00Z",
            "2020-01-02T09:00:00Z"
        ]
    );
    assert_eq!(
        s.next_after(t("2020-12-31T09:00:00Z")),
        Some(t("2021-01-01T10:00:00Z"))
    );
}

#[test]
fn bad_extra_expressions_are_refused_with_their_text_and_field() {
    let err = |also: &str| {
        ScheduleSpec::cron("0 0 9 * * *")
            .or_cron("0 30 17 * * *")
            .or_cron(also)
            .compile(chrono_tz::UTC)
            .expect_err("extra expression is invalid")
    };
    match err("0 30 25 * * *") {
        ScheduleError::InvalidAlso { expr, reason } => {
            assert_eq!(expr, "0 30 25 * * *");
            assert!(reason.contains("field hour has value \"25\""), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    for bad in ["@reboot", "* *", ""] {
        assert!(
            matches!(err(bad), ScheduleError::InvalidAlso { ref expr, .. } if expr == bad),
            "{bad:?}"
        );
    }
    // The first expression keeps its own errors.
    assert!(matches!(
        ScheduleSpec::cron("0 60 9 * * *")
            .or_cron("0 0 9 * * *")
            .compile(chrono_tz::UTC),
        Err(ScheduleError::InvalidCron {
            field: "minute",
            ..
        })
    ));
    // Only a cron schedule takes more expressions.
    let interval = ScheduleSpec::every(Duration::from_secs(60)).or_cron("0 0 9 * * *");
    assert_eq!(
        interval.compile(chrono_tz::UTC).map(|_| ()),
        Err(ScheduleError::AlsoWithoutCron {
            kind: "an interval"
        })
    );
    let once = ScheduleSpec::at(t("2030-01-01T00:00:00Z")).or_cron("0 0 9 * * *");
    let e = once.compile(chrono_tz::UTC).expect_err("one-shot");
    assert_eq!(
        e.to_string(),
        "extra cron expressions (also) need a cron schedule, not a one-shot"
    );
    assert_eq!(
        once.to_string(),
        r#"once at 2030-01-01T00:00:00Z or cron "0 0 9 * * *""#
    );
}

#[test]
fn repeated_expressions_are_allowed_and_compile_to_a_plain_schedule() {
    let plain = compile(ScheduleSpec::cron("@daily"));
    for spec in [
        ScheduleSpec::cron("@daily").or_cron("@daily"),
        ScheduleSpec::cron("@daily")
            .or_cron("0 0 0 * * *")
            .or_cron("0 0 * * *"),
    ] {
        let s = compile(spec.clone());
        assert!(matches!(s.inner.rule, Rule::Cron { .. }), "{spec}");
        assert_eq!(
            fires(&s, "2026-01-01T12:00:00Z", 3),
            fires(&plain, "2026-01-01T12:00:00Z", 3)
        );
        // The spec keeps what was written.
        assert!(!s.spec().also.is_empty());
    }
    let union = compile(
        ScheduleSpec::cron("@daily")
            .or_cron("@daily")
            .or_cron("@hourly"),
    );
    assert!(matches!(&union.inner.rule, Rule::Union(u) if u.any_fixed_time()));

    // The same sets, one fixed-time (its hour field does not start with
    // `*`) and one following real time, are two members: on a fall-back
    // night the real-time one fires at both 01:00, the fixed-time one at the
    // first (FoldPolicy::First), and the union at both.
    let s = compile(
        ScheduleSpec::cron("0 0 0-23 * * *")
            .or_cron("0 0 * * * *")
            .in_tz("America/New_York"),
    );
    assert!(matches!(s.inner.rule, Rule::Union(_)));
    assert_eq!(
        fires(&s, "2026-11-01T04:30:00Z", 3),
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T07:00:00Z"
        ]
    );
}

#[test]
fn a_spec_with_extra_expressions_round_trips_and_shows_them() {
    let spec = ScheduleSpec::cron("0 0 9 * * Mon-Fri")
        .or_cron("0 30 17 * * Mon-Fri")
        .in_tz("Europe/Berlin")
        .exclude("* * * 25 12 *");
    let json = serde_json::to_string(&spec).expect("json");
    assert!(json.contains(r#""also":["0 30 17 * * Mon-Fri"]"#), "{json}");
    let back: ScheduleSpec = serde_json::from_str(&json).expect("roundtrip");
    assert_eq!(back, spec);
    assert_eq!(
        spec.to_string(),
        r#"cron "0 0 9 * * Mon-Fri" or "0 30 17 * * Mon-Fri" in Europe/Berlin, except "* * * 25 12 *""#
    );
    // Without extra expressions the JSON has no `also` key.
    let plain = serde_json::to_string(&ScheduleSpec::cron("0 0 9 * * *")).expect("json");
    assert!(!plain.contains("also"), "{plain}");
}

#[test]
fn a_union_matches_the_earliest_of_its_members_compiled_alone() {
    let zones = [
        "UTC",
        "America/New_York",
        "Europe/Berlin",
        "Australia/Lord_Howe",
        "Pacific/Apia",
        "America/Havana",
        "Asia/Tehran",
        "America/Santiago",
    ];
    // Fixed-time and real-time expressions, some near DST transitions.
    let exprs = [
        "0 30 2 * * *",
        "0 0 1,2,3 * * *",
        "0 15 0 * * Sun",
        "0 45 * * * *",
        "0 */20 * * * *",
        "*/30 * 2 * * *",
        "0 0 0 1 * *",
        "0 30 1 L * *",
        "0 0 12 * * Mon-Fri",
        "0 59 23 * * *",
        "0 0 9 * * * 2015-2018",
        "@daily",
    ];
    let gaps = [GapPolicy::RunAtTransition, GapPolicy::Skip];
    let folds = [FoldPolicy::First, FoldPolicy::Last, FoldPolicy::Both];
    let mut rng = StdRng::seed_from_u64(test_seed(0x5eed_0a11));
    let (lo, hi) = (
        t("2010-01-01T00:00:00Z").timestamp(),
        t("2030-01-01T00:00:00Z").timestamp(),
    );
    let (mut compared, mut gaps_compared) = (0, 0);
    for _ in 0..400 {
        let zone = zones[rng.random_range(0..zones.len())];
        let dst = policy(
            gaps[rng.random_range(0..gaps.len())],
            folds[rng.random_range(0..folds.len())],
        );
        let n = rng.random_range(2..=4);
        let members: Vec<&str> = (0..n)
            .map(|_| exprs[rng.random_range(0..exprs.len())])
            .collect();
        let alone: Vec<Schedule> = members
            .iter()
            .map(|e| compile(ScheduleSpec::cron(*e).in_tz(zone).dst(dst)))
            .collect();
        let mut spec = ScheduleSpec::cron(members[0]).in_tz(zone).dst(dst);
        for e in &members[1..] {
            spec = spec.or_cron(*e);
        }
        let union = compile(spec.clone());
        assert_eq!(
            union.is_fixed_time(),
            alone.iter().any(Schedule::is_fixed_time),
            "{spec}"
        );
        // Half of the starts in the weeks of the year's DST transitions.
        let start = match rng.random_range(0..4) {
            0 | 1 => rng.random_range(lo..hi),
            season => {
                let year = rng.random_range(2010..2030);
                let (from, to) = if season == 2 {
                    ("02-25", "04-10")
                } else {
                    ("09-25", "11-10")
                };
                let bound = |md: &str| t(&format!("{year}-{md}T00:00:00Z")).timestamp();
                rng.random_range(bound(from)..bound(to))
            }
        };
        let mut cursor = DateTime::from_timestamp(start, 0).expect("instant");
        for _ in 0..12 {
            let want = alone.iter().filter_map(|s| s.next_after(cursor)).min();
            let got = union.preview(cursor, 1);
            assert_eq!(got.first().map(|f| f.at), want, "{spec} after {cursor}");
            assert_eq!(union.next_after(cursor), want, "{spec} after {cursor}");
            let Some(at) = want else { break };
            // The fire's note is the first note among the members firing then.
            let note = alone
                .iter()
                .filter_map(|s| s.preview(cursor, 1).into_iter().next())
                .filter(|f| f.at == at)
                .find_map(|f| f.note);
            assert_eq!(got[0].note, note, "{spec} at {at}");
            compared += 1;
            cursor = at;
        }
        // And from up to three days before one of the zone's spring-forward
        // transitions between 2010 and 2030, if it has any.
        let springs: Vec<i64> = ZoneTable::of(union.timezone())
            .transitions()
            .iter()
            .filter(|tr| tr.after > tr.before && (lo..hi).contains(&tr.at))
            .map(|tr| tr.at)
            .collect();
        if !springs.is_empty() {
            let spring = springs[rng.random_range(0..springs.len())];
            let start = spring - rng.random_range(0..3 * 86_400);
            gaps_compared += skipped_gaps_agree(&spec, &union, &alone, start);
        }
    }
    assert_covered("compared", compared, 3_000);
    assert_covered("gaps compared", gaps_compared, 20);
}

/// The gaps skipped by a union's next fires are those skipped by its
/// members up to the union's last fire, each once, with the earliest wanted
/// time, oldest first. Returns how many skipped gaps it compared.
fn skipped_gaps_agree(
    spec: &ScheduleSpec,
    union: &Schedule,
    alone: &[Schedule],
    start: i64,
) -> usize {
    let start = DateTime::from_timestamp(start, 0).expect("instant");
    let fires = union.preview(start, 100);
    let Some(last) = fires.last().map(|f| f.at) else {
        return 0;
    };
    let zone = ZoneTable::of(union.timezone());
    let gap_of = |note: &DstNote| match note {
        DstNote::SkippedInGap { wanted } => {
            zone.gap_holding(wanted.and_utc().timestamp())
                .expect("a skipped time is in a gap")
                .at
        }
        other => panic!("{spec}: not a skip: {other:?}"),
    };
    let mut want: Vec<(i64, DstNote)> = Vec::new();
    for member in alone {
        let mut cursor = start;
        loop {
            // A member with no fire after the union's last one may have
            // skipped gaps that it reports with no fire: leave the case out.
            let Some(fire) = member.preview(cursor, 1).into_iter().next() else {
                return 0;
            };
            want.extend(fire.skipped.iter().map(|n| (gap_of(n), *n)));
            if fire.at > last {
                break;
            }
            cursor = fire.at;
        }
    }
    want.retain(|(gap, _)| *gap <= last.timestamp());
    want.sort_by_key(|(gap, note)| (*gap, note.to_string()));
    want.dedup_by_key(|(gap, _)| *gap);
    let got: Vec<(i64, DstNote)> = fires
        .iter()
        .flat_map(|f| f.skipped.iter().map(|n| (gap_of(n), *n)))
        .collect();
    assert_eq!(got, want, "{spec} after {start}");
    got.len()
}

/// With exclusions, bounds and `max_fires`, a union's preview is the merge
/// of its members' fires (each compiled alone with the same zone, policy,
/// exclusions and time bounds), each instant once, cut at `max_fires`; each
/// fire carries the first note among the members firing then. Fixed seed.
#[test]
fn a_union_with_exclusions_and_bounds_is_the_merge_of_its_members() {
    let zones = [
        "UTC",
        "America/New_York",
        "Europe/London",
        "Australia/Lord_Howe",
        "America/Santiago",
        "Asia/Tehran",
    ];
    let exprs = [
        "0 30 2 * * *",
        "0 0 1,2,3 * * *",
        "0 45 * * * *",
        "0 */20 * * * *",
        "*/30 * 1-2 * * *",
        "0 0 0 * * Sun",
        "0 30 1 L * *",
        "0 0 12 * * Mon-Fri",
        "@daily",
        "0 0 9 * * * 2016-2019",
    ];
    let exclusions = [
        "* * * * * Sat,Sun",
        "* * 2 * * *",
        "* * 1 * * *",
        "* 0-29 * * * *",
        "* * * 1 * *",
        "* * * * 3 *",
        "0 0 12 * * *",
    ];
    let gaps = [GapPolicy::RunAtTransition, GapPolicy::Skip];
    let folds = [FoldPolicy::First, FoldPolicy::Last, FoldPolicy::Both];
    let mut rng = StdRng::seed_from_u64(test_seed(0x0a15_e4c1));
    let (lo, hi) = (
        t("2012-01-01T00:00:00Z").timestamp(),
        t("2028-01-01T00:00:00Z").timestamp(),
    );
    let mut compared = 0;
    for _ in 0..120 {
        let zone = zones[rng.random_range(0..zones.len())];
        let dst = policy(
            gaps[rng.random_range(0..gaps.len())],
            folds[rng.random_range(0..folds.len())],
        );
        let start = match rng.random_range(0..3) {
            0 => rng.random_range(lo..hi),
            season => {
                let year = rng.random_range(2012..2028);
                let (from, to) = if season == 1 {
                    ("03-01", "04-10")
                } else {
                    ("09-25", "11-10")
                };
                let bound = |md: &str| t(&format!("{year}-{md}T00:00:00Z")).timestamp();
                rng.random_range(bound(from)..bound(to))
            }
        };
        let start = DateTime::from_timestamp(start, 0).expect("instant");
        // The same zone, policy, exclusions and time bounds for every member.
        let base = |expr: &str| ScheduleSpec::cron(expr).in_tz(zone).dst(dst);
        let excluded: Vec<&str> = (0..rng.random_range(0..=2))
            .map(|_| exclusions[rng.random_range(0..exclusions.len())])
            .collect();
        let not_before = rng
            .random_bool(0.3)
            .then(|| start + chrono::Duration::hours(rng.random_range(0..72)));
        let not_after = rng
            .random_bool(0.3)
            .then(|| start + chrono::Duration::hours(rng.random_range(72..24 * 20)));
        let max_fires = rng.random_bool(0.3).then(|| rng.random_range(1..40));
        let shape = |mut spec: ScheduleSpec| {
            for e in &excluded {
                spec = spec.exclude(*e);
            }
            if let Some(nb) = not_before {
                spec = spec.not_before(nb);
            }
            if let Some(na) = not_after {
                spec = spec.not_after(na);
            }
            spec
        };
        let members: Vec<&str> = (0..rng.random_range(2..=3))
            .map(|_| exprs[rng.random_range(0..exprs.len())])
            .collect();
        let alone: Vec<Schedule> = members.iter().map(|e| compile(shape(base(e)))).collect();
        let mut spec = shape(base(members[0]));
        for e in &members[1..] {
            spec = spec.or_cron(*e);
        }
        if let Some(max) = max_fires {
            spec = spec.max_fires(max);
        }
        let union = compile(spec.clone());

        const N: usize = 40;
        // Each member's first N fires, merged; an instant once, with the
        // first note among the members firing then.
        let mut want: Vec<(DateTime<Utc>, Option<DstNote>)> = Vec::new();
        for member in &alone {
            for fire in member.preview(start, N) {
                match want.iter_mut().find(|(at, _)| *at == fire.at) {
                    Some((_, note)) => *note = note.or(fire.note),
                    None => want.push((fire.at, fire.note)),
                }
            }
        }
        want.sort_by_key(|(at, _)| *at);
        // Past the N-th fire of a member, its later fires are not known.
        let known_until = alone
            .iter()
            .filter_map(|m| {
                let p = m.preview(start, N);
                (p.len() == N).then(|| p[N - 1].at)
            })
            .min();
        want.retain(|(at, _)| known_until.is_none_or(|k| *at <= k));
        want.truncate(max_fires.map_or(N, |m| (m as usize).min(N)));

        let got: Vec<(DateTime<Utc>, Option<DstNote>)> = union
            .preview(start, want.len().max(1))
            .iter()
            .map(|f| (f.at, f.note))
            .collect();
        if want.is_empty() {
            let more = max_fires.is_none() && alone.iter().all(|m| m.next_after(start).is_none());
            if more {
                assert!(got.is_empty(), "{spec} after {start}: {got:?}");
            }
            continue;
        }
        assert_eq!(got, want, "{spec} after {start}");
        // next_fire agrees with the preview, fire by fire.
        let mut cursor = start;
        for (fired, (at, _)) in want.iter().enumerate() {
            assert_eq!(
                union.next_fire(cursor, fired as u64),
                NextFire::At(*at),
                "{spec} after {cursor}"
            );
            cursor = *at;
        }
        if let Some(max) = max_fires.filter(|m| (*m as usize) <= want.len()) {
            assert_eq!(union.next_fire(cursor, max), NextFire::Exhausted, "{spec}");
        }
        compared += want.len();
    }
    assert_covered("compared", compared, 2_000);
}
