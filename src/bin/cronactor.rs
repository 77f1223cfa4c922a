//! `cronactor`: the command line of the cronactor control plane: a client of
//! the HTTP API, a schedule previewer, the standalone daemon and its config
//! checker. The commands live in `cronactor::daemon::cli`; exit codes are
//! documented in `docs/operations.md`.

/// Built with `--features mimalloc`, the daemon and the client run on
/// mimalloc instead of the C library's `malloc` (see `docs/operations.md`,
/// "Capacity").
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use cronactor::daemon::cli::{self, CliError};
use cronactor::daemon::{serve, DaemonOptions};
use cronactor::http::client::{Client, ClientError, EXIT_OK, EXIT_USAGE};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "cronactor",
    version,
    about = "Operate a cronactor scheduler: jobs, runs, events, and a standalone daemon"
)]
struct Cli {
    /// The API's base URL.
    #[arg(
        long,
        global = true,
        env = "CRONACTOR_URL",
        default_value = "http://127.0.0.1:7700"
    )]
    url: String,
    /// A bearer token (read-only or admin).
    #[arg(long, global = true, env = "CRONACTOR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the next fires of a cron expression, with DST notes.
    Preview {
        /// The cron expression (5, 6 or 7 fields, or an alias like @daily).
        expr: String,
        /// The IANA time zone (default UTC).
        #[arg(long)]
        tz: Option<String>,
        /// How many fires (at most 10000).
        #[arg(
            short = 'n',
            long = "count",
            default_value_t = 10,
            value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
                .range(0..=cronactor::MAX_PREVIEW as u64)
        )]
        n: usize,
        /// Start after this instant (RFC 3339; default now).
        #[arg(long)]
        after: Option<DateTime<Utc>>,
        /// Also fire at the times matching this cron expression (repeatable):
        /// the preview shows the union, e.g. "0 30 17 * * Mon-Fri".
        #[arg(long)]
        also: Vec<String>,
        /// Leave out the times matching this cron expression (repeatable),
        /// e.g. "* * * 25 12 *".
        #[arg(long)]
        exclude: Vec<String>,
    },
    /// List or show jobs; pause or resume them in bulk.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Pause a job: its fires are skipped until it is resumed.
    Pause {
        /// The job id.
        id: String,
        /// A note shown in status.
        #[arg(long)]
        note: Option<String>,
    },
    /// Resume a paused job.
    Resume {
        /// The job id.
        id: String,
        /// A note for the event.
        #[arg(long)]
        note: Option<String>,
    },
    /// Fire a job now (through its overlap policy).
    Trigger {
        /// The job id.
        id: String,
        /// This fire's overlap policy instead of the job's: skip, replace,
        /// concurrent, concurrent:N or queue:N.
        #[arg(long)]
        overlap: Option<String>,
    },
    /// Run a job's schedule slots in a past range now, one after another
    /// (or all at once with --overlap allow-all).
    Backfill {
        /// The job id.
        id: String,
        /// The range's start, excluded (RFC 3339).
        #[arg(long)]
        from: DateTime<Utc>,
        /// The range's end, included (RFC 3339).
        #[arg(long)]
        to: DateTime<Utc>,
        /// buffer-all (one after another) or allow-all (all at once).
        #[arg(long, value_enum, default_value_t = BackfillMode::BufferAll)]
        overlap: BackfillMode,
    },
    /// Cancel a job's running runs (and a waiting retry), or one of them.
    Cancel {
        /// The job id.
        id: String,
        /// Only this run in flight (its id, as `jobs show` lists it).
        #[arg(long)]
        run: Option<String>,
    },
    /// Set or clear a job's last result (what its next run reads), as when
    /// rewinding a watermark.
    Result {
        /// The job id.
        id: String,
        /// The new last result, as JSON.
        #[arg(
            long,
            value_name = "JSON",
            conflicts_with = "clear",
            required_unless_present = "clear"
        )]
        set: Option<String>,
        /// Clear it.
        #[arg(long)]
        clear: bool,
    },
    /// Show a job's newest runs.
    History {
        /// The job id.
        id: String,
        /// How many runs (1 to 1000).
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
    },
    /// Emit a named event: every job listening to it fires now.
    Emit {
        /// The event's name.
        name: String,
        /// The event's payload, as JSON.
        #[arg(long)]
        payload: Option<String>,
    },
    /// Print events as they come.
    Events {
        /// Only this job's events.
        #[arg(long)]
        job: Option<String>,
        /// Replay the buffered events after this id first.
        #[arg(long)]
        last_event_id: Option<u64>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Follow a job's runs: a progress bar and its log lines.
    Follow {
        /// The job id.
        id: String,
        /// Exit after the next run ends for good (0 if it succeeded, 6 if not).
        #[arg(long)]
        until_done: bool,
    },
    /// Run the jobs of a TOML file (and serve the HTTP API) until SIGTERM.
    Serve {
        /// The TOML file of jobs (re-read on SIGHUP).
        #[arg(long)]
        config: PathBuf,
        /// The directory of the store.
        #[arg(long)]
        store: PathBuf,
        /// The API's address (default: the file's, else 127.0.0.1:7700).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Keep each runtime worker on its own CPU (one worker per CPU the
        /// process may use): shorter bursts when many jobs share an instant,
        /// for a daemon that owns its CPUs (see docs/operations.md).
        #[arg(long)]
        pin_workers: bool,
        /// At SIGTERM or SIGINT, let the runs in flight end by themselves for
        /// up to this many seconds before cancelling them (no new fire starts
        /// meanwhile); 0 cancels them at once.
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        drain: u64,
    },
    /// Check a TOML file of jobs without running it.
    Validate {
        /// The file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// List jobs.
    List {
        /// Only jobs in this phase (scheduled, running, paused, completed, orphaned, failed).
        #[arg(long)]
        state: Option<String>,
        /// Only jobs that carry this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Pause every job of a tag (--tag T), or every job (--all).
    #[command(group(clap::ArgGroup::new("jobs").required(true).args(["tag", "all"])))]
    Pause {
        /// The jobs that carry this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Every job.
        #[arg(long)]
        all: bool,
        /// A note shown in each job's status.
        #[arg(long)]
        note: Option<String>,
    },
    /// Resume every paused job of a tag (--tag T), or every paused job (--all).
    #[command(group(clap::ArgGroup::new("jobs").required(true).args(["tag", "all"])))]
    Resume {
        /// The jobs that carry this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Every job.
        #[arg(long)]
        all: bool,
        /// A note for each job's event.
        #[arg(long)]
        note: Option<String>,
    },
    /// Show one job: status, next fires, recent runs.
    Show {
        /// The job id.
        id: String,
    },
}

fn run(cli: Cli) -> Result<(), CliError> {
    // Checked by the commands that call the API only: a bad CRONACTOR_URL
    // does not stop `preview`, `validate` or `serve`.
    let client = || {
        check_url(&cli.url)
            .map(|()| Client::new(&cli.url, cli.token.clone()))
            .map_err(|e| CliError::Usage(format!("--url: {e}")))
    };
    let json = cli.json;
    match cli.command {
        Command::Preview {
            expr,
            tz,
            n,
            after,
            also,
            exclude,
        } => cli::preview(&expr, tz.as_deref(), &also, &exclude, n, after, json),
        Command::Jobs(JobsCommand::List { state, tag }) => {
            cli::jobs_list(&client()?, state.as_deref(), tag.as_deref(), json)
        }
        Command::Jobs(JobsCommand::Pause { tag, note, .. }) => {
            cli::jobs_pause_or_resume(&client()?, tag.as_deref(), note.as_deref(), true, json)
        }
        Command::Jobs(JobsCommand::Resume { tag, note, .. }) => {
            cli::jobs_pause_or_resume(&client()?, tag.as_deref(), note.as_deref(), false, json)
        }
        Command::Jobs(JobsCommand::Show { id }) => cli::jobs_show(&client()?, &id, json),
        Command::Pause { id, note } => {
            cli::pause_or_resume(&client()?, &id, note.as_deref(), true, json)
        }
        Command::Resume { id, note } => {
            cli::pause_or_resume(&client()?, &id, note.as_deref(), false, json)
        }
        Command::Trigger { id, overlap } => cli::trigger(&client()?, &id, overlap.as_deref(), json),
        Command::Backfill {
            id,
            from,
            to,
            overlap,
        } => cli::backfill(&client()?, &id, from, to, overlap.into(), json),
        Command::Cancel { id, run } => cli::cancel(&client()?, &id, run.as_deref(), json),
        Command::Result { id, set, clear: _ } => {
            cli::set_result(&client()?, &id, set.as_deref(), json)
        }
        Command::History { id, limit } => cli::history(&client()?, &id, limit, json),
        Command::Emit { name, payload } => cli::emit(&client()?, &name, payload.as_deref(), json),
        Command::Events {
            job,
            last_event_id,
            count,
        } => cli::events(&client()?, job.as_deref(), last_event_id, count, json),
        Command::Follow { id, until_done } => cli::follow(&client()?, &id, until_done, json),
        Command::Validate { file } => cli::validate(&file, json),
        Command::Serve {
            config,
            store,
            listen,
            pin_workers,
            drain,
        } => {
            init_logging();
            let mut options = DaemonOptions::new(config, store);
            options.listen = listen;
            options.drain = std::time::Duration::from_secs(drain);
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.enable_all();
            if pin_workers {
                let workers = cronactor::runtime::this_thread_cpus()
                    .map_err(|e| CliError::Usage(format!("--pin-workers: {e}")))?
                    .len();
                let cpus = cronactor::runtime::pin_workers(&mut builder, workers)
                    .map_err(|e| CliError::Usage(format!("--pin-workers: {e}")))?;
                tracing::info!(?cpus, "runtime workers pinned, one per CPU");
            }
            let runtime = builder
                .build()
                .map_err(|e| CliError::Usage(format!("cannot start the runtime: {e}")))?;
            runtime.block_on(serve(options)).map_err(CliError::from)
        }
    }
}

/// Accepts `http://HOST[:PORT][/PREFIX]`: anything else is a usage error
/// (exit 1), not a server the client cannot reach. `https://` too: the
/// client is built without TLS (the API itself serves plain HTTP), so such
/// a URL could never be reached.
fn check_url(url: &str) -> Result<(), String> {
    if url
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    {
        return Err(format!(
            "{url:?}: this client speaks plain HTTP only (no TLS); reach an https:// \
             endpoint through a local proxy or tunnel, with an http:// URL"
        ));
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?} is not an http:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(format!("{url:?} names no host"));
    }
    Ok(())
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let url = cli.url.clone();
    if let Err(e) = run(cli) {
        eprintln!("cronactor: {e}");
        if matches!(e, CliError::Client(ClientError::Connect { .. })) {
            eprintln!(
                "cronactor: is the server running at {url}? Start it with `cronactor serve`, \
                 or name another with --url or CRONACTOR_URL"
            );
        }
        if matches!(&e, CliError::Client(c) if c.is_not_the_api()) {
            eprintln!(
                "cronactor: is {url} the base URL of a cronactor API? Name another with --url \
                 or CRONACTOR_URL"
            );
        }
        std::process::exit(e.exit_code());
    }
}

/// How a backfill's runs go (`--overlap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BackfillMode {
    /// One after another, oldest first.
    BufferAll,
    /// All at once.
    AllowAll,
}

impl From<BackfillMode> for cronactor::BackfillOverlap {
    fn from(mode: BackfillMode) -> Self {
        match mode {
            BackfillMode::BufferAll => Self::BufferAll,
            BackfillMode::AllowAll => Self::AllowAll,
        }
    }
}
