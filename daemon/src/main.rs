//! The `tillmesh` command line: `terminal` runs a till (`terminal enroll` issues its
//! certificate), `store init` creates a store CA, `dev store` runs a store of tills and a
//! cloud on loopback,
//! `status` asks a running till how it is, `audit verify` checks a till's audit chain,
//! `cloud` runs the HQ sync endpoint and `hq` administers it (stores, credentials, master
//! data, fleet).

mod cli;
mod cmd;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A simulation's faults make tills log warnings by the hundred: keep them out of its output.
    let default = if matches!(cli.command, Command::Sim { .. }) {
        "off"
    } else {
        "info,openraft=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(tillmesh::logs::Tee);
    if cli.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    match cmd::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tillmesh: {e:#}");
            match e.downcast_ref::<tillmesh::Fatal>() {
                Some(_) => ExitCode::from(tillmesh::Fatal::EXIT_CODE),
                None => ExitCode::FAILURE,
            }
        }
    }
}
