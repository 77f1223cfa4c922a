//! Unit tests of exclusions (`ScheduleSpec::exclude`): their wall-clock
//! matching across DST transitions, their errors, their bounds, and the jumps
//! over excluded runs checked against a plain search that tests every
//! candidate.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test instants are RFC 3339")
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

#[test]
fn weekends_are_skipped_by_an_interval_in_its_zone() {
    // Every 6 hours in UTC, excluding Saturday and Sunday in Tokyo (UTC+9).
    let s = compile(
        ScheduleSpec::every(Duration::from_secs(6 * 3600))
            .in_tz("Asia/Tokyo")
            .exclude("* * * * * Sat,Sun"),
    );
    // Friday 2026-03-06 15:00 Tokyo is 06:00Z; Saturday in Tokyo starts at
    // 15:00Z on Friday, and Monday at 15:00Z on Sunday.
    assert_eq!(
        fires(&s, "2026-03-06T05:00:00Z", 3),
        [
            "2026-03-06T06:00:00Z",
            "2026-03-06T12:00:00Z",
            "2026-03-08T18:00:00Z"
        ]
    );
}

#[test]
fn an_excluded_hour_holds_on_both_passes_of_a_fall_back() {
    // Every 15 minutes in New York, never in the 1 o'clock hour: on
    // 2026-11-01 it occurs twice (EDT, then EST), and both are excluded.
    let s = compile(
        ScheduleSpec::cron("0 */15 * * * *")
            .in_tz("America/New_York")
            .exclude("* * 1 * * *"),
    );
    assert_eq!(
        fires(&s, "2026-11-01T04:30:00Z", 3),
        [
            "2026-11-01T04:45:00Z", // 00:45 EDT
            "2026-11-01T07:00:00Z", // 02:00 EST
            "2026-11-01T07:15:00Z",
        ]
    );
}

#[test]
fn a_fall_back_turning_the_clock_out_of_an_excluded_minute_fires_again() {
    // Every minute in New York except minute 59 of each hour: 01:59 EDT is
    // excluded, then the clock turns back to 01:00 EST, which fires; the
    // jump over 01:59 must stop at the transition, not at 02:00 EST.
    let s = compile(
        ScheduleSpec::every(Duration::from_secs(60))
            .in_tz("America/New_York")
            .exclude("* 59 * * * *"),
    );
    assert_eq!(
        fires(&s, "2026-11-01T05:57:30Z", 3),
        [
            "2026-11-01T05:58:00Z", // 01:58 EDT
            "2026-11-01T06:00:00Z", // 01:00 EST (01:59 EDT excluded)
            "2026-11-01T06:01:00Z",
        ]
    );
}

#[test]
fn an_excluded_day_with_a_spring_forward_ends_at_the_next_local_midnight() {
    // New York springs forward on 2026-03-08: the day is 23 hours long, and
    // the next day starts at 04:00Z, not 05:00Z.
    let s = compile(
        ScheduleSpec::every(Duration::from_secs(15 * 60))
            .in_tz("America/New_York")
            .exclude("* * * 8 3 *"),
    );
    assert_eq!(
        fires(&s, "2026-03-08T04:50:00Z", 2),
        ["2026-03-09T04:00:00Z", "2026-03-09T04:15:00Z"]
    );
}

#[test]
fn a_day_excluded_in_a_zone_that_skipped_it_costs_nothing() {
    // Samoa skipped 2011-12-30 entirely, from UTC-10 to UTC+14. Daily at
    // 10:00 local, except the 31st of December: the 29th fires, the 30th
    // does not exist, the 31st is excluded, then January 1st (20:00Z on the
    // 31st).
    let s = compile(
        ScheduleSpec::cron("0 0 10 * * *")
            .in_tz("Pacific/Apia")
            .exclude("* * * 31 12 *"),
    );
    assert_eq!(
        fires(&s, "2011-12-29T00:00:00Z", 2),
        ["2011-12-29T20:00:00Z", "2011-12-31T20:00:00Z"]
    );
}

#[test]
fn excluded_times_are_not_counted_in_max_fires() {
    let s = compile(
        ScheduleSpec::cron("0 0 * * * *")
            .exclude("* * 1-22 * * *")
            .max_fires(3),
    );
    assert_eq!(
        fires(&s, "2026-01-01T00:30:00Z", 10),
        [
            "2026-01-01T23:00:00Z",
            "2026-01-02T00:00:00Z",
            "2026-01-02T23:00:00Z"
        ]
    );
    assert_eq!(
        s.next_fire(t("2026-01-02T23:00:00Z"), 3),
        NextFire::Exhausted
    );
}

#[test]
fn an_excluded_one_shot_never_fires() {
    let s = compile(ScheduleSpec::at(t("2026-12-25T12:00:00Z")).exclude("* * * 25 12 *"));
    assert_eq!(s.next_after(t("2026-12-01T00:00:00Z")), None);
    let kept = compile(ScheduleSpec::at(t("2026-12-24T12:00:00Z")).exclude("* * * 25 12 *"));
    assert_eq!(
        kept.next_after(t("2026-12-01T00:00:00Z")),
        Some(t("2026-12-24T12:00:00Z"))
    );
}

#[test]
fn exclusions_that_leave_no_fire_end_the_schedule() {
    // Every Monday, except Mondays: 401 years of weekly candidates.
    let s = compile(ScheduleSpec::cron("0 0 9 * * Mon").exclude("* * * * * Mon"));
    assert_eq!(s.next_after(t("2026-01-01T00:00:00Z")), None);
    // A minutely job excluded at second 0: every candidate fails, and the
    // search stops after a million of them.
    let s = compile(ScheduleSpec::cron("0 * * * * *").exclude("0 * * * * *"));
    assert_eq!(s.next_after(t("2026-01-01T00:00:00Z")), None);
    // A year field bounds the exclusion: the schedule fires again after it.
    let s = compile(ScheduleSpec::cron("0 0 9 1 1 *").exclude("* * * * * * 2027-2030"));
    assert_eq!(
        s.next_after(t("2026-06-01T00:00:00Z")),
        Some(t("2031-01-01T09:00:00Z"))
    );
}

#[test]
fn bad_exclusions_are_refused_with_their_text_and_field() {
    let err = |ex: &str| {
        ScheduleSpec::cron("0 0 9 * * *")
            .exclude(ex)
            .compile(chrono_tz::UTC)
            .expect_err("exclusion is invalid")
    };
    match err("* * 25 * * *") {
        ScheduleError::InvalidExclusion { expr, reason } => {
            assert_eq!(expr, "* * 25 * * *");
            assert!(reason.contains("field hour has value \"25\""), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        err("@reboot"),
        ScheduleError::InvalidExclusion { .. }
    ));
    assert!(matches!(err("* *"), ScheduleError::InvalidExclusion { .. }));
    for always in ["* * * * * *", "* * * * *", "* * * ? * *"] {
        match err(always) {
            ScheduleError::InvalidExclusion { reason, .. } => {
                assert!(reason.contains("matches every time"), "{always}: {reason}")
            }
            other => panic!("{always}: {other:?}"),
        }
    }
    // The zone of the schedule applies: an unknown zone is its own error.
    assert!(matches!(
        ScheduleSpec::cron("0 0 9 * * *")
            .in_tz("Mars/Olympus")
            .exclude("* * * 25 12 *")
            .compile(chrono_tz::UTC),
        Err(ScheduleError::UnknownTimeZone(_))
    ));
}

#[test]
fn an_exclusion_whose_day_fields_cover_every_day_is_refused() {
    // Written without `*`, these still match every day of every month:
    // the schedule could never fire, which must be said at compile.
    for always in [
        "* * * 1-31 * *",
        "* * * * * 0-6",
        "* * * * * SUN-SAT",
        "* * * 1-15,16-31 * *",
        "* * * 1-31 * 1",
        "* * * * * 1-7",
    ] {
        match ScheduleSpec::cron("0 0 9 * * *")
            .exclude(always)
            .compile(chrono_tz::UTC)
        {
            Err(ScheduleError::InvalidExclusion { reason, .. }) => {
                assert!(reason.contains("matches every time"), "{always}: {reason}")
            }
            other => panic!("{always}: {other:?}"),
        }
    }
    // Every day but not every second of it, or not every day: allowed.
    for some in [
        "* * * 1-30 * *",
        "* * * * * 1-6",
        "* * 0-22 1-31 * *",
        "* * * L * *",
    ] {
        assert!(
            ScheduleSpec::cron("0 0 9 * * *")
                .exclude(some)
                .compile(chrono_tz::UTC)
                .is_ok(),
            "{some}"
        );
    }
}

#[test]
fn a_spec_without_exclusions_reads_and_writes_as_before() {
    let old = r#"{"kind":{"Cron":"0 0 9 * * *"},"tz":null,"dst":{"gap":"RunAtTransition","fold":"First"},"bounds":{"not_before":null,"not_after":null,"max_fires":null}}"#;
    let spec: ScheduleSpec = serde_json::from_str(old).expect("a spec written before exclusions");
    assert!(spec.exclude.is_empty());
    assert_eq!(serde_json::to_string(&spec).expect("json"), old);
    let with = spec.clone().exclude("* * * 25 12 *");
    let back: ScheduleSpec =
        serde_json::from_str(&serde_json::to_string(&with).expect("json")).expect("roundtrip");
    assert_eq!(back, with);
    assert_eq!(
        with.to_string(),
        r#"cron "0 0 9 * * *", except "* * * 25 12 *""#
    );
}

/// The next fire by testing every candidate against every exclusion, with no
/// jumps; `None` if none is found within `limit` candidates.
fn plain_next(
    s: &Schedule,
    exclude: &[CronExpr],
    tz: Tz,
    after: DateTime<Utc>,
    limit: usize,
) -> Option<Option<DateTime<Utc>>> {
    let mut cursor = after;
    for _ in 0..limit {
        let Some((at, _)) = s.next_candidate(cursor, None) else {
            return Some(None);
        };
        let local = at.with_timezone(&tz).naive_local().and_utc().timestamp();
        if !exclude.iter().any(|e| e.matches(local)) {
            return Some(Some(at));
        }
        cursor = at;
    }
    None
}

#[test]
fn jumps_over_excluded_runs_agree_with_testing_every_candidate() {
    let zones = [
        "UTC",
        "America/New_York",
        "Europe/Berlin",
        "Australia/Lord_Howe",
        "Pacific/Apia",
        "America/Havana",
        "Asia/Tehran",
    ];
    let schedules: [fn() -> ScheduleSpec; 6] = [
        || ScheduleSpec::every(Duration::from_secs(7)),
        || ScheduleSpec::every(Duration::from_millis(90_500)),
        || ScheduleSpec::every(Duration::from_secs(1800)),
        || ScheduleSpec::cron("0 */10 * * * *"),
        || ScheduleSpec::cron("0 30 1,2,3 * * *"),
        || ScheduleSpec::cron("*/20 * 0-3 * * *"),
    ];
    let exclusions = [
        "* * 1 * * *",
        "* 0-29 * * * *",
        "0-29 * * * * Mon",
        "* * 2-3 * * Sun",
        "* * * 1,15 * *",
        "* * * * 3,11 *",
        "* * * L * *",
        "* */7 2 * * *",
        "* * * * * * 2011-2012",
        "* 1 * * *",
        "* * * 8-14 3 *",
        "* * * 25-31 3 *",
        "* * * 1-7 4,10,11 *",
        "* * * * * Sun",
        // Runs inside the second, minute and hour fields (see
        // `CronExpr::matching_run_end`).
        "1-59 * * * * *",
        "10-20,40-50 * * * * *",
        "* 10-20,40-50 * * * *",
        "* * 5-7,9,22-23 * * *",
    ];
    let mut rng = StdRng::seed_from_u64(test_seed(0x5eed_e8c1));
    let (lo, hi) = (
        t("2010-01-01T00:00:00Z").timestamp(),
        t("2030-01-01T00:00:00Z").timestamp(),
    );
    let mut compared = 0;
    for _ in 0..600 {
        let zone = zones[rng.random_range(0..zones.len())];
        let mut spec = schedules[rng.random_range(0..schedules.len())]().in_tz(zone);
        let n = rng.random_range(1..=2);
        for _ in 0..n {
            spec = spec.exclude(exclusions[rng.random_range(0..exclusions.len())]);
        }
        let s = compile(spec.clone());
        let tz: Tz = zone.parse().expect("zone");
        let exprs: Vec<CronExpr> = spec
            .exclude
            .iter()
            .map(|e| CronExpr::parse_exclusion(e).expect("valid"))
            .collect();
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
        for _ in 0..10 {
            let got = s.next_after(cursor);
            match plain_next(&s, &exprs, tz, cursor, 3_000) {
                Some(want) => {
                    assert_eq!(got, want, "{spec} after {cursor}");
                    compared += 1;
                }
                None => break,
            }
            match got {
                Some(at) => cursor = at,
                None => break,
            }
        }
    }
    assert_covered("compared", compared, 3_000);
}

#[test]
fn an_alias_as_an_exclusion_names_the_one_second_it_fires_at() {
    // Every 30 minutes excluding `@daily`: only 00:00:00 goes, not the day
    // (docs/semantics.md, "Exclusions").
    let s = compile(ScheduleSpec::cron("0 */30 * * * *").exclude("@daily"));
    assert_eq!(
        fires(&s, "2026-03-05T23:15:00Z", 3),
        [
            "2026-03-05T23:30:00Z",
            "2026-03-06T00:30:00Z",
            "2026-03-06T01:00:00Z"
        ]
    );
}

/// Every minute at second 0, written as every second but seconds 1-59:
/// weight 2 (one expression, one exclusion).
fn minutely_by_exclusion() -> Schedule {
    compile(ScheduleSpec::cron("* * * * * *").exclude("1-59 * * * * *"))
}

/// What a search from `from` spends, and what it finds.
fn cost(s: &Schedule, from: DateTime<Utc>) -> (u64, DateTime<Utc>) {
    let mut work = SEARCH_WORK;
    match s.search_within(from, &mut work) {
        Search::Found(at, _) => (SEARCH_WORK - work, at),
        other => panic!("{other:?}"),
    }
}

/// An excluded weekend costs a step per day, not per second: from Saturday
/// the search jumps to Sunday, then to Monday (docs/semantics.md,
/// "Exclusions").
#[test]
fn an_excluded_weekend_costs_one_step_per_day() {
    let s = compile(ScheduleSpec::cron("* * * * * *").exclude("* * * * * Sat,Sun"));
    // 2026-03-07 is a Saturday.
    let (spent, at) = cost(&s, t("2026-03-07T10:00:30Z"));
    assert_eq!(at, t("2026-03-09T00:00:00Z"));
    // Saturday's candidate, Sunday's, Monday's: weight 2 each.
    assert_eq!(spent, 6, "three candidates of weight 2");
}

#[test]
fn a_search_spends_its_weight_per_candidate() {
    let s = minutely_by_exclusion();
    let from = t("2026-03-05T10:00:30Z");
    let (spent, at) = cost(&s, from);
    assert_eq!(at, t("2026-03-05T10:01:00Z"));
    assert!(
        spent >= 4 && spent % 2 == 0,
        "{spent}: candidates of weight 2"
    );
    let mut work = spent;
    assert!(matches!(
        s.search_within(from, &mut work),
        Search::Found(..)
    ));
    assert_eq!(work, 0);
    let mut work = spent - 1;
    assert!(matches!(s.search_within(from, &mut work), Search::Spent));
    // Without exclusions a search is one candidate, of the rule's weight.
    let union = compile(ScheduleSpec::cron("0 * * * * *").or_cron("30 * * * * *"));
    let mut work = 10;
    assert!(matches!(
        union.search_within(from, &mut work),
        Search::Found(..)
    ));
    assert_eq!(work, 8);
}

#[test]
fn a_preview_stops_once_its_searches_spent_their_budget() {
    let s = minutely_by_exclusion();
    let from = t("2026-03-05T10:00:30Z");
    let (first, one) = cost(&s, from);
    let (second, two) = cost(&s, one);
    let at =
        |fires: Vec<PreviewFire>| -> Vec<DateTime<Utc>> { fires.iter().map(|f| f.at).collect() };
    assert_eq!(
        at(s.preview_within(from, 0, 10, &mut (first + second))),
        [one, two]
    );
    assert_eq!(
        at(s.preview_within(from, 0, 10, &mut (first + second - 1))),
        [one]
    );
    // The default budget is far from reached by an ordinary preview.
    assert_eq!(s.preview(from, 1_000).len(), 1_000);
}
#[test]
fn a_schedule_holds_at_most_max_schedule_expressions_on_each_side() {
    let distinct = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!("{} {} 0 1 1 *", i % 60, i / 60))
            .collect()
    };
    let with = |also: usize, exclude: usize| {
        let mut spec = ScheduleSpec::cron("0 0 12 * * *");
        for e in distinct(also) {
            spec = spec.or_cron(e);
        }
        for e in distinct(exclude) {
            spec = spec.exclude(e);
        }
        spec.compile(chrono_tz::UTC)
    };
    let max = MAX_SCHEDULE_EXPRESSIONS;
    let s = with(max, max).expect("the most of each compiles");
    assert_eq!(s.inner.weight as usize, 1 + max + max);
    assert_eq!(
        with(max + 1, 0).expect_err("too many extra expressions"),
        ScheduleError::TooManyExpressions {
            what: "extra cron expressions",
            count: max + 1,
            limit: max
        }
    );
    let err = with(0, max + 1).expect_err("too many exclusions");
    assert_eq!(
        err,
        ScheduleError::TooManyExpressions {
            what: "exclusions",
            count: max + 1,
            limit: max
        }
    );
    assert_eq!(err.to_string(), "too many exclusions: 257 (at most 256)");
}
