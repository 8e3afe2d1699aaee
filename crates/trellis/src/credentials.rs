//! Root credentials for the API: from `TRELLIS_ROOT_ACCESS_KEY_ID` / `TRELLIS_ROOT_SECRET_ACCESS_KEY`
//! when set; otherwise read from `DATA_DIR/credentials`, or generated on first start, printed once
//! and written there in the AWS shared-credentials format (so `AWS_SHARED_CREDENTIALS_FILE` can
//! point the AWS CLI and SDKs at it).
//!
//! Secrets given in the environment do not stay there: the kernel keeps a process's initial
//! environment readable in `/proc/<pid>/environ` for its whole life, whatever the process does to
//! its own copy. So `serve` writes them ([`SECRET_VARS`]: the root credentials and the AWS
//! credentials `--lambda-endpoint` signs with) to a 0600 file in the (0700) data dir and
//! re-executes itself without them ([`hand_off_from_environment`]); the new image reads the file
//! and deletes it first thing ([`receive_hand_off`]) and looks them up with [`secret_var`].

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context as _, bail};
use rand::Rng;
use trellis_api::RootCredentials;

pub const FILE_NAME: &str = "credentials";
const ID_ENV: &str = "TRELLIS_ROOT_ACCESS_KEY_ID";
const SECRET_ENV: &str = "TRELLIS_ROOT_SECRET_ACCESS_KEY";
/// Environment variables holding secrets, moved out of the server's environment.
pub const SECRET_VARS: &[&str] = &[
    ID_ENV,
    SECRET_ENV,
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];
/// Set in the re-executed server to the path of the hand-over file.
const HANDOFF_ENV: &str = "TRELLIS_SECRETS_HANDOFF";
const HANDOFF_FILE: &str = ".secrets-handoff";

static HANDED_OVER: OnceLock<HashMap<String, String>> = OnceLock::new();

/// A secret variable: handed over by the previous image, else from the environment (when the
/// hand-over has not run: tests, other subcommands).
pub fn secret_var(name: &str) -> Option<String> {
    match HANDED_OVER.get() {
        Some(vars) => vars.get(name).cloned(),
        None => std::env::var(name).ok(),
    }
    .filter(|v| !v.is_empty())
}

/// In the re-executed server: reads the handed-over secrets and deletes their file. Call before
/// anything reads a secret.
pub fn receive_hand_off() -> anyhow::Result<()> {
    let Some(path) = std::env::var_os(HANDOFF_ENV) else {
        return Ok(());
    };
    let path = std::path::PathBuf::from(path);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read handed-over secrets {}", path.display()))?;
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    let mut vars = HashMap::new();
    for line in text.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = hex::decode(value)
            .ok()
            .and_then(|v| String::from_utf8(v).ok())
            .with_context(|| format!("{} is damaged", path.display()))?;
        vars.insert(name.to_string(), value);
    }
    let _ = HANDED_OVER.set(vars);
    Ok(())
}

/// Moves the secret variables from the environment into a private file and re-executes the
/// server without them. Returns (without re-executing) when the environment holds none.
pub fn hand_off_from_environment(data_dir: &Path) -> anyhow::Result<()> {
    // Checks that the root credentials come as a pair before going anywhere.
    from_environment()?;
    let present: Vec<(&str, String)> = SECRET_VARS
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (*k, v)))
        .collect();
    if present.is_empty() {
        return Ok(());
    }
    let path = data_dir.join(HANDOFF_FILE);
    let _ = std::fs::remove_file(&path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    for (name, value) in &present {
        writeln!(f, "{name}={}", hex::encode(value))?;
    }
    f.sync_all()?;
    drop(f);
    let exe = std::env::current_exe().context("cannot find the trellis binary to re-execute")?;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg0(arg0).args(args).env(HANDOFF_ENV, &path);
    for name in SECRET_VARS {
        cmd.env_remove(name);
    }
    let err = cmd.exec();
    let _ = std::fs::remove_file(&path);
    bail!(
        "cannot re-execute {} without the secrets in its environment: {err}",
        exe.display()
    )
}

fn from_environment() -> anyhow::Result<Option<RootCredentials>> {
    let env_id = secret_var(ID_ENV);
    let env_secret = secret_var(SECRET_ENV);
    match (env_id, env_secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Some(RootCredentials {
            access_key_id,
            secret_access_key,
        })),
        (None, None) => Ok(None),
        _ => bail!("set both {ID_ENV} and {SECRET_ENV}, or neither"),
    }
}

pub fn load_or_create(data_dir: &Path) -> anyhow::Result<RootCredentials> {
    if let Some(creds) = from_environment()? {
        eprintln!(
            "trellis: root credentials from the environment ({ID_ENV}, access key {})",
            creds.access_key_id
        );
        return Ok(creds);
    }
    let path = data_dir.join(FILE_NAME);
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let creds = parse(&text)
            .with_context(|| format!("{} is not a valid credentials file", path.display()))?;
        // Every start says where they are, so nobody has to remember the first one's output.
        eprintln!(
            "trellis: root credentials in {} (export AWS_SHARED_CREDENTIALS_FILE={})",
            path.display(),
            path.display()
        );
        return Ok(creds);
    }
    let creds = generate();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(render(&creds).as_bytes())?;
    f.sync_all()?;
    eprintln!(
        "trellis: generated root credentials (saved to {}):\n  aws_access_key_id     = {}\n  aws_secret_access_key = {}",
        path.display(),
        creds.access_key_id,
        creds.secret_access_key
    );
    Ok(creds)
}

fn generate() -> RootCredentials {
    let mut rng = rand::rng();
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let pick = |rng: &mut rand::rngs::ThreadRng, set: &[u8], n: usize| -> String {
        (0..n)
            .map(|_| set[rng.random_range(0..set.len())] as char)
            .collect()
    };
    RootCredentials {
        access_key_id: format!("AKIA{}", pick(&mut rng, UPPER, 16)),
        secret_access_key: pick(&mut rng, SECRET, 40),
    }
}

fn render(c: &RootCredentials) -> String {
    format!(
        "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        c.access_key_id, c.secret_access_key
    )
}

fn parse(text: &str) -> anyhow::Result<RootCredentials> {
    let mut id = None;
    let mut secret = None;
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_string()),
                "aws_secret_access_key" => secret = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(RootCredentials {
            access_key_id,
            secret_access_key,
        }),
        _ => bail!("missing aws_access_key_id or aws_secret_access_key"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_round_trip_through_the_file_format() {
        let c = generate();
        assert!(c.access_key_id.starts_with("AKIA") && c.access_key_id.len() == 20);
        assert_eq!(c.secret_access_key.len(), 40);
        let back = parse(&render(&c)).unwrap();
        assert_eq!(back.access_key_id, c.access_key_id);
        assert_eq!(back.secret_access_key, c.secret_access_key);
        assert!(parse("[default]\n").is_err());
    }
}
