//! Links are not followed where they would take landfall out of what it
//! reads or writes: templates, environments and secrets read through a
//! link that leaves the workspace, files `init` writes through a link
//! (one that leads nowhere included), a bundle written through `--out`,
//! and a release planted in `releases/` as a link, which `rollback --to`
//! would point `current` through.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::secrets::sealed_secrets;
use crate::support::Bed;
use crate::support::{Workspace, new_package};

/// Moves `relative` of the workspace to a directory outside it, and puts a
/// link to it where it was. Returns where it went.
fn move_out(ws: &Workspace, relative: &str, outside: &Path) -> PathBuf {
    let from = ws.path(relative);
    let to = outside.join(Path::new(relative).file_name().unwrap());
    let status = Command::new("mv").arg(&from).arg(&to).status().unwrap();
    assert!(status.success());
    symlink(&to, &from).unwrap();
    to
}

/// Runs `args` in the workspace: refused with exit status 2, the message
/// naming `named`, and no host directory made.
#[track_caller]
fn refused(ws: &Workspace, args: &[&str], named: &str) {
    let out = ws.run(args);
    out.assert_code(2);
    assert!(out.stderr.contains(named), "{}", out.stderr);
    assert!(
        !ws.path("target/landfall/local").exists(),
        "a host was written to"
    );
}

#[test]
fn templates_directory_linked_outside_the_workspace_is_refused_naming_it() {
    let ws = Workspace::hello();
    let outside = tempfile::tempdir().unwrap();
    move_out(&ws, "templates", outside.path());
    refused(
        &ws,
        &["deploy", "dev", "--local"],
        "`templates` is a link that points outside the workspace",
    );
}

#[test]
fn template_linked_outside_from_a_directory_within_templates_is_refused_naming_it() {
    let ws = Workspace::hello();
    let outside = tempfile::tempdir().unwrap();
    // The template lies in a directory of `templates/` that leads out.
    fs::create_dir(outside.path().join("conf")).unwrap();
    fs::copy(
        ws.path("templates/hello.toml.j2"),
        outside.path().join("conf/hello.toml.j2"),
    )
    .unwrap();
    symlink(outside.path().join("conf"), ws.path("templates/conf")).unwrap();
    ws.edit(
        "deploy.toml",
        "src = \"hello.toml.j2\"",
        "src = \"conf/hello.toml.j2\"",
    );
    refused(
        &ws,
        &["deploy", "dev", "--local"],
        "`templates/conf` is a link that points outside the workspace",
    );
}

#[test]
fn environment_linked_outside_the_workspace_is_refused() {
    let ws = Workspace::hello();
    let outside = tempfile::tempdir().unwrap();
    move_out(&ws, "environments/dev.toml", outside.path());
    refused(
        &ws,
        &["deploy", "dev", "--local"],
        "`environments/dev.toml` is a link that points outside the workspace",
    );
}

#[test]
fn secrets_linked_outside_the_workspace_are_refused() {
    let ws = Workspace::hello();
    let identity = sealed_secrets(&ws, "dev");
    let outside = tempfile::tempdir().unwrap();
    move_out(&ws, "secrets/dev.toml.age", outside.path());
    let out = ws.run_with(
        &["deploy", "dev", "--local"],
        &[("LANDFALL_AGE_IDENTITY", &identity)],
    );
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("`secrets/dev.toml.age` is a link that points outside the workspace"),
        "{}",
        out.stderr
    );
    assert!(!ws.path("target/landfall/local").exists());
}

fn init(root: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-deploy"))
        .arg("init")
        .current_dir(root)
        .env("NO_COLOR", "1")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn init_through_a_dangling_deploy_toml_link_is_refused_and_writes_nothing() {
    let (dir, root) = new_package();
    let target = dir.path().join("elsewhere/deploy.toml");
    fs::create_dir(dir.path().join("elsewhere")).unwrap();
    symlink(&target, root.join("deploy.toml")).unwrap();
    let (code, stderr) = init(&root);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("`deploy.toml` is a link, which landfall does not write through"),
        "{stderr}"
    );
    assert!(!target.exists(), "written through the link");
    for file in ["environments", "templates", "Cargo.lock"] {
        assert!(!root.join(file).exists(), "{file} was written");
    }
}

#[test]
fn init_through_a_templates_directory_link_is_refused_and_writes_nothing() {
    let (dir, root) = new_package();
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, root.join("templates")).unwrap();
    let (code, stderr) = init(&root);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`templates` is a link"), "{stderr}");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
    for file in ["deploy.toml", "environments"] {
        assert!(!root.join(file).exists(), "{file} was written");
    }
}

#[test]
fn bundle_out_through_a_link_is_refused() {
    let ws = Workspace::hello();
    let elsewhere = tempfile::tempdir().unwrap();
    symlink(elsewhere.path(), ws.path("bundle")).unwrap();
    let out = ws.run(&["build", "dev", "--out", "bundle"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("`bundle` is a link, which a bundle is not written through"),
        "{}",
        out.stderr
    );
    assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    assert!(
        fs::symlink_metadata(ws.path("bundle"))
            .unwrap()
            .is_symlink()
    );
}

#[test]
fn rollback_to_a_link_planted_in_releases_is_refused_and_switches_nothing() {
    let bed = Bed::new();
    bed.deploy(&[]).assert_code(0);
    let hosts = bed.hosts();
    let planted = "0123456789abcdef0123";
    for (host, _) in &hosts {
        // A complete-looking release outside the artifact, and a link to it
        // among the releases.
        let current = bed.current(host, "hello/app").unwrap();
        let releases = bed.srv(host, "hello/app/releases");
        let status = Command::new("cp")
            .arg("-a")
            .arg(releases.join(&current))
            .arg(bed.srv(host, "elsewhere"))
            .status()
            .unwrap();
        assert!(status.success());
        symlink("/srv/elsewhere", releases.join(planted)).unwrap();
    }
    let before: Vec<Option<String>> = hosts
        .iter()
        .map(|(h, _)| bed.current(h, "hello/app"))
        .collect();
    let out = bed
        .ws
        .run_within(120, &["rollback", "testbed", "--to", planted]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains(planted), "{}", out.stderr);
    for ((host, _), was) in hosts.iter().zip(before) {
        assert_eq!(bed.current(host, "hello/app"), was, "{host}");
        let link = fs::read_link(bed.srv(host, "hello/app/current")).unwrap();
        assert!(!link.ends_with(planted), "{host}: {}", link.display());
    }
}
