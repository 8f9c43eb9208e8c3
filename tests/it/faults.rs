//! Faults on the real test bed: a host that goes down before or during a
//! deploy, a full disk, a hook that hangs, two deploys at once, a deploy
//! killed at random moments, a series of failed deploys. After each, every
//! host must be on a complete release, nothing may be lost, and the next
//! run must converge.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use landfall::assemble::{EntryKind, Manifest};

use crate::support::Bed;
use crate::support::{Outcome, http_get_at, wait_for};

const APP: &str = "hello/app";
const SITE: &str = "hello/site";
const PATHS: [&str; 2] = [APP, SITE];

/// Checks that `current` of a host's artifact, if there is one, is a
/// complete release: a finished release directory whose every file and
/// link is there with the size and content its manifest says.
#[track_caller]
fn assert_complete(bed: &Bed, host: &str, path: &str) {
    let base = bed.srv(host, path);
    let Ok(link) = fs::read_link(base.join("current")) else {
        return;
    };
    let link = link.to_string_lossy().into_owned();
    let id = link
        .strip_prefix("releases/")
        .unwrap_or_else(|| panic!("{host}:{path}: `current` -> {link}"));
    assert!(
        id.chars().all(|c| c.is_ascii_hexdigit()),
        "{host}:{path}: `current` -> {link}, not a finished release"
    );
    let release = base.join("releases").join(id);
    let manifest = fs::read_to_string(release.join(".landfall-manifest"))
        .unwrap_or_else(|e| panic!("{host}:{path}: release {id} has no manifest: {e}"));
    let manifest = Manifest::parse(&manifest)
        .unwrap_or_else(|| panic!("{host}:{path}: the manifest of {id} does not parse"));
    for entry in &manifest.entries {
        let file = release.join(&entry.path);
        match &entry.kind {
            EntryKind::File { size, hash, .. } => {
                let bytes = fs::read(&file).unwrap_or_else(|e| {
                    panic!("{host}:{path}: {id}/{} is missing: {e}", entry.path)
                });
                assert_eq!(
                    bytes.len() as u64,
                    *size,
                    "{host}:{path}: size of {id}/{}",
                    entry.path
                );
                assert_eq!(
                    blake3::hash(&bytes),
                    *hash,
                    "{host}:{path}: content of {id}/{}",
                    entry.path
                );
            }
            EntryKind::Symlink { target } => {
                let found = fs::read_link(&file).unwrap_or_else(|e| {
                    panic!("{host}:{path}: link {id}/{} is missing: {e}", entry.path)
                });
                assert_eq!(
                    found.to_string_lossy(),
                    *target,
                    "{host}:{path}: {id}/{}",
                    entry.path
                );
            }
        }
    }
}

/// Checks that every line of a host's deploy log is a JSON object.
#[track_caller]
fn assert_log_is_json_lines(bed: &Bed, host: &str, path: &str) {
    let Ok(log) = fs::read_to_string(bed.srv(host, path).join(".landfall/log")) else {
        return;
    };
    for line in log.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{host}:{path}: log line `{line}` is not JSON: {e}"));
        assert!(value.is_object(), "{host}:{path}: log line `{line}`");
    }
}

/// Everything that must hold on every host after any fault.
#[track_caller]
fn assert_nothing_lost(bed: &Bed) {
    for (host, _) in bed.hosts() {
        for path in PATHS {
            assert_complete(bed, &host, path);
            assert_log_is_json_lines(bed, &host, path);
        }
    }
}

/// `current` of an artifact on every host.
fn currents(bed: &Bed, path: &str) -> Vec<Option<String>> {
    bed.hosts()
        .iter()
        .map(|(host, _)| bed.current(host, path))
        .collect()
}

/// Upload directories left on a host.
fn partials(bed: &Bed, host: &str, path: &str) -> Vec<String> {
    fs::read_dir(bed.srv(host, path).join("releases"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".partial"))
        .collect()
}

fn lock_exists(bed: &Bed, host: &str, path: &str) -> bool {
    bed.srv(host, path).join(".landfall/lock").exists()
}

/// Checks that a failed run left the hosts it could reach unlocked and
/// without an unfinished upload.
#[track_caller]
fn assert_left_clean(bed: &Bed, hosts: &[&str]) {
    for host in hosts {
        for path in PATHS {
            assert!(!lock_exists(bed, host, path), "{host}:{path} is unlocked");
            assert!(
                partials(bed, host, path).is_empty(),
                "the upload to {host}:{path} was removed"
            );
        }
    }
}

/// The `failed` events of a run: host, phase and message.
fn failures(out: &Outcome) -> Vec<(String, String, String)> {
    out.events_of("failed")
        .iter()
        .map(|e| {
            (
                e["host"].as_str().unwrap_or("").to_string(),
                e["phase"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Checks that a run failed, exit status 1, with a failure that names the
/// host and the phase.
#[track_caller]
fn assert_failed_on(out: &Outcome, host: &str, phase: &str) {
    assert_eq!(out.code, 1, "{}", out.stdout);
    let failed = failures(out);
    assert!(
        failed.iter().any(|(h, p, _)| h == host && p == phase),
        "the failure names the host and the phase: {failed:?}"
    );
}

/// A deploy that must succeed, and leave every host serving `greeting`.
#[track_caller]
fn assert_converges(bed: &Bed, greeting: &str) -> Outcome {
    let out = bed.deploy(&[]);
    assert_eq!(out.code, 0, "the next run converges:\n{}", out.stderr);
    for (host, address) in bed.hosts() {
        assert_eq!(
            http_get_at(&address, bed.port, "/"),
            Some((200, format!("{greeting} from {host}\n"))),
            "{host} serves the new release"
        );
        for path in PATHS {
            assert!(!lock_exists(bed, &host, path), "{host}:{path} is unlocked");
        }
    }
    assert_nothing_lost(bed);
    out
}

fn set_greeting(bed: &Bed, from: &str, to: &str) {
    bed.ws.edit(
        "deploy.toml",
        &format!("greeting = \"{from}\""),
        &format!("greeting = \"{to}\""),
    );
}

#[test]
fn a_host_down_before_the_run_changes_nothing_anywhere() {
    let bed = Bed::new();
    let first = bed.deploy(&[]);
    first.assert_code(0);
    let before = currents(&bed, APP);
    set_greeting(&bed, "hello", "howdy");
    bed.testbed.stop("host2").unwrap();

    let out = bed.deploy(&[]);
    assert_failed_on(&out, "host2", "probe");
    assert_eq!(currents(&bed, APP), before, "no host switched");
    assert_left_clean(&bed, &["host1", "host3"]);
    assert_nothing_lost(&bed);

    bed.testbed.start("host2").unwrap();
    assert_converges(&bed, "howdy");
}

/// Every file and directory under a host's `/srv`, sorted.
fn tree(bed: &Bed, host: &str) -> Vec<std::path::PathBuf> {
    landfall_testbed::support::below(&bed.testbed.srv(host))
        .into_iter()
        .map(|(path, _)| path)
        .collect()
}

#[test]
fn a_first_deploy_with_a_host_down_leaves_nothing_on_the_hosts_it_reached() {
    let bed = Bed::new();
    let before: Vec<_> = bed.hosts().iter().map(|(h, _)| tree(&bed, h)).collect();
    bed.testbed.stop("host2").unwrap();

    let out = bed.deploy(&[]);
    assert_failed_on(&out, "host2", "probe");
    let after: Vec<_> = bed.hosts().iter().map(|(h, _)| tree(&bed, h)).collect();
    assert_eq!(
        (&after[0], &after[2]),
        (&before[0], &before[2]),
        "no directory, lock or ownership record is left on host1 and host3"
    );

    bed.testbed.start("host2").unwrap();
    assert_converges(&bed, "hello");
}

#[test]
fn a_host_down_during_the_push_leaves_every_host_on_its_release() {
    let bed = Bed::new();
    bed.deploy(&[]).assert_code(0);
    let before = currents(&bed, APP);
    set_greeting(&bed, "hello", "howdy");
    // On host2, rsync says when it starts and then takes its time.
    let slow = bed.srv("host2", "slow");
    fs::create_dir_all(&slow).unwrap();
    fs::write(
        slow.join("rsync"),
        "#!/bin/sh\ntouch /srv/rsync-started\nsleep 30\nexec /usr/bin/rsync \"$@\"\n",
    )
    .unwrap();
    set_mode(&slow.join("rsync"), 0o755);
    fs::write(bed.testbed.bashrc("host2"), "PATH=/srv/slow:$PATH\n").unwrap();

    let deploy = bed
        .ws
        .spawn(&["deploy", "testbed", "--message-format", "json"]);
    wait_for(60, "the push to host2", || {
        bed.srv("host2", "rsync-started").exists()
    });
    bed.testbed.stop("host2").unwrap();
    let out = finished(deploy);

    assert_failed_on(&out, "host2", "push");
    assert_eq!(currents(&bed, APP), before, "no host was activated");
    assert_left_clean(&bed, &["host1", "host3"]);
    assert_nothing_lost(&bed);

    bed.testbed.start("host2").unwrap();
    let again = assert_converges(&bed, "howdy");
    assert!(
        again.stdout.contains("taking the lock over"),
        "host2's lock, left by the run that lost it, is reported and taken over:\n{}",
        again.stdout
    );
}

#[test]
fn a_host_down_during_activation_is_reported_and_the_others_switch_back() {
    let bed = Bed::new();
    bed.deploy(&[]).assert_code(0);
    let before = currents(&bed, APP);
    set_greeting(&bed, "hello", "howdy");
    // host2's activate hook says when it runs, then hangs once.
    fs::write(bed.srv("host2", "hang-once"), "").unwrap();
    bed.ws.edit(
        "deploy.toml",
        "activate = \"bin/restart\"",
        "activate = \"if [ -e /srv/hang-once ]; then rm /srv/hang-once; touch /srv/activating; sleep 60; fi; bin/restart\"",
    );

    let deploy = bed
        .ws
        .spawn(&["deploy", "testbed", "--message-format", "json"]);
    wait_for(120, "the activation on host2", || {
        bed.srv("host2", "activating").exists()
    });
    bed.testbed.stop("host2").unwrap();
    let out = finished(deploy);

    assert_failed_on(&out, "host2", "activate");
    // The hosts that could be reached are back on the release they had.
    let after = currents(&bed, APP);
    assert_eq!(after[0], before[0], "host1 switched back");
    assert_eq!(after[2], before[2], "host3 switched back");
    assert_nothing_lost(&bed);

    bed.testbed.start("host2").unwrap();
    assert_converges(&bed, "howdy");
}

#[test]
fn a_full_disk_fails_the_push_cleanly() {
    let bed = Bed::new();
    // host2's /srv will hold the first release and a little more, not a
    // large new file.
    bed.ws.write("big.bin", &"x".repeat(8 << 20));
    let first = bed.deploy(&[]);
    first.assert_code(0);
    let before = currents(&bed, APP);
    let used = du(&bed.srv("host2", ""));
    bed.testbed.small_disk("host2", used + (4 << 20)).unwrap();
    // The small disk starts empty: deploy the first release there again.
    bed.deploy(&[]).assert_code(0);
    let before2 = bed.current("host2", APP);
    assert_eq!(before2, before[1]);

    bed.ws.edit(
        "deploy.toml",
        "{ src = \"examples/hello/scripts/restart\", dst = \"bin/restart\" }]",
        "{ src = \"examples/hello/scripts/restart\", dst = \"bin/restart\" }, { src = \"big.bin\", dst = \"big.bin\" }]",
    );
    let out = bed.deploy(&[]);
    assert_failed_on(&out, "host2", "push");
    assert_eq!(currents(&bed, APP), before, "no host was activated");
    assert_left_clean(&bed, &["host1", "host2", "host3"]);
    assert_nothing_lost(&bed);
}

#[test]
fn a_hook_that_hangs_is_stopped_at_its_timeout_and_the_deploy_rolls_back() {
    let bed = Bed::new();
    bed.deploy(&[]).assert_code(0);
    let before = currents(&bed, APP);
    // The new release's activate hook hangs, with a child of its own; the
    // old release's does not, so that switching back works.
    set_greeting(&bed, "hello", "hang");
    bed.ws.edit(
        "deploy.toml",
        "activate = \"bin/restart\"",
        "activate = \"if grep -q hang etc/hello.toml; then sleep 4243 & sleep 4242; fi; bin/restart\"\ntimeout = \"5s\"",
    );
    let started = Instant::now();
    let out = bed.deploy(&[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the hook was stopped: {:?}",
        started.elapsed()
    );
    assert!(
        out.stdout
            .contains("did not finish within 5s and was stopped"),
        "the message says why:\n{}",
        out.stdout
    );
    assert!(
        out.statuses().iter().any(|(_, s)| s == "rolled_back"),
        "{:?}\n{}",
        out.statuses(),
        out.stdout
    );
    assert_eq!(currents(&bed, APP), before, "every host switched back");
    wait_for(10, "the hook's processes to go", || {
        processes_with_args(&["sleep", "4242"]).is_empty()
            && processes_with_args(&["sleep", "4243"]).is_empty()
    });
    assert_nothing_lost(&bed);
}

#[test]
fn of_two_deploys_at_once_one_runs_and_the_other_is_refused() {
    let bed = Bed::new();
    bed.deploy(&[]).assert_code(0);
    // The first deploy's activation waits until the test lets it go on,
    // so that it holds its locks while the second one runs.
    set_greeting(&bed, "hello", "first");
    bed.ws.edit(
        "deploy.toml",
        "activate = \"bin/restart\"",
        "activate = \"while [ ! -e /srv/go ]; do sleep 0.1; done; bin/restart\"",
    );
    let second_ws = bed.ws.copy();
    second_ws.edit(
        "deploy.toml",
        "greeting = \"first\"",
        "greeting = \"second\"",
    );

    let first = bed
        .ws
        .spawn(&["deploy", "testbed", "--message-format", "json"]);
    wait_for(120, "the first deploy to lock every host", || {
        bed.hosts().iter().all(|(h, _)| lock_exists(&bed, h, APP))
    });
    let second = second_ws.run(&["deploy", "testbed", "--message-format", "json"]);
    for (host, _) in bed.hosts() {
        fs::write(bed.srv(&host, "go"), "").unwrap();
    }
    let first = finished(first);

    first.assert_code(0);
    assert_eq!(second.code, 1, "{}", second.stdout);
    assert!(
        second.stdout.contains("is locked by another deploy"),
        "the refusal names the holder:\n{}",
        second.stdout
    );
    assert!(
        !second.events().iter().any(|e| e["event"] == "pushed"),
        "the refused deploy sent nothing"
    );
    for (host, address) in bed.hosts() {
        assert_eq!(
            http_get_at(&address, bed.port, "/"),
            Some((200, format!("first from {host}\n")))
        );
        assert!(!lock_exists(&bed, &host, APP));
    }
    assert_nothing_lost(&bed);

    // Started at the same moment, they still do not both run.
    set_greeting(&bed, "first", "third");
    let a = bed
        .ws
        .spawn(&["deploy", "testbed", "--message-format", "json"]);
    let b = second_ws.spawn(&["deploy", "testbed", "--message-format", "json"]);
    let (a, b) = (finished(a), finished(b));
    let mut codes = [a.code, b.code];
    codes.sort_unstable();
    assert_eq!(
        codes,
        [0, 1],
        "exactly one ran:\n{}\n---\n{}",
        a.stderr,
        b.stderr
    );
    let winner = if a.code == 0 { "third" } else { "second" };
    for (host, address) in bed.hosts() {
        assert_eq!(
            http_get_at(&address, bed.port, "/"),
            Some((200, format!("{winner} from {host}\n")))
        );
        assert!(!lock_exists(&bed, &host, APP));
    }
    assert_nothing_lost(&bed);
}

#[test]
fn keep_never_removes_the_current_or_the_previous_good_release() {
    let bed = Bed::new();
    bed.ws
        .edit("deploy.toml", "keep = 3\nafter", "keep = 1\nafter");
    bed.ws.edit(
        "deploy.toml",
        "health_timeout = \"10s\"",
        "health_timeout = \"1s\"",
    );
    let a = bed.deploy(&[]);
    a.assert_code(0);
    set_greeting(&bed, "hello", "b");
    let b = bed.deploy(&[]);
    b.assert_code(0);
    // Releases differ from host to host (each has its own config).
    let good_a = |host: &str| a.release_of(host, "app");
    let good_b = |host: &str| b.release_of(host, "app");
    let releases = |host: &str| -> Vec<String> {
        fs::read_dir(bed.srv(host, APP).join("releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };

    // Three failed deploys: two unhealthy, then one that pre_activate
    // refuses.
    bed.ws
        .edit("deploy.toml", "healthy = true", "healthy = false");
    for (i, from) in [(1, "b"), (2, "bad1"), (3, "bad2")] {
        set_greeting(&bed, from, &format!("bad{i}"));
        if i == 3 {
            bed.ws.edit(
                "deploy.toml",
                "pre_activate = \"",
                "pre_activate = \"false && ",
            );
        }
        let out = bed.deploy(&[]);
        assert_eq!(out.code, 1, "deploy bad{i} fails:\n{}", out.stderr);
        for (host, _) in bed.hosts() {
            assert_eq!(bed.current(&host, APP), Some(good_b(&host)));
            let kept = releases(&host);
            assert!(
                kept.contains(&good_b(&host)),
                "{host} keeps the current release"
            );
            assert!(
                kept.contains(&good_a(&host)),
                "{host} keeps the previous good release"
            );
        }
        assert_nothing_lost(&bed);
    }

    bed.ws.edit(
        "deploy.toml",
        "pre_activate = \"false && ",
        "pre_activate = \"",
    );
    bed.ws
        .edit("deploy.toml", "healthy = false", "healthy = true");
    set_greeting(&bed, "bad3", "c");
    let c = bed.deploy(&[]);
    c.assert_code(0);
    assert!(
        c.events().iter().any(|e| e["event"] == "removed"),
        "old releases go once a deploy succeeds"
    );
    for (host, _) in bed.hosts() {
        let kept = releases(&host);
        assert!(kept.contains(&c.release_of(&host, "app")));
        assert!(
            kept.contains(&good_b(&host)),
            "{host} keeps the previous good release"
        );
        assert!(
            !kept.contains(&good_a(&host)),
            "{host} keeps no more than it must"
        );
    }
}

#[test]
fn a_deploy_killed_at_any_moment_loses_nothing_and_the_next_run_converges() {
    const ITERATIONS: u32 = 20;
    let bed = Bed::new();
    bed.deploy(&[]).assert_code(0);
    // How long a deploy of a new release takes, build check included: the
    // kills land anywhere in it.
    set_greeting(&bed, "hello", "v0");
    let started = Instant::now();
    bed.deploy(&[]).assert_code(0);
    let span = started.elapsed();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut previous = "v0".to_string();
    for i in 1..=ITERATIONS {
        let greeting = format!("v{i}");
        set_greeting(&bed, &previous, &greeting);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = span * u32::try_from(seed % 1000).unwrap() / 1000;
        let mut deploy = bed
            .ws
            .spawn(&["deploy", "testbed", "--message-format", "json"]);
        std::thread::sleep(delay);
        if i % 2 == 0 {
            // The whole process group: landfall, ssh and rsync at once.
            crate::support::kill_group(&mut deploy);
        } else {
            // landfall alone: what it started runs on.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &deploy.id().to_string()])
                .status();
            let _ = deploy.wait();
        }
        assert_nothing_lost(&bed);
        assert_converges(&bed, &greeting);
        previous = greeting;
    }
}

/// Waits for a spawned deploy and collects its output.
fn finished(child: std::process::Child) -> Outcome {
    Outcome::from(child.wait_with_output().unwrap())
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Bytes used by the files under a directory.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() {
            total += du(&entry.path());
        } else {
            total += meta.len();
        }
    }
    total
}

/// The pids of processes whose command line is exactly `args`.
fn processes_with_args(args: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = args.iter().flat_map(|a| a.bytes().chain([0])).collect();
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

/// A host that accepts TCP connections but never says a word of SSH, as a
/// wedged sshd or a stray port forward does.
fn silent_host() -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        // Connections are held open, unanswered, until the test ends.
        for stream in listener.incoming().take(8) {
            held.push(stream);
        }
    });
    (port, holder)
}

#[test]
fn a_host_that_never_speaks_ssh_is_named_and_given_up_on() {
    let ws = crate::support::Workspace::hello();
    let (port, _holder) = silent_host();
    ws.write(
        "environments/silent_ssh_config",
        &format!(
            "Host silent\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  \
             UserKnownHostsFile /dev/null\n"
        ),
    );
    ws.write(
        "environments/silent.toml",
        "[environment]\nssh_config = \"silent_ssh_config\"\n\n\
         [hosts.silent]\nroles = [\"web\"]\nvars = { port = 1 }\n",
    );
    let started = Instant::now();
    let out = ws.run_within(120, &["deploy", "silent", "--message-format", "json"]);
    out.assert_code(1);
    let failed = out.events_of("failed");
    assert!(
        failed
            .iter()
            .any(|e| e["host"] == "silent" && e["phase"] == "probe"),
        "{}",
        out.stdout
    );
    let message = failed[0]["message"].as_str().unwrap();
    assert!(message.contains("timed out"), "{message}");
    // The connect timeout, twice at most (the master, then the probe),
    // after the build.
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_host_that_freezes_during_activation_is_given_up_on_and_the_others_switch_back() {
    let bed = Bed::new();
    bed.deploy(&[]).assert_code(0);
    let before = currents(&bed, APP);
    // host2's activate hook says when it runs, then waits (a bounded while)
    // for a gate the test opens only once it has frozen and thawed the host.
    bed.ws.edit(
        "deploy.toml",
        "activate = \"bin/restart\"",
        "activate = \"bin/restart && if [ {{ host.name }} = host2 ]; then \
         touch $LANDFALL_PATH/shared/run/activating; n=0; \
         while [ ! -e $LANDFALL_PATH/shared/run/go ] && [ $n -lt 3000 ]; do sleep 0.02; n=$((n + 1)); done; fi\"",
    );
    set_greeting(&bed, "hello", "howdy");
    let mark = bed.srv("host2", APP).join("shared/run/activating");
    let child = bed
        .ws
        .spawn(&["deploy", "testbed", "--message-format", "json"]);
    wait_for(120, "host2's activate hook to run", || mark.exists());
    bed.testbed.freeze("host2").unwrap();
    let started = Instant::now();
    let out = crate::support::finish_within(child, 120, "testbed");
    let waited = started.elapsed();
    bed.testbed.thaw("host2").unwrap();
    fs::write(bed.srv("host2", APP).join("shared/run/go"), "").unwrap();
    assert_failed_on(&out, "host2", "activate");
    assert!(
        waited < Duration::from_secs(60),
        "given up after {waited:?}"
    );
    let waiting = out.events_of("waiting");
    assert!(
        waiting.iter().any(|e| e["host"] == "host2"),
        "host2 is named while landfall waits for it: {}",
        out.stdout
    );
    for (host, release) in [("host1", &before[0]), ("host3", &before[2])] {
        assert_eq!(&bed.current(host, APP), release, "{host} switched back");
    }
    assert_converges(&bed, "howdy");
}
