//! The release is the whole unit: its activation (hooks, time limits) is
//! one of its files, covered by its id, and what switching back, a
//! rollback and `--force` run is what the release recorded, with its own
//! secrets, from any checkout; each release records where it comes from.

use std::fs;

use crate::support::Bed;
use crate::support::{Outcome, Workspace, http_get, http_get_at, wait_for};

/// The app's path on a test bed host, under its `/srv`.
const APP: &str = "hello/app";
/// The app's path on a local host.
const LOCAL_APP: &str = "/srv/hello/app";

fn deploy(ws: &Workspace, extra: &[&str]) -> Outcome {
    let mut args = vec!["deploy", "dev", "--local", "--message-format", "json"];
    args.extend_from_slice(extra);
    ws.run(&args)
}

/// The lines hooks appended to `shared/log/hooks` of a host's app.
fn hook_lines(ws: &Workspace, host: &str) -> Vec<String> {
    fs::read_to_string(ws.host_dir(host, LOCAL_APP).join("shared/log/hooks"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn status_of(out: &Outcome, host: &str, artifact: &str) -> String {
    let summary = out.summary();
    summary["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host && h["artifact"] == artifact)
        .map_or_else(
            || panic!("no {host}/{artifact} in {summary}"),
            |h| h["status"].as_str().unwrap().to_string(),
        )
}

#[test]
fn a_hook_only_change_is_a_new_release_and_reverting_it_activates_the_old_one_again() {
    let ws = Workspace::hello();
    let hook = "activate = \"bin/restart\"";
    let marked = |mark: &str| {
        format!("activate = \"echo {mark} >>$LANDFALL_PATH/shared/log/hooks && bin/restart\"")
    };
    ws.edit("deploy.toml", hook, &marked("one"));
    let first = deploy(&ws, &[]);
    first.assert_code(0);
    let one = first.release_of("web1", "app");
    assert_eq!(hook_lines(&ws, "web1"), ["one"]);

    // Only the hook changes: a new release of the same files, activated.
    ws.edit("deploy.toml", &marked("one"), &marked("two"));
    let second = deploy(&ws, &[]);
    second.assert_code(0);
    let two = second.release_of("web1", "app");
    assert_ne!(one, two, "the release id covers the hooks");
    assert_eq!(status_of(&second, "web1", "app"), "deployed");
    assert_eq!(status_of(&second, "web1", "site"), "unchanged");
    assert_eq!(hook_lines(&ws, "web1"), ["one", "two"], "the new hook ran");
    let new = ws.host_dir("web1", LOCAL_APP).join("releases").join(&two);
    let old = ws.host_dir("web1", LOCAL_APP).join("releases").join(&one);
    {
        use std::os::unix::fs::MetadataExt;
        let inode = |dir: &std::path::Path| fs::metadata(dir.join("bin/hello")).unwrap().ino();
        assert_eq!(
            inode(&new),
            inode(&old),
            "the new release's files are hard links"
        );
    }

    // Reverting the change goes back to the first release, under its id,
    // and runs its hook.
    ws.edit("deploy.toml", &marked("two"), &marked("one"));
    let third = deploy(&ws, &[]);
    third.assert_code(0);
    assert_eq!(third.release_of("web1", "app"), one);
    assert_eq!(status_of(&third, "web1", "app"), "deployed");
    assert!(
        third
            .events_of("pushed")
            .iter()
            .all(|e| e["artifact"] != "app"),
        "nothing sent"
    );
    assert_eq!(hook_lines(&ws, "web1"), ["one", "two", "one"]);
    assert_eq!(
        http_get(ws.listen[0], "/"),
        Some((200, "hello from web1\n".into()))
    );

    // `--force` runs the current release's activation again and changes
    // nothing else.
    let forced = deploy(&ws, &["--force", "--only", "web1"]);
    forced.assert_code(0);
    assert_eq!(status_of(&forced, "web1", "app"), "deployed");
    assert_eq!(forced.release_of("web1", "app"), one);
    assert!(forced.events_of("pushed").is_empty(), "{}", forced.stdout);
    assert_eq!(hook_lines(&ws, "web1"), ["one", "two", "one", "one"]);
    assert!(
        hook_lines(&ws, "web2").len() == 3,
        "--only kept web2 as it was"
    );
    let log = fs::read_to_string(ws.host_dir("web1", LOCAL_APP).join(".landfall/log")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "reactivated");
    assert!(
        !ws.host_dir("web1", LOCAL_APP)
            .join(".landfall/lock")
            .exists()
    );
    let again = deploy(&ws, &[]);
    again.assert_code(0);
    assert!(
        again.statuses().iter().all(|(_, s)| s == "unchanged"),
        "{}",
        again.stdout
    );
}

#[test]
fn a_failed_health_check_switches_back_and_runs_the_old_releases_own_health_hook() {
    let ws = Workspace::hello();
    ws.edit(
        "deploy.toml",
        "health_timeout = \"10s\"",
        "health_timeout = \"2s\"",
    );
    let health = "health = \"bin/hello probe http://{{ vars.bind }}:{{ vars.port }}/health\"";
    let old_health = "health = \"echo old-health >>$LANDFALL_PATH/shared/log/hooks && \
                      bin/hello probe http://{{ vars.bind }}:{{ vars.port }}/health\"";
    ws.edit("deploy.toml", health, old_health);
    let first = deploy(&ws, &[]);
    first.assert_code(0);
    let good = first.release_of("web1", "app");

    // The new release's health hook fails whatever the service does.
    ws.edit(
        "deploy.toml",
        old_health,
        "health = \"echo new-health >>$LANDFALL_PATH/shared/log/hooks; exit 1\"",
    );
    fs::remove_file(ws.host_dir("web1", LOCAL_APP).join("shared/log/hooks")).unwrap();
    let out = deploy(&ws, &[]);
    out.assert_code(1);
    assert_eq!(
        status_of(&out, "web1", "app"),
        "rolled_back",
        "{}",
        out.stdout
    );
    assert_eq!(
        ws.current("web1", LOCAL_APP).as_deref(),
        Some(good.as_str())
    );
    let lines = hook_lines(&ws, "web1");
    assert!(
        lines.first().is_some_and(|l| l == "new-health"),
        "{lines:?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("old-health"),
        "the old release's own health hook ran after the switch back: {lines:?}"
    );
    assert_eq!(
        http_get(ws.listen[0], "/health"),
        Some((200, "ok\n".into())),
        "the old release serves"
    );
    let log = fs::read_to_string(ws.host_dir("web1", LOCAL_APP).join(".landfall/log")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "rolled_back");
    assert_eq!(last["release"], good.as_str());
}

/// A hook that uses a secret: it writes the admin token where the test can
/// read it, then restarts the service.
const SECRET_HOOK: &str = "activate = \"printf %s {{ secrets.admin_token }} \
                           >$LANDFALL_PATH/shared/run/token && bin/restart\"";

#[test]
fn a_rollback_from_a_fresh_clone_without_an_identity_runs_what_the_release_recorded() {
    let bed = Bed::new();
    let ws = &bed.ws;
    // The identity stays out of the repository a clone is made from.
    ws.git(&["init", "-q"]);
    ws.write(".gitignore", "/target\n/keys\n");
    let identity = crate::secrets::sealed_secrets(ws, "testbed");
    ws.edit("deploy.toml", "activate = \"bin/restart\"", SECRET_HOOK);
    let first_commit = ws.git_commit("first");
    let with_identity = |args: &[&str]| {
        let mut all = vec!["deploy", "testbed", "--message-format", "json"];
        all.extend_from_slice(args);
        ws.run_with(&all, &[("LANDFALL_AGE_IDENTITY", &identity)])
    };
    let first = with_identity(&[]);
    first.assert_code(0);
    let host = bed.hosts()[0].clone();
    let (name, address) = (host.0.as_str(), host.1.as_str());
    let good = first.release_of(name, "app");
    let token = bed.srv(name, APP).join("shared/run/token");
    assert_eq!(fs::read_to_string(&token).unwrap(), crate::secrets::TOKEN);
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        let file = bed
            .srv(name, APP)
            .join("releases")
            .join(&good)
            .join(".landfall-activation");
        fs::metadata(file).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode, 0o600, "an activation holding a secret is private");

    ws.edit(
        "deploy.toml",
        "greeting = \"hello\"",
        "greeting = \"howdy\"",
    );
    ws.git_commit("second");
    with_identity(&[]).assert_code(0);
    assert_eq!(
        http_get_at(address, bed.port, "/"),
        Some((200, format!("howdy from {name}\n")))
    );

    // A fresh clone at a commit never deployed, with no identity: a deploy
    // cannot decrypt the secrets, but a rollback needs none.
    ws.edit("deploy.toml", "greeting = \"howdy\"", "greeting = \"hey\"");
    ws.edit("deploy.toml", SECRET_HOOK, "activate = \"bin/restart\"");
    ws.git_commit("third, never deployed");
    let clone = ws.clone_repo();
    assert!(!clone.path("keys").exists());
    let refused = clone.run(&["deploy", "testbed", "--message-format", "json"]);
    assert_eq!(refused.code, 2, "no identity: {}", refused.stderr);
    fs::remove_file(&token).unwrap();
    let back = clone.run(&[
        "rollback",
        "testbed",
        "--only",
        name,
        "--message-format",
        "json",
    ]);
    back.assert_code(0);
    assert_eq!(
        status_of(&back, name, "app"),
        "rolled_back",
        "{}",
        back.stdout
    );
    assert_eq!(bed.current(name, APP).as_deref(), Some(good.as_str()));
    assert_eq!(
        fs::read_to_string(&token).unwrap(),
        crate::secrets::TOKEN,
        "the hook the release recorded ran with the real secret"
    );
    wait_for(10, "the old release to serve", || {
        http_get_at(address, bed.port, "/") == Some((200, format!("hello from {name}\n")))
    });

    let status = clone.run(&[
        "status",
        "testbed",
        "--only",
        name,
        "--message-format",
        "json",
    ]);
    status.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    let app = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["artifact"] == "app")
        .unwrap()
        .clone();
    let current = app["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["current"] == true)
        .unwrap()
        .clone();
    assert_eq!(current["id"], good.as_str());
    assert_eq!(
        current["provenance"]["revision"],
        first_commit.as_str(),
        "status shows the commit the release was built from: {current}"
    );
    assert_eq!(current["activated"]["event"], "rollback");
    assert_eq!(current["activated"]["revision"], &first_commit[..12]);
    assert!(
        current["activated"]["user"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    let log = fs::read_to_string(bed.srv(name, APP).join(".landfall/log")).unwrap();
    let events: Vec<String> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(events, ["activated", "activated", "rollback"]);
}

#[test]
fn a_release_records_its_overrides_and_a_protected_rollback_is_confirmed() {
    let ws = Workspace::hello();
    ws.git_commit("first");
    let out = deploy(&ws, &["--var", "greeting=hola"]);
    out.assert_code(0);
    assert_eq!(
        http_get(ws.listen[0], "/"),
        Some((200, "hola from web1\n".into()))
    );
    let status = ws.run(&["status", "dev", "--local", "--message-format", "json"]);
    status.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    let provenance = &report["hosts"][0]["releases"][0]["provenance"];
    assert_eq!(
        provenance["overrides"],
        serde_json::json!(["greeting=hola"])
    );
    assert_eq!(provenance["dirty"], false);
    let human = ws.run(&["status", "dev", "--local"]);
    assert!(
        human.stdout.contains("--var greeting=hola"),
        "{}",
        human.stdout
    );

    deploy(&ws, &[]).assert_code(0);
    let text = ws.read("environments/dev.toml");
    ws.write(
        "environments/dev.toml",
        &text.replace("[environment]\n", "[environment]\nprotect = true\n"),
    );
    let refused = ws.run(&["rollback", "dev", "--local"]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("confirm the rollback with `--yes`"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        http_get(ws.listen[0], "/"),
        Some((200, "hello from web1\n".into())),
        "nothing was rolled back"
    );
    ws.run(&["rollback", "dev", "--local", "--yes"])
        .assert_code(0);
    assert_eq!(
        http_get(ws.listen[0], "/"),
        Some((200, "hola from web1\n".into()))
    );
}
