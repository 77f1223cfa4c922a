use super::*;
use chrono::{DateTime, Utc};
use std::time::Duration;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test instant")
}

fn hourly(from: &str, n: usize) -> Vec<DateTime<Utc>> {
    let start = t(from);
    (0..n)
        .map(|i| start + chrono::Duration::hours(i as i64))
        .collect()
}

const THRESHOLD: Duration = Duration::from_secs(5);

#[test]
fn overlap_skip_starts_only_when_idle() {
    assert_eq!(OverlapPolicy::Skip.decide(0, 0), OverlapDecision::Start);
    assert_eq!(OverlapPolicy::Skip.decide(1, 0), OverlapDecision::Skip);
}

#[test]
fn overlap_concurrent_respects_its_limit() {
    let p = OverlapPolicy::Concurrent { max: Some(2) };
    assert_eq!(p.decide(1, 0), OverlapDecision::Start);
    assert_eq!(p.decide(2, 0), OverlapDecision::Skip);
    let unbounded = OverlapPolicy::Concurrent { max: None };
    assert_eq!(unbounded.decide(10_000, 0), OverlapDecision::Start);
}

#[test]
fn overlap_queue_enqueues_until_full_then_drops() {
    let p = OverlapPolicy::Queue { max: 2 };
    assert_eq!(p.decide(1, 0), OverlapDecision::Enqueue);
    assert_eq!(p.decide(1, 1), OverlapDecision::Enqueue);
    assert_eq!(p.decide(1, 2), OverlapDecision::Drop);
}

#[test]
fn overlap_replace_cancels_then_starts() {
    assert_eq!(
        OverlapPolicy::Replace.decide(1, 0),
        OverlapDecision::ReplaceThenStart
    );
}

#[test]
fn overlap_rejects_policies_that_can_never_run() {
    assert!(OverlapPolicy::Concurrent { max: Some(0) }
        .validate()
        .is_err());
    assert!(OverlapPolicy::Queue { max: 0 }.validate().is_err());
    assert!(OverlapPolicy::QUEUE_ONE.validate().is_ok());
}

#[test]
fn a_new_queue_is_bounded_and_a_stored_larger_one_keeps_at_most_the_bound() {
    let at = OverlapPolicy::Queue { max: MAX_QUEUE };
    assert!(at.validate_limits().is_ok());
    let over = OverlapPolicy::Queue { max: MAX_QUEUE + 1 };
    assert!(over.validate().is_ok(), "a stored spec still compiles");
    let reason = over.validate_limits().expect_err("refused when new");
    assert!(
        reason.contains("1001") && reason.contains("1000"),
        "{reason}"
    );
    let q = MAX_QUEUE as usize;
    assert_eq!(over.decide(1, q - 1), OverlapDecision::Enqueue);
    assert_eq!(over.decide(1, q), OverlapDecision::Drop);
    assert!(OverlapPolicy::Concurrent { max: None }
        .validate_limits()
        .is_ok());
}

#[test]
fn misfire_on_time_slot_runs_once_without_catch_up() {
    let due = hourly("2026-01-01T11:00:00Z", 1);
    let plan = MisfirePolicy::FireOnce.plan(&due, 0, t("2026-01-01T11:00:01Z"), THRESHOLD, None);
    assert_eq!(plan.runs, vec![(due[0], MisfireDecision::OnTime)]);
    assert_eq!((plan.skipped, plan.coalesced), (0, 0));
}

#[test]
fn misfire_three_hours_down_fire_once_gives_one_catch_up_run() {
    let due = hourly("2026-01-01T11:00:00Z", 3);
    let plan = MisfirePolicy::FireOnce.plan(&due, 0, t("2026-01-01T13:30:00Z"), THRESHOLD, None);
    assert_eq!(plan.runs, vec![(due[2], MisfireDecision::CatchUp)]);
    assert_eq!(plan.coalesced, 2);
    assert_eq!(plan.skipped, 0);
}

#[test]
fn misfire_three_hours_down_fire_all_two_gives_the_two_newest() {
    let due = hourly("2026-01-01T11:00:00Z", 3);
    let plan =
        MisfirePolicy::FireAll { max: 2 }.plan(&due, 0, t("2026-01-01T13:30:00Z"), THRESHOLD, None);
    assert_eq!(
        plan.runs,
        vec![
            (due[1], MisfireDecision::CatchUp),
            (due[2], MisfireDecision::CatchUp)
        ]
    );
    assert_eq!(plan.skipped, 1);
    assert_eq!(plan.skipped_range, Some((due[0], due[0])));
}

#[test]
fn misfire_skip_runs_nothing_and_counts_every_slot() {
    let due = hourly("2026-01-01T11:00:00Z", 3);
    let plan = MisfirePolicy::Skip.plan(&due, 7, t("2026-01-01T13:30:00Z"), THRESHOLD, None);
    assert!(plan.runs.is_empty());
    assert_eq!(plan.skipped, 10);
}

#[test]
fn misfire_window_skips_slots_older_than_the_window() {
    let due = hourly("2026-01-01T11:00:00Z", 3);
    let window = Some(Duration::from_secs(3600));
    let plan = MisfirePolicy::FireAll { max: 10 }.plan(
        &due,
        0,
        t("2026-01-01T13:30:00Z"),
        THRESHOLD,
        window,
    );
    assert_eq!(plan.runs, vec![(due[2], MisfireDecision::CatchUp)]);
    assert_eq!(plan.skipped, 2);
}

#[test]
fn misfire_fire_once_with_a_current_slot_coalesces_the_missed_into_it() {
    let due = hourly("2026-01-01T11:00:00Z", 3);
    let plan = MisfirePolicy::FireOnce.plan(&due, 0, t("2026-01-01T13:00:02Z"), THRESHOLD, None);
    assert_eq!(plan.runs, vec![(due[2], MisfireDecision::OnTime)]);
    assert_eq!(plan.coalesced, 2);
}

#[test]
fn misfire_accounts_for_every_slot() {
    for policy in [
        MisfirePolicy::Skip,
        MisfirePolicy::FireOnce,
        MisfirePolicy::FireAll { max: 1 },
        MisfirePolicy::FireAll { max: 50 },
    ] {
        for n in 0..6 {
            let due = hourly("2026-01-01T11:00:00Z", n);
            for now in ["2026-01-01T16:00:00Z", "2026-01-01T15:00:01Z"] {
                let plan = policy.plan(&due, 0, t(now), THRESHOLD, Some(Duration::from_secs(7200)));
                let total = plan.runs.len() as u64 + plan.skipped + plan.coalesced;
                assert_eq!(total, n as u64, "{policy:?} n={n} now={now}");
            }
        }
    }
}

#[test]
fn exponential_backoff_doubles_then_caps() {
    let b = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(10));
    let delays: Vec<u64> = (1..=6).map(|r| b.delay(r).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
    assert_eq!(b.delay(u32::MAX), Duration::from_secs(10));
}

#[test]
fn exponential_backoff_uses_its_factor() {
    let b = Backoff::Exponential {
        base: Duration::from_millis(100),
        factor: 3.0,
        cap: Duration::from_secs(60),
    };
    assert_eq!(b.delay(3), Duration::from_millis(900));
}

#[test]
fn exponential_backoff_keeps_growing_past_a_thousand_retries() {
    // A slowly growing backoff for a job retried for ever: 1.001^5000 is
    // about 148, so the 5001st retry waits about 148 s, not the 2.7 s of
    // the 1001st.
    let b = Backoff::Exponential {
        base: Duration::from_secs(1),
        factor: 1.001,
        cap: Duration::from_secs(3600),
    };
    let want = 1.001f64.powi(5000);
    assert!((b.delay(5001).as_secs_f64() - want).abs() < 1e-6 * want);
    assert!(b.delay(5001) > b.delay(1001));
    assert_eq!(b.delay(u32::MAX), Duration::from_secs(3600));
}

#[test]
fn exponential_backoff_from_a_zero_base_stays_zero() {
    // 0 × factor^n is 0 for every n, also once factor^n overflows to
    // infinity (10^309): the delay must not jump to the cap then.
    let b = Backoff::Exponential {
        base: Duration::ZERO,
        factor: 10.0,
        cap: Duration::from_secs(30),
    };
    for retry in [1, 2, 300, 400, u32::MAX] {
        assert_eq!(b.delay(retry), Duration::ZERO, "retry {retry}");
    }
}

#[test]
fn retry_policy_stops_after_max_retries() {
    let p = RetryPolicy::new(2, Backoff::Fixed(Duration::from_secs(5)));
    assert_eq!(p.next_delay(1, 0.0), Some(Duration::from_secs(5)));
    assert_eq!(p.next_delay(2, 0.0), Some(Duration::from_secs(5)));
    assert_eq!(p.next_delay(3, 0.0), None);
    assert_eq!(RetryPolicy::NONE.next_delay(1, 0.5), None);
}

#[test]
fn retry_jitter_is_bounded() {
    let p = RetryPolicy::new(1, Backoff::Fixed(Duration::from_secs(5)))
        .with_jitter(Duration::from_secs(2));
    assert_eq!(p.next_delay(1, 0.0), Some(Duration::from_secs(5)));
    assert_eq!(p.next_delay(1, 1.0), Some(Duration::from_secs(7)));
    assert_eq!(p.next_delay(1, 7.0), Some(Duration::from_secs(7)));
}

#[test]
fn retry_jitter_at_its_maximum_is_the_jitter_exactly() {
    // These jitters are not exact as f64 seconds: a draw of 1 rounded
    // through f64 went 7 ns, or a whole second, past the bound.
    for jitter in [
        Duration::new(123_456_789, 987_654_321),
        Duration::from_secs(9_925_284_350_845_943),
    ] {
        let p = RetryPolicy::new(1, Backoff::Fixed(Duration::ZERO)).with_jitter(jitter);
        assert_eq!(p.next_delay(1, 1.0), Some(jitter));
        assert!(p.next_delay(1, 0.999_999_999).is_some_and(|d| d <= jitter));
    }
}

#[test]
fn retry_delays_past_duration_max_saturate_instead_of_panicking() {
    let huge = RetryPolicy::new(1, Backoff::Fixed(Duration::MAX)).with_jitter(Duration::MAX);
    assert_eq!(huge.next_delay(1, 1.0), Some(Duration::MAX));
    assert_eq!(huge.next_delay(1, 0.5), Some(Duration::MAX));
    let jitter_only = RetryPolicy::NONE.with_jitter(Duration::MAX);
    let jitter_only = RetryPolicy {
        max_retries: 1,
        ..jitter_only
    };
    assert_eq!(jitter_only.next_delay(1, 1.0), Some(Duration::MAX));
    let capless = RetryPolicy::new(
        1,
        Backoff::exponential(Duration::from_secs(1 << 62), Duration::MAX),
    );
    assert_eq!(
        capless.next_delay(1, 0.0),
        Some(Duration::from_secs(1 << 62))
    );
    assert_eq!(
        capless.next_delay(1, 1.0),
        Some(Duration::from_secs(1 << 62))
    );
    assert_eq!(
        Backoff::exponential(Duration::MAX, Duration::MAX).delay(40),
        Duration::MAX
    );
    // A factor that validation refuses still gives a delay, not a panic.
    let negative = Backoff::Exponential {
        base: Duration::from_secs(1),
        factor: -1.0,
        cap: Duration::from_secs(9),
    };
    assert_eq!(negative.delay(2), Duration::from_secs(9));
}

#[test]
fn retry_policy_rejects_a_shrinking_backoff() {
    let bad = RetryPolicy::new(
        1,
        Backoff::Exponential {
            base: Duration::from_secs(1),
            factor: 0.5,
            cap: Duration::from_secs(9),
        },
    );
    assert!(bad.validate().is_err());
}

#[test]
fn misfire_threshold_is_inclusive_to_the_nanosecond() {
    let due = hourly("2026-01-01T11:00:00Z", 1);
    let at_threshold = due[0] + chrono::Duration::seconds(5);
    let past = at_threshold + chrono::Duration::nanoseconds(1);
    for policy in [
        MisfirePolicy::Skip,
        MisfirePolicy::FireOnce,
        MisfirePolicy::FireAll { max: 3 },
    ] {
        let plan = policy.plan(&due, 0, at_threshold, THRESHOLD, None);
        assert_eq!(
            plan.runs,
            vec![(due[0], MisfireDecision::OnTime)],
            "{policy:?}"
        );
        let plan = policy.plan(&due, 0, past, THRESHOLD, None);
        let want = match policy {
            MisfirePolicy::Skip => vec![],
            _ => vec![(due[0], MisfireDecision::CatchUp)],
        };
        assert_eq!(plan.runs, want, "{policy:?}");
        assert_eq!(plan.skipped, u64::from(policy == MisfirePolicy::Skip));
    }
}

#[test]
fn misfire_window_keeps_a_slot_exactly_its_length_old() {
    // At 13:00, a one-hour window keeps 12:00 (exactly an hour old) and
    // skips 11:00; a nanosecond later it skips both.
    let due = hourly("2026-01-01T11:00:00Z", 2);
    let now = t("2026-01-01T13:00:00Z");
    let window = Some(Duration::from_secs(3600));
    let plan = MisfirePolicy::FireAll { max: 10 }.plan(&due, 0, now, THRESHOLD, window);
    assert_eq!(plan.runs, vec![(due[1], MisfireDecision::CatchUp)]);
    assert_eq!(plan.skipped_range, Some((due[0], due[0])));
    let later = now + chrono::Duration::nanoseconds(1);
    let plan = MisfirePolicy::FireAll { max: 10 }.plan(&due, 0, later, THRESHOLD, window);
    assert!(plan.runs.is_empty());
    assert_eq!(plan.skipped, 2);
}
