//! Unit tests of the codec and the key layouts.

use super::codec::{self, DecodeError, RecordKind};
use cronactor_actors::{JobSpec, JobState, RunRecord, ScheduleSpec, Trigger};
use proptest::prelude::*;
use std::time::Duration;

fn spec() -> JobSpec {
    JobSpec::builder("codec", ScheduleSpec::every(Duration::from_secs(5)), "h")
        .payload(serde_json::json!({ "list": [1, "two", null], "map": { "k": 1.5 } }))
        .build()
        .expect("a valid spec")
}

#[test]
fn a_value_is_a_version_byte_then_json() {
    let bytes = codec::encode(RecordKind::JobSpec, &spec()).expect("encode");
    assert_eq!(bytes[0], 1);
    let json: serde_json::Value = serde_json::from_slice(&bytes[1..]).expect("json");
    assert_eq!(json["id"], "codec");
    assert_eq!(json["payload"]["list"][1], "two");
}

#[test]
fn every_kind_round_trips() {
    let spec = spec();
    let bytes = codec::encode(RecordKind::JobSpec, &spec).expect("encode");
    assert_eq!(
        codec::decode::<JobSpec>(RecordKind::JobSpec, &bytes).expect("decode"),
        spec
    );
    let state = JobState::default();
    let bytes = codec::encode(RecordKind::JobState, &state).expect("encode");
    assert_eq!(
        codec::decode::<JobState>(RecordKind::JobState, &bytes).expect("decode"),
        state
    );
    let bytes = codec::encode(RecordKind::Meta, &1u32).expect("encode");
    assert_eq!(bytes, b"\x011");
    assert_eq!(
        codec::decode::<u32>(RecordKind::Meta, &bytes).expect("decode"),
        1
    );
}

#[test]
fn encode_into_appends_to_a_reused_buffer() {
    let mut buf = Vec::new();
    codec::encode_into(RecordKind::Meta, &7u32, &mut buf).expect("encode");
    buf.clear();
    codec::encode_into(RecordKind::Meta, &8u32, &mut buf).expect("encode");
    assert_eq!(buf, b"\x018");
}

/// The compatibility rule of the JSON records: a field added to a stored
/// type must carry `#[serde(default)]`, so that records written before it
/// still decode (and a field unknown to this build is ignored). This record
/// is a `JobState` of the first schema, before `retry_wait`, `failed`,
/// `progress`, `timed_out` and `retries` existed, plus a field from the future.
/// If this test fails, a field was added without a default: old stores would
/// have every state quarantined.
#[test]
fn a_state_of_the_first_schema_still_decodes() {
    let old = br#"{"paused":null,"next_fire":null,"last_slot":null,"last_fire":null,"last_run":null,"counters":{"fires":3,"runs":3,"succeeded":3,"failed":0,"cancelled":0,"interrupted":0,"coalesced":0,"skipped":{"paused":0,"overlap":0,"queue_full":0,"misfire":0,"orphaned":0}},"consecutive_failures":0,"in_flight":[],"queued":0,"completed":false,"a_field_from_a_newer_build":42}"#;
    let mut bytes = vec![1];
    bytes.extend_from_slice(old);
    let state = codec::decode::<JobState>(RecordKind::JobState, &bytes)
        .unwrap_or_else(|e| panic!("a first-schema state no longer decodes: {e}"));
    assert_eq!(state.counters.runs, 3);
}

/// The same rule for specs: a spec with only the fields of the first schema
/// (no timeout, retry, tags...) and a payload still decodes.
#[test]
fn a_spec_of_the_first_schema_still_decodes() {
    let old = br#"{"id":"old","schedule":{"kind":{"Cron":"0 30 9 * * Mon-Fri"},"tz":"Europe/Berlin","dst":{"gap":"RunAtTransition","fold":"First"},"bounds":{"not_before":null,"not_after":null,"max_fires":null}},"handler":"h","payload":{"to":"ops@example.com"},"overlap":"Skip","misfire":"FireOnce","catch_up_window":null,"interrupted":"Retry","jitter":{"secs":0,"nanos":0}}"#;
    let mut bytes = vec![1];
    bytes.extend_from_slice(old);
    let spec = codec::decode::<JobSpec>(RecordKind::JobSpec, &bytes)
        .unwrap_or_else(|e| panic!("a first-schema spec no longer decodes: {e}"));
    assert_eq!(spec.id.as_str(), "old");
    assert_eq!(spec.payload["to"], "ops@example.com");
}

#[test]
fn bad_values_are_errors_with_a_reason() {
    let empty = codec::decode_state(b"").expect_err("empty");
    assert!(matches!(empty, DecodeError::Empty { .. }));
    assert!(empty.to_string().contains("empty"));

    for version in [0u8, 6, 255] {
        let err = codec::decode_state(&[version, b'{', b'}']).expect_err("unknown version");
        assert!(
            matches!(err, DecodeError::UnknownVersion { found, supported: 5, .. } if found == version),
            "{err:?}"
        );
        assert!(err
            .to_string()
            .contains(&format!("unknown job state record version {version}")));
    }

    let err = codec::decode_state(b"\x01{\"paused\":").expect_err("bad");
    assert!(matches!(err, DecodeError::Json { version: 1, .. }));
    assert!(err.to_string().contains("does not decode"));
    let err = codec::decode_state(b"\x02\xff\xff").expect_err("bad");
    assert!(matches!(err, DecodeError::Binary { version: 2, .. }));
    assert!(err.to_string().contains("does not decode"));
    let err = codec::decode_chunk(b"\x02\x05").expect_err("bad");
    assert!(matches!(err, DecodeError::Binary { version: 2, .. }));
}

/// Version-2 states, written before the overlap queue and the cancel marks
/// of runs in flight were stored, still decode: with an empty queue and no
/// cancel marks. The golden value is what version 2 wrote for a state with
/// two fires queued (only their number was stored, and it is dropped).
#[test]
fn a_version_2_state_still_decodes_with_an_empty_queue() {
    use super::codec::{InFlightV2, StateV2};
    let mut state = JobState::default();
    state.counters.runs = 3;
    state.counters.fires = 4;
    state.consecutive_failures = 1;
    let golden: &[u8] = &GOLDEN_STATE_V2;
    assert_eq!(codec::decode_state(golden).expect("decode"), state);

    // The version-2 layout, with a run in flight and a fire queued.
    let old = StateV2 {
        paused: None,
        next_fire: Some((1_767_225_600, 0)),
        last_slot: Some((1_767_225_600, 0)),
        last_fire: None,
        last_run: Some(plain_run(9)),
        counters: state.counters.clone(),
        consecutive_failures: 1,
        in_flight: vec![InFlightV2 {
            run_id: cronactor_actors::RunId(7),
            scheduled: (1_767_225_600, 0),
            started: (1_767_225_600, 5),
            attempt: 2,
            trigger: Trigger::Manual,
            event: Some("go".into()),
        }],
        queued: 1,
        completed: false,
        retry_wait: None,
        failed: None,
        progress: Some((0.5, "half".into())),
    };
    let mut bytes = vec![2];
    bytes.extend(postcard::to_allocvec(&old).expect("encode"));
    let back = codec::decode_state(&bytes).expect("decode");
    assert!(back.queue.is_empty(), "{back:?}");
    assert_eq!(back.queued(), 0);
    assert_eq!(back.last_run, Some(plain_run(9)));
    assert_eq!(back.next_fire, Some(t(1_767_225_600, 0)));
    assert_eq!(back.progress, Some(Box::new((0.5, "half".into()))));
    let run = &back.in_flight[..];
    assert_eq!(run.len(), 1);
    assert_eq!(run[0].run_id, cronactor_actors::RunId(7));
    assert_eq!(run[0].started, t(1_767_225_600, 5));
    assert_eq!((run[0].attempt, run[0].trigger), (2, Trigger::Manual));
    assert_eq!(run[0].event.as_deref(), Some("go"));
    assert_eq!(run[0].cancelled, None);

    // The mirror is the version-2 layout: it writes the golden value again.
    let golden_old = StateV2 {
        next_fire: None,
        last_slot: None,
        last_run: None,
        in_flight: Vec::new(),
        queued: 2,
        progress: None,
        ..old
    };
    let mut bytes = vec![2];
    bytes.extend(postcard::to_allocvec(&golden_old).expect("encode"));
    assert_eq!(bytes, golden);
}

/// `JobState` above, as version 2 writes it.
const GOLDEN_STATE_V2: [u8; 28] = [
    2, 0, 0, 0, 0, 0, 4, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0,
];

fn t(secs: i64, nanos: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(secs, nanos).expect("instant")
}

/// A state with a fire queued by an event (payload included) and a run in
/// flight that was cancelled.
fn state_with_queue_and_cancel_mark() -> JobState {
    let mut state = JobState::default();
    state.counters.runs = 3;
    state.counters.fires = 4;
    state.in_flight.push(cronactor_actors::InFlightRun {
        run_id: cronactor_actors::RunId(7),
        scheduled: t(1_767_225_600, 0),
        started: t(1_767_225_600, 5),
        attempt: 1,
        trigger: Trigger::Manual,
        event: None,
        payload: None,
        cancelled: Some(cronactor_actors::CancelReason::Request),
    });
    state.queue.push_back(cronactor_actors::QueuedFire {
        scheduled: t(1_767_225_601, 0),
        trigger: Trigger::Event,
        attempt: 1,
        event: Some((
            "go".into(),
            std::sync::Arc::new(serde_json::json!({ "n": 7, "list": [1.5, null] })),
        )),
    });
    state.queue.push_back(cronactor_actors::QueuedFire {
        scheduled: t(1_767_225_602, 0),
        trigger: Trigger::Schedule,
        attempt: 2,
        event: None,
    });
    state
}

/// A state written by the previous build (version 3, before the event
/// payloads of runs in flight and of a waiting retry were stored) still
/// decodes, without payloads.
#[test]
fn a_version_3_state_still_decodes() {
    let state = state_with_queue_and_cancel_mark();
    let golden: &[u8] = &GOLDEN_STATE_V3;
    let back = codec::decode_state(golden).expect("decode");
    assert_eq!(back, state);
    assert_eq!(back.queued(), 2);
}

/// `state_with_queue_and_cancel_mark`, with an event run in flight and a
/// retry of an event's fire waiting: their payloads are stored.
fn state_with_event_payloads() -> JobState {
    let mut state = state_with_queue_and_cancel_mark();
    let payload = std::sync::Arc::new(serde_json::json!({ "to": "eu" }));
    state.in_flight.push(cronactor_actors::InFlightRun {
        run_id: cronactor_actors::RunId(8),
        scheduled: t(1_767_225_603, 0),
        started: t(1_767_225_603, 0),
        attempt: 2,
        trigger: Trigger::Event,
        event: Some("deploy".into()),
        payload: Some(payload.clone()),
        cancelled: None,
    });
    state.retry_wait = Some(Box::new(cronactor_actors::RetryWait {
        scheduled: t(1_767_225_604, 0),
        attempt: 3,
        due: t(1_767_225_609, 0),
        trigger: Trigger::Retry,
        event: Some(Box::new(("deploy".into(), payload))),
    }));
    state
}

/// A version-4 state (before the job's last result was stored) still
/// decodes, with no result.
#[test]
fn a_version_4_state_still_decodes_without_a_result() {
    let state = state_with_event_payloads();
    let golden: &[u8] = &GOLDEN_STATE_V4;
    let back = codec::decode_state(golden).expect("decode");
    assert_eq!(back, state);
    assert_eq!(back.last_result, None);
    assert_eq!(back.queued(), 2);
    // A truncated version-4 record is still refused, as version 4.
    let err = codec::decode_state(&golden[..golden.len() - 3]).expect_err("truncated");
    assert!(
        matches!(err, DecodeError::Binary { version: 4, .. }),
        "{err:?}"
    );
}

/// Bytes after a version-4 state are ignored, as they always were (postcard
/// reads a record's fields and no further), and as after a state of any
/// other version: they are not read as the last result version 4 did not
/// have.
#[test]
fn bytes_after_a_version_4_state_are_not_read_as_a_result() {
    let golden: &[u8] = &GOLDEN_STATE_V4;
    // Postcard's `Some` of the JSON text `42`, then `None`.
    for tail in [&[1, 2, b'4', b'2'][..], &[0][..], &[0, 7, 7][..], &[9][..]] {
        let mut bytes = golden.to_vec();
        bytes.extend_from_slice(tail);
        let back = codec::decode_state(&bytes).expect("decodes as version 4");
        assert_eq!(back, state_with_event_payloads(), "tail {tail:?}");
        assert_eq!(back.last_result, None, "tail {tail:?}");
    }
    // Version 5 ignores them too.
    let mut bytes = Vec::new();
    codec::encode_state_into(&state_with_a_result(), &mut bytes).expect("encode");
    bytes.extend_from_slice(&[1, 2, b'4', b'2']);
    assert_eq!(
        codec::decode_state(&bytes).expect("decode"),
        state_with_a_result()
    );
}

/// `state_with_event_payloads`, with a last result.
fn state_with_a_result() -> JobState {
    let mut state = state_with_event_payloads();
    state.last_result = Some(std::sync::Arc::new(
        serde_json::json!({ "upto": 300, "at": [1.5, null] }),
    ));
    state
}

/// The binary (version 5) state encoding is positional: a field added to
/// `JobState` changes it, and stored states would no longer decode. If this
/// test fails, add a version 6 to `RecordKind::JobState` with a conversion
/// from version 5 in `codec::decode_state` (as for versions 2, 3 and 4),
/// and a new golden value here.
#[test]
fn a_version_5_state_decodes_and_encodes_the_same() {
    let state = state_with_a_result();
    let mut bytes = Vec::new();
    codec::encode_state_into(&state, &mut bytes).expect("encode");
    let golden: &[u8] = &GOLDEN_STATE_V5;
    assert_eq!(
        bytes, golden,
        "the version-5 state layout changed: {bytes:?}"
    );
    let back = codec::decode_state(golden).expect("decode");
    assert_eq!(back, state);
    assert_eq!(back.queued(), 2);
    // Without a result, version 5 is version 4 and one byte.
    let mut none = Vec::new();
    codec::encode_state_into(&state_with_event_payloads(), &mut none).expect("encode");
    assert_eq!(none[0], 5);
    assert_eq!(&none[1..none.len() - 1], &GOLDEN_STATE_V4[1..]);
    assert_eq!(none.last(), Some(&0));
    let state = state_with_a_result();
    assert_eq!(
        serde_json::to_value(&state).expect("json")["last_result"]["upto"],
        300
    );
    // JSON (version 1) keeps them too, the payloads as JSON.
    let json = serde_json::to_value(&state).expect("json");
    assert_eq!(json["queue"][0]["event"][1]["n"], 7);
    assert_eq!(json["in_flight"][0]["cancelled"], "Request");
    assert_eq!(json["in_flight"][1]["payload"]["to"], "eu");
    assert_eq!(json["retry_wait"]["event"][1]["to"], "eu");
    let mut v1 = codec::encode(RecordKind::JobState, &state).expect("encode");
    v1[0] = 1;
    assert_eq!(codec::decode_state(&v1).expect("decode"), state);
}

/// A stored queued fire whose payload text is not JSON is a record that does
/// not decode (quarantined), not a panic.
#[test]
fn a_queued_payload_that_is_not_json_does_not_decode() {
    let mut state = state_with_queue_and_cancel_mark();
    state.queue.truncate(1);
    let mut bytes = Vec::new();
    codec::encode_state_into(&state, &mut bytes).expect("encode");
    let text = br#"{"list":[1.5,null],"n":7}"#;
    let at = bytes
        .windows(text.len())
        .position(|w| w == text)
        .expect("the payload as JSON text");
    bytes[at] = b'!';
    let err = codec::decode_state(&bytes).expect_err("bad payload");
    assert!(
        matches!(err, DecodeError::Binary { version: 5, .. }),
        "{err:?}"
    );
}

/// A stored last result whose text is not JSON does not decode either.
#[test]
fn a_last_result_that_is_not_json_does_not_decode() {
    let mut bytes = Vec::new();
    codec::encode_state_into(&state_with_a_result(), &mut bytes).expect("encode");
    let text = br#"{"at":[1.5,null],"upto":300}"#;
    let at = bytes
        .windows(text.len())
        .position(|w| w == text)
        .expect("the result as JSON text");
    bytes[at + 1] = b'!';
    let err = codec::decode_state(&bytes).expect_err("bad result");
    assert!(
        matches!(err, DecodeError::Binary { version: 5, .. }),
        "{err:?}"
    );
}

/// `state_with_a_result`, as version 5 writes it.
const GOLDEN_STATE_V5: [u8; 195] = [
    5, 0, 0, 0, 0, 0, 4, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 7, 128, 228, 173, 149, 13,
    0, 128, 228, 173, 149, 13, 5, 1, 1, 0, 0, 1, 0, 8, 134, 228, 173, 149, 13, 0, 134, 228, 173,
    149, 13, 0, 2, 6, 1, 6, 100, 101, 112, 108, 111, 121, 1, 11, 123, 34, 116, 111, 34, 58, 34,
    101, 117, 34, 125, 0, 2, 130, 228, 173, 149, 13, 0, 6, 1, 1, 2, 103, 111, 25, 123, 34, 108,
    105, 115, 116, 34, 58, 91, 49, 46, 53, 44, 110, 117, 108, 108, 93, 44, 34, 110, 34, 58, 55,
    125, 132, 228, 173, 149, 13, 0, 0, 2, 0, 0, 1, 136, 228, 173, 149, 13, 0, 3, 146, 228, 173,
    149, 13, 0, 4, 1, 6, 100, 101, 112, 108, 111, 121, 11, 123, 34, 116, 111, 34, 58, 34, 101, 117,
    34, 125, 0, 0, 1, 28, 123, 34, 97, 116, 34, 58, 91, 49, 46, 53, 44, 110, 117, 108, 108, 93, 44,
    34, 117, 112, 116, 111, 34, 58, 51, 48, 48, 125,
];

/// `state_with_event_payloads`, as version 4 wrote it.
const GOLDEN_STATE_V4: [u8; 165] = [
    4, 0, 0, 0, 0, 0, 4, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 7, 128, 228, 173, 149, 13,
    0, 128, 228, 173, 149, 13, 5, 1, 1, 0, 0, 1, 0, 8, 134, 228, 173, 149, 13, 0, 134, 228, 173,
    149, 13, 0, 2, 6, 1, 6, 100, 101, 112, 108, 111, 121, 1, 11, 123, 34, 116, 111, 34, 58, 34,
    101, 117, 34, 125, 0, 2, 130, 228, 173, 149, 13, 0, 6, 1, 1, 2, 103, 111, 25, 123, 34, 108,
    105, 115, 116, 34, 58, 91, 49, 46, 53, 44, 110, 117, 108, 108, 93, 44, 34, 110, 34, 58, 55,
    125, 132, 228, 173, 149, 13, 0, 0, 2, 0, 0, 1, 136, 228, 173, 149, 13, 0, 3, 146, 228, 173,
    149, 13, 0, 4, 1, 6, 100, 101, 112, 108, 111, 121, 11, 123, 34, 116, 111, 34, 58, 34, 101, 117,
    34, 125, 0, 0,
];

/// `state_with_queue_and_cancel_mark`, as version 3 wrote it.
const GOLDEN_STATE_V3: [u8; 93] = [
    3, 0, 0, 0, 0, 0, 4, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 7, 128, 228, 173, 149, 13,
    0, 128, 228, 173, 149, 13, 5, 1, 1, 0, 1, 0, 2, 130, 228, 173, 149, 13, 0, 6, 1, 1, 2, 103,
    111, 25, 123, 34, 108, 105, 115, 116, 34, 58, 91, 49, 46, 53, 44, 110, 117, 108, 108, 93, 44,
    34, 110, 34, 58, 55, 125, 132, 228, 173, 149, 13, 0, 0, 2, 0, 0, 0, 0, 0,
];

#[test]
fn a_history_value_of_the_first_schema_reads_as_a_chunk_of_one() {
    let run = r#"{"run_id":7,"scheduled":"2026-01-01T00:00:00Z","started":"2026-01-01T00:00:00Z","finished":"2026-01-01T00:00:01Z","attempt":1,"trigger":"Schedule","outcome":"Succeeded"}"#;
    let mut bytes = vec![1];
    bytes.extend_from_slice(run.as_bytes());
    let old = codec::decode_chunk(&bytes).expect("decode");
    assert_eq!(old.keep, None);
    let runs = old.runs;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].attempt, 1);
    let mut chunk = Vec::new();
    let one = codec::encode_run(&runs[0]).expect("encode");
    codec::encode_chunk_into(5, [&one[..], &one[..]].into_iter(), &mut chunk);
    let new = codec::decode_chunk(&chunk).expect("decode");
    assert_eq!(new.keep, Some(5));
    assert_eq!(new.runs, [runs[0].clone(), runs[0].clone()]);
}

/// A run that started 12.3 ms after its slot and ran 41 µs, as most do.
fn plain_run(n: u64) -> RunRecord {
    let at = chrono::DateTime::from_timestamp(1_700_000_000 + n as i64, 0).expect("time");
    let started = at + chrono::TimeDelta::microseconds(12_345);
    RunRecord {
        run_id: cronactor_actors::RunId(0x9e37_79b9_7f4a_7c15 ^ n),
        scheduled: at,
        started,
        finished: started + chrono::TimeDelta::microseconds(41),
        attempt: 1,
        trigger: cronactor_actors::Trigger::Schedule,
        outcome: cronactor_actors::Outcome::Succeeded,
    }
}

/// A version-3 chunk keeps a run's start and end as offsets: a plain run
/// takes 25 bytes (postcard of the whole record: 37), and every run reads
/// back exactly, those the offsets cannot give back included.
#[test]
fn a_run_is_stored_with_offsets_and_reads_back_exactly() {
    use chrono::{DateTime, TimeDelta};
    let plain = plain_run(1);
    let bytes = codec::encode_run(&plain).expect("encode");
    let whole = postcard::to_allocvec(&plain).expect("encode");
    assert_eq!((bytes.len(), whole.len()), (25, 37));
    assert_eq!(codec::decode_run(&bytes).expect("decode"), plain);

    let at = |secs: i64, nanos: u32| DateTime::from_timestamp(secs, nanos).expect("instant");
    let mut odd = vec![
        // A failure, with its text.
        run(2),
        // Started before its slot (a clock stepped back), ended before it
        // started (another step).
        RunRecord {
            started: plain.scheduled - TimeDelta::milliseconds(3),
            finished: plain.scheduled - TimeDelta::milliseconds(5),
            ..plain.clone()
        },
        // Started inside a leap second (1_700_000_039 is hh:mm:59).
        RunRecord {
            scheduled: at(1_700_000_039, 0),
            started: at(1_700_000_039, 1_200_000_000),
            finished: at(1_700_000_040, 5),
            ..plain.clone()
        },
        // Instants far more than 292 years apart.
        RunRecord {
            scheduled: at(0, 0),
            started: at(20_000_000_000, 0),
            finished: at(20_000_000_001, 0),
            ..plain.clone()
        },
    ];
    odd.push(RunRecord {
        run_id: cronactor_actors::RunId(u64::MAX),
        attempt: u32::MAX,
        trigger: cronactor_actors::Trigger::Retry,
        outcome: cronactor_actors::Outcome::Coalesced {
            slots: 7,
            through: plain.scheduled,
        },
        ..plain.clone()
    });
    for run in &odd {
        let bytes = codec::encode_run(run).expect("encode");
        assert_eq!(&codec::decode_run(&bytes).expect("decode"), run);
    }
    // And in a chunk.
    let encoded: Vec<Vec<u8>> = odd
        .iter()
        .map(|r| codec::encode_run(r).expect("encode"))
        .collect();
    let mut chunk = Vec::new();
    codec::encode_chunk_into(100, encoded.iter().map(|r| &r[..]), &mut chunk);
    assert_eq!(chunk[0], 3);
    let back = codec::decode_chunk(&chunk).expect("decode");
    assert_eq!((back.keep, back.runs), (Some(100), odd));
}

/// Chunks written by schema version 2 (whole `RunRecord`s, version byte 2)
/// still read.
#[test]
fn a_version_2_chunk_still_decodes() {
    let runs = vec![plain_run(1), run(2)];
    let mut bytes = vec![2];
    bytes.extend(postcard::to_allocvec(&(5u64, &runs)).expect("encode"));
    let chunk = codec::decode_chunk(&bytes).expect("decode");
    assert_eq!((chunk.keep, chunk.runs), (Some(5), runs));
}

/// A version-3 run whose instants leave chrono's range is an error, not a
/// panic.
#[test]
fn a_run_with_instants_out_of_range_is_an_error() {
    use cronactor_actors::{Outcome, Trigger};
    // The layout of a run with offsets: variant 0, id, slot, start offset,
    // run time, attempt, trigger, outcome.
    let stored = |secs: i64, started_ns: i64| {
        postcard::to_allocvec(&(
            0u32,
            [7u8; 8],
            (secs, 0u32),
            started_ns,
            0i64,
            1u32,
            Trigger::Schedule,
            Outcome::Succeeded,
        ))
        .expect("encode")
    };
    let fine = stored(1_700_000_000, 5);
    assert_eq!(
        codec::decode_run(&fine).expect("decode").started,
        chrono::DateTime::from_timestamp(1_700_000_000, 5).expect("instant")
    );
    let last = chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp();
    for bad in [stored(i64::MAX, 0), stored(last, i64::MAX)] {
        let err = codec::decode_run(&bad).expect_err("out of range");
        assert!(
            matches!(err, DecodeError::Binary { version: 3, .. }),
            "{err:?}"
        );
    }
}

#[test]
fn history_keys_sort_by_sequence_and_stay_within_their_job() {
    let key = |id: &str, seq: u64| {
        let mut buf = Vec::new();
        codec::history_key_into(id, seq, &mut buf);
        buf
    };
    let mut keys = vec![key("j", 256), key("j", 1), key("j", 2), key("j", u64::MAX)];
    keys.sort();
    assert_eq!(
        keys,
        [key("j", 1), key("j", 2), key("j", 256), key("j", u64::MAX)]
    );
    // A job's prefix is not a prefix of another job's keys.
    let prefix = codec::history_prefix("j");
    assert!(key("j", 0).starts_with(&prefix));
    assert!(!key("j-2", 0).starts_with(&prefix));
    assert!(!key("j\u{1}", 0).starts_with(&prefix));
    assert_eq!(
        codec::history_chunk(&key("j", 42), prefix.len()),
        Some((42, 1))
    );
    let mut chunk = Vec::new();
    codec::chunk_key_into("j", 42, 5, &mut chunk);
    assert_eq!(codec::history_chunk(&chunk, prefix.len()), Some((42, 5)));
    assert!(chunk > key("j", 42) && chunk < key("j", 43));
    assert_eq!(codec::history_chunk(b"j\0short", prefix.len()), None);
    assert_eq!(codec::history_chunk(b"j", prefix.len()), None);
}

#[test]
fn quarantine_keys_name_the_tree_and_never_collide() {
    assert_eq!(codec::quarantine_key("jobs", b"a", 0), b"jobs\0a");
    assert_eq!(
        codec::quarantine_key("jobs", b"a", 1),
        b"jobs\0a\0\0\0\0\0\0\0\0\x01"
    );
    assert_ne!(
        codec::quarantine_key("jobs", b"a", 0),
        codec::quarantine_key("state", b"a", 0)
    );
}

proptest! {
    /// Whatever the bytes, decoding returns, and never panics.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = codec::decode::<JobState>(RecordKind::JobState, &bytes);
        let _ = codec::decode::<JobSpec>(RecordKind::JobSpec, &bytes);
        let _ = codec::decode::<RunRecord>(RecordKind::Run, &bytes);
        let _ = codec::decode_run(&bytes);
        let _ = codec::decode_chunk(&bytes);
    }

    /// Any run with instants chrono holds reads back exactly.
    #[test]
    fn any_run_reads_back_exactly(
        slot in -10_000_000_000i64..10_000_000_000,
        slot_ns in 0u32..1_000_000_000,
        start in -4_000_000_000_000_000_000i64..4_000_000_000_000_000_000,
        ran in -4_000_000_000_000_000_000i64..4_000_000_000_000_000_000,
        id in any::<u64>(),
    ) {
        let scheduled = chrono::DateTime::from_timestamp(slot, slot_ns).expect("instant");
        let started = scheduled + chrono::TimeDelta::nanoseconds(start);
        let record = RunRecord {
            run_id: cronactor_actors::RunId(id),
            started,
            finished: started + chrono::TimeDelta::nanoseconds(ran),
            scheduled,
            ..plain_run(0)
        };
        let bytes = codec::encode_run(&record).expect("encode");
        prop_assert_eq!(codec::decode_run(&bytes).expect("decode"), record);
    }

    /// And bytes that are a version byte plus arbitrary JSON-ish text too.
    #[test]
    fn decoding_json_like_text_never_panics(text in "[{}\\[\\]\":,0-9a-z ]{0,64}") {
        let mut bytes = vec![1];
        bytes.extend_from_slice(text.as_bytes());
        let _ = codec::decode::<JobState>(RecordKind::JobState, &bytes);
        let _ = codec::decode::<JobSpec>(RecordKind::JobSpec, &bytes);
    }
}

/// A crash after a fold wrote the trees and before it deleted its journal
/// segments: the next open replays those segments over the folded trees, and
/// the result is the same (states replaced, history entries not doubled).
#[test]
fn replaying_segments_that_were_already_folded_changes_nothing() {
    use super::SledStore;
    use cronactor_actors::SnapshotStore;

    let dir = tempfile::tempdir().expect("temp dir");
    let spec = cronactor_actors::JobSpec::builder(
        "j",
        cronactor_actors::ScheduleSpec::every(std::time::Duration::from_secs(1)),
        "h",
    )
    .build()
    .expect("spec");
    let mut state = JobState::default();
    state.counters.runs = 9;
    let segments: Vec<(sled::IVec, sled::IVec)> = {
        let store = SledStore::open(dir.path()).expect("open");
        store.apply(job_ops(&spec, 4, 3, &state)).expect("apply");
        futures::executor::block_on(store.flush()).expect("flush");
        let segments = journal_values(&store);
        assert_eq!(segments.len(), 1);
        store.fold().expect("fold");
        assert!(store.shared.journal.is_empty());
        // The deletion is lost: the segments are back.
        for (k, v) in &segments {
            store.shared.journal.insert(k, v).expect("insert");
        }
        store.shared.db.flush().expect("flush");
        // Dropped without a fold: nothing new is pending.
        segments
    };
    assert_eq!(segments.len(), 1);
    let store = SledStore::open(dir.path()).expect("reopen");
    assert!(store.shared.journal.is_empty(), "replayed and deleted");
    let loaded = store.load().expect("load");
    assert_eq!(loaded.jobs.len(), 1);
    assert_eq!(loaded.jobs[0].state, state);
    assert_eq!(
        store.history(&spec.id, 10).expect("history"),
        [run(3), run(2), run(1)]
    );
    assert_eq!(store.shared.history.len(), 1, "one chunk, not two");
}

/// A large flush is split into small journal values (see
/// `journal_writes_never_make_sled_blob_files`), and all of them replay
/// after a crash.
#[test]
fn a_large_flush_is_split_into_small_segments_that_all_replay() {
    use super::SledStore;
    use cronactor_actors::{JobRecord, SnapshotStore, StoreOp};

    let dir = tempfile::tempdir().expect("temp dir");
    let specs: Vec<JobSpec> = (0..3000)
        .map(|i| {
            JobSpec::builder(
                format!("job-{i}"),
                ScheduleSpec::every(Duration::from_secs(1)),
                "h",
            )
            .build()
            .expect("spec")
        })
        .collect();
    let mut state = JobState::default();
    state.counters.runs = 42;
    let kept: Vec<(sled::IVec, sled::IVec)> = {
        let store = SledStore::open(dir.path()).expect("open");
        let mut ops: Vec<StoreOp> = specs
            .iter()
            .map(|spec| {
                StoreOp::PutJob(Box::new(JobRecord {
                    spec: spec.clone(),
                    state: JobState::default(),
                }))
            })
            .collect();
        ops.extend(
            specs
                .iter()
                .map(|spec| StoreOp::PutState(spec.id.clone(), Box::new(state.clone()))),
        );
        store.apply(ops).expect("apply");
        futures::executor::block_on(store.flush()).expect("flush");
        let segments = journal_values(&store);
        assert!(segments.len() > 1, "{} segment(s)", segments.len());
        for (_, value) in &segments {
            assert!(
                value.len() <= 4 * 1024,
                "a segment of {} bytes",
                value.len()
            );
        }
        segments
    };
    // The drop folded; put the trees back to "nothing folded" and the journal
    // back to what it held.
    {
        // sled releases the lock of a closed database from a background
        // thread, a moment after the drop.
        let started = std::time::Instant::now();
        let db = loop {
            match sled::open(dir.path()) {
                Ok(db) => break db,
                Err(e) if started.elapsed() < Duration::from_secs(5) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("raw open: {e}"),
            }
        };
        for tree in ["jobs", "state"] {
            db.open_tree(tree).expect("tree").clear().expect("clear");
        }
        let journal = db.open_tree("journal").expect("tree");
        for (k, v) in &kept {
            journal.insert(k, v).expect("insert");
        }
        db.flush().expect("flush");
    }
    let store = SledStore::open(dir.path()).expect("reopen");
    let loaded = store.load().expect("load");
    assert_eq!(loaded.jobs.len(), specs.len());
    assert!(loaded.jobs.iter().all(|job| job.state == state));
    assert!(store.shared.journal.is_empty());
}

/// No journal write reaches sled's blob files, which sled 0.34 does not
/// `fsync`: not a segment, and not the tree node that holds many segments
/// (sled writes a node of more than 128 KiB as a blob when it consolidates
/// it, every ten updates). Flushes of run state as the registry makes them,
/// then a fold.
#[test]
fn journal_writes_never_make_sled_blob_files() {
    use super::{SledStore, SledStoreOptions};
    use cronactor_actors::{JobRecord, SnapshotStore, StoreOp};

    let dir = tempfile::tempdir().expect("temp dir");
    let blobs = || {
        std::fs::read_dir(dir.path().join("blobs"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    // No fold before the explicit one: the journal keeps every segment.
    let options = SledStoreOptions::default()
        .fold_interval(Duration::from_secs(3600))
        .fold_after_ops(u64::MAX);
    let store = SledStore::open_with(dir.path(), options).expect("open");
    let specs = every_second_specs(2000);
    store
        .apply(
            specs
                .iter()
                .map(|spec| {
                    StoreOp::PutJob(Box::new(JobRecord {
                        spec: spec.clone(),
                        state: JobState::default(),
                    }))
                })
                .collect(),
        )
        .expect("apply");
    futures::executor::block_on(store.flush()).expect("flush");
    let mut state = JobState::default();
    for round in 0..30u64 {
        state.counters.runs = round;
        state.last_run = Some(run(round));
        let mut ops: Vec<StoreOp> = specs
            .iter()
            .map(|spec| StoreOp::PutState(spec.id.clone(), Box::new(state.clone())))
            .collect();
        ops.extend(specs.iter().map(|spec| StoreOp::AppendHistory {
            id: spec.id.clone(),
            record: Box::new(run(round)),
            keep: 100,
        }));
        store.apply(ops).expect("apply");
        futures::executor::block_on(store.flush()).expect("flush");
    }
    let journaled: usize = journal_values(&store).iter().map(|(_, v)| v.len()).sum();
    assert!(journaled > 4 << 20, "{journaled} bytes journaled");
    assert_eq!(blobs(), 0, "blob files after {journaled} bytes of journal");
    store.fold().expect("fold");
    futures::executor::block_on(store.flush()).expect("flush");
    assert_eq!(blobs(), 0, "blob files after the fold");
}

/// The fold thread folds on its own: with a short interval, a flushed write
/// leaves the journal and reaches the trees while the store stays open, and
/// enough pending writes wake it before the interval.
#[test]
fn the_fold_thread_empties_the_journal_by_itself() {
    use super::{SledStore, SledStoreOptions};
    use cronactor_actors::{JobRecord, SnapshotStore, StoreOp};

    let wait_for_empty_journal = |store: &SledStore| {
        let started = std::time::Instant::now();
        while !store.shared.journal.is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the journal was never folded"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(1)), "h")
        .build()
        .expect("spec");
    let put = |runs: u64| {
        let mut state = JobState::default();
        state.counters.runs = runs;
        StoreOp::PutState(spec.id.clone(), Box::new(state))
    };

    // By the interval.
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SledStore::open_with(
        dir.path(),
        SledStoreOptions::default().fold_interval(Duration::from_millis(20)),
    )
    .expect("open");
    store
        .apply(vec![
            StoreOp::PutJob(Box::new(JobRecord {
                spec: spec.clone(),
                state: JobState::default(),
            })),
            put(3),
        ])
        .expect("apply");
    futures::executor::block_on(store.flush()).expect("flush");
    wait_for_empty_journal(&store);
    let stored = store.shared.state_of(&spec.id).expect("state in the tree");
    assert_eq!(stored.counters.runs, 3);
    drop(store);

    // By the number of pending writes, with an interval that never comes.
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SledStore::open_with(
        dir.path(),
        SledStoreOptions::default()
            .fold_interval(Duration::from_secs(3600))
            .fold_after_ops(10),
    )
    .expect("open");
    let mut ops = vec![StoreOp::PutJob(Box::new(JobRecord {
        spec: spec.clone(),
        state: JobState::default(),
    }))];
    ops.extend((0..10).map(put));
    store.apply(ops).expect("apply");
    futures::executor::block_on(store.flush()).expect("flush");
    wait_for_empty_journal(&store);
    assert_eq!(
        store
            .shared
            .state_of(&spec.id)
            .expect("state")
            .counters
            .runs,
        9
    );
}

/// The ops of a job's life: its spec (with a default state), `runs` runs
/// (`run(0)` on) kept `keep` at most, then `state`.
fn job_ops(
    spec: &JobSpec,
    runs: u64,
    keep: usize,
    state: &JobState,
) -> Vec<cronactor_actors::StoreOp> {
    use cronactor_actors::{JobRecord, StoreOp};
    let mut ops = vec![StoreOp::PutJob(Box::new(JobRecord {
        spec: spec.clone(),
        state: JobState::default(),
    }))];
    ops.extend((0..runs).map(|n| StoreOp::AppendHistory {
        id: spec.id.clone(),
        record: Box::new(run(n)),
        keep,
    }));
    ops.push(StoreOp::PutState(spec.id.clone(), Box::new(state.clone())));
    ops
}

/// `n` specs of jobs every second, `job-00000` on (in key order).
fn every_second_specs(n: usize) -> Vec<JobSpec> {
    (0..n)
        .map(|i| {
            JobSpec::builder(
                format!("job-{i:05}"),
                ScheduleSpec::every(Duration::from_secs(1)),
                "h",
            )
            .build()
            .expect("spec")
        })
        .collect()
}

/// A sled store in `dir` holding one every-second job with a default state,
/// and that job's spec.
fn store_with_one_job(dir: &std::path::Path) -> (super::SledStore, JobSpec) {
    use cronactor_actors::{JobRecord, SnapshotStore, StoreOp};
    let spec = every_second_specs(1).remove(0);
    let store = super::SledStore::open(dir).expect("open");
    store
        .apply(vec![StoreOp::PutJob(Box::new(JobRecord {
            spec: spec.clone(),
            state: JobState::default(),
        }))])
        .expect("apply");
    (store, spec)
}

/// A run whose every instant is `n` seconds after a fixed epoch.
pub(crate) fn run(n: u64) -> RunRecord {
    let at = chrono::DateTime::from_timestamp(1_700_000_000 + n as i64, 0).expect("time");
    RunRecord {
        run_id: cronactor_actors::RunId(n),
        scheduled: at,
        started: at,
        finished: at,
        attempt: 1,
        trigger: cronactor_actors::Trigger::Schedule,
        outcome: cronactor_actors::Outcome::Failed(format!("run {n} failed")),
    }
}

/// Every value of an open store's journal tree, in key order.
fn journal_values(store: &super::SledStore) -> Vec<(sled::IVec, sled::IVec)> {
    store
        .shared
        .journal
        .iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("journal")
}

/// A fold of a few thousand jobs, from a journal of hundreds of segments:
/// every job's spec, state and history is in the trees after the fold, and
/// the journal is empty.
#[test]
fn a_fold_of_many_jobs_writes_every_job_and_empties_the_journal() {
    use super::SledStore;
    use cronactor_actors::SnapshotStore;

    let jobs = 2660;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut state = JobState::default();
    state.counters.runs = 6;
    let ids = every_second_specs(jobs);
    {
        let store = SledStore::open(dir.path()).expect("open");
        let ops = ids.iter().flat_map(|spec| job_ops(spec, 6, 100, &state));
        store.apply(ops.collect()).expect("apply");
        futures::executor::block_on(store.flush()).expect("flush");
        let segments = journal_values(&store).len();
        assert!(segments > 500, "{segments} segments");
        // Dropping the store folds what the journal holds.
    }
    let store = SledStore::open(dir.path()).expect("reopen");
    assert!(
        store.shared.journal.is_empty(),
        "the fold emptied the journal"
    );
    let loaded = store.load().expect("load");
    assert_eq!(loaded.jobs.len(), jobs);
    assert!(loaded.jobs.iter().all(|job| job.state == state));
    for spec in [&ids[0], &ids[jobs / 2], &ids[jobs - 1]] {
        let history = store.history(&spec.id, 10).expect("history");
        assert_eq!(
            history,
            (0..6).rev().map(run).collect::<Vec<_>>(),
            "{}",
            spec.id
        );
    }
}

/// A fold of more jobs than `ONE_PASS_FROM_JOBS` after a reopen: the folder
/// learns every job's chunks in one pass, and the oldest chunks are trimmed
/// before each new one is written, so every job reads back exactly its last
/// `keep` runs, and the tree holds only the chunks that keep them.
#[test]
fn folds_after_a_reopen_trim_every_job_to_its_last_runs() {
    use super::SledStore;
    use cronactor_actors::SnapshotStore;

    let jobs = 1100;
    let keep = 10;
    let dir = tempfile::tempdir().expect("temp dir");
    let specs = every_second_specs(jobs);
    let runs = |from: u64, to: u64| {
        specs
            .iter()
            .flat_map(|spec| appends(spec, from..to, keep))
            .collect::<Vec<_>>()
    };
    {
        let store = SledStore::open(dir.path()).expect("open");
        let ops = specs
            .iter()
            .flat_map(|spec| job_ops(spec, 10, keep, &JobState::default()));
        store.apply(ops.collect()).expect("apply");
        store.fold().expect("fold");
    }
    let store = SledStore::open(dir.path()).expect("reopen");
    // Five runs more: the first chunk and the new one hold 15 runs.
    store.apply(runs(10, 15)).expect("apply");
    store.fold().expect("fold");
    for spec in [&specs[0], &specs[jobs - 1]] {
        assert_eq!(chunks_of(&store, spec.id.as_str()), [(0, 10), (10, 5)]);
    }
    // Ten more: both older chunks are surplus.
    store.apply(runs(15, 25)).expect("apply");
    store.fold().expect("fold");
    for spec in &specs {
        assert_eq!(
            chunks_of(&store, spec.id.as_str()),
            [(15, 10)],
            "{}",
            spec.id
        );
    }
    assert_eq!(store.shared.history.len(), jobs);
    let history = store.history(&specs[jobs / 2].id, 100).expect("history");
    assert_eq!(history, (15..25).rev().map(run).collect::<Vec<_>>());
}

/// A store of schema version 2 (whole runs in its history chunks and in the
/// journal segment a crash left) opens under this build: the segment's run
/// is re-encoded and folded beside the old chunk, every run reads back, and
/// the store is marked with this build's version.
#[test]
fn a_store_of_schema_version_2_opens_and_reads_its_history() {
    use super::journal::{encode_op, JournalOp};
    use super::SledStore;
    use cronactor_actors::SnapshotStore;

    let dir = tempfile::tempdir().expect("temp dir");
    let (store, spec) = store_with_one_job(dir.path());
    let id = spec.id.clone();
    {
        let store = store; // closed at the end of the block
        futures::executor::block_on(store.flush()).expect("flush");
        store.fold().expect("fold");
        // What schema version 2 wrote: a chunk of whole runs (version 2)...
        let mut chunk = vec![2];
        chunk.extend(postcard::to_allocvec(&(5u64, vec![plain_run(0), run(1)])).expect("encode"));
        let mut key = Vec::new();
        codec::chunk_key_into(id.as_str(), 0, 2, &mut key);
        store.shared.history.insert(key, chunk).expect("insert");
        // ... a journal segment (version 1) with a whole run...
        let mut segment = vec![1];
        let op = JournalOp::History {
            id: id.clone(),
            seq: 2,
            keep: 5,
            record: postcard::to_allocvec(&plain_run(2)).expect("encode"),
        };
        encode_op(&op, &mut segment).expect("encode");
        store
            .shared
            .journal
            .insert(1000u64.to_be_bytes(), segment)
            .expect("insert");
        // ... and its version.
        let meta = store.shared.db.open_tree("meta").expect("meta");
        meta.insert(
            "schema_version",
            codec::encode(RecordKind::Meta, &2u32).expect("encode"),
        )
        .expect("insert");
        store.shared.db.flush().expect("flush");
        std::fs::write(dir.path().join("schema_version"), "2\n").expect("marker");
    }
    let store = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("schema_version")).expect("marker"),
        format!("{}\n", SledStore::SCHEMA_VERSION)
    );
    assert!(store.shared.journal.is_empty(), "replayed and folded");
    assert_eq!(
        store.history(&id, 10).expect("history"),
        [plain_run(2), run(1), plain_run(0)]
    );
    let versions: Vec<u8> = store
        .shared
        .history
        .iter()
        .map(|item| item.expect("read").1[0])
        .collect();
    assert_eq!(versions, [2, 3], "the old chunk, then the replayed run's");
}

/// A store of schema version 3 (version-2 states, without queued fires or
/// cancel marks, in the `state` tree and in the journal segment a crash
/// left) opens under this build: its states load with an empty queue and no
/// cancel marks, nothing is quarantined, and the store is marked with this
/// build's version, so that the build before refuses it rather than
/// quarantining the version-3 states it cannot read.
#[test]
fn a_store_of_schema_version_3_opens_and_reads_its_states() {
    use super::journal::{encode_op, JournalOp};
    use super::SledStore;
    use cronactor_actors::{JobRecord, SnapshotStore, StoreOp};

    let dir = tempfile::tempdir().expect("temp dir");
    let mut specs = every_second_specs(2);
    let (a, b) = (specs[0].id.clone(), specs[1].id.clone());
    {
        let store = SledStore::open(dir.path()).expect("open");
        let puts = specs
            .drain(..)
            .map(|spec| {
                StoreOp::PutJob(Box::new(JobRecord {
                    spec,
                    state: JobState::default(),
                }))
            })
            .collect();
        store.apply(puts).expect("apply");
        futures::executor::block_on(store.flush()).expect("flush");
        store.fold().expect("fold");
        // What schema version 3 wrote: a version-2 state in the tree...
        let states = store.shared.db.open_tree("state").expect("state");
        states
            .insert(a.as_str(), GOLDEN_STATE_V2.to_vec())
            .expect("insert");
        // ... one in a journal segment...
        let mut segment = vec![2];
        let op = JournalOp::PutState {
            id: b.clone(),
            state: GOLDEN_STATE_V2.to_vec(),
        };
        encode_op(&op, &mut segment).expect("encode");
        store
            .shared
            .journal
            .insert(1000u64.to_be_bytes(), segment)
            .expect("insert");
        // ... and its version.
        let meta = store.shared.db.open_tree("meta").expect("meta");
        meta.insert(
            "schema_version",
            codec::encode(RecordKind::Meta, &3u32).expect("encode"),
        )
        .expect("insert");
        store.shared.db.flush().expect("flush");
        std::fs::write(dir.path().join("schema_version"), "3\n").expect("marker");
    }
    let store = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(SledStore::SCHEMA_VERSION, 6);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("schema_version")).expect("marker"),
        format!("{}\n", SledStore::SCHEMA_VERSION)
    );
    let loaded = store.load().expect("load");
    assert!(loaded.quarantined.is_empty(), "{:?}", loaded.quarantined);
    let golden = codec::decode_state(&GOLDEN_STATE_V2).expect("decode");
    assert_eq!(golden.counters.runs, 3);
    for id in [&a, &b] {
        let job = loaded.jobs.iter().find(|j| &j.spec.id == id).expect("job");
        assert_eq!(job.state, golden, "{id}");
        assert!(job.state.queue.is_empty(), "{id}");
    }
}

/// The nice values of this process's threads named like the fold thread
/// (`cronactor-store-fold`, cut to 15 bytes by the kernel).
#[cfg(target_os = "linux")]
fn fold_thread_nices() -> Vec<i64> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("tasks") {
        let stat = std::fs::read_to_string(task.expect("task").path().join("stat"));
        let Ok(stat) = stat else { continue }; // the thread ended meanwhile
                                               // "tid (comm) state ppid ...": the nice value is the 19th field.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(cronactor-store") {
            continue;
        }
        if let Some(nice) = rest.split_whitespace().nth(16) {
            out.push(nice.parse().expect("a number"));
        }
    }
    out
}

/// The fold thread runs at the nice value of `SledStoreOptions::fold_nice`
/// (other stores of this test process run at theirs: 17 is this test's
/// alone).
#[test]
#[cfg(target_os = "linux")]
fn the_fold_thread_runs_at_the_configured_nice_value() {
    use super::{SledStore, SledStoreOptions};

    let base = std::thread::spawn(|| super::priority::lower_this_thread(0))
        .join()
        .unwrap()
        .expect("readable on Linux");
    if base >= 17 {
        return; // a test run niced that far leaves nothing to check
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        SledStore::open_with(dir.path(), SledStoreOptions::default().fold_nice(17)).expect("open");
    // The thread sets its own priority as it starts.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !fold_thread_nices().contains(&17) {
        assert!(
            std::time::Instant::now() < deadline,
            "no fold thread at nice 17: {:?}",
            fold_thread_nices()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(store);
}

/// A crash part way through the deletion of a fold's journal segments (they
/// are deleted one by one, and sled keeps a prefix of its log): the segments
/// left hold runs that the fold's chunk already holds. Replaying them must
/// not write those runs a second time, and the trims after it must still
/// keep exactly `keep` runs.
#[test]
fn a_crash_part_way_through_a_folds_segment_deletion_keeps_the_history_exact() {
    use super::SledStore;
    use cronactor_actors::SnapshotStore;

    let keep = 10;
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = every_second_specs(1).remove(0);
    let runs = |from: u64, to: u64| appends(&spec, from..to, keep);
    let chunks_of = |store: &SledStore| chunks_of(store, spec.id.as_str());
    {
        let store = SledStore::open(dir.path()).expect("open");
        store
            .apply(job_ops(&spec, 10, keep, &JobState::default()))
            .expect("apply");
        store.fold().expect("fold");
        // Two flushes, two segments: runs 10 and 11, then 12 and 13.
        store.apply(runs(10, 12)).expect("apply");
        futures::executor::block_on(store.flush()).expect("flush");
        store.apply(runs(12, 14)).expect("apply");
        futures::executor::block_on(store.flush()).expect("flush");
        let segments = journal_values(&store);
        assert_eq!(segments.len(), 2);
        store.fold().expect("fold");
        assert_eq!(chunks_of(&store), [(0, 10), (10, 4)]);
        // The deletion of the first segment reached the log, not that of
        // the second.
        let (k, v) = &segments[1];
        store.shared.journal.insert(k, v).expect("insert");
        store.shared.db.flush().expect("flush");
    }
    let store = SledStore::open(dir.path()).expect("reopen");
    assert!(store.shared.journal.is_empty(), "replayed and deleted");
    assert_eq!(
        chunks_of(&store),
        [(0, 10), (10, 4)],
        "runs 12 and 13 are in the tree once"
    );
    let newest_first = |from: u64, to: u64| (from..to).rev().map(run).collect::<Vec<_>>();
    assert_eq!(
        store.history(&spec.id, 100).expect("history"),
        newest_first(4, 14)
    );
    // Four runs more: the oldest chunk is surplus only once the others
    // hold ten runs without it.
    store.apply(runs(14, 18)).expect("apply");
    store.fold().expect("fold");
    assert_eq!(
        store.history(&spec.id, 100).expect("history"),
        newest_first(8, 18)
    );
    drop(store);
    let store = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(
        store.history(&spec.id, 100).expect("history"),
        newest_first(8, 18)
    );
}

/// A decode error's text, as the quarantine reason.
fn text(e: DecodeError) -> String {
    e.to_string()
}

/// One record kind as the store reads it: its decoder, and valid values of
/// every version this build reads.
struct KindUnderTest {
    kind: RecordKind,
    /// Its decoder, giving the text of its error.
    decode: fn(&[u8]) -> Result<(), String>,
    /// A value of each version this build reads, oldest first.
    samples: Vec<Vec<u8>>,
}

/// Every record kind of the store, with samples of each version it reads.
fn kinds_under_test() -> Vec<KindUnderTest> {
    use super::journal::{decode_segment, encode_op, JournalOp};
    use super::sled_store::QuarantineEntry;
    let v1 = |json: &str| [&[1u8][..], json.as_bytes()].concat();

    let mut state = state_with_event_payloads();
    state.last_run = Some(plain_run(9));
    state.failed = Some("a reason".into());
    state.last_result = Some(std::sync::Arc::new(serde_json::json!({ "upto": 7 })));
    let mut state_v5 = Vec::new();
    codec::encode_state_into(&state, &mut state_v5).expect("encode");
    let state_v4 = GOLDEN_STATE_V4.to_vec();
    let state_v3 = GOLDEN_STATE_V3.to_vec();
    let state_v2 = GOLDEN_STATE_V2.to_vec();
    let state_v1 = codec::encode(RecordKind::JobState, &state).expect("encode");
    let mut state_v1 = state_v1;
    state_v1[0] = 1;

    let encoded: Vec<Vec<u8>> = [plain_run(1), run(2)]
        .iter()
        .map(|r| codec::encode_run(r).expect("encode"))
        .collect();
    let mut chunk_v3 = Vec::new();
    codec::encode_chunk_into(5, encoded.iter().map(|r| &r[..]), &mut chunk_v3);
    let mut chunk_v2 = vec![2];
    chunk_v2.extend(postcard::to_allocvec(&(5u64, vec![plain_run(1), run(2)])).expect("encode"));
    let chunk_v1 = v1(&serde_json::to_string(&run(3)).expect("json"));

    let id = cronactor_actors::JobId::new("codec").expect("id");
    let ops = |record: Vec<u8>| {
        vec![
            JournalOp::PutJob {
                id: id.clone(),
                spec: codec::encode(RecordKind::JobSpec, &spec()).expect("encode"),
                state: state_v4.clone(),
            },
            JournalOp::PutState {
                id: id.clone(),
                state: state_v4.clone(),
            },
            JournalOp::History {
                id: id.clone(),
                seq: 7,
                keep: 10,
                record,
            },
            JournalOp::Remove { id: id.clone() },
        ]
    };
    let segment = |version: u8, ops: Vec<JournalOp>| {
        let mut buf = vec![version];
        for op in &ops {
            encode_op(op, &mut buf).expect("encode");
        }
        buf
    };
    let segment_v2 = segment(2, ops(encoded[0].clone()));
    let segment_v1 = segment(1, ops(postcard::to_allocvec(&run(4)).expect("encode")));

    vec![
        KindUnderTest {
            kind: RecordKind::JobSpec,
            decode: |b| {
                codec::decode::<JobSpec>(RecordKind::JobSpec, b)
                    .map(drop)
                    .map_err(text)
            },
            samples: vec![codec::encode(RecordKind::JobSpec, &spec()).expect("encode")],
        },
        KindUnderTest {
            kind: RecordKind::JobState,
            decode: |b| codec::decode_state(b).map(drop).map_err(text),
            samples: vec![state_v1, state_v2, state_v3, state_v4, state_v5],
        },
        KindUnderTest {
            kind: RecordKind::Run,
            decode: |b| codec::decode_chunk(b).map(drop).map_err(text),
            samples: vec![chunk_v1, chunk_v2, chunk_v3],
        },
        KindUnderTest {
            kind: RecordKind::Journal,
            decode: |b| decode_segment(b).map(drop),
            samples: vec![segment_v1, segment_v2],
        },
        KindUnderTest {
            kind: RecordKind::Meta,
            decode: |b| {
                codec::decode::<u32>(RecordKind::Meta, b)
                    .map(drop)
                    .map_err(text)
            },
            samples: vec![codec::encode(RecordKind::Meta, &3u32).expect("encode")],
        },
        KindUnderTest {
            kind: RecordKind::Quarantine,
            decode: |b| {
                codec::decode::<QuarantineEntry>(RecordKind::Quarantine, b)
                    .map(drop)
                    .map_err(text)
            },
            samples: vec![v1(
                r#"{"tree":"jobs","key":[97],"reason":"bad","raw":[1,123],"quarantined_at":"2026-01-01T00:00:00Z"}"#,
            )],
        },
    ]
}

/// For every record kind: its samples decode; an empty value and a version
/// byte of 0 or newer than this build reads are refused with their own
/// errors (empty, unknown version, with the version found); a truncated
/// record does not decode; and thousands of random bodies behind each
/// version byte it reads, and of valid records with random bytes changed,
/// are an error or a record, never a panic. The generator has a fixed seed.
#[test]
fn every_record_kind_refuses_bad_bytes_with_its_own_error_and_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_c0de);
    for k in kinds_under_test() {
        let name = k.kind.name();
        let current = k.kind.current_version();
        assert_eq!(
            k.samples.iter().map(|s| s[0]).collect::<Vec<_>>(),
            (1..=current).collect::<Vec<_>>(),
            "{name}: one sample per version this build reads"
        );
        for sample in &k.samples {
            (k.decode)(sample).unwrap_or_else(|e| panic!("{name} v{}: {e}", sample[0]));
        }
        // Empty.
        let err = (k.decode)(b"").expect_err("empty");
        assert!(err.contains(&format!("the {name} value is empty")), "{err}");
        assert!(matches!(
            codec::split_version(k.kind, b""),
            Err(DecodeError::Empty { .. })
        ));
        // Unknown versions: 0 and every version newer than this build's.
        let body = &k.samples[k.samples.len() - 1][1..];
        for version in std::iter::once(0).chain(current + 1..=u8::MAX) {
            let bytes = [&[version][..], body].concat();
            let err = (k.decode)(&bytes).expect_err("unknown version");
            assert!(
                err.contains(&format!(
                    "unknown {name} record version {version} (this build reads version 1 to {current})"
                )),
                "{err}"
            );
            assert!(matches!(
                codec::split_version(k.kind, &bytes),
                Err(DecodeError::UnknownVersion { found, supported, .. })
                    if found == version && supported == current
            ));
        }
        // Truncated: an error, except a segment cut between two ops (a
        // segment has no length of its own; sled never cuts a value).
        for sample in &k.samples {
            for cut in 2..sample.len() {
                let result = (k.decode)(&sample[..cut]);
                if k.kind != RecordKind::Journal {
                    assert!(result.is_err(), "{name} v{} cut at {cut}", sample[0]);
                } else if let Err(e) = result {
                    assert!(e.contains("does not decode"), "{e}");
                }
            }
        }
        // Random bodies behind every version byte it reads.
        for _ in 0..2000 {
            let version = rng.random_range(1..=current);
            let len = rng.random_range(0..160);
            let mut bytes = vec![version];
            bytes.extend((0..len).map(|_| rng.random::<u8>()));
            if let Err(e) = (k.decode)(&bytes) {
                assert!(e.contains("does not decode"), "{name}: {e}");
            }
        }
        // Valid records with one to four bytes changed, the version byte
        // kept.
        for _ in 0..2000 {
            let mut bytes = k.samples[rng.random_range(0..k.samples.len())].clone();
            for _ in 0..rng.random_range(1..=4) {
                let at = rng.random_range(1..bytes.len());
                bytes[at] = rng.random();
            }
            if let Err(e) = (k.decode)(&bytes) {
                assert!(e.contains("does not decode"), "{name}: {e}");
            }
        }
    }
}

/// A journal segment in the middle of the journal that does not decode (the
/// bytes were damaged on disk; a crash alone never does this): it is
/// quarantined with its bytes, and the segments before and after it are
/// replayed. The updates it held are lost: each job keeps what it had before
/// the segment, or what a later segment wrote; a job added in it has no
/// spec, so the state a later segment wrote for it is quarantined as an
/// orphan. Every other job loads.
#[test]
fn a_bad_segment_in_the_middle_of_the_journal_loses_only_its_own_updates() {
    use super::SledStore;
    use cronactor_actors::{JobRecord, SnapshotStore, StoreOp};

    let specs = every_second_specs(3);
    let state_of = |runs: u64| {
        let mut state = JobState::default();
        state.counters.runs = runs;
        state
    };
    let put_job = |i: usize, runs: u64| {
        StoreOp::PutJob(Box::new(JobRecord {
            spec: specs[i].clone(),
            state: state_of(runs),
        }))
    };
    let put_state =
        |i: usize, runs: u64| StoreOp::PutState(specs[i].id.clone(), Box::new(state_of(runs)));
    // Jobs 0 and 1 folded into the trees; then three flushes, one segment
    // each, left in the journal by a crash.
    let base = |dir: &std::path::Path| {
        let store = SledStore::open(dir).expect("open");
        store
            .apply(vec![put_job(0, 1), put_job(1, 2)])
            .expect("apply");
        store.fold().expect("fold");
        store
    };
    let segments = {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = base(dir.path());
        for ops in [
            vec![put_state(0, 10)],
            vec![put_job(2, 3), put_state(1, 20)],
            vec![put_state(2, 31), put_state(0, 12)],
        ] {
            store.apply(ops).expect("apply");
            futures::executor::block_on(store.flush()).expect("flush");
        }
        journal_values(&store)
    };
    assert_eq!(segments.len(), 3);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut damaged = segments[1].1.to_vec();
    let cut = damaged.len() / 2;
    damaged.truncate(cut);
    {
        let store = base(dir.path());
        for (i, (k, v)) in segments.iter().enumerate() {
            let v = if i == 1 { &damaged[..] } else { &v[..] };
            store.shared.journal.insert(k, v).expect("insert");
        }
        store.shared.db.flush().expect("flush");
        // Dropped without a fold: nothing is pending in it.
    }
    let store = SledStore::open(dir.path()).expect("the store opens");
    assert!(store.shared.journal.is_empty(), "replayed, or quarantined");
    let loaded = store.load().expect("load");
    let jobs: Vec<(&str, u64)> = loaded
        .jobs
        .iter()
        .map(|j| (j.spec.id.as_str(), j.state.counters.runs))
        .collect();
    assert_eq!(
        jobs,
        [("job-00000", 12), ("job-00001", 2)],
        "job 0 has the later segment's state, job 1 its state from before the bad segment"
    );
    let quarantined: Vec<(&str, &str)> = loaded
        .quarantined
        .iter()
        .map(|q| (q.tree.as_str(), q.reason.as_str()))
        .collect();
    assert_eq!(quarantined.len(), 2, "{quarantined:?}");
    let segment = &loaded.quarantined[0];
    assert_eq!(segment.tree, "journal");
    assert_eq!(segment.raw, damaged, "the bytes are kept as they were");
    assert!(
        segment.reason.contains("does not decode"),
        "{}",
        segment.reason
    );
    let orphan = &loaded.quarantined[1];
    assert_eq!(
        (orphan.tree.as_str(), orphan.key.as_str()),
        ("state", "job-00002")
    );
    assert!(
        orphan.reason.contains("without a job spec"),
        "{}",
        orphan.reason
    );
    assert_eq!(
        codec::decode_state(&orphan.raw).expect("the state as written"),
        state_of(31)
    );
}

/// A journal key that is not an 8-byte segment number, or one too large to
/// number on from (damage; this store never writes one): its value is
/// quarantined at open with the key, not replayed at every open over newer
/// states (the replay deletes only keys below the next segment number,
/// which such a key may not be).
#[test]
fn a_journal_value_under_a_key_that_is_not_a_segment_number_is_quarantined() {
    use super::SledStore;
    use cronactor_actors::{SnapshotStore, StoreOp};

    let dir = tempfile::tempdir().expect("temp dir");
    let spec = every_second_specs(1).remove(0);
    let state_of = |runs: u64| {
        let mut state = JobState::default();
        state.counters.runs = runs;
        state
    };
    {
        let store = SledStore::open(dir.path()).expect("open");
        store
            .apply(job_ops(&spec, 0, 10, &state_of(1)))
            .expect("apply");
        futures::executor::block_on(store.flush()).expect("flush");
        let segment = journal_values(&store).remove(0).1;
        store.fold().expect("fold");
        store
            .apply(vec![StoreOp::PutState(
                spec.id.clone(),
                Box::new(state_of(2)),
            )])
            .expect("apply");
        store.fold().expect("fold");
        store
            .shared
            .journal
            .insert(b"junk", segment.clone())
            .expect("insert");
        store
            .shared
            .journal
            .insert(u64::MAX.to_be_bytes(), segment)
            .expect("insert");
        store.shared.db.flush().expect("flush");
    }
    for _ in 0..2 {
        let store = SledStore::open(dir.path()).expect("reopen");
        assert!(store.shared.journal.is_empty(), "nothing left to replay");
        let loaded = store.load().expect("load");
        assert_eq!(loaded.jobs[0].state, state_of(2), "the newest state");
        assert_eq!(loaded.quarantined.len(), 2, "{:?}", loaded.quarantined);
        assert!(loaded.quarantined.iter().all(|q| q.tree == "journal"));
        assert_eq!(loaded.quarantined[0].key, "junk");
        // The store writes on from there.
        store
            .apply(vec![StoreOp::PutState(
                spec.id.clone(),
                Box::new(state_of(2)),
            )])
            .expect("apply");
        futures::executor::block_on(store.flush()).expect("flush");
    }
}

/// A crash inside a fold after it deleted a job's surplus chunks and before
/// it wrote the new one (it trims first, see `Folder::write_history`): the
/// journal segments are still there, and the replay writes the new chunk,
/// so the job reads back exactly its newest `keep` runs.
#[test]
fn a_crash_between_a_folds_trim_and_its_write_replays_to_the_same_history() {
    use super::SledStore;
    use cronactor_actors::SnapshotStore;

    let keep = 10;
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = every_second_specs(1).remove(0);
    let runs = |from: u64, to: u64| appends(&spec, from..to, keep);
    let chunks_of = |store: &SledStore| chunks_of(store, spec.id.as_str());
    {
        let store = SledStore::open(dir.path()).expect("open");
        store
            .apply(job_ops(&spec, 10, keep, &JobState::default()))
            .expect("apply");
        store.fold().expect("fold");
        store.apply(runs(10, 15)).expect("apply");
        store.fold().expect("fold");
        assert_eq!(chunks_of(&store), [(0, 10), (10, 5)]);
        // Ten more runs: the fold deletes both chunks, then writes (15, 10).
        store.apply(runs(15, 25)).expect("apply");
        futures::executor::block_on(store.flush()).expect("flush");
        let segments = journal_values(&store);
        store.fold().expect("fold");
        assert_eq!(chunks_of(&store), [(15, 10)]);
        // The crash came after the trim, before the write and the deletion
        // of the segments.
        let mut key = Vec::new();
        codec::chunk_key_into(spec.id.as_str(), 15, 10, &mut key);
        store.shared.history.remove(key).expect("remove");
        for (k, v) in &segments {
            store.shared.journal.insert(k, v).expect("insert");
        }
        store.shared.db.flush().expect("flush");
    }
    let store = SledStore::open(dir.path()).expect("reopen");
    assert!(store.shared.journal.is_empty(), "replayed and deleted");
    assert_eq!(chunks_of(&store), [(15, 10)]);
    let newest_first = |from: u64, to: u64| (from..to).rev().map(run).collect::<Vec<_>>();
    assert_eq!(
        store.history(&spec.id, 100).expect("history"),
        newest_first(15, 25)
    );
}

/// Runs `seqs` of a job's history, as `AppendHistory` ops keeping `keep`.
fn appends(
    spec: &JobSpec,
    seqs: std::ops::Range<u64>,
    keep: usize,
) -> Vec<cronactor_actors::StoreOp> {
    seqs.map(|n| cronactor_actors::StoreOp::AppendHistory {
        id: spec.id.clone(),
        record: Box::new(run(n)),
        keep,
    })
    .collect()
}

/// A job's history chunks in the tree, oldest first: (first sequence
/// number, length).
fn chunks_of(store: &super::SledStore, id: &str) -> Vec<(u64, u32)> {
    Vec::from(super::fold::scan_chunks(&store.shared.history, id).expect("scan"))
}

/// A payload as deep as `MAX_PAYLOAD_DEPTH` allows reads back from every
/// record that keeps one: a job's spec (the payload one level down in the
/// record), a run in flight, a waiting retry and a queued fire. Deeper
/// ones do not (serde_json stops at 128 levels: a spec's payload one level
/// past the limit, a state's, stored on their own, two), which is why specs
/// and events deeper than the limit are refused before anything is stored.
#[test]
fn a_payload_at_the_depth_limit_reads_back_from_every_record_that_keeps_one() {
    use cronactor_actors::MAX_PAYLOAD_DEPTH;
    let nested = |depth: usize| {
        let mut v = serde_json::json!(1);
        for _ in 0..depth {
            v = serde_json::json!([v]);
        }
        std::sync::Arc::new(v)
    };
    let with_payload = |payload: std::sync::Arc<serde_json::Value>| {
        let mut state = state_with_event_payloads();
        state.in_flight[1].payload = Some(payload.clone());
        state.queue[0].event = Some(("go".into(), payload.clone()));
        state.retry_wait.as_mut().expect("a retry").event =
            Some(Box::new(("deploy".into(), payload)));
        state
    };
    let state = with_payload(nested(MAX_PAYLOAD_DEPTH));
    let mut bytes = Vec::new();
    codec::encode_state_into(&state, &mut bytes).expect("encode");
    assert_eq!(codec::decode_state(&bytes).expect("decode"), state);
    let deep = cronactor_actors::JobSpec {
        payload: (*nested(MAX_PAYLOAD_DEPTH)).clone(),
        ..spec()
    };
    let bytes = codec::encode(RecordKind::JobSpec, &deep).expect("encode");
    let back: cronactor_actors::JobSpec =
        codec::decode(RecordKind::JobSpec, &bytes).expect("decode");
    assert_eq!(back, deep);

    // Deeper: written, and then not read back.
    let state = with_payload(nested(MAX_PAYLOAD_DEPTH + 2));
    let mut bytes = Vec::new();
    codec::encode_state_into(&state, &mut bytes).expect("encode");
    assert!(codec::decode_state(&bytes).is_err());
    let deep = cronactor_actors::JobSpec {
        payload: (*nested(MAX_PAYLOAD_DEPTH + 1)).clone(),
        ..spec()
    };
    let bytes = codec::encode(RecordKind::JobSpec, &deep).expect("encode");
    assert!(codec::decode::<cronactor_actors::JobSpec>(RecordKind::JobSpec, &bytes).is_err());
}

/// A flush whose journal write fails part way keeps the segments it did not
/// write for the next flush: the flush that then succeeds has written every
/// op applied before it, as a store that never failed has (before, the
/// segments after the failed one were dropped, and the next flush
/// acknowledged ops that were in no segment).
#[test]
fn a_failed_journal_write_keeps_its_segments_for_the_next_flush() {
    use super::{SledStore, SledStoreOptions};
    use cronactor_actors::{JobRecord, SnapshotStore, StoreOp};

    let journaled = |fail: u32| {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = SledStoreOptions::default()
            .fold_interval(Duration::from_secs(3600))
            .fold_after_ops(u64::MAX);
        let store = SledStore::open_with(dir.path(), options).expect("open");
        let ops: Vec<StoreOp> = every_second_specs(300)
            .into_iter()
            .map(|spec| {
                StoreOp::PutJob(Box::new(JobRecord {
                    spec,
                    state: JobState::default(),
                }))
            })
            .collect();
        store.apply(ops).expect("apply");
        store
            .shared
            .fail_journal_inserts
            .store(fail, std::sync::atomic::Ordering::Relaxed);
        if fail > 0 {
            let failed = futures::executor::block_on(store.flush());
            assert!(failed.is_err(), "the injected failure fails the flush");
        }
        futures::executor::block_on(store.flush()).expect("flush");
        journal_values(&store)
            .into_iter()
            .map(|(_, v)| v.to_vec())
            .collect::<Vec<_>>()
    };
    let clean = journaled(0);
    assert!(clean.len() > 3, "several segments: {}", clean.len());
    assert_eq!(journaled(1), clean, "the same segments, none lost");
}

/// A job of a store of schema version 1 keeps its history under one key per
/// run (`id + 0x00 + seq`, a JSON run). Once the job has `keep` newer runs,
/// the fold's trim deletes those keys as it deletes surplus chunks: the
/// tree holds only the chunks of the newest `keep` runs.
#[test]
fn history_keys_of_schema_version_1_are_trimmed_like_chunks() {
    use super::SledStore;
    use cronactor_actors::SnapshotStore;

    let dir = tempfile::tempdir().expect("temp dir");
    let (store, spec) = store_with_one_job(dir.path());
    let id = spec.id.clone();
    {
        let store = store; // closed at the end of the block
        store.fold().expect("fold");
        // Runs 0 to 2 as schema version 1 stored them.
        let mut key = Vec::new();
        for n in 0..3 {
            codec::history_key_into(id.as_str(), n, &mut key);
            let mut value = vec![1];
            value.extend(serde_json::to_vec(&run(n)).expect("json"));
            store.shared.history.insert(&key, value).expect("insert");
        }
        store.shared.db.flush().expect("flush");
    }
    let store = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(chunks_of(&store, id.as_str()), [(0, 1), (1, 1), (2, 1)]);
    // Two newer runs, kept 2: the three old runs are surplus.
    store.apply(appends(&spec, 3..5, 2)).expect("apply");
    store.fold().expect("fold");
    assert_eq!(store.history(&id, 10).expect("history"), [run(4), run(3)]);
    assert_eq!(chunks_of(&store, id.as_str()), [(3, 2)]);
    assert_eq!(store.shared.history.len(), 1, "the old keys are deleted");
}

#[test]
fn a_history_chunk_that_does_not_decode_is_quarantined_when_the_fold_trims_it() {
    use super::SledStore;
    use cronactor_actors::SnapshotStore;

    let dir = tempfile::tempdir().expect("temp dir");
    let (store, spec) = store_with_one_job(dir.path());
    let id = spec.id.clone();
    store.apply(appends(&spec, 0..2, 2)).expect("apply");
    store.fold().expect("fold");
    assert_eq!(chunks_of(&store, id.as_str()), [(0, 2)]);
    // The chunk's bytes damaged in place.
    let mut key = Vec::new();
    codec::chunk_key_into(id.as_str(), 0, 2, &mut key);
    let garbage = vec![3u8, 0xff, 0xff, 0xff];
    store
        .shared
        .history
        .insert(&key, garbage.clone())
        .expect("insert");
    // Two newer runs, kept 2: the damaged chunk is surplus and trimmed.
    store.apply(appends(&spec, 2..4, 2)).expect("apply");
    store.fold().expect("fold");
    assert_eq!(chunks_of(&store, id.as_str()), [(2, 2)]);
    let q = store.list_quarantine().expect("quarantine");
    assert_eq!(q.len(), 1, "kept, not deleted: {q:?}");
    assert_eq!(
        (q[0].tree.as_str(), &q[0].raw[..]),
        ("history", &garbage[..])
    );
    assert!(q[0].reason.contains("does not decode"), "{}", q[0].reason);
    drop(store);
    // Still there after a reopen; a healthy trim adds nothing.
    let store = SledStore::open(dir.path()).expect("reopen");
    store.apply(appends(&spec, 4..6, 2)).expect("apply");
    store.fold().expect("fold");
    assert_eq!(store.list_quarantine().expect("quarantine").len(), 1);
    assert_eq!(store.history(&id, 10).expect("history"), [run(5), run(4)]);
}
