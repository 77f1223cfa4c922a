//! Serde helpers for instants in persisted records: RFC 3339 text in
//! human-readable formats (JSON), and `(seconds, nanoseconds)` since the Unix
//! epoch in binary formats, where formatting and parsing text would cost more
//! than the rest of the record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

fn to_parts(t: &DateTime<Utc>) -> (i64, u32) {
    (t.timestamp(), t.timestamp_subsec_nanos())
}

fn from_parts<E: serde::de::Error>((secs, nanos): (i64, u32)) -> Result<DateTime<Utc>, E> {
    DateTime::from_timestamp(secs, nanos)
        .ok_or_else(|| E::custom(format!("instant out of range: {secs} s {nanos} ns")))
}

/// For `DateTime<Utc>` fields: `#[serde(with = "crate::time_serde::instant")]`.
pub(crate) mod instant {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            t.serialize(s)
        } else {
            to_parts(t).serialize(s)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        if d.is_human_readable() {
            DateTime::<Utc>::deserialize(d)
        } else {
            from_parts(<(i64, u32)>::deserialize(d)?)
        }
    }
}

/// For `Option<DateTime<Utc>>` fields:
/// `#[serde(with = "crate::time_serde::opt_instant")]`.
pub(crate) mod opt_instant {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            t.serialize(s)
        } else {
            t.as_ref().map(to_parts).serialize(s)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        if d.is_human_readable() {
            Option::<DateTime<Utc>>::deserialize(d)
        } else {
            Option::<(i64, u32)>::deserialize(d)?
                .map(from_parts::<D::Error>)
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct T {
        #[serde(with = "super::instant")]
        at: DateTime<Utc>,
        #[serde(with = "super::opt_instant")]
        maybe: Option<DateTime<Utc>>,
    }

    #[test]
    fn json_keeps_rfc3339_and_binary_round_trips() {
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("time");
        let t = T {
            at,
            maybe: Some(at),
        };
        let json = serde_json::to_string(&t).expect("json");
        assert_eq!(
            json,
            r#"{"at":"2023-11-14T22:13:20.123456789Z","maybe":"2023-11-14T22:13:20.123456789Z"}"#
        );
        assert_eq!(serde_json::from_str::<T>(&json).expect("back"), t);
        let none = T { at, maybe: None };
        for t in [t, none] {
            let bytes = postcard::to_allocvec(&t).expect("postcard");
            assert_eq!(postcard::from_bytes::<T>(&bytes).expect("back"), t);
        }
    }
}
