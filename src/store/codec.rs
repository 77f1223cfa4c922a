//! The versioned value encoding of the sled store, and its key layouts.
//!
//! Every value is one record-version byte followed by the record encoded as
//! JSON. The version byte is per record kind: a decoder reads the byte first
//! and refuses a version it does not know, so a record is never decoded with
//! the wrong layout. See `docs/storage.md` for why JSON.

use serde::de::DeserializeOwned;
use serde::Serialize;

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
}

impl RecordKind {
    /// The version this build writes, and the newest it reads.
    pub(crate) const fn current_version(self) -> u8 {
        match self {
            Self::JobSpec | Self::JobState | Self::Run | Self::Quarantine | Self::Meta => 1,
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
    // Version 1 is the only version so far; a future version 2 of a kind adds
    // a match on `version` here and converts version-1 records on read.
    serde_json::from_slice(body).map_err(|source| DecodeError::Json {
        kind: kind.name(),
        version,
        source,
    })
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
/// sequence order, so a prefix scan yields entries oldest first.
pub(crate) fn history_key_into(id: &str, seq: u64, buf: &mut Vec<u8>) {
    history_prefix_into(id, buf);
    buf.extend_from_slice(&seq.to_be_bytes());
}

/// The sequence number of a history key, given the length of its prefix;
/// `None` for a key of the wrong length (never written by this store).
pub(crate) fn history_seq(key: &[u8], prefix_len: usize) -> Option<u64> {
    let tail: [u8; 8] = key.get(prefix_len..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
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
