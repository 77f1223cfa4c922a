//! Test kit: run days of schedules in milliseconds.
//!
//! Build the scheduler with a [`ManualClock`] and run the test with tokio's
//! paused time (`#[tokio::test(start_paused = true)]`). Sleeping in the test
//! then advances tokio's clock and the wall clock together, firing every
//! timer on the way in order; [`ManualClock::step`] moves only the wall clock,
//! as an NTP step or a VM resume does.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use cronactor::testing::ManualClock;
//! use cronactor::{JobContext, JobSpec, ScheduleSpec, Scheduler};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new("2026-03-07T12:00:00Z".parse()?);
//! let scheduler = Scheduler::builder()
//!     .clock(clock.clone())
//!     .handler("tick", |_: JobContext| async { Ok::<(), std::io::Error>(()) })
//!     .start()
//!     .await?;
//! let spec = JobSpec::builder("daily", ScheduleSpec::cron("0 30 2 * * *").in_tz("America/New_York"), "tick")
//!     .build()?;
//! scheduler.add(spec).await?;
//! tokio::time::sleep(Duration::from_secs(7 * 86_400)).await; // a week, in milliseconds
//! let status = scheduler.status("daily").await?;
//! assert_eq!(status.counters.succeeded, 7); // 02:30 does not exist on 8 March: it ran at 03:00
//! # Ok(())
//! # }
//! ```

pub use cronactor_actors::ManualClock;
