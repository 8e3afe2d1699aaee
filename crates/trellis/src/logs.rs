//! `trellis logs function NAME [--account ID]`: prints a function's log — its runtime processes'
//! stdout and stderr with START/END/REPORT lines per invocation — from
//! `DATA_DIR/logs/functions/NAME.log` (a member account's: `…/functions/accounts/ID/NAME.log`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct LogsArgs {
    #[command(subcommand)]
    what: LogsOf,
}

#[derive(Subcommand, Debug)]
enum LogsOf {
    /// Print the log of a function hosted by this Trellis.
    Function {
        /// The function's name.
        name: String,
        /// The data dir of the `trellis serve` that runs the function.
        #[arg(long, default_value = "./trellis-data")]
        data_dir: PathBuf,
        /// Print only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        /// The member account the function belongs to (default: the management account).
        #[arg(long, value_name = "ID")]
        account: Option<String>,
    },
}

pub fn run(args: LogsArgs) -> anyhow::Result<()> {
    let LogsOf::Function {
        name,
        data_dir,
        tail,
        account,
    } = args.what;
    if let Some(a) = &account
        && !(a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
    {
        bail!("{a:?} is not an account ID (12 digits)");
    }
    if !trellis_functions::names::valid_name(&name) {
        bail!("{name:?} is not a function name (1-64 of a-z, A-Z, 0-9, - and _)");
    }
    let path = trellis_functions::log_path_in(&data_dir, account.as_deref(), &name);
    let text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no log for function {name} yet ({} does not exist): it has not been invoked on this \
             node",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let text = match tail {
        Some(n) => {
            let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
            lines[lines.len().saturating_sub(n)..].concat()
        }
        None => text,
    };
    std::io::stdout()
        .write_all(&text)
        .context("cannot write to stdout")
}
