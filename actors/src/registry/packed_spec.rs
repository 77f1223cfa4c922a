//! A passive job's spec in a few dozen bytes, kept in its packed entry.
//!
//! A `JobSpec` takes about 430 bytes in its `Arc` and more for its
//! strings; postcard-encoded, a typical spec takes 40 to 100. With a
//! million passive jobs that is about 400 MiB. [`SpecWireRef`] (encoding,
//! borrowed) and [`SpecWire`] (decoding) hold every field of the spec but
//! its id (the entry keeps the id), in postcard's terms: the payload as JSON
//! text (postcard cannot read a `serde_json::Value` back; serde_json's
//! `float_roundtrip` reads each float back to the last bit, which its
//! default parser does not) and the schedule's lists always written
//! (postcard cannot skip a field). Its conversions destructure the spec
//! without `..`, so that a field added to `JobSpec` or `ScheduleSpec` and
//! not to the wire does not compile.

use crate::id::JobId;
use crate::policy::{InterruptedPolicy, MisfirePolicy, OverlapPolicy, RetryPolicy};
use crate::schedule::{Bounds, DstPolicy, ScheduleKind, ScheduleSpec};
use crate::spec::JobSpec;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The fields of a `JobSpec` but its id, as the packed entry decodes them
/// (encoded from [`SpecWireRef`], field for field).
#[derive(Debug, Deserialize)]
pub(super) struct SpecWire {
    kind: ScheduleKind,
    also: Vec<String>,
    tz: Option<String>,
    dst: DstPolicy,
    bounds: Bounds,
    exclude: Vec<String>,
    handler: String,
    /// The payload as JSON text; `None` for `null` (most jobs).
    payload: Option<String>,
    overlap: OverlapPolicy,
    misfire: MisfirePolicy,
    catch_up_window: Option<Duration>,
    interrupted: InterruptedPolicy,
    jitter: Duration,
    timeout: Option<Duration>,
    retry: RetryPolicy,
    pause_after_failures: Option<u32>,
    listens: Vec<String>,
    tags: Vec<String>,
    priority: i32,
}

/// The same fields borrowed from a spec, for encoding: packing copies
/// nothing but the payload's text (postcard writes a `&[String]` as a
/// `Vec<String>`, a `&str` as a `String`).
#[derive(Debug, Serialize)]
pub(super) struct SpecWireRef<'a> {
    kind: &'a ScheduleKind,
    also: &'a [String],
    tz: Option<&'a str>,
    dst: DstPolicy,
    bounds: &'a Bounds,
    exclude: &'a [String],
    handler: &'a str,
    payload: Option<String>,
    overlap: OverlapPolicy,
    misfire: MisfirePolicy,
    catch_up_window: Option<Duration>,
    interrupted: InterruptedPolicy,
    jitter: Duration,
    timeout: Option<Duration>,
    retry: RetryPolicy,
    pause_after_failures: Option<u32>,
    listens: &'a [String],
    tags: &'a [String],
    priority: i32,
}

impl<'a> SpecWireRef<'a> {
    /// The wire form of `spec`.
    ///
    /// # Errors
    /// The payload's JSON encoder's error (none for a `Value` in practice).
    pub(super) fn of(spec: &'a JobSpec) -> Result<Self, serde_json::Error> {
        let JobSpec {
            id: _,
            schedule,
            handler,
            payload,
            overlap,
            misfire,
            catch_up_window,
            interrupted,
            jitter,
            timeout,
            retry,
            pause_after_failures,
            listens,
            tags,
            priority,
        } = spec;
        let ScheduleSpec {
            kind,
            also,
            tz,
            dst,
            bounds,
            exclude,
        } = schedule;
        Ok(Self {
            kind,
            also,
            tz: tz.as_deref(),
            dst: *dst,
            bounds,
            exclude,
            handler,
            payload: match payload {
                serde_json::Value::Null => None,
                payload => Some(serde_json::to_string(payload)?),
            },
            overlap: *overlap,
            misfire: *misfire,
            catch_up_window: *catch_up_window,
            interrupted: *interrupted,
            jitter: *jitter,
            timeout: *timeout,
            retry: *retry,
            pause_after_failures: *pause_after_failures,
            listens,
            tags,
            priority: *priority,
        })
    }
}

impl SpecWire {
    /// The spec of job `id`.
    ///
    /// # Errors
    /// The payload's JSON decoder's error (never for text [`SpecWireRef::of`]
    /// wrote).
    pub(super) fn into_spec(self, id: JobId) -> Result<JobSpec, serde_json::Error> {
        let Self {
            kind,
            also,
            tz,
            dst,
            bounds,
            exclude,
            handler,
            payload,
            overlap,
            misfire,
            catch_up_window,
            interrupted,
            jitter,
            timeout,
            retry,
            pause_after_failures,
            listens,
            tags,
            priority,
        } = self;
        Ok(JobSpec {
            id,
            schedule: ScheduleSpec {
                kind,
                also,
                tz,
                dst,
                bounds,
                exclude,
            },
            handler,
            payload: match payload {
                None => serde_json::Value::Null,
                Some(text) => serde_json::from_str(&text)?,
            },
            overlap,
            misfire,
            catch_up_window,
            interrupted,
            jitter,
            timeout,
            retry,
            pause_after_failures,
            listens,
            tags,
            priority,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Backoff;
    use crate::schedule::{FoldPolicy, GapPolicy};

    fn round_trip(spec: &JobSpec) -> JobSpec {
        let bytes = postcard::to_allocvec(&SpecWireRef::of(spec).expect("wire")).expect("encode");
        let wire: SpecWire = postcard::from_bytes(&bytes).expect("decode");
        wire.into_spec(spec.id.clone()).expect("spec")
    }

    /// Every field comes back as it was, for a spec with nothing set and for
    /// one with every field set away from its default (the payload nested,
    /// with a float, a string with quotes and a null inside).
    #[test]
    fn a_spec_comes_back_whole_from_its_wire_form() {
        let id = JobId::new("job-1").expect("id");
        let plain = JobSpec::builder(id.as_str(), ScheduleSpec::cron("* * * * * *"), "tick")
            .build()
            .expect("spec");
        assert_eq!(round_trip(&plain), plain);

        let mut full = JobSpec::builder(
            id.as_str(),
            ScheduleSpec::cron("0 30 9 * * Mon-Fri")
                .or_cron("0 0 12 * * *")
                .in_tz("Europe/Berlin")
                .max_fires(10)
                .exclude("0 * 10 * * *"),
            "report",
        )
        .payload(serde_json::json!({"to": "ops@\"x\"", "n": 1.5, "list": [null, true, {"a": -3}]}))
        .build()
        .expect("spec");
        full.schedule.dst = DstPolicy {
            gap: GapPolicy::Skip,
            fold: FoldPolicy::Both,
        };
        full.schedule.bounds.not_before = Some("2026-01-01T00:00:00Z".parse().expect("instant"));
        full.schedule.bounds.not_after = Some("2027-01-01T00:00:00.5Z".parse().expect("instant"));
        full.overlap = OverlapPolicy::Queue { max: 3 };
        full.misfire = MisfirePolicy::FireAll { max: 4 };
        full.catch_up_window = Some(Duration::from_millis(3_600_001));
        full.interrupted = InterruptedPolicy::Abandon;
        full.jitter = Duration::from_millis(250);
        full.timeout = Some(Duration::from_secs(30));
        full.retry = RetryPolicy::new(
            3,
            Backoff::Exponential {
                base: Duration::from_secs(1),
                factor: 2.5,
                cap: Duration::from_secs(60),
            },
        )
        .with_jitter(Duration::from_millis(10));
        full.pause_after_failures = Some(5);
        full.listens = vec!["deploy".into(), "".into()];
        full.tags = vec!["billing".into(), "eu".into()];
        full.priority = -7;
        assert_eq!(round_trip(&full), full);

        let mut interval = plain.clone();
        interval.schedule = ScheduleSpec::every(Duration::from_millis(1_500));
        assert_eq!(round_trip(&interval), interval);
    }

    /// A payload of random JSON: nested arrays and objects of numbers of
    /// every kind (floats of every exponent, integers past 2^53, past
    /// `i64`), strings with quotes, escapes and non-ASCII text.
    fn random_json(rng: &mut rand::rngs::StdRng, depth: usize) -> serde_json::Value {
        use rand::Rng;
        use serde_json::Value;
        let pick = if depth == 0 {
            rng.random_range(0..6)
        } else {
            rng.random_range(0..8)
        };
        match pick {
            0 => Value::Null,
            1 => Value::Bool(rng.random()),
            2 => Value::from(rng.random::<u64>() >> rng.random_range(0..64)),
            3 => Value::from(-((rng.random::<u64>() >> rng.random_range(1..64)) as i64)),
            4 => {
                // Any finite float, from its bits (a third of them small
                // decimals, as people write them).
                let f = if rng.random_ratio(1, 3) {
                    f64::from(rng.random_range(-10_000..10_000)) / 100.0
                } else {
                    f64::from_bits(rng.random())
                };
                serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
            }
            5 => {
                const CHARS: &[char] = &[
                    'a', 'Z', '"', '\\', '/', '\n', '\u{0}', '\u{1f}', 'é', '€', '😀', ' ',
                ];
                let len = rng.random_range(0..12);
                Value::String(
                    (0..len)
                        .map(|_| CHARS[rng.random_range(0..CHARS.len())])
                        .collect(),
                )
            }
            6 => Value::Array(
                (0..rng.random_range(0..4))
                    .map(|_| random_json(rng, depth - 1))
                    .collect(),
            ),
            _ => Value::Object(
                (0..rng.random_range(0..4))
                    .map(|i| (format!("k{i}é"), random_json(rng, depth - 1)))
                    .collect(),
            ),
        }
    }

    /// Every field comes back as it was for thousands of specs built at
    /// random (each field set or left at its default, payloads of any JSON).
    #[test]
    fn random_specs_come_back_whole_from_their_wire_form() {
        use rand::{Rng, SeedableRng};
        let seed = std::env::var("CRONACTOR_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(7);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let ms =
            |rng: &mut rand::rngs::StdRng| Duration::from_nanos(rng.random_range(0..1u64 << 50));
        let instant = |rng: &mut rand::rngs::StdRng| {
            chrono::DateTime::from_timestamp(
                rng.random_range(-8_334_601_228_800..8_210_266_876_799),
                rng.random_range(0..1_000_000_000),
            )
            .expect("instant")
        };
        let words = |rng: &mut rand::rngs::StdRng| -> Vec<String> {
            (0..rng.random_range(0..3))
                .map(|i| format!("w{i}-ü{}", rng.random::<u8>()))
                .collect()
        };
        for case in 0..3_000 {
            let kind = match rng.random_range(0..3) {
                0 => ScheduleKind::Cron("0 */5 * * * *".into()),
                1 => {
                    let every_ms = rng.random_range(1..u64::MAX);
                    ScheduleKind::Interval {
                        every_ms,
                        offset_ms: rng.random_range(0..every_ms),
                    }
                }
                _ => ScheduleKind::Once(instant(&mut rng)),
            };
            let mut spec = JobSpec::builder(
                format!("job-{case}"),
                ScheduleSpec::cron("* * * * * *"),
                "h",
            )
            .build()
            .expect("spec");
            spec.schedule = ScheduleSpec {
                kind,
                also: words(&mut rng),
                tz: rng
                    .random_bool(0.5)
                    .then(|| "America/Sao_Paulo".to_string()),
                dst: DstPolicy {
                    gap: if rng.random() {
                        GapPolicy::Skip
                    } else {
                        GapPolicy::RunAtTransition
                    },
                    fold: [FoldPolicy::First, FoldPolicy::Last, FoldPolicy::Both]
                        [rng.random_range(0..3)],
                },
                bounds: Bounds {
                    not_before: rng.random_bool(0.5).then(|| instant(&mut rng)),
                    not_after: rng.random_bool(0.5).then(|| instant(&mut rng)),
                    max_fires: rng.random_bool(0.5).then(|| rng.random()),
                },
                exclude: words(&mut rng),
            };
            spec.handler = format!("handler-{}", rng.random::<u32>());
            spec.payload = random_json(&mut rng, 4);
            spec.overlap = match rng.random_range(0..4) {
                0 => OverlapPolicy::Skip,
                1 => OverlapPolicy::Concurrent {
                    max: rng.random_bool(0.5).then(|| rng.random()),
                },
                2 => OverlapPolicy::Queue { max: rng.random() },
                _ => OverlapPolicy::Replace,
            };
            spec.misfire = match rng.random_range(0..3) {
                0 => MisfirePolicy::Skip,
                1 => MisfirePolicy::FireOnce,
                _ => MisfirePolicy::FireAll { max: rng.random() },
            };
            spec.catch_up_window = rng.random_bool(0.5).then(|| ms(&mut rng));
            spec.interrupted = if rng.random() {
                InterruptedPolicy::Abandon
            } else {
                InterruptedPolicy::Retry
            };
            spec.jitter = ms(&mut rng);
            spec.timeout = rng.random_bool(0.5).then(|| ms(&mut rng));
            let backoff = if rng.random() {
                Backoff::Fixed(ms(&mut rng))
            } else {
                Backoff::Exponential {
                    base: ms(&mut rng),
                    factor: rng.random_range(1.0..10.0),
                    cap: ms(&mut rng),
                }
            };
            spec.retry = RetryPolicy::new(rng.random(), backoff).with_jitter(ms(&mut rng));
            spec.pause_after_failures = rng.random_bool(0.5).then(|| rng.random());
            spec.listens = words(&mut rng);
            spec.tags = words(&mut rng);
            spec.priority = rng.random();
            assert_eq!(round_trip(&spec), spec, "case {case} of seed {seed}");
        }
    }

    /// What the wire saves: a plain spec packs into far fewer bytes than its
    /// `JobSpec` takes in memory.
    #[test]
    fn a_plain_spec_packs_into_a_few_dozen_bytes() {
        let spec = JobSpec::builder("job-000001", ScheduleSpec::cron("0 0 * * * *"), "tick")
            .build()
            .expect("spec");
        let bytes = postcard::to_allocvec(&SpecWireRef::of(&spec).expect("wire")).expect("encode");
        assert!(bytes.len() < 64, "{} bytes", bytes.len());
        assert!(std::mem::size_of::<JobSpec>() > 5 * bytes.len());
    }
}
