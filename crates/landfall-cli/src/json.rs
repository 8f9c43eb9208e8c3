//! `--message-format json`: every line printed is a [`Line`], and the
//! JSON Schema of the format (`docs/json-events.schema.json`) is derived
//! from it.
//!
//! Names follow one convention, the keys': event names and every value
//! landfall defines (statuses, phases, layers, kinds) are `snake_case`.

use landfall::assemble::Assembled;
use landfall::bundle::{BundleManifest, BundleRelease};
use landfall::config::provenance::Variable;
use landfall::deploy::{Orphan, Summary};
use landfall::event::Event;
use landfall::git::Revision;
use landfall::ops::exec::ExecResult;
use landfall::ops::reproducible::BuildIds;
use landfall::ops::status::TargetStatus;
use schemars::JsonSchema;
use serde::Serialize;

/// The version of the format, in the schema's `$id`. Version 2 named the
/// events in `snake_case` (`build_started`, `would_deploy`, `rolled_back`,
/// `rollout_stopped`), as every key and value already was, and gave `exec`
/// the summary every other command ends with.
#[cfg(test)]
pub(crate) const VERSION: u32 = 2;

/// One line of `--message-format json`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Line<'a> {
    /// An error, with where it is when it is in a file (`path:line:column`).
    Error {
        message: &'a str,
        location: Option<String>,
    },
    /// How a deploy, rollback or exec ended: the last line of each.
    Summary(&'a Summary),
    /// `status`: each target's releases, lock and service, and the orphans.
    Status {
        env: &'a str,
        hosts: &'a [TargetStatus],
        orphans: &'a [FoundOrphan<'a>],
    },
    /// `logs`: one line of a service's log, as it comes.
    Log {
        host: &'a str,
        artifact: &'a str,
        line: &'a str,
    },
    /// `exec`: one line the command printed on a host, as it comes.
    Output { host: &'a str, line: &'a str },
    /// `exec`: a host is done.
    Exec(&'a ExecResult),
    /// `config`: a host's variables, each with where its value comes from.
    Config {
        env: &'a str,
        host: &'a str,
        vars: &'a [Variable],
    },
    /// `check`: what was checked.
    Checked {
        ok: bool,
        artifacts: usize,
        environments: &'a [String],
        hosts: usize,
    },
    /// `build`: the artifacts and the release of each target.
    Manifest {
        env: &'a str,
        revision: &'a Revision,
        artifacts: &'a [Assembled],
        releases: &'a [BundleRelease],
    },
    /// `build --out`: the bundle written, to a directory or a store, and
    /// the digest of its manifest (`blake3:HEX`), which `--from
    /// LOCATION#DIGEST` pins.
    Bundle {
        dir: String,
        digest: String,
        manifest: &'a BundleManifest,
    },
    /// `build --reproducible`: the ids of two independent builds.
    Reproducible {
        ok: bool,
        first: &'a BuildIds,
        second: &'a BuildIds,
        differences: &'a [String],
    },
    /// `init`: the files it wrote.
    Initialized { created: &'a [String] },
    /// What the library reports while it works.
    #[serde(untagged)]
    Event(&'a Event),
}

/// An orphan and the host it is on.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct FoundOrphan<'a> {
    pub(crate) host: &'a str,
    #[serde(flatten)]
    pub(crate) orphan: &'a Orphan,
}

/// The JSON Schema of every line, as `docs/json-events.schema.json` holds
/// it.
#[cfg(test)]
pub(crate) fn schema() -> String {
    // The schema of what is written, not of what could be read back: a
    // field left out when empty is not required.
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let mut schema = generator.into_root_schema_for::<Line<'static>>();
    schema.insert(
        "$id".into(),
        format!("https://landfall.dev/json-events/v{VERSION}").into(),
    );
    schema.insert(
        "title".into(),
        format!("landfall --message-format json, version {VERSION}: one event per line").into(),
    );
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(path: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path)
    }

    /// The schema in `docs/` is the one the types derive: a change of the
    /// format shows as a change of that file (`UPDATE_EXPECT=1` writes it).
    #[test]
    fn the_documented_schema_is_the_one_the_types_derive() {
        let path = repo_file("docs/json-events.schema.json");
        let derived = schema();
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(&path, &derived).unwrap();
            return;
        }
        let documented = std::fs::read_to_string(&path).unwrap();
        assert!(
            documented == derived,
            "docs/json-events.schema.json is not the schema of `json::Line`; \
             run with UPDATE_EXPECT=1 and review the difference"
        );
    }
}
