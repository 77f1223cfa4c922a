//! The versioned value encoding of the sled store, and its key layouts.
//!
//! Every value is one record-version byte followed by the record. The version
//! byte is per record kind: a decoder reads the byte first and refuses a
//! version it does not know, so a record is never decoded with the wrong
//! layout. Specs, quarantine records and meta values are JSON (version 1);
//! job states and history chunks, written once per fold for every job that
//! ran, are postcard (states version 5, chunks version 3; the earlier
//! versions written by earlier builds are still read); journal segments are
//! postcard (version 2; version 1 is still replayed). A run, in a chunk and
//! in the journal, keeps its start and end as offsets (see [`encode_run`]).
//! See `docs/storage.md` for why.

use chrono::{DateTime, TimeDelta, Utc};
use cronactor_actors::{Outcome, RunRecord, Trigger};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The kinds of record the store writes, each with its own version byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// A `JobSpec`, in the `jobs` tree.
    JobSpec,
    /// A `JobState`, in the `state` tree.
    JobState,
    /// A `RunRecord`, in the `history` tree.
    Run,
    /// A `QuarantineEntry`, in the `quarantine` tree.
    Quarantine,
    /// A value of the `meta` tree.
    Meta,
    /// A segment of the `journal` tree.
    Journal,
}

impl RecordKind {
    /// The version this build writes, and the newest it reads.
    pub(crate) const fn current_version(self) -> u8 {
        match self {
            Self::JobSpec | Self::Quarantine | Self::Meta => 1,
            Self::Journal => 2,
            Self::JobState => 5,
            Self::Run => 3,
        }
    }

    /// The name used in error messages.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::JobSpec => "job spec",
            Self::JobState => "job state",
            Self::Run => "run record",
            Self::Quarantine => "quarantine record",
            Self::Meta => "meta value",
            Self::Journal => "journal segment",
        }
    }
}

/// Why a stored value did not decode. Its text becomes the quarantine reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The value has no bytes at all, so not even a version byte.
    #[error("the {kind} value is empty (no record-version byte)")]
    Empty {
        /// The kind expected.
        kind: &'static str,
    },
    /// The version byte names a version this build does not know.
    #[error("unknown {kind} record version {found} (this build reads version 1 to {supported})")]
    UnknownVersion {
        /// The kind expected.
        kind: &'static str,
        /// The byte found.
        found: u8,
        /// The newest version this build reads.
        supported: u8,
    },
    /// The bytes after the version byte are not a valid record.
    #[error("the {kind} record (version {version}) does not decode: {source}")]
    Json {
        /// The kind expected.
        kind: &'static str,
        /// The version byte found.
        version: u8,
        /// The decoder's error.
        source: serde_json::Error,
    },
    /// The bytes after the version byte are not a valid binary record.
    #[error("the {kind} record (version {version}) does not decode: {source}")]
    Binary {
        /// The kind expected.
        kind: &'static str,
        /// The version byte found.
        version: u8,
        /// The decoder's error.
        source: postcard::Error,
    },
}

/// Appends the encoding of `value` (version byte, then JSON) to `buf`.
///
/// `buf` is a scratch buffer reused across records by the caller, so that
/// encoding does not allocate once it has grown to the largest record.
///
/// # Errors
/// The serializer's error: only for values JSON cannot represent (a map with
/// non-string keys), which none of the stored types contain.
pub(crate) fn encode_into<T: Serialize>(
    kind: RecordKind,
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    buf.push(kind.current_version());
    serde_json::to_writer(&mut *buf, value)
}

/// Encodes `value` into a fresh buffer; see [`encode_into`].
///
/// # Errors
/// As [`encode_into`].
pub(crate) fn encode<T: Serialize>(
    kind: RecordKind,
    value: &T,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut buf = Vec::with_capacity(128);
    encode_into(kind, value, &mut buf)?;
    Ok(buf)
}

/// Decodes a value written by [`encode`], checking its version byte first.
///
/// # Errors
/// [`DecodeError`] for an empty value, an unknown version or bad JSON. Never
/// panics, whatever the bytes.
pub(crate) fn decode<T: DeserializeOwned>(
    kind: RecordKind,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    let (version, body) = split_version(kind, bytes)?;
    json(kind, version, body)
}

/// The version byte and the body of a value, the version checked.
///
/// # Errors
/// [`DecodeError::Empty`] or [`DecodeError::UnknownVersion`].
pub(crate) fn split_version(kind: RecordKind, bytes: &[u8]) -> Result<(u8, &[u8]), DecodeError> {
    let (&version, body) = bytes
        .split_first()
        .ok_or(DecodeError::Empty { kind: kind.name() })?;
    if version == 0 || version > kind.current_version() {
        return Err(DecodeError::UnknownVersion {
            kind: kind.name(),
            found: version,
            supported: kind.current_version(),
        });
    }
    Ok((version, body))
}

fn json<T: DeserializeOwned>(kind: RecordKind, version: u8, body: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(body).map_err(|source| DecodeError::Json {
        kind: kind.name(),
        version,
        source,
    })
}

fn binary<T: DeserializeOwned>(
    kind: RecordKind,
    version: u8,
    body: &[u8],
) -> Result<T, DecodeError> {
    postcard::from_bytes(body).map_err(|source| DecodeError::Binary {
        kind: kind.name(),
        version,
        source,
    })
}

/// Appends a job state's encoding (version 5: postcard) to `buf`.
///
/// # Errors
/// The encoder's error (none of a state's fields can cause one).
pub(crate) fn encode_state_into(
    state: &cronactor_actors::JobState,
    buf: &mut Vec<u8>,
) -> Result<(), postcard::Error> {
    buf.push(RecordKind::JobState.current_version());
    *buf = postcard::to_extend(state, std::mem::take(buf))?;
    Ok(())
}

/// Decodes a job state: version 1 (JSON), 2 (postcard, without the queued
/// fires and the runs' cancel marks: see [`StateV2`]), 3 (postcard, without
/// the event payloads of runs in flight and of a waiting retry: see
/// [`StateV3`]), 4 (postcard, without the job's last result: see below) or 5
/// (postcard).
///
/// Version 5 added one field at the end of `JobState`, `last_result`: a
/// version-4 body is read as `JobState` without that field (see
/// [`WithoutLastField`]), which then takes its default, `None`. Bytes after
/// a record are ignored, whatever its version: those after a version-4
/// state are not read as a result.
///
/// # Errors
/// [`DecodeError`]; never panics, whatever the bytes.
pub(crate) fn decode_state(bytes: &[u8]) -> Result<cronactor_actors::JobState, DecodeError> {
    let kind = RecordKind::JobState;
    match split_version(kind, bytes)? {
        (4, body) => {
            let mut de = postcard::Deserializer::from_bytes(body);
            <cronactor_actors::JobState as serde::Deserialize>::deserialize(WithoutLastField(
                &mut de,
            ))
            .map_err(|source| DecodeError::Binary {
                kind: kind.name(),
                version: 4,
                source,
            })
        }
        (1, body) => json(kind, 1, body),
        (2, body) => binary::<StateV2>(kind, 2, body)?
            .into_v3()
            .into_state()
            .map_err(|source| DecodeError::Binary {
                kind: kind.name(),
                version: 2,
                source,
            }),
        (3, body) => binary::<StateV3>(kind, 3, body)?
            .into_state()
            .map_err(|source| DecodeError::Binary {
                kind: kind.name(),
                version: 3,
                source,
            }),
        (version, body) => binary(kind, version, body),
    }
}

/// Reads a struct of a positional format (postcard) without its last field,
/// which then takes its `#[serde(default)]`: postcard stores a struct as its
/// fields one after the other, as a tuple, so the record is read as a tuple
/// of one field fewer. Only the outermost struct: what it holds is read by
/// the wrapped deserializer itself.
struct WithoutLastField<D>(D);

/// Forwards `deserialize_*` methods to the wrapped deserializer.
macro_rules! forward_to_inner {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {
        $(
            fn $method<V: serde::de::Visitor<'de>>(
                self,
                $($arg: $ty,)*
                visitor: V,
            ) -> Result<V::Value, Self::Error> {
                self.0.$method($($arg,)* visitor)
            }
        )*
    };
}

impl<'de, D: serde::Deserializer<'de>> serde::Deserializer<'de> for WithoutLastField<D> {
    type Error = D::Error;

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_tuple(fields.len().saturating_sub(1), visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }

    forward_to_inner! {
        deserialize_any(), deserialize_bool(), deserialize_i8(), deserialize_i16(),
        deserialize_i32(), deserialize_i64(), deserialize_i128(), deserialize_u8(),
        deserialize_u16(), deserialize_u32(), deserialize_u64(), deserialize_u128(),
        deserialize_f32(), deserialize_f64(), deserialize_char(), deserialize_str(),
        deserialize_string(), deserialize_bytes(), deserialize_byte_buf(),
        deserialize_option(), deserialize_unit(), deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str), deserialize_seq(),
        deserialize_tuple(len: usize), deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_map(), deserialize_enum(name: &'static str, variants: &'static [&'static str]),
        deserialize_identifier(), deserialize_ignored_any(),
    }
}

/// An instant as postcard stores it: `(seconds, nanoseconds)` since the Unix
/// epoch (see `time_serde` in `cronactor-actors`).
type Instant = (i64, u32);

fn instant(parts: Instant) -> Result<DateTime<Utc>, postcard::Error> {
    DateTime::from_timestamp(parts.0, parts.1).ok_or(postcard::Error::SerdeDeCustom)
}

/// A job state as version 2 stored it: the layout of `JobState` before the
/// overlap queue was stored (it held only the queue's length, `queued`) and
/// before runs in flight had a cancel mark. Decoded into a `JobState` with
/// an empty queue and no cancel marks: a version-2 state was written by a
/// build that did not keep them.
#[derive(Serialize, Deserialize)]
pub(crate) struct StateV2 {
    pub(crate) paused: Option<cronactor_actors::PauseInfo>,
    pub(crate) next_fire: Option<Instant>,
    pub(crate) last_slot: Option<Instant>,
    pub(crate) last_fire: Option<Instant>,
    pub(crate) last_run: Option<RunRecord>,
    pub(crate) counters: cronactor_actors::Counters,
    pub(crate) consecutive_failures: u32,
    pub(crate) in_flight: Vec<InFlightV2>,
    pub(crate) queued: u32,
    pub(crate) completed: bool,
    pub(crate) retry_wait: Option<RetryWaitV3>,
    pub(crate) failed: Option<String>,
    pub(crate) progress: Option<(f32, String)>,
}

/// A run in flight as version 2 stored it (see [`StateV2`]).
#[derive(Serialize, Deserialize)]
pub(crate) struct InFlightV2 {
    pub(crate) run_id: cronactor_actors::RunId,
    pub(crate) scheduled: Instant,
    pub(crate) started: Instant,
    pub(crate) attempt: u32,
    pub(crate) trigger: Trigger,
    pub(crate) event: Option<String>,
}

impl StateV2 {
    /// The same state as version 3 would have stored it: no queued fire and
    /// no cancel mark.
    fn into_v3(self) -> StateV3 {
        StateV3 {
            paused: self.paused,
            next_fire: self.next_fire,
            last_slot: self.last_slot,
            last_fire: self.last_fire,
            last_run: self.last_run,
            counters: self.counters,
            consecutive_failures: self.consecutive_failures,
            in_flight: self
                .in_flight
                .into_iter()
                .map(|r| InFlightV3 {
                    run_id: r.run_id,
                    scheduled: r.scheduled,
                    started: r.started,
                    attempt: r.attempt,
                    trigger: r.trigger,
                    event: r.event,
                    cancelled: None,
                })
                .collect(),
            queue: Default::default(),
            completed: self.completed,
            retry_wait: self.retry_wait,
            failed: self.failed,
            progress: self.progress,
        }
    }
}

/// A job state as version 3 stored it: the layout of `JobState` before the
/// event payloads of a run in flight (`InFlightRun::payload`) and of a
/// waiting retry (`RetryWait::event`) were stored. Decoded without them: a
/// version-3 state was written by a build that did not keep them.
#[derive(Serialize, Deserialize)]
pub(crate) struct StateV3 {
    pub(crate) paused: Option<cronactor_actors::PauseInfo>,
    pub(crate) next_fire: Option<Instant>,
    pub(crate) last_slot: Option<Instant>,
    pub(crate) last_fire: Option<Instant>,
    pub(crate) last_run: Option<RunRecord>,
    pub(crate) counters: cronactor_actors::Counters,
    pub(crate) consecutive_failures: u32,
    pub(crate) in_flight: Vec<InFlightV3>,
    pub(crate) queue: std::collections::VecDeque<cronactor_actors::QueuedFire>,
    pub(crate) completed: bool,
    pub(crate) retry_wait: Option<RetryWaitV3>,
    pub(crate) failed: Option<String>,
    pub(crate) progress: Option<(f32, String)>,
}

/// A run in flight as version 3 stored it (see [`StateV3`]).
#[derive(Serialize, Deserialize)]
pub(crate) struct InFlightV3 {
    pub(crate) run_id: cronactor_actors::RunId,
    pub(crate) scheduled: Instant,
    pub(crate) started: Instant,
    pub(crate) attempt: u32,
    pub(crate) trigger: Trigger,
    pub(crate) event: Option<String>,
    pub(crate) cancelled: Option<cronactor_actors::CancelReason>,
}

/// A waiting retry as versions 2 and 3 stored it (see [`StateV3`]).
#[derive(Serialize, Deserialize)]
pub(crate) struct RetryWaitV3 {
    pub(crate) scheduled: Instant,
    pub(crate) attempt: u32,
    pub(crate) due: Instant,
    pub(crate) trigger: Trigger,
}

impl RetryWaitV3 {
    fn into_wait(self) -> Result<cronactor_actors::RetryWait, postcard::Error> {
        Ok(cronactor_actors::RetryWait {
            scheduled: instant(self.scheduled)?,
            attempt: self.attempt,
            due: instant(self.due)?,
            trigger: self.trigger,
            event: None,
        })
    }
}

impl StateV3 {
    fn into_state(self) -> Result<cronactor_actors::JobState, postcard::Error> {
        let opt = |t: Option<Instant>| t.map(instant).transpose();
        let in_flight = self
            .in_flight
            .into_iter()
            .map(|r| {
                Ok(cronactor_actors::InFlightRun {
                    run_id: r.run_id,
                    scheduled: instant(r.scheduled)?,
                    started: instant(r.started)?,
                    attempt: r.attempt,
                    trigger: r.trigger,
                    event: r.event,
                    payload: None,
                    cancelled: r.cancelled,
                })
            })
            .collect::<Result<_, postcard::Error>>()?;
        Ok(cronactor_actors::JobState {
            paused: self.paused.map(Box::new),
            next_fire: opt(self.next_fire)?,
            last_slot: opt(self.last_slot)?,
            last_fire: opt(self.last_fire)?,
            last_run: self.last_run,
            counters: self.counters,
            consecutive_failures: self.consecutive_failures,
            in_flight,
            queue: self.queue,
            completed: self.completed,
            retry_wait: self
                .retry_wait
                .map(|w| w.into_wait().map(Box::new))
                .transpose()?,
            failed: self.failed,
            progress: self.progress.map(Box::new),
            last_result: None,
        })
    }
}

/// Appends a history chunk's encoding (version 3: postcard of the number of
/// entries the job keeps, then its runs, oldest first, each as
/// [`encode_run`] writes it) to `buf`, from runs already encoded one by one:
/// a postcard sequence is its length then its elements, so the chunk is
/// their concatenation.
pub(crate) fn encode_chunk_into<'a>(
    keep: u64,
    runs: impl ExactSizeIterator<Item = &'a [u8]>,
    buf: &mut Vec<u8>,
) {
    buf.push(RecordKind::Run.current_version());
    push_varint(keep, buf);
    push_varint(runs.len() as u64, buf);
    for run in runs {
        buf.extend_from_slice(run);
    }
}

/// Appends `v` as a postcard varint (7 bits a byte, low first).
fn push_varint(mut v: u64, buf: &mut Vec<u8>) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// A run as this build stores it, in a history chunk (version 3) and in a
/// journal segment (version 2): the slot as seconds and nanoseconds, the
/// start as nanoseconds after the slot and the end as nanoseconds after the
/// start, and the 64 random bits of its id as 8 bytes, not a varint of 9 or
/// 10: a run that started a few milliseconds late and ran microseconds takes
/// 25 bytes instead of the 37 of a whole `RunRecord`. A run whose instants
/// the offsets cannot give back exactly (a start or end inside a leap
/// second, instants centuries apart) is stored whole.
///
/// Encoded from references (`O = &Outcome`, `R = &RunRecord`) and decoded
/// into owned values ([`StoredRun`]): one type, so one layout.
#[derive(Serialize, Deserialize)]
enum Stored<O, R> {
    Offsets {
        run_id: [u8; 8],
        scheduled: (i64, u32),
        started_ns: i64,
        ran_ns: i64,
        attempt: u32,
        trigger: Trigger,
        outcome: O,
    },
    Whole(R),
}

/// A stored run as decoded.
type StoredRun = Stored<Outcome, RunRecord>;

/// `t + ns`, or `None` past chrono's range.
fn offset(t: DateTime<Utc>, ns: i64) -> Option<DateTime<Utc>> {
    t.checked_add_signed(TimeDelta::nanoseconds(ns))
}

impl StoredRun {
    /// The run; `None` for instants past chrono's range (bad bytes).
    fn into_record(self) -> Option<RunRecord> {
        match self {
            Self::Whole(run) => Some(run),
            Self::Offsets {
                run_id,
                scheduled: (secs, nanos),
                started_ns,
                ran_ns,
                attempt,
                trigger,
                outcome,
            } => {
                let scheduled = DateTime::from_timestamp(secs, nanos)?;
                let started = offset(scheduled, started_ns)?;
                Some(RunRecord {
                    run_id: cronactor_actors::RunId(u64::from_le_bytes(run_id)),
                    scheduled,
                    started,
                    finished: offset(started, ran_ns)?,
                    attempt,
                    trigger,
                    outcome,
                })
            }
        }
    }
}

/// A run as a history chunk's element (see [`Stored`]).
///
/// # Errors
/// The encoder's error (none of a run's fields can cause one).
pub(crate) fn encode_run(run: &RunRecord) -> Result<Vec<u8>, postcard::Error> {
    let offsets = (run.started - run.scheduled)
        .num_nanoseconds()
        .zip((run.finished - run.started).num_nanoseconds())
        // Only if they give the same instants back.
        .filter(|&(started_ns, ran_ns)| {
            let started = offset(run.scheduled, started_ns);
            started == Some(run.started)
                && started.and_then(|s| offset(s, ran_ns)) == Some(run.finished)
        });
    let stored = match offsets {
        Some((started_ns, ran_ns)) => Stored::Offsets {
            run_id: run.run_id.0.to_le_bytes(),
            scheduled: (
                run.scheduled.timestamp(),
                run.scheduled.timestamp_subsec_nanos(),
            ),
            started_ns,
            ran_ns,
            attempt: run.attempt,
            trigger: run.trigger,
            outcome: &run.outcome,
        },
        None => Stored::Whole(run),
    };
    // Room for a run with offsets and a short error text at once: growing
    // from empty would take three allocations per run.
    postcard::to_extend(&stored, Vec::with_capacity(RUN_BYTES_HINT))
}

/// The room [`encode_run`] starts with: a run with offsets takes 25 bytes
/// (slot, start, end, id, attempt, trigger, outcome without text).
const RUN_BYTES_HINT: usize = 32;

/// Decodes a run encoded by [`encode_run`].
///
/// # Errors
/// [`DecodeError::Binary`]; never panics, whatever the bytes.
pub(crate) fn decode_run(bytes: &[u8]) -> Result<RunRecord, DecodeError> {
    let kind = RecordKind::Run;
    binary::<StoredRun>(kind, 3, bytes).and_then(|run| stored_run(kind, 3, run))
}

/// The run of a decoded [`StoredRun`], or the error of one whose offsets
/// leave chrono's range.
fn stored_run(kind: RecordKind, version: u8, run: StoredRun) -> Result<RunRecord, DecodeError> {
    run.into_record().ok_or_else(|| DecodeError::Binary {
        kind: kind.name(),
        version,
        source: postcard::Error::SerdeDeCustom,
    })
}

/// Re-encodes a run of a version-1 journal segment (a whole `RunRecord`, as
/// schema version 2 wrote it) as [`encode_run`] does.
///
/// # Errors
/// [`DecodeError::Binary`] if the bytes are not a run; never panics.
pub(crate) fn reencode_journal_v1_run(bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let kind = RecordKind::Journal;
    let run: RunRecord = binary(kind, 1, bytes)?;
    encode_run(&run).map_err(|source| DecodeError::Binary {
        kind: kind.name(),
        version: 1,
        source,
    })
}

/// A decoded history value.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// How many entries the job kept when it was written (`None` for a
    /// version-1 value, which does not say).
    pub(crate) keep: Option<u64>,
    /// Its runs, oldest first.
    pub(crate) runs: Vec<RunRecord>,
}

/// Decodes a history value: version 1 (one run, JSON), 2 (a chunk of whole
/// runs, postcard) or 3 (a chunk of runs as [`encode_run`] writes them).
///
/// # Errors
/// [`DecodeError`]; never panics, whatever the bytes.
pub(crate) fn decode_chunk(bytes: &[u8]) -> Result<Chunk, DecodeError> {
    let kind = RecordKind::Run;
    match split_version(kind, bytes)? {
        (1, body) => json(kind, 1, body).map(|run| Chunk {
            keep: None,
            runs: vec![run],
        }),
        (2, body) => binary(kind, 2, body).map(|(keep, runs)| Chunk {
            keep: Some(keep),
            runs,
        }),
        (version, body) => {
            let (keep, stored): (u64, Vec<StoredRun>) = binary(kind, version, body)?;
            let runs = stored
                .into_iter()
                .map(|run| stored_run(kind, version, run))
                .collect::<Result<_, _>>()?;
            Ok(Chunk {
                keep: Some(keep),
                runs,
            })
        }
    }
}

/// The separator between a job id and the rest of a key. Job ids cannot
/// contain it (control characters are rejected by `JobId::new`), so a prefix
/// `id + SEP` never matches another job's keys.
pub(crate) const SEP: u8 = 0x00;

/// Writes the history key prefix of a job, `id bytes + 0x00`, into `buf`.
pub(crate) fn history_prefix_into(id: &str, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(id.as_bytes());
    buf.push(SEP);
}

/// The history key prefix of a job, `id bytes + 0x00`.
pub(crate) fn history_prefix(id: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(id.len() + 9);
    history_prefix_into(id, &mut buf);
    buf
}

/// Writes the history key of a job's entry `seq`, `id + 0x00 + seq as
/// big-endian u64`, into `buf`. Big-endian makes sled's byte order the
/// sequence order, so a prefix scan yields entries oldest first. Schema
/// version 1 wrote one such key per run; the fold still deletes them.
pub(crate) fn history_key_into(id: &str, seq: u64, buf: &mut Vec<u8>) {
    history_prefix_into(id, buf);
    buf.extend_from_slice(&seq.to_be_bytes());
}

/// Writes the key of a history chunk, `id + 0x00 + first seq as big-endian
/// u64 + number of entries as big-endian u32`, into `buf`.
pub(crate) fn chunk_key_into(id: &str, first: u64, len: u32, buf: &mut Vec<u8>) {
    history_prefix_into(id, buf);
    buf.extend_from_slice(&first.to_be_bytes());
    buf.extend_from_slice(&len.to_be_bytes());
}

/// The first sequence number and the number of entries of a history key,
/// given the length of its prefix: a chunk key (12-byte tail) or a
/// single-entry key of earlier builds (8-byte tail, one entry); `None` for a
/// key of another length (never written by this store).
pub(crate) fn history_chunk(key: &[u8], prefix_len: usize) -> Option<(u64, u32)> {
    let tail = key.get(prefix_len..)?;
    let first = u64::from_be_bytes(tail.get(..8)?.try_into().ok()?);
    match tail.len() {
        8 => Some((first, 1)),
        12 => Some((first, u32::from_be_bytes(tail.get(8..)?.try_into().ok()?))),
        _ => None,
    }
}

/// The quarantine key of a record: `tree name + 0x00 + original key`, and,
/// when `n > 0` (that key is already taken by an earlier quarantine of the same
/// record), `+ 0x00 + n as big-endian u64`, so nothing is ever overwritten.
pub(crate) fn quarantine_key(tree: &str, key: &[u8], n: u64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(tree.len() + key.len() + 10);
    buf.extend_from_slice(tree.as_bytes());
    buf.push(SEP);
    buf.extend_from_slice(key);
    if n > 0 {
        buf.push(SEP);
        buf.extend_from_slice(&n.to_be_bytes());
    }
    buf
}
