//! The `command` handler: runs a job's command as a child process in its
//! own process group.
//!
//! - argv as given (no shell; the config turns `shell = true` into
//!   `sh -c SCRIPT`), extra environment, working directory, stdin from
//!   `/dev/null`;
//! - stdout and stderr are read as they come: each line is published as a
//!   log event of the run, the last [`TAIL_BYTES`] are kept and become the
//!   run's error text when it fails; a stdout line
//!   `cronactor:progress FRACTION MESSAGE` reports progress instead;
//! - on cancellation (timeout, cancel, replace, remove, shutdown) the
//!   process group gets SIGTERM, then SIGKILL after `kill_grace_ms`;
//! - when the main process exits, what is left of its group is killed: a
//!   job's processes end with it;
//! - the job's last result (`JobContext::last_result`) is in
//!   `CRONACTOR_LAST_RESULT` as JSON text (unset before any), and a command
//!   leaves its own by writing JSON to the file named by
//!   `CRONACTOR_RESULT_FILE` (as a CI step writes its outputs to a file):
//!   on a successful exit a non-empty file becomes the run's result, and a
//!   file that is not JSON, or longer than `MAX_RESULT_BYTES`, fails the
//!   run with [`CommandError::Result`].

use crate::JobContext;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// The name the daemon registers the handler under.
pub const COMMAND_HANDLER: &str = "command";
/// How much of the output is kept for the error text.
pub const TAIL_BYTES: usize = 4096;
/// The longest line published as a log event (longer ones are cut).
const MAX_LINE: usize = 4096;
/// How long the output of an exited command is still read.
const DRAIN: Duration = Duration::from_millis(250);

/// A job's command, as stored in the job's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Variables added to the daemon's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working directory (the daemon's when unset).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Milliseconds between SIGTERM and SIGKILL.
    pub kill_grace_ms: u64,
}

impl CommandSpec {
    /// Checks the argv, the environment and the working directory.
    ///
    /// # Errors
    /// The field and what is wrong with it.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match self.argv.first() {
            None => return Err(("command", "the command is empty".into())),
            Some(p) if p.trim().is_empty() => {
                return Err(("command", "the program name is empty".into()))
            }
            _ => {}
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            return Err(("command", "an argument contains a NUL byte".into()));
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(("env", format!("invalid environment variable {k:?}")));
            }
        }
        // A path with a NUL byte cannot be passed to the system: refused
        // here, at load, rather than failing every run at its spawn.
        if let Some(cwd) = &self.cwd {
            if cwd.as_os_str().as_encoded_bytes().contains(&0) {
                return Err(("cwd", "the working directory contains a NUL byte".into()));
            }
        }
        Ok(())
    }
}

/// Why a command run failed; the `Display` is the run's error text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The job's payload is not a command spec.
    #[error("the job's payload is not a command: {0}")]
    Payload(
        /// The decoding error.
        String,
    ),
    /// The program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// The command exited with a non-zero status.
    #[error("{status}{}", tail_text(.tail))]
    Exit {
        /// The exit status (code or signal).
        status: String,
        /// The end of its output.
        tail: String,
    },
    /// The command exited with 0 but left a result that cannot be kept: not
    /// JSON, too long, or the result file could not be made or read.
    #[error("the command's result: {0}")]
    Result(
        /// What is wrong.
        String,
    ),
    /// The run was cancelled and the process group was stopped.
    #[error("stopped with {signal}{}", tail_text(.tail))]
    Stopped {
        /// The last signal sent to the group (`SIGTERM` or `SIGKILL`).
        signal: &'static str,
        /// The end of its output.
        tail: String,
    },
}

fn tail_text(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; output tail:\n{tail}")
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// The last bytes of a run's output.
#[derive(Default)]
struct Tail {
    bytes: VecDeque<u8>,
    cut: bool,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.bytes.extend(data);
        while self.bytes.len() > TAIL_BYTES {
            self.bytes.pop_front();
            self.cut = true;
        }
    }

    fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        let mut all = Vec::with_capacity(self.bytes.len());
        all.extend_from_slice(a);
        all.extend_from_slice(b);
        let text = String::from_utf8_lossy(&all);
        let text = text.trim_end();
        if self.cut {
            format!("…{text}")
        } else {
            text.to_owned()
        }
    }
}

/// Sends `signal` to every process of the group; false once it is empty.
fn signal_group(pgid: libc::pid_t, signal: libc::c_int) -> bool {
    // SAFETY: killpg only sends a signal; pgid is the group this handler
    // created for the command (its leader's pid), never 0 or negative.
    pgid > 0 && unsafe { libc::killpg(pgid, signal) } == 0
}

/// Kills the group when dropped: the run future may be dropped (after the
/// scheduler's cancel grace) while the command still runs.
struct GroupGuard(libc::pid_t);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, libc::SIGKILL);
    }
}

/// Handles one output line: progress lines report progress, others are
/// published as log lines.
fn on_line(ctx: &JobContext, stream: &str, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\r', '\n']);
    if stream == "stdout" {
        if let Some(rest) = text.strip_prefix("cronactor:progress ") {
            let (fraction, message) = rest.split_once(' ').unwrap_or((rest, ""));
            if let Ok(f) = fraction.trim().parse::<f32>() {
                ctx.progress(f, message.trim());
                return;
            }
        }
        ctx.log(text);
    } else {
        ctx.log(format!("stderr: {text}"));
    }
}

/// Reads one output stream to its end.
async fn pump(
    mut reader: impl AsyncRead + Unpin,
    stream: &'static str,
    tail: Arc<Mutex<Tail>>,
    ctx: JobContext,
) {
    let mut buf = vec![0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let data = &buf[..n];
        tail.lock().unwrap_or_else(|e| e.into_inner()).push(data);
        for &b in data {
            if b == b'\n' {
                on_line(&ctx, stream, &line);
                line.clear();
            } else if line.len() < MAX_LINE {
                line.push(b);
            }
        }
    }
    if !line.is_empty() {
        on_line(&ctx, stream, &line);
    }
}

/// The `command` handler: runs the command in the job's payload.
///
/// # Errors
/// [`CommandError`]: an invalid payload, a program that cannot start, a
/// non-zero exit, or a cancellation (the group was stopped).
pub async fn run_command(ctx: JobContext) -> Result<(), CommandError> {
    let spec: CommandSpec = serde_json::from_value((*ctx.payload).clone())
        .map_err(|e| CommandError::Payload(e.to_string()))?;
    spec.validate()
        .map_err(|(field, reason)| CommandError::Payload(format!("{field}: {reason}")))?;
    let program = spec.argv[0].clone();
    let mut cmd = Command::new(&program);
    // The daemon's API tokens are not the job's: a command (or a log of its
    // environment) must not get the right to control the scheduler. A job
    // that needs one says so in its own `env`.
    cmd.env_remove(crate::daemon::run::READ_TOKEN_ENV)
        .env_remove(crate::daemon::run::ADMIN_TOKEN_ENV);
    cmd.args(&spec.argv[1..])
        .envs(&spec.env)
        .env("CRONACTOR_JOB_ID", ctx.job_id.as_str())
        .env("CRONACTOR_RUN_ID", ctx.run_id.to_string())
        .env("CRONACTOR_SCHEDULED", ctx.scheduled.to_rfc3339())
        .env("CRONACTOR_ATTEMPT", ctx.attempt.to_string())
        .env(
            "CRONACTOR_TRIGGER",
            crate::http::dto::variant_name(&ctx.trigger),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    // Set for this run, or unset: never one the daemon inherited (from
    // another daemon's command that started it, say).
    if let Some((name, payload)) = &ctx.event {
        cmd.env("CRONACTOR_EVENT", name)
            .env("CRONACTOR_EVENT_PAYLOAD", payload.to_string());
    } else {
        cmd.env_remove("CRONACTOR_EVENT")
            .env_remove("CRONACTOR_EVENT_PAYLOAD");
    }
    match ctx.last_result() {
        Some(last) => cmd.env("CRONACTOR_LAST_RESULT", last.to_string()),
        None => cmd.env_remove("CRONACTOR_LAST_RESULT"),
    };
    // Removed when dropped, whatever the outcome.
    let result_file = tempfile::Builder::new()
        .prefix("cronactor-result-")
        .tempfile()
        .map_err(|e| CommandError::Result(format!("cannot create the result file: {e}")))?;
    cmd.env("CRONACTOR_RESULT_FILE", result_file.path());
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|source| CommandError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pgid = child
        .id()
        .and_then(|id| libc::pid_t::try_from(id).ok())
        .unwrap_or(0);
    let guard = GroupGuard(pgid);
    tracing::debug!(job_id = %ctx.job_id, run_id = %ctx.run_id, pid = pgid, program = %program, "command started");

    let tail = Arc::new(Mutex::new(Tail::default()));
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(pump(out, "stdout", tail.clone(), ctx.clone())));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(pump(err, "stderr", tail.clone(), ctx.clone())));
    }

    let grace = Duration::from_millis(spec.kill_grace_ms);
    let outcome = tokio::select! {
        status = child.wait() => Ok(status),
        () = ctx.cancel.cancelled() => Err(stop_group(&mut child, pgid, grace).await),
    };
    // Whatever is left of the group goes with the main process.
    drop(guard);
    for reader in &mut readers {
        if tokio::time::timeout(DRAIN, &mut *reader).await.is_err() {
            reader.abort();
        }
    }
    let tail = tail.lock().unwrap_or_else(|e| e.into_inner()).text();
    match outcome {
        Ok(Ok(status)) if status.success() => keep_result(&ctx, result_file.path()),
        Ok(Ok(status)) => {
            let error = CommandError::Exit {
                status: describe(status),
                tail,
            };
            tracing::warn!(job_id = %ctx.job_id, run_id = %ctx.run_id, "command failed: {error}");
            Err(error)
        }
        Ok(Err(e)) => Err(CommandError::Spawn { program, source: e }),
        Err(signal) => {
            let error = CommandError::Stopped { signal, tail };
            tracing::warn!(job_id = %ctx.job_id, run_id = %ctx.run_id, "command stopped: {error}");
            Err(error)
        }
    }
}

/// Reads the result a command left in its result file: none if the file is
/// empty (or only whitespace), else the JSON in it, as the run's result.
fn keep_result(ctx: &JobContext, path: &std::path::Path) -> Result<(), CommandError> {
    use std::io::Read;
    let max = crate::MAX_RESULT_BYTES;
    let mut text = Vec::new();
    match std::fs::File::open(path) {
        // The command removed it: it leaves no result, as with an empty file.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        file => file
            .and_then(|f| f.take(max as u64 + 1).read_to_end(&mut text))
            .map_err(|e| CommandError::Result(format!("cannot read the result file: {e}")))?,
    };
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    if text.len() > max {
        return Err(CommandError::Result(format!(
            "the result file holds more than {max} bytes"
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| CommandError::Result(format!("the result file is not JSON: {e}")))?;
    ctx.set_result(value)
        .map_err(|e| CommandError::Result(e.to_string()))
}

/// SIGTERM to the group, then SIGKILL if anything of it is still there
/// after `grace`. Returns the last signal sent.
async fn stop_group(
    child: &mut tokio::process::Child,
    pgid: libc::pid_t,
    grace: Duration,
) -> &'static str {
    signal_group(pgid, libc::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    let mut leader_done = false;
    loop {
        if !leader_done {
            leader_done = matches!(child.try_wait(), Ok(Some(_)) | Err(_));
        }
        // The group is empty once the leader is reaped and no member is left.
        if leader_done && !signal_group(pgid, 0) {
            return "SIGTERM";
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal_group(pgid, libc::SIGKILL);
    let _ = child.wait().await;
    "SIGKILL"
}
