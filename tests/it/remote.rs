//! `cargo deploy ENV` over ssh, end to end, on a test bed of three real
//! sshd hosts (each on its own loopback address, each with its own `/srv`):
//! the example service is built, pushed with rsync, started by its activate
//! hook and checked over HTTP on every host.

use std::fs;
use std::os::unix::fs::MetadataExt;

use landfall_testbed::Scoped;

use crate::support::{
    Bed, Outcome, Workspace, alive, free_port, http_get_at, kill_group, wait_for,
};

const APP: &str = "hello/app";
const SITE: &str = "hello/site";

fn statuses_are(out: &Outcome, status: &str) -> bool {
    out.statuses().iter().all(|(_, s)| s == status)
}

#[test]
fn first_deploy_serves_every_host_and_status_shows_who_and_what() {
    let bed = Bed::new();
    let commit = bed.ws.git_commit("first");
    let out = bed.deploy(&[]);
    out.assert_code(0);
    assert_eq!(out.statuses().len(), 6);
    assert!(statuses_are(&out, "deployed"), "{:?}", out.statuses());
    for (host, address) in bed.hosts() {
        crate::support::serves_hello(&host, &address, bed.port);
        assert_eq!(bed.current(&host, APP), Some(out.release_of(&host, "app")));
        let mode = fs::metadata(bed.srv(&host, APP).join(".landfall"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    // Each host has a /srv of its own.
    bed.ws
        .run(&[
            "exec",
            "testbed",
            "--only",
            "host1",
            "--",
            "touch",
            "/srv/only-here",
        ])
        .assert_code(0);
    assert!(bed.srv("host1", "only-here").exists());
    assert!(!bed.srv("host2", "only-here").exists());

    let status = bed
        .ws
        .run(&["status", "testbed", "--message-format", "json"]);
    status.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    for target in report["hosts"].as_array().unwrap() {
        let release = &target["releases"][0];
        assert_eq!(release["current"], true);
        let activated = &release["activated"];
        assert_eq!(activated["revision"], &commit[..12], "{target}");
        assert!(!activated["user"].as_str().unwrap().is_empty());
        assert!(activated["time"].as_str().unwrap().starts_with("20"));
    }
}

#[test]
fn redeploy_of_an_unchanged_workspace_costs_one_round_trip_per_host() {
    let bed = Bed::new();
    bed.deploy(&[]).assert_code(0);
    let pids: Vec<String> = bed.hosts().iter().map(|(h, _)| bed.pid(h)).collect();
    let sessions = bed.sessions_on_every_host();

    let again = bed.deploy(&[]);
    again.assert_code(0);
    assert!(statuses_are(&again, "unchanged"), "{:?}", again.statuses());
    let summary = again.summary();
    for (i, (host, _)) in bed.hosts().iter().enumerate() {
        // landfall's own count, and sshd's: one session per host.
        assert_eq!(summary["round_trips"][host.as_str()], 1, "{summary}");
        assert_eq!(
            bed.sessions(host),
            sessions[i] + 1,
            "sshd of {host} saw one session"
        );
        assert_eq!(bed.pid(host), pids[i], "no hook ran on {host}");
    }
    let events = again.events();
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "pushed" || e["event"] == "activated")
    );
}

#[test]
fn a_small_change_sends_about_that_change_and_links_the_rest() {
    let bed = Bed::new();
    let first = bed.deploy(&[]);
    first.assert_code(0);
    bed.greet_howdy();
    let sessions = bed.sessions_on_every_host();
    let second = bed.deploy(&[]);
    second.assert_code(0);
    let binary = fs::metadata(bed.ws.path("prebuilt/hello")).unwrap().len();
    for event in second.events_of("pushed") {
        assert_eq!(event["artifact"], "app", "only app changed: {event}");
        assert_eq!(
            event["files"], 1,
            "rsync transferred only the config: {event}"
        );
        // rsync's own count of bytes sent: the small config and rsync's
        // file list, not the binary.
        let sent = event["bytes"].as_u64().unwrap();
        assert!(
            sent < 4096,
            "{sent} bytes sent for a {binary}-byte binary and a small config"
        );
    }
    assert!(
        second
            .statuses()
            .contains(&("host1/site".into(), "unchanged".into()))
    );
    let summary = second.summary();
    for (host, _) in bed.hosts() {
        // The look-ahead (read while cargo builds), the probe (which takes
        // the lock), the copy, the activation (which renames the upload)
        // and the cleanup.
        assert_eq!(summary["round_trips"][host.as_str()], 5, "{summary}");
    }
    for (i, (host, _)) in bed.hosts().iter().enumerate() {
        // sshd's count: rsync's session, and one that ran every step.
        assert_eq!(bed.sessions(host), sessions[i] + 2, "sessions on {host}");
    }
    for (host, address) in bed.hosts() {
        let releases = bed.srv(&host, APP).join("releases");
        let inode = |id: &str| {
            fs::metadata(releases.join(id).join("bin/hello"))
                .unwrap()
                .ino()
        };
        assert_eq!(
            inode(&first.release_of(&host, "app")),
            inode(&second.release_of(&host, "app")),
            "a hard link"
        );
        assert_eq!(
            http_get_at(&address, bed.port, "/"),
            Some((200, format!("howdy from {host}\n")))
        );
    }
}

/// A deploy reads its hosts while cargo describes the workspace, from the
/// workspace the last deploy remembered. When cargo describes another (here
/// another target directory), what was read is thrown away, and the deploy
/// reads the hosts again and goes on from cargo's answer.
#[test]
fn hosts_read_for_a_workspace_remembered_wrong_are_read_again() {
    let bed = Bed::new();
    bed.deploy(&[]).assert_code(0);
    let remembered = bed.ws.path("target/landfall/workspace.json");
    let described = fs::read_to_string(&remembered).unwrap();
    let mut guess: serde_json::Value = serde_json::from_str(&described).unwrap();
    let elsewhere = bed.ws.path("elsewhere");
    guess["target_dir"] = serde_json::json!(elsewhere);
    fs::write(&remembered, guess.to_string()).unwrap();
    bed.greet_howdy();
    let sessions = bed.sessions_on_every_host();

    let second = bed.deploy(&[]);
    second.assert_code(0);
    let summary = second.summary();
    for (i, (host, address)) in bed.hosts().iter().enumerate() {
        // The deploy's own round trips are a change's, as ever.
        assert_eq!(summary["round_trips"][host.as_str()], 5, "{summary}");
        // sshd's count: the session read in vain, rsync's, and one that
        // ran every step.
        assert_eq!(bed.sessions(host), sessions[i] + 3, "sessions on {host}");
        assert_eq!(
            http_get_at(address, bed.port, "/"),
            Some((200, format!("howdy from {host}\n")))
        );
    }
    assert!(
        !elsewhere.exists(),
        "nothing is written where the guess said"
    );
    assert_eq!(fs::read_to_string(&remembered).unwrap(), described);
}

/// A push starts from a copy of the host's current release and sends what
/// differs from it, unless that release changed on the host since it was
/// made: then it is compared file by file, and the change is not carried
/// into the new release.
#[test]
fn a_push_builds_on_the_current_release_only_as_it_was_made() {
    let bed = Bed::new();
    let first = bed.deploy(&[]);
    first.assert_code(0);
    let page = bed.ws.path("examples/hello/site/index.html");
    let original = fs::read_to_string(&page).unwrap();
    // On host1, a page of the live site edited by hand.
    let live = bed
        .srv("host1", "hello/site/releases")
        .join(first.release_of("host1", "site"))
        .join("public/index.html");
    fs::remove_file(&live).unwrap();
    fs::write(&live, "edited on the host\n").unwrap();
    // The site loses a file and gains one.
    fs::remove_file(bed.ws.path("examples/hello/site/style.css")).unwrap();
    fs::write(bed.ws.path("examples/hello/site/new.html"), "new\n").unwrap();

    let second = bed.deploy(&[]);
    second.assert_code(0);
    for event in second.events_of("pushed") {
        assert_eq!(event["artifact"], "site", "only the site changed: {event}");
        // host1's release is compared file by file: the edited page is
        // sent again. Elsewhere only the new page is.
        let files = if event["host"] == "host1" { 2 } else { 1 };
        assert_eq!(event["files"], files, "{event}");
    }
    for (host, _) in bed.hosts() {
        let release = bed
            .srv(&host, "hello/site/releases")
            .join(second.release_of(&host, "site"));
        let read = |file: &str| fs::read_to_string(release.join(file)).unwrap();
        assert_eq!(read("public/index.html"), original, "{host}");
        assert_eq!(read("public/new.html"), "new\n", "{host}");
        let manifest = read(".landfall-manifest");
        assert!(
            manifest.contains("\tpublic/new.html\n"),
            "{host}: {manifest}"
        );
        assert!(!manifest.contains("style.css"), "{host}: {manifest}");
        let mut names: Vec<String> = fs::read_dir(&release)
            .unwrap()
            .chain(fs::read_dir(release.join("public")).unwrap())
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".landfall-activation",
                ".landfall-manifest",
                ".landfall-release",
                "index.html",
                "new.html",
                "public"
            ],
            "{host}"
        );
    }
    // The release each was made from is as it was.
    assert!(
        bed.srv("host2", "hello/site/releases")
            .join(first.release_of("host2", "site"))
            .join("public/style.css")
            .exists()
    );
}

#[test]
fn health_failing_on_one_host_rolls_back_every_host_switched() {
    let bed = Bed::new();
    bed.activate_one_host_at_a_time();
    let first = bed.deploy(&[]);
    first.assert_code(0);
    // A new greeting everywhere, and a config that makes host2 unhealthy.
    bed.greet_howdy();
    bed.ws.make_unhealthy("host2");

    let out = bed.deploy(&[]);
    out.assert_code(1);
    let statuses = out.statuses();
    assert!(
        statuses.contains(&("host1/app".into(), "rolled_back".into())),
        "{statuses:?}\n{}",
        out.stdout
    );
    assert!(
        statuses.contains(&("host2/app".into(), "rolled_back".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("host3/app".into(), "skipped".into())),
        "{statuses:?}"
    );
    for (host, address) in bed.hosts() {
        assert_eq!(
            bed.current(&host, APP),
            Some(first.release_of(&host, "app")),
            "{host} is on the previous release"
        );
        assert_eq!(
            http_get_at(&address, bed.port, "/"),
            Some((200, format!("hello from {host}\n")))
        );
    }
}

#[test]
fn a_host_that_is_down_stops_the_deploy_before_any_activation() {
    let bed = Bed::new();
    let first = bed.deploy(&[]);
    first.assert_code(0);
    bed.ws.edit("examples/hello/site/style.css", "40em", "44em");
    bed.testbed.stop("host2").unwrap();

    let out = bed.deploy(&[]);
    out.assert_code(1);
    let failed = out.events_of("failed");
    assert!(!failed.is_empty());
    assert!(failed.iter().all(|e| e["host"] == "host2"), "{failed:?}");
    assert!(
        failed[0]["message"].as_str().unwrap().contains("host2"),
        "{failed:?}"
    );
    for (host, _) in bed.hosts() {
        if host != "host2" {
            assert_eq!(
                bed.current(&host, SITE),
                Some(first.release_of(&host, "site")),
                "{host} was not activated"
            );
        }
    }

    bed.testbed.start("host2").unwrap();
    let converged = bed.deploy(&[]);
    converged.assert_code(0);
    let statuses = converged.statuses();
    assert!(
        statuses
            .iter()
            .filter(|(t, _)| t.ends_with("/site"))
            .all(|(_, s)| s == "deployed"),
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .filter(|(t, _)| t.ends_with("/app"))
            .all(|(_, s)| s == "unchanged"),
        "{statuses:?}"
    );
}

#[test]
fn exec_runs_on_a_role_in_parallel_and_reports_failures() {
    let bed = Bed::new();
    let out = bed.ws.run(&[
        "exec",
        "testbed",
        "--only",
        "@web",
        "--",
        "sh",
        "-c",
        "echo on $LANDFALL_HOST; ls /srv",
    ]);
    out.assert_code(0);
    for (host, _) in bed.hosts() {
        assert!(
            out.stdout.contains(&format!("{host} | on {host}")),
            "{}",
            out.stdout
        );
    }
    let failing = bed.ws.run(&[
        "exec",
        "testbed",
        "--",
        "sh",
        "-c",
        "test $LANDFALL_HOST != host3",
    ]);
    failing.assert_code(1);
    assert!(
        failing.stderr.contains("host3 | exit status 1"),
        "{}",
        failing.stderr
    );
    assert!(!failing.stderr.contains("host1 |"), "{}", failing.stderr);
}

/// Every host's `current` of an artifact is a complete release: a
/// directory under `releases/` that is not an upload in progress.
fn assert_complete(bed: &Bed, path: &str) {
    for (host, _) in bed.hosts() {
        if let Some(current) = bed.current(&host, path) {
            assert!(
                !current.ends_with(".partial"),
                "{host}: current is {current}"
            );
            let dir = bed.srv(&host, path).join("releases").join(&current);
            assert!(
                dir.join("bin/hello").is_file() || dir.join("public/index.html").is_file(),
                "{host}: {current} is incomplete"
            );
        }
    }
}

fn lock_of(bed: &Bed, host: &str, path: &str) -> std::path::PathBuf {
    bed.srv(host, path).join(".landfall/lock")
}

#[test]
fn a_second_deploy_is_refused_while_the_first_holds_the_lock() {
    let bed = Bed::new();
    bed.deploy(&[]).assert_code(0);
    // A slow pre_activate keeps the first deploy inside its lock.
    bed.ws.edit(
        "deploy.toml",
        "pre_activate = \"",
        "pre_activate = \"sleep 3 && ",
    );
    bed.greet_howdy();
    let mut first = bed
        .ws
        .spawn(&["deploy", "testbed", "--message-format", "json"]);
    wait_for(60, "the first deploy to lock host1", || {
        lock_of(&bed, "host1", APP).exists()
    });

    let second = bed.deploy(&[]);
    second.assert_code(1);
    let refused = second
        .events()
        .into_iter()
        .find(|e| e["event"] == "failed")
        .unwrap();
    assert_eq!(refused["phase"], "lock");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("is locked by another deploy"), "{message}");
    assert!(
        message.contains(&format!("(pid {}, environment `testbed`)", first.id())),
        "{message}"
    );

    let status = first.wait().unwrap();
    assert!(status.success(), "the first deploy finishes undisturbed");
    for (host, address) in bed.hosts() {
        assert!(!lock_of(&bed, &host, APP).exists());
        assert_eq!(
            http_get_at(&address, bed.port, "/"),
            Some((200, format!("howdy from {host}\n")))
        );
    }
}

#[test]
fn a_deploy_killed_during_the_push_leaves_complete_releases_and_the_next_run_converges() {
    let bed = Bed::new();
    let first = bed.deploy(&[]);
    first.assert_code(0);
    // A large new file makes the push long enough to be interrupted.
    let big: Vec<u8> = (0..48u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    fs::write(bed.ws.path("examples/hello/site/big.bin"), big).unwrap();
    let mut deploy = bed.ws.spawn(&["deploy", "testbed", "--jobs", "1"]);
    let partial = |host: &str| {
        fs::read_dir(bed.srv(host, SITE).join("releases")).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        })
    };
    wait_for(120, "an upload in progress", || {
        bed.hosts().iter().any(|(h, _)| partial(h))
    });
    kill_group(&mut deploy);

    assert_complete(&bed, SITE);
    for (host, _) in bed.hosts() {
        assert_eq!(
            bed.current(&host, SITE),
            Some(first.release_of(&host, "site")),
            "{host} was not activated"
        );
    }
    let next = bed.deploy(&[]);
    next.assert_code(0);
    assert!(
        next.events().iter().any(|e| e["event"] == "warning"),
        "the dead deploy's lock is reported:\n{}",
        next.stdout
    );
    for (host, address) in bed.hosts() {
        let current = bed.current(&host, SITE).unwrap();
        assert_eq!(current, next.release_of(&host, "site"));
        let deployed = fs::read(
            bed.srv(&host, SITE)
                .join("releases")
                .join(&current)
                .join("public/big.bin"),
        )
        .unwrap();
        assert!(
            deployed == fs::read(bed.ws.path("examples/hello/site/big.bin")).unwrap(),
            "{host} has all of big.bin"
        );
        assert_eq!(
            http_get_at(&address, bed.port, "/health"),
            Some((200, "ok\n".into()))
        );
    }
}

#[test]
fn a_deploy_killed_during_activation_leaves_complete_releases_and_the_next_run_converges() {
    let bed = Bed::new();
    bed.deploy(&[]).assert_code(0);
    bed.ws.edit(
        "deploy.toml",
        "activate = \"bin/restart\"",
        "activate = \"bin/restart && sleep 2\"",
    );
    bed.greet_howdy();
    let mut deploy = bed.ws.spawn(&["deploy", "testbed"]);
    // Killed once some host has switched and runs its activate hook.
    let switched = |host: &str| {
        fs::read_to_string(bed.srv(host, APP).join("shared/run/hello.pid")).is_ok()
            && lock_of(&bed, host, APP).exists()
            && fs::read_to_string(
                bed.srv(host, APP)
                    .join("releases")
                    .join(bed.current(host, APP).unwrap_or_default())
                    .join("etc/hello.toml"),
            )
            .is_ok_and(|c| c.contains("howdy"))
    };
    wait_for(120, "a host in its activate hook", || {
        bed.hosts().iter().any(|(h, _)| switched(h))
    });
    kill_group(&mut deploy);

    assert_complete(&bed, APP);
    let next = bed.deploy(&[]);
    next.assert_code(0);
    for (host, address) in bed.hosts() {
        assert!(!lock_of(&bed, &host, APP).exists());
        assert_eq!(
            http_get_at(&address, bed.port, "/"),
            Some((200, format!("howdy from {host}\n")))
        );
    }
    // A host switched by the killed run was activated again, not skipped.
    assert!(
        next.statuses()
            .iter()
            .filter(|(t, _)| t.ends_with("/app"))
            .all(|(_, s)| s == "deployed"),
        "{:?}",
        next.statuses()
    );
}

#[test]
fn an_unknown_host_key_is_refused_unless_accept_new_and_a_changed_one_always() {
    let bed = Bed::new();
    let known = bed.testbed.dir.join("known_hosts");
    // host3's key is no longer known: ssh must refuse, not ask or accept.
    let text = fs::read_to_string(&known).unwrap();
    let host3 = format!("[{}]", bed.testbed.hosts[2].address);
    let kept: Vec<&str> = text.lines().filter(|l| !l.contains(&host3)).collect();
    fs::write(&known, kept.join("\n") + "\n").unwrap();
    let out = bed.deploy(&[]);
    out.assert_code(1);
    let failed = out.events_of("failed");
    assert!(failed.iter().all(|e| e["host"] == "host3"), "{failed:?}");
    let message = failed[0]["message"].as_str().unwrap();
    assert!(message.starts_with("cannot reach `host3` ("), "{message}");
    assert!(
        message.contains("Host key verification failed"),
        "{message}"
    );
    assert!(message.contains("hint:"), "{message}");
    for (host, _) in bed.hosts() {
        assert_eq!(bed.current(&host, APP), None, "{host} was not activated");
    }

    // The environment may opt in to recording the key of a new host.
    bed.ws.edit(
        "environments/testbed.toml",
        "jobs = 8",
        "jobs = 8\nhost_keys = \"accept-new\"",
    );
    bed.deploy(&[]).assert_code(0);
    let recorded = fs::read_to_string(&known).unwrap();
    assert_eq!(recorded.lines().count(), 3, "host3's key was recorded");

    // A key that changed is refused all the same.
    bed.testbed.stop("host3").unwrap();
    let key = bed.testbed.dir.join("hosts/host3/ssh_host_ed25519_key");
    fs::remove_file(&key).unwrap();
    fs::remove_file(key.with_extension("pub")).unwrap();
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    bed.testbed.start("host3").unwrap();
    bed.greet_howdy();
    let out = bed.deploy(&[]);
    out.assert_code(1);
    let failed = out.events_of("failed");
    assert!(failed.iter().all(|e| e["host"] == "host3"), "{failed:?}");
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .contains("Host key verification failed"),
        "{failed:?}"
    );
    assert_eq!(
        fs::read_to_string(&known).unwrap(),
        recorded,
        "known_hosts kept"
    );
    let statuses = out.statuses();
    assert!(
        !statuses.iter().any(|(_, s)| s == "deployed"),
        "nothing was deployed: {statuses:?}"
    );
}

/// A deploy of `bed` whose connections are kept in `runtime`, with `extra`
/// arguments.
fn deploy_keeping(bed: &Bed, runtime: &std::path::Path, extra: &[&str]) -> Outcome {
    let mut args = vec!["deploy", "testbed", "--message-format", "json"];
    args.extend_from_slice(extra);
    let mut command = bed.ws.command(&args);
    command.env("XDG_RUNTIME_DIR", runtime);
    Outcome::from(command.output().unwrap())
}

/// Deploys `bed` keeping its connections in `runtime`, takes the last
/// host's key out of the test bed's `known_hosts`, deploys again, and
/// expects that host, and only it, to fail its host key check: its kept
/// connection was opened on a trust that is gone.
fn a_kept_connection_is_checked_again_once_a_key_is_gone(bed: &Bed, runtime: &std::path::Path) {
    deploy_keeping(bed, runtime, &[]).assert_code(0);
    let kept = fs::read_dir(runtime.join("landfall-ssh")).unwrap().count();
    assert_eq!(kept, 3, "every host's connection is kept");
    let (host, address) = bed.hosts().pop().unwrap();
    let known = bed.testbed.dir.join("known_hosts");
    let text = fs::read_to_string(&known).unwrap();
    let left: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(&format!("[{address}]:")))
        .collect();
    assert_eq!(left.len(), 2);
    fs::write(&known, left.join("\n") + "\n").unwrap();
    let out = deploy_keeping(bed, runtime, &["--var", "greeting=howdy"]);
    out.assert_code(1);
    let failed = out.events_of("failed");
    assert!(!failed.is_empty(), "{}", out.stdout);
    for event in &failed {
        assert_eq!(event["host"], host.as_str(), "{failed:?}");
        let message = event["message"].as_str().unwrap();
        assert!(
            message.contains("Host key verification failed"),
            "{message}"
        );
    }
}

#[test]
fn a_kept_connection_is_not_used_once_its_hosts_key_is_no_longer_known() {
    let bed = Bed::new();
    let runtime = tempfile::tempdir().unwrap();
    a_kept_connection_is_checked_again_once_a_key_is_gone(&bed, runtime.path());
}

/// A kept master's name followed the ssh configuration's own files, not
/// those it includes: after a host's key left a known hosts file named only
/// in an included file, the next run rode the old master. Now the name
/// covers what ssh makes of the whole configuration for the host.
#[test]
fn a_kept_connection_is_not_used_once_a_key_leaves_a_file_named_in_an_included_configuration() {
    let bed = Bed::new();
    let runtime = tempfile::tempdir().unwrap();
    // The environment's configuration only includes the test bed's, which
    // names the known hosts file.
    bed.ws.write(
        "environments/ssh_config",
        &format!("Include \"{}\"\n", bed.testbed.ssh_config().display()),
    );
    let env = bed.ws.read("environments/testbed.toml");
    let first = env.lines().find(|l| l.starts_with("ssh_config")).unwrap();
    bed.ws.edit(
        "environments/testbed.toml",
        first,
        "ssh_config = \"ssh_config\"",
    );
    a_kept_connection_is_checked_again_once_a_key_is_gone(&bed, runtime.path());
}

#[test]
fn dry_run_reads_the_hosts_and_writes_nothing() {
    let bed = Bed::new();
    bed.deploy(&[]).assert_code(0);
    bed.ws.edit("examples/hello/site/style.css", "40em", "46em");
    let before: Vec<_> = bed
        .hosts()
        .iter()
        .map(|(h, _)| listing(&bed.testbed.srv(h)))
        .collect();
    let out = bed.deploy(&["--dry-run"]);
    out.assert_code(0);
    let would = out.events_of("would_deploy");
    assert_eq!(would.len(), 3, "only site changes: {would:?}");
    for event in &would {
        assert_eq!(event["artifact"], "site");
        assert_eq!(event["changed"], serde_json::json!(["public/style.css"]));
        assert_eq!(event["added"], serde_json::json!([]));
    }
    let after: Vec<_> = bed
        .hosts()
        .iter()
        .map(|(h, _)| listing(&bed.testbed.srv(h)))
        .collect();
    assert_eq!(before, after, "a dry run changes nothing on any host");
}

/// Every path under a directory with its size and mtime.
fn listing(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64, i64)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = entry.path().symlink_metadata().unwrap();
        out.push((entry.path(), meta.len(), meta.mtime()));
        if meta.is_dir() {
            out.extend(listing(&entry.path()));
        }
    }
    out.sort();
    out
}

#[test]
fn rollback_switches_every_host_back_and_restarts_the_service() {
    let bed = Bed::new();
    let first = bed.deploy(&[]);
    first.assert_code(0);
    bed.greet_howdy();
    bed.deploy(&[]).assert_code(0);
    let back = bed
        .ws
        .run(&["rollback", "testbed", "--message-format", "json"]);
    back.assert_code(0);
    for (host, address) in bed.hosts() {
        assert_eq!(
            bed.current(&host, APP),
            Some(first.release_of(&host, "app"))
        );
        assert_eq!(
            http_get_at(&address, bed.port, "/"),
            Some((200, format!("hello from {host}\n")))
        );
    }
}

#[test]
fn an_ipv6_literal_address_reaches_its_host_through_ssh_and_rsync() {
    let testbed =
        Scoped::up(1).expect("the test bed starts (this needs root, sshd and util-linux)");
    let ws = Workspace::hello();
    let port = free_port();
    // `::1` stands for the test bed's host in the ssh configuration, so
    // that the address landfall hands to ssh and rsync is the literal.
    let config = fs::read_to_string(testbed.ssh_config())
        .unwrap()
        .replace("Host host1\n", "Host ::1\n");
    ws.write("environments/v6_ssh_config", &config);
    let address = &testbed.hosts[0].address;
    ws.write(
        "environments/v6.toml",
        &format!(
            "[environment]\nssh_config = \"v6_ssh_config\"\n\n[hosts.host1]\naddress = \"::1\"\n\
             roles = [\"web\"]\nvars = {{ bind = \"{address}\", port = {port} }}\n"
        ),
    );
    let out = ws.run(&["deploy", "v6", "--message-format", "json"]);
    out.assert_code(0);
    let release = out.release_of("host1", "app");
    let current = fs::read_link(testbed.srv("host1").join(APP).join("current")).unwrap();
    assert_eq!(current, std::path::Path::new("releases").join(&release));
    assert_eq!(
        http_get_at(address, port, "/"),
        Some((200, "hello from host1\n".into()))
    );
}

#[test]
fn a_long_temporary_directory_with_a_quote_in_it_does_not_stop_a_deploy() {
    let testbed =
        Scoped::up(1).expect("the test bed starts (this needs root, sshd and util-linux)");
    let ws = Workspace::hello();
    let port = free_port();
    ws.use_testbed(&testbed, port);
    let tmp = ws.path(&format!(
        "it's a temporary directory {}",
        "with a long name ".repeat(6)
    ));
    fs::create_dir_all(&tmp).unwrap();
    let out = ws.run_with(
        &["deploy", "testbed", "--message-format", "json"],
        &[("TMPDIR", &tmp)],
    );
    out.assert_code(0);
    let address = &testbed.hosts[0].address;
    assert_eq!(
        http_get_at(address, port, "/"),
        Some((200, "hello from host1\n".into()))
    );
    // Its master connection was used: one session per round trip.
    let again = ws.run_with(
        &["deploy", "testbed", "--message-format", "json"],
        &[("TMPDIR", &tmp)],
    );
    again.assert_code(0);
    assert_eq!(
        again.summary()["round_trips"]["host1"],
        1,
        "{}",
        again.stdout
    );
}

/// With a master per host kept from an earlier run, a deploy that finds
/// nothing to do, and one that changes a file, start no ssh client for
/// their step scripts: landfall opens each session on the master itself.
/// Only rsync's ssh is started, once per host that is pushed to.
#[test]
fn sessions_on_a_kept_master_start_no_ssh_client() {
    let bed = Bed::new();
    let runtime = tempfile::tempdir().unwrap();
    // An `ssh` first in PATH that notes each start, then runs ssh.
    let bin = tempfile::tempdir().unwrap();
    let started = bin.path().join("started");
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v ssh"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let wrapper = bin.path().join("ssh");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >>'{}'\nexec {} \"$@\"\n",
            started.display(),
            real.trim()
        ),
    )
    .unwrap();
    fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let deploy = |extra: &[&str]| {
        let mut args = vec!["deploy", "testbed", "--message-format", "json"];
        args.extend_from_slice(extra);
        let mut command = bed.ws.command(&args);
        command
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("PATH", &path);
        let out = Outcome::from(command.output().unwrap());
        out.assert_code(0);
        out
    };
    // What ssh was started for, but `ssh -G`, which connects to nothing:
    // it says what ssh makes of its configuration for a host, once per
    // host and run (see `effective_key`).
    let starts = || -> Vec<String> {
        let said = fs::read_to_string(&started).unwrap_or_default();
        let _ = fs::remove_file(&started);
        said.lines()
            .filter(|s| !s.starts_with("-G "))
            .map(str::to_string)
            .collect()
    };
    // The first run opens the masters (with ssh, `-f -N`).
    deploy(&[]);
    let first = starts();
    assert!(
        first.iter().any(|s| s.contains("ControlMaster=auto")),
        "{first:?}"
    );
    // Nothing to do: no ssh connection at all.
    let out = deploy(&[]);
    assert!(statuses_are(&out, "unchanged"), "{:?}", out.statuses());
    assert_eq!(starts(), Vec::<String>::new());
    // A change: rsync's ssh for each host pushed to, and nothing else.
    bed.ws
        .write("examples/hello/site/index.html", "<h1>changed</h1>\n");
    let out = deploy(&[]);
    let statuses = out.statuses();
    for (target, status) in &statuses {
        let expected = if target.ends_with("/site") {
            "deployed"
        } else {
            "unchanged"
        };
        assert_eq!(status, expected, "{statuses:?}");
    }
    let pushes = starts();
    assert_eq!(pushes.len(), 3, "{pushes:?}");
    assert!(
        pushes.iter().all(|s| s.contains("rsync --server")),
        "{pushes:?}"
    );
    for (host, _) in bed.hosts() {
        assert_eq!(
            fs::read_to_string(bed.srv(&host, SITE).join("current/public/index.html")).unwrap(),
            "<h1>changed</h1>\n"
        );
    }
}

/// Authentications sshd accepted on a host, from its own log.
fn logins(bed: &Bed, host: &str) -> usize {
    fs::read_to_string(bed.testbed.sshd_log(host))
        .unwrap_or_default()
        .matches("Accepted publickey")
        .count()
}

/// The pid of the master at `socket`, as `ssh -O check` says it.
fn master_pid(socket: &std::path::Path) -> u32 {
    let out = std::process::Command::new("ssh")
        .arg("-o")
        .arg(format!("ControlPath={}", socket.display()))
        .args(["-O", "check", "x"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    said.split_once("(pid=")
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(pid, _)| pid.parse().ok())
        .unwrap_or_else(|| panic!("no master at {}: {said}", socket.display()))
}

/// `status`, with its connections kept in `runtime`: it must succeed,
/// within a minute.
fn status_keeping_in(bed: &Bed, runtime: &std::path::Path) -> Outcome {
    let child = bed.ws.spawn_with(
        &["status", "testbed", "--message-format", "json"],
        &[("XDG_RUNTIME_DIR", runtime)],
    );
    let out = crate::support::finish_within(child, 60, "status testbed");
    out.assert_code(0);
    out
}

/// Processes stopped by a test (SIGSTOP), killed when it ends, however it
/// ends.
struct Stopped(Vec<u32>);

impl Stopped {
    fn stop(pids: Vec<u32>) -> Stopped {
        let stopped = Stopped(pids);
        for pid in &stopped.0 {
            let sent = std::process::Command::new("kill")
                .args(["-STOP", &pid.to_string()])
                .status()
                .unwrap();
            assert!(sent.success());
        }
        stopped
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[test]
fn a_kept_connection_that_does_not_answer_is_put_aside_not_waited_for() {
    let bed = Bed::new();
    let runtime = tempfile::tempdir().unwrap();
    let status = || status_keeping_in(&bed, runtime.path());
    status();
    let first = logins(&bed, "host1");
    // Every kept master is stopped: it still takes connections on its
    // socket, and never answers on them.
    let kept = runtime.path().join("landfall-ssh");
    let sockets: Vec<_> = fs::read_dir(&kept)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(sockets.len(), 3, "every host's connection is kept");
    let stopped = Stopped::stop(sockets.iter().map(|s| master_pid(s)).collect());
    // The next run does not wait for them: it opens masters of its own in
    // their place, which the run after it finds.
    let out = status();
    assert_eq!(out.events_of("failed"), Vec::<serde_json::Value>::new());
    assert_eq!(logins(&bed, "host1"), first + 1);
    for socket in &sockets {
        assert!(!stopped.0.contains(&master_pid(socket)));
    }
    status();
    assert_eq!(logins(&bed, "host1"), first + 1);
}

#[test]
fn a_kept_connection_whose_host_no_longer_answers_on_it_is_replaced() {
    let bed = Bed::new();
    let runtime = tempfile::tempdir().unwrap();
    let status = || status_keeping_in(&bed, runtime.path());
    status();
    let first = logins(&bed, "host1");
    // host1's end of its kept connection freezes, as a host that went away
    // while the master idled looks to the master: it still answers on its
    // socket, and nothing comes back over its connection. host1's sshd
    // still takes new connections.
    let connection: Vec<u32> = bed
        .testbed
        .processes("host1")
        .into_iter()
        .filter(|pid| {
            // sshd names its processes: `sshd: root [priv]` and
            // `sshd: root@notty` serve a connection, and the one that
            // listens says `[listener]`.
            fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with("sshd: ") && !c.contains("[listener]"))
        })
        .collect();
    assert!(!connection.is_empty(), "host1 serves its kept connection");
    let stopped = Stopped::stop(connection);
    let masters = || -> std::collections::BTreeSet<u32> {
        fs::read_dir(runtime.path().join("landfall-ssh"))
            .unwrap()
            .map(|e| master_pid(&e.unwrap().path()))
            .collect()
    };
    let before = masters();
    // The next run puts it aside (it is told to take no more sessions,
    // which takes its socket away) and opens a master in its place, which
    // the run after it finds.
    let out = status();
    assert_eq!(out.events_of("failed"), Vec::<serde_json::Value>::new());
    assert_eq!(logins(&bed, "host1"), first + 1);
    let after = masters();
    assert_eq!(after.len(), 3);
    let put_aside: Vec<u32> = before.difference(&after).copied().collect();
    assert_eq!(put_aside.len(), 1, "{before:?} {after:?}");
    // host1's frozen end goes: the master put aside ends, and leaves the
    // new master's socket where it is.
    drop(stopped);
    wait_for(30, "the master put aside to end", || !alive(put_aside[0]));
    status();
    assert_eq!(logins(&bed, "host1"), first + 1);
    for host in ["host2", "host3"] {
        assert_eq!(logins(&bed, host), first, "{host} kept its connection");
    }
}

#[test]
fn connections_are_kept_for_the_next_run_unless_told_and_a_planted_directory_is_refused() {
    let bed = Bed::new();
    let status = |extra: &[&str], runtime: Option<&std::path::Path>| {
        let mut args = vec!["status", "testbed"];
        args.extend_from_slice(extra);
        let mut command = bed.ws.command(&args);
        if let Some(dir) = runtime {
            command.env("XDG_RUNTIME_DIR", dir);
        }
        let out = crate::support::Outcome::from(command.output().unwrap());
        out.assert_code(0);
        out
    };
    let runtime = tempfile::tempdir().unwrap();
    status(&[], Some(runtime.path()));
    let first = logins(&bed, "host1");
    assert_eq!(first, 1);
    // The next run finds the master kept, and logs in no more.
    status(&[], Some(runtime.path()));
    assert_eq!(logins(&bed, "host1"), first);
    // A master whose process is gone leaves its socket: it is replaced.
    let kept = runtime.path().join("landfall-ssh");
    for socket in fs::read_dir(&kept).unwrap() {
        let socket = socket.unwrap().path();
        let cmd = std::process::Command::new("ssh")
            .args([
                "-o",
                &format!("ControlPath={}", socket.display()),
                "-O",
                "exit",
                "x",
            ])
            .output()
            .unwrap();
        assert!(cmd.status.success(), "{cmd:?}");
        // The master answers before it ends; it takes its socket away as
        // it ends, and only then may a stale one be left in its place.
        wait_for(10, "the master to take its socket away", || {
            !socket.exists()
        });
        std::os::unix::net::UnixListener::bind(&socket).unwrap();
    }
    status(&[], Some(runtime.path()));
    assert_eq!(logins(&bed, "host1"), first + 1);
    // `--no-persist`: a connection of the run's own.
    status(&["--no-persist"], Some(runtime.path()));
    assert_eq!(logins(&bed, "host1"), first + 2);

    // Something of another user's in the directory: it is not used (the
    // run still works, with connections of its own), and says why.
    let planted = kept.join("planted");
    fs::write(&planted, "").unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    let out = status(&[], Some(runtime.path()));
    assert!(
        out.stderr
            .contains("ssh connections are not kept for the next run")
            && out.stderr.contains("someone else put it there"),
        "{}",
        out.stderr
    );
    assert_eq!(logins(&bed, "host1"), first + 3);
    // A directory that others may enter is refused too.
    fs::remove_file(&planted).unwrap();
    fs::set_permissions(&kept, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let out = status(&[], Some(runtime.path()));
    assert!(out.stderr.contains("others may use"), "{}", out.stderr);
}
