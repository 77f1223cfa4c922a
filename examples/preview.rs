//! Execute with: cargo run --example preview -- --tz ZONE --from RFC3339 -n N 'EXPR'
//!
//! Prints the next N fires of a cron expression after an instant, one RFC 3339
//! UTC instant per line (e.g. `2026-03-08T07:00:00Z`) and nothing else on
//! stdout. Notes on fires that a DST rule moved, repeated or dropped go to
//! stderr, or to stdout after the fires (as `# ` lines) with `--notes`.
//!
//! Options: `--tz ZONE` (IANA name, default UTC), `--from RFC3339` (default
//! now), `-n N` (default 10), `--notes`. Bad input exits with status 2 and
//! the error on stderr.

use chrono::{DateTime, Utc};
use cronactor::schedule::{preview_lines, ScheduleSpec};
use std::process::ExitCode;

const USAGE: &str = "usage: preview [--tz ZONE] [--from RFC3339] [-n N] [--notes] 'EXPR'";

/// The parsed command line.
struct Args {
    tz: String,
    from: Option<DateTime<Utc>>,
    n: usize,
    notes_on_stdout: bool,
    expr: String,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("preview: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let args = parse_args(args)?;
    let schedule = ScheduleSpec::cron(args.expr)
        .in_tz(args.tz)
        .compile(chrono_tz::UTC)
        .map_err(|e| e.to_string())?;
    let from = args.from.unwrap_or_else(Utc::now);
    let lines = preview_lines(&schedule.preview(from, args.n));
    for fire in &lines.fires {
        println!("{fire}");
    }
    for note in &lines.notes {
        if args.notes_on_stdout {
            println!("# {note}");
        } else {
            eprintln!("{note}");
        }
    }
    Ok(())
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        tz: "UTC".into(),
        from: None,
        n: 10,
        notes_on_stdout: false,
        expr: String::new(),
    };
    let mut words: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--tz" => parsed.tz = value("--tz")?.clone(),
            "--from" => {
                let text = value("--from")?;
                let from = DateTime::parse_from_rfc3339(text)
                    .map_err(|e| format!("--from {text:?} is not RFC 3339: {e}"))?;
                parsed.from = Some(from.with_timezone(&Utc));
            }
            "-n" => {
                let text = value("-n")?;
                parsed.n = text
                    .parse()
                    .map_err(|_| format!("-n {text:?} is not a count"))?;
            }
            "--notes" => parsed.notes_on_stdout = true,
            "-h" | "--help" => return Err(USAGE.into()),
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option {flag:?}\n{USAGE}"))
            }
            // An unquoted expression arrives as several words.
            word => words.push(word),
        }
    }
    if words.is_empty() {
        return Err(format!("missing cron expression\n{USAGE}"));
    }
    parsed.expr = words.join(" ");
    Ok(parsed)
}
