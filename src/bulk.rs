//! Bulk pause and resume: [`JobSelector`] picks the jobs,
//! [`BulkReport`] says what each call did to them.

use cronactor_actors::{Error, JobId, JobStatus};

/// The jobs a bulk operation ([`Scheduler::pause_matching`],
/// [`Scheduler::resume_matching`]) applies to: every job, or the jobs that
/// carry a tag ([`JobSpecBuilder::tag`](crate::JobSpecBuilder::tag)).
///
/// The selector is evaluated once, when the call starts: a job added later
/// with the tag is not paused by an earlier bulk pause (a pause is each
/// job's own state; see "Pause and resume" in `docs/semantics.md`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::{JobContext, JobSelector, JobSpec, ScheduleSpec, Scheduler, Unchanged};
///
/// let scheduler = Scheduler::builder()
///     .handler("noop", |_ctx: JobContext| async { Ok::<(), std::io::Error>(()) })
///     .in_memory()
///     .start()
///     .await?;
/// for (id, tag) in [("orders-export", "db"), ("orders-vacuum", "db"), ("newsletter", "mail")] {
///     let spec = JobSpec::builder(id, ScheduleSpec::cron("0 */5 * * * *"), "noop").tag(tag).build()?;
///     scheduler.add(spec).await?;
/// }
/// scheduler.pause("orders-vacuum", None).await?;
///
/// // The database goes into maintenance: every job that writes to it stops.
/// let db = JobSelector::tag("db");
/// let report = scheduler.pause_matching(&db, Some("db maintenance")).await?;
/// assert_eq!(report.changed.len(), 1);
/// assert_eq!(report.changed[0].as_str(), "orders-export");
/// assert_eq!(report.unchanged[0].0.as_str(), "orders-vacuum");
/// assert_eq!(report.unchanged[0].1, Unchanged::AlreadyPaused);
/// let status = scheduler.status("orders-export").await?;
/// assert_eq!(status.pause_note.as_deref(), Some("db maintenance"));
/// assert!(scheduler.status("newsletter").await?.pause_note.is_none());
///
/// // Maintenance is over.
/// let report = scheduler.resume_matching(&db, Some("db back")).await?;
/// assert_eq!(report.changed.len(), 2);
/// scheduler.shutdown(std::time::Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
///
/// [`Scheduler::pause_matching`]: crate::Scheduler::pause_matching
/// [`Scheduler::resume_matching`]: crate::Scheduler::resume_matching
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum JobSelector {
    /// Every job of the scheduler.
    All,
    /// The jobs whose spec carries this tag (compared exactly; it must not
    /// be empty).
    Tag(String),
}

impl JobSelector {
    /// The jobs that carry `tag`.
    pub fn tag(tag: impl Into<String>) -> Self {
        Self::Tag(tag.into())
    }

    /// Checks the selector: an empty tag is [`Error::InvalidSelector`].
    ///
    /// # Errors
    /// [`Error::InvalidSelector`].
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            Self::Tag(tag) if tag.is_empty() => {
                Err(Error::InvalidSelector("the tag is empty".into()))
            }
            _ => Ok(()),
        }
    }

    /// Whether a job's status matches.
    pub fn matches(&self, status: &JobStatus) -> bool {
        match self {
            Self::All => true,
            Self::Tag(tag) => status.tags.iter().any(|t| t == tag),
        }
    }
}

impl std::fmt::Display for JobSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("all jobs"),
            Self::Tag(tag) => write!(f, "tag {tag:?}"),
        }
    }
}

/// Why a bulk operation left a selected job as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unchanged {
    /// A bulk pause found the job paused already (by hand, by an earlier
    /// call or by auto-pause): its pause note is kept.
    AlreadyPaused,
    /// A bulk resume found the job not paused.
    NotPaused,
    /// The job is failed (given up on after its restart budget): it has no
    /// actor to pause or resume, as for a single `pause`/`resume`.
    Failed,
    /// The job was removed while the call ran.
    Removed,
}

impl Unchanged {
    /// A short name: `already_paused`, `not_paused`, `failed`, `removed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AlreadyPaused => "already_paused",
            Self::NotPaused => "not_paused",
            Self::Failed => "failed",
            Self::Removed => "removed",
        }
    }
}

impl std::fmt::Display for Unchanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a bulk pause or resume did: the jobs it changed (durable when the
/// call returned Ok) and those it left as they were, with why. Both are
/// ordered by job id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BulkReport {
    /// Jobs paused (or resumed) by this call.
    pub changed: Vec<JobId>,
    /// Jobs selected but left as they were.
    pub unchanged: Vec<(JobId, Unchanged)>,
}

/// How one job's single pause or resume answered, within a bulk call.
pub(crate) fn classify(
    id: JobId,
    answer: Result<(), Error>,
    report: &mut BulkReport,
) -> Result<(), Error> {
    let unchanged = match answer {
        Ok(()) => {
            report.changed.push(id);
            return Ok(());
        }
        Err(Error::UnknownJob(_)) => Unchanged::Removed,
        Err(Error::InvalidState { state, .. }) if state == "failed" => Unchanged::Failed,
        Err(Error::InvalidState {
            action: "pause", ..
        }) => Unchanged::AlreadyPaused,
        Err(Error::InvalidState {
            action: "resume", ..
        }) => Unchanged::NotPaused,
        Err(e) => return Err(e),
    };
    report.unchanged.push((id, unchanged));
    Ok(())
}

impl BulkReport {
    /// Orders both lists by job id (the calls answer in any order).
    pub(crate) fn sorted(mut self) -> Self {
        self.changed.sort();
        self.unchanged.sort_by(|a, b| a.0.cmp(&b.0));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> JobId {
        JobId::new(s).expect("job id")
    }

    fn refused(action: &'static str, state: &str) -> Result<(), Error> {
        Err(Error::InvalidState {
            id: id("j"),
            action,
            state: state.into(),
        })
    }

    #[test]
    fn each_single_answer_lands_in_the_report_or_ends_the_call() {
        let mut report = BulkReport::default();
        let answers = [
            ("e", Ok(())),
            ("d", Err(Error::UnknownJob(id("d")))),
            ("c", refused("pause", "failed")),
            ("b", refused("pause", "paused")),
            ("a", refused("resume", "scheduled")),
        ];
        for (name, answer) in answers {
            classify(id(name), answer, &mut report).expect("not an error");
        }
        let mut report = report.sorted();
        assert_eq!(report.changed, [id("e")]);
        assert_eq!(
            report.unchanged,
            [
                (id("a"), Unchanged::NotPaused),
                (id("b"), Unchanged::AlreadyPaused),
                (id("c"), Unchanged::Failed),
                (id("d"), Unchanged::Removed),
            ]
        );
        let err = classify(id("f"), Err(Error::Store("disk".into())), &mut report);
        assert_eq!(err, Err(Error::Store("disk".into())));
    }

    #[test]
    fn an_empty_tag_is_refused_and_a_tag_matches_exactly() {
        assert!(matches!(
            JobSelector::tag("").validate(),
            Err(Error::InvalidSelector(_))
        ));
        assert_eq!(JobSelector::All.validate(), Ok(()));
        assert_eq!(JobSelector::tag("db").to_string(), "tag \"db\"");
    }
}
