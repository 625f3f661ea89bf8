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
use tillmesh_cloud::telemetry::{self, ExportConfig, Exporter};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A simulation's faults make tills log warnings by the hundred: keep them out of its output.
    let default = if matches!(cli.command, Command::Sim { .. }) {
        "off"
    } else {
        "info,openraft=error"
    };
    // Traces are exported by the long-running commands only.
    let service = match &cli.command {
        Command::Terminal { action: None, .. } => Some("tillmesh-till"),
        Command::Cloud { .. } => Some("tillmesh-cloud"),
        Command::Dev { .. } => Some("tillmesh-dev"),
        _ => None,
    };
    let export = service
        .map(|s| ExportConfig::new(cli.otlp_endpoint.clone(), s))
        .filter(ExportConfig::enabled);
    let exporter = match export.as_ref().map(Exporter::start).transpose() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("tillmesh: traces: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = telemetry::install(
        default,
        cli.log_json,
        tillmesh::logs::Tee,
        exporter.as_ref(),
    ) {
        eprintln!("tillmesh: logging: {e}");
        return ExitCode::FAILURE;
    }
    // Dropping the exporter (after the command) sends what is queued.
    let _exporter = exporter;
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
