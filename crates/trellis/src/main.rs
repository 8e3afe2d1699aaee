//! The `trellis` binary: command-line interface, configuration, wiring of the store, control
//! plane and data plane, signal handling and shutdown order. The only crate that knows all others.

mod accounts;
mod api_limits;
mod ca;
mod cluster_secrets;
mod config;
mod conn_limits;
mod credentials;
mod dataplane;
mod db_limits;
mod functions;
mod logs;
mod serve;
mod status;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "trellis",
    version,
    about = "A self-hosted service network that speaks the VPC Lattice API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane, data plane and DNS server.
    Serve(Box<serve::ServeArgs>),
    /// Print the certificate of the Trellis CA (PEM), creating the CA if needed, so that clients
    /// can trust the certificates of HTTPS listeners.
    Ca(ca::CaArgs),
    /// Print logs Trellis keeps: `trellis logs function NAME` prints a function's log.
    Logs(logs::LogsArgs),
    /// Member accounts: `trellis accounts credentials ID` prints a new account's root
    /// credentials, once.
    Accounts(accounts::AccountsArgs),
    /// Print a running server's liveness, traffic readiness and store readiness; exits non-zero
    /// unless it is ready to serve traffic.
    Status(status::StatusArgs),
}

fn main() -> std::process::ExitCode {
    // `serve --config FILE`: the file's keys become flags before the command line's.
    let argv = match config::expand::<Cli>(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("trellis: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse_from(argv);
    // Everything Trellis writes (credentials, CA key, database, logs) is private to its user.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let log_format = match &cli.command {
        Command::Serve(args) => args.log_format(),
        _ => trellis_telemetry::LogFormat::Text,
    };
    trellis_telemetry::init_tracing(log_format);
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Ca(args) => ca::run(args),
        Command::Logs(args) => logs::run(args),
        Command::Accounts(args) => accounts::run(args),
        Command::Status(args) => status::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, so that scripts and humans see the cause at once.
            eprintln!("trellis: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
