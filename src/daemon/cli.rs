//! The commands of the `cronactor` binary, behind its argument parsing:
//! each prints a human table by default or JSON with `json`, and fails
//! with a [`CliError`] whose [`CliError::exit_code`] is documented in
//! `docs/operations.md`.

use super::config::{load, ConfigError};
use super::run::DaemonError;
use crate::http::client::{
    Client, ClientError, StreamMessage, EXIT_RUN_FAILED, EXIT_SERVER, EXIT_USAGE,
};
use crate::http::dto::{EventView, JobDetail, JobView, OverlapRequest, RunView};
use crate::schedule::{PreviewFire, ScheduleSpec};
use chrono::{DateTime, SecondsFormat, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A call to the API failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The arguments are invalid (for example a bad cron expression).
    #[error("{0}")]
    Usage(String),
    /// The configuration file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The daemon failed.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The followed run did not succeed.
    #[error("{0}")]
    RunFailed(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Client(e) => e.exit_code(),
            Self::Usage(_)
            | Self::Config(_)
            | Self::Daemon(DaemonError::Config(_))
            | Self::Daemon(DaemonError::Http(
                crate::http::HttpError::InsecureBind(_) | crate::http::HttpError::Config(_),
            )) => EXIT_USAGE,
            Self::Daemon(_) => EXIT_SERVER,
            Self::RunFailed(_) => EXIT_RUN_FAILED,
        }
    }
}

/// Prints a value as pretty JSON.
fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("cannot render JSON: {e}"),
    }
}

/// Prints rows under headers, columns padded to their widest cell.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned()
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "{}",
        line(headers.iter().map(|h| (*h).to_owned()).collect())
    );
    for row in rows {
        let _ = writeln!(stdout, "{}", line(row.clone()));
    }
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "-".to_owned(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

fn last_run(run: Option<&RunView>) -> String {
    run.map_or_else(
        || "-".to_owned(),
        |r| format!("{} {}", r.outcome, time(Some(r.finished))),
    )
}

/// `cronactor preview EXPR [--also EXPR]... [--tz ZONE] [-n N]`: the next
/// fires of a cron expression (or of the union of several), with DST notes.
///
/// # Errors
/// [`CliError::Usage`] with the library's message for an invalid
/// expression or zone.
pub fn preview(
    expr: &str,
    tz: Option<&str>,
    also: &[String],
    exclude: &[String],
    n: usize,
    after: Option<DateTime<Utc>>,
    json: bool,
) -> Result<(), CliError> {
    let mut spec = ScheduleSpec::cron(expr);
    if let Some(tz) = tz {
        spec = spec.in_tz(tz);
    }
    for cron in also {
        spec = spec.or_cron(cron.clone());
    }
    for cron in exclude {
        spec = spec.exclude(cron.clone());
    }
    let schedule = spec
        .compile(chrono_tz::UTC)
        .map_err(|e| CliError::Usage(crate::Error::from(e).to_string()))?;
    let fires: Vec<PreviewFire> = schedule.preview(after.unwrap_or_else(Utc::now), n);
    if json {
        let views: Vec<crate::http::dto::FireView> =
            fires.iter().map(crate::http::dto::FireView::from).collect();
        print_json(&views);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = fires
        .iter()
        .map(|f| {
            let mut notes: Vec<String> = f.skipped.iter().map(ToString::to_string).collect();
            notes.extend(f.note.iter().map(ToString::to_string));
            vec![
                f.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                f.local.to_rfc3339_opts(SecondsFormat::AutoSi, false),
                if notes.is_empty() {
                    String::new()
                } else {
                    notes.join("; ")
                },
            ]
        })
        .collect();
    table(&["UTC", "LOCAL", "NOTE"], &rows);
    if fires.len() < n {
        println!("(the schedule has no more fires)");
    }
    Ok(())
}

/// `cronactor validate FILE`: checks a daemon configuration without
/// running it.
///
/// # Errors
/// [`CliError::Config`] listing every problem.
pub fn validate(path: &Path, json: bool) -> Result<(), CliError> {
    let config = load(path)?;
    if json {
        let ids: Vec<&str> = config.jobs.iter().map(|j| j.id.as_str()).collect();
        print_json(&serde_json::json!({ "ok": true, "jobs": ids }));
    } else {
        println!("{}: ok, {} job(s)", path.display(), config.jobs.len());
        for job in &config.jobs {
            println!("  {}  {}", job.id, job.schedule);
        }
    }
    Ok(())
}

/// `cronactor jobs list [--state S] [--tag T]`.
///
/// # Errors
/// [`CliError::Client`].
pub fn jobs_list(
    client: &Client,
    state: Option<&str>,
    tag: Option<&str>,
    json: bool,
) -> Result<(), CliError> {
    let jobs = client.list_jobs_matching(state, tag)?;
    if json {
        print_json(&jobs);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.clone(),
                j.phase.clone(),
                j.schedule.clone(),
                time(j.next_fire),
                last_run(j.last_run.as_ref()),
                format!("{}/{}", j.counters.succeeded, j.counters.runs),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "PHASE",
            "SCHEDULE",
            "NEXT FIRE",
            "LAST RUN",
            "OK/RUNS",
        ],
        &rows,
    );
    Ok(())
}

fn print_job(d: &JobDetail) {
    let j: &JobView = &d.job;
    println!("id:            {}", j.id);
    println!("phase:         {}", j.phase);
    if let Some(note) = &j.pause_note {
        println!("pause note:    {note}");
    }
    if let Some(f) = &j.failure {
        println!("failure:       {f}");
    }
    println!("schedule:      {} ({})", j.schedule, j.time_zone);
    println!("handler:       {}", j.handler);
    println!("next fire:     {}", time(j.next_fire));
    println!("last fire:     {}", time(j.last_fire));
    println!("last run:      {}", last_run(j.last_run.as_ref()));
    let c = &j.counters;
    println!(
        "counters:      {} runs, {} succeeded, {} failed, {} timed out, {} cancelled, {} retries, {} skipped",
        c.runs,
        c.succeeded,
        c.failed,
        c.timed_out,
        c.cancelled,
        c.retries,
        c.skipped.paused + c.skipped.overlap + c.skipped.queue_full + c.skipped.misfire + c.skipped.orphaned
    );
    println!("in flight:     {} (queued {})", j.runs_in_flight, j.queued);
    for r in &j.in_flight {
        let cancelled = r
            .cancelled
            .as_ref()
            .map(|why| format!(", cancelled ({why})"))
            .unwrap_or_default();
        println!(
            "  run {}:  {}, attempt {}, started {}{cancelled}",
            r.run_id,
            r.trigger,
            r.attempt,
            time(Some(r.started))
        );
    }
    if let Some(p) = &j.progress {
        println!("progress:      {:.0}% {}", p.fraction * 100.0, p.message);
    }
    if let Some(w) = &j.retry_wait {
        println!(
            "retry:         attempt {} at {}",
            w.attempt,
            time(Some(w.due))
        );
    }
    if let Some(r) = j.last_run.as_ref().and_then(|r| r.error.as_ref()) {
        println!("last error:    {}", r.replace('\n', "\n               "));
    }
    if let Some(result) = &j.last_result {
        println!("last result:   {result}");
    }
    println!("next fires:");
    for f in &d.next_fires {
        match &f.note {
            Some(note) => println!("  {}  {}  ({note})", time(Some(f.at)), f.local),
            None => println!("  {}  {}", time(Some(f.at)), f.local),
        }
    }
    if !d.recent_runs.is_empty() {
        println!("recent runs:");
        print_runs(&d.recent_runs);
    }
}

fn print_runs(runs: &[RunView]) {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.run_id.clone(),
                time(Some(r.started)),
                format!("{} ms", r.duration_ms),
                r.attempt.to_string(),
                r.trigger.clone(),
                r.outcome.clone(),
                match (&r.error, r.slots) {
                    (Some(e), _) => e.lines().next().unwrap_or("").to_owned(),
                    // Slots that did not run: how many, up to when, and why.
                    (None, Some(slots)) => format!(
                        "{slots} slot(s) through {}{}",
                        time(r.through),
                        r.reason
                            .as_deref()
                            .map(|why| format!(" ({why})"))
                            .unwrap_or_default()
                    ),
                    (None, None) => String::new(),
                },
            ]
        })
        .collect();
    table(
        &[
            "RUN", "STARTED", "DURATION", "ATTEMPT", "TRIGGER", "OUTCOME", "ERROR",
        ],
        &rows,
    );
}

/// `cronactor jobs show ID`.
///
/// # Errors
/// [`CliError::Client`].
pub fn jobs_show(client: &Client, id: &str, json: bool) -> Result<(), CliError> {
    let detail = client.job(id)?;
    if json {
        print_json(&detail);
    } else {
        print_job(&detail);
    }
    Ok(())
}

/// `cronactor jobs pause (--tag T | --all) [--note N]` and the same for
/// `jobs resume`: one line per selected job, what the call did to it
/// (`paused`, `resumed`, or `unchanged` and why).
///
/// # Errors
/// [`CliError::Client`] (400, exit code 1, for an empty tag).
pub fn jobs_pause_or_resume(
    client: &Client,
    tag: Option<&str>,
    note: Option<&str>,
    pause: bool,
    json: bool,
) -> Result<(), CliError> {
    let report = if pause {
        client.pause_matching(tag, note)?
    } else {
        client.resume_matching(tag, note)?
    };
    if json {
        print_json(&report);
        return Ok(());
    }
    let done = if pause { "paused" } else { "resumed" };
    let mut rows: Vec<Vec<String>> = report
        .changed
        .iter()
        .map(|id| vec![id.clone(), done.to_owned()])
        .chain(
            report
                .unchanged
                .iter()
                .map(|u| vec![u.job_id.clone(), format!("unchanged ({})", u.reason)]),
        )
        .collect();
    rows.sort();
    table(&["ID", "RESULT"], &rows);
    println!(
        "{} {done}, {} unchanged",
        report.changed.len(),
        report.unchanged.len()
    );
    Ok(())
}

/// `cronactor pause ID [--note N]` and `cronactor resume ID [--note N]`.
///
/// # Errors
/// [`CliError::Client`] (409, exit code 3, if it is already in that state).
pub fn pause_or_resume(
    client: &Client,
    id: &str,
    note: Option<&str>,
    pause: bool,
    json: bool,
) -> Result<(), CliError> {
    let job = if pause {
        client.pause(id, note)?
    } else {
        client.resume(id, note)?
    };
    if json {
        print_json(&job);
    } else {
        match &job.pause_note {
            Some(n) => println!("{}: {} ({n})", job.id, job.phase),
            None => println!("{}: {}", job.id, job.phase),
        }
    }
    Ok(())
}

/// `cronactor trigger ID [--overlap POLICY]`: `skip`, `replace`,
/// `concurrent`, `concurrent:N` or `queue:N`.
///
/// # Errors
/// [`CliError::Usage`] for a policy it does not know; [`CliError::Client`].
pub fn trigger(
    client: &Client,
    id: &str,
    overlap: Option<&str>,
    json: bool,
) -> Result<(), CliError> {
    let t = match overlap {
        Some(text) => client.trigger_with(id, parse_overlap(text)?)?,
        None => client.trigger(id)?,
    };
    if json {
        print_json(&t);
    } else {
        match (&t.run_id, &t.reason) {
            (Some(run), _) => println!("{id}: run {run} started"),
            (None, Some(reason)) => println!("{id}: {} ({reason})", t.outcome),
            (None, None) => println!("{id}: {}", t.outcome),
        }
    }
    Ok(())
}

/// An overlap policy as the CLI writes it.
fn parse_overlap(text: &str) -> Result<OverlapRequest, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "--overlap {text:?}: use skip, replace, concurrent, concurrent:N or queue:N"
        ))
    };
    let number = |n: &str| n.parse::<u32>().map_err(|_| bad());
    Ok(match text.split_once(':') {
        None if text == "skip" => OverlapRequest::Skip,
        None if text == "replace" => OverlapRequest::Replace,
        None if text == "concurrent" => OverlapRequest::Concurrent { max: None },
        Some(("concurrent", n)) => OverlapRequest::Concurrent {
            max: Some(number(n)?),
        },
        Some(("queue", n)) => OverlapRequest::Queue { max: number(n)? },
        _ => return Err(bad()),
    })
}

/// `cronactor backfill ID --from T --to T [--overlap buffer-all|allow-all]`.
///
/// # Errors
/// [`CliError::Client`].
pub fn backfill(
    client: &Client,
    id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    overlap: crate::BackfillOverlap,
    json: bool,
) -> Result<(), CliError> {
    let b = client.backfill_with(id, from, to, overlap)?;
    if json {
        print_json(&b);
    } else if overlap == crate::BackfillOverlap::AllowAll {
        println!("{id}: {} slot(s) started", b.queued);
    } else {
        println!("{id}: {} slot(s) queued", b.queued);
    }
    Ok(())
}

/// `cronactor cancel ID [--run RUN]`.
///
/// # Errors
/// [`CliError::Client`].
pub fn cancel(client: &Client, id: &str, run: Option<&str>, json: bool) -> Result<(), CliError> {
    let c = match run {
        Some(run) => client.cancel_run(id, run)?,
        None => client.cancel(id)?,
    };
    if json {
        print_json(&c);
    } else if c.cancelled.is_empty() {
        println!("{id}: nothing was running");
    } else {
        println!("{id}: cancelled {}", c.cancelled.join(", "));
    }
    Ok(())
}

/// `cronactor history ID [--limit N]`.
///
/// # Errors
/// [`CliError::Client`].
pub fn history(client: &Client, id: &str, limit: usize, json: bool) -> Result<(), CliError> {
    let runs = client.history(id, limit)?;
    if json {
        print_json(&runs);
    } else {
        print_runs(&runs);
    }
    Ok(())
}

/// `cronactor emit NAME [--payload JSON]`.
///
/// # Errors
/// [`CliError::Usage`] for a payload that is not JSON, [`CliError::Client`].
pub fn emit(
    client: &Client,
    name: &str,
    payload: Option<&str>,
    json: bool,
) -> Result<(), CliError> {
    let payload = payload
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()
        .map_err(|e| CliError::Usage(format!("--payload is not JSON: {e}")))?;
    let e = client.emit(name, payload.as_ref())?;
    if json {
        print_json(&e);
    } else if e.fired.is_empty() {
        println!("{name}: no job listens");
    } else {
        for f in &e.fired {
            println!("{name}: {} {}", f.job_id, f.outcome.outcome);
        }
    }
    Ok(())
}

/// `cronactor result ID --set JSON | --clear`.
///
/// # Errors
/// [`CliError::Usage`] for a value that is not JSON; [`CliError::Client`].
pub fn set_result(
    client: &Client,
    id: &str,
    value: Option<&str>,
    json: bool,
) -> Result<(), CliError> {
    let value = value
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()
        .map_err(|e| CliError::Usage(format!("--set is not JSON: {e}")))?;
    let job = client.set_last_result(id, value.as_ref())?;
    if json {
        print_json(&job);
    } else {
        match &job.last_result {
            Some(result) => println!("{id}: last result {result}"),
            None => println!("{id}: no last result"),
        }
    }
    Ok(())
}

fn event_line(e: &EventView) -> String {
    let data = match &e.data {
        serde_json::Value::Object(m) if m.is_empty() => String::new(),
        d => d.to_string(),
    };
    format!(
        "{:>6}  {}  {}  {}  {}",
        e.seq,
        e.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        e.job_id,
        e.kind,
        data
    )
    .trim_end()
    .to_owned()
}

/// `cronactor events [--job ID] [--last-event-id N] [--count N]`: prints
/// events as they come (one JSON object per line with `json`).
///
/// # Errors
/// [`CliError::Client`], also when the stream ends before `count` events
/// came (the server shut down).
pub fn events(
    client: &Client,
    job: Option<&str>,
    last_event_id: Option<u64>,
    count: Option<usize>,
    json: bool,
) -> Result<(), CliError> {
    let reader = client.events(job, last_event_id)?;
    let url = reader.url().to_owned();
    if count == Some(0) {
        // Nothing to wait for: the stream was opened only to check the
        // server and the token.
        return Ok(());
    }
    let mut printed = 0;
    let mut out = std::io::stdout();
    for message in reader {
        let line = match message? {
            StreamMessage::Event(e) => {
                printed += 1;
                if json {
                    serde_json::to_string(&e).unwrap_or_default()
                } else {
                    event_line(&e)
                }
            }
            StreamMessage::Missed(m) => {
                if json {
                    serde_json::to_string(&serde_json::json!({ "missed": m })).unwrap_or_default()
                } else {
                    format!("-- missed events: {}", m.reason)
                }
            }
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        if count.is_some_and(|c| printed >= c) {
            return Ok(());
        }
    }
    match count {
        // The server shut down (or the connection closed) before the events
        // asked for came: no success.
        Some(c) => Err(CliError::Client(ClientError::Connect {
            url,
            reason: format!("the event stream ended after {printed} of {c} events"),
        })),
        None => Ok(()),
    }
}

fn data_str<'a>(e: &'a EventView, key: &str) -> &'a str {
    e.data.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

/// `cronactor follow ID [--until-done]`: follows one job's events, with a
/// progress bar (on a terminal) fed by the run's progress reports and its
/// log lines printed above it. With `until_done` it returns after the next
/// run that ends for good: success, failure with no retry left, or a
/// failure whose waiting retry is dropped (`retry_dropped`).
///
/// # Errors
/// [`CliError::Client`] (also when `until_done` and the stream ends before
/// the run does: the server shut down); [`CliError::RunFailed`] when
/// `until_done` and the run did not succeed.
pub fn follow(client: &Client, id: &str, until_done: bool, json: bool) -> Result<(), CliError> {
    let detail = client.job(id)?;
    let reader = client.events(Some(id), None)?;
    let url = reader.url().to_owned();
    let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {percent:>3}% {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(id.to_owned());
    let say = |line: String| {
        bar.suspend(|| {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        })
    };
    if !json {
        say(format!(
            "following {id} ({}, next fire {})",
            detail.job.phase,
            time(detail.job.next_fire)
        ));
    } else {
        say(serde_json::json!({ "following": id }).to_string());
    }
    if let Some(p) = &detail.job.progress {
        bar.set_position((p.fraction.clamp(0.0, 1.0) * 1000.0) as u64);
        bar.set_message(p.message.clone());
    }
    for message in reader {
        let e = match message? {
            StreamMessage::Event(e) => e,
            StreamMessage::Missed(m) => {
                say(format!("-- missed events: {}", m.reason));
                continue;
            }
        };
        if json {
            say(serde_json::to_string(&e).unwrap_or_default());
        }
        let run = data_str(&e, "run_id").to_owned();
        match e.kind.as_str() {
            "started" => {
                bar.reset();
                bar.set_message("started");
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                if !json {
                    let attempt = e.data.get("attempt").and_then(|a| a.as_u64()).unwrap_or(1);
                    say(format!(
                        "run {run} started (attempt {attempt}, {})",
                        data_str(&e, "trigger")
                    ));
                }
            }
            "progress" => {
                let fraction = e
                    .data
                    .get("fraction")
                    .and_then(|f| f.as_f64())
                    .unwrap_or(0.0);
                bar.set_position((fraction.clamp(0.0, 1.0) * 1000.0) as u64);
                bar.set_message(data_str(&e, "message").to_owned());
                if !json && bar.is_hidden() {
                    say(format!(
                        "progress {:.0}% {}",
                        fraction * 100.0,
                        data_str(&e, "message")
                    ));
                }
            }
            "log" => {
                if !json {
                    say(format!("  {}", data_str(&e, "line")));
                }
            }
            "succeeded" => {
                bar.disable_steady_tick();
                bar.set_position(1000);
                bar.finish_and_clear();
                if !json {
                    let ms = e
                        .data
                        .get("duration_ms")
                        .and_then(|d| d.as_u64())
                        .unwrap_or(0);
                    say(format!("run {run} succeeded in {ms} ms"));
                }
                if until_done {
                    return Ok(());
                }
            }
            "failed" | "timed_out" | "cancelled" | "interrupted" => {
                bar.disable_steady_tick();
                bar.abandon();
                let why = match e.kind.as_str() {
                    "failed" => data_str(&e, "error").to_owned(),
                    "cancelled" => data_str(&e, "reason").to_owned(),
                    "interrupted" => "the scheduler shut down, or gave up on the job".to_owned(),
                    _ => "timed out".to_owned(),
                };
                if !json {
                    say(format!("run {run} {}: {why}", e.kind));
                }
                if until_done {
                    // Published together with the outcome: a retry to come?
                    let retrying = client.job(id)?.job.retry_wait.is_some();
                    if !retrying {
                        return Err(CliError::RunFailed(format!("run {run} {}: {why}", e.kind)));
                    }
                }
            }
            "retry_scheduled" => {
                if !json {
                    say(format!(
                        "retry: attempt {} at {}",
                        e.data.get("attempt").and_then(|a| a.as_u64()).unwrap_or(0),
                        data_str(&e, "at")
                    ));
                }
            }
            "retry_dropped" => {
                // The retry a failed run was waiting for will not run: that
                // run's fire ended for good.
                let line = format!(
                    "retry: attempt {} dropped: {}",
                    e.data.get("attempt").and_then(|a| a.as_u64()).unwrap_or(0),
                    data_str(&e, "reason")
                );
                if !json {
                    say(line.clone());
                }
                if until_done {
                    return Err(CliError::RunFailed(line));
                }
            }
            "removed" => {
                if !json {
                    say(format!("{id} was removed"));
                }
                return if until_done {
                    Err(CliError::RunFailed(format!("{id} was removed")))
                } else {
                    Ok(())
                };
            }
            _ => {
                if !json {
                    say(event_line(&e));
                }
            }
        }
    }
    if until_done {
        // The server shut down (or the connection closed) with the run
        // still to end: its outcome is unknown, which is no success.
        bar.abandon();
        return Err(CliError::Client(ClientError::Connect {
            url,
            reason: "the event stream ended before the run did".into(),
        }));
    }
    Ok(())
}
