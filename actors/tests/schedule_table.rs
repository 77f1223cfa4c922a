//! Table-driven test of the schedule engine: each case is a schedule, a zone,
//! a start instant and the expected next fires written out as RFC 3339.
//!
//! A case's expected list is followed from the start: each entry is the next
//! fire after the previous one (strictly), and `EXHAUSTED` means that
//! [`Schedule::next_fire`] must then report [`NextFire::Exhausted`].

use chrono::{DateTime, Utc};
use cronactor_actors::schedule::{
    DstPolicy, FoldPolicy, GapPolicy, NextFire, Schedule, ScheduleSpec,
};
use std::time::Duration;

const EXHAUSTED: &str = "EXHAUSTED";

struct Case {
    name: &'static str,
    spec: ScheduleSpec,
    from: &'static str,
    want: &'static [&'static str],
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test instants are RFC 3339")
}

fn cron(expr: &str, tz: &str) -> ScheduleSpec {
    ScheduleSpec::cron(expr).in_tz(tz)
}

fn policy(gap: GapPolicy, fold: FoldPolicy) -> DstPolicy {
    DstPolicy { gap, fold }
}

fn case(
    name: &'static str,
    spec: ScheduleSpec,
    from: &'static str,
    want: &'static [&'static str],
) -> Case {
    Case {
        name,
        spec,
        from,
        want,
    }
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use FoldPolicy::{Both, Last};
    use GapPolicy::{RunAtTransition, Skip};
    let skip = policy(Skip, FoldPolicy::First);
    vec![
        // --- Dialect, in UTC. 2026-01-01 is a Thursday.
        case("every second", cron("* * * * * *", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"]),
        case("every five minutes, seconds field", cron("0 */5 * * * *", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"]),
        case("every five minutes, crontab", cron("*/5 * * * *", "UTC"), "2026-01-01T00:02:00Z",
            &["2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"]),
        case("weekday range by name", cron("15 30 2 * * Mon-Fri", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-01T02:30:15Z", "2026-01-02T02:30:15Z", "2026-01-05T02:30:15Z"]),
        case("Sundays at noon", cron("0 0 12 * * Sun", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-04T12:00:00Z", "2026-01-11T12:00:00Z"]),
        case("office hours", cron("0 30 9-17 * * Mon-Fri", "UTC"), "2026-01-02T16:45:00Z",
            &["2026-01-02T17:30:00Z", "2026-01-05T09:30:00Z", "2026-01-05T10:30:00Z"]),
        case("yearly, year boundary", cron("0 0 0 1 1 *", "UTC"), "2026-01-01T00:00:00Z",
            &["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
        case("crontab 1-5 is Monday to Friday", cron("0 9 * * 1-5", "UTC"), "2026-01-03T00:00:00Z",
            &["2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z"]),
        case("crontab 0 is Sunday", cron("0 9 * * 0", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-04T09:00:00Z", "2026-01-11T09:00:00Z"]),
        case("crontab 7 is Sunday", cron("0 9 * * 7", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-04T09:00:00Z", "2026-01-11T09:00:00Z"]),
        case("numeric range ending on 7", cron("0 9 * * 5-7", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-02T09:00:00Z", "2026-01-03T09:00:00Z", "2026-01-04T09:00:00Z", "2026-01-09T09:00:00Z"]),
        case("named range ending on Sunday", cron("0 9 * * Fri-Sun", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-02T09:00:00Z", "2026-01-03T09:00:00Z", "2026-01-04T09:00:00Z", "2026-01-09T09:00:00Z"]),
        case("day-of-month OR day-of-week", cron("0 12 1 * Mon", "UTC"), "2026-01-20T00:00:00Z",
            &["2026-01-26T12:00:00Z", "2026-02-01T12:00:00Z", "2026-02-02T12:00:00Z", "2026-02-09T12:00:00Z"]),
        case("? in day-of-month", cron("0 0 12 ? * MON", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-05T12:00:00Z", "2026-01-12T12:00:00Z"]),
        case("? in day-of-week", cron("0 0 12 13 * ?", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-13T12:00:00Z", "2026-02-13T12:00:00Z"]),
        case("*/n day-of-month ANDs with day-of-week", cron("0 0 12 */10 * Mon", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-05-11T12:00:00Z"]),
        case("month names, any case", cron("0 0 0 1 jan,JUL *", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"]),
        case("weekday names, any case", cron("0 0 8 * * mOn,wEd", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-05T08:00:00Z", "2026-01-07T08:00:00Z"]),
        case("a/n: from a, every n", cron("0 5/20 * * * *", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-01T00:05:00Z", "2026-01-01T00:25:00Z", "2026-01-01T00:45:00Z", "2026-01-01T01:05:00Z"]),
        case("a-b/n", cron("0 0 1-10/3 * * *", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-01T01:00:00Z", "2026-01-01T04:00:00Z", "2026-01-01T07:00:00Z", "2026-01-01T10:00:00Z", "2026-01-02T01:00:00Z"]),
        case("list", cron("0 0 6,18 * * *", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-01T06:00:00Z", "2026-01-01T18:00:00Z"]),
        case("L: last day of month", cron("0 0 0 L * *", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"]),
        case("L-3", cron("0 0 0 L-3 * *", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-28T00:00:00Z", "2026-02-25T00:00:00Z"]),
        case("LW: last weekday", cron("0 0 0 LW * *", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z", "2026-03-31T00:00:00Z"]),
        case("15W: nearest weekday", cron("0 0 0 15W * *", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-15T00:00:00Z", "2026-02-16T00:00:00Z", "2026-03-16T00:00:00Z"]),
        case("1W does not cross into the previous month", cron("0 0 0 1W * *", "UTC"), "2026-07-15T00:00:00Z",
            &["2026-08-03T00:00:00Z", "2026-09-01T00:00:00Z"]),
        case("5L: last Friday", cron("0 0 0 * * 5L", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z"]),
        case("FRIL: last Friday by name", cron("0 0 0 ? * FRIL", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z"]),
        case("1#2: second Monday", cron("0 0 0 ? * 1#2", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-12T00:00:00Z", "2026-02-09T00:00:00Z"]),
        case("MON#2: second Monday by name", cron("0 0 0 ? * MON#2", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-12T00:00:00Z", "2026-02-09T00:00:00Z"]),
        case("Feb 29, crontab", cron("0 0 29 2 *", "UTC"), "2025-01-01T00:00:00Z",
            &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]),
        case("Feb 29, seconds field", cron("0 0 0 29 2 *", "UTC"), "2025-01-01T00:00:00Z",
            &["2028-02-29T00:00:00Z"]),
        case("Feb 29 from a common year", cron("0 0 12 29 2 *", "UTC"), "2027-01-01T00:00:00Z",
            &["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z"]),
        case("Feb 29 skips 2100, a century that is not a leap year", cron("0 0 12 29 2 *", "UTC"), "2096-03-01T00:00:00Z",
            &["2104-02-29T12:00:00Z"]),
        case("day 31 skips the months without it", cron("0 0 12 31 * *", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-31T12:00:00Z", "2026-03-31T12:00:00Z", "2026-05-31T12:00:00Z", "2026-07-31T12:00:00Z",
              "2026-08-31T12:00:00Z", "2026-10-31T12:00:00Z", "2026-12-31T12:00:00Z"]),
        case("last second of the day across the year boundary", cron("59 59 23 * * *", "UTC"), "2026-12-31T23:59:58Z",
            &["2026-12-31T23:59:59Z", "2027-01-01T23:59:59Z"]),
        case("year field, single year", cron("0 0 0 1 1 * 2030", "UTC"), "2026-01-01T00:00:00Z",
            &["2030-01-01T00:00:00Z", EXHAUSTED]),
        case("year field, range with step", cron("0 0 12 25 12 * 2026-2030/2", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-12-25T12:00:00Z", "2028-12-25T12:00:00Z", "2030-12-25T12:00:00Z", EXHAUSTED]),
        case("year field *", cron("0 30 10 * * * *", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-01T10:30:00Z", "2026-01-02T10:30:00Z"]),
        case("last minute of the year", cron("0 59 23 31 12 *", "UTC"), "2026-12-31T23:58:00Z",
            &["2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"]),
        case("every second across the year boundary", cron("* * * * * *", "UTC"), "2026-12-31T23:59:59Z",
            &["2027-01-01T00:00:00Z"]),
        case("@hourly", cron("@hourly", "UTC"), "2026-01-01T00:30:00Z",
            &["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]),
        case("@weekly", cron("@weekly", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]),
        case("@monthly", cron("@monthly", "UTC"), "2026-01-01T00:00:00Z",
            &["2026-02-01T00:00:00Z"]),
        case("@annually", cron("@annually", "UTC"), "2026-01-01T00:00:00Z",
            &["2027-01-01T00:00:00Z"]),

        // --- America/New_York: spring forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z),
        // fall back 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z).
        case("NY gap: fixed time fires at the transition", cron("0 30 2 * * *", "America/New_York"), "2026-03-07T12:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
        case("NY gap: start one second before the transition", cron("0 30 2 * * *", "America/New_York"), "2026-03-08T06:59:59Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
        case("NY gap: crontab fixed time", cron("30 2 * * *", "America/New_York"), "2026-03-07T12:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
        case("NY gap: Skip", cron("0 30 2 * * *", "America/New_York").dst(skip), "2026-03-07T12:00:00Z",
            &["2026-03-09T06:30:00Z"]),
        case("NY gap: several gap times collapse into one fire", cron("0 0,30 2 * * *", "America/New_York"), "2026-03-07T12:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z", "2026-03-09T06:30:00Z"]),
        case("NY gap: gap fire and 03:00 are one fire", cron("0 0 2,3 * * *", "America/New_York"), "2026-03-07T12:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"]),
        case("NY gap: 03:00 is not moved", cron("0 0 3 * * *", "America/New_York"), "2026-03-07T12:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T07:00:00Z"]),
        case("NY gap: */30 follows real time", cron("0 */30 * * * *", "America/New_York"), "2026-03-08T06:15:00Z",
            &["2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"]),
        case("NY fold: fixed time fires at the first occurrence", cron("0 30 1 * * *", "America/New_York"), "2026-10-31T12:00:00Z",
            &["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]),
        case("NY fold: Last", cron("0 30 1 * * *", "America/New_York").dst(policy(RunAtTransition, Last)), "2026-10-31T12:00:00Z",
            &["2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"]),
        case("NY fold: Both", cron("0 30 1 * * *", "America/New_York").dst(policy(RunAtTransition, Both)), "2026-10-31T12:00:00Z",
            &["2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"]),
        case("NY fold: */30 fires at every real instant, in order", cron("0 */30 * * * *", "America/New_York"), "2026-11-01T04:45:00Z",
            &["2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"]),
        case("NY fold: */15 fires at every real instant", cron("0 */15 * * * *", "America/New_York"), "2026-11-01T04:50:00Z",
            &["2026-11-01T05:00:00Z", "2026-11-01T05:15:00Z", "2026-11-01T05:30:00Z", "2026-11-01T05:45:00Z",
              "2026-11-01T06:00:00Z", "2026-11-01T06:15:00Z", "2026-11-01T06:30:00Z", "2026-11-01T06:45:00Z",
              "2026-11-01T07:00:00Z"]),
        case("NY: 02:00 in the gap and after the fold", cron("0 0 2 * * *", "America/New_York"), "2026-03-07T12:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"]),
        case("NY: 02:00 after the fold is once", cron("0 0 2 * * *", "America/New_York"), "2026-10-31T12:00:00Z",
            &["2026-11-01T07:00:00Z", "2026-11-02T07:00:00Z"]),
        case("NY fold: hourly", cron("0 0 * * * *", "America/New_York"), "2026-11-01T04:30:00Z",
            &["2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"]),

        // --- Europe/London: 2026-03-29 01:00 GMT -> 02:00 BST (01:00Z); 2026-10-25 02:00 BST -> 01:00 GMT (01:00Z).
        case("London gap", cron("0 30 1 * * *", "Europe/London"), "2026-03-28T12:00:00Z",
            &["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]),
        case("London fold", cron("0 30 1 * * *", "Europe/London"), "2026-10-24T12:00:00Z",
            &["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]),
        case("London fold, real time", cron("0 15 * * * *", "Europe/London"), "2026-10-25T00:00:00Z",
            &["2026-10-25T00:15:00Z", "2026-10-25T01:15:00Z", "2026-10-25T02:15:00Z"]),
        case("London gap, real time", cron("0 */20 * * * *", "Europe/London"), "2026-03-29T00:30:00Z",
            &["2026-03-29T00:40:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:20:00Z"]),

        // --- Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z); 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z).
        case("Berlin gap", cron("0 30 2 * * *", "Europe/Berlin"), "2026-03-28T12:00:00Z",
            &["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]),
        case("Berlin fold: Both", cron("0 30 2 * * *", "Europe/Berlin").dst(policy(RunAtTransition, Both)), "2026-10-24T12:00:00Z",
            &["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-26T01:30:00Z"]),
        case("Berlin weekdays across the change", cron("0 0 9 * * Mon-Fri", "Europe/Berlin"), "2026-03-27T00:00:00Z",
            &["2026-03-27T08:00:00Z", "2026-03-30T07:00:00Z"]),

        // --- Australia/Sydney (southern hemisphere): 2026-04-05 03:00 AEDT -> 02:00 AEST at 16:00Z
        // on the 4th; 2026-10-04 02:00 AEST -> 03:00 AEDT at 16:00Z on the 3rd.
        case("Sydney October gap", cron("0 30 2 * * *", "Australia/Sydney"), "2026-10-02T17:00:00Z",
            &["2026-10-03T16:00:00Z", "2026-10-04T15:30:00Z"]),
        case("Sydney April fold", cron("0 30 2 * * *", "Australia/Sydney"), "2026-04-04T00:00:00Z",
            &["2026-04-04T15:30:00Z", "2026-04-05T16:30:00Z"]),

        // --- Midnight transitions. America/Havana: 2026-03-08 00:00 CST -> 01:00 CDT at 05:00Z;
        // 2026-11-01 01:00 CDT -> 00:00 CST at 05:00Z (midnight happens twice).
        case("Havana: midnight does not exist", cron("@daily", "America/Havana"), "2026-03-07T12:00:00Z",
            &["2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"]),
        case("Havana: midnight twice, First", cron("@daily", "America/Havana"), "2026-10-31T12:00:00Z",
            &["2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"]),
        case("Havana: midnight twice, Last", cron("@daily", "America/Havana").dst(policy(RunAtTransition, Last)), "2026-10-31T12:00:00Z",
            &["2026-11-01T05:00:00Z", "2026-11-02T05:00:00Z"]),
        // America/Santiago: 2026-04-05 00:00 -03 -> 2026-04-04 23:00 -04 at 03:00Z (the fold is the
        // evening before, and midnight -03 never comes); 2026-09-06 00:00 -04 -> 01:00 -03 at 04:00Z.
        case("Santiago: the fold repeats the previous evening", cron("0 30 23 * * *", "America/Santiago"), "2026-04-04T12:00:00Z",
            &["2026-04-05T02:30:00Z", "2026-04-06T03:30:00Z"]),
        case("Santiago: the fold repeats the previous evening, Both", cron("0 30 23 * * *", "America/Santiago").dst(policy(RunAtTransition, Both)), "2026-04-04T12:00:00Z",
            &["2026-04-05T02:30:00Z", "2026-04-05T03:30:00Z", "2026-04-06T03:30:00Z"]),
        case("Santiago: Sunday midnight after the fold", cron("0 0 0 * * Sun", "America/Santiago"), "2026-04-04T12:00:00Z",
            &["2026-04-05T04:00:00Z", "2026-04-12T04:00:00Z"]),
        case("Santiago: midnight does not exist", cron("@daily", "America/Santiago"), "2026-09-05T12:00:00Z",
            &["2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z"]),
        // Asia/Tehran: 2021-03-22 00:00 +0330 -> 01:00 +0430 at 20:30Z on the 21st; no DST since 2022.
        case("Tehran: midnight does not exist", cron("@daily", "Asia/Tehran"), "2021-03-21T12:00:00Z",
            &["2021-03-21T20:30:00Z", "2021-03-22T19:30:00Z"]),
        case("Tehran: no DST since 2022", cron("0 30 0 * * *", "Asia/Tehran"), "2026-03-20T12:00:00Z",
            &["2026-03-20T21:00:00Z", "2026-03-21T21:00:00Z", "2026-03-22T21:00:00Z"]),

        // --- Australia/Lord_Howe: a 30-minute shift. 2026-04-05 02:00 (+11) -> 01:30 (+10:30) at 15:00Z
        // on the 4th; 2026-10-04 02:00 (+10:30) -> 02:30 (+11) at 15:30Z on the 3rd.
        case("Lord Howe gap", cron("0 15 2 * * *", "Australia/Lord_Howe"), "2026-10-03T00:00:00Z",
            &["2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"]),
        case("Lord Howe fold", cron("0 45 1 * * *", "Australia/Lord_Howe"), "2026-04-04T00:00:00Z",
            &["2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"]),
        case("Lord Howe fold, real time", cron("0 */15 * * * *", "Australia/Lord_Howe"), "2026-04-04T14:40:00Z",
            &["2026-04-04T14:45:00Z", "2026-04-04T15:00:00Z", "2026-04-04T15:15:00Z", "2026-04-04T15:30:00Z"]),

        // --- Pacific/Chatham: +12:45 / +13:45. 2026-04-05 03:45 -> 02:45 at 14:00Z on the 4th;
        // 2026-09-27 02:45 -> 03:45 at 14:00Z on the 26th.
        case("Chatham gap", cron("0 0 3 * * *", "Pacific/Chatham"), "2026-09-26T00:00:00Z",
            &["2026-09-26T14:00:00Z", "2026-09-27T13:15:00Z"]),
        case("Chatham gap: start one second before the transition", cron("10/49 41-45 2 * * *", "Pacific/Chatham"), "2025-09-27T13:59:59Z",
            &["2025-09-27T14:00:00Z", "2025-09-28T12:56:10Z", "2025-09-28T12:56:59Z"]),
        case("Chatham fold", cron("0 0 3 * * *", "Pacific/Chatham"), "2026-04-04T00:00:00Z",
            &["2026-04-04T13:15:00Z", "2026-04-05T14:15:00Z"]),
        case("Chatham 45-minute offset", cron("0 0 12 * * *", "Pacific/Chatham"), "2026-06-01T00:00:00Z",
            &["2026-06-01T23:15:00Z", "2026-06-02T23:15:00Z"]),

        // --- Asia/Tokyo: +09:00, no DST.
        case("Tokyo: strictly after", cron("0 0 9 * * *", "Asia/Tokyo"), "2026-03-08T00:00:00Z",
            &["2026-03-09T00:00:00Z", "2026-03-10T00:00:00Z"]),
        case("Tokyo: 02:30 exists every day", cron("0 30 2 * * *", "Asia/Tokyo"), "2026-03-08T00:00:00Z",
            &["2026-03-08T17:30:00Z", "2026-03-09T17:30:00Z"]),

        // --- Bounds.
        case("not_before and not_after", ScheduleSpec::cron("0 0 * * * *")
                .not_before(t("2026-01-01T10:30:00Z")).not_after(t("2026-01-01T12:00:00Z")),
            "2026-01-01T00:00:00Z",
            &["2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z", EXHAUSTED]),
        case("max_fires", ScheduleSpec::cron("0 0 0 * * *").max_fires(2), "2026-01-01T00:00:00Z",
            &["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", EXHAUSTED]),

        // --- Intervals: epoch + offset + k * every, in UTC whatever the zone.
        case("interval with offset", ScheduleSpec::every(Duration::from_secs(300))
                .offset(Duration::from_secs(30)).in_tz("America/New_York"),
            "2026-03-08T06:58:00Z",
            &["2026-03-08T07:00:30Z", "2026-03-08T07:05:30Z"]),
        case("interval in milliseconds", ScheduleSpec::every(Duration::from_millis(1500)),
            "1970-01-01T00:00:00Z",
            &["1970-01-01T00:00:01.500Z", "1970-01-01T00:00:03Z"]),
        case("interval across a DST change", ScheduleSpec::every(Duration::from_secs(3600)).in_tz("Europe/Berlin"),
            "2026-03-29T00:30:00Z",
            &["2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"]),
        case("interval with max_fires", ScheduleSpec::every(Duration::from_secs(60)).max_fires(1),
            "2026-01-01T00:00:30Z",
            &["2026-01-01T00:01:00Z", EXHAUSTED]),

        // --- One-shots.
        case("one-shot", ScheduleSpec::at(t("2026-07-01T12:00:00Z")), "2026-01-01T00:00:00Z",
            &["2026-07-01T12:00:00Z", EXHAUSTED]),
        case("one-shot in the past", ScheduleSpec::at(t("2025-07-01T12:00:00Z")), "2026-01-01T00:00:00Z",
            &[EXHAUSTED]),
        case("one-shot after not_after", ScheduleSpec::at(t("2026-07-01T12:00:00Z"))
                .not_after(t("2026-06-30T00:00:00Z")),
            "2026-01-01T00:00:00Z",
            &[EXHAUSTED]),
    ]
}

#[test]
fn table() {
    let cases = cases();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let schedule: Schedule = match case.spec.compile(chrono_tz::UTC) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{}: does not compile: {e}", case.name));
                continue;
            }
        };
        let mut cursor = t(case.from);
        let mut got = Vec::new();
        for (fired, want) in case.want.iter().enumerate() {
            let next = schedule.next_fire(cursor, fired as u64);
            match next {
                NextFire::At(at) => {
                    got.push(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
                    cursor = at;
                }
                NextFire::Exhausted => got.push(EXHAUSTED.to_string()),
            }
            if got.last().map(String::as_str) != Some(*want) {
                break;
            }
        }
        if got != case.want {
            failures.push(format!(
                "{}: want {:?}, got {:?}",
                case.name, case.want, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
