//! Identifiers: [`JobId`] names a job, [`RunId`] names one run of it.

use serde::{Deserialize, Serialize};
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
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
        let id = id.into();
        let reason = if id.is_empty() {
            Some("it is empty")
        } else if id.len() > MAX_JOB_ID_LEN {
            Some("it is longer than 200 bytes")
        } else if id.chars().any(char::is_control) {
            Some("it contains a control character")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(InvalidJobId { id, reason }),
            // Shared: the supervisor, the registry and the timer service
            // each keep the id of every job (one allocation for all copies).
            None => Ok(Self(Arc::from(id))),
        }
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
        Self::new(value)
    }
}

impl From<JobId> for String {
    fn from(value: JobId) -> Self {
        value.0.to_string()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(Self)
    }
}
