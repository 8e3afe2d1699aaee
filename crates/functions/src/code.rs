//! Deployment packages: checking an uploaded zip (every entry's path, symlink target and size),
//! and unpacking the code of a given SHA-256 into `CODE_DIR/<sha256>/` for the runtime processes
//! to run from.
//!
//! `CODE_DIR` (`--function-code-dir`) lies outside the data dir. The code dir is named by the
//! package's digest, so every version that runs the same package shares one unpacked copy, and
//! a dir that exists is complete: a package is unpacked into a temporary sibling and renamed into
//! place. Unpacked trees are owned by the server's user and read-only (dirs 0555, files 0444, or
//! 0555 when the zip marked them executable: no set-id bits survive); sandboxes see them through
//! a read-only bind. Each unpack records a digest of the tree ([`tree_digest`]), which the host
//! checks before starting a version's processes, so a tree changed behind its back is unpacked
//! afresh from the stored blob.

use std::io::{Cursor, Read};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// Lambda's limit for a zip uploaded in the request (`ZipFile`).
pub const MAX_ZIPPED_BYTES: usize = 52_428_800;
/// Lambda's limit for the unpacked code.
pub const MAX_UNZIPPED_BYTES: u64 = 262_144_000;
/// Entries a package may have (a zip bomb of empty entries costs time, not bytes).
pub const MAX_ENTRIES: usize = 100_000;
/// Longest symlink target inspected.
const MAX_LINK_TARGET: u64 = 4096;

/// The subdirectory of the code dir holding Trellis's bootstrap scripts.
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
    /// An entry whose path leaves the package (`..`, absolute) or a symlink pointing outside.
    #[error(
        "Could not unzip uploaded file: the entry {0:?} points outside the package. Please check \
         your file, then try to upload again."
    )]
    UnsafePath(String),
    /// An entry whose declared size or checksum does not match its content.
    #[error(
        "Could not unzip uploaded file: the entry {0:?} is corrupt (its declared size or CRC does \
         not match its content). Please check your file, then try to upload again."
    )]
    Corrupt(String),
    #[error("Could not unzip uploaded file: more than {MAX_ENTRIES} entries.")]
    TooManyEntries,
}

const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;

/// The normal components of a relative, inward path; `None` for `..`, absolute paths, drive
/// letters and backslashes (a Windows separator that could mean `..\`).
fn inward(name: &str) -> Option<Vec<String>> {
    if name.contains('\\') || name.contains('\0') {
        return None;
    }
    let mut parts = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts)
}

/// Whether a symlink at `entry` (components) with `target` stays inside the package, resolving
/// `..` lexically from the link's dir.
fn link_stays_inside(entry: &[String], target: &str) -> bool {
    if target.starts_with('/') || target.contains('\\') || target.contains('\0') {
        return false;
    }
    let mut at: Vec<&str> = entry[..entry.len().saturating_sub(1)]
        .iter()
        .map(String::as_str)
        .collect();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if at.pop().is_none() {
                    return false;
                }
            }
            p => at.push(p),
        }
    }
    true
}

/// Checks an uploaded package: a readable zip within Lambda's size limits whose every entry
/// stays inside it and is as large as it says. Each entry is decompressed (bounded by the
/// remaining unzipped budget) so that declared sizes and CRCs are checked, not trusted.
pub fn inspect(zip: &[u8]) -> Result<CodeInfo, CodeError> {
    if zip.len() > MAX_ZIPPED_BYTES {
        return Err(CodeError::TooLarge);
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).map_err(|_| CodeError::NotAZip)?;
    if archive.len() > MAX_ENTRIES {
        return Err(CodeError::TooManyEntries);
    }
    let mut declared: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|_| CodeError::NotAZip)?;
        declared = declared.saturating_add(entry.size());
    }
    if declared > MAX_UNZIPPED_BYTES {
        return Err(CodeError::UnzippedTooLarge);
    }
    let mut unzipped: u64 = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|_| CodeError::NotAZip)?;
        let name = entry.name().map_err(|_| CodeError::NotAZip)?.to_string();
        let Some(parts) = inward(&name) else {
            return Err(CodeError::UnsafePath(name));
        };
        let is_link = entry.unix_mode().is_some_and(|m| m & S_IFMT == S_IFLNK);
        let declared_size = entry.size();
        let budget = MAX_UNZIPPED_BYTES - unzipped;
        let mut content = Vec::new();
        let actual = if is_link {
            (&mut entry)
                .take(MAX_LINK_TARGET + 1)
                .read_to_end(&mut content)
                .map_err(|_| CodeError::Corrupt(name.clone()))? as u64
        } else {
            std::io::copy(&mut (&mut entry).take(budget + 1), &mut std::io::sink())
                .map_err(|_| CodeError::Corrupt(name.clone()))?
        };
        if actual > budget {
            return Err(CodeError::UnzippedTooLarge);
        }
        if actual != declared_size {
            return Err(CodeError::Corrupt(name));
        }
        unzipped += actual;
        if is_link {
            let target =
                String::from_utf8(content).map_err(|_| CodeError::UnsafePath(name.clone()))?;
            if parts.is_empty() || !link_stays_inside(&parts, &target) {
                return Err(CodeError::UnsafePath(name));
            }
        }
    }
    Ok(CodeInfo {
        sha256_hex: hex::encode(Sha256::digest(zip)),
        size: zip.len() as u64,
    })
}

/// Where the package with this digest is unpacked.
pub fn code_dir(root: &Path, sha256_hex: &str) -> PathBuf {
    root.join(sha256_hex)
}

/// Unpacks `zip` (whose digest is `sha256_hex`) into a fresh code dir under `root`, replacing
/// whatever is there, and returns the dir and its [`tree_digest`]. Blocking: call it from
/// `spawn_blocking`.
pub fn unpack(root: &Path, sha256_hex: &str, zip: &[u8]) -> std::io::Result<(PathBuf, String)> {
    let target = code_dir(root, sha256_hex);
    let actual = hex::encode(Sha256::digest(zip));
    if actual != sha256_hex {
        return Err(std::io::Error::other(format!(
            "stored code {sha256_hex} has digest {actual}"
        )));
    }
    // The package was checked when it was stored; check again, it costs little and the store
    // may hold packages from before the checks.
    inspect(zip).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(root)?;
    let tmp = root.join(format!(
        ".tmp-{sha256_hex}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let result = extract_into(zip, &tmp).and_then(|()| tree_digest(&tmp));
    let digest = match result {
        Ok(d) => d,
        Err(e) => {
            let _ = remove_tree(&tmp);
            return Err(e);
        }
    };
    if target.exists() {
        // A stale or tampered copy: set it aside, then remove it.
        let old = root.join(format!(".old-{}", uuid::Uuid::new_v4().simple()));
        let _ = std::fs::rename(&target, &old);
        let _ = remove_tree(&old);
    }
    match std::fs::rename(&tmp, &target) {
        Ok(()) => Ok((target, digest)),
        // Another invocation unpacked the same package first; theirs is as good as ours.
        Err(_) if target.is_dir() && tree_digest(&target).ok().as_ref() == Some(&digest) => {
            let _ = remove_tree(&tmp);
            Ok((target, digest))
        }
        Err(e) => {
            let _ = remove_tree(&tmp);
            Err(e)
        }
    }
}

fn extract_into(zip: &[u8], dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).map_err(std::io::Error::other)?;
    // `extract` refuses entries and symlinks that would land outside `dir`, and applies the
    // Unix modes the zip records (normalized below).
    archive.extract(dir).map_err(std::io::Error::other)?;
    // A `bootstrap` zipped without its execute bit (a Windows zip tool, or Python's zipfile
    // without external_attr) would fail to start; being lenient here costs nothing.
    let bootstrap = dir.join("bootstrap");
    if bootstrap.is_file() {
        use std::os::unix::fs::PermissionsExt;
        let mut perms = std::fs::metadata(&bootstrap)?.permissions();
        perms.set_mode(perms.mode() | 0o755);
        std::fs::set_permissions(&bootstrap, perms)?;
    }
    seal(dir)
}

/// Makes a dir Trellis wrote (the bootstrap scripts) read-only, as unpacked code is.
pub fn seal_dir(dir: &Path) -> std::io::Result<()> {
    seal(dir)
}

/// Makes a tree read-only for everyone: dirs 0555, files 0444 (0555 when executable). Set-id
/// and sticky bits a zip may carry are dropped. Symlinks are left alone (never followed).
fn seal(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.path().symlink_metadata()?;
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_dir() {
            seal(&entry.path())?;
        } else {
            let exec = meta.permissions().mode() & 0o111 != 0;
            let mode = if exec { 0o555 } else { 0o444 };
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))
}

/// Removes a sealed tree (its dirs are read-only, so they are made writable first).
pub fn remove_tree(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fn unseal(dir: &Path) {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    unseal(&e.path());
                }
            }
        }
    }
    if !dir.exists() {
        return Ok(());
    }
    unseal(dir);
    std::fs::remove_dir_all(dir)
}

/// A digest of a tree: every path, its kind, mode and content (or link target), in order.
pub fn tree_digest(dir: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(root: &Path, dir: &Path, hasher: &mut Sha256) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let meta = path.symlink_metadata()?;
            let rel = path.strip_prefix(root).unwrap_or(&path);
            hasher.update(rel.as_os_str().as_encoded_bytes());
            hasher.update([0]);
            hasher.update(meta.permissions().mode().to_le_bytes());
            if meta.file_type().is_symlink() {
                hasher.update(b"L");
                hasher.update(std::fs::read_link(&path)?.as_os_str().as_encoded_bytes());
            } else if meta.is_dir() {
                hasher.update(b"D");
                walk(root, &path, hasher)?;
            } else if meta.is_file() {
                hasher.update(b"F");
                hasher.update(meta.len().to_le_bytes());
                let mut f = std::fs::File::open(&path)?;
                std::io::copy(&mut f, hasher)?;
            } else {
                hasher.update(b"?");
            }
            hasher.update([0]);
        }
        Ok(())
    }
    let mut hasher = Sha256::new();
    hasher.update(
        std::fs::symlink_metadata(dir)?
            .permissions()
            .mode()
            .to_le_bytes(),
    );
    walk(dir, dir, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Empties the code dir: unpacked trees are caches, and ones from an earlier run are not
/// trusted (their digests were not recorded by this process).
pub fn reset(root: &Path) -> std::io::Result<()> {
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
    }
    Ok(())
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

    /// A zip written entry by entry with `zip`'s raw options: `(name, content, mode)`, where
    /// a mode with `S_IFLNK` makes a symlink whose content is its target.
    pub(crate) fn make_zip_raw(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut out);
            for (path, content, mode) in files {
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored)
                    .unix_permissions(*mode & 0o7777);
                if mode & S_IFMT == S_IFLNK {
                    w.add_symlink(*path, std::str::from_utf8(content).unwrap(), options)
                        .unwrap();
                } else {
                    w.start_file(*path, options).unwrap();
                    w.write_all(content).unwrap();
                }
            }
            w.finish().unwrap();
        }
        out.into_inner()
    }

    /// Rewrites the uncompressed size of the first entry in both its local and central headers
    /// (a "lying size" package).
    fn lie_about_size(mut zip: Vec<u8>, size: u32) -> Vec<u8> {
        // Local file header: signature PK\3\4, uncompressed size at offset 22.
        assert_eq!(&zip[0..4], b"PK\x03\x04");
        zip[22..26].copy_from_slice(&size.to_le_bytes());
        // Central directory header: signature PK\1\2, uncompressed size at offset 24.
        let central = zip
            .windows(4)
            .position(|w| w == b"PK\x01\x02")
            .expect("central directory");
        zip[central + 24..central + 28].copy_from_slice(&size.to_le_bytes());
        zip
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
    fn refuses_packages_that_leave_their_tree_or_lie_about_sizes() {
        const LINK: u32 = S_IFLNK | 0o777;
        // (what, zip, accepted?)
        let cases: Vec<(&str, Vec<u8>, Result<(), CodeError>)> = vec![
            ("plain", make_zip_raw(&[("a/b.py", b"x", 0o644)]), Ok(())),
            (
                "link inside",
                make_zip_raw(&[("lib/a.py", b"x", 0o644), ("b.py", b"lib/a.py", LINK)]),
                Ok(()),
            ),
            (
                "link up but inside",
                make_zip_raw(&[("lib/x/c.py", b"../a.py", LINK), ("lib/a.py", b"x", 0o644)]),
                Ok(()),
            ),
            (
                "dot-dot",
                make_zip_raw(&[("../escape.py", b"x", 0o644)]),
                Err(CodeError::UnsafePath("../escape.py".into())),
            ),
            (
                "nested dot-dot",
                make_zip_raw(&[("a/../../escape.py", b"x", 0o644)]),
                Err(CodeError::UnsafePath("a/../../escape.py".into())),
            ),
            (
                "absolute",
                make_zip_raw(&[("/etc/cron.d/x", b"x", 0o644)]),
                Err(CodeError::UnsafePath("/etc/cron.d/x".into())),
            ),
            (
                "backslash",
                make_zip_raw(&[("..\\escape.py", b"x", 0o644)]),
                Err(CodeError::UnsafePath("..\\escape.py".into())),
            ),
            (
                "absolute link",
                make_zip_raw(&[("etc", b"/etc", LINK)]),
                Err(CodeError::UnsafePath("etc".into())),
            ),
            (
                "link out",
                make_zip_raw(&[("lib/up", b"../../data", LINK)]),
                Err(CodeError::UnsafePath("lib/up".into())),
            ),
            (
                "size larger than content",
                lie_about_size(make_zip_raw(&[("a.py", b"hello", 0o644)]), 500),
                Err(CodeError::Corrupt("a.py".into())),
            ),
            (
                "size smaller than content",
                lie_about_size(make_zip_raw(&[("a.py", b"hello world", 0o644)]), 2),
                Err(CodeError::Corrupt("a.py".into())),
            ),
            (
                "size over the limit",
                lie_about_size(make_zip_raw(&[("a.py", b"hello", 0o644)]), u32::MAX - 1),
                Err(CodeError::UnzippedTooLarge),
            ),
        ];
        for (what, zip, want) in cases {
            let got = inspect(&zip).map(|_| ());
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn unpacks_sealed_with_modes_and_a_tree_digest() {
        let dir = tempfile::tempdir().unwrap();
        let zip = make_zip(&[
            ("bootstrap", b"#!/bin/sh\necho hi\n", 0o644),
            ("lib/util.py", b"X = 1\n", 0o644),
            ("run.sh", b"#!/bin/sh\n", 0o4755),
        ]);
        let sha = hex::encode(Sha256::digest(&zip));
        let (code, digest) = unpack(dir.path(), &sha, &zip).unwrap();
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
                & 0o7777
        };
        assert_eq!(mode("bootstrap"), 0o555, "bootstrap made executable");
        assert_eq!(mode("run.sh"), 0o555, "no set-uid bit survives");
        assert_eq!(mode("lib/util.py"), 0o444);
        assert_eq!(mode("lib"), 0o555);
        assert_eq!(mode(""), 0o555);
        assert_eq!(tree_digest(&code).unwrap(), digest);
        // A changed tree has another digest; unpacking again replaces it.
        std::fs::set_permissions(&code, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(code.join("marker"), b"x").unwrap();
        assert_ne!(tree_digest(&code).unwrap(), digest);
        let (again, digest2) = unpack(dir.path(), &sha, &zip).unwrap();
        assert_eq!(again, code);
        assert_eq!(digest2, digest);
        assert!(!code.join("marker").exists());
        // No temporary dirs are left behind; reset empties the root.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, vec![sha.clone()]);
        reset(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn refuses_wrong_digest_and_escaping_paths() {
        let dir = tempfile::tempdir().unwrap();
        let zip = make_zip(&[("a.txt", b"a", 0o644)]);
        assert!(unpack(dir.path(), &"0".repeat(64), &zip).is_err());
        let evil = make_zip(&[("../escape.txt", b"x", 0o644), ("ok.txt", b"ok", 0o644)]);
        let sha = hex::encode(Sha256::digest(&evil));
        assert!(unpack(dir.path(), &sha, &evil).is_err());
        assert!(!dir.path().join("escape.txt").exists());
        assert!(!dir.path().parent().unwrap().join("escape.txt").exists());
    }
}
