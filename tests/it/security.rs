//! Security defaults: what landfall writes is open to nobody else, whatever
//! the user's umask and the modes of the workspace's files, unless a mode
//! is declared; files holding secrets are private; the log says who
//! deployed what, and no other artifact can write into it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::secrets::sealed_secrets;
use crate::support::Bed;

/// The one file declared writable by others.
const DECLARED: &str = "inbox/drop.css";

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Every file and directory under `dir` (links are not followed: a link's
/// own mode means nothing) that its group or others may write, but those
/// whose path ends with `declared`.
fn writable_by_others(dir: &Path, declared: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 && !path.ends_with(declared) {
            found.push(format!("{} {mode:04o}", path.display()));
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        }
    }
    found
}

/// Checks one host's artifact directories, `app` and `site` under `srv`.
fn assert_closed(host: &str, srv: &Path) {
    for artifact in ["app", "site"] {
        let base = srv.join("hello").join(artifact);
        assert_eq!(mode(&base.join(".landfall")), 0o700, "{host}: {artifact}");
        let open = writable_by_others(&base, DECLARED);
        assert!(open.is_empty(), "{host}: {artifact}: {open:#?}");
    }
    let release = srv.join("hello/app/current/");
    assert_eq!(mode(&release.join("etc/hello.toml")), 0o600, "{host}");
    assert_eq!(mode(&release.join("bin/restart")), 0o755, "{host}");
    assert_eq!(mode(&release.join("bin/hello")), 0o755, "{host}");
    let site = srv.join("hello/site/current/");
    assert_eq!(mode(&site.join("public/index.html")), 0o644, "{host}");
    assert_eq!(mode(&site.join("public")), 0o755, "{host}");
    assert_eq!(mode(&site.join(DECLARED)), 0o666, "{host}: declared");
}

#[test]
fn nothing_written_is_open_to_others_whatever_the_umask_unless_declared() {
    let bed = Bed::new();
    let ws = &bed.ws;
    let testbed = sealed_secrets(ws, "testbed");
    let dev = sealed_secrets(ws, "dev");
    // The workspace's own modes are as loose as they come, and one file is
    // declared writable by everyone.
    for (path, loose) in [
        ("examples/hello/site", 0o777),
        ("examples/hello/site/index.html", 0o666),
        ("examples/hello/scripts/restart", 0o777),
    ] {
        fs::set_permissions(ws.path(path), fs::Permissions::from_mode(loose)).unwrap();
    }
    ws.edit(
        "deploy.toml",
        "files = [{ src = \"examples/hello/site\", dst = \"public\" }]",
        &format!(
            "files = [{{ src = \"examples/hello/site\", dst = \"public\" }}, \
             {{ src = \"examples/hello/site/style.css\", dst = \"{DECLARED}\", mode = \"0666\" }}]"
        ),
    );

    let deploy = ws.run_under_umask(
        0o000,
        &["deploy", "testbed", "--message-format", "json"],
        &[("LANDFALL_AGE_IDENTITY", &testbed)],
    );
    deploy.assert_code(0);
    for (host, _) in bed.hosts() {
        assert_closed(&host, &bed.srv(&host, ""));
    }

    let local = ws.run_under_umask(
        0o000,
        &["deploy", "dev", "--local", "--message-format", "json"],
        &[("LANDFALL_AGE_IDENTITY", &dev)],
    );
    local.assert_code(0);
    for host in ["web1", "web2"] {
        assert_closed(host, &ws.host_dir(host, "/srv"));
    }
    // landfall's own directory, where rendered secrets are staged, is
    // private.
    assert_eq!(mode(&ws.path("target/landfall")), 0o700);
}

/// The lines of a host's log of `artifact`, each parsed (which fails the
/// test if one is not a JSON object).
fn log_of(bed: &Bed, host: &str, artifact: &str) -> (String, Vec<serde_json::Value>) {
    let text = fs::read_to_string(bed.srv(host, &format!("hello/{artifact}/.landfall/log")))
        .unwrap_or_default();
    let entries = text
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("{host}: `{line}` is no JSON line: {err}"));
            assert!(entry.is_object(), "{host}: {line}");
            entry
        })
        .collect();
    (text, entries)
}

/// What a deploy leaves on a host that another may not change: each
/// artifact's `current`, releases and log.
fn host_state(bed: &Bed, host: &str) -> Vec<(Option<String>, Vec<String>, String)> {
    ["app", "site"]
        .into_iter()
        .map(|artifact| {
            let base = bed.srv(host, &format!("hello/{artifact}"));
            let mut releases: Vec<String> = fs::read_dir(base.join("releases"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            releases.sort();
            let log = log_of(bed, host, artifact).0;
            (
                bed.current(host, &format!("hello/{artifact}")),
                releases,
                log,
            )
        })
        .collect()
}

#[test]
fn the_log_says_who_deployed_what_and_no_other_artifact_writes_to_it() {
    let bed = Bed::new();
    let ws = &bed.ws;
    let machine = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let machine = machine.trim();
    let as_ann: [(&str, &Path); 1] = [("USER", Path::new("ann"))];
    let commit = ws.git_commit("first");
    let deploy = ws.run_with(&["deploy", "testbed", "--message-format", "json"], &as_ann);
    deploy.assert_code(0);

    for (host, _) in bed.hosts() {
        for artifact in ["app", "site"] {
            let (_, entries) = log_of(&bed, &host, artifact);
            let activated: Vec<_> = entries
                .iter()
                .filter(|e| e["event"] == "activated")
                .collect();
            assert_eq!(activated.len(), 1, "{host}: {entries:?}");
            let entry = activated[0];
            assert_eq!(entry["user"], "ann");
            assert_eq!(entry["from"], machine);
            assert_eq!(entry["revision"], &commit[..12]);
            assert_eq!(entry["env"], "testbed");
            assert_eq!(entry["artifact"], artifact);
            assert_eq!(entry["release"], deploy.release_of(&host, artifact));
            let owner = bed.srv(&host, &format!("hello/{artifact}/.landfall/artifact"));
            assert_eq!(
                fs::read_to_string(owner).unwrap(),
                format!("hello:5c0ea9e7d1a04b6f9f2e8d3b7a61c4f0/{artifact}@testbed\n")
            );
        }
    }
    let status = ws.run(&["status", "testbed", "--message-format", "json"]);
    status.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    let targets = report["hosts"].as_array().unwrap();
    assert_eq!(targets.len(), 6);
    for target in targets {
        let activated = &target["releases"][0]["activated"];
        assert_eq!(activated["user"], "ann", "{target}");
        assert_eq!(activated["from"], machine, "{target}");
        assert_eq!(activated["revision"], &commit[..12], "{target}");
    }

    // A deploy that changes only `site` leaves `app`'s log as it was.
    let before: Vec<_> = bed
        .hosts()
        .iter()
        .map(|(h, _)| host_state(&bed, h))
        .collect();
    ws.edit(
        "examples/hello/site/index.html",
        "The hello site",
        "The new site",
    );
    let second = ws.git_commit("site only");
    ws.run(&["deploy", "testbed"]).assert_code(0);
    for ((host, _), before) in bed.hosts().iter().zip(&before) {
        let after = host_state(&bed, host);
        assert_eq!(after[0], before[0], "{host}: app is untouched");
        let (_, site) = log_of(&bed, host, "site");
        let last = site.last().unwrap();
        assert_eq!(
            (&last["event"], &last["revision"]),
            (&"activated".into(), &second[..12].into())
        );
    }

    // Another project whose artifacts have the same paths deploys nothing
    // and switches nothing back: the directories are `hello`'s.
    let before: Vec<_> = bed
        .hosts()
        .iter()
        .map(|(h, _)| host_state(&bed, h))
        .collect();
    let other = ws.copy();
    other.edit("deploy.toml", "name = \"hello\"", "name = \"intruder\"");
    other.edit(
        "examples/hello/site/index.html",
        "The new site",
        "Taken over",
    );
    for args in [&["deploy", "testbed"][..], &["rollback", "testbed"]] {
        let out = other.run(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("/srv/hello/site holds the releases of hello:5c0ea9e7d1a04b6f9f2e8d3b7a61c4f0/site@testbed, \
                           not of intruder:5c0ea9e7d1a04b6f9f2e8d3b7a61c4f0/site@testbed"),
            "{args:?}: {}",
            out.stderr
        );
        for ((host, _), before) in bed.hosts().iter().zip(&before) {
            assert_eq!(&host_state(&bed, host), before, "{args:?}: {host}");
            for artifact in ["app", "site"] {
                let lock = bed.srv(host, &format!("hello/{artifact}/.landfall/lock"));
                assert!(!lock.exists(), "{args:?}: {host}: {artifact} is unlocked");
            }
        }
    }

    // Another environment of the same project on the same paths (staging
    // pointed at prod's hosts) is refused too, and says how to fix it.
    ws.write(
        "environments/staging.toml",
        &ws.read("environments/testbed.toml"),
    );
    for args in [&["deploy", "staging"][..], &["rollback", "staging"]] {
        let out = ws.run(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(
                "/srv/hello/site holds the releases of hello/site for environment testbed, not \
                 staging: one environment never deploys over another's (give each its own path"
            ),
            "{args:?}: {}",
            out.stderr
        );
        for ((host, _), before) in bed.hosts().iter().zip(&before) {
            assert_eq!(&host_state(&bed, host), before, "{args:?}: {host}");
        }
    }
}

/// Replaces `path` with a link to `target`.
fn plant_link(target: &Path, path: &Path) {
    let _ = fs::remove_file(path);
    std::os::unix::fs::symlink(target, path).unwrap();
}

#[test]
fn on_real_hosts_planted_links_are_never_followed_and_foreign_directories_and_locks_are_refused() {
    const APP: &str = "hello/app";
    let bed = Bed::new();
    bed.deploy(&[]).assert_code(0);
    let set_greeting = |from: &str, to: &str| {
        bed.ws.edit(
            "deploy.toml",
            &format!("greeting = \"{from}\""),
            &format!("greeting = \"{to}\""),
        );
    };

    // host1: the log and the steps' note are links to files elsewhere on
    // the host. The deploy goes on, writes through neither, and says so.
    let landfall = bed.srv("host1", APP).join(".landfall");
    let bystanders = [
        bed.srv("host1", "log-elsewhere"),
        bed.srv("host1", "steps-elsewhere"),
    ];
    for (bystander, name) in bystanders.iter().zip(["log", "steps"]) {
        fs::write(bystander, "untouched\n").unwrap();
        plant_link(bystander, &landfall.join(name));
    }
    set_greeting("hello", "howdy");
    let out = bed.deploy(&[]);
    out.assert_code(0);
    for bystander in &bystanders {
        assert_eq!(fs::read_to_string(bystander).unwrap(), "untouched\n");
    }
    assert!(
        out.events_of("warning").iter().any(|w| {
            let message = w["message"].as_str().unwrap();
            message.contains("host1") && message.contains("could not be appended to")
        }),
        "{}",
        out.stdout
    );
    fs::remove_file(landfall.join("log")).unwrap();

    // host2: its `.landfall` belongs to another user. Nothing changes on
    // any host, and the message says why.
    let before: Vec<Option<String>> = bed
        .hosts()
        .iter()
        .map(|(h, _)| bed.current(h, APP))
        .collect();
    let foreign = bed.srv("host2", APP).join(".landfall");
    std::os::unix::fs::chown(&foreign, Some(65534), None).unwrap();
    set_greeting("howdy", "hey");
    let out = bed.deploy(&[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let failed = out.events_of("failed");
    assert!(
        failed.iter().any(|f| f["host"] == "host2"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("belongs to user id 65534")),
        "{}",
        out.stdout
    );
    let after: Vec<Option<String>> = bed
        .hosts()
        .iter()
        .map(|(h, _)| bed.current(h, APP))
        .collect();
    assert_eq!(before, after, "no host changed");
    std::os::unix::fs::chown(&foreign, Some(0), None).unwrap();

    // host3: a lock of a deploy of this machine's name and boot, but of
    // another PID namespace (a container): it cannot be judged from here,
    // and is never taken over.
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let machine = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let lock = serde_json::json!({
        "user": "ci", "from": machine.trim(), "pid": 999_999, "since": "2026-01-01T00:00:00Z",
        "env": "testbed", "token": "t",
        "process": { "boot": boot.trim(), "pid_ns": "pid:[1]", "started": 1 },
    });
    let lock_file = bed.srv("host3", APP).join(".landfall/lock");
    fs::write(&lock_file, format!("{lock}\n")).unwrap();
    let out = bed.deploy(&[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.events_of("failed").iter().any(|f| f["host"] == "host3"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("is locked by another deploy: ci@")),
        "{}",
        out.stdout
    );
    assert!(lock_file.exists(), "the container's lock stays");
    fs::remove_file(&lock_file).unwrap();
    bed.deploy(&[]).assert_code(0);
}
