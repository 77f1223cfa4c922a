//! Execute with: cargo run --example quickstart
//!
//! Embeds a cronactor scheduler, registers two handlers, declares three jobs
//! (a cron job with seconds in a named zone, an interval and a one-shot; the
//! report handler counts its reports in the job's last result),
//! pauses and resumes one by sending a message to the supervisor actor,
//! prints the event stream and a status table for about ten seconds, and shuts
//! down cleanly.
//!
//! Jobs live in a sled store under `./cronactor-data` (or `$CRONACTOR_STORE`):
//! run it twice and the second run resumes every job with its counters.

use cronactor::{
    EventKind, JobContext, JobSpec, OverlapPolicy, Received, ScheduleSpec, Scheduler, SupervisorMsg,
};
use ractor::call;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ========================== Configure ==========================
    let store = std::env::var("CRONACTOR_STORE").unwrap_or_else(|_| "cronactor-data".into());
    let scheduler = Scheduler::builder()
        .handler("report", |ctx: JobContext| async move {
            let to = ctx.payload["to"].as_str().unwrap_or("nobody").to_owned();
            // A count carried from run to run (and across restarts) in the
            // job's last result: what a watermark looks like.
            let sent = ctx
                .last_result()
                .and_then(|r| r["sent"].as_u64())
                .unwrap_or(0)
                + 1;
            println!(
                "    [report] #{sent} run {} for {to} (slot {})",
                ctx.run_id, ctx.scheduled
            );
            ctx.set_result(serde_json::json!({ "sent": sent }))?;
            Ok::<(), cronactor::Error>(())
        })
        .handler("cleanup", |ctx: JobContext| async move {
            // A slow job: honours its cancellation token.
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(1500)) => Ok(()),
                () = ctx.cancel.cancelled() => Err(std::io::Error::other("cancelled")),
            }
        })
        .store_path(&store)
        .start()
        .await?;
    println!(
        "store: {store} (jobs restored: {})",
        scheduler.list().await?.len()
    );

    // ========================== Declare jobs ==========================
    // `upsert` is the boot-time call: it adds a job, or keeps an existing
    // job's counters and pause state while updating its spec.
    let in_three_seconds = chrono::Utc::now() + chrono::Duration::seconds(3);
    let jobs = [
        JobSpec::builder(
            "report",
            ScheduleSpec::cron("*/2 * * * * *").in_tz("Europe/Berlin"),
            "report",
        )
        .payload(serde_json::json!({ "to": "ops@example.com" }))
        .build()?,
        JobSpec::builder(
            "cleanup",
            ScheduleSpec::every(Duration::from_secs(1)),
            "cleanup",
        )
        .overlap(OverlapPolicy::Queue { max: 1 })
        .build()?,
        JobSpec::builder("once", ScheduleSpec::at(in_three_seconds), "report")
            .payload(serde_json::json!({ "to": "one-shot" }))
            .build()?,
    ];
    for spec in jobs {
        let id = spec.id.clone();
        println!("upsert {id}: {:?}", scheduler.upsert(spec).await?);
    }

    // ========================== Watch events ==========================
    let mut events = scheduler.subscribe();
    let printer = tokio::spawn(async move {
        while let Some(received) = events.recv().await {
            match received {
                Received::Event(e) => match &e.kind {
                    EventKind::Fired { .. } | EventKind::Queued { .. } => {}
                    kind => println!("{} {:<8} {:?}", e.at.format("%H:%M:%S%.3f"), e.job_id, kind),
                },
                Received::Missed(n) => println!("(missed {n} events)"),
            }
        }
    });

    // ========================== Control by message ==========================
    tokio::time::sleep(Duration::from_secs(4)).await;
    let supervisor = scheduler.supervisor();
    let id = cronactor::JobId::new("report")?;
    let paused = call!(supervisor, |reply| SupervisorMsg::Pause {
        id: id.clone(),
        note: Some("paused by message".into()),
        reply
    })?;
    println!("pause by message: {paused:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let resumed = call!(supervisor, |reply| SupervisorMsg::Resume {
        id: id.clone(),
        note: None,
        reply
    })?;
    println!("resume by message: {resumed:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // ========================== Status table ==========================
    let jobs = scheduler.list().await?;
    let width = jobs.iter().map(|st| st.schedule.len()).max().unwrap_or(0);
    println!(
        "\n{:<8} {:<width$} {:<9} {:>5} {:>5} {:>5} {:>6}  next fire",
        "job", "schedule", "phase", "runs", "ok", "fail", "skips"
    );
    for st in jobs {
        println!(
            "{:<8} {:<width$} {:<9} {:>5} {:>5} {:>5} {:>6}  {}",
            st.id,
            st.schedule,
            format!("{:?}", st.phase),
            st.counters.runs,
            st.counters.succeeded,
            st.counters.failed,
            st.counters.skipped.total(),
            st.next_fire.map_or("-".into(), |t| t.to_rfc3339()),
        );
    }

    // ========================== Shut down ==========================
    let report = scheduler.shutdown(Duration::from_secs(2)).await?;
    printer.abort();
    println!(
        "\nshut down: {} run(s) cancelled, {} job(s) unfinished; run again to see recovery",
        report.cancelled.len(),
        report.unfinished_jobs.len()
    );
    if let Some(error) = &report.store_error {
        println!("the store's final flush failed: {error}");
    }
    Ok(())
}
