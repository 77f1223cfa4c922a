//! Previewing the next fires of a schedule, with what the DST rules did to them.

use chrono::{DateTime, FixedOffset, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a DST rule moved, doubled or dropped a fire of a fixed-time cron job,
/// or why a fire's local time looks repeated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DstNote {
    /// The wanted local time fell in a spring-forward gap (it does not exist),
    /// so the fire happened at the first instant after the gap
    /// ([`GapPolicy::RunAtTransition`](super::GapPolicy::RunAtTransition)).
    MovedFromGap {
        /// The first matching local time inside the gap.
        wanted: NaiveDateTime,
    },
    /// The local time occurs twice (fall-back fold) and this fire is its first
    /// occurrence.
    FoldFirst {
        /// The repeated local time.
        wanted: NaiveDateTime,
    },
    /// The local time occurs twice (fall-back fold) and this fire is its second
    /// occurrence.
    FoldSecond {
        /// The repeated local time.
        wanted: NaiveDateTime,
    },
    /// The wanted local time fell in a spring-forward gap and
    /// [`GapPolicy::Skip`](super::GapPolicy::Skip) dropped it. Only found in
    /// [`PreviewFire::skipped`], since a dropped fire is not a fire.
    SkippedInGap {
        /// The first matching local time inside the gap.
        wanted: NaiveDateTime,
    },
}

impl fmt::Display for DstNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DstNote::MovedFromGap { wanted } => write!(
                f,
                "moved from {wanted}, which falls in a DST gap, to the end of the gap"
            ),
            DstNote::FoldFirst { wanted } => {
                write!(f, "{wanted} occurs twice (DST fold): first occurrence")
            }
            DstNote::FoldSecond { wanted } => {
                write!(f, "{wanted} occurs twice (DST fold): second occurrence")
            }
            DstNote::SkippedInGap { wanted } => {
                write!(f, "skipped {wanted}, which falls in a DST gap")
            }
        }
    }
}

/// One upcoming fire, as listed by [`Schedule::preview`](super::Schedule::preview).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewFire {
    /// The instant of the fire.
    pub at: DateTime<Utc>,
    /// The same instant on the schedule's wall clock, with its UTC offset.
    pub local: DateTime<FixedOffset>,
    /// How a DST rule shaped this fire, if one did.
    pub note: Option<DstNote>,
    /// Fires dropped by [`GapPolicy::Skip`](super::GapPolicy::Skip) since the
    /// previous listed fire (or since the start of the preview): one
    /// [`DstNote::SkippedInGap`] per gap.
    pub skipped: Vec<DstNote>,
}

/// A preview rendered as text, as the `preview` example prints it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreviewLines {
    /// One RFC 3339 UTC instant per fire, e.g. `2026-03-08T07:00:00Z`.
    pub fires: Vec<String>,
    /// One line per DST note: the fire's UTC instant, its local time, and the note.
    pub notes: Vec<String>,
}

/// Renders fires as text: one RFC 3339 UTC instant per fire (whole seconds
/// unless the instant has a fraction), and one line per DST note.
pub fn preview_lines(fires: &[PreviewFire]) -> PreviewLines {
    let mut lines = PreviewLines::default();
    for fire in fires {
        let at = fire.at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let local = fire.local.to_rfc3339_opts(SecondsFormat::AutoSi, false);
        for note in fire.skipped.iter().chain(&fire.note) {
            lines.notes.push(format!("{at} ({local}): {note}"));
        }
        lines.fires.push(at);
    }
    lines
}
