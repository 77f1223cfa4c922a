//! Identifiers: [`JobId`] names a job, [`RunId`] names one run of it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// The longest job id accepted, in bytes.
pub const MAX_JOB_ID_LEN: usize = 200;

/// A job's identity, chosen by the user: unique within a scheduler and stable
/// across restarts (it is the key of the job's records in the store).
///
/// ```
/// use cronactor_actors::JobId;
/// let id = JobId::new("nightly-report").expect("a valid id");
/// assert_eq!(id.as_str(), "nightly-report");
/// assert!(JobId::new("").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(Arc<str>);

/// Why a string is not a valid [`JobId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid job id {id:?}: {reason}")]
pub struct InvalidJobId {
    /// The rejected id.
    pub id: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl JobId {
    /// Checks and wraps an id: 1 to [`MAX_JOB_ID_LEN`] bytes, no control
    /// characters (ids appear in logs, URLs and store keys).
    ///
    /// # Errors
    /// [`InvalidJobId`] naming the id and the rule it breaks.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidJobId> {
        Self::checked(&id.into())
    }

    /// [`JobId::new`] from a borrowed id: the shared string is its one
    /// allocation (an owned `String` would be copied into it all the same).
    fn checked(id: &str) -> Result<Self, InvalidJobId> {
        let reason = if id.is_empty() {
            "it is empty"
        } else if id.len() > MAX_JOB_ID_LEN {
            "it is longer than 200 bytes"
        } else if id.chars().any(char::is_control) {
            "it contains a control character"
        } else {
            // Shared: the supervisor, the registry and the timer service
            // each keep the id of every job (one allocation for all copies).
            return Ok(Self(Arc::from(id)));
        };
        Err(InvalidJobId {
            id: id.to_owned(),
            reason,
        })
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JobId {
    type Error = InvalidJobId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<&str> for JobId {
    type Error = InvalidJobId;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::checked(value)
    }
}

/// Written as a plain string, straight from the shared id (every store
/// write names its job: no copy into a `String` first).
impl Serialize for JobId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Read from a string and checked as [`JobId::new`] checks it; a borrowed
/// string (the store's binary records) costs one allocation, the id's own.
impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = JobId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a job id (a string)")
            }
            // Owned strings come here too (serde's default `visit_string`).
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<JobId, E> {
                JobId::checked(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl From<JobId> for String {
    fn from(value: JobId) -> Self {
        value.0.to_string()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: a width and an alignment (`{:<8}` in a
        // table of jobs) apply, as they do to a `str`.
        f.pad(&self.0)
    }
}

/// One run of a job: unique across jobs and restarts (64 random bits), shown as
/// 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RunId(pub u64);

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunId({self})")
    }
}

impl RunId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(rand::random())
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for RunId {
    type Err = std::num::ParseIntError;
    /// Hex digits only, as `Display` writes them (`from_str_radix` alone
    /// would also take a leading `+`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            // The same error as for any other digit outside base 16.
            return u64::from_str_radix("-", 16).map(Self);
        }
        u64::from_str_radix(s, 16).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_reads_hex_digits_only() {
        let id: RunId = "00ff".parse().expect("hex");
        assert_eq!(id, RunId(255));
        assert_eq!(id.to_string().parse::<RunId>(), Ok(id));
        for bad in ["+1", "-1", "", " 1", "0x1", "g", "1\n"] {
            assert!(bad.parse::<RunId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_job_id_is_padded_to_a_width_as_a_str_is() {
        let id = JobId::new("once").unwrap();
        assert_eq!(format!("{id:<8}|"), "once    |");
        assert_eq!(format!("{id:>6}"), "  once");
        assert_eq!(format!("{id:.2}"), "on");
        assert_eq!(format!("{id}"), "once");
    }

    #[test]
    fn a_job_id_is_written_as_a_plain_string_and_read_back() {
        let id = JobId::new("nightly-report").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"nightly-report\"");
        let bytes = postcard::to_allocvec(&id).unwrap();
        // The same bytes as the string itself: stores written before keep
        // reading.
        assert_eq!(bytes, postcard::to_allocvec("nightly-report").unwrap());
        assert_eq!(postcard::from_bytes::<JobId>(&bytes).unwrap(), id);
        assert_eq!(
            serde_json::from_str::<JobId>("\"nightly-report\"").unwrap(),
            id
        );
        // An owned string (a reader that cannot borrow) reads the same.
        let value = serde_json::Value::String("nightly-report".into());
        assert_eq!(serde_json::from_value::<JobId>(value).unwrap(), id);
    }

    #[test]
    fn an_invalid_job_id_is_refused_when_read() {
        for (text, rule) in [
            ("\"\"", "it is empty"),
            ("\"a\\u0007b\"", "it contains a control character"),
        ] {
            let err = serde_json::from_str::<JobId>(text).unwrap_err();
            assert!(err.to_string().contains(rule), "{err}");
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            let err = serde_json::from_value::<JobId>(value).unwrap_err();
            assert!(err.to_string().contains(rule), "{err}");
        }
        let long = "x".repeat(MAX_JOB_ID_LEN + 1);
        let bytes = postcard::to_allocvec(long.as_str()).unwrap();
        assert!(postcard::from_bytes::<JobId>(&bytes).is_err());
        let err = JobId::try_from(long.as_str()).unwrap_err();
        assert_eq!(err.reason, "it is longer than 200 bytes");
        assert_eq!(err.id, long);
        assert!(serde_json::from_str::<JobId>("42").is_err());
    }
}
