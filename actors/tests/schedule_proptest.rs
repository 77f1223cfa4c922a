//! Property tests of the schedule engine against a brute-force reference.
//!
//! Random expressions are generated from a grammar over the fields together
//! with a structured copy that the reference evaluates with its own simple
//! per-field checks. The reference walks real time over a window (second by
//! second for 6-field expressions, minute by minute for 5-field ones), maps
//! each instant to the zone's wall clock with chrono-tz, and applies the DST
//! rules directly: fixed-time jobs pick fold occurrences by policy and fire
//! once at the end of a gap that hides one of their times; other jobs fire at
//! every instant whose wall-clock time matches. The engine's fires over the
//! window must be exactly the reference's.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use cronactor_actors::schedule::{DstPolicy, FoldPolicy, GapPolicy, ScheduleError, ScheduleSpec};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

const ZONES: [&str; 7] = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Tokyo",
];

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 8] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"];

// ---------------------------------------------------------------------------
// The generated expression: text plus a structure the reference evaluates.

/// One item of a plain field (a value, range or step).
#[derive(Clone, Debug)]
enum Item {
    Any,
    Value(u32),
    Range(u32, u32),
    Step { lo: u32, hi: u32, step: u32 },
}

impl Item {
    fn matches(&self, v: u32) -> bool {
        match *self {
            Item::Any => true,
            Item::Value(a) => v == a,
            Item::Range(a, b) => a <= v && v <= b,
            Item::Step { lo, hi, step } => lo <= v && v <= hi && (v - lo).is_multiple_of(step),
        }
    }
}

/// An item of the day-of-month field.
#[derive(Clone, Debug)]
enum DomItem {
    Plain(Item),
    Last(u32),
    LastWeekday,
    NearestWeekday(u32),
}

/// An item of the day-of-week field (weekdays 0-7, 0 and 7 Sunday).
#[derive(Clone, Debug)]
enum DowItem {
    Plain(Item),
    Last(u32),
    Nth(u32, u32),
}

#[derive(Clone, Debug)]
struct Field<T> {
    text: String,
    items: Vec<T>,
}

#[derive(Clone, Debug)]
struct Expr {
    seconds: Option<Field<Item>>,
    minutes: Field<Item>,
    hours: Field<Item>,
    dom: Field<DomItem>,
    months: Field<Item>,
    dow: Field<DowItem>,
    years: Option<Field<Item>>,
}

impl Expr {
    fn text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.seconds {
            parts.push(s.text.clone());
        }
        for f in [
            &self.minutes.text,
            &self.hours.text,
            &self.dom.text,
            &self.months.text,
            &self.dow.text,
        ] {
            parts.push(f.clone());
        }
        if let Some(y) = &self.years {
            parts.push(y.text.clone());
        }
        parts.join(" ")
    }

    fn fixed_time(&self) -> bool {
        !self.minutes.text.starts_with('*') && !self.hours.text.starts_with('*')
    }

    fn second_matches(&self, s: u32) -> bool {
        match &self.seconds {
            Some(f) => f.items.iter().any(|i| i.matches(s)),
            None => s == 0,
        }
    }

    /// Everything but the seconds.
    fn minute_matches(&self, t: NaiveDateTime) -> bool {
        let any = |f: &Field<Item>, v: u32| f.items.iter().any(|i| i.matches(v));
        any(&self.minutes, t.minute())
            && any(&self.hours, t.hour())
            && any(&self.months, t.month())
            && self.years.as_ref().is_none_or(|f| any(f, t.year() as u32))
            && self.day_matches(t.date())
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom_star = self.dom.text.starts_with(['*', '?']);
        let dow_star = self.dow.text.starts_with(['*', '?']);
        let dom = self.dom.text == "?" || self.dom.items.iter().any(|i| dom_item_matches(i, date));
        let dow = self.dow.text == "?" || self.dow.items.iter().any(|i| dow_item_matches(i, date));
        if dom_star || dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }
}

fn last_day(date: NaiveDate) -> u32 {
    (28..=31)
        .rev()
        .find(|&d| date.with_day(d).is_some())
        .expect("every month has 28 days")
}

fn is_weekend(date: NaiveDate) -> bool {
    date.weekday().num_days_from_monday() >= 5
}

fn dom_item_matches(item: &DomItem, date: NaiveDate) -> bool {
    let day = date.day();
    let last = last_day(date);
    match item {
        DomItem::Plain(i) => i.matches(day),
        DomItem::Last(n) => last > *n && day == last - n,
        DomItem::LastWeekday => {
            let mut d = last;
            while is_weekend(date.with_day(d).expect("valid day")) {
                d -= 1;
            }
            day == d
        }
        DomItem::NearestWeekday(n) => {
            let Some(target) = date.with_day(*n) else {
                return false;
            };
            let wd = target.weekday().num_days_from_sunday();
            let nearest = match wd {
                6 if *n == 1 => 3,
                6 => n - 1,
                0 if *n == last => n - 2,
                0 => n + 1,
                _ => *n,
            };
            day == nearest
        }
    }
}

fn dow_item_matches(item: &DowItem, date: NaiveDate) -> bool {
    let w = date.weekday().num_days_from_sunday();
    match item {
        DowItem::Plain(i) => i.matches(w) || (w == 0 && i.matches(7)),
        DowItem::Last(x) => w == x % 7 && date.day() + 7 > last_day(date),
        DowItem::Nth(x, k) => w == x % 7 && (date.day() - 1) / 7 + 1 == *k,
    }
}

// ---------------------------------------------------------------------------
// Generators.

/// How a number is written: names for months and weekdays, in a random case.
fn render(v: u32, names: Option<&'static [&'static str]>, base: u32, style: u8) -> String {
    match names {
        Some(names) if !style.is_multiple_of(3) => {
            let name = names[(v - base) as usize];
            match style % 3 {
                1 => name.to_ascii_uppercase(),
                _ => {
                    let mut c = name.chars();
                    c.next().map_or(String::new(), |f| {
                        f.to_ascii_uppercase().to_string() + c.as_str()
                    })
                }
            }
        }
        _ => v.to_string(),
    }
}

/// A plain item over `min..=max`; `max_width` bounds ranges, `min_step` bounds steps.
fn item(
    min: u32,
    max: u32,
    names: Option<&'static [&'static str]>,
    min_step: u32,
    max_width: u32,
) -> impl Strategy<Value = (String, Item)> {
    let names_base = if max == 7 { 0 } else { min };
    prop_oneof![
        (min..=max, any::<u8>())
            .prop_map(move |(v, s)| (render(v, names, names_base, s), Item::Value(v))),
        (min..=max, 0..=max_width, any::<u8>()).prop_map(move |(a, w, s)| {
            let b = (a + w).min(max);
            (
                format!(
                    "{}-{}",
                    render(a, names, names_base, s),
                    render(b, names, names_base, s)
                ),
                Item::Range(a, b),
            )
        }),
        (
            min..=max,
            0..=max - min,
            min_step..=max.max(min_step),
            0..3u8
        )
            .prop_map(move |(a, w, step, form)| {
                match form {
                    0 => (
                        format!("*/{step}"),
                        Item::Step {
                            lo: min,
                            hi: max,
                            step,
                        },
                    ),
                    1 => (
                        format!("{a}/{step}"),
                        Item::Step {
                            lo: a,
                            hi: max,
                            step,
                        },
                    ),
                    _ => {
                        let b = (a + w).min(max);
                        (format!("{a}-{b}/{step}"), Item::Step { lo: a, hi: b, step })
                    }
                }
            }),
    ]
}

/// A comma list of 1-3 items, or `*` with probability `star` / 10.
fn field(
    min: u32,
    max: u32,
    names: Option<&'static [&'static str]>,
    min_step: u32,
    max_width: u32,
    star: u32,
) -> BoxedStrategy<Field<Item>> {
    let list = prop::collection::vec(item(min, max, names, min_step, max_width), 1..=3).prop_map(
        |items| Field {
            text: items
                .iter()
                .map(|(t, _)| t.clone())
                .collect::<Vec<_>>()
                .join(","),
            items: items.into_iter().map(|(_, i)| i).collect(),
        },
    );
    if star == 0 {
        return list.boxed();
    }
    prop_oneof![
        star => Just(Field { text: "*".into(), items: vec![Item::Any] }),
        (10 - star) => list,
    ]
    .boxed()
}

fn dom_field() -> impl Strategy<Value = Field<DomItem>> {
    let dom_item = prop_oneof![
        3 => item(1, 31, None, 2, 6).prop_map(|(t, i)| (t, DomItem::Plain(i))),
        1 => Just(("L".to_string(), DomItem::Last(0))),
        1 => (1..=5u32).prop_map(|n| (format!("L-{n}"), DomItem::Last(n))),
        1 => Just(("LW".to_string(), DomItem::LastWeekday)),
        1 => (1..=31u32, any::<bool>()).prop_map(|(n, lower)| (format!("{n}{}", if lower { "w" } else { "W" }), DomItem::NearestWeekday(n))),
    ];
    let list = prop::collection::vec(dom_item, 1..=3).prop_map(|items| Field {
        text: items
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<Vec<_>>()
            .join(","),
        items: items.into_iter().map(|(_, i)| i).collect(),
    });
    prop_oneof![
        4 => Just(Field { text: "*".into(), items: vec![DomItem::Plain(Item::Any)] }),
        1 => Just(Field { text: "?".into(), items: vec![] }),
        1 => (2..=10u32).prop_map(|s| Field { text: format!("*/{s}"), items: vec![DomItem::Plain(Item::Step { lo: 1, hi: 31, step: s })] }),
        4 => list,
    ]
}

fn dow_field() -> impl Strategy<Value = Field<DowItem>> {
    let weekday = (0..=7u32, any::<u8>()).prop_map(|(w, s)| (render(w, Some(&WEEKDAYS), 0, s), w));
    let dow_item = prop_oneof![
        3 => item(0, 7, Some(&WEEKDAYS), 2, 3).prop_map(|(t, i)| (t, DowItem::Plain(i))),
        1 => weekday.clone().prop_map(|(t, w)| (format!("{t}L"), DowItem::Last(w))),
        1 => (weekday, 1..=5u32).prop_map(|((t, w), k)| (format!("{t}#{k}"), DowItem::Nth(w, k))),
    ];
    let list = prop::collection::vec(dow_item, 1..=3).prop_map(|items| Field {
        text: items
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<Vec<_>>()
            .join(","),
        items: items.into_iter().map(|(_, i)| i).collect(),
    });
    prop_oneof![
        4 => Just(Field { text: "*".into(), items: vec![DowItem::Plain(Item::Any)] }),
        1 => Just(Field { text: "?".into(), items: vec![] }),
        4 => list,
    ]
}

/// Hours biased towards the small hours, where the DST changes happen.
fn hour_field() -> impl Strategy<Value = Field<Item>> {
    prop_oneof![
        3 => field(0, 23, None, 2, 4, 3),
        2 => prop::collection::vec(0..=4u32, 1..=3).prop_map(|hs| Field {
            text: hs.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
            items: hs.into_iter().map(Item::Value).collect(),
        }),
    ]
}

fn month_field() -> impl Strategy<Value = Field<Item>> {
    field(1, 12, Some(&MONTHS), 2, 3, 8)
}

/// 6 or 7 fields: seconds kept sparse so that a two-day window stays small.
fn expr6() -> impl Strategy<Value = Expr> {
    (
        field(0, 59, None, 15, 2, 0),
        field(0, 59, None, 5, 10, 3),
        hour_field(),
        dom_field(),
        month_field(),
        dow_field(),
        prop_oneof![
            6 => Just(None),
            1 => Just(Some(Field { text: "*".into(), items: vec![Item::Any] })),
            1 => (2025..=2027u32, 0..=2u32).prop_map(|(a, w)| Some(Field { text: format!("{a}-{}", a + w), items: vec![Item::Range(a, a + w)] })),
        ],
    )
        .prop_map(|(s, mi, h, dom, mo, dow, years)| Expr { seconds: Some(s), minutes: mi, hours: h, dom, months: mo, dow, years })
}

/// 5 fields (crontab): minutes kept sparse; the calendar extensions matter more here.
fn expr5() -> impl Strategy<Value = Expr> {
    (
        field(0, 59, None, 10, 3, 1),
        hour_field(),
        dom_field(),
        month_field(),
        dow_field(),
    )
        .prop_map(|(mi, h, dom, mo, dow)| Expr {
            seconds: None,
            minutes: mi,
            hours: h,
            dom,
            months: mo,
            dow,
            years: None,
        })
}

fn policy() -> impl Strategy<Value = DstPolicy> {
    (
        prop_oneof![Just(GapPolicy::RunAtTransition), Just(GapPolicy::Skip)],
        prop_oneof![
            Just(FoldPolicy::First),
            Just(FoldPolicy::Last),
            Just(FoldPolicy::Both)
        ],
    )
        .prop_map(|(gap, fold)| DstPolicy { gap, fold })
}

// ---------------------------------------------------------------------------
// Zones and start instants.

fn offset(tz: Tz, t: i64) -> i32 {
    let utc = DateTime::from_timestamp(t, 0).expect("test instants are in range");
    tz.offset_from_utc_datetime(&utc.naive_utc())
        .fix()
        .local_minus_utc()
}

/// The zone's transitions in 2024-2028, found by probing every hour.
fn transitions(tz: Tz) -> Vec<i64> {
    static CACHE: OnceLock<Mutex<HashMap<Tz, Vec<i64>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(tz)
        .or_insert_with(|| {
            let start = Utc
                .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
                .single()
                .expect("valid")
                .timestamp();
            let end = Utc
                .with_ymd_and_hms(2029, 1, 1, 0, 0, 0)
                .single()
                .expect("valid")
                .timestamp();
            let mut found = Vec::new();
            let mut t = start;
            while t < end {
                if offset(tz, t) != offset(tz, t + 3600) {
                    let (mut lo, mut hi) = (t, t + 3600);
                    while hi - lo > 1 {
                        let mid = (lo + hi) / 2;
                        if offset(tz, mid) == offset(tz, t) {
                            lo = mid
                        } else {
                            hi = mid
                        }
                    }
                    found.push(hi);
                }
                t += 3600;
            }
            found
        })
        .clone()
}

/// A start instant: anywhere in 2024-2028, or within a day and a half before
/// (or a few hours after) one of the zone's transitions.
fn start_for(tz: Tz, near: Option<(usize, i64)>, anywhere: i64) -> i64 {
    let base = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .expect("valid")
        .timestamp();
    let trs = transitions(tz);
    match near {
        Some((i, delta)) if !trs.is_empty() => trs[i % trs.len()] + delta,
        _ => base + anywhere,
    }
}

// ---------------------------------------------------------------------------
// The reference.

/// Every fire in `(start, end]`, walking real time.
fn reference(expr: &Expr, tz: Tz, policy: DstPolicy, start: i64, end: i64) -> Vec<i64> {
    let fixed = expr.fixed_time();
    let local = |t: i64, off: i32| {
        DateTime::from_timestamp(t + i64::from(off), 0)
            .expect("in range")
            .naive_utc()
    };
    let mut fires = Vec::new();
    // Walk whole minutes; inside a minute, seconds share its offset (asserted).
    let mut m = start.div_euclid(60) * 60;
    while m <= end {
        let off = offset(tz, m);
        assert_eq!(off, offset(tz, m + 59), "a transition inside a minute");
        let prev = offset(tz, m - 1);
        if fixed && off > prev {
            // Spring forward at m: wall-clock times [m + prev, m + off) were skipped.
            let mut g = m + i64::from(prev);
            let mut hit = false;
            while g < m + i64::from(off) && !hit {
                let n = local(g, 0);
                hit = expr.minute_matches(n) && (0..60).any(|s| expr.second_matches(s));
                g += 60;
            }
            if hit && policy.gap == GapPolicy::RunAtTransition && m > start && m <= end {
                fires.push(m);
            }
        }
        let n0 = local(m, off);
        if expr.minute_matches(n0) {
            for s in 0..60 {
                let t = m + s;
                if t <= start || t > end || !expr.second_matches(s as u32) {
                    continue;
                }
                let n = local(t, off);
                let fire = if fixed {
                    match tz.from_local_datetime(&n) {
                        chrono::LocalResult::Ambiguous(first, last) => match policy.fold {
                            FoldPolicy::First => first.timestamp() == t,
                            FoldPolicy::Last => last.timestamp() == t,
                            FoldPolicy::Both => true,
                        },
                        _ => true,
                    }
                } else {
                    true
                };
                if fire && fires.last() != Some(&t) {
                    fires.push(t);
                }
            }
        }
        m += 60;
    }
    fires
}

fn engine(
    expr: &Expr,
    tz_name: &str,
    policy: DstPolicy,
    start: i64,
    end: i64,
) -> Result<Vec<i64>, ScheduleError> {
    let schedule = ScheduleSpec::cron(expr.text())
        .in_tz(tz_name)
        .dst(policy)
        .compile(chrono_tz::UTC)?;
    let mut fires = Vec::new();
    let mut cursor = DateTime::from_timestamp(start, 0).expect("in range");
    while let Some(at) = schedule.next_after(cursor) {
        assert!(at > cursor, "fires must be strictly increasing");
        if at.timestamp() > end {
            break;
        }
        fires.push(at.timestamp());
        cursor = at;
    }
    Ok(fires)
}

fn check(
    expr: &Expr,
    zone: usize,
    policy: DstPolicy,
    start: i64,
    window: i64,
) -> Result<(), TestCaseError> {
    let tz_name = ZONES[zone % ZONES.len()];
    let tz: Tz = tz_name.parse().expect("known zone");
    let end = start + window;
    let got = match engine(expr, tz_name, policy, start, end) {
        Ok(got) => got,
        // Day rules that can never match are rejected at compile time.
        Err(ScheduleError::InvalidCron { reason, .. }) if reason.contains("never matches") => {
            prop_assert!(reference(expr, tz, policy, start, end).is_empty());
            return Ok(());
        }
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "{:?} rejected: {e}",
                expr.text()
            )))
        }
    };
    let want = reference(expr, tz, policy, start, end);
    let show = |v: &[i64]| {
        v.iter()
            .take(12)
            .map(|t| {
                DateTime::from_timestamp(*t, 0)
                    .expect("in range")
                    .to_rfc3339()
            })
            .collect::<Vec<_>>()
    };
    if expr.fixed_time() && policy.fold != FoldPolicy::Both {
        // A fixed-time job never fires twice for one wall-clock time.
        let mut locals: Vec<i64> = got.iter().map(|&t| t + i64::from(offset(tz, t))).collect();
        let before = locals.len();
        locals.sort_unstable();
        locals.dedup();
        prop_assert_eq!(
            locals.len(),
            before,
            "{:?}: a wall-clock time fired twice",
            expr.text()
        );
    }
    prop_assert!(
        got == want,
        "{:?} in {tz_name} with {policy:?} from {}: engine {} fires {:?}, reference {} fires {:?}",
        expr.text(),
        show(&[start])[0],
        got.len(),
        show(&got),
        want.len(),
        show(&want),
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// 6- and 7-field expressions over two days, second by second.
    #[test]
    fn seconds_expressions_match_the_reference(
        expr in expr6(),
        zone in 0..ZONES.len(),
        policy in policy(),
        near in prop::option::weighted(0.7, (0..100usize, -129_600..14_400i64)),
        anywhere in 0..5 * 365 * 86_400i64,
    ) {
        let tz: Tz = ZONES[zone].parse().expect("known zone");
        check(&expr, zone, policy, start_for(tz, near, anywhere), 2 * 86_400)?;
    }

    /// 5-field expressions over eight days, minute by minute.
    #[test]
    fn crontab_expressions_match_the_reference(
        expr in expr5(),
        zone in 0..ZONES.len(),
        policy in policy(),
        near in prop::option::weighted(0.5, (0..100usize, -345_600..14_400i64)),
        anywhere in 0..5 * 365 * 86_400i64,
    ) {
        let tz: Tz = ZONES[zone].parse().expect("known zone");
        // Whole minutes: 5-field expressions only fire on them.
        let start = start_for(tz, near, anywhere).div_euclid(60) * 60;
        check(&expr, zone, policy, start, 8 * 86_400)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any string either compiles or is rejected with an error; nothing panics,
    /// and a compiled schedule answers without panicking.
    #[test]
    fn random_strings_never_panic(
        text in prop_oneof![any::<String>(), "[0-9A-Za-z*/,#?@ LW-]{0,40}", "([0-9*/,#?LW-]{1,6} ){4,6}[0-9*/,#?LW-]{1,6}"],
        zone in 0..ZONES.len(),
        at in any::<i64>(),
    ) {
        if let Ok(schedule) = ScheduleSpec::cron(text).in_tz(ZONES[zone]).compile(chrono_tz::UTC) {
            let after = DateTime::from_timestamp(at % 8_000_000_000_000, 0).unwrap_or_default();
            if let Some(next) = schedule.next_after(after) {
                prop_assert!(next > after);
            }
            let _ = schedule.preview(after, 3);
        }
    }
}
