//! `trellis ca`: prints the certificate of the Trellis Local CA kept in the data dir (creating the
//! CA on first use), so that clients can add it to their trust store before calling HTTPS
//! listeners.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use trellis_tls::CertificateAuthority;

#[derive(Args, Debug)]
pub struct CaArgs {
    /// The data dir of the server whose CA to print (the same as `trellis serve --data-dir`).
    #[arg(long, default_value = "./trellis-data")]
    data_dir: PathBuf,
}

pub fn run(args: CaArgs) -> anyhow::Result<()> {
    let data_dir = crate::serve::prepare_data_dir(&args.data_dir)?;
    let ca = load(&data_dir)?;
    // stdout carries only the PEM, so `trellis ca > trellis-ca.pem` works; logs go to stderr.
    print!("{}", ca.certificate_pem());
    Ok(())
}

/// The CA of `data_dir`, created there (`ca.pem`, `ca-key.pem`) if it does not exist yet.
pub fn load(data_dir: &Path) -> anyhow::Result<Arc<CertificateAuthority>> {
    let ca = CertificateAuthority::load_or_create(data_dir)
        .with_context(|| format!("cannot load the CA in {}", data_dir.display()))?;
    Ok(Arc::new(ca))
}
