//! `--artifact` selects alike in every command that works on hosts:
//! `status`, `logs`, `rollback`, `exec` and `prune`.

use crate::support::Workspace;

fn json<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(["--local", "--message-format", "json"]);
    all
}

#[test]
fn every_command_on_hosts_takes_artifact() {
    let ws = Workspace::hello_service();
    ws.run(&json(&["deploy", "dev"])).assert_code(0);
    ws.write("examples/hello/site/index.html", "<p>second</p>\n");
    let second = ws.run(&json(&["deploy", "dev"]));
    second.assert_code(0);

    // `status`: only that artifact's targets.
    let status = ws.run(&json(&["status", "dev", "--artifact", "site"]));
    status.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    let artifacts: Vec<&str> = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["artifact"].as_str().unwrap())
        .collect();
    assert_eq!(artifacts, ["site", "site"], "{}", status.stdout);

    // `logs`: only that artifact's service; one that runs none says so.
    let logs = ws.run_within(60, &json(&["logs", "dev", "--artifact", "app", "-n", "1"]));
    logs.assert_code(0);
    let logs = ws.run_within(60, &["logs", "dev", "--local", "--artifact", "site"]);
    logs.assert_code(2).assert_says(&["runs a service"]);

    // `exec`: starts in that artifact's `current`, and takes one.
    let exec = ws.run(&["exec", "dev", "--local", "--artifact", "site", "--", "pwd"]);
    exec.assert_code(0);
    for host in ["web1", "web2"] {
        let release = second.release_of(host, "site");
        assert!(
            exec.stdout
                .contains(&format!("{host}/srv/hello/site/releases/{release}")),
            "{}",
            exec.stdout
        );
    }
    let two = ws.run(&[
        "exec",
        "dev",
        "--local",
        "--artifact",
        "site",
        "--artifact",
        "app",
        "--",
        "pwd",
    ]);
    two.assert_code(2).assert_says(&["give `--artifact` once"]);

    // `rollback`: only that artifact goes back.
    let back = ws.run(&json(&["rollback", "dev", "--artifact", "site"]));
    back.assert_code(0);
    assert_eq!(
        back.statuses(),
        [
            ("web1/site".to_string(), "rolled_back".to_string()),
            ("web2/site".into(), "rolled_back".into())
        ]
    );
    assert_eq!(
        ws.current("web1", "/srv/hello/app"),
        Some(second.release_of("web1", "app")),
        "app stayed"
    );

    // An artifact deploy.toml does not have is a usage error, before any
    // host is contacted.
    for command in ["status", "logs", "rollback"] {
        let out = ws.run(&[command, "dev", "--local", "--artifact", "nope"]);
        out.assert_code(2)
            .assert_says(&["`--artifact nope`: deploy.toml has no such artifact"]);
    }

    // `prune`: the orphans deployed as that artifact, which may have left
    // deploy.toml. `site` moves: its old directory is an orphan.
    ws.edit(
        "deploy.toml",
        "path = \"/srv/hello/site\"",
        "path = \"/srv/hello/pages\"",
    );
    let status = ws.run(&json(&["status", "dev", "--artifact", "app"]));
    let report: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    assert_eq!(
        report["orphans"],
        serde_json::json!([]),
        "{}",
        status.stdout
    );
    let none = ws.run(&["prune", "dev", "--local", "--artifact", "app", "--yes"]);
    none.assert_code(0).assert_says(&["nothing to prune"]);
    assert!(ws.host_dir("web1", "/srv/hello/site").exists());
    let pruned = ws.run(&["prune", "dev", "--local", "--artifact", "site", "--yes"]);
    pruned.assert_code(0).assert_says(&["2 orphans pruned"]);
    assert!(!ws.host_dir("web1", "/srv/hello/site").exists());
}

/// A regression: an artifact removed from deploy.toml leaves its
/// directories (and service) on the hosts, and the dry run did not say so.
#[test]
fn a_dry_run_says_what_a_removed_artifact_leaves_behind_and_how_to_prune_it() {
    let ws = Workspace::hello_service();
    ws.run(&json(&["deploy", "dev"])).assert_code(0);
    let text = ws.read("deploy.toml");
    let start = text.find("# Static pages").unwrap();
    ws.write(
        "deploy.toml",
        &text[..start].replace("after = [\"site\"]\n", ""),
    );

    let dry = ws.run(&["deploy", "dev", "--local", "--dry-run"]);
    dry.assert_code(0).assert_says(&[
        "Orphan",
        "/srv/hello/site",
        "this deploy leaves 2 orphans on the hosts",
        "`cargo deploy prune dev` stops and removes them",
    ]);
    let events = ws.run(&json(&["deploy", "dev", "--dry-run"]));
    events.assert_code(0);
    let orphans = events.events_of("orphan");
    assert_eq!(orphans.len(), 2, "{}", events.stdout);
    assert!(
        orphans.iter().all(|o| o["artifact"] == "site"),
        "{orphans:?}"
    );
    assert_eq!(events.events().last().unwrap()["event"], "summary");
    // The dry run changed nothing: the orphans are still there.
    assert!(ws.host_dir("web1", "/srv/hello/site").exists());
    // Once pruned, a dry run says nothing of them.
    ws.run(&["prune", "dev", "--local", "--yes"]).assert_code(0);
    let clean = ws.run(&["deploy", "dev", "--local", "--dry-run"]);
    clean.assert_code(0);
    assert!(!clean.stderr.contains("Orphan"), "{}", clean.stderr);
}
