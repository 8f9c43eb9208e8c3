//! `cargo deploy build`: the manifest and reproducibility.

use crate::support::Workspace;

#[test]
fn build_prints_artifact_and_release_ids() {
    let ws = Workspace::hello();
    let out = ws.run(&["build", "dev", "--message-format", "json"]);
    out.assert_code(0);
    let manifest = &out.events()[out.events().len() - 1];
    assert_eq!(manifest["event"], "manifest");
    let artifacts = manifest["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 2);
    let app = artifacts.iter().find(|a| a["artifact"] == "app").unwrap();
    assert_eq!(app["id"].as_str().unwrap().len(), 64);
    let paths: Vec<&str> = app["manifest"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["bin/hello", "bin/restart", "log", "run"]);
    assert_eq!(manifest["releases"].as_array().unwrap().len(), 4);
    assert!(
        !ws.path("target/landfall/local").exists(),
        "build deploys nothing"
    );
}

#[test]
fn check_reproducible_builds_twice_and_finds_identical_ids() {
    let ws = Workspace::hello();
    let out = ws.run(&[
        "build",
        "dev",
        "--check-reproducible",
        "--message-format",
        "json",
    ]);
    out.assert_code(0);
    let report = out
        .events()
        .into_iter()
        .find(|e| e["event"] == "reproducible")
        .unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["first"], report["second"]);
    assert_eq!(report["first"]["artifacts"].as_object().unwrap().len(), 2);

    // The same ids as a build in the workspace itself.
    let normal = ws.run(&["build", "dev", "--message-format", "json"]);
    normal.assert_code(0);
    let manifest = normal.events().pop().unwrap();
    for artifact in manifest["artifacts"].as_array().unwrap() {
        let name = artifact["artifact"].as_str().unwrap();
        assert_eq!(report["first"]["artifacts"][name], artifact["id"], "{name}");
    }
}
