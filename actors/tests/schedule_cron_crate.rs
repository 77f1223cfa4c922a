//! The `cron` crate as a differential oracle where its semantics agree with
//! ours, and one test per divergence showing its behaviour next to ours.
//!
//! Agreement: 6-field expressions in UTC, without `L`, `W`, `#` or `?`, with
//! at most one of day-of-month and day-of-week restricted, and day-of-week
//! translated from crontab numbering (0-7, 0 and 7 Sunday) to the `cron`
//! crate's (1-7 from Sunday).

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use cronactor_actors::schedule::{Schedule, ScheduleSpec};
use proptest::prelude::*;
use std::str::FromStr;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test instants are RFC 3339")
}

fn ours(expr: &str, tz: &str) -> Schedule {
    ScheduleSpec::cron(expr)
        .in_tz(tz)
        .compile(chrono_tz::UTC)
        .expect("valid for our dialect")
}

fn theirs(expr: &str) -> cron::Schedule {
    cron::Schedule::from_str(expr).expect("valid for the cron crate")
}

fn ours_next(s: &Schedule, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut cursor = from;
    while out.len() < n {
        let Some(at) = s.next_after(cursor) else {
            break;
        };
        out.push(at);
        cursor = at;
    }
    out
}

fn theirs_next<Z: TimeZone>(s: &cron::Schedule, from: DateTime<Z>, n: usize) -> Vec<DateTime<Utc>> {
    s.after(&from)
        .take(n)
        .map(|d| d.with_timezone(&Utc))
        .collect()
}

fn weekdays(fires: &[DateTime<Utc>]) -> Vec<String> {
    fires.iter().map(|d| d.format("%a").to_string()).collect()
}

// ---------------------------------------------------------------------------
// Differential oracle.

/// A field on the agreed subset: `*`, a value, a range, a step or a list.
fn field(min: u32, max: u32) -> impl Strategy<Value = String> {
    let item = prop_oneof![
        (min..=max).prop_map(|v| v.to_string()),
        (min..=max, 0..=5u32).prop_map(move |(a, w)| format!("{a}-{}", (a + w).min(max))),
        (1..=max.min(15)).prop_map(|n| format!("*/{n}")),
        (min..=max, 0..=max - min, 1..=10u32)
            .prop_map(move |(a, w, n)| format!("{a}-{}/{n}", (a + w).min(max))),
    ];
    prop_oneof![
        1 => Just("*".to_string()),
        3 => prop::collection::vec(item, 1..=3).prop_map(|items| items.join(",")),
    ]
}

/// Day-of-week on the agreed subset, in crontab numbering and translated.
fn dow() -> impl Strategy<Value = (String, String)> {
    let item = prop_oneof![
        (0..=7u32).prop_map(|v| (v.to_string(), (v % 7 + 1).to_string())),
        (0..=6u32, 0..=6u32).prop_map(|(a, w)| {
            let b = (a + w).min(6);
            (format!("{a}-{b}"), format!("{}-{}", a + 1, b + 1))
        }),
    ];
    prop::collection::vec(item, 1..=3).prop_map(|items| {
        let ours = items
            .iter()
            .map(|(o, _)| o.clone())
            .collect::<Vec<_>>()
            .join(",");
        let theirs = items
            .iter()
            .map(|(_, t)| t.clone())
            .collect::<Vec<_>>()
            .join(",");
        (ours, theirs)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_the_cron_crate_on_the_common_subset(
        sec in field(0, 59),
        min in field(0, 59),
        hour in field(0, 23),
        dom in field(1, 28),
        month in field(1, 12),
        dow in dow(),
        use_dow in any::<bool>(),
        start in 1_700_000_000i64..1_900_000_000,
    ) {
        // Restrict at most one of day-of-month and day-of-week.
        let (dom, (dow_ours, dow_theirs)) = if use_dow {
            ("*".to_string(), dow)
        } else {
            (dom, ("*".to_string(), "*".to_string()))
        };
        let expr_ours = format!("{sec} {min} {hour} {dom} {month} {dow_ours}");
        let expr_theirs = format!("{sec} {min} {hour} {dom} {month} {dow_theirs}");
        let from = DateTime::from_timestamp(start, 0).expect("in range");
        let got = ours_next(&ours(&expr_ours, "UTC"), from, 8);
        let want = theirs_next(&theirs(&expr_theirs), from, 8);
        prop_assert_eq!(got, want, "ours {:?}, cron crate {:?}", expr_ours, expr_theirs);
    }
}

// ---------------------------------------------------------------------------
// Divergences.

#[test]
fn day_of_week_numbering_follows_crontab() {
    let from = t("2026-01-03T00:00:00Z"); // a Saturday
                                          // The cron crate counts 1-7 from Sunday: 1-5 is Sunday to Thursday.
    let theirs = weekdays(&theirs_next(&theirs("0 0 9 * * 1-5"), from, 5));
    assert_eq!(theirs, ["Sun", "Mon", "Tue", "Wed", "Thu"]);
    // crontab(5): 1-5 is Monday to Friday.
    let ours = weekdays(&ours_next(&ours("0 0 9 * * 1-5", "UTC"), from, 5));
    assert_eq!(ours, ["Mon", "Tue", "Wed", "Thu", "Fri"]);
}

#[test]
fn zero_and_seven_are_sunday() {
    let from = t("2026-01-01T00:00:00Z");
    assert!(cron::Schedule::from_str("0 0 9 * * 0").is_err());
    assert_eq!(
        weekdays(&theirs_next(&theirs("0 0 9 * * 7"), from, 1)),
        ["Sat"]
    );
    assert_eq!(
        weekdays(&ours_next(&ours("0 0 9 * * 0", "UTC"), from, 1)),
        ["Sun"]
    );
    assert_eq!(
        weekdays(&ours_next(&ours("0 0 9 * * 7", "UTC"), from, 1)),
        ["Sun"]
    );
}

#[test]
fn day_of_month_or_day_of_week() {
    let from = t("2026-01-20T00:00:00Z");
    // The cron crate ANDs them: Mondays that are the 1st (2026-06-01 is the next).
    let theirs = theirs_next(&theirs("0 0 12 1 * Mon"), from, 1);
    assert_eq!(theirs, [t("2026-06-01T12:00:00Z")]);
    // Vixie cron ORs them: the 1st, and every Monday.
    let ours = ours_next(&ours("0 0 12 1 * Mon", "UTC"), from, 3);
    assert_eq!(
        ours,
        [
            t("2026-01-26T12:00:00Z"),
            t("2026-02-01T12:00:00Z"),
            t("2026-02-02T12:00:00Z")
        ]
    );
}

#[test]
fn quartz_extensions() {
    let from = t("2026-01-01T00:00:00Z");
    for (expr, want) in [
        ("0 0 0 L * *", "2026-01-31T00:00:00Z"),
        ("0 0 0 LW * *", "2026-01-30T00:00:00Z"),
        ("0 0 0 15W * *", "2026-01-15T00:00:00Z"),
        ("0 0 0 ? * 5L", "2026-01-30T00:00:00Z"),
        ("0 0 0 ? * 1#2", "2026-01-12T00:00:00Z"),
    ] {
        assert!(
            cron::Schedule::from_str(expr).is_err(),
            "cron crate accepts {expr}"
        );
        assert_eq!(ours_next(&ours(expr, "UTC"), from, 1), [t(want)], "{expr}");
    }
}

#[test]
fn five_field_crontab_input() {
    let err = cron::Schedule::from_str("*/5 * * * *").expect_err("cron crate needs 6 fields");
    assert!(
        !err.to_string().contains("field"),
        "cron crate error: {err}"
    );
    let from = t("2026-01-01T00:02:00Z");
    assert_eq!(
        ours_next(&ours("*/5 * * * *", "UTC"), from, 2),
        [t("2026-01-01T00:05:00Z"), t("2026-01-01T00:10:00Z")]
    );
}

#[test]
fn errors_name_field_value_and_range() {
    let theirs = cron::Schedule::from_str("0 60 * * * *")
        .expect_err("out of range")
        .to_string();
    assert!(
        !theirs.contains("minute has value"),
        "cron crate error: {theirs}"
    );
    let ours = ScheduleSpec::cron("0 60 * * * *")
        .compile(chrono_tz::UTC)
        .expect_err("out of range")
        .to_string();
    assert_eq!(
        ours,
        r#"invalid cron expression: field minute has value "60": out of range (allowed: 0-59)"#
    );
}

const NY: Tz = chrono_tz::America::New_York;

#[test]
fn spring_forward_gap_fires_at_the_transition() {
    // 2026-03-08 02:30 does not exist in New York.
    let from = NY.from_utc_datetime(&t("2026-03-07T12:00:00Z").naive_utc());
    let theirs = theirs_next(&theirs("0 30 2 * * *"), from, 2);
    // The cron crate skips the day.
    assert_eq!(
        theirs,
        [t("2026-03-09T06:30:00Z"), t("2026-03-10T06:30:00Z")]
    );
    let ours = ours_next(
        &ours("0 30 2 * * *", "America/New_York"),
        t("2026-03-07T12:00:00Z"),
        2,
    );
    assert_eq!(ours, [t("2026-03-08T07:00:00Z"), t("2026-03-09T06:30:00Z")]);
}

#[test]
fn fall_back_fold_fires_a_fixed_time_once() {
    // 2026-11-01 01:30 happens twice in New York.
    let from = NY.from_utc_datetime(&t("2026-10-31T12:00:00Z").naive_utc());
    let theirs = theirs_next(&theirs("0 30 1 * * *"), from, 3);
    assert_eq!(
        theirs,
        [
            t("2026-11-01T05:30:00Z"),
            t("2026-11-01T06:30:00Z"),
            t("2026-11-02T06:30:00Z")
        ]
    );
    let ours = ours_next(
        &ours("0 30 1 * * *", "America/New_York"),
        t("2026-10-31T12:00:00Z"),
        2,
    );
    assert_eq!(ours, [t("2026-11-01T05:30:00Z"), t("2026-11-02T06:30:00Z")]);
}

#[test]
fn fall_back_fold_keeps_real_time_jobs_in_order() {
    let from = NY.from_utc_datetime(&t("2026-11-01T04:45:00Z").naive_utc());
    let theirs = theirs_next(&theirs("0 */30 * * * *"), from, 4);
    let sorted = {
        let mut s = theirs.clone();
        s.sort();
        s
    };
    assert_ne!(
        theirs, sorted,
        "the cron crate returns fold times out of order: {theirs:?}"
    );
    let ours = ours_next(
        &ours("0 */30 * * * *", "America/New_York"),
        t("2026-11-01T04:45:00Z"),
        4,
    );
    assert_eq!(
        ours,
        [
            t("2026-11-01T05:00:00Z"),
            t("2026-11-01T05:30:00Z"),
            t("2026-11-01T06:00:00Z"),
            t("2026-11-01T06:30:00Z"),
        ]
    );
}
