//! Runs `cronactor serve` as a child process for the daemon tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_cronactor");

/// A running daemon; killed with SIGKILL if dropped while running.
pub struct Daemon {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `cronactor serve` and waits for its "listening" line.
    pub fn start(config: &Path, store: &Path, log: &Path) -> Self {
        Self::start_with(config, store, log, &[])
    }

    /// Starts `cronactor serve` with more arguments.
    pub fn start_with(config: &Path, store: &Path, log: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(config, store, log, extra, &[])
    }

    /// Starts `cronactor serve` with more arguments and environment
    /// variables (set on top of an environment without tokens).
    pub fn start_with_env(
        config: &Path,
        store: &Path,
        log: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .arg("--store")
            .arg(store)
            .args(extra)
            .env("RUST_LOG", "info,cronactor=debug")
            .env_remove("CRONACTOR_ADMIN_TOKEN")
            .env_remove("CRONACTOR_READ_TOKEN")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("spawn the daemon");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!(
                    "the daemon did not start; its log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            });
        let addr = line
            .strip_prefix("cronactor: listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Self {
            child: Some(child),
            addr,
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: sends a signal to the daemon this test started.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) -> i32 {
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().expect("running");
        wait_exit(&mut child, Duration::from_secs(20))
    }

    /// Waits for the exit of a daemon already sent a stopping signal.
    pub fn stop_after_signal(mut self) -> i32 {
        let mut child = self.child.take().expect("running");
        wait_exit(&mut child, Duration::from_secs(20))
    }

    /// SIGKILL, and reaps it.
    pub fn kill9(mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Runs `cronactor serve` expecting it to refuse to start: its exit code
/// and its stderr. `env` is set on top of an environment without tokens.
pub fn serve_refused(
    config: &Path,
    store: &Path,
    listen: &str,
    env: &[(&str, &str)],
) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", listen, "--config"])
        .arg(config)
        .arg("--store")
        .arg(store)
        .env("RUST_LOG", "info")
        .env_remove("CRONACTOR_ADMIN_TOKEN")
        .env_remove("CRONACTOR_READ_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the daemon");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let code = wait_exit(&mut child, Duration::from_secs(20));
    (code, reader.join().unwrap_or_default())
}

fn wait_exit(child: &mut Child, within: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > within {
            let _ = child.kill();
            panic!("the daemon did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            // The state follows the parenthesized command name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
    }
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `within`.
pub async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < within,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
