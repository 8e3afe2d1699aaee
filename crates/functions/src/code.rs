//! Deployment packages: checking an uploaded zip, and unpacking the code of a given SHA-256 into
//! `DATA_DIR/functions/<sha256>/` once, atomically, for the runtime processes to run from.
//!
//! The code dir is named by the package's digest, so every version and every node that runs the
//! same package shares one unpacked copy, and a dir that exists is always complete: a package is
//! unpacked into a temporary sibling and renamed into place.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Lambda's limit for a zip uploaded in the request (`ZipFile`).
pub const MAX_ZIPPED_BYTES: usize = 52_428_800;
/// Lambda's limit for the unpacked code.
pub const MAX_UNZIPPED_BYTES: u64 = 262_144_000;

/// The subdirectory of the data dir that holds unpacked code and the runtime bootstraps.
pub const FUNCTIONS_DIR: &str = "functions";
/// The subdirectory of `functions/` holding Trellis's bootstrap scripts.
pub const RUNTIME_DIR: &str = "_runtime";

/// What the API reports about a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeInfo {
    pub sha256_hex: String,
    pub size: u64,
}

/// Why a package was refused, in Lambda's words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("Zipped size must be smaller than {MAX_ZIPPED_BYTES} bytes")]
    TooLarge,
    #[error("Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes")]
    UnzippedTooLarge,
    #[error("Could not unzip uploaded file. Please check your file, then try to upload again.")]
    NotAZip,
}

/// Checks an uploaded package: a readable zip within Lambda's size limits.
pub fn inspect(zip: &[u8]) -> Result<CodeInfo, CodeError> {
    if zip.len() > MAX_ZIPPED_BYTES {
        return Err(CodeError::TooLarge);
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).map_err(|_| CodeError::NotAZip)?;
    let mut unzipped: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|_| CodeError::NotAZip)?;
        unzipped = unzipped.saturating_add(entry.size());
    }
    if unzipped > MAX_UNZIPPED_BYTES {
        return Err(CodeError::UnzippedTooLarge);
    }
    Ok(CodeInfo {
        sha256_hex: hex::encode(Sha256::digest(zip)),
        size: zip.len() as u64,
    })
}

/// `DATA_DIR/functions`.
pub fn functions_root(data_dir: &Path) -> PathBuf {
    data_dir.join(FUNCTIONS_DIR)
}

/// Where the package with this digest is unpacked.
pub fn code_dir(data_dir: &Path, sha256_hex: &str) -> PathBuf {
    functions_root(data_dir).join(sha256_hex)
}

/// Unpacks `zip` (whose digest is `sha256_hex`) into its code dir unless it is already there, and
/// returns the dir. Blocking: call it from `spawn_blocking`.
pub fn unpack(data_dir: &Path, sha256_hex: &str, zip: &[u8]) -> std::io::Result<PathBuf> {
    let target = code_dir(data_dir, sha256_hex);
    if target.is_dir() {
        return Ok(target);
    }
    let actual = hex::encode(Sha256::digest(zip));
    if actual != sha256_hex {
        return Err(std::io::Error::other(format!(
            "stored code {sha256_hex} has digest {actual}"
        )));
    }
    let root = functions_root(data_dir);
    std::fs::create_dir_all(&root)?;
    let tmp = root.join(format!(
        ".tmp-{sha256_hex}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let result = extract_into(zip, &tmp);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, &target) {
        Ok(()) => Ok(target),
        // Another invocation unpacked the same package first; theirs is as good as ours.
        Err(_) if target.is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(target)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

fn extract_into(zip: &[u8], dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).map_err(std::io::Error::other)?;
    // `extract` refuses entries and symlinks that would land outside `dir`, and applies the
    // Unix modes the zip records.
    archive.extract(dir).map_err(std::io::Error::other)?;
    // A `bootstrap` zipped without its execute bit (a Windows zip tool, or Python's zipfile
    // without external_attr) would fail to start; Lambda would refuse it too, but being lenient
    // here costs nothing and saves a confusing round trip.
    let bootstrap = dir.join("bootstrap");
    if bootstrap.is_file() {
        use std::os::unix::fs::PermissionsExt;
        let mut perms = std::fs::metadata(&bootstrap)?.permissions();
        perms.set_mode(perms.mode() | 0o755);
        std::fs::set_permissions(&bootstrap, perms)?;
    }
    // Directories without modes in the zip can come out unreadable for their own files.
    Ok(())
}

/// Removes temporary dirs left by an unpack that was interrupted (a crash or `kill -9`).
pub fn clean_temporary(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(functions_root(data_dir)) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    /// A zip of `(path, content, unix mode)` entries.
    pub(crate) fn make_zip(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut out);
            for (path, content, mode) in files {
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .unix_permissions(*mode);
                w.start_file(*path, options).unwrap();
                w.write_all(content).unwrap();
            }
            w.finish().unwrap();
        }
        out.into_inner()
    }

    #[test]
    fn inspects_packages() {
        let zip = make_zip(&[("app.py", b"def handler(e, c):\n    return 1\n", 0o644)]);
        let info = inspect(&zip).unwrap();
        assert_eq!(info.size, zip.len() as u64);
        assert_eq!(info.sha256_hex, hex::encode(Sha256::digest(&zip)));
        assert_eq!(inspect(b"not a zip"), Err(CodeError::NotAZip));
        assert_eq!(inspect(b""), Err(CodeError::NotAZip));
        assert_eq!(
            inspect(&vec![0u8; MAX_ZIPPED_BYTES + 1]),
            Err(CodeError::TooLarge)
        );
    }

    #[test]
    fn unpacks_once_with_modes() {
        let dir = tempfile::tempdir().unwrap();
        let zip = make_zip(&[
            ("bootstrap", b"#!/bin/sh\necho hi\n", 0o644),
            ("lib/util.py", b"X = 1\n", 0o644),
            ("run.sh", b"#!/bin/sh\n", 0o755),
        ]);
        let sha = hex::encode(Sha256::digest(&zip));
        let code = unpack(dir.path(), &sha, &zip).unwrap();
        assert_eq!(code, code_dir(dir.path(), &sha));
        assert_eq!(
            std::fs::read_to_string(code.join("lib/util.py")).unwrap(),
            "X = 1\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(code.join(p))
                .unwrap()
                .permissions()
                .mode()
        };
        assert_eq!(
            mode("bootstrap") & 0o111,
            0o111,
            "bootstrap made executable"
        );
        assert_eq!(mode("run.sh") & 0o111, 0o111);
        assert_eq!(mode("lib/util.py") & 0o111, 0);
        // A second unpack finds the dir and does nothing.
        std::fs::write(code.join("marker"), b"x").unwrap();
        unpack(dir.path(), &sha, &zip).unwrap();
        assert!(code.join("marker").exists());
        // No temporary dirs are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(functions_root(dir.path()))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn refuses_wrong_digest_and_escaping_paths() {
        let dir = tempfile::tempdir().unwrap();
        let zip = make_zip(&[("a.txt", b"a", 0o644)]);
        assert!(unpack(dir.path(), &"0".repeat(64), &zip).is_err());
        let evil = make_zip(&[("../escape.txt", b"x", 0o644), ("ok.txt", b"ok", 0o644)]);
        let sha = hex::encode(Sha256::digest(&evil));
        // Whether the entry is skipped or the whole package refused, nothing lands outside.
        let _ = unpack(dir.path(), &sha, &evil);
        assert!(!functions_root(dir.path()).join("escape.txt").exists());
        assert!(!dir.path().join("escape.txt").exists());
    }
}
