//! Unit tests of the codec and the key layouts.

use super::codec::{self, DecodeError, RecordKind};
use cronactor_actors::{JobSpec, JobState, RunRecord, ScheduleSpec};
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
    let empty = codec::decode::<JobState>(RecordKind::JobState, b"").expect_err("empty");
    assert!(matches!(empty, DecodeError::Empty { .. }));
    assert!(empty.to_string().contains("empty"));

    for version in [0u8, 2, 255] {
        let err = codec::decode::<JobState>(RecordKind::JobState, &[version, b'{', b'}'])
            .expect_err("unknown version");
        assert!(
            matches!(err, DecodeError::UnknownVersion { found, supported: 1, .. } if found == version),
            "{err:?}"
        );
        assert!(err
            .to_string()
            .contains(&format!("unknown job state record version {version}")));
    }

    let err =
        codec::decode::<JobState>(RecordKind::JobState, b"\x01{\"paused\":").expect_err("bad");
    assert!(matches!(err, DecodeError::Json { version: 1, .. }));
    assert!(err.to_string().contains("does not decode"));
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
    assert_eq!(codec::history_seq(&key("j", 42), prefix.len()), Some(42));
    assert_eq!(codec::history_seq(b"j\0short", prefix.len()), None);
    assert_eq!(codec::history_seq(b"j", prefix.len()), None);
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
