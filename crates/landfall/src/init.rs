//! `cargo deploy init`: a first `deploy.toml`, `environments/dev.toml` and
//! template for a workspace, such that `cargo deploy dev --local` works at
//! once. This module computes the files, and writes them as new files
//! only: never over a file, never through a link.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::config::Workspace;
use crate::error::Result;

/// Writes `files` under the workspace's root: all of them, or, if any is
/// there already or would be written through a link (itself or a
/// directory on its way, even a link that leads nowhere), none, with an
/// error naming it.
pub(crate) fn write(workspace: &Workspace, files: &[ScaffoldFile]) -> Result<()> {
    let files: Vec<(PathBuf, &[u8])> = files
        .iter()
        .map(|f| (f.path.clone(), f.contents.as_bytes()))
        .collect();
    crate::files::write_new(&workspace.root, &files)
}

/// A new project id: 32 hex digits of the blake3 of this moment, this
/// process, and keys the standard library draws from the system's
/// randomness for each hasher.
pub(crate) fn project_id() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = blake3::Hasher::new();
    for _ in 0..2 {
        let mut random = std::collections::hash_map::RandomState::new().build_hasher();
        random.write_u32(std::process::id());
        hasher.update(&random.finish().to_le_bytes());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.update(&now.as_nanos().to_le_bytes());
    hasher.finalize().to_hex()[..32].to_string()
}

/// A file `init` writes, relative to the workspace root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScaffoldFile {
    pub(crate) path: PathBuf,
    pub(crate) contents: String,
}

/// The files for `workspace`: an artifact per binary of the workspace (a
/// binary two packages define is left out; with one binary, or none, one
/// artifact named after the project), each with a rendered config file and
/// a service section to turn on, deployed to one local host.
pub(crate) fn scaffold(workspace: &Workspace) -> Vec<ScaffoldFile> {
    let dir_name = workspace
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name_from(workspace.root_package.as_deref().unwrap_or(&dir_name));
    let bins: Vec<&str> = workspace
        .bins
        .iter()
        .filter(|(_, packages)| packages.len() == 1)
        .map(|(bin, _)| bin.as_str())
        .collect();
    let id = project_id();
    let mut deploy = format!(
        r#"# What `cargo deploy` builds and where it goes. Every key is described
# in landfall's guide; unknown keys are errors.

[project]
name = "{name}"
# What hosts know this project by, with its name: keep it as it is, and
# give a copy that becomes another project an id of its own.
id = "{id}"

[build]
profile = "release"

# Template variables: environments and hosts override them.
[vars]
log_level = "info"
port = 8080
"#
    );
    let artifacts: Vec<(String, Option<&str>)> = match bins.as_slice() {
        [] => vec![(name.clone(), None)],
        [bin] => vec![(name.clone(), Some(*bin))],
        many => many.iter().map(|b| (name_from(b), Some(*b))).collect(),
    };
    let single = artifacts.len() == 1;
    for (artifact, bin) in &artifacts {
        let path = if single {
            format!("/srv/{name}")
        } else {
            format!("/srv/{name}/{artifact}")
        };
        let list = bin.map_or_else(String::new, |b| format!("{b:?}"));
        let check = bin.map_or_else(
            || format!("test -f etc/{name}.toml"),
            |bin| format!("test -x bin/{bin}"),
        );
        let exec = bin.map_or_else(|| "bin/SERVER".to_string(), |b| format!("bin/{b}"));
        let _ = write!(
            deploy,
            r#"
[artifact.{artifact}]
roles = ["app"]                  # hosts with one of these roles get it
path = "{path}"{pad}# base directory on the host
bins = [{list}]
templates = [{{ src = "{name}.toml.j2", dst = "etc/{name}.toml" }}]
shared = ["log"]                 # kept across releases, under {path}/shared/
keep = 5

[artifact.{artifact}.hooks]
# Each hook runs on the host, in the release directory.
pre_activate = "{check}"

# Once `{exec}` is a long-running server, uncomment this section: every
# activation then installs its definition and starts the new release beside
# the one that serves, on the sockets systemd holds (under `--local`, as a
# plain background process that binds them with SO_REUSEPORT); once the new
# one says it is ready, the old one finishes what it has and stops. A
# release that is not ready within `ready_timeout` is stopped, and the old
# one never stopped serving.
# [artifact.{artifact}.service]
# manager = "systemd"            # or "systemd-user", or "supervisor"
# exec = "{exec} --config etc/{name}.toml"
# user = "{name}"                 # the account it runs as (default: the deploy user)
# environment = {{ RUST_LOG = "{{{{ vars.log_level }}}}" }}
# listen = ["127.0.0.1:{{{{ vars.port }}}}"]   # systemd holds it across restarts (LISTEN_FDS)
# notify = true                  # it says READY=1 when ready (the sd-notify crate)
# stop_timeout = "30s"

# On many hosts, roll out gradually: canaries first, then batches, with a
# pause between them and a failure budget.
# [artifact.{artifact}.rollout]
# canary = 1
# batch = "25%"
# pause = "30s"
# max_fail = 0
"#,
            pad = " ".repeat(25usize.saturating_sub(path.len() + 9).max(1)),
        );
    }
    let env = r#"# `cargo deploy dev --local` deploys this environment under
# target/landfall/local/dev/; `cargo deploy dev` over ssh.

[environment]
jobs = 4

[hosts.local]
address = "127.0.0.1"
roles = ["app"]
"#
    .to_string();
    let template = format!(
        "# Rendered by landfall for {{{{ host.name }}}} in {{{{ env }}}}.\n\
         name = \"{name}\"\n\
         log_level = \"{{{{ vars.log_level }}}}\"\n"
    );
    vec![
        ScaffoldFile {
            path: "deploy.toml".into(),
            contents: deploy,
        },
        ScaffoldFile {
            path: "environments/dev.toml".into(),
            contents: env,
        },
        ScaffoldFile {
            path: format!("templates/{name}.toml.j2").into(),
            contents: template,
        },
    ]
}

/// A valid artifact name from a package or directory name.
fn name_from(text: &str) -> String {
    let name: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_start_matches('-');
    if name.is_empty() {
        "app".to_string()
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn names_become_valid_artifact_names() {
        assert_eq!(name_from("my shop"), "my-shop");
        assert_eq!(name_from("--x"), "x");
        assert_eq!(name_from(""), "app");
    }

    #[test]
    fn every_binary_gets_an_artifact_with_a_service_to_turn_on() {
        let workspace = Workspace {
            root: "/work/shop".into(),
            manifest_path: "/work/shop/Cargo.toml".into(),
            target_dir: "/work/shop/target".into(),
            root_package: None,
            bins: BTreeMap::from([
                ("api".to_string(), vec!["api".to_string()]),
                ("worker".to_string(), vec!["jobs".to_string()]),
                ("twice".to_string(), vec!["a".to_string(), "b".to_string()]),
            ]),
        };
        let files = scaffold(&workspace);
        let deploy = &files[0].contents;
        for (artifact, bin) in [("api", "api"), ("worker", "worker")] {
            assert!(
                deploy.contains(&format!("[artifact.{artifact}]")),
                "{deploy}"
            );
            assert!(deploy.contains(&format!("bins = [\"{bin}\"]")), "{deploy}");
            assert!(
                deploy.contains(&format!("pre_activate = \"test -x bin/{bin}\"")),
                "{deploy}"
            );
            assert!(
                deploy.contains(&format!("# [artifact.{artifact}.service]")),
                "{deploy}"
            );
            assert!(
                deploy.contains(&format!("path = \"/srv/shop/{artifact}\"")),
                "{deploy}"
            );
        }
        assert!(!deploy.contains("twice"), "{deploy}");

        // Turned on, the service sections are valid, and plan.
        let on: String = deploy
            .lines()
            .map(|line| {
                let uncommented = line.strip_prefix("# ").unwrap_or(line);
                let key = uncommented.split([' ', '=']).next().unwrap_or("");
                if uncommented.starts_with("[artifact.")
                    || [
                        "manager",
                        "exec",
                        "user",
                        "environment",
                        "listen",
                        "notify",
                        "stop_timeout",
                    ]
                    .contains(&key)
                {
                    uncommented.to_string()
                } else {
                    line.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(on.contains("\n[artifact.api.service]\n"), "{on}");
        // The fixture's workspace has binaries of its own.
        let on = on.replace("[\"api\"]", "[]").replace("[\"worker\"]", "[]");
        let fixture = crate::config::tests::Fixture::new(&[
            ("deploy.toml", &on),
            ("environments/dev.toml", &files[1].contents),
            ("templates/shop.toml.j2", &files[2].contents),
        ]);
        let (project, env) = fixture.load("dev");
        let plan = crate::plan::plan(
            &project,
            &env,
            &[],
            true,
            &crate::secrets::Secrets::placeholders(),
        )
        .unwrap();
        let service = plan.targets[0].service.as_ref().unwrap();
        assert_eq!(service.listen, ["127.0.0.1:8080"]);
        assert_eq!(service.exec, "bin/api --config etc/shop.toml");
        assert_eq!(files[2].path, PathBuf::from("templates/shop.toml.j2"));
        assert!(files[2].contents.contains("{{ vars.log_level }}"));
    }
}
