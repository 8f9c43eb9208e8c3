//! Bundles: the assembled artifacts of one build in a directory, with a
//! versioned manifest, deployed later to any environment without building
//! (build once, promote the same bytes).
//!
//! ```text
//! DIR/landfall-bundle.json    the manifest (schema `landfall-bundle/1`)
//! DIR/artifacts/<name>/…      each artifact's tree
//! ```
//!
//! The manifest holds nothing that depends on where or when the bundle was
//! written, so the same commit and toolchain give the same bytes. Opening a
//! bundle checks every file against it (size and blake3, link targets, no
//! file missing and none extra) and every artifact id against its file
//! list, before anything else is done; modes and mtimes are not trusted
//! (archivers lose them) but restored from the manifest on import.
//!
//! [`write()`] makes a bundle (`build --out DIR`) and [`open`] reads one
//! (`deploy --from DIR`); [`publish`] puts one into an object store, each
//! file's sha256 beside its blake3 (`build --out s3://…`), and [`fetch`]
//! brings it back into a directory that is then opened like any other.
//! A [`Digest`], the blake3 of a manifest's exact bytes, pins a bundle
//! (`--from LOCATION#blake3:HEX`): `open` and `fetch` check it before they
//! believe anything the manifest says. [`releases`] stages a bundle's
//! releases with the workspace's configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::assemble::{self, Assembled, Entry, EntryKind, GitTree, Manifest, Source, Store};
use crate::error::{Error, Result};
use crate::store::{Object, Remote, Sha256Index};

pub mod releases;

pub const MANIFEST_FILE: &str = "landfall-bundle.json";
pub const SCHEMA: &str = "landfall-bundle/1";

/// A bundle's digest: the blake3 of the exact bytes of its manifest,
/// written `blake3:HEX`. The manifest gives every file's blake3 (and, in a
/// store, its sha256), so the digest stands for the whole bundle: an
/// operator who holds it (`--from LOCATION#blake3:HEX`) deploys those bytes
/// or nothing, whoever can write where the bundle is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest(blake3::Hash);

impl Digest {
    /// The digest of a manifest's bytes.
    pub fn of(manifest: &[u8]) -> Digest {
        Digest(blake3::hash(manifest))
    }

    /// Reads `blake3:HEX` (64 hex digits).
    pub fn parse(text: &str) -> std::result::Result<Digest, String> {
        text.strip_prefix("blake3:")
            .filter(|hex| hex.len() == 64)
            .and_then(|hex| blake3::Hash::from_hex(hex).ok())
            .map(Digest)
            .ok_or_else(|| {
                format!(
                    "`{text}` is not a bundle digest: it is written `blake3:` and 64 hex digits"
                )
            })
    }

    /// The hex digits alone.
    pub fn hex(&self) -> String {
        self.0.to_hex().to_string()
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "blake3:{}", self.0.to_hex())
    }
}

/// Splits what `--from` was given into where the bundle is (a directory,
/// or `s3://BUCKET/PREFIX`) and the digest it is pinned to, if it ends
/// with `#blake3:HEX`. A `#` followed by anything else is part of the
/// location.
pub fn split_pin(from: &str) -> std::result::Result<(&str, Option<Digest>), String> {
    match from.rsplit_once('#') {
        Some((location, pin)) if pin.starts_with("blake3:") => {
            Ok((location, Some(Digest::parse(pin)?)))
        }
        _ => Ok((from, None)),
    }
}

/// Refuses a manifest whose bytes are not those `pin` names, before
/// anything in it is believed.
fn check_pin(shown: &str, manifest: &[u8], pin: Option<&Digest>) -> Result<Digest> {
    let digest = Digest::of(manifest);
    match pin {
        Some(pin) if *pin != digest => Err(Error::Usage(format!(
            "the bundle at `{shown}` is not the one pinned: its manifest's digest is \
             {digest}, the pin is {pin}; it was changed after it was published, or the pin \
             names another bundle"
        ))),
        _ => Ok(digest),
    }
}

/// `landfall-bundle.json`. See `docs/bundle.md` for the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    /// Always [`SCHEMA`]; a later landfall writes a new one when the format
    /// changes incompatibly.
    pub schema: String,
    /// The version of landfall that wrote the bundle.
    pub landfall: String,
    pub project: String,
    /// The commit built, if the workspace is a git repository.
    pub revision: Option<String>,
    /// The working tree had changes the commit does not.
    pub dirty: bool,
    pub source_date_epoch: i64,
    /// `rustc -V` and its host.
    pub toolchain: String,
    pub profile: String,
    pub target: Option<String>,
    pub features: Vec<String>,
    /// The environment the bundle was built for, and its releases there.
    pub env: String,
    pub artifacts: Vec<BundleArtifact>,
    pub releases: Vec<BundleRelease>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleArtifact {
    pub name: String,
    /// The blake3 of the artifact's canonical manifest: its files, below.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<BundleGit>,
    pub files: Vec<BundleFile>,
}

/// Where a git artifact's tree comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleGit {
    pub commit: String,
    pub tree: String,
    /// The paths not from the tree (`files`, shared links).
    pub added: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum BundleFile {
    File {
        path: String,
        /// Octal, such as `0755`.
        mode: String,
        size: u64,
        blake3: String,
        /// The content's sha256, in a bundle published to an object store:
        /// its object's key there, and what hosts check it with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    Symlink {
        path: String,
        target: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleRelease {
    pub host: String,
    pub artifact: String,
    pub release: String,
}

impl BundleFile {
    fn of(entry: &Entry) -> BundleFile {
        match &entry.kind {
            EntryKind::File { mode, size, hash } => BundleFile::File {
                path: entry.path.clone(),
                mode: format!("{mode:04o}"),
                size: *size,
                blake3: hash.to_hex().to_string(),
                sha256: None,
            },
            EntryKind::Symlink { target } => BundleFile::Symlink {
                path: entry.path.clone(),
                target: target.clone(),
            },
        }
    }

    fn path(&self) -> &str {
        match self {
            BundleFile::File { path, .. } | BundleFile::Symlink { path, .. } => path,
        }
    }

    fn entry(&self) -> Option<Entry> {
        let kind = match self {
            BundleFile::File {
                mode, size, blake3, ..
            } => EntryKind::File {
                mode: u32::from_str_radix(mode, 8).ok().filter(|m| *m <= 0o7777)?,
                size: *size,
                hash: blake3::Hash::from_hex(blake3).ok()?,
            },
            BundleFile::Symlink { target, .. } => EntryKind::Symlink {
                target: target.clone(),
            },
        };
        Some(Entry {
            path: self.path().to_string(),
            kind,
        })
    }
}

impl BundleArtifact {
    pub fn of(assembled: &Assembled) -> BundleArtifact {
        BundleArtifact {
            name: assembled.artifact.clone(),
            id: assembled.id.clone(),
            git: assembled.git.as_ref().map(|git| BundleGit {
                commit: git.commit.clone(),
                tree: git.tree.clone(),
                added: git.added.iter().cloned().collect(),
            }),
            files: assembled
                .manifest
                .entries
                .iter()
                .map(BundleFile::of)
                .collect(),
        }
    }
}

/// Writes a bundle of `artifacts` (trees of the store) to `out`, replacing
/// a bundle already there. Nothing is left half-written: the bundle is
/// made beside `out` and renamed. Returns the digest of its manifest,
/// which pins it.
pub fn write(out: &Path, manifest: &BundleManifest, artifacts: &[Assembled]) -> Result<Digest> {
    // What a link leads to is not `--out`'s to replace.
    for path in [out.to_path_buf(), partial_of(out)] {
        if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::Usage(format!(
                "`{}` is a link, which a bundle is not written through; give `--out` a \
                 directory",
                path.display()
            )));
        }
    }
    if out.exists() && !out.join(MANIFEST_FILE).is_file() && !is_empty_dir(out) {
        return Err(Error::Usage(format!(
            "`{}` exists and is not a bundle; give `--out` a new directory",
            out.display()
        )));
    }
    let partial = partial_of(out);
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(Error::io("cannot remove", &partial))?;
    }
    for assembled in artifacts {
        let dir = partial.join("artifacts").join(&assembled.artifact);
        assemble::materialise_from(&dir, &assembled.manifest, |path| {
            Source::Copy(assembled.dir.join(path))
        })?;
    }
    let mut text = serde_json::to_string_pretty(manifest).expect("manifests serialise");
    text.push('\n');
    let path = partial.join(MANIFEST_FILE);
    fs::write(&path, &text).map_err(Error::io("cannot write", &path))?;
    if out.exists() {
        fs::remove_dir_all(out).map_err(Error::io("cannot replace", out))?;
    }
    fs::rename(&partial, out).map_err(Error::io("cannot rename", &partial))?;
    Ok(Digest::of(text.as_bytes()))
}

/// Where a bundle is made before it is renamed to `out`.
fn partial_of(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

/// The first of `files` whose path lies beneath another that is a link:
/// a tree that has it would be read, or written, through that link.
fn beneath_a_link(files: &[BundleFile]) -> Option<(&str, &str)> {
    let links: BTreeSet<&str> = files
        .iter()
        .filter(|f| matches!(f, BundleFile::Symlink { .. }))
        .map(BundleFile::path)
        .collect();
    files.iter().find_map(|file| {
        let path = file.path();
        path.match_indices('/')
            .find_map(|(i, _)| links.get(&path[..i]))
            .map(|link| (path, *link))
    })
}

fn is_empty_dir(path: &Path) -> bool {
    fs::read_dir(path).is_ok_and(|mut d| d.next().is_none())
}

/// A bundle whose every file matched its manifest when it was opened.
#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    /// The digest of its manifest's bytes, checked against the pin if it
    /// was opened with one.
    pub digest: Digest,
    pub manifest: BundleManifest,
    /// Per artifact name, its files as a manifest.
    manifests: BTreeMap<String, Manifest>,
}

/// Reads a bundle and verifies all of it: its manifest's bytes against
/// `pin` first, if there is one, then every file against the manifest;
/// any difference is an error naming the file (exit status 2: nothing was
/// contacted).
pub fn open(dir: &Path, pin: Option<&Digest>) -> Result<Bundle> {
    let refuse = |what: String| {
        Error::Usage(format!(
            "bundle `{}`: {what}; it is damaged or was changed after it was built",
            dir.display()
        ))
    };
    let path = dir.join(MANIFEST_FILE);
    let unreadable = |err: std::io::Error| {
        Error::Usage(format!(
            "`{}` is not a bundle: cannot read `{MANIFEST_FILE}`: {err}",
            dir.display()
        ))
    };
    if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(refuse(format!("`{MANIFEST_FILE}` is a link")));
    }
    let bytes = fs::read(&path).map_err(unreadable)?;
    let digest = check_pin(&dir.display().to_string(), &bytes, pin)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        unreadable(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "it is not UTF-8",
        ))
    })?;
    let schema = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("schema")?.as_str().map(str::to_string));
    if let Some(schema) = schema.as_deref().filter(|s| *s != SCHEMA) {
        return Err(Error::Usage(format!(
            "bundle `{}` has schema `{schema}`; this landfall reads `{SCHEMA}`",
            dir.display()
        )));
    }
    let manifest: BundleManifest = serde_json::from_str(&text)
        .map_err(|err| refuse(format!("`{MANIFEST_FILE}` is not valid: {err}")))?;

    let mut manifests = BTreeMap::new();
    let mut names = BTreeSet::new();
    for artifact in &manifest.artifacts {
        if !clean_path(&artifact.name) || artifact.name.contains('/') {
            return Err(refuse(format!(
                "`{MANIFEST_FILE}` names an invalid artifact `{}`",
                crate::diag::shown(&artifact.name)
            )));
        }
        names.insert(artifact.name.clone());
        let files = verify(dir, artifact).map_err(refuse)?;
        manifests.insert(artifact.name.clone(), files);
    }
    let artifacts_dir = dir.join("artifacts");
    for entry in fs::read_dir(&artifacts_dir).map_err(|e| refuse(format!("`artifacts/`: {e}")))? {
        let name = entry
            .map_err(|e| refuse(format!("`artifacts/`: {e}")))?
            .file_name();
        let name = name.to_string_lossy();
        if !names.contains(name.as_ref()) {
            return Err(refuse(format!("`artifacts/{name}` is not in the manifest")));
        }
    }
    Ok(Bundle {
        dir: dir.to_path_buf(),
        digest,
        manifest,
        manifests,
    })
}

/// A relative path of plain components.
fn clean_path(path: &str) -> bool {
    !path.is_empty()
        && !path.chars().any(char::is_control)
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Whether a link at `path` of a release directory
/// (`<path>/releases/<id>/<path>`), pointing to `target`, stays inside the
/// artifact's base directory `<path>`: relative, climbing first (a `..`
/// after a name could climb out of where a link leads) and never above
/// `<path>`. The links to shared directories (`../../shared/log`) do.
fn link_stays_inside(path: &str, target: &str) -> bool {
    if target.is_empty() || target.starts_with('/') || target.chars().any(char::is_control) {
        return false;
    }
    // The link's directory, counted from `<path>`: `releases/<id>/…`.
    let mut depth = 2 + path.split('/').count() - 1;
    let mut named = false;
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." if named => return false,
            ".." => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return false,
            },
            _ => named = true,
        }
    }
    true
}

/// Checks one artifact's tree against its file list, and the list against
/// the artifact id.
fn verify(dir: &Path, artifact: &BundleArtifact) -> Result<Manifest, String> {
    let name = &artifact.name;
    let mut entries = Vec::with_capacity(artifact.files.len());
    for file in &artifact.files {
        if !clean_path(file.path()) {
            return Err(format!(
                "`{MANIFEST_FILE}` lists the invalid path `{}` in artifact `{name}`",
                crate::diag::shown(file.path())
            ));
        }
        if let BundleFile::Symlink { path, target } = file {
            // A git artifact's tree reaches the host through git, from the
            // commit; every other link is written as the bundle says.
            let from_git = artifact
                .git
                .as_ref()
                .is_some_and(|git| !git.added.contains(path));
            if !from_git && !link_stays_inside(path, target) {
                return Err(format!(
                    "`artifacts/{name}/{}` is a link to `{}`, outside the artifact's directory \
                     on the host",
                    crate::diag::shown(path),
                    crate::diag::shown(target)
                ));
            }
        }
        entries.push(file.entry().ok_or_else(|| {
            format!(
                "artifact `{name}`: `{}` has an invalid mode or hash",
                file.path()
            )
        })?);
    }
    if let Some((path, link)) = beneath_a_link(&artifact.files) {
        return Err(format!(
            "`artifacts/{name}/{}` lies beneath `{}`, which is a link",
            crate::diag::shown(path),
            crate::diag::shown(link)
        ));
    }
    let manifest = Manifest::new(entries);
    if manifest.id().to_hex().as_str() != artifact.id {
        return Err(format!(
            "the files listed for artifact `{name}` do not give its id `{}`",
            artifact.id
        ));
    }
    let root = dir.join("artifacts").join(name);
    // The walk below follows the directory it starts from; no other link
    // of the tree is followed.
    for path in [dir.join("artifacts"), root.clone()] {
        if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!(
                "`{}` is a link, which a bundle is not read through",
                path.strip_prefix(dir).unwrap_or(&path).display()
            ));
        }
    }
    let mut expected: BTreeSet<&str> = BTreeSet::new();
    for entry in &manifest.entries {
        expected.insert(&entry.path);
        let shown = format!("`artifacts/{name}/{}`", entry.path);
        let path = root.join(&entry.path);
        let meta = fs::symlink_metadata(&path).map_err(|_| format!("{shown} is missing"))?;
        match &entry.kind {
            EntryKind::File { size, hash, .. } => {
                if !meta.is_file() {
                    return Err(format!("{shown} is not a regular file"));
                }
                if meta.len() != *size {
                    return Err(format!(
                        "{shown} has {} bytes, the manifest says {size}",
                        meta.len()
                    ));
                }
                let actual = crate::hash::hash_file(&path, *size)
                    .map_err(|err| format!("{shown} cannot be read: {err}"))?;
                if actual != *hash {
                    return Err(format!("{shown} does not match its blake3 in the manifest"));
                }
            }
            EntryKind::Symlink { target } => {
                let actual = fs::read_link(&path).ok();
                if !meta.is_symlink() || actual.as_deref() != Some(Path::new(target)) {
                    return Err(format!("{shown} is not a link to `{target}`"));
                }
            }
        }
    }
    for found in walkdir::WalkDir::new(&root).min_depth(1) {
        let found = found.map_err(|err| format!("`artifacts/{name}`: {err}"))?;
        if found.file_type().is_dir() {
            continue;
        }
        let rel = found.path().strip_prefix(&root).expect("walked under root");
        let rel = rel.to_string_lossy();
        if !expected.contains(rel.as_ref()) {
            return Err(format!("`artifacts/{name}/{rel}` is not in the manifest"));
        }
    }
    Ok(manifest)
}

/// Publishes a bundle to an object store: every file's content as an
/// object (those the store lacks are put), then the manifest, with each
/// file's sha256 beside its blake3, at `PREFIX/landfall-bundle.json`, last,
/// so that a bundle whose manifest is there is complete. Returns what was
/// put, and the digest of the manifest as published, which pins it.
pub fn publish(
    remote: &Remote,
    store: &Store,
    manifest: &BundleManifest,
    artifacts: &[Assembled],
) -> Result<(crate::store::Uploaded, Digest)> {
    let mut index = Sha256Index::open(store);
    let mut manifest = manifest.clone();
    let mut objects = Vec::new();
    for (bundled, assembled) in manifest.artifacts.iter_mut().zip(artifacts) {
        for file in &mut bundled.files {
            if let BundleFile::File {
                path,
                size,
                blake3,
                sha256,
                ..
            } = file
            {
                let hash = blake3::Hash::from_hex(&*blake3)
                    .map_err(|err| Error::Failed(format!("`{path}`: {err}")))?;
                let local = assembled.dir.join(&*path);
                let sum = index.sum(&hash, &local)?;
                objects.push(Object {
                    sha256: sum.clone(),
                    size: *size,
                    path: local,
                });
                *sha256 = Some(sum);
            }
        }
    }
    index.save()?;
    let uploaded = remote.upload(&objects)?;
    let mut text = serde_json::to_string_pretty(&manifest).expect("manifests serialise");
    text.push('\n');
    remote.put_bytes(&remote.url.bundle_key(), text.as_bytes())?;
    Ok((uploaded, Digest::of(text.as_bytes())))
}

/// Fetches the bundle published at a store into a directory of this
/// machine (`target/landfall/bundles/<blake3 of its manifest>/`), each
/// object once and checked against its sha256, and returns that directory,
/// which [`open`] then verifies as any bundle. The manifest is checked
/// against `pin` before anything in it is believed; a bundle fetched
/// before is not fetched again.
pub fn fetch(remote: &Remote, store: &Store, pin: Option<&Digest>) -> Result<PathBuf> {
    use sha2::Digest as _;
    let key = remote.url.bundle_key();
    let text = remote.get(&key)?.ok_or_else(|| {
        Error::Usage(format!(
            "`{}` holds no bundle: no `{key}` in bucket `{}`",
            remote.url, remote.url.bucket
        ))
    })?;
    let digest = check_pin(&remote.url.to_string(), &text, pin)?;
    let dir = store.root.join("bundles").join(digest.hex());
    if dir.join(MANIFEST_FILE).is_file() {
        return Ok(dir);
    }
    let manifest: BundleManifest = serde_json::from_slice(&text).map_err(|err| {
        Error::Usage(format!(
            "the bundle at `{}` is not valid: {err}",
            remote.url
        ))
    })?;
    for artifact in &manifest.artifacts {
        if let Some((path, link)) = beneath_a_link(&artifact.files) {
            return Err(Error::Usage(format!(
                "the bundle at `{}` puts `{}` beneath `{}`, which is a link: it is not \
                 written through",
                remote.url,
                crate::diag::shown(path),
                crate::diag::shown(link)
            )));
        }
    }
    let partial = dir.with_extension("partial");
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(Error::io("cannot remove", &partial))?;
    }
    let mut fetched: BTreeMap<String, PathBuf> = BTreeMap::new();
    for artifact in &manifest.artifacts {
        if !clean_path(&artifact.name) || artifact.name.contains('/') {
            return Err(Error::Usage(format!(
                "the bundle at `{}` names an invalid artifact",
                remote.url
            )));
        }
        let root = partial.join("artifacts").join(&artifact.name);
        crate::files::create_dirs(&root)?;
        for file in &artifact.files {
            if !clean_path(file.path()) {
                return Err(Error::Usage(format!(
                    "the bundle at `{}` has an invalid path `{}`",
                    remote.url,
                    crate::diag::shown(file.path())
                )));
            }
            let path = root.join(file.path());
            if let Some(parent) = path.parent() {
                crate::files::create_dirs(parent)?;
            }
            match file {
                BundleFile::Symlink { target, .. } => {
                    std::os::unix::fs::symlink(target, &path)
                        .map_err(Error::io("cannot create symlink", &path))?;
                }
                BundleFile::File { sha256, .. } => {
                    let Some(sha256) = sha256 else {
                        return Err(Error::Usage(format!(
                            "the bundle at `{}` gives no sha256 for `{}`",
                            remote.url,
                            file.path()
                        )));
                    };
                    if let Some(first) = fetched.get(sha256) {
                        assemble::link_or_copy(first, &path)?;
                        continue;
                    }
                    let object = remote.url.object_key(sha256);
                    let bytes = remote.get(&object)?.ok_or_else(|| {
                        Error::Failed(format!("the store lacks `{object}` of the bundle"))
                    })?;
                    if crate::store::hex(&sha2::Sha256::digest(&bytes)) != *sha256 {
                        return Err(Error::Usage(format!(
                            "`{object}` of the store is not what the bundle says (sha256 \
                             mismatch): it was changed after it was published"
                        )));
                    }
                    // A new file of a new directory: nothing is written
                    // through a link that was there.
                    fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .and_then(|mut file| std::io::Write::write_all(&mut file, &bytes))
                        .map_err(Error::io("cannot write", &path))?;
                    fetched.insert(sha256.clone(), path);
                }
            }
        }
    }
    let manifest_path = partial.join(MANIFEST_FILE);
    fs::write(&manifest_path, &text).map_err(Error::io("cannot write", &manifest_path))?;
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(Error::io("cannot remove", &dir))?;
    }
    fs::rename(&partial, &dir).map_err(Error::io("cannot rename", &partial))?;
    Ok(dir)
}

impl Bundle {
    pub fn artifact(&self, name: &str) -> Option<&BundleArtifact> {
        self.manifest.artifacts.iter().find(|a| a.name == name)
    }

    /// Puts an artifact of the bundle into the store (its files copied,
    /// with the modes and mtimes the manifest gives), unless the store has
    /// it already. A git artifact's commit is pushed from `repository`.
    pub fn import(&self, store: &Store, name: &str, repository: &Path) -> Result<Assembled> {
        let artifact = self
            .artifact(name)
            .ok_or_else(|| Error::Usage(format!("the bundle has no artifact `{name}`")))?;
        let manifest = self.manifests[name].clone();
        let root = self.dir.join("artifacts").join(name);
        let (id, dir, reused) =
            assemble::store_artifact(store, &manifest, |path| Source::Copy(root.join(path)))?;
        // A built artifact's bill of materials is landfall's, made when the
        // bundle was; a git artifact's tree has none of landfall's files.
        let sbom = artifact.git.is_none()
            && manifest
                .entries
                .iter()
                .any(|e| e.path == crate::sbom::SBOM_FILE);
        Ok(Assembled {
            artifact: name.to_string(),
            id,
            dir,
            manifest,
            reused,
            git: artifact.git.as_ref().map(|git| GitTree {
                repository: repository.to_path_buf(),
                commit: git.commit.clone(),
                tree: git.tree.clone(),
                added: git.added.iter().cloned().collect(),
            }),
            sbom,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{BundleFile, Digest, beneath_a_link, link_stays_inside, split_pin};

    #[test]
    fn a_pin_is_blake3_and_64_hex_digits_after_the_last_hash() {
        let digest = Digest::of(b"{}\n");
        let pinned = format!("s3://b/p#{digest}");
        assert_eq!(split_pin(&pinned), Ok(("s3://b/p", Some(digest))));
        assert_eq!(split_pin("dir#1/bundle"), Ok(("dir#1/bundle", None)));
        assert_eq!(split_pin("bundle"), Ok(("bundle", None)));
        assert!(split_pin("bundle#blake3:abc").is_err());
        assert_eq!(Digest::parse(&digest.to_string()), Ok(digest));
        assert_eq!(digest.to_string(), format!("blake3:{}", digest.hex()));
    }

    #[test]
    fn files_beneath_a_link_of_the_bundle_are_found() {
        let link = |path: &str| BundleFile::Symlink {
            path: path.into(),
            target: "../x".into(),
        };
        let file = |path: &str| BundleFile::File {
            path: path.into(),
            mode: "0644".into(),
            size: 0,
            blake3: String::new(),
            sha256: None,
        };
        let files = [link("etc"), file("etc-other/a"), file("bin/app")];
        assert_eq!(beneath_a_link(&files), None);
        let files = [link("etc"), file("etc/passwd")];
        assert_eq!(beneath_a_link(&files), Some(("etc/passwd", "etc")));
        let files = [link("a/b"), file("a/b/c/d")];
        assert_eq!(beneath_a_link(&files), Some(("a/b/c/d", "a/b")));
    }

    #[test]
    fn links_must_stay_inside_the_artifact_directory() {
        assert!(link_stays_inside("log", "../../shared/log"));
        assert!(link_stays_inside("var/log", "../../../shared/var/log"));
        assert!(link_stays_inside("bin/tool", "hello"));
        assert!(link_stays_inside("a", "../../current/etc"));
        for (path, target) in [
            ("log", "/etc"),
            ("log", "../../../etc"),
            ("var/log", "../../../../x"),
            ("log", "../../shared/log/../../../x"),
            ("a", "b/../../.."),
            ("a", ""),
            ("a", "x\ny"),
        ] {
            assert!(!link_stays_inside(path, target), "{path} -> {target}");
        }
    }
}
