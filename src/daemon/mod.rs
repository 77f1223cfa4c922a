//! The standalone daemon and the command-line front-end of the `cronactor`
//! binary (feature `cli`).
//!
//! - [`config`](crate::daemon::config): the TOML file of jobs whose handler is a command.
//! - [`command`](crate::daemon::command): the `command` handler (process groups, timeouts, output).
//! - [`run`](crate::daemon::run): `cronactor serve` (sled store, HTTP API, SIGHUP reload).
//! - [`cli`](crate::daemon::cli): the client commands and their output.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("cronactor-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let file = dir.join("jobs.toml");
//! std::fs::write(&file, r#"
//! [[job]]
//! id = "tick"
//! every_ms = 60000
//! command = ["true"]
//! "#)?;
//! let config = cronactor::daemon::config::load(&file)?;
//! assert_eq!(config.jobs[0].id.as_str(), "tick");
//! assert_eq!(config.jobs[0].handler, cronactor::daemon::command::COMMAND_HANDLER);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

pub mod cli;
pub mod command;
pub mod config;
pub mod run;

pub use run::{serve, DaemonOptions};
