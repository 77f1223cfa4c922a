//! Unit tests of the schedule module's internals; the table test and the
//! property tests live in `actors/tests/`.

use super::calendar::{civil_from_days, days_from_civil, days_in_month, weekday_from_days};
use super::cron_expr::CronExpr;
use super::zone::ZoneTable;
use super::*;
use chrono::{Datelike, NaiveDate};
use std::time::Duration;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test instants are RFC 3339")
}

fn compile(expr: &str, tz: &str) -> Schedule {
    ScheduleSpec::cron(expr)
        .in_tz(tz)
        .compile(chrono_tz::UTC)
        .expect("test expressions are valid")
}

fn next_n(s: &Schedule, from: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = t(from);
    for _ in 0..n {
        match s.next_after(cursor) {
            Some(at) => {
                out.push(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
                cursor = at;
            }
            None => break,
        }
    }
    out
}

fn cron_err(expr: &str) -> String {
    ScheduleSpec::cron(expr)
        .compile(chrono_tz::UTC)
        .expect_err("expression is invalid")
        .to_string()
}

#[test]
fn calendar_matches_chrono() {
    let mut date = NaiveDate::from_ymd_opt(1599, 12, 25).expect("valid date");
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    for _ in 0..200_000 {
        let days = (date - epoch).num_days();
        assert_eq!(
            days_from_civil(i64::from(date.year()), date.month(), date.day()),
            days
        );
        let (y, m, d) = civil_from_days(days);
        assert_eq!(
            (y, m, d),
            (i64::from(date.year()), date.month(), date.day())
        );
        assert_eq!(
            weekday_from_days(days),
            date.weekday().num_days_from_sunday()
        );
        date = date.succ_opt().expect("in range");
    }
    assert_eq!(days_in_month(2024, 2), 29);
    assert_eq!(days_in_month(2100, 2), 28);
    assert_eq!(days_in_month(2000, 2), 29);
}

#[test]
fn error_messages_name_field_value_and_range() {
    assert_eq!(
        cron_err("0 60 * * * *"),
        r#"invalid cron expression: field minute has value "60": out of range (allowed: 0-59)"#
    );
    assert_eq!(
        cron_err("60 * * * *"),
        r#"invalid cron expression: field minute has value "60": out of range (allowed: 0-59)"#
    );
    assert!(cron_err("* 24 * * *")
        .contains(r#"field hour has value "24": out of range (allowed: 0-23)"#));
    assert!(cron_err("0 0 0 32 * *").contains(r#"field day-of-month has value "32": out of range"#));
    assert!(cron_err("0 0 0 * 13 *").contains(r#"field month has value "13""#));
    assert!(cron_err("0 0 0 * Foo *").contains("not a number or a name"));
    assert!(cron_err("0 0 0 * * 8")
        .contains(r#"field day-of-week has value "8": out of range (allowed: 0-7"#));
    assert!(cron_err("0 0 0 * * * 1969")
        .contains(r#"field year has value "1969": out of range (allowed: 1970-2099)"#));
    assert!(cron_err("0 */0 * * * *")
        .contains(r#"field minute has value "*/0": the step must be 1-59"#));
    assert!(cron_err("0 5-2 * * * *").contains(r#"value "5-2": the range starts after it ends"#));
    assert!(cron_err("0 1,,2 * * * *").contains("empty list item"));
    assert!(cron_err("? * * * * *").contains("only allowed in day-of-month and day-of-week"));
    assert!(cron_err("0 0 0 1,? * *").contains("? must be the whole field"));
    assert!(cron_err("0 0 0 * * L").contains("L needs a weekday before it"));
    assert!(cron_err("0 0 0 * * 1#6").contains("the occurrence after # must be 1-5"));
    assert!(cron_err("0 0 0 L-31 * *").contains("the offset in L-n must be 0-30"));
    assert!(cron_err("0 0 0 1-5W * *").contains("W takes a single day"));
    assert!(cron_err("0 0 0 30 2 *").contains(
        r#"field day-of-month has value "30": never matches a day of the selected months"#
    ));
    assert!(cron_err("0 0 0 99999999999 * *").contains("out of range"));
    assert_eq!(
        cron_err("* * * *"),
        "invalid cron expression \"* * * *\": 4 fields; expected 5 (minute hour day-of-month \
         month day-of-week), 6 (second first) or 7 (second first, year last) fields, or one \
         of @yearly @annually @monthly @weekly @daily @midnight @hourly"
    );
    assert!(cron_err("").contains("0 fields"));
    assert!(cron_err("@reboot").contains(r#"unknown alias "@reboot""#));
}

#[test]
fn bad_day_names_and_too_many_fields_are_named() {
    assert_eq!(
        cron_err("0 0 9 * * Mun"),
        "invalid cron expression: field day-of-week has value \"Mun\": not a number or a name \
         (allowed: 0-7 (0 and 7 are Sunday) or SUN-SAT, nL, n#k, ?)"
    );
    assert!(cron_err("0 0 9 * * MON-Fry").contains(r#"field day-of-week has value "Fry""#));
    assert!(cron_err("0 0 9 * Janu *").contains(r#"field month has value "Janu""#));
    assert!(cron_err("0 0 9 ? * MUNL").contains(r#"field day-of-week has value "MUN""#));
    assert!(
        cron_err("0 0 9 * * 1#0").contains(r#"value "1#0": the occurrence after # must be 1-5"#)
    );
    assert!(cron_err("0 0 0 * * * 2026 extra")
        .starts_with("invalid cron expression \"0 0 0 * * * 2026 extra\": 8 fields"));
}

#[test]
fn days_that_never_occur_in_the_selected_years_are_refused() {
    assert!(cron_err("0 0 0 29 2 * 2097-2099").contains(
        r#"field day-of-month has value "29": never matches a day of the selected months and years"#
    ));
    // February 2027 has four Fridays.
    assert!(cron_err("0 0 0 * 2 5#5 2027").contains(
        r#"field day-of-week has value "5#5": never matches a day of the selected months and years"#
    ));
    // Possible in one of the years: accepted, and fires then.
    let s = compile("0 0 0 29 2 * 2096-2099", "UTC");
    assert_eq!(
        next_n(&s, "2026-01-01T00:00:00Z", 2),
        ["2096-02-29T00:00:00Z"]
    );
}

#[test]
fn a_missing_value_is_reported_with_the_item_it_is_missing_from() {
    for (expr, field, item) in [
        ("0 5- * * * *", "minute", "5-"),
        ("0 -5 * * * *", "minute", "-5"),
        ("0 /5 * * * *", "minute", "/5"),
        ("0 0 0 W * *", "day-of-month", "W"),
        ("0 0 0 * * #1", "day-of-week", "#1"),
        ("0 0 0 * * MON-", "day-of-week", "MON-"),
        ("0 0 0 * * 1,-3", "day-of-week", "-3"),
        ("0 0 0 * * * 2030-", "year", "2030-"),
    ] {
        assert_eq!(
            cron_err(expr),
            format!(
                "invalid cron expression: field {field} has value {item:?}: a value is missing \
                 (allowed: {})",
                match field {
                    "minute" => "0-59",
                    "day-of-month" => "1-31, L, L-n, LW, nW, ?",
                    "day-of-week" => "0-7 (0 and 7 are Sunday) or SUN-SAT, nL, n#k, ?",
                    _ => "1970-2099",
                }
            ),
            "{expr}"
        );
    }
}

#[test]
fn non_ascii_and_odd_input_does_not_panic() {
    for expr in [
        "é * * * *",
        "0 0 0 ÉW * *",
        "0 0 0 * * ÉL",
        "0 0 0 * * é#1",
        "L-",
        "0 0 0 L- * *",
        "0 0 0 W * *",
        "0 0 0 * * #",
        "0 0 0 * * 1#",
        "/ * * * *",
        "- * * * *",
        "*/ * * * *",
    ] {
        let _ = ScheduleSpec::cron(expr).compile(chrono_tz::UTC);
    }
}

#[test]
fn aliases_expand_to_their_crontab_meaning() {
    let from = "2026-05-15T10:20:30Z";
    assert_eq!(
        next_n(&compile("@yearly", "UTC"), from, 1),
        ["2027-01-01T00:00:00Z"]
    );
    assert_eq!(
        next_n(&compile("@ANNUALLY", "UTC"), from, 1),
        ["2027-01-01T00:00:00Z"]
    );
    assert_eq!(
        next_n(&compile("@monthly", "UTC"), from, 1),
        ["2026-06-01T00:00:00Z"]
    );
    // 2026-05-17 is a Sunday.
    assert_eq!(
        next_n(&compile("@weekly", "UTC"), from, 1),
        ["2026-05-17T00:00:00Z"]
    );
    assert_eq!(
        next_n(&compile("@daily", "UTC"), from, 1),
        ["2026-05-16T00:00:00Z"]
    );
    assert_eq!(
        next_n(&compile("@midnight", "UTC"), from, 1),
        ["2026-05-16T00:00:00Z"]
    );
    assert_eq!(
        next_n(&compile("@hourly", "UTC"), from, 1),
        ["2026-05-15T11:00:00Z"]
    );
    assert!(!compile("@hourly", "UTC").is_fixed_time());
    assert!(compile("@daily", "UTC").is_fixed_time());
}

#[test]
fn fixed_time_is_decided_by_minute_and_hour_only() {
    assert!(compile("* 30 2 * * *", "UTC").is_fixed_time());
    assert!(compile("30 2 * * *", "UTC").is_fixed_time());
    assert!(compile("0 0-59 0-23 * * *", "UTC").is_fixed_time());
    assert!(!compile("0 */30 2 * * *", "UTC").is_fixed_time());
    assert!(!compile("0 30 * * * *", "UTC").is_fixed_time());
    assert!(!compile("0 30 */2 * * *", "UTC").is_fixed_time());
}

#[test]
fn day_rules() {
    // 2026-02: Sunday the 1st, 28 days.
    let from = "2026-01-31T12:00:00Z";
    let days = |expr: &str, n| {
        next_n(&compile(expr, "UTC"), from, n)
            .into_iter()
            .map(|s| s[..10].to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(days("0 0 0 L 2 *", 1), ["2026-02-28"]);
    assert_eq!(days("0 0 0 L-3 2 *", 1), ["2026-02-25"]);
    assert_eq!(days("0 0 0 LW 2 *", 1), ["2026-02-27"]);
    // The 1st is a Sunday: 1W is Monday the 2nd.
    assert_eq!(days("0 0 0 1W 2 *", 1), ["2026-02-02"]);
    // 2026-08-01 is a Saturday: 1W is Monday the 3rd, not July 31st.
    assert_eq!(days("0 0 0 1W 8 *", 1), ["2026-08-03"]);
    // 2026-05-31 is a Sunday: 31W is Friday the 29th, not June 1st.
    assert_eq!(days("0 0 0 31W 5 *", 1), ["2026-05-29"]);
    // 2026-02-14 is a Saturday: 14W is Friday the 13th.
    assert_eq!(days("0 0 0 14W 2 *", 1), ["2026-02-13"]);
    assert_eq!(days("0 0 0 ? 2 5L", 1), ["2026-02-27"]);
    assert_eq!(days("0 0 0 ? 2 FRIL", 1), ["2026-02-27"]);
    assert_eq!(days("0 0 0 ? 2 1#2", 1), ["2026-02-09"]);
    assert_eq!(days("0 0 0 ? 2 mon#2", 1), ["2026-02-09"]);
    assert_eq!(days("0 0 0 ? 2 0#1,7#2", 2), ["2026-02-01", "2026-02-08"]);
    // OR of day-of-month and day-of-week when both are restricted.
    assert_eq!(
        days("0 0 0 1,15 2 Fri", 4),
        ["2026-02-01", "2026-02-06", "2026-02-13", "2026-02-15"]
    );
    // AND when one starts with `*`: odd days that are Mondays.
    assert_eq!(days("0 0 0 */2 2 Mon", 2), ["2026-02-09", "2026-02-23"]);
    // Weekday ranges ending on Sunday.
    assert_eq!(
        days("0 0 0 * 2 Fri-Sun", 4),
        ["2026-02-01", "2026-02-06", "2026-02-07", "2026-02-08"]
    );
    assert_eq!(
        days("0 0 0 * 2 5-7", 3),
        ["2026-02-01", "2026-02-06", "2026-02-07"]
    );
    assert_eq!(days("0 0 0 * 2 SAT-SUN", 2), ["2026-02-01", "2026-02-07"]);
}

#[test]
fn steps_and_ranges() {
    let from = "2026-01-01T00:00:00Z";
    assert_eq!(
        next_n(&compile("10/20 0 0 * * *", "UTC"), from, 3),
        [
            "2026-01-01T00:00:10Z",
            "2026-01-01T00:00:30Z",
            "2026-01-01T00:00:50Z"
        ]
    );
    assert_eq!(
        next_n(&compile("0 0 8-12/2,23 * * *", "UTC"), from, 4),
        [
            "2026-01-01T08:00:00Z",
            "2026-01-01T10:00:00Z",
            "2026-01-01T12:00:00Z",
            "2026-01-01T23:00:00Z"
        ]
    );
    assert_eq!(
        next_n(&compile("0 0 0 1 */5 *", "UTC"), from, 3),
        [
            "2026-06-01T00:00:00Z",
            "2026-11-01T00:00:00Z",
            "2027-01-01T00:00:00Z"
        ]
    );
}

#[test]
fn year_field_ends_the_schedule() {
    let s = compile("0 0 0 1 1 * 2027-2028", "UTC");
    assert_eq!(
        next_n(&s, "2020-01-01T00:00:00Z", 5),
        ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]
    );
    assert_eq!(
        s.next_fire(t("2028-01-01T00:00:00Z"), 0),
        NextFire::Exhausted
    );
}

/// The year field bounds the search by itself: a search that starts more
/// than 400 years before the field's first year still finds its fires (a
/// backfill from far in the past, say), and one past its last year ends.
#[test]
fn a_search_from_centuries_before_the_year_field_finds_its_first_year() {
    let s = compile("0 0 0 1 1 * 2027-2028", "UTC");
    for from in ["1500-01-01T00:00:00Z", "-10000-01-01T00:00:00Z"] {
        assert_eq!(
            next_n(&s, from, 5),
            ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"],
            "{from}"
        );
    }
    assert_eq!(
        next_n(
            &compile("0 0 0 L 2 * 1970-2099/50", "UTC"),
            "1000-01-01T00:00:00Z",
            5
        ),
        [
            "1970-02-28T00:00:00Z",
            "2020-02-29T00:00:00Z",
            "2070-02-28T00:00:00Z"
        ]
    );
    assert_eq!(
        s.next_after(DateTime::<Utc>::MIN_UTC),
        Some(t("2027-01-01T00:00:00Z"))
    );
}

#[test]
fn next_after_is_strict_and_ignores_subseconds() {
    let s = compile("* * * * * *", "UTC");
    assert_eq!(
        s.next_after(t("2026-01-01T00:00:00Z")),
        Some(t("2026-01-01T00:00:01Z"))
    );
    assert_eq!(
        s.next_after(t("2026-01-01T00:00:00.999Z")),
        Some(t("2026-01-01T00:00:01Z"))
    );
    assert_eq!(
        s.next_after(t("2026-12-31T23:59:59Z")),
        Some(t("2027-01-01T00:00:00Z"))
    );
}

#[test]
fn extreme_instants_do_not_panic() {
    for expr in [
        "* * * * * *",
        "0 30 2 * * *",
        "0 0 0 29 2 *",
        "0 0 0 1 1 * 2099",
    ] {
        for tz in ["UTC", "America/New_York", "Australia/Lord_Howe"] {
            let s = compile(expr, tz);
            for after in [
                DateTime::<Utc>::MIN_UTC,
                DateTime::<Utc>::MAX_UTC,
                t("1800-01-01T00:00:00Z"),
                t("2100-12-31T23:59:59Z"),
            ] {
                let _ = s.next_after(after);
                let _ = s.preview(after, 3);
            }
        }
    }
    let every = ScheduleSpec::every(Duration::from_millis(u64::MAX))
        .compile(chrono_tz::UTC)
        .expect("valid");
    assert_eq!(every.next_after(DateTime::<Utc>::MAX_UTC), None);
    let _ = every.next_after(DateTime::<Utc>::MIN_UTC);
}

#[test]
fn zone_tables_find_transitions() {
    let ny = ZoneTable::of(chrono_tz::America::New_York);
    let spring = ny
        .transitions()
        .iter()
        .find(|tr| tr.at == t("2026-03-08T07:00:00Z").timestamp())
        .expect("2026 spring-forward transition");
    assert_eq!((spring.before, spring.after), (-5 * 3600, -4 * 3600));
    let lord_howe = ZoneTable::of(chrono_tz::Australia::Lord_Howe);
    assert!(lord_howe
        .transitions()
        .iter()
        .any(|tr| tr.at == t("2026-04-04T15:00:00Z").timestamp() && tr.before - tr.after == 1800));
    assert!(ZoneTable::of(chrono_tz::UTC).transitions().is_empty());
}

#[test]
fn transitions_agree_with_chrono_tz() {
    use chrono::{Offset, TimeZone};
    for tz in [
        chrono_tz::America::New_York,
        chrono_tz::Pacific::Chatham,
        chrono_tz::Asia::Tokyo,
        chrono_tz::Pacific::Apia,
    ] {
        let table = ZoneTable::of(tz);
        let mut at = t("1900-01-01T00:00:00Z").timestamp();
        while at < t("2100-01-01T00:00:00Z").timestamp() {
            let want = tz
                .offset_from_utc_datetime(
                    &DateTime::from_timestamp(at, 0)
                        .expect("in range")
                        .naive_utc(),
                )
                .fix()
                .local_minus_utc();
            assert_eq!(table.segment_at(at).offset, want, "{tz} at {at}");
            at += 86_400 * 5 + 3_607;
        }
    }
}

#[test]
fn cron_expr_keeps_parsed_sets() {
    let a = CronExpr::parse("0 0 12 * * MON-fri").expect("valid");
    let b = CronExpr::parse("0 0 12 ? * 1-5").expect("valid");
    // `*` and `?` in day-of-month, names in any case and numbers give the same sets.
    assert_eq!(a, b);
    let (sa, sb) = (
        compile("0 0 12 * * MON-fri", "UTC"),
        compile("0 0 12 ? * 1-5", "UTC"),
    );
    assert_eq!(
        next_n(&sa, "2026-01-01T00:00:00Z", 10),
        next_n(&sb, "2026-01-01T00:00:00Z", 10)
    );
}

#[test]
fn gap_and_fold_in_new_york() {
    let from = "2026-03-07T12:00:00Z";
    // Fixed-time: 02:30 does not exist on 2026-03-08; fires at 03:00 EDT.
    assert_eq!(
        next_n(&compile("0 30 2 * * *", "America/New_York"), from, 2),
        ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]
    );
    // Several gap times collapse into one fire at the transition.
    assert_eq!(
        next_n(&compile("0 0,15,30 2 * * *", "America/New_York"), from, 2),
        ["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"]
    );
    // Non-fixed jobs follow real time: the gap's times simply do not exist.
    assert_eq!(
        next_n(
            &compile("0 */30 * * * *", "America/New_York"),
            "2026-03-08T06:00:00Z",
            3
        ),
        [
            "2026-03-08T06:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:30:00Z"
        ]
    );
    // Fall back: 01:30 occurs twice on 2026-11-01.
    let fold_from = "2026-11-01T04:00:00Z";
    assert_eq!(
        next_n(&compile("0 30 1 * * *", "America/New_York"), fold_from, 2),
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
    );
    assert_eq!(
        next_n(&compile("0 */30 * * * *", "America/New_York"), fold_from, 5),
        [
            "2026-11-01T04:30:00Z",
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:30:00Z"
        ]
    );
}

#[test]
fn dst_policies() {
    let with = |expr: &str, gap, fold| {
        ScheduleSpec::cron(expr)
            .in_tz("America/New_York")
            .dst(DstPolicy { gap, fold })
            .compile(chrono_tz::UTC)
            .expect("valid")
    };
    let skip = with("0 30 2 * * *", GapPolicy::Skip, FoldPolicy::First);
    assert_eq!(
        next_n(&skip, "2026-03-07T12:00:00Z", 1),
        ["2026-03-09T06:30:00Z"]
    );
    let last = with("0 30 1 * * *", GapPolicy::RunAtTransition, FoldPolicy::Last);
    assert_eq!(
        next_n(&last, "2026-10-31T12:00:00Z", 3),
        [
            "2026-11-01T06:30:00Z",
            "2026-11-02T06:30:00Z",
            "2026-11-03T06:30:00Z"
        ]
    );
    let both = with(
        "0 0,30 1 * * *",
        GapPolicy::RunAtTransition,
        FoldPolicy::Both,
    );
    assert_eq!(
        next_n(&both, "2026-11-01T04:00:00Z", 5),
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-02T06:00:00Z"
        ]
    );
    // After the first occurrence, First does not fire again in the fold.
    let first = with(
        "0 30 1 * * *",
        GapPolicy::RunAtTransition,
        FoldPolicy::First,
    );
    assert_eq!(
        next_n(&first, "2026-11-01T05:45:00Z", 1),
        ["2026-11-02T06:30:00Z"]
    );
    // A policy does not change jobs that follow real time.
    let real = with("0 30 * * * *", GapPolicy::Skip, FoldPolicy::First);
    assert_eq!(
        next_n(&real, "2026-11-01T05:00:00Z", 2),
        ["2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z"]
    );
}

#[test]
fn preview_notes() {
    let s = ScheduleSpec::cron("0 30 2 * * *")
        .in_tz("America/New_York")
        .dst(DstPolicy {
            gap: GapPolicy::Skip,
            fold: FoldPolicy::First,
        })
        .compile(chrono_tz::UTC)
        .expect("valid");
    let fires = s.preview(t("2026-03-07T12:00:00Z"), 2);
    assert_eq!(fires[0].at, t("2026-03-09T06:30:00Z"));
    let wanted = NaiveDate::from_ymd_opt(2026, 3, 8)
        .and_then(|d| d.and_hms_opt(2, 30, 0))
        .expect("valid");
    assert_eq!(fires[0].skipped, [DstNote::SkippedInGap { wanted }]);
    assert_eq!(fires[0].note, None);
    assert!(fires[1].skipped.is_empty());
    let lines = preview_lines(&fires);
    assert_eq!(
        lines.fires,
        ["2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"]
    );
    assert_eq!(
        lines.notes,
        ["2026-03-09T06:30:00Z (2026-03-09T02:30:00-04:00): skipped 2026-03-08 02:30:00, which falls in a DST gap"]
    );

    let fold = compile("0 */30 1 * * *", "America/New_York").preview(t("2026-11-01T04:59:59Z"), 4);
    let notes: Vec<_> = fold.iter().map(|f| f.note).collect();
    let at = |h, m| {
        NaiveDate::from_ymd_opt(2026, 11, 1)
            .and_then(|d| d.and_hms_opt(h, m, 0))
            .expect("valid")
    };
    assert_eq!(
        notes,
        [
            Some(DstNote::FoldFirst { wanted: at(1, 0) }),
            Some(DstNote::FoldFirst { wanted: at(1, 30) }),
            Some(DstNote::FoldSecond { wanted: at(1, 0) }),
            Some(DstNote::FoldSecond { wanted: at(1, 30) }),
        ]
    );
    assert_eq!(fold[2].local.to_rfc3339(), "2026-11-01T01:00:00-05:00");

    let moved = compile("0 30 2 * * *", "America/New_York").preview(t("2026-03-07T12:00:00Z"), 1);
    assert_eq!(moved[0].note, Some(DstNote::MovedFromGap { wanted }));
    assert_eq!(
        preview_lines(&moved).notes,
        ["2026-03-08T07:00:00Z (2026-03-08T03:00:00-04:00): moved from 2026-03-08 02:30:00, which falls in a DST gap, to the end of the gap"]
    );
}

#[test]
fn intervals_are_anchored() {
    let s = ScheduleSpec::every(Duration::from_secs(300))
        .offset(Duration::from_secs(30))
        .in_tz("America/New_York")
        .compile(chrono_tz::UTC)
        .expect("valid");
    assert_eq!(
        next_n(&s, "2026-03-08T06:58:00Z", 2),
        ["2026-03-08T07:00:30Z", "2026-03-08T07:05:30Z"]
    );
    assert_eq!(
        s.next_after(t("2026-03-08T07:00:30Z")),
        Some(t("2026-03-08T07:05:30Z"))
    );
    let ms = ScheduleSpec::every(Duration::from_millis(1500))
        .compile(chrono_tz::UTC)
        .expect("valid");
    assert_eq!(
        next_n(&ms, "1970-01-01T00:00:00Z", 2),
        ["1970-01-01T00:00:01.500Z", "1970-01-01T00:00:03Z"]
    );
    let before_epoch = ms.next_after(t("1969-12-31T23:59:59Z"));
    assert_eq!(before_epoch, Some(t("1970-01-01T00:00:00Z")));
}

#[test]
fn an_interval_longer_than_i64_max_ms_started_at_an_instant_fires_there() {
    let start = t("2026-01-05T10:00:07Z");
    for every_ms in [i64::MAX as u64 + 1, u64::MAX - 1, u64::MAX] {
        let s = ScheduleSpec::every(Duration::from_millis(every_ms))
            .starting_at(start)
            .compile(chrono_tz::UTC)
            .expect("valid");
        assert_eq!(
            s.next_after(start - chrono::Duration::hours(1)),
            Some(start),
            "every {every_ms} ms"
        );
        assert_eq!(s.next_after(start), None, "every {every_ms} ms");
    }
}

#[test]
fn fires_stay_a_day_inside_chronos_range_so_their_local_time_can_be_shown() {
    assert_eq!(
        DateTime::<Utc>::MIN_UTC.timestamp() + 86_400,
        super::FIRST_FIRE_SECS
    );
    assert_eq!(
        DateTime::<Utc>::MAX_UTC.timestamp() - 86_400,
        super::LAST_FIRE_SECS
    );
    let end = DateTime::<Utc>::MAX_UTC;
    let start = DateTime::<Utc>::MIN_UTC;
    for tz in [
        "Asia/Tokyo",
        "Pacific/Kiritimati",
        "America/New_York",
        "Asia/Manila",
    ] {
        let specs = [
            ScheduleSpec::at(end),
            ScheduleSpec::at(end - chrono::Duration::hours(20)),
            ScheduleSpec::at(start + chrono::Duration::hours(20)),
            ScheduleSpec::cron("* * * * * *"),
            ScheduleSpec::every(Duration::from_millis(1)),
        ];
        for spec in specs {
            let s = spec.in_tz(tz).compile(chrono_tz::UTC).expect("valid");
            for after in [start, end - chrono::Duration::days(2)] {
                let fires = s.preview(after, 3);
                // Rendering the local time would panic past the calendar.
                let lines = preview_lines(&fires);
                for (fire, line) in fires.iter().zip(&lines.fires) {
                    assert!(fire.at > after, "{}", s.spec());
                    assert!(!fire.local.to_rfc3339().is_empty(), "{line}");
                }
            }
        }
    }
    // A fire in the last day of the calendar never comes.
    let last = ScheduleSpec::at(end - chrono::Duration::hours(20))
        .compile(chrono_tz::UTC)
        .expect("valid");
    assert_eq!(
        last.next_fire(t("2026-01-01T00:00:00Z"), 0),
        NextFire::Exhausted
    );
    // The first day is skipped, not the rest.
    let s = ScheduleSpec::cron("0 0 * * * *")
        .compile(chrono_tz::UTC)
        .expect("valid");
    assert_eq!(
        s.next_after(start).map(|at| at.timestamp()),
        Some(super::FIRST_FIRE_SECS)
    );
}

#[test]
fn an_interval_started_at_a_sub_millisecond_instant_first_fires_a_moment_later() {
    // `starting_at(Utc::now() + 1h)` has nanoseconds: the first fire is at
    // the next whole millisecond, not a period later.
    let start = t("2026-01-05T10:00:07.123456Z");
    let s = ScheduleSpec::every(Duration::from_secs(3600))
        .starting_at(start)
        .compile(chrono_tz::UTC)
        .expect("valid");
    let first = t("2026-01-05T10:00:07.124Z");
    assert_eq!(
        s.next_after(start - chrono::Duration::hours(2)),
        Some(first)
    );
    assert_eq!(
        s.next_after(first),
        Some(first + chrono::Duration::hours(1))
    );
    // A whole-millisecond start is its own first fire.
    let whole = t("2026-01-05T10:00:07.123Z");
    let s = ScheduleSpec::every(Duration::from_secs(3600))
        .starting_at(whole)
        .compile(chrono_tz::UTC)
        .expect("valid");
    assert_eq!(
        s.next_after(whole - chrono::Duration::hours(2)),
        Some(whole)
    );
}

#[test]
fn a_not_before_at_the_first_instant_of_the_calendar_bounds_nothing() {
    let first = DateTime::<Utc>::MIN_UTC;
    let cron = ScheduleSpec::cron("0 0 * * * *").not_before(first);
    let every = ScheduleSpec::every(Duration::from_secs(60)).starting_at(first);
    for spec in [cron, every] {
        let s = spec.compile(chrono_tz::UTC).expect("valid");
        let after = t("2026-01-05T10:00:07Z");
        assert!(s.next_after(after).is_some_and(|n| n > after), "{spec}");
    }
}

#[test]
fn interval_and_bounds_validation() {
    let err = |spec: ScheduleSpec| {
        spec.compile(chrono_tz::UTC)
            .expect_err("invalid")
            .to_string()
    };
    assert_eq!(
        err(ScheduleSpec::every(Duration::ZERO)),
        "invalid interval: every_ms must be greater than 0 (periods are whole milliseconds, \
         so one shorter than 1 ms is 0)"
    );
    assert_eq!(
        err(ScheduleSpec::every(Duration::from_secs(1)).offset(Duration::from_secs(1))),
        "invalid interval: offset_ms (1000) must be less than every_ms (1000)"
    );
    assert_eq!(
        err(ScheduleSpec::cron("* * * * *").not_before(t("2026-01-02T00:00:00Z")).not_after(t("2026-01-01T00:00:00Z"))),
        "invalid bounds: not_before (2026-01-02T00:00:00Z) is after not_after (2026-01-01T00:00:00Z)"
    );
    assert_eq!(
        err(ScheduleSpec::cron("* * * * *").max_fires(0)),
        "invalid bounds: max_fires must be at least 1"
    );
    assert_eq!(
        err(ScheduleSpec::cron("* * * * *").in_tz("Mars/Olympus")),
        "unknown time zone \"Mars/Olympus\""
    );
}

#[test]
fn bounds_and_exhaustion() {
    let s = ScheduleSpec::cron("0 0 * * * *")
        .not_before(t("2026-01-01T10:30:00Z"))
        .not_after(t("2026-01-01T12:00:00Z"))
        .max_fires(5)
        .compile(chrono_tz::UTC)
        .expect("valid");
    assert_eq!(
        next_n(&s, "2026-01-01T00:00:00Z", 5),
        ["2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"]
    );
    assert_eq!(
        s.next_fire(t("2026-01-01T12:00:00Z"), 2),
        NextFire::Exhausted
    );
    assert_eq!(
        s.next_fire(t("2026-01-01T00:00:00Z"), 5),
        NextFire::Exhausted
    );
    assert_eq!(
        s.next_fire(t("2026-01-01T00:00:00Z"), 4),
        NextFire::At(t("2026-01-01T11:00:00Z"))
    );
    let at_bound = ScheduleSpec::cron("0 0 * * * *")
        .not_before(t("2026-01-01T11:00:00Z"))
        .compile(chrono_tz::UTC)
        .expect("valid");
    assert_eq!(
        at_bound.next_after(t("2020-01-01T00:00:00Z")),
        Some(t("2026-01-01T11:00:00Z"))
    );
    let once = ScheduleSpec::at(t("2026-01-01T00:00:00.250Z"))
        .compile(chrono_tz::UTC)
        .expect("valid");
    assert_eq!(
        once.next_fire(t("2025-12-31T00:00:00Z"), 0),
        NextFire::At(t("2026-01-01T00:00:00.250Z"))
    );
    assert_eq!(
        once.next_fire(t("2026-01-01T00:00:00.250Z"), 0),
        NextFire::Exhausted
    );
    let capped = compile("* * * * * *", "UTC");
    assert_eq!(
        capped
            .preview_remaining(t("2026-01-01T00:00:00Z"), 0, 3)
            .len(),
        3
    );
    let three = ScheduleSpec::cron("* * * * * *")
        .max_fires(3)
        .compile(chrono_tz::UTC)
        .expect("valid");
    assert_eq!(three.preview(t("2026-01-01T00:00:00Z"), 10).len(), 3);
    assert_eq!(
        three
            .preview_remaining(t("2026-01-01T00:00:00Z"), 2, 10)
            .len(),
        1
    );
}

#[test]
fn describe_gives_the_schedule_as_written() {
    assert_eq!(
        ScheduleSpec::cron("*/5 * * * *").describe(),
        r#"cron "*/5 * * * *""#
    );
    assert_eq!(
        ScheduleSpec::every(Duration::from_millis(5_400_500))
            .offset(Duration::from_secs(60))
            .in_tz("UTC")
            .describe(),
        "every 1h30m500ms offset 1m in UTC"
    );
    assert_eq!(
        ScheduleSpec::at(t("2026-01-01T00:00:00Z"))
            .max_fires(1)
            .describe(),
        "once at 2026-01-01T00:00:00Z, at most 1 fire"
    );
    assert_eq!(
        ScheduleSpec::cron("0 30 2 * * *")
            .dst(DstPolicy {
                gap: GapPolicy::Skip,
                fold: FoldPolicy::Both
            })
            .not_before(t("2026-01-01T00:00:00Z"))
            .not_after(t("2027-01-01T00:00:00Z"))
            .describe(),
        r#"cron "0 30 2 * * *" (DST gap Skip, fold Both), not before 2026-01-01T00:00:00Z, not after 2027-01-01T00:00:00Z"#
    );
}

#[test]
fn spec_serde_shape_is_stable() {
    let spec = ScheduleSpec::every(Duration::from_secs(60))
        .in_tz("UTC")
        .max_fires(3);
    let json = serde_json::to_string(&spec).expect("serialisable");
    assert_eq!(
        json,
        r#"{"kind":{"Interval":{"every_ms":60000,"offset_ms":0}},"tz":"UTC","dst":{"gap":"RunAtTransition","fold":"First"},"bounds":{"not_before":null,"not_after":null,"max_fires":3}}"#
    );
    let back: ScheduleSpec = serde_json::from_str(&json).expect("deserialisable");
    assert_eq!(back, spec);
}

#[test]
fn schedule_is_shareable() {
    fn check<T: Clone + std::fmt::Debug + Send + Sync>() {}
    check::<Schedule>();
}

#[test]
fn a_passed_one_shot_is_counted_from_just_before_its_instant() {
    let now = t("2026-01-05T12:00:00Z");
    let once = |at: &str| {
        ScheduleSpec::at(t(at))
            .compile(chrono_tz::UTC)
            .expect("valid")
    };
    // Passed, or exactly now: its instant is the first fire after the count start.
    for at in ["2026-01-05T11:00:00Z", "2026-01-05T12:00:00Z"] {
        let s = once(at);
        let from = s.slots_counted_after(now);
        assert_eq!(s.next_after(from), Some(t(at)));
    }
    // Still to come, and every other kind: from now.
    assert_eq!(once("2026-01-05T13:00:00Z").slots_counted_after(now), now);
    assert_eq!(compile("0 0 * * * *", "UTC").slots_counted_after(now), now);
    let every = ScheduleSpec::every(Duration::from_secs(60))
        .compile(chrono_tz::UTC)
        .expect("valid");
    assert_eq!(every.slots_counted_after(now), now);
}

/// The typed calendar builders (`daily_at`, `weekly_on`, `monthly_on`,
/// `monthly_on_last_day`): their expressions, their fires in a zone, and
/// their errors.
mod typed {
    use super::*;
    use chrono::{NaiveTime, Weekday};

    fn at(h: u32, m: u32, s: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, s).expect("a time")
    }

    fn fires(spec: ScheduleSpec, from: &str, n: usize) -> Vec<String> {
        let s = spec.compile(chrono_tz::UTC).expect("valid");
        s.preview(from.parse().expect("instant"), n)
            .iter()
            .map(|f| f.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .collect()
    }

    #[test]
    fn daily_at_fires_at_the_local_time_across_a_dst_change() {
        let spec = ScheduleSpec::daily_at(at(9, 30, 15)).in_tz("Europe/Berlin");
        assert_eq!(spec.to_string(), "cron \"15 30 9 * * *\" in Europe/Berlin");
        // The last Sunday of March 2026 is the 29th: 09:30 is 08:30 UTC
        // before, 07:30 UTC after.
        assert_eq!(
            fires(spec, "2026-03-28T00:00:00Z", 2),
            ["2026-03-28T08:30:15Z", "2026-03-29T07:30:15Z"]
        );
        // Fractions of a second are dropped.
        let fine = NaiveTime::from_hms_milli_opt(6, 0, 1, 999).expect("a time");
        assert_eq!(
            ScheduleSpec::daily_at(fine),
            ScheduleSpec::cron("1 0 6 * * *")
        );
    }

    #[test]
    fn weekly_on_fires_on_each_day_given() {
        let spec = ScheduleSpec::weekly_on(&[Weekday::Sun, Weekday::Wed], at(18, 0, 0));
        assert_eq!(spec, ScheduleSpec::cron("0 0 18 * * SUN,WED"));
        // Monday 2026-01-05.
        assert_eq!(
            fires(spec, "2026-01-05T00:00:00Z", 3),
            [
                "2026-01-07T18:00:00Z",
                "2026-01-11T18:00:00Z",
                "2026-01-14T18:00:00Z"
            ]
        );
    }

    #[test]
    fn monthly_on_skips_months_without_the_day_and_the_last_day_does_not() {
        assert_eq!(
            fires(
                ScheduleSpec::monthly_on(31, at(12, 0, 0)),
                "2026-01-01T00:00:00Z",
                3
            ),
            [
                "2026-01-31T12:00:00Z",
                "2026-03-31T12:00:00Z",
                "2026-05-31T12:00:00Z"
            ]
        );
        assert_eq!(
            fires(
                ScheduleSpec::monthly_on_last_day(at(12, 0, 0)),
                "2028-01-01T00:00:00Z",
                3
            ),
            [
                "2028-01-31T12:00:00Z",
                "2028-02-29T12:00:00Z",
                "2028-03-31T12:00:00Z"
            ]
        );
    }

    #[test]
    fn bad_days_fail_at_compile_naming_the_field() {
        for day in [0, 32] {
            let err = ScheduleSpec::monthly_on(day, at(8, 0, 0))
                .compile(chrono_tz::UTC)
                .expect_err("out of range");
            assert!(
                matches!(&err, ScheduleError::InvalidCron { field: "day-of-month", value, .. } if *value == day.to_string()),
                "{err:?}"
            );
        }
        let err = ScheduleSpec::weekly_on(&[], at(8, 0, 0))
            .compile(chrono_tz::UTC)
            .expect_err("no day");
        assert!(
            matches!(&err, ScheduleError::InvalidCron { field: "day-of-week", value, .. } if value == "none"),
            "{err:?}"
        );
    }
}
