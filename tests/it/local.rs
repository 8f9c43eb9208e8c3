//! `cargo deploy ENV --local`, end to end: the example service is built,
//! deployed to two local hosts, started by its activate hook and checked
//! over HTTP.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::support::{Workspace, http_get, wait_for};

const APP: &str = "/srv/hello/app";
const SITE: &str = "/srv/hello/site";

fn deploy(ws: &Workspace, extra: &[&str]) -> crate::support::Outcome {
    let mut args = vec!["deploy", "dev", "--local", "--message-format", "json"];
    args.extend_from_slice(extra);
    ws.run(&args)
}

fn log_lines(ws: &Workspace, host: &str, path: &str) -> Vec<serde_json::Value> {
    let text =
        fs::read_to_string(ws.host_dir(host, path).join(".landfall/log")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line `{l}`: {e}")))
        .collect()
}

fn pid(ws: &Workspace, host: &str) -> String {
    fs::read_to_string(ws.host_dir(host, APP).join("shared/run/hello.pid")).unwrap()
}

#[test]
fn first_deploy_serves_every_host_over_http() {
    let ws = Workspace::hello();
    let out = deploy(&ws, &[]);
    out.assert_code(0);
    assert_eq!(
        out.statuses(),
        [
            ("web1/site".to_string(), "deployed".to_string()),
            ("web2/site".into(), "deployed".into()),
            ("web1/app".into(), "deployed".into()),
            ("web2/app".into(), "deployed".into())
        ]
    );
    assert_eq!(out.summary()["ok"], true);
    for (host, listen) in ["web1", "web2"].into_iter().zip(ws.listen) {
        assert_eq!(
            http_get(listen, "/"),
            Some((200, format!("hello from {host}\n")))
        );
        assert_eq!(http_get(listen, "/health"), Some((200, "ok\n".into())));
        let (status, page) = http_get(listen, "/static/index.html").unwrap();
        assert_eq!(status, 200);
        assert!(page.contains("The hello site"), "{page}");

        let release = out.release_of(host, "app");
        assert_eq!(ws.current(host, APP).as_deref(), Some(release.as_str()));
        assert_eq!(ws.releases(host, APP), std::slice::from_ref(&release));
        let rel = ws.host_dir(host, APP).join("releases").join(&release);
        assert_eq!(
            fs::metadata(rel.join("bin/hello")).unwrap().mode() & 0o777,
            0o755
        );
        assert_eq!(
            fs::metadata(rel.join("etc/hello.toml")).unwrap().mode() & 0o777,
            0o644
        );
        assert_eq!(
            fs::read_link(rel.join("log")).unwrap().to_str(),
            Some("../../shared/log")
        );
        let config = fs::read_to_string(rel.join("etc/hello.toml")).unwrap();
        assert!(
            config.contains(&format!("listen = \"{listen}\"")),
            "{config}"
        );

        let log = log_lines(&ws, host, APP);
        assert_eq!(log.len(), 1);
        assert_eq!(log[0]["event"], "activated");
        assert_eq!(log[0]["release"], release.as_str());
        assert!(
            !ws.host_dir(host, APP).join(".landfall/lock").exists(),
            "the lock is released"
        );
    }
    // Hosts with different rendered configs get different releases of the
    // same artifact; hosts with the same files share one.
    assert_ne!(out.release_of("web1", "app"), out.release_of("web2", "app"));
    assert_eq!(
        out.release_of("web1", "site"),
        out.release_of("web2", "site")
    );
}

#[test]
fn redeploy_of_an_unchanged_workspace_changes_nothing() {
    let ws = Workspace::hello();
    deploy(&ws, &[]).assert_code(0);
    let pids = [pid(&ws, "web1"), pid(&ws, "web2")];
    let releases = ws.releases("web1", APP);

    let again = deploy(&ws, &[]);
    again.assert_code(0);
    assert!(
        again.statuses().iter().all(|(_, s)| s == "unchanged"),
        "{:?}",
        again.statuses()
    );
    assert_eq!(again.summary()["ok"], true);
    let events: Vec<String> = again
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !events.iter().any(|e| e == "pushed" || e == "activated"),
        "{events:?}"
    );
    assert_eq!([pid(&ws, "web1"), pid(&ws, "web2")], pids, "no hook ran");
    assert_eq!(ws.releases("web1", APP), releases, "no new release");
    assert_eq!(log_lines(&ws, "web1", APP).len(), 1);
}

#[test]
fn changing_one_static_file_redeploys_only_its_artifact() {
    let ws = Workspace::hello();
    let first = deploy(&ws, &[]);
    first.assert_code(0);
    let old_site = first.release_of("web1", "site");
    ws.edit("examples/hello/site/style.css", "40em", "42em");

    let second = deploy(&ws, &[]);
    second.assert_code(0);
    assert_eq!(
        second.statuses(),
        [
            ("web1/site".to_string(), "deployed".to_string()),
            ("web2/site".into(), "deployed".into()),
            ("web1/app".into(), "unchanged".into()),
            ("web2/app".into(), "unchanged".into())
        ]
    );
    let new_site = second.release_of("web1", "site");
    assert_ne!(new_site, old_site);
    let pushed = second.events_of("pushed");
    assert_eq!(pushed.len(), 2);
    assert!(
        pushed.iter().all(|e| e["files"] == 1),
        "only the changed file is written: {pushed:?}"
    );

    // The unchanged file is a hard link to the previous release's.
    let releases = ws.host_dir("web1", SITE).join("releases");
    let inode = |release: &str, file: &str| {
        fs::metadata(releases.join(release).join(file))
            .unwrap()
            .ino()
    };
    assert_eq!(
        inode(&old_site, "public/index.html"),
        inode(&new_site, "public/index.html")
    );
    assert_ne!(
        inode(&old_site, "public/style.css"),
        inode(&new_site, "public/style.css")
    );
    let (_, css) = http_get(ws.listen[0], "/static/style.css").unwrap();
    assert!(css.contains("42em"), "{css}");
}

/// While cargo describes the workspace, a deploy goes on with the
/// workspace as the last run found it. One remembered wrong (a binary it
/// lacks, another target directory) is thrown away unseen: the deploy says
/// nothing of it and writes nothing where it pointed.
#[test]
fn a_workspace_remembered_wrong_is_thrown_away_unseen() {
    let ws = Workspace::hello();
    deploy(&ws, &[]).assert_code(0);
    let remembered = ws.path("target/landfall/workspace.json");
    let text = fs::read_to_string(&remembered).unwrap();
    let described: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        described["root"].as_str().map(Path::new),
        Some(ws.root().canonicalize().unwrap().as_path())
    );
    assert!(described["bins"]["hello"].is_array(), "{text}");

    let elsewhere = ws.path("elsewhere");
    let wrong = [
        ("bins", serde_json::json!({})),
        ("target_dir", serde_json::json!(elsewhere)),
    ];
    for (key, value) in wrong {
        let mut guess = described.clone();
        guess[key] = value;
        fs::write(&remembered, guess.to_string()).unwrap();
        ws.write(&format!("examples/hello/site/{key}.txt"), "new\n");
        let out = deploy(&ws, &[]);
        out.assert_code(0);
        assert!(!out.stderr.contains("hello"), "{key}: {}", out.stderr);
        assert_eq!(
            out.statuses(),
            [
                ("web1/site".to_string(), "deployed".to_string()),
                ("web2/site".to_string(), "deployed".to_string()),
                ("web1/app".to_string(), "unchanged".to_string()),
                ("web2/app".to_string(), "unchanged".to_string()),
            ],
            "{key}"
        );
        assert!(!elsewhere.exists(), "{key}");
        // What cargo described is remembered again.
        assert_eq!(fs::read_to_string(&remembered).unwrap(), text, "{key}");
    }
}

/// A release made as a copy of the current one holds exactly its own
/// files: one that changed, one added in a new directory, and a directory
/// that went, with what was in it.
#[test]
fn a_release_copied_from_the_current_one_holds_exactly_its_files() {
    let ws = Workspace::hello();
    ws.write("examples/hello/site/img/logo.txt", "logo\n");
    ws.write("examples/hello/site/img/deep/mark.txt", "mark\n");
    let first = deploy(&ws, &[]);
    first.assert_code(0);
    fs::remove_dir_all(ws.path("examples/hello/site/img")).unwrap();
    ws.write("examples/hello/site/fonts/a.txt", "a\n");
    ws.edit("examples/hello/site/style.css", "40em", "42em");

    let second = deploy(&ws, &[]);
    second.assert_code(0);
    for host in ["web1", "web2"] {
        let releases = ws.host_dir(host, SITE).join("releases");
        let old = releases.join(first.release_of(host, "site"));
        let new = releases.join(second.release_of(host, "site"));
        let mut files: Vec<String> = walk(&new)
            .into_iter()
            .map(|p| p.strip_prefix(&new).unwrap().display().to_string())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                ".landfall-activation",
                ".landfall-manifest",
                ".landfall-release",
                "public/fonts/a.txt",
                "public/index.html",
                "public/style.css"
            ],
            "{host}"
        );
        let inode = |dir: &Path, file: &str| fs::metadata(dir.join(file)).unwrap().ino();
        assert_eq!(
            inode(&old, "public/index.html"),
            inode(&new, "public/index.html")
        );
        assert!(
            fs::read_to_string(new.join("public/style.css"))
                .unwrap()
                .contains("42em")
        );
        // The release it was copied from is as it was.
        assert_eq!(
            fs::read_to_string(old.join("public/img/deep/mark.txt")).unwrap(),
            "mark\n"
        );
        assert!(
            !fs::read_to_string(old.join("public/style.css"))
                .unwrap()
                .contains("42em")
        );
    }
}

/// Every file under `dir`, directories left out.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    landfall_testbed::support::files_below(dir)
        .into_iter()
        .map(|file| dir.join(file))
        .collect()
}

#[test]
fn failing_health_check_rolls_back_to_the_previous_release() {
    let ws = Workspace::hello();
    ws.edit(
        "deploy.toml",
        "health_timeout = \"10s\"",
        "health_timeout = \"2s\"",
    );
    let first = deploy(&ws, &[]);
    first.assert_code(0);
    let good = first.release_of("web1", "app");
    let started = pid(&ws, "web1");

    // The new configuration makes the service report itself unhealthy.
    ws.edit("deploy.toml", "healthy = true", "healthy = false");
    let out = deploy(&ws, &[]);
    out.assert_code(1);
    let summary = out.summary();
    assert_eq!(summary["ok"], false);
    let web1 = summary["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "web1" && h["artifact"] == "app")
        .unwrap();
    assert_eq!(web1["status"], "rolled_back", "{summary}");
    assert_eq!(web1["previous"], good.as_str());
    assert!(
        web1["message"].as_str().unwrap().contains("health"),
        "{web1}"
    );

    assert_eq!(
        ws.current("web1", APP).as_deref(),
        Some(good.as_str()),
        "current is the previous release again"
    );
    assert_ne!(
        pid(&ws, "web1"),
        started,
        "activate ran again for the previous release"
    );
    assert_eq!(
        http_get(ws.listen[0], "/health"),
        Some((200, "ok\n".into())),
        "the previous release serves again"
    );
    let log = log_lines(&ws, "web1", APP);
    assert_eq!(log.last().unwrap()["event"], "rolled_back");
    assert!(!ws.host_dir("web1", APP).join(".landfall/lock").exists());
}

#[test]
fn pre_activate_failure_leaves_current_untouched() {
    let ws = Workspace::hello();
    let first = deploy(&ws, &[]);
    first.assert_code(0);
    let started = pid(&ws, "web1");
    // An invalid config fails `hello serve --check` before the switch.
    ws.edit("templates/hello.toml.j2", "name = ", "bogus = 1\nname = ");
    let out = deploy(&ws, &[]);
    out.assert_code(1);
    let statuses = out.statuses();
    assert!(
        statuses.contains(&("web1/app".into(), "failed".into())),
        "{statuses:?}"
    );
    assert!(out.stderr.is_empty() || !out.stderr.contains("panicked"));
    let failed = out
        .events()
        .into_iter()
        .find(|e| e["event"] == "failed")
        .unwrap();
    assert_eq!(failed["phase"], "pre_activate");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("unknown key `bogus`"),
        "{failed}"
    );
    assert_eq!(
        ws.current("web1", APP),
        Some(first.release_of("web1", "app"))
    );
    assert_eq!(pid(&ws, "web1"), started);
}

#[test]
fn status_with_sbom_shows_the_bill_of_materials_of_the_release_that_runs() {
    let ws = Workspace::hello_built();
    let out = deploy(&ws, &["--only", "web1"]);
    out.assert_code(0);
    let release = out.release_of("web1", "app");
    let file = ws
        .host_dir("web1", APP)
        .join("releases")
        .join(&release)
        .join(".landfall-sbom.cdx.json");
    let held: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();

    let status = ws.run(&[
        "status",
        "dev",
        "--local",
        "--only",
        "web1",
        "--sbom",
        "--message-format",
        "json",
    ]);
    status.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    let hosts = report["hosts"].as_array().unwrap();
    let app = hosts.iter().find(|h| h["artifact"] == "app").unwrap();
    assert_eq!(app["current"], release.as_str());
    assert_eq!(app["sbom"], held, "the document as the host holds it");
    assert_eq!(app["sbom"]["bomFormat"], "CycloneDX");
    let components = app["sbom"]["components"].as_array().unwrap();
    let hello = components.iter().find(|c| c["name"] == "hello").unwrap();
    assert_eq!(hello["purl"], "pkg:cargo/hello@0.1.0");
    assert!(components.iter().any(|c| c["name"] == "socket2"));
    // An artifact without binaries has none, and without `--sbom` no
    // document is read.
    let site = hosts.iter().find(|h| h["artifact"] == "site").unwrap();
    assert!(site.get("sbom").is_none(), "{site}");
    let plain = ws.run(&["status", "dev", "--local", "--message-format", "json"]);
    plain.assert_code(0);
    assert!(!plain.stdout.contains("CycloneDX"), "{}", plain.stdout);

    let human = ws.run(&["status", "dev", "--local", "--only", "web1", "--sbom"]);
    human.assert_code(0);
    assert!(human.stdout.contains("sbom"), "{}", human.stdout);
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("hello ") && l.contains("0.1.0")),
        "{}",
        human.stdout
    );
}

#[test]
fn status_and_rollback_to_the_previous_release() {
    let ws = Workspace::hello();
    let first = deploy(&ws, &[]);
    first.assert_code(0);
    ws.edit(
        "deploy.toml",
        "greeting = \"hello\"",
        "greeting = \"howdy\"",
    );
    let second = deploy(&ws, &[]);
    second.assert_code(0);
    assert_eq!(
        http_get(ws.listen[0], "/"),
        Some((200, "howdy from web1\n".into()))
    );

    let status = ws.run(&["status", "dev", "--local", "--message-format", "json"]);
    status.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    let app = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "web1" && h["artifact"] == "app")
        .unwrap();
    assert_eq!(app["current"], second.release_of("web1", "app").as_str());
    let ids: Vec<&str> = app["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            second.release_of("web1", "app"),
            first.release_of("web1", "app")
        ]
    );
    assert_eq!(app["releases"][0]["activated"]["event"], "activated");
    assert!(
        app["releases"][0]["activated"]["time"]
            .as_str()
            .unwrap()
            .starts_with("20")
    );

    let human = ws.run(&["status", "dev", "--local"]);
    human.assert_code(0);
    assert!(
        human
            .stdout
            .contains(&format!("* {}", second.release_of("web1", "app"))),
        "{}",
        human.stdout
    );

    let back = ws.run(&[
        "rollback",
        "dev",
        "--local",
        "--only",
        "web1",
        "--message-format",
        "json",
    ]);
    back.assert_code(0);
    assert_eq!(
        back.statuses(),
        [
            ("web1/site".to_string(), "skipped".to_string()),
            ("web1/app".into(), "rolled_back".into())
        ]
    );
    assert_eq!(
        ws.current("web1", APP),
        Some(first.release_of("web1", "app"))
    );
    assert_eq!(
        ws.current("web2", APP),
        Some(second.release_of("web2", "app")),
        "--only kept web2 as it was"
    );
    assert_eq!(
        http_get(ws.listen[0], "/"),
        Some((200, "hello from web1\n".into()))
    );

    let to = ws.run(&[
        "rollback",
        "dev",
        "--local",
        "--only",
        "web1",
        "--to",
        &second.release_of("web1", "app")[..8],
    ]);
    to.assert_code(0);
    assert_eq!(
        ws.current("web1", APP),
        Some(second.release_of("web1", "app"))
    );
}

#[test]
fn keep_never_removes_the_current_or_previous_release() {
    let ws = Workspace::hello();
    ws.edit(
        "deploy.toml",
        "files = [{ src = \"examples/hello/site\", dst = \"public\" }]\nkeep = 3",
        "files = [{ src = \"examples/hello/site\", dst = \"public\" }]\nkeep = 1",
    );
    let mut ids = Vec::new();
    for width in ["41em", "42em", "43em"] {
        let text = ws.read("examples/hello/site/style.css");
        let old = text
            .split_whitespace()
            .find(|w| w.ends_with("em;"))
            .unwrap()
            .trim_end_matches(';')
            .to_string();
        ws.edit("examples/hello/site/style.css", &old, width);
        let out = deploy(&ws, &["--only", "web1"]);
        out.assert_code(0);
        ids.push(out.release_of("web1", "site"));
    }
    let mut expected = vec![ids[1].clone(), ids[2].clone()];
    expected.sort();
    assert_eq!(
        ws.releases("web1", SITE),
        expected,
        "keep = 1 still keeps the previous release"
    );
    assert!(
        !ws.host_dir("web2", SITE).exists(),
        "--only web1 left web2 alone"
    );
}

#[test]
fn dry_run_reports_changes_and_writes_nothing_on_hosts() {
    let ws = Workspace::hello();
    let out = deploy(&ws, &["--dry-run"]);
    out.assert_code(0);
    assert!(!ws.path("target/landfall/local").exists());
    let would = out.events_of("would_deploy");
    assert_eq!(would.len(), 4);
    let app = would
        .iter()
        .find(|e| e["host"] == "web1" && e["artifact"] == "app")
        .unwrap();
    assert_eq!(
        app["added"],
        serde_json::json!([
            ".landfall-activation",
            "bin/hello",
            "bin/restart",
            "etc/hello.toml",
            "log",
            "run"
        ])
    );

    deploy(&ws, &[]).assert_code(0);
    ws.edit("deploy.toml", "greeting = \"hello\"", "greeting = \"hi\"");
    let before = ws.snapshot();
    let out = deploy(&ws, &["--dry-run"]);
    out.assert_code(0);
    let changed = out.events_of("would_deploy");
    assert_eq!(changed.len(), 2, "only app changes: {changed:?}");
    assert_eq!(changed[0]["changed"], serde_json::json!(["etc/hello.toml"]));
    let after: Vec<_> = ws
        .snapshot()
        .into_iter()
        .filter(|p| p.starts_with("target/landfall/local"))
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|p| p.starts_with("target/landfall/local"))
        .collect();
    assert_eq!(before, after, "a dry run changes nothing on the hosts");
}

#[test]
fn human_output_has_a_line_per_host_and_a_summary() {
    let ws = Workspace::hello();
    let out = ws.run(&["deploy", "dev", "--local"]);
    out.assert_code(0);
    assert!(out.stdout.is_empty(), "human output goes to stderr");
    for host in ["web1", "web2"] {
        assert!(
            out.stderr.contains(&format!("Activated {host} app ")),
            "{}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains("Finished dev: 4 deployed in"),
        "{}",
        out.stderr
    );
}

/// Makes the app's activate hook, on the hosts where the sh `condition`
/// (given the gate's directory) holds, touch `GATE/started` and then wait
/// (a bounded while) until the test makes `GATE/go`. Returns GATE.
pub(crate) fn gate_activation(ws: &Workspace, condition: impl Fn(&str) -> String) -> String {
    let gate = ws.path("gate");
    fs::create_dir_all(&gate).unwrap();
    let gate = gate.display().to_string();
    let condition = condition(&gate);
    ws.edit(
        "deploy.toml",
        "activate = \"bin/restart\"",
        &format!(
            "activate = \"bin/restart && if {condition}; then touch {gate}/started; n=0; \
             while [ ! -e {gate}/go ] && [ $n -lt 1000 ]; do sleep 0.02; n=$((n + 1)); done; fi\""
        ),
    );
    gate
}

/// Sends `signal` to a spawned deploy's process group, as a terminal's
/// Ctrl-C reaches every process of the foreground job.
pub(crate) fn signal_group(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn ctrl_c_during_activation_lets_the_host_in_flight_finish_then_switches_every_host_back() {
    let ws = Workspace::hello();
    deploy(&ws, &[]).assert_code(0);
    // web1 activates first; web2's activate hook waits for the test to
    // open the gate once it has sent the signal.
    let gate = gate_activation(&ws, |_| "[ {{ host.name }} = web2 ]".to_string());
    ws.edit(
        "deploy.toml",
        "after = [\"site\"]",
        "after = [\"site\"]\nmax_parallel = 1",
    );
    let first = deploy(&ws, &[]);
    first.assert_code(0);
    ws.edit(
        "deploy.toml",
        "greeting = \"hello\"",
        "greeting = \"howdy\"",
    );
    fs::remove_file(format!("{gate}/started")).unwrap();

    let child = ws.spawn(&["deploy", "dev", "--local", "--message-format", "json"]);
    wait_for(60, "web2's activate hook to start", || {
        std::path::Path::new(&format!("{gate}/started")).exists()
    });
    signal_group(&child, "-INT");
    fs::write(format!("{gate}/go"), "").unwrap();
    let out = crate::support::Outcome::from(child.wait_with_output().unwrap());
    assert_eq!(out.code, 130, "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("landfall: stopping"), "{}", out.stderr);
    let summary = out.summary();
    assert_eq!(summary["ok"], false);
    // The reason is the signal, on the summary and on each host.
    assert_eq!(
        summary["stopped"]["reason"], "landfall was asked to stop",
        "{summary}"
    );
    for host in summary["hosts"].as_array().unwrap() {
        if host["artifact"] == "app" {
            let message = host["message"].as_str().unwrap();
            assert!(
                message.contains("the rollout stopped: landfall was asked to stop"),
                "{summary}"
            );
        }
    }
    for host in ["web1", "web2"] {
        assert_eq!(
            ws.current(host, APP),
            Some(first.release_of(host, "app")),
            "{host} is back on the release it had: {summary}"
        );
        assert!(
            !ws.host_dir(host, APP).join(".landfall/lock").exists(),
            "{host}"
        );
    }
    assert_eq!(
        out.statuses(),
        [
            ("web1/site".to_string(), "unchanged".to_string()),
            ("web2/site".into(), "unchanged".into()),
            ("web1/app".into(), "rolled_back".into()),
            ("web2/app".into(), "rolled_back".into()),
        ]
    );
    assert_eq!(
        http_get(ws.listen[1], "/"),
        Some((200, "hello from web2\n".into()))
    );
}

#[test]
fn a_second_ctrl_c_ends_at_once_leaving_no_secret_staged_and_the_hosts_finish_by_themselves() {
    use std::io::Read as _;
    let ws = Workspace::hello();
    let identity = crate::secrets::sealed_secrets(&ws, "dev");
    // Once armed, web1's activate hook waits for the gate.
    let gate = gate_activation(&ws, |gate| {
        format!("[ {{{{ host.name }}}} = web1 ] && [ -e {gate}/armed ]")
    });
    let env: [(&str, &std::path::Path); 1] = [("LANDFALL_AGE_IDENTITY", &identity)];
    ws.run_with(&["deploy", "dev", "--local"], &env)
        .assert_code(0);
    ws.edit(
        "deploy.toml",
        "greeting = \"hello\"",
        "greeting = \"howdy\"",
    );
    fs::write(format!("{gate}/armed"), "").unwrap();

    let mut child = ws.spawn_with(
        &["deploy", "dev", "--local", "--message-format", "json"],
        &env,
    );
    let mut stderr = child.stderr.take().unwrap();
    let said = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let said = std::sync::Arc::clone(&said);
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                said.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    wait_for(60, "web1's activate hook to start", || {
        std::path::Path::new(&format!("{gate}/started")).exists()
    });
    signal_group(&child, "-INT");
    wait_for(10, "landfall to say it stops", || {
        said.lock().unwrap().contains("landfall: stopping")
    });
    signal_group(&child, "-INT");
    let mut code = None;
    wait_for(10, "landfall to end at the second signal", || {
        code = child.try_wait().unwrap().map(|s| s.code());
        code.is_some()
    });
    reader.join().unwrap();
    assert_eq!(code, Some(Some(130)), "{}", said.lock().unwrap());

    // No rendered file holding a secret is left staged.
    let stage = ws.path("target/landfall/stage");
    let mut staged = Vec::new();
    let mut dirs = vec![stage];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else if fs::read(entry.path())
                .unwrap()
                .windows(crate::secrets::TOKEN.len())
                .any(|w| w == crate::secrets::TOKEN.as_bytes())
            {
                staged.push(entry.path());
            }
        }
    }
    assert!(staged.is_empty(), "{staged:?}");

    // web1's activation goes on by itself and completes once the gate opens.
    fs::write(format!("{gate}/go"), "").unwrap();
    let log = ws.host_dir("web1", APP).join(".landfall/log");
    wait_for(30, "web1 to log its activation", || {
        fs::read_to_string(&log).is_ok_and(|l| l.lines().count() == 2)
    });
    assert_eq!(
        http_get(ws.listen[0], "/"),
        Some((200, "howdy from web1\n".into()))
    );
    // The next run takes over the locks the ended one left, and converges.
    fs::remove_file(format!("{gate}/armed")).unwrap();
    let next = ws.run_with(
        &["deploy", "dev", "--local", "--message-format", "json"],
        &env,
    );
    next.assert_code(0);
    for (host, listen) in [("web1", ws.listen[0]), ("web2", ws.listen[1])] {
        assert!(
            !ws.host_dir(host, APP).join(".landfall/lock").exists(),
            "{host}"
        );
        assert_eq!(
            http_get(listen, "/"),
            Some((200, format!("howdy from {host}\n")))
        );
    }
}
