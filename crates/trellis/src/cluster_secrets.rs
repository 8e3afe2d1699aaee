//! The secrets every node of one store shares: the CA that signs listener certificates and the
//! key that signs Lambda `Code.Location` links. They live in the store as one record of no
//! account ([`KIND`]/[`ID`]), created once by whichever node starts first; the private parts are
//! sealed with AES-256-GCM under the operator's secret key (`--secret-key-file`, by default
//! `DATA_DIR/secret.key`), so the store alone (a backup, a replica, a read-only database user)
//! reveals neither.
//!
//! Rotation keeps an overlap: `trellis ca rotate` makes a new CA the issuer and keeps the one it
//! replaces trusted (in `ca.pem` and `trellis ca`'s output, as a bundle) until
//! `trellis ca retire-previous`. Nodes pick a rotation up when they restart (see
//! docs/decisions.md, "One trust root").

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use trellis_store::{Record, Store, StoreError};
use trellis_tls::CertificateAuthority;

/// The record kind of the shared secrets (one record, id [`ID`]); a record of no account.
pub const KIND: &str = trellis_api::organizations::CLUSTER_SECRETS_KIND;
/// The ID of the one [`KIND`] record.
pub const ID: &str = "current";
/// The secret key's file name in the data dir when `--secret-key-file` is not given.
pub const SECRET_KEY_FILE: &str = "secret.key";
/// The shared CA certificate (or bundle, during a rotation) written into the data dir for
/// clients and scripts, as before the CA moved into the store.
pub const CA_FILE: &str = trellis_tls::CA_CERT_FILE;

/// Sealed values start with this, so a future format can be told apart.
const SEALED_PREFIX: &str = "aes256gcm:";
/// Additional data bound into each sealed value: a sealed CA key cannot be passed off as the
/// link key or the other way round.
const AAD_CA_KEY: &[u8] = b"trellis cluster CA key";
const AAD_LINK_KEY: &[u8] = b"trellis code-link key";

/// The operator's key that seals the store's secrets (32 bytes).
pub struct SecretKey {
    key: LessSafeKey,
    /// Where it came from, for error messages.
    origin: PathBuf,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32], origin: PathBuf) -> SecretKey {
        let key = UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes is an AES-256 key");
        SecretKey {
            key: LessSafeKey::new(key),
            origin,
        }
    }

    /// Reads the key file `--secret-key-file` names: 64 hex digits (`openssl rand -hex 32`).
    pub fn load(path: &Path) -> anyhow::Result<SecretKey> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --secret-key-file {}", path.display()))?;
        let bytes = hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        let Some(bytes) = bytes else {
            bail!(
                "--secret-key-file {}: expected 64 hex digits (32 bytes; `openssl rand -hex 32` makes one)",
                path.display()
            );
        };
        Ok(SecretKey::from_bytes(&bytes, path.to_owned()))
    }

    /// The key of `--secret-key-file` when given, otherwise `DATA_DIR/secret.key`; never creates
    /// one (for commands that change what the store already holds).
    pub fn load_existing(file: Option<&Path>, data_dir: &Path) -> anyhow::Result<SecretKey> {
        SecretKey::load(file.unwrap_or(&data_dir.join(SECRET_KEY_FILE)))
    }

    /// The key of `--secret-key-file` when given; otherwise `DATA_DIR/secret.key`, created
    /// (32 random bytes, mode 0600) when it does not exist.
    pub fn load_or_create(file: Option<&Path>, data_dir: &Path) -> anyhow::Result<SecretKey> {
        if let Some(file) = file {
            return SecretKey::load(file);
        }
        let path = data_dir.join(SECRET_KEY_FILE);
        if !path.exists() {
            let bytes: [u8; 32] = rand::random();
            write_private(&path, format!("{}\n", hex::encode(bytes)).as_bytes())
                .with_context(|| format!("cannot create {}", path.display()))?;
            tracing::info!(path = %path.display(), "created the secret key that seals the store's secrets");
        }
        SecretKey::load(&path)
    }

    /// `plaintext` sealed under this key with a fresh random nonce: `aes256gcm:` and the base64
    /// of nonce ‖ ciphertext ‖ tag.
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut in_out,
            )
            .expect("sealing fails only for inputs of gigabytes");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&in_out);
        format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        )
    }

    /// The plaintext of a value [`SecretKey::seal`] made with the same key and `aad`; `None`
    /// when it was sealed under another key, for another purpose, or altered.
    fn open(&self, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
        let b64 = sealed.strip_prefix(SEALED_PREFIX)?;
        let mut data = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        if data.len() < NONCE_LEN {
            return None;
        }
        let mut in_out = data.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&data).ok()?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// The stored record's body. Certificates are public; keys are sealed.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Stored {
    /// The CA that issues listener certificates.
    ca: StoredCa,
    /// CAs replaced by a rotation and still trusted (newest first), certificates only.
    #[serde(default)]
    previous: Vec<String>,
    /// The HMAC key of code-download links, sealed.
    code_link_key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct StoredCa {
    certificate: String,
    key: String,
}

/// The shared secrets, opened.
pub struct ClusterSecrets {
    /// The CA that issues listener certificates.
    pub ca: Arc<CertificateAuthority>,
    /// What clients should trust: the issuing CA's certificate, then any previous one still in
    /// its overlap (PEM, concatenated).
    pub trust_pem: String,
    /// The HMAC key of Lambda `Code.Location` links.
    pub code_link_key: [u8; 32],
}

/// The error a node gets when its key is not the one the store's secrets were sealed with: one
/// line that names the flag.
fn wrong_key(key: &SecretKey) -> anyhow::Error {
    anyhow::anyhow!(
        "the store's shared secrets (the cluster CA and code-link key) cannot be decrypted with the \
         secret key in {}: every node of one store needs the same --secret-key-file",
        key.origin.display()
    )
}

impl Stored {
    fn open(&self, key: &SecretKey) -> anyhow::Result<ClusterSecrets> {
        let ca_key = key
            .open(&self.ca.key, AAD_CA_KEY)
            .ok_or_else(|| wrong_key(key))?;
        let link = key
            .open(&self.code_link_key, AAD_LINK_KEY)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| wrong_key(key))?;
        let ca_key = String::from_utf8(ca_key).context("the store's CA key is not PEM")?;
        let ca = CertificateAuthority::from_pem(&self.ca.certificate, &ca_key, "store record")
            .context("the store's CA is unusable")?;
        Ok(ClusterSecrets {
            ca: Arc::new(ca),
            trust_pem: self.trust_pem(),
            code_link_key: link,
        })
    }

    fn trust_pem(&self) -> String {
        let mut pem = self.ca.certificate.clone();
        for previous in &self.previous {
            if !pem.ends_with('\n') {
                pem.push('\n');
            }
            pem.push_str(previous);
        }
        pem
    }

    fn seal(ca: &CertificateAuthority, link: &[u8; 32], key: &SecretKey) -> Stored {
        Stored {
            ca: StoredCa {
                certificate: ca.certificate_pem(),
                key: key.seal(ca.key_pem().as_bytes(), AAD_CA_KEY),
            },
            previous: Vec::new(),
            code_link_key: key.seal(link, AAD_LINK_KEY),
        }
    }

    fn record(&self) -> anyhow::Result<Record> {
        Ok(Record {
            kind: KIND.into(),
            id: ID.into(),
            parent: None,
            name: None,
            arn: None,
            refs: Vec::new(),
            body: serde_json::to_value(self)?,
            seq: 0,
        })
    }
}

/// The stored record, if any.
async fn read(store: &Store) -> anyhow::Result<Option<Stored>> {
    let mut tx = store.unscoped().read().await?;
    let record = tx.get(KIND, ID).await?;
    drop(tx);
    record
        .map(|r| {
            serde_json::from_value(r.body).context("the store's shared-secrets record is malformed")
        })
        .transpose()
}

/// The store's shared secrets, created when the store has none: with the CA `data_dir` holds
/// from before the CA moved into the store (`ca.pem`, `ca-key.pem`) when there is one, so clients
/// keep trusting it, otherwise a new one. Nodes starting at once agree: writers are serialized,
/// the first inserts and every other one reads what it inserted. Writes `DATA_DIR/ca.pem`.
pub async fn load_or_create(
    store: &Store,
    data_dir: &Path,
    key: &SecretKey,
) -> anyhow::Result<ClusterSecrets> {
    let stored = match read(store).await? {
        Some(stored) => stored,
        None => create(store, data_dir, key).await?,
    };
    let secrets = stored.open(key)?;
    // An earlier version's unencrypted CA key defeats the sealing: say so at every start.
    let old_key = data_dir.join(trellis_tls::CA_KEY_FILE);
    if old_key.exists() {
        tracing::warn!(path = %old_key.display(), "this file is no longer used (the CA's key is in the store, encrypted); delete it, or move it to an offline backup");
    }
    write_public(&data_dir.join(CA_FILE), secrets.trust_pem.as_bytes())
        .with_context(|| format!("cannot write {}", data_dir.join(CA_FILE).display()))?;
    Ok(secrets)
}

async fn create(store: &Store, data_dir: &Path, key: &SecretKey) -> anyhow::Result<Stored> {
    let (ca, imported) = match CertificateAuthority::load_existing(data_dir)
        .with_context(|| format!("cannot import the CA in {}", data_dir.display()))?
    {
        Some(ca) => (ca, true),
        None => (CertificateAuthority::create()?, false),
    };
    let candidate = Stored::seal(&ca, &rand::random(), key);
    let mut tx = store.unscoped().write().await?;
    if let Some(existing) = tx.get(KIND, ID).await? {
        tx.rollback().await?;
        return serde_json::from_value(existing.body)
            .context("the store's shared-secrets record is malformed");
    }
    match tx.insert(&candidate.record()?).await {
        Ok(_) => {}
        // Belt and braces: writers are serialized, but a conflict still means another node won.
        Err(StoreError::Conflict(_)) => {
            return read(store)
                .await?
                .context("the shared-secrets record vanished");
        }
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    if imported {
        tracing::info!(dir = %data_dir.display(), "imported the data dir's CA into the store: every node now uses it (ca-key.pem is no longer read)");
    } else {
        tracing::info!("created the cluster CA and code-link key in the store");
    }
    Ok(candidate)
}

/// What `trellis ca` prints: the trusted certificates, read without the secret key; `None`
/// when the store holds no CA yet.
pub async fn trust_pem(store: &Store) -> anyhow::Result<Option<String>> {
    Ok(read(store).await?.map(|s| s.trust_pem()))
}

/// `trellis ca rotate`: a new CA becomes the issuer; the current one stays trusted until
/// [`retire_previous`]. Returns the new trust bundle.
pub async fn rotate(store: &Store, key: &SecretKey) -> anyhow::Result<String> {
    let mut tx = store.unscoped().write().await?;
    let Some(record) = tx.get(KIND, ID).await? else {
        bail!("the store holds no CA yet: start `trellis serve` first");
    };
    let mut stored: Stored = serde_json::from_value(record.body.clone())?;
    // Proves the key before anything is replaced with material sealed under it.
    stored.open(key)?;
    let new = CertificateAuthority::create()?;
    let old = std::mem::replace(
        &mut stored.ca,
        StoredCa {
            certificate: new.certificate_pem(),
            key: key.seal(new.key_pem().as_bytes(), AAD_CA_KEY),
        },
    );
    stored.previous.insert(0, old.certificate);
    tx.update(&Record {
        body: serde_json::to_value(&stored)?,
        ..record
    })
    .await?;
    tx.commit().await?;
    Ok(stored.trust_pem())
}

/// `trellis ca retire-previous`: stops trusting CAs replaced by a rotation. Returns the new
/// trust bundle (the issuing CA alone).
pub async fn retire_previous(store: &Store) -> anyhow::Result<String> {
    let mut tx = store.unscoped().write().await?;
    let Some(record) = tx.get(KIND, ID).await? else {
        bail!("the store holds no CA yet: start `trellis serve` first");
    };
    let mut stored: Stored = serde_json::from_value(record.body.clone())?;
    stored.previous.clear();
    tx.update(&Record {
        body: serde_json::to_value(&stored)?,
        ..record
    })
    .await?;
    tx.commit().await?;
    Ok(stored.trust_pem())
}

/// Writes a file readable by its owner only, created with that mode (never readable by others,
/// not even for a moment); fails if it exists.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Replaces a certificate file through a rename, so a reader never sees half of it. Mode 0600
/// like everything in the data dir (which is private); clients get a copy or `trellis ca`.
fn write_public(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretKey {
        SecretKey::from_bytes(&[byte; 32], PathBuf::from("test.key"))
    }

    #[test]
    fn sealing_round_trips_and_binds_key_and_purpose() {
        let k = key(1);
        let sealed = k.seal(b"hello", AAD_CA_KEY);
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("hello"));
        assert_eq!(k.open(&sealed, AAD_CA_KEY).as_deref(), Some(&b"hello"[..]));
        // Another key, another purpose, or a changed byte: nothing.
        assert_eq!(key(2).open(&sealed, AAD_CA_KEY), None);
        assert_eq!(k.open(&sealed, AAD_LINK_KEY), None);
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed.strip_prefix(SEALED_PREFIX).unwrap())
            .unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        );
        assert_eq!(k.open(&tampered, AAD_CA_KEY), None);
        // Fresh nonces: the same plaintext never seals the same way twice.
        assert_ne!(k.seal(b"hello", AAD_CA_KEY), sealed);
        assert_eq!(k.open("garbage", AAD_CA_KEY), None);
        assert_eq!(k.open(SEALED_PREFIX, AAD_CA_KEY), None);
    }

    #[test]
    fn the_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = SecretKey::load_or_create(None, dir.path()).unwrap();
        let path = dir.path().join(SECRET_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = SecretKey::load_or_create(None, dir.path()).unwrap();
        let sealed = first.seal(b"x", AAD_LINK_KEY);
        assert_eq!(
            again.open(&sealed, AAD_LINK_KEY).as_deref(),
            Some(&b"x"[..])
        );
        std::fs::write(dir.path().join("bad.key"), "not hex").unwrap();
        let err = SecretKey::load(&dir.path().join("bad.key")).unwrap_err();
        assert!(err.to_string().contains("64 hex digits"), "{err}");
    }

    async fn sqlite_store(dir: &Path) -> Store {
        Store::connect(&Store::sqlite_url(&dir.join("trellis.db")))
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_starts_agree_on_one_ca_and_link_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path()).await;
        let mut starts = Vec::new();
        for i in 0..6 {
            let store = store.clone();
            // Each "node" has a data dir of its own and the same secret key.
            let node_dir = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            starts.push(tokio::spawn(async move {
                let s = load_or_create(&store, &node_dir, &key(7)).await.unwrap();
                let file = std::fs::read_to_string(node_dir.join(CA_FILE)).unwrap();
                assert_eq!(file, s.trust_pem);
                (s.ca.certificate_pem(), s.code_link_key)
            }));
        }
        let mut seen = Vec::new();
        for start in starts {
            seen.push(start.await.unwrap());
        }
        assert!(
            seen.iter().all(|s| *s == seen[0]),
            "every node got the same CA and link key"
        );
        // A node with another key refuses, naming the flag.
        let err = load_or_create(&store, dir.path(), &key(8))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("--secret-key-file"), "{err}");
        assert!(!err.to_string().contains('\n'));
    }

    #[tokio::test]
    async fn a_data_dir_ca_is_imported_and_rotation_keeps_an_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let old = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let store = sqlite_store(dir.path()).await;
        let s = load_or_create(&store, dir.path(), &key(3)).await.unwrap();
        assert_eq!(
            s.ca.certificate_pem(),
            old.certificate_pem(),
            "the CA clients trust is kept"
        );
        assert_eq!(
            trust_pem(&store).await.unwrap().unwrap(),
            old.certificate_pem()
        );

        let bundle = rotate(&store, &key(3)).await.unwrap();
        let s = load_or_create(&store, dir.path(), &key(3)).await.unwrap();
        assert_ne!(
            s.ca.certificate_pem(),
            old.certificate_pem(),
            "a new issuer"
        );
        assert_eq!(
            bundle,
            format!("{}{}", s.ca.certificate_pem(), old.certificate_pem())
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CA_FILE)).unwrap(),
            bundle
        );
        assert!(
            rotate(&store, &key(4)).await.is_err(),
            "a wrong key rotates nothing"
        );

        let alone = retire_previous(&store).await.unwrap();
        assert_eq!(alone, s.ca.certificate_pem());
        assert_eq!(trust_pem(&store).await.unwrap().unwrap(), alone);
    }
}
