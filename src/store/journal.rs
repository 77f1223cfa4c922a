//! The write journal of the sled store: what [`SnapshotStore::apply`] writes,
//! and the per-job net effect that a fold writes into the trees.
//!
//! Every write is appended, in order, to a segment buffer as a
//! [`JournalOp`]; the buffer is closed at 4 KiB and a new one begun, and a
//! flush inserts the closed buffers and the current one into the `journal`
//! tree (one sled write per segment of many ops) and makes them durable. The
//! same ops are coalesced in memory per job into a [`Net`]: the last spec, the
//! last state, the history entries since the last fold. Every few seconds a
//! fold writes the nets into the `jobs`, `state` and `history` trees (one
//! write per changed job, whatever the number of fires) and deletes the
//! segments it covered. On open, segments left by a crash are replayed into
//! nets and folded before anything is read.
//!
//! Every op is idempotent (a history entry carries its sequence number), so
//! replaying a segment whose fold was cut short by a crash gives the same
//! trees.
//!
//! [`SnapshotStore::apply`]: cronactor_actors::SnapshotStore::apply

use super::codec;
use cronactor_actors::JobId;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// One write, as journaled.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum JournalOp {
    /// A job's spec (its `jobs`-tree value, version byte and JSON) and state.
    PutJob {
        /// The job.
        id: JobId,
        /// The encoded spec, exactly as the `jobs` tree stores it.
        spec: Vec<u8>,
        /// Its encoded state, exactly as the `state` tree stores it.
        state: Vec<u8>,
    },
    /// A job's state.
    PutState {
        /// The job.
        id: JobId,
        /// Its encoded state, exactly as the `state` tree stores it.
        state: Vec<u8>,
    },
    /// A job's removal, with its state and history.
    Remove {
        /// The job.
        id: JobId,
    },
    /// A history entry, with its sequence number in the job's history.
    History {
        /// The job.
        id: JobId,
        /// Its sequence number.
        seq: u64,
        /// How many entries the job keeps.
        keep: u64,
        /// The run, as `codec::encode_run` writes it (an element of a
        /// history chunk; a whole `RunRecord` in a version-1 segment).
        record: Vec<u8>,
    },
}

/// The net effect of the ops on one job since the last fold.
#[derive(Debug, Default)]
pub(crate) struct Net {
    /// The job was removed: whatever the trees hold for it goes first.
    pub(crate) reset: bool,
    /// The spec to write (encoded), if one was put.
    pub(crate) spec: Option<Vec<u8>>,
    /// The encoded state to write, if one was put.
    pub(crate) state: Option<Vec<u8>>,
    /// New history entries (postcard-encoded runs), oldest first, with their
    /// sequence numbers.
    pub(crate) history: VecDeque<(u64, Vec<u8>)>,
    /// How many history entries the job keeps (from its newest entry).
    pub(crate) keep: u64,
}

/// The nets of every job touched since the last fold.
#[derive(Debug, Default)]
pub(crate) struct NetMap {
    /// Per job.
    pub(crate) jobs: HashMap<JobId, Net, foldhash::fast::RandomState>,
    /// How many ops were recorded.
    pub(crate) ops: u64,
}

impl NetMap {
    /// Records one op (ops on a job without a spec were dropped before they
    /// were journaled).
    pub(crate) fn record(&mut self, op: JournalOp) {
        self.ops += 1;
        match op {
            JournalOp::PutJob { id, spec, state } => {
                let net = self.jobs.entry(id).or_default();
                net.spec = Some(spec);
                net.state = Some(state);
            }
            JournalOp::PutState { id, state } => {
                let net = self.jobs.entry(id).or_default();
                net.state = Some(state);
            }
            JournalOp::Remove { id } => {
                *self.jobs.entry(id).or_default() = Net {
                    reset: true,
                    ..Net::default()
                };
            }
            JournalOp::History {
                id,
                seq,
                keep,
                record,
            } => {
                let net = self.jobs.entry(id).or_default();
                net.keep = keep;
                net.history.push_back((seq, record));
                while net.history.len() as u64 > keep {
                    net.history.pop_front();
                }
            }
        }
    }

    /// Whether nothing was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

/// Appends `op` to a segment buffer.
///
/// # Errors
/// The encoder's error (only for values postcard cannot represent, which
/// none of the journaled types contain).
pub(crate) fn encode_op(op: &JournalOp, buf: &mut Vec<u8>) -> Result<(), postcard::Error> {
    let bytes = postcard::to_extend(op, std::mem::take(buf))?;
    *buf = bytes;
    Ok(())
}

/// The ops of a version-1 segment (written by schema version 2, whose runs
/// were whole `RunRecord`s) with their runs re-encoded as this build writes
/// them, so that a fold can join them to newer ones in a chunk.
///
/// # Errors
/// A run that does not decode.
pub(crate) fn reencode_v1_runs(ops: Vec<JournalOp>) -> Result<Vec<JournalOp>, codec::DecodeError> {
    ops.into_iter()
        .map(|op| match op {
            JournalOp::History {
                id,
                seq,
                keep,
                record,
            } => Ok(JournalOp::History {
                id,
                seq,
                keep,
                record: codec::reencode_journal_v1_run(&record)?,
            }),
            op => Ok(op),
        })
        .collect()
}

/// Decodes a whole segment (version byte included) into its ops, the runs
/// of a version-1 segment re-encoded (see [`reencode_v1_runs`]), as the
/// replay at open reads it.
///
/// # Errors
/// Why the segment cannot be replayed (the quarantine reason); never
/// panics, whatever the bytes.
pub(crate) fn decode_segment(bytes: &[u8]) -> Result<Vec<JournalOp>, String> {
    let (version, body) =
        codec::split_version(codec::RecordKind::Journal, bytes).map_err(|e| e.to_string())?;
    let ops = decode_ops(body).map_err(|e| format!("the journal segment does not decode: {e}"))?;
    match version {
        1 => reencode_v1_runs(ops).map_err(|e| format!("a run of the journal segment: {e}")),
        _ => Ok(ops),
    }
}

/// Decodes a segment body (after its version byte) into its ops.
///
/// # Errors
/// The decoder's error for the first op that does not decode; never panics,
/// whatever the bytes.
pub(crate) fn decode_ops(mut body: &[u8]) -> Result<Vec<JournalOp>, postcard::Error> {
    let mut ops = Vec::new();
    while !body.is_empty() {
        let (op, rest) = postcard::take_from_bytes::<JournalOp>(body)?;
        ops.push(op);
        body = rest;
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cronactor_actors::JobState;

    fn id(s: &str) -> JobId {
        JobId::new(s).expect("id")
    }

    fn run(n: u64) -> Vec<u8> {
        codec::encode_run(&crate::store::tests::run(n)).expect("encode")
    }

    fn state(s: &JobState) -> Vec<u8> {
        let mut buf = Vec::new();
        crate::store::codec::encode_state_into(s, &mut buf).expect("encode");
        buf
    }

    #[test]
    fn ops_round_trip_through_a_segment() {
        let mut st = JobState::default();
        st.counters.runs = 7;
        let ops = vec![
            JournalOp::PutJob {
                id: id("a"),
                spec: b"\x01{}".to_vec(),
                state: state(&JobState::default()),
            },
            JournalOp::PutState {
                id: id("a"),
                state: state(&st),
            },
            JournalOp::History {
                id: id("a"),
                seq: 3,
                keep: 10,
                record: run(3),
            },
            JournalOp::Remove { id: id("a") },
        ];
        let mut buf = Vec::new();
        for op in &ops {
            encode_op(op, &mut buf).expect("encode");
        }
        let back = decode_ops(&buf).expect("decode");
        assert_eq!(format!("{ops:?}"), format!("{back:?}"));
    }

    #[test]
    fn a_truncated_segment_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        encode_op(
            &JournalOp::History {
                id: id("a"),
                seq: 1,
                keep: 1,
                record: run(1),
            },
            &mut buf,
        )
        .expect("encode");
        for cut in 1..buf.len() {
            assert!(decode_ops(&buf[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_ops(&[0xff; 16]).is_err());
    }

    #[test]
    fn nets_keep_the_last_state_and_the_newest_entries() {
        let mut map = NetMap::default();
        map.record(JournalOp::PutState {
            id: id("a"),
            state: state(&JobState::default()),
        });
        for seq in 0..5 {
            map.record(JournalOp::History {
                id: id("a"),
                seq,
                keep: 3,
                record: run(seq),
            });
        }
        let net = &map.jobs[&id("a")];
        assert_eq!(
            net.history.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        map.record(JournalOp::Remove { id: id("a") });
        let net = &map.jobs[&id("a")];
        assert!(net.reset && net.history.is_empty() && net.state.is_none() && net.spec.is_none());
        assert_eq!(map.ops, 7);
    }
}
