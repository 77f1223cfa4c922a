//! The `cronactor` command: a CLI client of the HTTP control API and the
//! standalone daemon.

fn main() {
    std::process::exit(cronactor::daemon::cli_main());
}
