//! `trellis ca`: prints the certificate of the Trellis Local CA that every node of one store shares
//! (creating it on first use, as `trellis serve` would), so that clients can add it to their trust
//! store before calling HTTPS listeners; `trellis ca rotate` and `trellis ca retire-previous`
//! replace it with an overlap.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use trellis_store::Store;

use crate::cluster_secrets::{self, SecretKey};

#[derive(Args, Debug)]
pub struct CaArgs {
    #[command(subcommand)]
    command: Option<CaCommand>,
    /// The data dir of the server whose CA to print (the same as `trellis serve --data-dir`).
    #[arg(long, default_value = "./trellis-data", global = true)]
    data_dir: PathBuf,
    /// The store URL, when the server uses one (`trellis serve --store`).
    #[arg(long, global = true)]
    store: Option<String>,
    /// The key that seals the store's secrets (`trellis serve --secret-key-file`); needed only to
    /// create or rotate the CA. Default: DATA_DIR/secret.key.
    #[arg(long, value_name = "FILE", global = true)]
    secret_key_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum CaCommand {
    /// Make a new CA the issuer of listener certificates; the current one stays trusted (printed
    /// with it) until `retire-previous`. Running nodes issue from the new CA once restarted.
    Rotate,
    /// Stop trusting the CAs a rotation replaced (once every client trusts the new one and every
    /// node has restarted).
    RetirePrevious,
}

pub fn run(args: CaArgs) -> anyhow::Result<()> {
    let data_dir = crate::serve::prepare_data_dir(&args.data_dir)?;
    // A data dir with no embedded database but with the CA a node wrote belongs to a node whose
    // store is elsewhere (PostgreSQL): print what that node wrote rather than open (and so
    // create) an empty embedded store with a CA of its own. `--store` reads the store itself.
    let ca_file = data_dir.join(cluster_secrets::CA_FILE);
    if args.store.is_none()
        && args.command.is_none()
        && !data_dir.join("trellis.db").exists()
        && ca_file.exists()
    {
        let pem = std::fs::read_to_string(&ca_file)
            .with_context(|| format!("cannot read {}", ca_file.display()))?;
        print!("{pem}");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let pem = runtime.block_on(async {
        let url = args
            .store
            .clone()
            .unwrap_or_else(|| Store::sqlite_url(&data_dir.join("trellis.db")));
        let store = crate::accounts::open_store(&url).await?;
        let file = args.secret_key_file.as_deref();
        let pem = match &args.command {
            // Printing needs no secret: certificates are public. Creating the CA does, as at a
            // first `trellis serve`.
            None => match cluster_secrets::trust_pem(&store).await? {
                Some(pem) => Ok(pem),
                None => {
                    let key = SecretKey::load_or_create(file, &data_dir)?;
                    cluster_secrets::load_or_create(&store, &data_dir, &key)
                        .await
                        .map(|s| s.trust_pem)
                }
            },
            Some(CaCommand::Rotate) => {
                let key = SecretKey::load_existing(file, &data_dir)?;
                cluster_secrets::rotate(&store, &key).await
            }
            Some(CaCommand::RetirePrevious) => cluster_secrets::retire_previous(&store).await,
        };
        store.close().await;
        pem
    })?;
    if args.command.is_some() {
        eprintln!(
            "trellis: clients should now trust the certificates below; restart every node to apply"
        );
    }
    // stdout carries only the PEM, so `trellis ca > trellis-ca.pem` works; logs go to stderr.
    print!("{pem}");
    Ok(())
}
