//! The `trellis` binary: command-line interface, configuration, wiring of the store, control
//! plane and data plane, signal handling and shutdown order. The only crate that knows all others.

mod credentials;
mod serve;

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
    Serve(serve::ServeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    trellis_telemetry::init_tracing();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
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
