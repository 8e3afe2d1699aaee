//! `trellis accounts credentials ID`: hands out a member account's root credentials, once.
//!
//! `CreateAccount` makes member accounts with root credentials of their own (AWS would e-mail a
//! password reset; Trellis has no mail). Whoever operates the server — who can read its store —
//! takes them with this command and gives them to the account's owner. They are shown once: a
//! second call fails, so a copy left in a terminal's scrollback is the only other one.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use trellis_store::Store;

#[derive(Args, Debug)]
pub struct AccountsArgs {
    #[command(subcommand)]
    command: AccountsCommand,
}

#[derive(Subcommand, Debug)]
enum AccountsCommand {
    /// Print a member account's root credentials (AWS shared-credentials format, under a profile
    /// named after the account), once.
    Credentials(CredentialsArgs),
}

#[derive(Args, Debug)]
struct CredentialsArgs {
    /// The member account's 12-digit ID (CreateAccount's `AccountId`).
    account_id: String,
    /// The data dir of the server (the same as `trellis serve --data-dir`).
    #[arg(long, default_value = "./trellis-data")]
    data_dir: PathBuf,
    /// The store URL, when the server uses one (`trellis serve --store`).
    #[arg(long)]
    store: Option<String>,
    /// The profile name to print the credentials under (default: `account-ID`).
    #[arg(long)]
    profile: Option<String>,
}

pub fn run(args: AccountsArgs) -> anyhow::Result<()> {
    let AccountsCommand::Credentials(args) = args.command;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (id, secret) = runtime.block_on(async {
        let url = match &args.store {
            Some(url) => url.clone(),
            None => {
                let db = args.data_dir.join("trellis.db");
                anyhow::ensure!(
                    db.exists(),
                    "no store at {} (give the server's --data-dir or --store)",
                    db.display()
                );
                Store::sqlite_url(&db)
            }
        };
        let store = crate::accounts::open_store(&url).await?;
        let taken =
            trellis_api::organizations::take_root_credentials(&store, &args.account_id).await;
        store.close().await;
        Ok::<_, anyhow::Error>(taken?)
    })?;
    let profile = args
        .profile
        .unwrap_or_else(|| format!("account-{}", args.account_id));
    // stdout carries only the profile, so `>> ~/.aws/credentials` works; logs go to stderr.
    println!("[{profile}]\naws_access_key_id = {id}\naws_secret_access_key = {secret}");
    Ok(())
}

/// The store of a server, opened for a one-off command (`trellis accounts`, `trellis ca`): one
/// connection, no change feed.
pub(crate) async fn open_store(url: &str) -> anyhow::Result<Store> {
    Store::connect_with(
        url,
        trellis_store::StoreOptions {
            poll_interval: None,
            listen: false,
            max_connections: 1,
            ..Default::default()
        },
    )
    .await
    .context("cannot open the store")
}
