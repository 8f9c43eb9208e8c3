//! The software bill of materials of an artifact's binaries: a
//! `CycloneDX` 1.5 JSON document, [`SBOM_FILE`] at the root of every artifact that
//! has `bins`, so that the artifact id (and what signs it) covers it.
//!
//! It is made from `cargo metadata` for the build's target and features
//! and from `Cargo.lock`'s checksums: the packages of the artifact's
//! binaries, and every package they need to build (normal and build
//! dependencies, never dev-dependencies), each with its version, purl,
//! registry checksum and where it comes from, and the graph between them.
//! It holds no time, no path of this machine and no random serial number
//! (the serial number is derived from the document), and everything in it
//! is sorted: the same commit gives the same bytes, in any directory.
//!
//! The document is written from typed structs mirroring the parts of the
//! specification it uses; the crate that models all of `CycloneDX`
//! (`cyclonedx-bom`) brings XML, regex, SPDX and time parsers this one
//! document does not need.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use cargo_metadata::{DependencyKind, Metadata, PackageId};
use serde::{Deserialize, Serialize};

use crate::config::{BinTarget, BuildSettings};
use crate::error::{Error, Result};
use crate::process::{self, Cmd};

/// The file at the root of an artifact with binaries that holds their
/// bill of materials. Landfall's own in every release.
pub const SBOM_FILE: &str = ".landfall-sbom.cdx.json";

/// The longest `cargo metadata` may take to resolve the workspace.
const METADATA_TIME: std::time::Duration = std::time::Duration::from_secs(300);

/// The packages of each build of the plan's binaries, as cargo resolves
/// them for it: a package built with other features elsewhere may have
/// other dependencies.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// By build: the package, and its artifact's own features.
    builds: BTreeMap<(String, Vec<String>), Resolved>,
}

/// The packages one build needs, or (merged) those of an artifact.
#[derive(Debug, Clone, Default)]
struct Resolved {
    packages: BTreeMap<PackageId, Package>,
    /// Each package's normal and build dependencies, for the build's
    /// target and features.
    edges: BTreeMap<PackageId, BTreeSet<PackageId>>,
    /// The package of each binary.
    bins: BTreeMap<String, PackageId>,
}

/// A package, as the document names it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Package {
    name: String,
    version: String,
    source: Source,
    /// The registry's SHA-256 of the package, from `Cargo.lock`.
    checksum: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A package of the workspace or another path: no checksum, no URL.
    Path,
    /// A registry (`registry+URL` or `sparse+URL`).
    Registry(String),
    /// A git repository: its URL, with the commit as cargo locked it.
    Git(String),
}

/// Resolves the packages `bins` are built from, as `cargo build` with
/// `settings` would for them (its target, or this machine's; the features
/// of each binary's build).
pub fn describe(
    workspace_root: &Path,
    settings: &BuildSettings,
    bins: &[BinTarget],
) -> Result<Graph> {
    // A target specification file names no triple cargo can filter on:
    // its packages are then those of every platform.
    let triple = match &settings.target {
        Some(target) if is_target_file(target) => None,
        Some(target) => Some(crate::cargo::without_glibc_version(target).to_string()),
        None => Some(crate::cargo::host_triple(workspace_root)?),
    };
    let checksums = checksums(&workspace_root.join("Cargo.lock"))?;
    let mut graph = Graph::default();
    let mut builds: BTreeMap<(&str, &[String]), Vec<&BinTarget>> = BTreeMap::new();
    for bin in bins {
        builds
            .entry((bin.package.as_str(), bin.features.as_slice()))
            .or_default()
            .push(bin);
    }
    for ((package, features), bins) in builds {
        let metadata = metadata(
            workspace_root,
            settings,
            triple.as_deref(),
            package,
            features,
        )?;
        let mut resolved = Resolved::default();
        resolved.add(&metadata, package, &bins, &checksums)?;
        graph
            .builds
            .insert((package.to_string(), features.to_vec()), resolved);
    }
    Ok(graph)
}

fn is_target_file(target: &str) -> bool {
    Path::new(target)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// `cargo metadata` for `package` with its build's features, resolved
/// for `triple` (for every platform without one).
fn metadata(
    workspace_root: &Path,
    settings: &BuildSettings,
    triple: Option<&str>,
    package: &str,
    features: &[String],
) -> Result<Metadata> {
    let mut cmd = Cmd::new(crate::cargo::cargo())
        .args(["metadata", "--format-version", "1", "--locked"])
        .arg("--manifest-path")
        .arg(workspace_root.join("Cargo.toml"))
        .dir(workspace_root)
        .deadline(METADATA_TIME);
    if let Some(triple) = triple {
        cmd = cmd.args(["--filter-platform", triple]);
    }
    // Features are named with their package: `cargo metadata` resolves
    // the whole workspace, not one package of it.
    let all = settings.features.iter().chain(features).map(|f| {
        if f.contains('/') {
            f.clone()
        } else {
            format!("{package}/{f}")
        }
    });
    cmd = crate::cargo::with_features(cmd, all, settings.no_default_features);
    let output = process::run(&cmd)?;
    serde_json::from_slice(&output.stdout)
        .map_err(|err| Error::Failed(format!("cannot parse `cargo metadata` output: {err}")))
}

/// The registry checksums `Cargo.lock` holds, by name, version and source.
fn checksums(lockfile: &Path) -> Result<BTreeMap<(String, String, String), String>> {
    #[derive(Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<Locked>,
    }
    #[derive(Deserialize)]
    struct Locked {
        name: String,
        version: String,
        source: Option<String>,
        checksum: Option<String>,
    }
    let text = std::fs::read_to_string(lockfile).map_err(Error::io("cannot read", lockfile))?;
    let lock: Lock = toml::from_str(&text)
        .map_err(|err| Error::Failed(format!("cannot read `{}`: {err}", lockfile.display())))?;
    Ok(lock
        .package
        .into_iter()
        .filter_map(|p| Some(((p.name, p.version, p.source?), p.checksum?)))
        .collect())
}

impl Graph {
    /// The document of an artifact `name` with `bins`, or none if it has
    /// no binaries.
    pub fn document(&self, name: &str, bins: &[BinTarget]) -> Option<Vec<u8>> {
        let mut merged = Resolved::default();
        for bin in bins {
            let build = (bin.package.clone(), bin.features.clone());
            if let Some(resolved) = self.builds.get(&build) {
                merged.merge(resolved);
            }
        }
        merged.document(name, bins)
    }
}

impl Resolved {
    /// Adds what `bins` of `package` are built from, as `metadata`
    /// resolved it.
    fn add(
        &mut self,
        metadata: &Metadata,
        package: &str,
        bins: &[&BinTarget],
        checksums: &BTreeMap<(String, String, String), String>,
    ) -> Result<()> {
        let resolve = metadata
            .resolve
            .as_ref()
            .ok_or_else(|| Error::Failed("`cargo metadata` resolved no dependency".into()))?;
        let root = metadata
            .workspace_packages()
            .into_iter()
            .find(|p| p.name.as_str() == package)
            .ok_or_else(|| Error::Failed(format!("`cargo metadata` has no package `{package}`")))?;
        for bin in bins {
            self.bins.insert(bin.name.clone(), root.id.clone());
        }
        let nodes: BTreeMap<&PackageId, &cargo_metadata::Node> =
            resolve.nodes.iter().map(|n| (&n.id, n)).collect();
        let mut todo = vec![root.id.clone()];
        while let Some(id) = todo.pop() {
            if self.edges.contains_key(&id) {
                continue;
            }
            let Some(node) = nodes.get(&id) else {
                continue;
            };
            let deps: BTreeSet<PackageId> = node
                .deps
                .iter()
                .filter(|d| {
                    d.dep_kinds
                        .iter()
                        .any(|k| matches!(k.kind, DependencyKind::Normal | DependencyKind::Build))
                })
                .map(|d| d.pkg.clone())
                .collect();
            todo.extend(deps.iter().cloned());
            self.edges.insert(id, deps);
        }
        for package in &metadata.packages {
            if !self.edges.contains_key(&package.id) {
                continue;
            }
            let source = match package.source.as_ref().map(|s| s.repr.as_str()) {
                None => Source::Path,
                Some(repr) => match repr.strip_prefix("git+") {
                    Some(url) => Source::Git(url.to_string()),
                    None => Source::Registry(repr.to_string()),
                },
            };
            let checksum = package.source.as_ref().and_then(|s| {
                checksums
                    .get(&(
                        package.name.to_string(),
                        package.version.to_string(),
                        s.repr.clone(),
                    ))
                    .cloned()
            });
            self.packages.insert(
                package.id.clone(),
                Package {
                    name: package.name.to_string(),
                    version: package.version.to_string(),
                    source,
                    checksum,
                },
            );
        }
        Ok(())
    }

    /// Adds the packages of `other`, and its dependencies to theirs.
    fn merge(&mut self, other: &Resolved) {
        self.packages
            .extend(other.packages.iter().map(|(id, p)| (id.clone(), p.clone())));
        for (id, deps) in &other.edges {
            self.edges
                .entry(id.clone())
                .or_default()
                .extend(deps.iter().cloned());
        }
        self.bins
            .extend(other.bins.iter().map(|(b, id)| (b.clone(), id.clone())));
    }

    fn document(&self, name: &str, bins: &[BinTarget]) -> Option<Vec<u8>> {
        let roots: BTreeSet<&PackageId> =
            bins.iter().filter_map(|b| self.bins.get(&b.name)).collect();
        if roots.is_empty() {
            return None;
        }
        let mut reached: BTreeSet<&PackageId> = BTreeSet::new();
        let mut todo: Vec<&PackageId> = roots.iter().copied().collect();
        while let Some(id) = todo.pop() {
            if reached.insert(id) {
                todo.extend(self.edges.get(id).into_iter().flatten());
            }
        }
        let refs = self.refs(&reached);
        let mut components: Vec<Component> = reached
            .iter()
            .filter_map(|id| {
                let package = self.packages.get(id)?;
                Some(component(package, refs[id].clone(), roots.contains(id)))
            })
            .collect();
        components.sort_by(|a, b| a.bom_ref.cmp(&b.bom_ref));
        let mut dependencies: Vec<Dependency> = reached
            .iter()
            .map(|id| Dependency {
                reference: refs[id].clone(),
                depends_on: self
                    .edges
                    .get(id)
                    .into_iter()
                    .flatten()
                    .filter_map(|d| refs.get(d).cloned())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            })
            .collect();
        dependencies.push(Dependency {
            reference: ARTIFACT_REF.to_string(),
            depends_on: roots
                .iter()
                .map(|id| refs[id].clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        });
        dependencies.sort_by(|a, b| a.reference.cmp(&b.reference));
        let mut bom = Document {
            bom_format: "CycloneDX",
            spec_version: "1.5",
            serial_number: None,
            version: 1,
            metadata: DocumentMetadata {
                component: Component {
                    kind: "application",
                    bom_ref: ARTIFACT_REF.to_string(),
                    name: name.to_string(),
                    version: None,
                    purl: None,
                    hashes: Vec::new(),
                    external_references: Vec::new(),
                },
            },
            components,
            dependencies,
        };
        // The serial number is the document's own: two documents share
        // one only if they are the same.
        let unnumbered = serde_json::to_vec(&bom).expect("a bill of materials serialises");
        bom.serial_number = Some(serial_number(&unnumbered));
        let mut text = serde_json::to_vec_pretty(&bom).expect("a bill of materials serialises");
        text.push(b'\n');
        Some(text)
    }

    /// Each package's `bom-ref`: its purl, with its source after a `#`
    /// only where two packages share a name and version.
    fn refs<'a>(&self, ids: &BTreeSet<&'a PackageId>) -> BTreeMap<&'a PackageId, String> {
        let mut by_purl: BTreeMap<String, Vec<&'a PackageId>> = BTreeMap::new();
        for id in ids {
            if let Some(package) = self.packages.get(id) {
                by_purl.entry(purl(package)).or_default().push(id);
            }
        }
        let mut refs = BTreeMap::new();
        for (purl, ids) in by_purl {
            let alone = ids.len() == 1;
            for id in ids {
                let reference = if alone {
                    purl.clone()
                } else {
                    match &self.packages[id].source {
                        Source::Path => format!("{purl}#path"),
                        Source::Registry(url) | Source::Git(url) => format!("{purl}#{url}"),
                    }
                };
                refs.insert(id, reference);
            }
        }
        refs
    }
}

/// The `bom-ref` of the artifact itself, which depends on its binaries'
/// packages.
const ARTIFACT_REF: &str = "artifact";

fn purl(package: &Package) -> String {
    format!("pkg:cargo/{}@{}", package.name, package.version)
}

fn component(package: &Package, bom_ref: String, root: bool) -> Component {
    let external_references = match &package.source {
        Source::Git(url) => vec![ExternalReference {
            kind: "vcs",
            url: url.clone(),
        }],
        Source::Registry(url) => vec![ExternalReference {
            kind: "distribution",
            url: url
                .strip_prefix("registry+")
                .or_else(|| url.strip_prefix("sparse+"))
                .unwrap_or(url)
                .to_string(),
        }],
        Source::Path => Vec::new(),
    };
    Component {
        kind: if root { "application" } else { "library" },
        bom_ref,
        name: package.name.clone(),
        version: Some(package.version.clone()),
        purl: Some(purl(package)),
        hashes: package
            .checksum
            .iter()
            .map(|content| Hash {
                alg: "SHA-256",
                content: content.clone(),
            })
            .collect(),
        external_references,
    }
}

/// A UUID-shaped serial number (`urn:uuid:`, version 5, RFC 4122 variant,
/// as the schema requires) from the blake3 hash of `document`.
fn serial_number(document: &[u8]) -> String {
    let hash = blake3::hash(document);
    let mut bytes: [u8; 16] = hash.as_bytes()[..16].try_into().expect("16 bytes");
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = bytes.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    });
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A `CycloneDX` 1.5 document, as much of it as landfall writes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    bom_format: &'static str,
    spec_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial_number: Option<String>,
    version: u32,
    metadata: DocumentMetadata,
    components: Vec<Component>,
    dependencies: Vec<Dependency>,
}

#[derive(Debug, Serialize)]
struct DocumentMetadata {
    component: Component,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Component {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref")]
    bom_ref: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<Hash>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_references: Vec<ExternalReference>,
}

#[derive(Debug, Serialize)]
struct Hash {
    alg: &'static str,
    content: String,
}

#[derive(Debug, Serialize)]
struct ExternalReference {
    #[serde(rename = "type")]
    kind: &'static str,
    url: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Dependency {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<String>,
}

/// A component of a document, as `status --sbom` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Listed {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
}

/// The components a document lists (its artifact aside), or none if it
/// is not one.
pub fn components(document: &serde_json::Value) -> Vec<Listed> {
    document
        .get("components")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
