//! The project's benchmark binary: one workload per subcommand, one JSON line
//! of results on stdout.
//!
//! Execute with: cargo run --release --example bench -- next-fire [--iters N]

use chrono::{DateTime, Utc};
use cronactor::schedule::{Schedule, ScheduleSpec};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

/// Expressions of the `next-fire` workload: dense, sparse, weekday-bound,
/// yearly, and Quartz extensions.
const EXPRESSIONS: [&str; 10] = [
    "* * * * * *",
    "0 */5 * * * *",
    "15 30 2 * * Mon-Fri",
    "0 0 12 * * Sun",
    "0 30 9-17 * * Mon-Fri",
    "0 0 0 1 1 *",
    "0 0 18 ? * 5L",
    "0 0 9 LW * *",
    "0 0 10 ? * MON#2",
    "*/10 * 8-20 * * *",
];

/// Zones of the `next-fire` workload: no DST, and two DST rules.
const ZONES: [&str; 3] = ["UTC", "America/New_York", "Europe/Berlin"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(workload) = args.first() else {
        eprintln!("usage: bench <workload> [options]; workloads: next-fire");
        return ExitCode::FAILURE;
    };
    let result = match workload.as_str() {
        "next-fire" => next_fire(&args[1..]),
        other => Err(format!("unknown workload {other:?}; workloads: next-fire")),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads `--iters N` (default `default`).
fn iters(args: &[String], default: u64) -> Result<u64, String> {
    match args {
        [] => Ok(default),
        [flag, n] if flag == "--iters" => n
            .parse()
            .map_err(|_| format!("--iters needs a positive integer, got {n:?}")),
        other => Err(format!(
            "unexpected arguments {other:?}; expected [--iters N]"
        )),
    }
}

/// Next-fire computations per second over every expression in every zone,
/// each call continuing from the previous fire as the runtime does.
fn next_fire(args: &[String]) -> Result<String, String> {
    let iters = iters(args, 2_000_000)?;
    let mut schedules: Vec<Schedule> = Vec::new();
    for expr in EXPRESSIONS {
        for tz in ZONES {
            let schedule = ScheduleSpec::cron(expr)
                .in_tz(tz)
                .compile(chrono_tz::UTC)
                .map_err(|e| e.to_string())?;
            schedules.push(schedule);
        }
    }
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z"
        .parse()
        .map_err(|e| format!("start instant: {e}"))?;
    let mut cursors = vec![start; schedules.len()];
    // Warm up the zone tables and caches before timing.
    for (schedule, cursor) in schedules.iter().zip(&cursors) {
        black_box(schedule.next_after(*cursor));
    }
    let began = Instant::now();
    for i in 0..iters {
        let k = (i % schedules.len() as u64) as usize;
        // Restart from the start instant when a schedule runs dry (never for
        // these expressions before year 2100, but the loop must not stall).
        cursors[k] = schedules[k].next_after(cursors[k]).unwrap_or(start);
    }
    let elapsed = began.elapsed().as_secs_f64();
    black_box(&cursors);
    let line = Report {
        workload: "next-fire",
        ops: iters,
        ops_per_s: (iters as f64 / elapsed).round(),
        ns_per_op: (elapsed * 1e9 / iters as f64 * 10.0).round() / 10.0,
    };
    serde_json::to_string(&line).map_err(|e| e.to_string())
}

/// The JSON line every workload prints (fields in this order).
#[derive(serde::Serialize)]
struct Report {
    workload: &'static str,
    ops: u64,
    ops_per_s: f64,
    ns_per_op: f64,
}
