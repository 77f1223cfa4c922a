//! The cron dialect: parsing an expression into one bitset per field, and
//! finding the next wall-clock time that matches.
//!
//! The search jumps field by field (year, month, day, hour, minute, second):
//! when a field does not match, it moves to the next allowed value of that
//! field and resets the smaller fields, so the cost does not depend on how far
//! away the next match is.

use super::calendar::{
    civil_from_days, days_from_civil, days_in_month, split_secs, weekday_from_days, SECS_PER_DAY,
};
use super::error::ScheduleError;

/// How many years past the start a search looks before concluding that an
/// expression never matches again. The Gregorian calendar repeats every 400
/// years (146 097 days, a whole number of weeks), so a match that exists at
/// all exists within that span.
const SEARCH_YEARS: i64 = 401;

/// Every second, minute, hour and month (months are bits 1 to 12).
const ALL_SECONDS: u64 = (1 << 60) - 1;
const ALL_MINUTES: u64 = (1 << 60) - 1;
const ALL_HOURS: u64 = (1 << 24) - 1;
const ALL_MONTHS: u64 = ((1 << 13) - 1) & !1;

/// Smallest value of the optional year field.
pub(crate) const YEAR_MIN: u32 = 1970;
/// Largest value of the optional year field.
pub(crate) const YEAR_MAX: u32 = 2099;

/// Days 1, 8, 15, 22 and 29: shifted left by the first day with a given
/// weekday, it gives every day of the month with that weekday.
const WEEKLY: u64 = 1 | 1 << 7 | 1 << 14 | 1 << 21 | 1 << 28;

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The fields of a cron expression, for parsing and error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

impl Field {
    /// The name used in error messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
            Field::Year => "year",
        }
    }

    /// Smallest and largest numeric value.
    fn range(self) -> (u32, u32) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
            Field::Year => (YEAR_MIN, YEAR_MAX),
        }
    }

    /// What the field accepts, for error messages.
    fn allowed(self) -> &'static str {
        match self {
            Field::Second | Field::Minute => "0-59",
            Field::Hour => "0-23",
            Field::DayOfMonth => "1-31, L, L-n, LW, nW, ?",
            Field::Month => "1-12 or JAN-DEC",
            Field::DayOfWeek => "0-7 (0 and 7 are Sunday) or SUN-SAT, nL, n#k, ?",
            Field::Year => "1970-2099",
        }
    }

    /// Names accepted in place of numbers, in value order from the field's minimum.
    fn names(self) -> &'static [&'static str] {
        match self {
            Field::Month => &MONTH_NAMES,
            Field::DayOfWeek => &WEEKDAY_NAMES,
            _ => &[],
        }
    }

    fn error(self, value: &str, reason: impl Into<String>) -> ScheduleError {
        ScheduleError::InvalidCron {
            field: self.name(),
            value: value.to_string(),
            allowed: self.allowed().to_string(),
            reason: reason.into(),
        }
    }
}

/// A parsed cron expression: one bitset per field, where bit `v` set means
/// value `v` is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CronExpr {
    seconds: u64,
    minutes: u64,
    hours: u64,
    months: u64,
    days: DayRule,
    years: Option<YearSet>,
    fixed_time: bool,
}

/// Which days of a month match: the day-of-month and day-of-week fields
/// together, since Quartz's `L`, `W` and `#` depend on the month's length and
/// on the weekday of its first day.
#[derive(Clone, Debug, PartialEq, Eq)]
struct DayRule {
    /// The day-of-month field starts with `*` or `?`.
    dom_star: bool,
    /// The day-of-week field starts with `*` or `?`.
    dow_star: bool,
    /// Every day matches (both fields unrestricted): skips the mask work.
    any_day: bool,
    /// Bit `d`: day `d` (1..=31).
    dom: u64,
    /// Bit `n`: the day `n` days before the last one (`L-n`; `L` is `n = 0`).
    dom_last: u64,
    /// `LW`: the last weekday (Monday to Friday) of the month.
    dom_last_weekday: bool,
    /// Bit `d`: the weekday nearest to day `d` within the month (`dW`).
    dom_nearest_weekday: u64,
    /// Bit `w`: weekday `w`, 0 = Sunday.
    dow: u8,
    /// `dow_nth[w]` bit `k`: the `k`-th weekday `w` of the month (`w#k`, k in 1..=5).
    dow_nth: [u8; 7],
    /// Bit `w`: the last weekday `w` of the month (`wL`).
    dow_last: u8,
}

/// The optional year field: bit `y - YEAR_MIN`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct YearSet([u64; 3]);

impl YearSet {
    fn insert(&mut self, y: u32) {
        let i = (y - YEAR_MIN) as usize;
        self.0[i / 64] |= 1 << (i % 64);
    }

    /// The first allowed year `>= y`.
    fn next_at_or_after(&self, y: i64) -> Option<i64> {
        let start = (y.max(i64::from(YEAR_MIN)) - i64::from(YEAR_MIN)) as usize;
        let len = (YEAR_MAX - YEAR_MIN + 1) as usize;
        (start..len)
            .find(|i| self.0[i / 64] & (1 << (i % 64)) != 0)
            .map(|i| i as i64 + i64::from(YEAR_MIN))
    }
}

/// The smallest set bit `>= from`, if any.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = bits & (u64::MAX << from);
    (rest != 0).then(|| rest.trailing_zeros())
}

/// Bits 1..=ndays.
fn month_days(ndays: u32) -> u64 {
    ((1u64 << (ndays + 1)) - 1) & !1
}

/// Bits `lo..=hi` stepping by `step`.
fn range_bits(lo: u32, hi: u32, step: u32) -> u64 {
    (lo..=hi)
        .step_by(step as usize)
        .fold(0, |bits, v| bits | 1 << v)
}

impl CronExpr {
    /// Parses an exclusion: as [`CronExpr::parse`], except that a 5-field
    /// expression matches every second of its minutes (a crontab line names
    /// minutes; as a fire time it means their first second, as an exclusion
    /// the whole minute).
    pub(crate) fn parse_exclusion(expr: &str) -> Result<Self, ScheduleError> {
        let f: Vec<&str> = expr.split_whitespace().collect();
        match f.len() {
            5 => Self::from_fields(["*", f[0], f[1], f[2], f[3], f[4]], None),
            _ => Self::parse(expr),
        }
    }

    /// Parses an expression of 5, 6 or 7 fields, or an `@` alias.
    pub(crate) fn parse(expr: &str) -> Result<Self, ScheduleError> {
        let trimmed = expr.trim();
        if trimmed.starts_with('@') {
            let fields: [&str; 6] = match trimmed.to_ascii_lowercase().as_str() {
                "@yearly" | "@annually" => ["0", "0", "0", "1", "1", "*"],
                "@monthly" => ["0", "0", "0", "1", "*", "*"],
                "@weekly" => ["0", "0", "0", "*", "*", "0"],
                "@daily" | "@midnight" => ["0", "0", "0", "*", "*", "*"],
                "@hourly" => ["0", "0", "*", "*", "*", "*"],
                _ => return Err(ScheduleError::UnknownCronAlias(trimmed.to_string())),
            };
            return Self::from_fields(fields, None);
        }
        let f: Vec<&str> = trimmed.split_whitespace().collect();
        match f.len() {
            5 => Self::from_fields(["0", f[0], f[1], f[2], f[3], f[4]], None),
            6 => Self::from_fields([f[0], f[1], f[2], f[3], f[4], f[5]], None),
            7 => Self::from_fields([f[0], f[1], f[2], f[3], f[4], f[5]], Some(f[6])),
            count => Err(ScheduleError::CronFieldCount {
                expr: expr.to_string(),
                count,
            }),
        }
    }

    /// Builds the sets from `[second, minute, hour, day-of-month, month, day-of-week]`
    /// and the optional year.
    fn from_fields(f: [&str; 6], year: Option<&str>) -> Result<Self, ScheduleError> {
        let seconds = parse_plain(Field::Second, f[0])?;
        let minutes = parse_plain(Field::Minute, f[1])?;
        let hours = parse_plain(Field::Hour, f[2])?;
        let months = parse_plain(Field::Month, f[4])?;
        let days = DayRule::parse(f[3], f[5])?;
        let years = year.map(parse_years).transpose()?;
        let expr = CronExpr {
            seconds,
            minutes,
            hours,
            months,
            days,
            years,
            fixed_time: !f[1].starts_with('*') && !f[2].starts_with('*'),
        };
        expr.check_days_can_match(f[3], f[5])?;
        Ok(expr)
    }

    /// Rejects day rules that match no day of any selected month (such as
    /// `30 2` for February 30th): such a schedule would silently never fire.
    fn check_days_can_match(&self, dom: &str, dow: &str) -> Result<(), ScheduleError> {
        let months = || (1..=12u32).filter(|m| self.months & (1 << m) != 0);
        let (possible, reason) = match &self.years {
            // With a year field the calendar is known: `0 0 0 29 2 * 2097`
            // can never fire either.
            Some(years) => (
                (i64::from(YEAR_MIN)..=i64::from(YEAR_MAX))
                    .filter(|&y| years.next_at_or_after(y) == Some(y))
                    .any(|y| months().any(|m| self.days.mask(y, m) != 0)),
                "never matches a day of the selected months and years",
            ),
            None => (
                months().any(|m| {
                    let lengths: &[u32] = if m == 2 {
                        &[28, 29]
                    } else {
                        &[days_in_month(2001, m)]
                    };
                    lengths
                        .iter()
                        .any(|&n| (0..7).any(|first| self.days.mask_for(n, first) != 0))
                }),
                "never matches a day of the selected months",
            ),
        };
        if possible {
            return Ok(());
        }
        let (field, value) = if self.days.dom_star {
            (Field::DayOfWeek, dow)
        } else {
            (Field::DayOfMonth, dom)
        };
        Err(field.error(value, reason))
    }

    /// Whether this is a fixed-time job: neither its minute nor its hour field
    /// starts with `*`. Such jobs get the DST gap and fold policies; the others
    /// follow real time.
    pub(crate) fn is_fixed_time(&self) -> bool {
        self.fixed_time
    }

    /// Whether the wall-clock time `local` (naive seconds) matches.
    pub(crate) fn matches(&self, local: i64) -> bool {
        self.next_match(local) == Some(local)
    }

    /// Whether the expression matches every wall-clock time.
    pub(crate) fn matches_always(&self) -> bool {
        self.years.is_none()
            && self.seconds == ALL_SECONDS
            && self.minutes == ALL_MINUTES
            && self.hours == ALL_HOURS
            && self.days.matches_every_day()
            && self.months == ALL_MONTHS
    }

    /// For a wall-clock time `local` that matches: the end of the run of
    /// matching times it is in, as far as one field shows it. In the
    /// smallest field that does not match everything (second, minute or
    /// hour), the run goes on over the field's consecutive values that match
    /// (`1-59 * * * * *` from second 31 to the next minute); above the hour
    /// it is the start of the next day, month or year. Every wall-clock time
    /// from `local` up to it matches too (`* * * 25 12 *` matches `local` to
    /// the end of its day): a search for times that do not match can jump
    /// there.
    pub(crate) fn matching_run_end(&self, local: i64) -> i64 {
        let (days, sod) = split_secs(local);
        let sod = i64::from(sod);
        // The first value after `at` that `bits` (a field of `len` values)
        // lacks, or `len`.
        let run_end = |bits: u64, at: i64, len: u32| -> i64 {
            let missing = !bits & ((1u64 << len) - 1);
            let at = u32::try_from(at).unwrap_or(len);
            i64::from(next_bit(missing, at + 1).unwrap_or(len))
        };
        if self.seconds != ALL_SECONDS {
            let second = sod % 60;
            return local - second + run_end(self.seconds, second, 60);
        }
        if self.minutes != ALL_MINUTES {
            let minute = sod % 3600 / 60;
            return local - sod % 3600 + run_end(self.minutes, minute, 60) * 60;
        }
        if self.hours != ALL_HOURS {
            let hour = sod / 3600;
            return local - sod + run_end(self.hours, hour, 24) * 3600;
        }
        if !self.days.any_day {
            return (days + 1) * SECS_PER_DAY;
        }
        let (y, m, _) = civil_from_days(days);
        let next_unit = if self.months != ALL_MONTHS && m < 12 {
            days_from_civil(y, m + 1, 1)
        } else {
            days_from_civil(y + 1, 1, 1)
        };
        next_unit * SECS_PER_DAY
    }

    /// The first wall-clock time (naive seconds) `>= from` that matches, or
    /// `None` if there is none within [`SEARCH_YEARS`] years, or, with a
    /// year field, within the field's years.
    pub(crate) fn next_match(&self, from: i64) -> Option<i64> {
        let (days, sod) = split_secs(from);
        let (mut y, mut m, mut d) = civil_from_days(days);
        let (mut h, mut mi, mut s) = (sod / 3600, sod / 60 % 60, sod % 60);
        let limit = y + SEARCH_YEARS;
        'year: loop {
            if let Some(years) = &self.years {
                let ny = years.next_at_or_after(y)?;
                if ny != y {
                    (y, m, d, h, mi, s) = (ny, 1, 1, 0, 0, 0);
                }
            }
            // A year field bounds the search itself (`next_at_or_after`
            // ends it past the field's last year): the limit would end a
            // search that starts centuries before the field's first year
            // (a backfill from far in the past) before it reaches it.
            if self.years.is_none() && y > limit {
                return None;
            }
            'month: loop {
                match next_bit(self.months, m) {
                    None => {
                        (y, m, d, h, mi, s) = (y + 1, 1, 1, 0, 0, 0);
                        continue 'year;
                    }
                    Some(nm) if nm != m => (m, d, h, mi, s) = (nm, 1, 0, 0, 0),
                    Some(_) => {}
                }
                let day_mask = self.days.mask(y, m);
                loop {
                    match next_bit(day_mask, d) {
                        None => {
                            (m, d, h, mi, s) = (m + 1, 1, 0, 0, 0);
                            continue 'month;
                        }
                        Some(nd) if nd != d => (d, h, mi, s) = (nd, 0, 0, 0),
                        Some(_) => {}
                    }
                    match next_bit(self.hours, h) {
                        None => {
                            (d, h, mi, s) = (d + 1, 0, 0, 0);
                            continue;
                        }
                        Some(nh) if nh != h => (h, mi, s) = (nh, 0, 0),
                        Some(_) => {}
                    }
                    match next_bit(self.minutes, mi) {
                        None => {
                            (h, mi, s) = (h + 1, 0, 0);
                            continue;
                        }
                        Some(nmi) if nmi != mi => (mi, s) = (nmi, 0),
                        Some(_) => {}
                    }
                    match next_bit(self.seconds, s) {
                        None => {
                            (mi, s) = (mi + 1, 0);
                            continue;
                        }
                        Some(ns) => {
                            let day = days_from_civil(y, m, d);
                            let sod = i64::from(h * 3600 + mi * 60 + ns);
                            return Some(day * SECS_PER_DAY + sod);
                        }
                    }
                }
            }
        }
    }
}

impl DayRule {
    fn parse(dom_text: &str, dow_text: &str) -> Result<Self, ScheduleError> {
        let mut rule = DayRule {
            dom_star: dom_text.starts_with(['*', '?']),
            dow_star: dow_text.starts_with(['*', '?']),
            any_day: false,
            dom: 0,
            dom_last: 0,
            dom_last_weekday: false,
            dom_nearest_weekday: 0,
            dow: 0,
            dow_nth: [0; 7],
            dow_last: 0,
        };
        if dom_text == "?" {
            rule.dom = month_days(31);
        } else {
            for item in split_items(Field::DayOfMonth, dom_text)? {
                rule.parse_dom_item(item)?;
            }
        }
        if dow_text == "?" {
            rule.dow = 0x7f;
        } else {
            for item in split_items(Field::DayOfWeek, dow_text)? {
                rule.parse_dow_item(item)?;
            }
        }
        rule.any_day = rule.dom_star
            && rule.dow_star
            && rule.dom == month_days(31)
            && rule.dow == 0x7f
            && !rule.has_dom_extensions()
            && !rule.has_dow_extensions();
        Ok(rule)
    }

    /// Whether every day of every month matches, however the fields are
    /// written (`*`, `1-31`, `0-6`, `1-31` or `MON`...).
    fn matches_every_day(&self) -> bool {
        self.any_day
            || (28..=31)
                .all(|ndays| (0..7).all(|first| self.mask_for(ndays, first) == month_days(ndays)))
    }

    fn has_dom_extensions(&self) -> bool {
        self.dom_last != 0 || self.dom_last_weekday || self.dom_nearest_weekday != 0
    }

    fn has_dow_extensions(&self) -> bool {
        self.dow_last != 0 || self.dow_nth.iter().any(|&n| n != 0)
    }

    fn parse_dom_item(&mut self, item: &str) -> Result<(), ScheduleError> {
        let field = Field::DayOfMonth;
        let upper = item.to_ascii_uppercase();
        if upper == "L" {
            self.dom_last |= 1;
        } else if upper == "LW" {
            self.dom_last_weekday = true;
        } else if let Some(offset) = upper.strip_prefix("L-") {
            let n = parse_number(offset)
                .filter(|&n| n <= 30)
                .ok_or_else(|| field.error(item, "the offset in L-n must be 0-30"))?;
            self.dom_last |= 1 << n;
        } else if let Some(day) = upper.strip_suffix('W') {
            if day.contains(['-', '/', '*']) {
                return Err(field.error(item, "W takes a single day, e.g. 15W"));
            }
            let d = value_in(field, day, item)?;
            self.dom_nearest_weekday |= 1 << d;
        } else {
            let (lo, hi, step) = parse_range(field, item)?;
            self.dom |= range_bits(lo, hi, step);
        }
        Ok(())
    }

    fn parse_dow_item(&mut self, item: &str) -> Result<(), ScheduleError> {
        let field = Field::DayOfWeek;
        let upper = item.to_ascii_uppercase();
        if let Some((weekday, nth)) = upper.split_once('#') {
            let w = value_in(field, weekday, item)? % 7;
            let k = parse_number(nth)
                .filter(|k| (1..=5).contains(k))
                .ok_or_else(|| field.error(item, "the occurrence after # must be 1-5"))?;
            self.dow_nth[w as usize] |= 1 << k;
        } else if upper == "L" {
            return Err(field.error(item, "L needs a weekday before it, e.g. 5L or FRIL"));
        } else if let Some(weekday) = upper.strip_suffix('L') {
            if weekday.contains(['-', '/', '*', ',']) {
                return Err(field.error(item, "L takes a single weekday, e.g. 5L or FRIL"));
            }
            let w = value_in(field, weekday, item)? % 7;
            self.dow_last |= 1 << w;
        } else {
            let (lo, hi, step) = parse_range(field, item)?;
            let bits = range_bits(lo, hi, step);
            // 7 is another name for Sunday (0).
            self.dow |= (bits & 0x7f) as u8 | u8::from(bits & 1 << 7 != 0);
        }
        Ok(())
    }

    /// The matching days of month `m` of year `y`, as bits 1..=31.
    fn mask(&self, y: i64, m: u32) -> u64 {
        let ndays = days_in_month(y, m);
        if self.any_day {
            return month_days(ndays);
        }
        let first = weekday_from_days(days_from_civil(y, m, 1));
        self.mask_for(ndays, first)
    }

    /// The matching days of a month of `ndays` days whose first day has weekday `first`.
    fn mask_for(&self, ndays: u32, first: u32) -> u64 {
        let valid = month_days(ndays);
        let dom = self.dom_mask(ndays, first) & valid;
        let dow = self.dow_mask(ndays, first) & valid;
        // Vixie cron: if either field starts with `*`, both must match (the
        // `*` one matches every day, so the other decides); otherwise a day
        // matching either field matches.
        if self.dom_star || self.dow_star {
            dom & dow
        } else {
            dom | dow
        }
    }

    fn dom_mask(&self, ndays: u32, first: u32) -> u64 {
        let mut mask = self.dom;
        if !self.has_dom_extensions() {
            return mask;
        }
        let weekday = |d: u32| (first + d - 1) % 7;
        let mut last = self.dom_last;
        while last != 0 {
            let n = last.trailing_zeros();
            last &= last - 1;
            if n < ndays {
                mask |= 1 << (ndays - n);
            }
        }
        if self.dom_last_weekday {
            let d = match weekday(ndays) {
                6 => ndays - 1,
                0 => ndays - 2,
                _ => ndays,
            };
            mask |= 1 << d;
        }
        let mut near = self.dom_nearest_weekday & month_days(ndays);
        while near != 0 {
            let d = near.trailing_zeros();
            near &= near - 1;
            // Nearest weekday without leaving the month: a Saturday moves to
            // Friday unless it is the 1st (then Monday the 3rd); a Sunday moves
            // to Monday unless it is the last day (then Friday).
            let w = match weekday(d) {
                6 if d == 1 => 3,
                6 => d - 1,
                0 if d == ndays => d - 2,
                0 => d + 1,
                _ => d,
            };
            mask |= 1 << w;
        }
        mask
    }

    fn dow_mask(&self, ndays: u32, first: u32) -> u64 {
        if self.dow == 0x7f {
            return u64::MAX;
        }
        let mut mask = 0;
        for w in 0..7u32 {
            // The first day of the month with weekday w.
            let start = 1 + (w + 7 - first) % 7;
            if self.dow & (1 << w) != 0 {
                mask |= WEEKLY << start;
            }
            let nth = self.dow_nth[w as usize];
            for k in 1..=5u32 {
                let d = start + 7 * (k - 1);
                if nth & (1 << k) != 0 && d <= ndays {
                    mask |= 1 << d;
                }
            }
            if self.dow_last & (1 << w) != 0 {
                mask |= 1 << (start + 7 * ((ndays - start) / 7));
            }
        }
        mask
    }
}

/// Splits a field into its comma-separated items; `?` must stand alone.
fn split_items(field: Field, text: &str) -> Result<Vec<&str>, ScheduleError> {
    let items: Vec<&str> = text.split(',').collect();
    for item in &items {
        if item.is_empty() {
            return Err(field.error(text, "empty list item"));
        }
        if item.contains('?') {
            let reason = match field {
                Field::DayOfMonth | Field::DayOfWeek => "? must be the whole field",
                _ => "? is only allowed in day-of-month and day-of-week",
            };
            return Err(field.error(item, reason));
        }
    }
    Ok(items)
}

/// Parses a field made of values, ranges, steps and lists.
fn parse_plain(field: Field, text: &str) -> Result<u64, ScheduleError> {
    let mut bits = 0;
    for item in split_items(field, text)? {
        let (lo, hi, step) = parse_range(field, item)?;
        bits |= range_bits(lo, hi, step);
    }
    Ok(bits)
}

fn parse_years(text: &str) -> Result<YearSet, ScheduleError> {
    let mut set = YearSet([0; 3]);
    for item in split_items(Field::Year, text)? {
        let (lo, hi, step) = parse_range(Field::Year, item)?;
        for y in (lo..=hi).step_by(step as usize) {
            set.insert(y);
        }
    }
    Ok(set)
}

/// Parses `*`, `a`, `a-b`, `*/n`, `a-b/n` or `a/n` (from `a` to the field's
/// maximum, every `n`) into `(low, high, step)`.
fn parse_range(field: Field, item: &str) -> Result<(u32, u32, u32), ScheduleError> {
    let (min, max) = field.range();
    let (base, step) = match item.split_once('/') {
        Some((base, step_text)) => {
            let step = parse_number(step_text)
                .filter(|s| (1..=max).contains(s))
                .ok_or_else(|| field.error(item, format!("the step must be 1-{max}")))?;
            (base, Some(step))
        }
        None => (item, None),
    };
    let (lo, hi) = if base == "*" {
        (min, max)
    } else if let Some((a, b)) = base.split_once('-') {
        let lo = value_in(field, a, item)?;
        let mut hi = value_in(field, b, item)?;
        if field == Field::DayOfWeek && hi == 0 && lo > 0 {
            // `Fri-Sun`: a range ending on Sunday ends at 7.
            hi = 7;
        }
        if lo > hi {
            return Err(field.error(base, "the range starts after it ends"));
        }
        (lo, hi)
    } else {
        let v = value_in(field, base, item)?;
        (v, if step.is_some() { max } else { v })
    };
    Ok((lo, hi, step.unwrap_or(1)))
}

/// [`parse_value`] for a token cut out of `item`: a missing token (as in
/// `5-`, `-5`, `W` or `#1`) is reported with the whole item, which says
/// where it is missing.
fn value_in(field: Field, token: &str, item: &str) -> Result<u32, ScheduleError> {
    if token.is_empty() {
        return Err(field.error(item, "a value is missing"));
    }
    parse_value(field, token)
}

/// Parses a number or a name (months, weekdays) and checks its range.
fn parse_value(field: Field, token: &str) -> Result<u32, ScheduleError> {
    let (min, max) = field.range();
    if token.is_empty() {
        return Err(field.error(token, "a value is missing"));
    }
    if token.bytes().all(|b| b.is_ascii_digit()) {
        return parse_number(token)
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| field.error(token, "out of range"));
    }
    if let Some(i) = field
        .names()
        .iter()
        .position(|name| name.eq_ignore_ascii_case(token))
    {
        // The casts cannot truncate: there are at most 12 names.
        return Ok(min + i as u32);
    }
    let reason = if field.names().is_empty() {
        "not a number"
    } else {
        "not a number or a name"
    };
    Err(field.error(token, reason))
}

/// Parses a plain decimal number; `None` if it is not one or overflows.
fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
