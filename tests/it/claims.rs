//! What is whose on a host is proven by what is on disk, never by a name
//! or a path's spelling: another project (or another copy) of the same
//! name cannot deploy over an artifact's directory, and `prune` removes
//! only the proven orphans of this project and environment, never a live
//! artifact through an alias or an entry planted in the host's record.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::support::Bed;
use crate::support::Workspace;

/// The id of the projects the tests copy (`deploy.toml`, and the hooks
/// fixture).
const ID: &str = "5c0ea9e7d1a04b6f9f2e8d3b7a61c4f0";

/// Every path under `dir`, links shown with their targets, sorted: a
/// host's tree, as the test's output shows it before and after.
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let shown = path.strip_prefix(dir).unwrap().display().to_string();
        if meta.file_type().is_symlink() {
            found.push(format!(
                "{shown} -> {}",
                fs::read_link(&path).unwrap().display()
            ));
        } else if meta.is_dir() {
            // Releases are many and alike: their names are enough.
            if path.parent().is_some_and(|p| p.ends_with("releases")) {
                found.push(format!("{shown}/"));
                continue;
            }
            found.push(format!("{shown}/"));
            for entry in fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        }
    }
    found.sort();
    found.retain(|p| !p.contains("/.landfall/") && !p.starts_with('/'));
    found
}

/// Another copy of the example (same name), with its own id (or none),
/// its own `app` path and port, and no `site`, deploying to the same
/// hosts as `bed`.
fn second_copy(bed: &Bed, id: Option<&str>, app: &str) -> Workspace {
    let ws = Workspace::hello();
    ws.use_testbed(&bed.testbed, crate::support::free_port());
    ws.remove_site();
    match id {
        Some(id) => ws.edit("deploy.toml", ID, id),
        None => ws.edit("deploy.toml", &format!("id = \"{ID}\"\n"), "\n"),
    }
    ws.edit(
        "deploy.toml",
        "path = \"/srv/hello/app\"",
        &format!("path = \"{app}\""),
    );
    ws
}

/// Two copies both named `hello` deployed to one path: the second took
/// the first's directory over. Now each is known by its id as well, and a
/// copy without one cannot take over a directory recorded with one; a
/// directory recorded before ids is adopted by the project of its name.
#[test]
fn another_copy_of_the_same_project_name_cannot_deploy_over_its_paths() {
    let bed = Bed::new();
    bed.deploy(&[]).assert_code(0);
    let hosts = bed.hosts();
    let before: Vec<Option<String>> = hosts
        .iter()
        .map(|(h, _)| bed.current(h, "hello/app"))
        .collect();

    // Another copy with an id of its own, and one with none.
    for (id, this_one) in [
        (
            Some("0123456789abcdef0123456789abcdef"),
            "id 0123456789abcdef0123456789abcdef",
        ),
        (None, "no id"),
    ] {
        let other = second_copy(&bed, id, "/srv/hello/app");
        let out = other.run(&[
            "deploy",
            "testbed",
            "--var",
            "greeting=taken",
            "--message-format",
            "json",
        ]);
        assert_ne!(out.code, 0, "{}", out.stdout);
        let said = format!(
            "/srv/hello/app holds the releases of another project named hello (id {ID}), \
             not of this one ({this_one})"
        );
        assert!(out.stdout.contains(&said), "no `{said}` in\n{}", out.stdout);
    }
    let after: Vec<Option<String>> = hosts
        .iter()
        .map(|(h, _)| bed.current(h, "hello/app"))
        .collect();
    assert_eq!(before, after);

    // A record made before projects had ids names the name alone: the
    // project of that name adopts it, and records its id from then on.
    let record = bed.srv(&hosts[0].0, "hello/app/.landfall/artifact");
    assert_eq!(
        fs::read_to_string(&record).unwrap(),
        format!("hello:{ID}/app@testbed\n")
    );
    fs::write(&record, "hello/app@testbed\n").unwrap();
    bed.deploy(&["--var", "greeting=again"]).assert_code(0);
    assert_eq!(
        fs::read_to_string(&record).unwrap(),
        format!("hello:{ID}/app@testbed\n")
    );
}

/// `prune` compared path strings: an artifact whose `path` went from an
/// alias (a link) to the real directory, and entries such as `//app`,
/// `x/../app` or `link/` in the host's record, made it remove the live
/// artifact, through the link; another copy of the same name lost its
/// live artifact too. Now only the true orphan goes.
#[test]
fn prune_removes_only_proven_orphans_never_a_live_artifact() {
    let bed = Bed::new();
    let hosts = bed.hosts();
    for (host, _) in &hosts {
        symlink("hello", bed.srv(host, "alias")).unwrap();
    }
    // Deployed through the alias, then through the real directory: the
    // hosts' records name both.
    bed.ws.edit(
        "deploy.toml",
        "path = \"/srv/hello/app\"",
        "path = \"/srv/alias/app\"",
    );
    bed.deploy(&[]).assert_code(0);
    bed.ws.edit(
        "deploy.toml",
        "path = \"/srv/alias/app\"",
        "path = \"/srv/hello/app\"",
    );
    bed.deploy(&[]).assert_code(0);
    // Another copy of the project, with an id of its own, elsewhere.
    let other = second_copy(
        &bed,
        Some("0123456789abcdef0123456789abcdef"),
        "/srv/other/app",
    );
    other
        .run(&["deploy", "testbed", "--message-format", "json"])
        .assert_code(0);
    // Entries planted in the first host's record, each naming a live
    // artifact in another spelling.
    let (first, _) = &hosts[0];
    let record = bed.testbed.state(first).join("paths");
    let mut text = fs::read_to_string(&record).unwrap();
    for planted in [
        "//srv/hello/app",
        "/srv/hello/x/../app",
        "/srv/alias/app/",
        "/srv/alias/site",
        "/srv/hello",
    ] {
        text.push_str(planted);
        text.push('\n');
    }
    fs::write(&record, text).unwrap();
    // `site` leaves the model: its directory is the one true orphan.
    bed.ws.remove_site();
    bed.deploy(&[]).assert_code(0);

    let srv = bed.testbed.srv(first);
    let before = tree(&srv);
    eprintln!("before prune, {first}:/srv\n  {}", before.join("\n  "));
    let orphans = bed.ws.orphans("testbed");
    let paths: Vec<&str> = orphans
        .iter()
        .map(|o| o["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/srv/hello/site"; 3], "{orphans:?}");
    let pruned = bed
        .ws
        .run(&["prune", "testbed", "--yes", "--message-format", "json"]);
    pruned.assert_code(0);
    let after = tree(&srv);
    eprintln!("after prune, {first}:/srv\n  {}", after.join("\n  "));
    let gone: Vec<&String> = before.iter().filter(|p| !after.contains(p)).collect();
    assert!(
        gone.iter().all(|p| p.starts_with("hello/site")),
        "{gone:#?}"
    );
    assert!(!gone.is_empty());
    for (host, _) in &hosts {
        assert!(bed.current(host, "hello/app").is_some(), "{host}");
        assert!(bed.current(host, "other/app").is_some(), "{host}");
        assert!(!bed.srv(host, "hello/site").exists(), "{host}");
        assert!(bed.srv(host, "alias").is_symlink(), "{host}");
    }
    // Nothing more is an orphan, and a second prune removes nothing.
    assert!(bed.ws.orphans("testbed").is_empty());
    let again = bed
        .ws
        .run(&["prune", "testbed", "--yes", "--message-format", "json"]);
    again.assert_code(0);
    assert!(again.events_of("pruned").is_empty(), "{}", again.stdout);
    assert_eq!(tree(&srv), after);
}
