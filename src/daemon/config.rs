//! The daemon's TOML file: an optional `[daemon]` table and one `[[job]]`
//! table per job. A job table has the fields of the HTTP API's job spec
//! ([`JobRequest`]) plus the command's: `command`, `shell`, `env`, `cwd`,
//! `kill_grace_ms`. See `docs/operations.md` and `examples/jobs.toml`.

use super::command::{CommandSpec, COMMAND_HANDLER};
use crate::http::dto::JobRequest;
use crate::JobSpec;
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The grace between SIGTERM and SIGKILL when a job names none.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);

/// The `[daemon]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct DaemonTable {
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    kill_grace_ms: Option<u64>,
}

/// A `command` value: an argv array, or a script for `sh -c`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum CommandValue {
    Argv(Vec<String>),
    Script(String),
}

/// A valid daemon configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct DaemonConfig {
    /// The address of the HTTP API, if the file names one.
    pub listen: Option<SocketAddr>,
    /// The zone of schedules that name none (UTC unless set).
    pub time_zone: Tz,
    /// The jobs, in file order, each running the `command` handler.
    pub jobs: Vec<JobSpec>,
}

impl DaemonConfig {
    /// The longest SIGTERM-to-SIGKILL grace of any job.
    pub fn max_kill_grace(&self) -> Duration {
        self.jobs
            .iter()
            .filter_map(|j| serde_json::from_value::<CommandSpec>(j.payload.clone()).ok())
            .map(|c| Duration::from_millis(c.kill_grace_ms))
            .max()
            .unwrap_or(DEFAULT_KILL_GRACE)
    }
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line and column.
        message: String,
    },
    /// The file parsed, but some entries are invalid: every problem found,
    /// one per line.
    #[error("{path}: {} problem(s):\n  {}", problems.len(), problems.join("\n  "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// One message per problem, each naming the job and the field; for
        /// errors found by the library, its message as is.
        problems: Vec<String>,
    },
}

/// Reads and checks a configuration file.
///
/// # Errors
/// [`ConfigError`]: unreadable, not TOML, or invalid entries (all of them
/// are reported at once).
pub fn load(path: &Path) -> Result<DaemonConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    parse(&text, &base).map_err(|e| match e {
        Parsed::Syntax(message) => ConfigError::Syntax {
            path: path.to_owned(),
            message,
        },
        Parsed::Invalid(problems) => ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        },
    })
}

enum Parsed {
    Syntax(String),
    Invalid(Vec<String>),
}

/// Parses a configuration; relative `cwd`s are resolved against `base`.
fn parse(text: &str, base: &Path) -> Result<DaemonConfig, Parsed> {
    let mut root: toml::Table =
        toml::from_str(text).map_err(|e| Parsed::Syntax(e.to_string().trim().to_owned()))?;
    let mut problems = Vec::new();

    let daemon: DaemonTable = match root.remove("daemon") {
        None => DaemonTable::default(),
        Some(v) => from_table(v).unwrap_or_else(|(field, message)| {
            problems.push(format!("[daemon] {field}: {message}"));
            DaemonTable::default()
        }),
    };
    let jobs_value = root.remove("job");
    for key in root.keys() {
        problems.push(format!(
            "unknown top-level key {key:?}: expected [daemon] and [[job]] tables"
        ));
    }
    let listen = daemon.listen.as_deref().and_then(|l| match l.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.push(format!(
                "[daemon] listen: {l:?} is not an address such as 127.0.0.1:7700"
            ));
            None
        }
    });
    let time_zone = match daemon.time_zone.as_deref() {
        None => Tz::UTC,
        Some(name) => name.parse().unwrap_or_else(|_| {
            problems.push(format!(
                "[daemon] time_zone: {}",
                crate::schedule::ScheduleError::UnknownTimeZone(name.to_owned())
            ));
            Tz::UTC
        }),
    };
    let default_grace = daemon
        .kill_grace_ms
        .unwrap_or(DEFAULT_KILL_GRACE.as_millis() as u64);

    let tables = match jobs_value {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items,
        Some(_) => {
            problems.push("job: use [[job]] tables, one per job".into());
            Vec::new()
        }
    };
    let mut jobs = Vec::new();
    let mut seen = HashSet::new();
    for (i, item) in tables.into_iter().enumerate() {
        let n = i + 1;
        let toml::Value::Table(table) = item else {
            problems.push(format!("job #{n}: not a table"));
            continue;
        };
        let name = match table.get("id").and_then(toml::Value::as_str) {
            // Escaped: an id with control characters is refused, and its
            // raw characters must not reach the terminal in the report.
            Some(id) => {
                let shown: String = id
                    .chars()
                    .map(|c| {
                        if c.is_control() {
                            c.escape_debug().to_string()
                        } else {
                            c.to_string()
                        }
                    })
                    .collect();
                format!("job #{n} ({shown})")
            }
            None => format!("job #{n}"),
        };
        match job_spec(table, base, default_grace, time_zone) {
            Ok(spec) => {
                if seen.insert(spec.id.clone()) {
                    jobs.push(spec);
                } else {
                    problems.push(format!("{name}: id: the id {} is used twice", spec.id));
                }
            }
            Err((field, message)) => problems.push(format!("{name}: {field}: {message}")),
        }
    }
    if problems.is_empty() {
        Ok(DaemonConfig {
            listen,
            time_zone,
            jobs,
        })
    } else {
        Err(Parsed::Invalid(problems))
    }
}

/// One `[[job]]` table to a spec running the command handler.
fn job_spec(
    mut table: toml::Table,
    base: &Path,
    default_grace: u64,
    time_zone: Tz,
) -> Result<JobSpec, (String, String)> {
    let err = |field: &str, message: String| (field.to_owned(), message);
    for reserved in ["handler", "payload"] {
        if table.contains_key(reserved) {
            return Err(err(
                reserved,
                format!("{reserved} is set by the daemon: a job runs its command"),
            ));
        }
    }
    let shell = match table.remove("shell") {
        None => false,
        Some(toml::Value::Boolean(b)) => b,
        Some(_) => return Err(err("shell", "shell must be true or false".into())),
    };
    let command: CommandValue = match table.remove("command") {
        None => return Err(err("command", "the command is missing".into())),
        Some(v) => v.try_into().map_err(|_| {
            err(
                "command",
                "command must be an array of strings (argv) or, with shell = true, a string".into(),
            )
        })?,
    };
    let argv =
        match (command, shell) {
            (CommandValue::Argv(argv), false) => argv,
            (CommandValue::Script(script), true) => vec!["sh".into(), "-c".into(), script],
            (CommandValue::Argv(_), true) => {
                return Err(err(
                    "command",
                    "with shell = true, command is one string for sh -c".into(),
                ))
            }
            (CommandValue::Script(_), false) => return Err(err(
                "command",
                "a string command runs through a shell: set shell = true, or give an argv array"
                    .into(),
            )),
        };
    let env: BTreeMap<String, String> = match table.remove("env") {
        None => BTreeMap::new(),
        Some(v) => v
            .try_into()
            .map_err(|_| err("env", "env must be a table of strings".into()))?,
    };
    let cwd = match table.remove("cwd") {
        None => None,
        Some(toml::Value::String(dir)) => Some(base.join(dir)),
        Some(_) => return Err(err("cwd", "cwd must be a string".into())),
    };
    let kill_grace_ms = match table.remove("kill_grace_ms") {
        None => default_grace,
        Some(toml::Value::Integer(ms)) if ms >= 0 => ms as u64,
        Some(_) => {
            return Err(err(
                "kill_grace_ms",
                "kill_grace_ms must be a number of milliseconds".into(),
            ))
        }
    };
    let command = CommandSpec {
        argv,
        env,
        cwd,
        kill_grace_ms,
    };
    command.validate().map_err(|(f, m)| err(f, m))?;

    let mut request: JobRequest =
        from_table(toml::Value::Table(table)).map_err(|(field, message)| {
            // Only the table's own keys: `retry.x` lists the retry's.
            if field.contains('.') {
                (field, message)
            } else {
                (field, job_keys_in(message))
            }
        })?;
    request.handler = COMMAND_HANDLER.to_owned();
    request.payload = serde_json::to_value(&command).map_err(|e| err("command", e.to_string()))?;
    let spec = request.to_spec(None).map_err(|e| (e.field, e.message))?;
    // Checked with the daemon's zone, as it will run.
    spec.compile(time_zone)
        .map_err(|e| err("schedule", e.to_string()))?;
    Ok(spec)
}

/// The keys of a `[[job]]` table that are the command's, not the spec's.
const COMMAND_KEYS: [&str; 5] = ["command", "shell", "env", "cwd", "kill_grace_ms"];

/// Rewrites serde's "unknown field `x`, expected one of ..." (the fields of
/// the JSON spec) into the keys a `[[job]]` table takes: without `handler`
/// and `payload`, which the daemon sets, and with the command's keys.
fn job_keys_in(message: String) -> String {
    // Only an unknown key: an unknown value ("unknown variant `x`, expected
    // one of `skip`, ...") keeps its list of values.
    if !message.starts_with("unknown field ") {
        return message;
    }
    let Some((unknown, expected)) = message.split_once(", expected one of ") else {
        return message;
    };
    let keys: Vec<&str> = expected
        .split(", ")
        .map(|k| k.trim_matches('`'))
        .filter(|k| !matches!(*k, "handler" | "payload"))
        .chain(COMMAND_KEYS)
        .collect();
    format!("{unknown}; a [[job]] table takes {}", keys.join(", "))
}

/// Reads a table into `T`; an error names the key it is about (`every_ms`,
/// `retry.factor`), or `job` when it is about the table as a whole.
fn from_table<T: serde::de::DeserializeOwned>(value: toml::Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "job".to_owned() } else { path };
        (field, e.into_inner().message().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> DaemonConfig {
        match parse(text, Path::new("/etc/cronactor")) {
            Ok(c) => c,
            Err(Parsed::Syntax(m)) => panic!("syntax: {m}"),
            Err(Parsed::Invalid(p)) => panic!("invalid: {p:?}"),
        }
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("/etc/cronactor")) {
            Ok(_) => panic!("accepted: {text}"),
            Err(Parsed::Syntax(m)) => vec![m],
            Err(Parsed::Invalid(p)) => p,
        }
    }

    #[test]
    fn a_full_file_parses() {
        let c = parse_ok(
            r#"
            [daemon]
            listen = "127.0.0.1:7711"
            time_zone = "Europe/Berlin"
            kill_grace_ms = 2000

            [[job]]
            id = "backup"
            cron = "0 0 3 * * *"
            command = ["/usr/local/bin/backup", "--full"]
            env = { TARGET = "/mnt/b" }
            cwd = "work"
            timeout_ms = 3600000
            overlap = "skip"
            retry = { max_retries = 2, backoff_ms = 1000 }

            [[job]]
            id = "cleanup"
            every_ms = 600000
            shell = true
            command = "rm -f /tmp/app/*.old"
            kill_grace_ms = 9000
            "#,
        );
        assert_eq!(c.listen, Some("127.0.0.1:7711".parse().expect("addr")));
        assert_eq!(c.time_zone, chrono_tz::Europe::Berlin);
        assert_eq!(c.jobs.len(), 2);
        let backup: CommandSpec = serde_json::from_value(c.jobs[0].payload.clone()).expect("cmd");
        assert_eq!(backup.argv, vec!["/usr/local/bin/backup", "--full"]);
        assert_eq!(backup.cwd, Some(PathBuf::from("/etc/cronactor/work")));
        assert_eq!(backup.kill_grace_ms, 2000);
        assert_eq!(c.jobs[0].handler, COMMAND_HANDLER);
        assert_eq!(c.jobs[0].retry.max_retries, 2);
        let cleanup: CommandSpec = serde_json::from_value(c.jobs[1].payload.clone()).expect("cmd");
        assert_eq!(cleanup.argv[..2], ["sh".to_owned(), "-c".to_owned()]);
        assert_eq!(c.max_kill_grace(), Duration::from_millis(9000));
    }

    #[test]
    fn every_problem_is_reported_with_the_library_message() {
        let expected = JobSpec::builder(
            "a",
            crate::ScheduleSpec::cron("0 61 * * * *"),
            COMMAND_HANDLER,
        )
        .build()
        .expect_err("minute 61")
        .to_string();
        let p = problems(
            r#"
            colour = "red"
            [[job]]
            id = "a"
            cron = "0 61 * * * *"
            command = ["true"]
            [[job]]
            id = "b"
            cron = "* * * * *"
            command = "echo hi"
            [[job]]
            id = "c"
            cron = "* * * * *"
            command = ["true"]
            handler = "other"
            [[job]]
            id = "d"
            cron = "* * * * *"
            command = ["true"]
            frequency = "often"
            [[job]]
            id = "d"
            cron = "* * * * *"
            command = ["true"]
            [[job]]
            id = "d"
            cron = "* * * * *"
            command = []
            "#,
        );
        assert_eq!(p.len(), 6, "{p:#?}");
        assert!(p[0].contains("colour"));
        assert_eq!(p[1], format!("job #1 (a): cron: {expected}"));
        assert!(
            p[2].starts_with("job #2 (b): command: a string command"),
            "{}",
            p[2]
        );
        assert!(p[3].starts_with("job #3 (c): handler:"), "{}", p[3]);
        assert!(
            p[4].starts_with(
                "job #4 (d): frequency: unknown field `frequency`; a [[job]] table takes id, cron,"
            ),
            "{}",
            p[4]
        );
        assert!(
            p[4].ends_with(", command, shell, env, cwd, kill_grace_ms"),
            "{}",
            p[4]
        );
        assert!(
            !p[4].contains("handler") && !p[4].contains("payload"),
            "{}",
            p[4]
        );
        assert!(p[5].starts_with("job #6 (d): command:"), "{}", p[5]);
        // A nested table's unknown key lists that table's keys.
        let p = problems(
            "[[job]]\nid = \"a\"\nevery_ms = 1000\ncommand = [\"true\"]\nretry = { tries = 2 }\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "job #1 (a): retry.tries: unknown field `tries`, expected one of `max_retries`"
            ),
            "{}",
            p[0]
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key() {
        let job = |extra: &str| format!("[[job]]\nid = \"a\"\ncommand = [\"true\"]\n{extra}\n");
        for (extra, prefix) in [
            (
                "every_ms = -5",
                "job #1 (a): every_ms: invalid value: integer `-5`",
            ),
            (
                "cron = \"@daily\"\ntimeout_ms = \"x\"",
                "job #1 (a): timeout_ms: invalid type",
            ),
            (
                "cron = \"@daily\"\nretry = { max_retries = 1, factor = \"x\" }",
                "job #1 (a): retry.factor: invalid type",
            ),
            ("at = \"2026-01-01\"", "job #1 (a): at: "),
            ("cron = 5", "job #1 (a): cron: invalid type"),
            (
                "cron = \"@daily\"\nexclude = \"* * * 25 12 *\"",
                "job #1 (a): exclude: invalid type: string",
            ),
            (
                "cron = \"@daily\"\nexclude = [\"* * * 25 12 *\", 5]",
                "job #1 (a): exclude[1]: invalid type: integer",
            ),
            (
                "cron = \"@daily\"\nexclude = [\"* * * 32 12 *\"]",
                "job #1 (a): exclude: invalid exclusion \"* * * 32 12 *\"",
            ),
            (
                "cron = \"@daily\"\nalso = \"@hourly\"",
                "job #1 (a): also: invalid type: string",
            ),
            (
                "cron = \"@daily\"\nalso = [\"@hourly\", 5]",
                "job #1 (a): also[1]: invalid type: integer",
            ),
            (
                "cron = \"@daily\"\nalso = [\"0 0 9 * * * 1900\"]",
                "job #1 (a): also: invalid extra cron expression \"0 0 9 * * * 1900\"",
            ),
            (
                "every_ms = 1000\nalso = [\"@hourly\"]",
                "job #1 (a): also: extra cron expressions (also) need a cron schedule",
            ),
            // An unknown value lists the values, not the table's keys.
            (
                "cron = \"@daily\"\noverlap = \"sometimes\"",
                "job #1 (a): overlap: unknown variant `sometimes`, expected one of `skip`, \
                 `replace`, `concurrent`, `queue`",
            ),
            (
                "cron = \"@daily\"\ndst_fold = \"middle\"",
                "job #1 (a): dst_fold: unknown variant `middle`, expected one of `first`, \
                 `last`, `both`",
            ),
        ] {
            let p = problems(&job(extra));
            assert_eq!(p.len(), 1, "{p:?}");
            assert!(p[0].starts_with(prefix), "{extra}: {}", p[0]);
        }
        let p = problems("[daemon]\nkill_grace_ms = -1\n");
        assert!(
            p[0].starts_with("[daemon] kill_grace_ms: invalid value: integer `-1`"),
            "{p:?}"
        );
    }

    #[test]
    fn a_nul_byte_in_the_command_env_or_cwd_is_refused_at_load() {
        let job = |extra: &str| {
            format!("[[job]]\nid = \"a\"\ncron = \"@daily\"\ncommand = [\"true\"]\n{extra}\n")
        };
        for (text, prefix) in [
            (
                "[[job]]\nid = \"a\"\ncron = \"@daily\"\ncommand = [\"a\\u0000b\"]\n".to_owned(),
                "job #1 (a): command: ",
            ),
            (job("env = { A = \"x\\u0000y\" }"), "job #1 (a): env: "),
            (
                job("cwd = \"a\\u0000b\""),
                "job #1 (a): cwd: the working directory contains a NUL byte",
            ),
        ] {
            let p = problems(&text);
            assert_eq!(p.len(), 1, "{p:?}");
            assert!(p[0].starts_with(prefix), "{text}: {}", p[0]);
        }
    }

    #[test]
    fn a_job_named_with_control_characters_is_reported_escaped() {
        // The id is refused; the line naming its job must not carry the
        // raw characters (an escape sequence would drive the terminal).
        let p = problems("[[job]]\nid = \"a\\u001b[2Jb\"\nevery_ms = 1000\ncommand = [\"true\"]\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(!p[0].contains('\u{1b}'), "{p:?}");
        assert!(p[0].starts_with("job #1 (a\\u{1b}[2Jb): id: "), "{p:?}");
        // Other characters are shown as written.
        let p = problems("[[job]]\nid = 'it\"s \\ é'\ncommand = [\"true\"]\n");
        assert!(p[0].starts_with("job #1 (it\"s \\ é): schedule: "), "{p:?}");
    }

    #[test]
    fn duplicates_and_syntax_errors() {
        let p = problems(
            "[[job]]\nid = \"x\"\ncron = \"* * * * *\"\ncommand = [\"true\"]\n\
             [[job]]\nid = \"x\"\nevery_ms = 1000\ncommand = [\"true\"]\n",
        );
        assert_eq!(p, vec!["job #2 (x): id: the id x is used twice".to_owned()]);
        let p = problems("[[job]\nid = 1");
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("line 1"), "{p:?}");
    }
}
