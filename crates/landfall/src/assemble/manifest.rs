//! Manifests: the entries of a tree (files with their mode, size and
//! blake3, and symlinks), their canonical text, which ids hash and hosts
//! keep, and the mtime a file gets from its content.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::Result;

/// One entry of a release tree. Directories are implied by the paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Entry {
    /// Relative, `/`-separated.
    pub path: String,
    #[serde(flatten)]
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EntryKind {
    File {
        mode: u32,
        size: u64,
        #[serde(serialize_with = "hex")]
        #[schemars(with = "String")]
        hash: blake3::Hash,
    },
    Symlink {
        target: String,
    },
}

fn hex<S: serde::Serializer>(hash: &blake3::Hash, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(hash.to_hex().as_str())
}

/// A sorted list of entries, with a canonical text form that ids hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Manifest {
    pub entries: Vec<Entry>,
}

impl Manifest {
    pub fn new(mut entries: Vec<Entry>) -> Manifest {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest { entries }
    }

    /// One line per entry: `file\tMODE\tSIZE\tBLAKE3\tPATH` or
    /// `symlink\tTARGET\tPATH`, sorted by path. Paths never hold tabs or
    /// newlines (the configuration check refuses them).
    pub fn canonical(&self) -> String {
        let mut text = String::from("landfall-manifest-v1\n");
        for entry in &self.entries {
            match &entry.kind {
                EntryKind::File { mode, size, hash } => {
                    writeln!(
                        text,
                        "file\t{mode:04o}\t{size}\t{}\t{}",
                        hash.to_hex(),
                        entry.path
                    )
                    .unwrap();
                }
                EntryKind::Symlink { target } => {
                    writeln!(text, "symlink\t{target}\t{}", entry.path).unwrap();
                }
            }
        }
        text
    }

    pub fn id(&self) -> blake3::Hash {
        blake3::hash(self.canonical().as_bytes())
    }

    /// Parses the canonical form back.
    pub fn parse(text: &str) -> Option<Manifest> {
        let mut lines = text.lines();
        if lines.next()? != "landfall-manifest-v1" {
            return None;
        }
        let entries = lines
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                match fields.as_slice() {
                    ["file", mode, size, hash, path] => Some(Entry {
                        path: (*path).to_string(),
                        kind: EntryKind::File {
                            mode: u32::from_str_radix(mode, 8).ok()?,
                            size: size.parse().ok()?,
                            hash: blake3::Hash::from_hex(hash).ok()?,
                        },
                    }),
                    ["symlink", target, path] => Some(Entry {
                        path: (*path).to_string(),
                        kind: EntryKind::Symlink {
                            target: (*target).to_string(),
                        },
                    }),
                    _ => None,
                }
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Manifest { entries })
    }

    /// A file or link whose path is also a directory of other entries: the
    /// first such path and an entry inside it.
    pub fn file_over_directory(&self) -> Option<(&str, &str)> {
        let mut paths: Vec<&str> = self.entries.iter().map(|e| e.path.as_str()).collect();
        paths.sort_unstable();
        // The first path from `path/` on, found by halving: inside `path`
        // if it starts so.
        let mut prefix = String::new();
        paths.iter().find_map(|path| {
            prefix.clear();
            prefix.push_str(path);
            prefix.push('/');
            let inside = *paths.get(paths.partition_point(|p| *p < prefix.as_str()))?;
            inside
                .starts_with(prefix.as_str())
                .then_some((*path, inside))
        })
    }

    pub fn total_size(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| {
                if let EntryKind::File { size, .. } = e.kind {
                    size
                } else {
                    0
                }
            })
            .sum()
    }
}

/// The mtime a file with this content gets: seconds within 2^28 of
/// 2001-09-09 and nanoseconds, both taken from the hash. So it is always
/// before 2010-03: a file of a release that is newer than the release was
/// changed after it was made (see `landfall_derive`).
pub fn content_mtime(hash: &blake3::Hash) -> SystemTime {
    let bytes = hash.as_bytes();
    let secs = 1_000_000_000
        + u64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) >> 4);
    let nanos = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) % 1_000_000_000;
    UNIX_EPOCH + Duration::new(secs, nanos)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::assemble::artifact::shared_link;

    /// A file entry of `content` at `path`.
    pub(in crate::assemble) fn file(path: &str, content: &[u8], mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                mode,
                size: content.len() as u64,
                hash: blake3::hash(content),
            },
        }
    }

    #[test]
    fn manifest_is_sorted_and_round_trips() {
        let manifest = Manifest::new(vec![
            file("static/index.html", b"<h1>", 0o644),
            file("bin/hello", b"\x7fELF", 0o755),
            Entry {
                path: "log".into(),
                kind: EntryKind::Symlink {
                    target: shared_link("log"),
                },
            },
        ]);
        let text = manifest.canonical();
        let paths: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.rsplit('\t').next().unwrap())
            .collect();
        assert_eq!(paths, ["bin/hello", "log", "static/index.html"]);
        assert!(text.contains("symlink\t../../shared/log\tlog"), "{text}");
        assert_eq!(Manifest::parse(&text), Some(manifest));
    }

    #[test]
    fn ids_depend_on_content_mode_and_path_only() {
        let a = Manifest::new(vec![file("a", b"1", 0o644), file("b", b"2", 0o644)]);
        let same = Manifest::new(vec![file("b", b"2", 0o644), file("a", b"1", 0o644)]);
        assert_eq!(a.id(), same.id(), "order of listing does not matter");
        assert_ne!(
            a.id(),
            Manifest::new(vec![file("a", b"1", 0o755), file("b", b"2", 0o644)]).id()
        );
        assert_ne!(
            a.id(),
            Manifest::new(vec![file("a", b"1", 0o644), file("c", b"2", 0o644)]).id()
        );
        assert_ne!(
            a.id(),
            Manifest::new(vec![file("a", b"1", 0o644), file("b", b"3", 0o644)]).id()
        );
    }

    #[test]
    fn a_file_over_a_directory_is_found() {
        let fine = Manifest::new(vec![file("a", b"", 0o644), file("a.txt", b"", 0o644)]);
        assert_eq!(fine.file_over_directory(), None);
        let clash = Manifest::new(vec![
            file("public", b"", 0o644),
            file("public.txt", b"", 0o644),
            file("public/index.html", b"", 0o644),
        ]);
        assert_eq!(
            clash.file_over_directory(),
            Some(("public", "public/index.html"))
        );
    }

    #[test]
    fn content_mtimes_are_fixed_and_differ_with_content() {
        assert_eq!(
            content_mtime(&blake3::hash(b"x")),
            content_mtime(&blake3::hash(b"x"))
        );
        assert_ne!(
            content_mtime(&blake3::hash(b"x")),
            content_mtime(&blake3::hash(b"y"))
        );
    }
}
