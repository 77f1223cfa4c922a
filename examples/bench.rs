//! The project's benchmark binary: one workload per subcommand, one JSON line
//! per run on stdout (`soak` also prints one line per interval, with the RSS
//! at its end and the lowest and highest of a reading every 500 ms). Field names
//! follow `peerbench` where they apply; `docs/performance.md` defines every
//! figure and lists the commands behind the published table.
//!
//! ```text
//! cargo run --release --example bench -- <workload> [options]
//!   fire      --jobs N --seconds S [--grace G] [--threads T] [--store DIR]
//!             [--cache-mib M] [--trim 0|1] [--fold-ms F] [--concurrency K]
//!             [--fire-ahead-ms F] [--history-keep H] [--pin-workers]
//!             [--log FILTER] [--warmup-s W]
//!   register  --jobs N [--threads T] [--store DIR] [--concurrency K]
//!   recover   --jobs N --store DIR [--prepare] [--threads T] [--concurrency K]
//!   persist   --jobs N --seconds S --store DIR [--every-ms M] [--threads T]
//!             [--concurrency K]
//!   soak      [--jobs N] [--seconds S] [--interval-s I] [--threads T] [--store DIR]
//!             [--cache-mib M] [--trim 0|1] [--fold-ms F] [--concurrency K]
//!             [--history-keep H] [--fire-ahead-ms F] [--pin-workers]
//!   next-fire [--iters N]
//!   passivate --jobs N --seconds S [--settle-s W] [--spread-s P] [--lead-s L]
//!             [--passivate-after-ms A] [--wake-lead-ms K] [--threads T] [--concurrency K]
//! ```
//!
//! Jobs are added one after another (sequential awaits) unless
//! `--concurrency K` keeps up to K adds in flight, which lets a durable store
//! commit many adds per flush.
//!
//! Every workload runs the scheduler on a tokio multi-thread runtime with
//! `--threads` workers (default 2), driven from the main thread with
//! `block_on`, as a `#[tokio::main]` service would. `--store DIR` uses the
//! sled store in `DIR` (emptied first, except by the measured restart of
//! `recover`; `recover --prepare`, or a `recover` whose store does not hold
//! the N jobs, empties and fills it first); without it the scheduler keeps
//! everything in memory. `fire --pin-workers` keeps worker
//! `i` on the `i`-th CPU the process may use (see docs/operations.md: at
//! the start of a burst the kernel may otherwise run both workers on one
//! CPU for tens of milliseconds). `fire --log FILTER` installs a
//! `tracing_subscriber::fmt` subscriber on stderr with that filter (for
//! example `info`): what a service that logs pays per fire. `fire
//! --warmup-s W` lets the jobs fire for W seconds before the window opens,
//! so that the window measures a running scheduler (on sled: past the first
//! fold, which writes every new job's spec, state and first history chunk)
//! rather than the seconds right after registration.
//!
//! `fire` also reports how long the calls of a service's own thread take
//! while the jobs fire: `add_us_p99` and `add_us_max` over the sequential
//! adds of the registration, and `control_us_p50`, `control_us_p99` and
//! `control_us_max` over a `pause` then a `resume` of one more job (whose
//! fires are not credited), every 100 ms of the window, from a thread
//! outside the runtime. And each window second's lateness p99
//! (`lateness_us_p99_by_second`, the first 60 seconds, two significant
//! digits) with their median (`lateness_us_p99_second_median`).

use chrono::{DateTime, Utc};
use cronactor::schedule::{Schedule, ScheduleSpec};
use cronactor::{JobContext, JobSpec, Scheduler, SchedulerBuilder};
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// The `register` and `recover` workloads cycle through these: peerbench's
/// ten expressions (6 fields, seconds first, UTC).
const REGISTER_EXPRS: [&str; 10] = [
    "0 */5 * * * *",
    "15 30 2 * * Mon-Fri",
    "0 0 * * * *",
    "*/10 * * * * *",
    "0 15 6,8,10 * Mar,Jun *",
    "30 0 0 1 * *",
    "0 0 12 * * Sun",
    "5-10 * * * * *",
    "0 30 9-17 * * Mon-Fri",
    "0 0 0 1 1 *",
];

/// Every job of `fire` and `soak`: every second, on the second.
const FIRE_EXPR: &str = "* * * * * *";

const WORKLOADS: &str = "fire, register, recover, persist, soak, next-fire, passivate";

/// Built with `--features mimalloc`, the bench runs on mimalloc instead of
/// the C library's `malloc` (the JSON lines say which, as `allocator`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator this binary was built with.
const ALLOCATOR: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "system"
};

/// When `main` started: `recover` measures from here.
static PROCESS_START: OnceLock<Instant> = OnceLock::new();

fn main() -> ExitCode {
    PROCESS_START.get_or_init(Instant::now);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = run(&args, &mut |line| println!("{line}"));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            eprintln!("usage: bench <workload> [options]; workloads: {WORKLOADS}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one workload; every JSON line goes to `emit`.
pub fn run(args: &[String], emit: &mut dyn FnMut(String)) -> Result<(), String> {
    let Some(workload) = args.first() else {
        return Err("no workload given".into());
    };
    let opts = Opts::parse(&args[1..])?;
    match workload.as_str() {
        "fire" => fire(opts, emit),
        "register" => register(opts, emit),
        "recover" => recover(opts, emit),
        "persist" => persist(opts, emit),
        "soak" => soak(opts, emit),
        "next-fire" => next_fire(opts, emit),
        "passivate" => passivate(opts, emit),
        other => Err(format!("unknown workload {other:?}")),
    }
}

// ---------------------------------------------------------------------------
// Options

/// `--name value` pairs; each workload takes the ones it knows and rejects
/// the rest.
struct Opts {
    values: HashMap<String, String>,
    flags: Vec<String>,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut values = HashMap::new();
        let mut flags = Vec::new();
        let mut it = args.iter().peekable();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument {a:?}"));
            };
            match it.peek() {
                Some(v) if !v.starts_with("--") => {
                    values.insert(name.to_string(), it.next().cloned().unwrap_or_default());
                }
                _ => flags.push(name.to_string()),
            }
        }
        Ok(Self { values, flags })
    }

    /// Fails on options the workload does not take.
    fn only(&self, known: &[&str]) -> Result<(), String> {
        for name in self.values.keys().chain(&self.flags) {
            if !known.contains(&name.as_str()) {
                return Err(format!(
                    "unknown option --{name}; this workload takes {}",
                    known
                        .iter()
                        .map(|k| format!("--{k}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
        }
        Ok(())
    }

    fn num(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.values.get(name) {
            None => Ok(default),
            Some(v) => v
                .replace('_', "")
                .parse()
                .map_err(|_| format!("--{name} needs a whole number, got {v:?}")),
        }
    }

    fn path(&self, name: &str) -> Option<PathBuf> {
        self.values.get(name).map(PathBuf::from)
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}

// ---------------------------------------------------------------------------
// Process figures

#[derive(Clone, Copy, Debug)]
struct Usage {
    user_s: f64,
    sys_s: f64,
    max_rss_mib: f64,
}

/// `getrusage(RUSAGE_SELF)`: CPU of every thread of the process, and its peak
/// resident set size.
fn usage() -> Usage {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Usage {
        user_s: secs(ru.ru_utime),
        sys_s: secs(ru.ru_stime),
        max_rss_mib: ru.ru_maxrss as f64 / 1024.0, // KiB on Linux
    }
}

/// The resident set size now (VmRSS), MiB.
fn rss_now_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// The lowest and highest RSS read by a background thread since the last
/// [`take`](RssRange::take).
struct RssRange {
    range: Arc<Mutex<(f64, f64)>>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl RssRange {
    fn start(every: Duration) -> Self {
        let range = Arc::new(Mutex::new((f64::INFINITY, 0.0_f64)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (range, stop) = (range.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    let rss = rss_now_mib();
                    let mut r = range.lock().unwrap();
                    *r = (r.0.min(rss), r.1.max(rss));
                    drop(r);
                    std::thread::sleep(every);
                }
            }
        });
        Self {
            range,
            stop,
            thread,
        }
    }

    /// The range since the last call, `last` (a reading now) included; then
    /// starts anew.
    fn take(&self, last: f64) -> (f64, f64) {
        let mut r = self.range.lock().unwrap();
        let out = (r.0.min(last), r.1.max(last));
        *r = (f64::INFINITY, 0.0);
        out
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// The C allocator's view of the heap, MiB: (in use, free but held).
/// glibc's `malloc` only (`mallinfo2`); elsewhere, and on mimalloc, `None`.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
fn heap_mib() -> Option<(f64, f64)> {
    // SAFETY: `mallinfo2` only reads glibc's arenas under their locks.
    let m = unsafe { libc::mallinfo2() };
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    Some((mib(m.uordblks + m.hblkhd), mib(m.fordblks)))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"))))]
fn heap_mib() -> Option<(f64, f64)> {
    None
}

fn now_unix_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Sleeps the calling OS thread (not a tokio task) until a wall-clock
/// instant, so that a saturated runtime cannot stretch the window.
fn sleep_until_unix_us(t_us: i64) {
    loop {
        let wait = t_us - now_unix_us();
        if wait <= 0 {
            return;
        }
        std::thread::sleep(Duration::from_micros(wait as u64));
    }
}

// ---------------------------------------------------------------------------
// JSON lines

/// One flat JSON object, fields in insertion order.
#[derive(Default)]
struct Json(Vec<(&'static str, String)>);

impl Json {
    fn str(&mut self, k: &'static str, v: &str) -> &mut Self {
        let quoted = serde_json::to_string(v).unwrap_or_else(|_| "null".into());
        self.0.push((k, quoted));
        self
    }
    /// A value already in JSON.
    fn raw(&mut self, k: &'static str, v: String) -> &mut Self {
        self.0.push((k, v));
        self
    }
    fn int(&mut self, k: &'static str, v: u64) -> &mut Self {
        self.0.push((k, v.to_string()));
        self
    }
    fn num(&mut self, k: &'static str, v: f64, decimals: usize) -> &mut Self {
        let s = if v.is_finite() {
            format!("{v:.decimals$}")
        } else {
            "null".into()
        };
        self.0.push((k, s));
        self
    }
    fn opt_int(&mut self, k: &'static str, v: Option<u64>) -> &mut Self {
        match v {
            Some(v) => self.int(k, v),
            None => {
                self.0.push((k, "null".into()));
                self
            }
        }
    }
    /// The line, ending with the allocator the binary was built with.
    fn render(&self) -> String {
        let mut out = String::from("{");
        for (k, v) in &self.0 {
            let _ = write!(out, "\"{k}\": {v}, ");
        }
        let _ = write!(out, "\"allocator\": \"{ALLOCATOR}\"}}");
        out
    }
}

// ---------------------------------------------------------------------------
// The probe: what every job body of `fire` and `soak` does

/// A fire this much before its whole second still counts for that second.
const EARLY_TOL_US: i64 = 10_000;
/// The window starts at the first whole second at least this long after arming.
const ARM_MARGIN_US: i64 = 100_000;
const NOT_ARMED: i64 = i64::MIN;
const HIST_MAX_US: u64 = 3_600_000_000;
const SHARDS: usize = 16;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("static histogram bounds")
}

/// Window seconds whose lateness `fire` also reports second by second.
const BY_SECOND_MAX: usize = 60;
/// The largest lateness a second's histogram tells apart (larger ones
/// count as this): a minute.
const SECOND_HIST_MAX_US: u64 = 60_000_000;

/// A second's lateness: two significant digits (1 %), about 10 KB.
fn second_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, SECOND_HIST_MAX_US, 2).expect("static histogram bounds")
}

/// Adds the seconds of `from` to `into`.
fn merge_by_second(into: &mut Vec<Option<Histogram<u32>>>, from: &[Option<Histogram<u32>>]) {
    if into.len() < from.len() {
        into.resize_with(from.len(), || None);
    }
    for (i, h) in from.iter().enumerate() {
        if let Some(h) = h {
            let _ = into[i].get_or_insert_with(second_histogram).add(h);
        }
    }
}

/// peerbench's probe, with the same crediting rules: a fire at wall time `t`
/// serves every not-yet-served whole second up to `floor(t + 10 ms)`, and its
/// lateness is measured from the oldest second it serves; a second fire in
/// the same second is a duplicate. Fires are credited from the window's first
/// second until `grace` seconds after its end.
struct Probe {
    last_served: Box<[AtomicI64]>,
    w0: AtomicI64,
    w_last: AtomicI64,
    deadline_us: AtomicI64,
    closed: AtomicBool,
    shards: Vec<Mutex<Shard>>,
}

struct Shard {
    hist: Histogram<u64>,
    /// Lateness by window second (`fire`'s first [`BY_SECOND_MAX`] seconds),
    /// made at the first fire credited to each second.
    by_second: Vec<Option<Histogram<u32>>>,
    fires: u64,
    dups: u64,
    early: u64,
    calls: u64,
}

impl Shard {
    fn new() -> Self {
        Self {
            hist: histogram(),
            by_second: Vec::new(),
            fires: 0,
            dups: 0,
            early: 0,
            calls: 0,
        }
    }
}

/// Fires credited since the last `take`, merged over the shards.
struct Taken {
    hist: Histogram<u64>,
    /// By window second, as [`Shard::by_second`].
    by_second: Vec<Option<Histogram<u32>>>,
    fires: u64,
    dups: u64,
    early: u64,
    calls: u64,
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

impl Probe {
    fn new(jobs: usize) -> Self {
        Self {
            last_served: (0..jobs).map(|_| AtomicI64::new(NOT_ARMED)).collect(),
            w0: AtomicI64::new(NOT_ARMED),
            w_last: AtomicI64::new(NOT_ARMED),
            deadline_us: AtomicI64::new(NOT_ARMED),
            closed: AtomicBool::new(false),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
        }
    }

    fn shard(&self) -> std::sync::MutexGuard<'_, Shard> {
        let i = SHARD.with(|s| *s);
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The job body: one fire of job `job`, now.
    fn fire(&self, job: usize) {
        let now_us = now_unix_us();
        let w0 = self.w0.load(Ordering::Acquire);
        let b = (now_us + EARLY_TOL_US).div_euclid(1_000_000);
        if w0 == NOT_ARMED
            || self.closed.load(Ordering::Relaxed)
            || b < w0
            || now_us > self.deadline_us.load(Ordering::Relaxed)
            || job >= self.last_served.len()
        {
            self.shard().calls += 1;
            return;
        }
        let prev = self.last_served[job].fetch_max(b, Ordering::AcqRel);
        let w_last = self.w_last.load(Ordering::Relaxed);
        let mut s = self.shard();
        s.calls += 1;
        if prev >= b {
            s.dups += 1;
            return;
        }
        let oldest = prev + 1;
        if oldest > w_last {
            return; // serves only seconds after the window
        }
        s.fires += 1;
        let late = now_us - oldest * 1_000_000;
        if late < 0 {
            s.early += 1;
        }
        let late = late.max(0) as u64;
        s.hist.saturating_record(late);
        let second = (oldest - w0) as usize;
        if second < BY_SECOND_MAX {
            if s.by_second.len() <= second {
                s.by_second.resize_with(second + 1, || None);
            }
            s.by_second[second]
                .get_or_insert_with(second_histogram)
                .saturating_record(late);
        }
    }

    /// Opens a window of `seconds` seconds, credited until `grace` seconds
    /// after its end; returns its first second (unix s).
    fn arm(&self, seconds: i64, grace: i64) -> i64 {
        let w0 = (now_unix_us() + ARM_MARGIN_US).div_euclid(1_000_000) + 1;
        for slot in self.last_served.iter() {
            slot.store(w0 - 1, Ordering::Relaxed);
        }
        self.w_last.store(w0 + seconds - 1, Ordering::Relaxed);
        self.deadline_us
            .store((w0 + seconds + grace) * 1_000_000, Ordering::Relaxed);
        self.w0.store(w0, Ordering::Release);
        w0
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Takes (and resets) the fires credited so far.
    fn take(&self) -> Taken {
        let mut t = Taken {
            hist: histogram(),
            by_second: Vec::new(),
            fires: 0,
            dups: 0,
            early: 0,
            calls: 0,
        };
        for shard in &self.shards {
            let mut s = shard.lock().unwrap_or_else(|e| e.into_inner());
            let _ = t.hist.add(&s.hist);
            merge_by_second(&mut t.by_second, &s.by_second);
            t.fires += s.fires;
            t.dups += s.dups;
            t.early += s.early;
            t.calls += s.calls;
            *s = Shard::new();
        }
        t
    }

    /// Window seconds served by some credited fire, and jobs never served.
    fn served(&self) -> (u64, u64) {
        let w0 = self.w0.load(Ordering::Acquire);
        if w0 == NOT_ARMED {
            return (0, self.last_served.len() as u64);
        }
        let w_last = self.w_last.load(Ordering::Relaxed);
        let (mut served, mut starved) = (0u64, 0u64);
        for slot in self.last_served.iter() {
            let n = slot.load(Ordering::Acquire).min(w_last) - (w0 - 1);
            served += n.max(0) as u64;
            starved += u64::from(n <= 0);
        }
        (served, starved)
    }
}

fn lateness(j: &mut Json, hist: &Histogram<u64>) {
    j.opt_int("lateness_us_p50", quantile(hist, 0.50))
        .opt_int("lateness_us_p99", quantile(hist, 0.99))
        .opt_int("lateness_us_max", quantile(hist, 1.0));
}

/// Each window second's lateness p99 (null for a second nothing served:
/// its histogram is made by its first fire), and their median: a run's p99
/// is decided by its slowest seconds, the median by a typical one.
fn lateness_by_second(j: &mut Json, by_second: &[Option<Histogram<u32>>]) {
    let p99: Vec<Option<u64>> = by_second
        .iter()
        .map(|h| h.as_ref().map(|h| h.value_at_quantile(0.99)))
        .collect();
    let mut known: Vec<u64> = p99.iter().flatten().copied().collect();
    known.sort_unstable();
    let list = p99
        .iter()
        .map(|v| v.map_or_else(|| "null".to_string(), |v| v.to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    j.raw("lateness_us_p99_by_second", format!("[{list}]"))
        .opt_int(
            "lateness_us_p99_second_median",
            known.get(known.len() / 2).copied(),
        );
}

/// The value at quantile `q` of `hist` (its maximum at 1.0); none if empty.
fn quantile(hist: &Histogram<u64>, q: f64) -> Option<u64> {
    (!hist.is_empty()).then(|| match q >= 1.0 {
        true => hist.max(),
        false => hist.value_at_quantile(q),
    })
}

// ---------------------------------------------------------------------------
// The scheduler under test

fn runtime(opts: &Opts) -> Result<tokio::runtime::Runtime, String> {
    let threads = opts.num("threads", 2)?.max(1) as usize;
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(threads).enable_all();
    if opts.flag("pin-workers") {
        // Worker `i` on the `i`-th CPU the process may use.
        cronactor::runtime::pin_workers(&mut b, threads)
            .map_err(|e| format!("--pin-workers: {e}"))?;
    }
    b.build().map_err(|e| format!("tokio runtime: {e}"))
}

/// `--fire-ahead-ms F`, or `None` for the runtime's own default (500 ms
/// with the sled store; in memory 500 ms up to
/// `cronactor::FIRE_AHEAD_LIVE_JOBS` live jobs, off above).
fn fire_ahead_opt(opts: &Opts) -> Result<Option<Duration>, String> {
    Ok(match opts.values.contains_key("fire-ahead-ms") {
        true => Some(Duration::from_millis(opts.num("fire-ahead-ms", 0)?)),
        false => None,
    })
}

/// The fire-ahead window in effect for `jobs` live jobs, for the JSON line
/// (`fire_ahead_ms`).
fn fire_ahead_in_effect(fire_ahead: Option<Duration>, durable: bool, jobs: usize) -> Duration {
    cronactor::RuntimeConfig {
        fire_ahead,
        ..cronactor::RuntimeConfig::default()
    }
    .fire_ahead_for(durable, jobs)
}

/// Empties `dir` (unless `keep`) and uses the sled store in it.
fn sled_builder(
    builder: SchedulerBuilder,
    dir: &std::path::Path,
    keep: bool,
) -> Result<SchedulerBuilder, String> {
    if !keep {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot empty {}: {e}", dir.display())),
        }
    }
    Ok(builder.store_path(dir))
}

/// The store's default page cache, in MiB (reported in the JSON line when
/// `--cache-mib` is not given).
const DEFAULT_CACHE_MIB: u64 =
    cronactor::store::SledStoreOptions::DEFAULT_CACHE_CAPACITY / (1024 * 1024);

/// The store's default fold interval, in milliseconds (reported when
/// `--fold-ms` is not given).
const DEFAULT_FOLD_MS: u64 =
    cronactor::store::SledStoreOptions::DEFAULT_FOLD_INTERVAL.as_millis() as u64;

/// The sled store's settings of `fire` and `soak`, read once: sled's page
/// cache (`--cache-mib`), the trim after each fold (`--trim 0` turns it
/// off) and the fold interval (`--fold-ms`); the store's defaults
/// otherwise.
struct StoreSettings {
    cache_mib: u64,
    trim: bool,
    fold_ms: u64,
}

impl StoreSettings {
    fn read(opts: &Opts) -> Result<Self, String> {
        Ok(Self {
            cache_mib: opts.num("cache-mib", DEFAULT_CACHE_MIB)?,
            trim: opts.num("trim", 1)? != 0,
            fold_ms: opts.num("fold-ms", DEFAULT_FOLD_MS)?,
        })
    }

    /// The store's options.
    fn options(&self) -> cronactor::store::SledStoreOptions {
        cronactor::store::SledStoreOptions::default()
            .cache_capacity(self.cache_mib * 1024 * 1024)
            .trim_after_fold(self.trim)
            .fold_interval(Duration::from_millis(self.fold_ms))
    }

    /// The settings in the JSON line; null in memory (`durable` false).
    fn report(&self, j: &mut Json, durable: bool) {
        let on = durable.then_some(self);
        j.opt_int("cache_mib", on.map(|s| s.cache_mib))
            .opt_int("trim", on.map(|s| u64::from(s.trim)))
            .opt_int("fold_ms", on.map(|s| s.fold_ms));
    }
}

/// As [`sled_builder`] (emptying `dir`), with the store opened with
/// `settings`.
fn sled_builder_opts(
    builder: SchedulerBuilder,
    dir: &std::path::Path,
    settings: &StoreSettings,
) -> Result<SchedulerBuilder, String> {
    let builder = sled_builder(builder, dir, false)?;
    let store = cronactor::store::SledStore::open_with(dir, settings.options())
        .map_err(|e| e.to_string())?;
    Ok(builder.store(Arc::new(store)))
}

/// A scheduler with one handler, `probe`, that credits a fire of the job
/// whose index is its payload.
fn probe_builder(probe: &Arc<Probe>) -> SchedulerBuilder {
    let probe = probe.clone();
    Scheduler::builder().handler("probe", move |ctx: JobContext| {
        probe.fire(ctx.payload.as_u64().unwrap_or(u64::MAX) as usize);
        std::future::ready(Ok::<(), std::convert::Infallible>(()))
    })
}

fn noop_builder() -> SchedulerBuilder {
    Scheduler::builder().handler("noop", |_ctx: JobContext| {
        std::future::ready(Ok::<(), std::convert::Infallible>(()))
    })
}

fn spec(i: usize, expr: &str, handler: &str) -> Result<JobSpec, String> {
    JobSpec::builder(
        format!("job-{i:07}"),
        cronactor::ScheduleSpec::cron(expr),
        handler,
    )
    .payload(serde_json::json!(i))
    .build()
    .map_err(|e| e.to_string())
}

/// Every [`CONTROL_EVERY`] until `until_us` (unix µs), pauses then resumes
/// the job `id` from a thread outside the runtime, as a service's own
/// thread would, and records how long each call took, in microseconds. A
/// pair of calls that takes longer than the interval delays the next pair
/// (no catching up); the last pair starts before `until_us`.
fn control_probe(
    rt: &tokio::runtime::Handle,
    s: &Scheduler,
    id: &str,
    until_us: i64,
) -> Result<Histogram<u64>, String> {
    let mut took = histogram();
    let every_us = CONTROL_EVERY.as_micros() as i64;
    let mut next_us = now_unix_us();
    while next_us < until_us {
        sleep_until_unix_us(next_us);
        for pause in [true, false] {
            let t = Instant::now();
            let done = match pause {
                true => rt.block_on(s.pause(id, None)),
                false => rt.block_on(s.resume(id, None)),
            };
            done.map_err(|e| format!("control probe on {id}: {e}"))?;
            took.saturating_record(t.elapsed().as_micros() as u64);
        }
        next_us = (next_us + every_us).max(now_unix_us());
    }
    Ok(took)
}

/// How often the control probe pauses and resumes its job in the `fire`
/// window.
const CONTROL_EVERY: Duration = Duration::from_millis(100);

/// Adds `n` jobs: one after another (sequential awaits, `concurrency` 1),
/// as a service registering its jobs at boot would, or with up to
/// `concurrency` adds in flight (a durable store then commits many adds per
/// flush). Returns how long each sequential `add` took, in microseconds
/// (empty with adds in flight).
async fn add_jobs(
    s: &Scheduler,
    n: usize,
    concurrency: usize,
    make: impl Fn(usize) -> Result<JobSpec, String>,
) -> Result<Histogram<u64>, String> {
    let mut took = histogram();
    if concurrency <= 1 {
        for i in 0..n {
            let spec = make(i)?;
            let t = Instant::now();
            s.add(spec).await.map_err(|e| format!("add job {i}: {e}"))?;
            took.saturating_record(t.elapsed().as_micros() as u64);
        }
        return Ok(took);
    }
    use futures::StreamExt;
    let specs = (0..n).map(|i| make(i).map(|spec| (i, spec)));
    let mut adds = futures::stream::iter(specs)
        .map(|made| async move {
            let (i, spec) = made?;
            s.add(spec).await.map_err(|e| format!("add job {i}: {e}"))
        })
        .buffer_unordered(concurrency);
    while let Some(added) = adds.next().await {
        added?;
    }
    Ok(took)
}

fn shutdown(rt: &tokio::runtime::Runtime, s: &Scheduler) -> f64 {
    let t = Instant::now();
    let r = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), s.shutdown(Duration::from_secs(5))).await
    });
    if !matches!(r, Ok(Ok(_))) {
        eprintln!("bench: warning: the scheduler did not shut down cleanly");
    }
    t.elapsed().as_secs_f64() * 1e3
}

fn store_name(dir: &Option<PathBuf>) -> &'static str {
    if dir.is_some() {
        "sled"
    } else {
        "memory"
    }
}

// ---------------------------------------------------------------------------
// fire

/// N every-second jobs; S whole seconds measured after registration (and
/// `--warmup-s` seconds more).
fn fire(opts: Opts, emit: &mut dyn FnMut(String)) -> Result<(), String> {
    opts.only(&[
        "jobs",
        "seconds",
        "grace",
        "warmup-s",
        "threads",
        "store",
        "concurrency",
        "fire-ahead-ms",
        "history-keep",
        "cache-mib",
        "trim",
        "fold-ms",
        "pin-workers",
        "log",
    ])?;
    let log = opts.values.get("log").cloned();
    if let Some(filter) = &log {
        // What a service that logs pays: a subscriber at this level on
        // stderr (every run opens an `info` span with its job and run ids).
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init()
            .map_err(|e| format!("--log {filter}: {e}"))?;
    }
    let concurrency = opts.num("concurrency", 1)?.max(1) as usize;
    let history_keep = opts.num("history-keep", 100)? as usize;
    let fire_ahead = fire_ahead_opt(&opts)?;
    let jobs = opts.num("jobs", 1000)? as usize;
    let seconds = opts.num("seconds", 10)?;
    let grace = opts.num("grace", 2)?;
    let warmup = opts.num("warmup-s", 0)?;
    let dir = opts.path("store");
    let settings = StoreSettings::read(&opts)?;
    let started = Instant::now();
    let rss_base = rss_now_mib();
    let probe = Arc::new(Probe::new(jobs));
    let rt = runtime(&opts)?;

    let t0 = Instant::now();
    let (s, adds) = rt.block_on(async {
        let mut b = probe_builder(&probe).configure(|c| {
            c.fire_ahead = fire_ahead;
            c.history_keep = history_keep;
        });
        if let Some(dir) = &dir {
            b = sled_builder_opts(b, dir, &settings)?;
        }
        let s = b.start().await.map_err(|e| e.to_string())?;
        let adds = add_jobs(&s, jobs, concurrency, |i| spec(i, FIRE_EXPR, "probe")).await?;
        Ok::<_, String>((s, adds))
    })?;
    let register_ms = t0.elapsed().as_secs_f64() * 1e3;
    let rss_after_register = rss_now_mib();
    // The control probe's job fires with the others; the probe does not
    // credit its fires (its index is past the jobs').
    let control_id = format!("job-{jobs:07}");
    rt.block_on(s.add(spec(jobs, FIRE_EXPR, "probe")?))
        .map_err(|e| format!("add the control job: {e}"))?;
    // Fires before the window are neither credited nor timed: the window
    // then measures a running state (the first folds done, history
    // filling or full) instead of the seconds right after registration.
    std::thread::sleep(Duration::from_secs(warmup));

    let w0 = probe.arm(seconds as i64, grace as i64);
    let w_end_us = (w0 + seconds as i64) * 1_000_000;
    sleep_until_unix_us(w0 * 1_000_000);
    let u0 = usage();
    // The probe runs on its own thread, so that a slow call cannot stretch
    // the window's CPU reading.
    let control = std::thread::scope(|scope| {
        let probing = scope.spawn(|| control_probe(rt.handle(), &s, &control_id, w_end_us));
        sleep_until_unix_us(w_end_us);
        let u1 = usage();
        probing
            .join()
            .map_err(|_| "the control probe panicked".to_string())?
            .map(|control| (control, u1))
    });
    let (control, u1) = control?;
    sleep_until_unix_us(w_end_us + grace as i64 * 1_000_000);
    probe.close();
    let u_end = usage();
    let taken = probe.take();
    let (served, starved) = probe.served();
    let metrics = rt.block_on(s.metrics()).ok();
    shutdown(&rt, &s);

    let expected = jobs as u64 * seconds;
    let mut j = Json::default();
    j.str("workload", "fire")
        .str("system", "cronactor")
        .str("store", store_name(&dir));
    settings.report(&mut j, dir.is_some());
    j.int("history_keep", history_keep as u64)
        .int("jobs", jobs as u64)
        .int("concurrency", concurrency as u64)
        .int("seconds", seconds)
        .int("warmup_s", warmup)
        .num("register_ms", register_ms, 1)
        .opt_int("add_us_p99", quantile(&adds, 0.99))
        .opt_int("add_us_max", quantile(&adds, 1.0))
        .int("fires", taken.fires)
        .int("expected_fires", expected)
        .num(
            "missed_pct",
            if expected > 0 {
                100.0 * expected.saturating_sub(taken.fires) as f64 / expected as f64
            } else {
                0.0
            },
            3,
        );
    lateness(&mut j, &taken.hist);
    lateness_by_second(&mut j, &taken.by_second);
    j.num("cpu_user_s", u_end.user_s, 3)
        .num("cpu_sys_s", u_end.sys_s, 3)
        .num("max_rss_mib", u_end.max_rss_mib, 1)
        .num("window_cpu_user_s", u1.user_s - u0.user_s, 3)
        .num("window_cpu_sys_s", u1.sys_s - u0.sys_s, 3)
        .int("control_calls", control.len())
        .opt_int("control_us_p50", quantile(&control, 0.50))
        .opt_int("control_us_p99", quantile(&control, 0.99))
        .opt_int("control_us_max", quantile(&control, 1.0))
        .int("missed_coalesced", served.saturating_sub(taken.fires))
        .int("missed_unserved", expected.saturating_sub(served))
        .int("jobs_starved", starved)
        .int("dup_fires", taken.dups)
        .int("early_fires", taken.early)
        .int("body_calls", taken.calls)
        .num("rss_base_mib", rss_base, 1)
        .num("rss_after_register_mib", rss_after_register, 1)
        .num(
            "bytes_per_job",
            (rss_after_register - rss_base) * 1048576.0 / jobs.max(1) as f64,
            0,
        )
        .opt_int(
            "sched_lateness_us_p99",
            metrics.as_ref().map(|m| m.lateness.p99_us),
        )
        .int("grace_s", grace)
        .int(
            "fire_ahead_ms",
            // The jobs and the control probe's.
            fire_ahead_in_effect(fire_ahead, dir.is_some(), jobs + 1).as_millis() as u64,
        )
        .int("window_start_unix", w0 as u64)
        .int("threads", opts.num("threads", 2)?)
        .int("pin_workers", u64::from(opts.flag("pin-workers")))
        .str("log", log.as_deref().unwrap_or("none"))
        .num("wall_s", started.elapsed().as_secs_f64(), 2);
    emit(j.render());
    Ok(())
}

// ---------------------------------------------------------------------------
// register

/// N jobs on peerbench's ten varied expressions: time and memory per job.
fn register(opts: Opts, emit: &mut dyn FnMut(String)) -> Result<(), String> {
    opts.only(&["jobs", "threads", "store", "concurrency"])?;
    let concurrency = opts.num("concurrency", 1)?.max(1) as usize;
    let jobs = opts.num("jobs", 1000)? as usize;
    let dir = opts.path("store");
    let started = Instant::now();
    let rss_base = rss_now_mib();
    let rt = runtime(&opts)?;
    let t0 = Instant::now();
    let s = rt.block_on(async {
        let mut b = noop_builder();
        if let Some(dir) = &dir {
            b = sled_builder(b, dir, false)?;
        }
        let s = b.start().await.map_err(|e| e.to_string())?;
        add_jobs(&s, jobs, concurrency, |i| {
            spec(i, REGISTER_EXPRS[i % REGISTER_EXPRS.len()], "noop")
        })
        .await?;
        Ok::<_, String>(s)
    })?;
    let register_ms = t0.elapsed().as_secs_f64() * 1e3;
    let rss_after = rss_now_mib();
    let u = usage();
    shutdown(&rt, &s);
    let mut j = Json::default();
    j.str("workload", "register")
        .str("system", "cronactor")
        .str("store", store_name(&dir))
        .int("jobs", jobs as u64)
        .int("concurrency", concurrency as u64)
        .num("register_ms", register_ms, 1)
        .num(
            "register_us_per_job",
            register_ms * 1e3 / jobs.max(1) as f64,
            2,
        )
        .num("cpu_user_s", u.user_s, 3)
        .num("cpu_sys_s", u.sys_s, 3)
        .num("max_rss_mib", u.max_rss_mib, 1)
        .num("rss_base_mib", rss_base, 1)
        .num("rss_after_register_mib", rss_after, 1)
        .num(
            "bytes_per_job",
            (rss_after - rss_base) * 1048576.0 / jobs.max(1) as f64,
            0,
        )
        .int("threads", opts.num("threads", 2)?)
        .num("wall_s", started.elapsed().as_secs_f64(), 2);
    emit(j.render());
    Ok(())
}

// ---------------------------------------------------------------------------
// recover

/// N persisted jobs: the time from process start until the restarted
/// scheduler has every job scheduled (`start` returned, which spawns every
/// job actor and arms its timer, and `list` shows N jobs, each with its next
/// fire). With `--prepare` it only writes the N jobs to the store and exits;
/// without, it prepares the store first if it does not hold N jobs, then
/// measures in the same process.
fn recover(opts: Opts, emit: &mut dyn FnMut(String)) -> Result<(), String> {
    opts.only(&["jobs", "store", "prepare", "threads", "concurrency"])?;
    let concurrency = opts.num("concurrency", 1)?.max(1) as usize;
    let jobs = opts.num("jobs", 1000)? as usize;
    let dir = opts.path("store").ok_or("recover needs --store DIR")?;
    let process_start = *PROCESS_START.get_or_init(Instant::now);
    let rt = runtime(&opts)?;
    let prepare = |rt: &tokio::runtime::Runtime| -> Result<f64, String> {
        let t = Instant::now();
        let s = rt.block_on(async {
            let s = sled_builder(noop_builder(), &dir, false)?
                .start()
                .await
                .map_err(|e| e.to_string())?;
            add_jobs(&s, jobs, concurrency, |i| {
                spec(i, REGISTER_EXPRS[i % REGISTER_EXPRS.len()], "noop")
            })
            .await?;
            Ok::<_, String>(s)
        })?;
        shutdown(rt, &s);
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    if opts.flag("prepare") {
        let ms = prepare(&rt)?;
        let mut j = Json::default();
        j.str("workload", "recover-prepare")
            .str("store", "sled")
            .int("jobs", jobs as u64)
            .int("concurrency", concurrency as u64)
            .num("prepare_ms", ms, 1);
        emit(j.render());
        return Ok(());
    }
    let mut prepared_here = false;
    let measure = |rt: &tokio::runtime::Runtime, from: Instant| {
        let rss_base = rss_now_mib();
        let t_start = Instant::now();
        rt.block_on(async {
            let s = sled_builder(noop_builder(), &dir, true)?
                .start()
                .await
                .map_err(|e| e.to_string())?;
            let started_ms = from.elapsed().as_secs_f64() * 1e3;
            let start_call_ms = t_start.elapsed().as_secs_f64() * 1e3;
            let list = s.list().await.map_err(|e| e.to_string())?;
            let scheduled = list
                .iter()
                .filter(|st| st.next_fire.is_some() && st.failure.is_none())
                .count();
            let all_ms = from.elapsed().as_secs_f64() * 1e3;
            Ok::<_, String>((s, list.len(), scheduled, started_ms, start_call_ms, all_ms))
        })
        .map(|r| (r, rss_base))
    };
    let ((s, listed, scheduled, started_ms, start_call_ms, all_ms), rss_base) =
        match measure(&rt, process_start) {
            Ok(r) if r.0 .1 == jobs => r,
            other => {
                // Not prepared (or prepared for another N): prepare, then
                // measure from the restart rather than from process start.
                if let Ok(((s, ..), _)) = other {
                    shutdown(&rt, &s);
                }
                prepare(&rt)?;
                prepared_here = true;
                measure(&rt, Instant::now())?
            }
        };
    let rss = rss_now_mib();
    let u = usage();
    shutdown(&rt, &s);
    if listed != jobs || scheduled != jobs {
        return Err(format!(
            "recovered {listed} jobs, {scheduled} scheduled; expected {jobs}"
        ));
    }
    let mut j = Json::default();
    j.str("workload", "recover")
        .str("system", "cronactor")
        .str("store", "sled")
        .int("jobs", jobs as u64)
        .num("recover_ms", all_ms, 1)
        .num("start_returned_ms", started_ms, 1)
        .num("start_call_ms", start_call_ms, 1)
        .str(
            "measured_from",
            if prepared_here {
                "restart in the same process"
            } else {
                "process start"
            },
        )
        .num("cpu_user_s", u.user_s, 3)
        .num("cpu_sys_s", u.sys_s, 3)
        .num("max_rss_mib", u.max_rss_mib, 1)
        .num(
            "bytes_per_job",
            (rss - rss_base) * 1048576.0 / jobs.max(1) as f64,
            0,
        )
        .int("threads", opts.num("threads", 2)?);
    emit(j.render());
    Ok(())
}

// ---------------------------------------------------------------------------
// persist

/// N jobs on a fixed interval with the sled store: the state updates per
/// second the registry takes in and commits (group commit), the flushes per
/// second, and the store lag (an update's wait from reaching the registry to
/// its flush ending).
fn persist(opts: Opts, emit: &mut dyn FnMut(String)) -> Result<(), String> {
    opts.only(&[
        "jobs",
        "seconds",
        "store",
        "every-ms",
        "threads",
        "concurrency",
    ])?;
    let concurrency = opts.num("concurrency", 1)?.max(1) as usize;
    let jobs = opts.num("jobs", 1000)? as usize;
    let seconds = opts.num("seconds", 10)?;
    let every_ms = opts.num("every-ms", 1000)?.max(1);
    let dir = opts.path("store").ok_or("persist needs --store DIR")?;
    let rt = runtime(&opts)?;
    let s = rt.block_on(async {
        let s = sled_builder(noop_builder(), &dir, false)?
            .start()
            .await
            .map_err(|e| e.to_string())?;
        add_jobs(&s, jobs, concurrency, |i| {
            JobSpec::builder(
                format!("job-{i:07}"),
                cronactor::ScheduleSpec::every(Duration::from_millis(every_ms)),
                "noop",
            )
            .build()
            .map_err(|e| e.to_string())
        })
        .await?;
        Ok::<_, String>(s)
    })?;
    // Settle for a second, then measure the store counters over the window.
    std::thread::sleep(Duration::from_secs(1));
    let m0 = rt.block_on(s.metrics()).map_err(|e| e.to_string())?;
    let u0 = usage();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let m1 = rt.block_on(s.metrics()).map_err(|e| e.to_string())?;
    let elapsed = t0.elapsed().as_secs_f64();
    let u1 = usage();
    shutdown(&rt, &s);
    let per_s = |a: u64, b: u64| b.saturating_sub(a) as f64 / elapsed;
    let (a, b) = (&m0.store, &m1.store);
    let mut j = Json::default();
    j.str("workload", "persist")
        .str("system", "cronactor")
        .str("store", "sled")
        .int("jobs", jobs as u64)
        .int("every_ms", every_ms)
        .int("seconds", seconds)
        .num(
            "offered_fires_per_s",
            jobs as f64 * 1000.0 / every_ms as f64,
            0,
        )
        .num("fires_per_s", per_s(m0.totals.runs, m1.totals.runs), 0)
        .num("state_updates_per_s", per_s(a.updates, b.updates), 0)
        .num("store_writes_per_s", per_s(a.writes, b.writes), 0)
        .num("flushes_per_s", per_s(a.flushes, b.flushes), 1)
        .int("store_lag_us_p50", b.lag.p50_us)
        .int("store_lag_us_p99", b.lag.p99_us)
        .int("store_lag_us_max", b.lag.max_us)
        .int("pending_at_end", b.pending)
        .num("window_cpu_user_s", u1.user_s - u0.user_s, 3)
        .num("window_cpu_sys_s", u1.sys_s - u0.sys_s, 3)
        .num("max_rss_mib", u1.max_rss_mib, 1)
        .int("threads", opts.num("threads", 2)?);
    emit(j.render());
    Ok(())
}

// ---------------------------------------------------------------------------
// soak

/// N every-second jobs for S seconds: one line per interval (RSS, CPU,
/// fires, lateness), then a summary line with the drift after the first
/// interval.
fn soak(opts: Opts, emit: &mut dyn FnMut(String)) -> Result<(), String> {
    opts.only(&[
        "jobs",
        "seconds",
        "interval-s",
        "threads",
        "store",
        "concurrency",
        "cache-mib",
        "trim",
        "fold-ms",
        "history-keep",
        "fire-ahead-ms",
        "pin-workers",
    ])?;
    let concurrency = opts.num("concurrency", 1)?.max(1) as usize;
    let history_keep = opts.num("history-keep", 100)? as usize;
    let fire_ahead = fire_ahead_opt(&opts)?;
    let jobs = opts.num("jobs", 10_000)? as usize;
    let seconds = opts.num("seconds", 600)?.max(1);
    let interval = opts.num("interval-s", 60)?.clamp(1, seconds);
    let dir = opts.path("store");
    let settings = StoreSettings::read(&opts)?;
    let probe = Arc::new(Probe::new(jobs));
    let rt = runtime(&opts)?;
    let s = rt.block_on(async {
        let mut b = probe_builder(&probe).configure(|c| {
            c.fire_ahead = fire_ahead;
            c.history_keep = history_keep;
        });
        if let Some(dir) = &dir {
            b = sled_builder_opts(b, dir, &settings)?;
        }
        let s = b.start().await.map_err(|e| e.to_string())?;
        add_jobs(&s, jobs, concurrency, |i| spec(i, FIRE_EXPR, "probe")).await?;
        Ok::<_, String>(s)
    })?;
    let w0 = probe.arm(seconds as i64, 0);
    sleep_until_unix_us(w0 * 1_000_000);
    let mut prev = usage();
    // The RSS at one instant depends on where it falls in the store's fold
    // cycle (a sawtooth of tens of MiB with sled), so each interval also
    // reports the lowest and highest of a reading every 500 ms.
    let sampler = RssRange::start(Duration::from_millis(500));
    let mut rows: Vec<(f64, f64, u64, Option<u64>)> = Vec::new();
    let mut ranges: Vec<(f64, f64)> = Vec::new();
    let intervals = seconds.div_ceil(interval);
    for k in 0..intervals {
        let end = w0 + ((k + 1) * interval).min(seconds) as i64;
        let len = (end - w0) as u64 - k * interval;
        sleep_until_unix_us(end * 1_000_000);
        let u = usage();
        let t = probe.take();
        let rss = rss_now_mib();
        let (low, high) = sampler.take(rss);
        ranges.push((low, high));
        let cpu = (u.user_s - prev.user_s) + (u.sys_s - prev.sys_s);
        prev = u;
        let p99 = quantile(&t.hist, 0.99);
        let mut j = Json::default();
        j.str("workload", "soak-interval")
            .str("store", store_name(&dir))
            .int("jobs", jobs as u64)
            .int("interval", k + 1)
            .int("interval_s", len)
            .num("rss_mib", rss, 1)
            .num("rss_low_mib", low, 1)
            .num("rss_high_mib", high, 1);
        if let Some((in_use, free)) = heap_mib() {
            j.num("heap_in_use_mib", in_use, 1)
                .num("heap_free_mib", free, 1);
        }
        j.num("cpu_s", cpu, 3)
            .int("fires", t.fires)
            .int("expected_fires", jobs as u64 * len);
        lateness(&mut j, &t.hist);
        emit(j.render());
        rows.push((rss, cpu / len as f64, t.fires, p99));
    }
    probe.close();
    sampler.stop();
    let u = usage();
    shutdown(&rt, &s);
    let first = rows[0];
    let (low0, high0) = ranges[0];
    let growth = |later: f64, first: f64| 100.0 * (later - first) / first;
    let low_after = ranges.iter().skip(1).map(|r| r.0).fold(low0, f64::max);
    let high_after = ranges.iter().skip(1).map(|r| r.1).fold(high0, f64::max);
    let last = rows[rows.len() - 1];
    let max_rss_after_first = rows.iter().skip(1).map(|r| r.0).fold(first.0, f64::max);
    let fires: u64 = rows.iter().map(|r| r.2).sum();
    let mut j = Json::default();
    j.str("workload", "soak")
        .str("system", "cronactor")
        .str("store", store_name(&dir));
    settings.report(&mut j, dir.is_some());
    j.int("history_keep", history_keep as u64)
        .int(
            "fire_ahead_ms",
            fire_ahead_in_effect(fire_ahead, dir.is_some(), jobs).as_millis() as u64,
        )
        .int("pin_workers", u64::from(opts.flag("pin-workers")))
        .int("jobs", jobs as u64)
        .int("seconds", seconds)
        .int("interval_s", interval)
        .int("fires", fires)
        .int("expected_fires", jobs as u64 * seconds)
        .num("rss_first_interval_mib", first.0, 1)
        .num("rss_last_interval_mib", last.0, 1)
        .num(
            "rss_growth_after_first_interval_pct",
            growth(max_rss_after_first, first.0),
            1,
        )
        .num("rss_low_first_interval_mib", low0, 1)
        .num("rss_high_first_interval_mib", high0, 1)
        .num(
            "rss_low_growth_after_first_interval_pct",
            growth(low_after, low0),
            1,
        )
        .num(
            "rss_high_growth_after_first_interval_pct",
            growth(high_after, high0),
            1,
        )
        .num("cpu_per_s_first_interval", first.1, 4)
        .num("cpu_per_s_last_interval", last.1, 4)
        .opt_int("lateness_us_p99_first_interval", first.3)
        .opt_int("lateness_us_p99_last_interval", last.3)
        .num("cpu_user_s", u.user_s, 3)
        .num("cpu_sys_s", u.sys_s, 3)
        .num("max_rss_mib", u.max_rss_mib, 1)
        .int("threads", opts.num("threads", 2)?);
    emit(j.render());
    Ok(())
}

// ---------------------------------------------------------------------------
// next-fire

/// Next-fire computations per second over every expression in every zone,
/// each call continuing from the previous fire as the runtime does.
fn next_fire(opts: Opts, emit: &mut dyn FnMut(String)) -> Result<(), String> {
    opts.only(&["iters"])?;
    let iters = opts.num("iters", 2_000_000)?.max(1);
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
    let mut j = Json::default();
    j.str("workload", "next-fire")
        .int("ops", iters)
        .num("ops_per_s", (iters as f64 / elapsed).round(), 0)
        .num("ns_per_op", elapsed * 1e9 / iters as f64, 1);
    emit(j.render());
    Ok(())
}

// ---------------------------------------------------------------------------
// passivate

/// What the job body of `passivate` records: the lateness of every fire of a
/// schedule slot inside the window, and the slots fired twice.
struct SlotProbe {
    /// The newest slot each job fired, unix seconds.
    last_slot: Box<[AtomicI64]>,
    /// The window: slots in `[w0, w_end)` are counted.
    w0: AtomicI64,
    w_end: AtomicI64,
    shards: Vec<Mutex<Shard>>,
}

impl SlotProbe {
    fn new(jobs: usize) -> Self {
        Self {
            last_slot: (0..jobs).map(|_| AtomicI64::new(NOT_ARMED)).collect(),
            w0: AtomicI64::new(i64::MAX),
            w_end: AtomicI64::new(i64::MAX),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
        }
    }

    fn fire(&self, job: usize, scheduled: DateTime<Utc>) {
        let now_us = now_unix_us();
        let slot = scheduled.timestamp();
        let i = SHARD.with(|s| *s);
        let mut s = self.shards[i].lock().unwrap_or_else(|e| e.into_inner());
        s.calls += 1;
        let Some(last) = self.last_slot.get(job) else {
            return;
        };
        if last.fetch_max(slot, Ordering::AcqRel) >= slot {
            s.dups += 1;
            return;
        }
        if slot < self.w0.load(Ordering::Acquire) || slot >= self.w_end.load(Ordering::Acquire) {
            return;
        }
        s.fires += 1;
        let late = now_us - scheduled.timestamp_micros();
        if late < 0 {
            s.early += 1;
        }
        s.hist.saturating_record(late.max(0) as u64);
    }

    fn take(&self) -> Taken {
        let mut t = Taken {
            hist: histogram(),
            by_second: Vec::new(),
            fires: 0,
            dups: 0,
            early: 0,
            calls: 0,
        };
        for shard in &self.shards {
            let s = shard.lock().unwrap_or_else(|e| e.into_inner());
            let _ = t.hist.add(&s.hist);
            t.fires += s.fires;
            t.dups += s.dups;
            t.early += s.early;
            t.calls += s.calls;
        }
        t
    }
}

/// Job `i` of `passivate`: three of four hourly (`S M * * * *`), one of four
/// daily (`S M H * * *`), the slots spread evenly over the first `spread`
/// seconds of the hour (`spread × 24` of the day) after the phase `phase`
/// (seconds of the day). Returns the expression and the slot as seconds of
/// the day (hourly: of the hour).
fn passive_slot(i: usize, phase: u64, spread: u64) -> (String, bool, u64) {
    let k = (i as u64).wrapping_mul(7919);
    if i % 4 == 3 {
        let day = (phase + k % (spread * 24).clamp(1, 86_400)) % 86_400;
        let (h, m, s) = (day / 3600, day / 60 % 60, day % 60);
        (format!("{s} {m} {h} * * *"), false, day)
    } else {
        let hour = (phase + k % spread.clamp(1, 3600)) % 3600;
        (format!("{} {} * * * *", hour % 60, hour / 60), true, hour)
    }
}

/// N jobs on hourly and daily schedules spread over the hour and the day, so
/// that a few hundred fire every second at N = 1M: registration time, memory
/// per job with idle jobs passivated, live and passive jobs, and the fires
/// of a window of S seconds (missed, duplicated, lateness from the slot).
fn passivate(opts: Opts, emit: &mut dyn FnMut(String)) -> Result<(), String> {
    opts.only(&[
        "jobs",
        "seconds",
        "settle-s",
        "spread-s",
        "lead-s",
        "passivate-after-ms",
        "wake-lead-ms",
        "threads",
        "concurrency",
    ])?;
    let concurrency = opts.num("concurrency", 1)?.max(1) as usize;
    let jobs = opts.num("jobs", 1000)? as usize;
    let seconds = opts.num("seconds", 10)?.max(1);
    let settle = opts.num("settle-s", 2)?;
    let spread = opts.num("spread-s", 3600)?.clamp(1, 3600);
    let lead = opts.num("lead-s", 0)?;
    let passivate_after = Duration::from_millis(opts.num("passivate-after-ms", 60_000)?);
    let wake_lead = Duration::from_millis(opts.num("wake-lead-ms", 2_000)?);
    let started = Instant::now();
    let probe = Arc::new(SlotProbe::new(jobs));
    let rss_base = rss_now_mib();
    let rt = runtime(&opts)?;
    let phase = ((now_unix_us() / 1_000_000) as u64 + lead) % 86_400;

    let t0 = Instant::now();
    let s = rt.block_on(async {
        let p = probe.clone();
        let s = Scheduler::builder()
            .handler("probe", move |ctx: JobContext| {
                p.fire(
                    ctx.payload.as_u64().unwrap_or(u64::MAX) as usize,
                    ctx.scheduled,
                );
                std::future::ready(Ok::<(), std::convert::Infallible>(()))
            })
            .configure(|c| {
                c.passivate_after = Some(passivate_after);
                c.wake_lead = wake_lead;
            })
            .start()
            .await
            .map_err(|e| e.to_string())?;
        add_jobs(&s, jobs, concurrency, |i| {
            spec(i, &passive_slot(i, phase, spread).0, "probe")
        })
        .await?;
        Ok::<_, String>(s)
    })?;
    let register_ms = t0.elapsed().as_secs_f64() * 1e3;
    std::thread::sleep(Duration::from_secs(settle));
    let rss_after_register = rss_now_mib();
    let m0 = rt.block_on(s.metrics()).map_err(|e| e.to_string())?;

    // The window: S whole seconds from the next one.
    let w0 = now_unix_us().div_euclid(1_000_000) + 1;
    let w_end = w0 + seconds as i64;
    probe.w0.store(w0, Ordering::Release);
    probe.w_end.store(w_end, Ordering::Release);
    let expected = (0..jobs)
        .filter(|&i| {
            let (_, hourly, slot) = passive_slot(i, phase, spread);
            (w0..w_end).any(|t| {
                let t = t as u64;
                if hourly {
                    t % 3600 == slot
                } else {
                    t % 86_400 == slot
                }
            })
        })
        .count() as u64;
    sleep_until_unix_us(w0 * 1_000_000);
    let u0 = usage();
    let mut live_max = m0.jobs_live;
    let mut rss_max = rss_after_register;
    for t in w0 + 1..=w_end {
        sleep_until_unix_us(t * 1_000_000);
        if let Ok(m) = rt.block_on(s.metrics()) {
            live_max = live_max.max(m.jobs_live);
        }
        rss_max = rss_max.max(rss_now_mib());
    }
    let u1 = usage();
    // Fires of the window's last second may still be running.
    std::thread::sleep(Duration::from_secs(1));
    let taken = probe.take();
    let m1 = rt.block_on(s.metrics()).map_err(|e| e.to_string())?;
    let u_end = usage();
    shutdown(&rt, &s);

    let mut j = Json::default();
    j.str("workload", "passivate")
        .str("system", "cronactor")
        .str("store", "memory")
        .int("jobs", jobs as u64)
        .int("concurrency", concurrency as u64)
        .int("seconds", seconds)
        .num("register_ms", register_ms, 1)
        .num(
            "register_us_per_job",
            register_ms * 1e3 / jobs.max(1) as f64,
            2,
        )
        .int("passivate_after_ms", passivate_after.as_millis() as u64)
        .int("wake_lead_ms", wake_lead.as_millis() as u64)
        .int("jobs_live_after_register", m0.jobs_live)
        .int("jobs_passive_after_register", m0.jobs_passive)
        .int("jobs_live_max_in_window", live_max)
        .int("jobs_live_at_end", m1.jobs_live)
        .int("jobs_passive_at_end", m1.jobs_passive)
        .int("fires", taken.fires)
        .int("expected_fires", expected)
        .int("missed_fires", expected.saturating_sub(taken.fires))
        .num(
            "missed_pct",
            if expected > 0 {
                100.0 * expected.saturating_sub(taken.fires) as f64 / expected as f64
            } else {
                0.0
            },
            3,
        )
        .int("dup_fires", taken.dups)
        .int("early_fires", taken.early)
        .num("fires_per_s", taken.fires as f64 / seconds as f64, 1);
    lateness(&mut j, &taken.hist);
    j.num("cpu_user_s", u_end.user_s, 3)
        .num("cpu_sys_s", u_end.sys_s, 3)
        .num("window_cpu_user_s", u1.user_s - u0.user_s, 3)
        .num("window_cpu_sys_s", u1.sys_s - u0.sys_s, 3)
        .num("max_rss_mib", u_end.max_rss_mib, 1)
        .num("rss_base_mib", rss_base, 1)
        .num("rss_after_register_mib", rss_after_register, 1)
        .num("rss_max_in_window_mib", rss_max, 1)
        .num(
            "bytes_per_job",
            (rss_after_register - rss_base) * 1048576.0 / jobs.max(1) as f64,
            0,
        )
        .num(
            "peak_bytes_per_job",
            u_end.max_rss_mib * 1048576.0 / jobs.max(1) as f64,
            0,
        )
        .int("threads", opts.num("threads", 2)?)
        .num("wall_s", started.elapsed().as_secs_f64(), 2);
    emit(j.render());
    Ok(())
}
