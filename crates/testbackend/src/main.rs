//! The `trellis-testbackend` binary: parses flags, binds, prints `listening on ADDR` as the first
//! line of stdout (so a test that asked for port 0 learns the port), and serves until killed.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use trellis_testbackend::{Config, Protocol, Server};

#[derive(Parser, Debug)]
#[command(
    name = "trellis-testbackend",
    version,
    about = "A fast, configurable HTTP/1.1, h2c, HTTPS and gRPC backend for Trellis tests and benchmarks"
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Name reported in the `x-backend` header and the JSON echo.
    #[arg(long, default_value = "testbackend")]
    name: String,
    /// Connection protocol.
    #[arg(long, value_enum, default_value_t = Protocol::Auto)]
    protocol: Protocol,
    /// Also serve the test gRPC service (`/test.Echo/*`) to `application/grpc` requests.
    #[arg(long)]
    grpc: bool,
    /// Worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Exit when stdin reaches end of file, so a test runner that dies takes its backends along.
    #[arg(long)]
    exit_with_stdin: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trellis-testbackend: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), trellis_testbackend::Error> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.build()?;
    if args.exit_with_stdin {
        std::thread::spawn(|| {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            std::process::exit(0);
        });
    }
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let server = Server::new(
            listener,
            Config {
                name: args.name,
                protocol: args.protocol,
                grpc: args.grpc,
            },
        )?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", server.local_addr()?)?;
        out.flush()?;
        drop(out);
        server.run().await;
        Ok(())
    })
}
