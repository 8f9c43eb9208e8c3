//! `cargo deploy init`: a first `deploy.toml`, `environments/dev.toml` and
//! template for a workspace, such that `cargo deploy dev --local` works at
//! once. This module only computes the files; the caller writes them.

use std::path::PathBuf;

use crate::config::Workspace;

/// A file `init` writes, relative to the workspace root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaffoldFile {
    pub path: PathBuf,
    pub contents: String,
}

/// The files for `workspace`: one artifact holding every binary of the
/// workspace (a binary two packages define is left out), with a rendered
/// config file, deployed to one local host.
pub fn scaffold(workspace: &Workspace) -> Vec<ScaffoldFile> {
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
    let list = bins
        .iter()
        .map(|b| format!("{b:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let check = bins.first().map_or_else(
        || format!("test -f etc/{name}.toml"),
        |bin| format!("test -x bin/{bin}"),
    );
    let deploy = format!(
        r#"# What `cargo deploy` builds and where it goes. Every key is described
# in landfall's guide; unknown keys are errors.

[project]
name = "{name}"

[build]
profile = "release"

# Template variables: environments and hosts override them.
[vars]
log_level = "info"

[artifact.{name}]
roles = ["app"]                  # hosts with one of these roles get it
path = "/srv/{name}"             # base directory on the host
bins = [{list}]
templates = [{{ src = "{name}.toml.j2", dst = "etc/{name}.toml" }}]
shared = ["log"]                 # kept across releases, under /srv/{name}/shared/
keep = 5

[artifact.{name}.hooks]
# Each hook runs on the host, in the release directory.
pre_activate = "{check}"
# activate = "systemctl restart {name}"
# health = "curl -fsS http://127.0.0.1:8080/health"
"#
    );
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
    fn every_binary_goes_into_one_artifact() {
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
        assert!(deploy.contains("[artifact.shop]"), "{deploy}");
        assert!(deploy.contains("bins = [\"api\", \"worker\"]"), "{deploy}");
        assert!(
            deploy.contains("pre_activate = \"test -x bin/api\""),
            "{deploy}"
        );
        assert_eq!(files[2].path, PathBuf::from("templates/shop.toml.j2"));
        assert!(files[2].contents.contains("{{ vars.log_level }}"));
    }
}
