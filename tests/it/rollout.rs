//! Rollouts on a test bed of six real sshd hosts: a canary that fails stops
//! the rollout before any other host switches; a failure budget lets the
//! rest of the fleet go on; a pause is kept between batches; a `once` hook
//! runs on exactly one host per deploy, and when it fails nothing switches;
//! top-level `before` and `after` hooks run on this machine; orphans are
//! listed and pruned.

use std::fs;

use landfall_testbed::Scoped;

use crate::support::{Outcome, Workspace, current_on, free_port, http_get_at};

const APP: &str = "hello/app";
const SITE: &str = "hello/site";
const HOSTS: usize = 6;

struct Fleet {
    ws: Workspace,
    testbed: Scoped,
    port: u16,
}

impl Fleet {
    /// Six hosts; `app` records when its activate hook ran on each host,
    /// and rolls out as `rollout` says.
    fn new(rollout: &str) -> Fleet {
        Fleet::with_hosts(HOSTS, rollout)
    }

    fn with_hosts(hosts: usize, rollout: &str) -> Fleet {
        let testbed =
            Scoped::up(hosts).expect("the test bed starts (this needs root, sshd and util-linux)");
        let ws = Workspace::hello();
        let port = free_port();
        ws.use_testbed(&testbed, port);
        ws.edit(
            "deploy.toml",
            "activate = \"bin/restart\"",
            "activate = \"date +%s.%N >>$LANDFALL_PATH/shared/log/activated && bin/restart\"",
        );
        ws.edit(
            "deploy.toml",
            "health_timeout = \"10s\"",
            "health_timeout = \"3s\"",
        );
        ws.roll_out_app(rollout);
        Fleet { ws, testbed, port }
    }

    fn hosts(&self) -> Vec<String> {
        self.testbed.hosts.iter().map(|h| h.name.clone()).collect()
    }

    fn deploy(&self, extra: &[&str]) -> Outcome {
        let mut args = vec!["deploy", "testbed", "--message-format", "json"];
        args.extend_from_slice(extra);
        self.ws.run(&args)
    }

    fn current(&self, host: &str, path: &str) -> Option<String> {
        current_on(&self.testbed, host, path)
    }

    fn currents(&self) -> Vec<Option<String>> {
        self.hosts().iter().map(|h| self.current(h, APP)).collect()
    }

    /// What `/` answers on a host.
    fn greeting(&self, host: &str) -> Option<String> {
        let address = &self.testbed.hosts.iter().find(|h| h.name == host)?.address;
        http_get_at(address, self.port, "/").map(|(_, body)| body)
    }

    /// When the activate hook of `app` last ran on a host (seconds).
    fn activated_at(&self, host: &str) -> f64 {
        let log = fs::read_to_string(
            self.testbed
                .srv(host)
                .join(APP)
                .join("shared/log/activated"),
        )
        .unwrap();
        log.lines().last().unwrap().parse().unwrap()
    }
}

/// `host` of each event, in order.
fn hosts_of(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["host"].as_str().unwrap().to_string())
        .collect()
}

/// The batch of each host's `app` in the summary.
fn batches(out: &Outcome) -> Vec<(String, Option<u64>)> {
    out.summary()["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["artifact"] == "app")
        .map(|h| (h["host"].as_str().unwrap().to_string(), h["batch"].as_u64()))
        .collect()
}

fn show(out: &Outcome, kinds: &[&str]) -> String {
    out.events()
        .iter()
        .filter(|e| kinds.contains(&e["event"].as_str().unwrap_or("")))
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_canary_that_fails_its_health_check_stops_the_rollout_before_any_other_host_switches() {
    let fleet = Fleet::new("canary = 1\nbatch = 2");
    fleet.deploy(&[]).assert_code(0);
    let before = fleet.currents();
    let hosts = fleet.hosts();

    fleet.ws.make_unhealthy(&hosts[0]);
    let out = fleet.deploy(&["--var", "greeting=howdy"]);
    out.assert_code(1);
    eprintln!(
        "{}",
        show(
            &out,
            &["batch", "activated", "rolled_back", "rollout_stopped"]
        )
    );
    let batch = out.events_of("batch");
    assert_eq!(batch.len(), 1, "no batch after the canary's: {batch:?}");
    assert_eq!(batch[0]["canary"], true);
    assert_eq!(batch[0]["hosts"], serde_json::json!([hosts[0]]));
    assert_eq!(
        batch[0]["batches"], 4,
        "the canary, then 5 hosts 2 at a time"
    );
    let stopped = out.events_of("rollout_stopped");
    assert_eq!(stopped.len(), 1);
    assert!(
        stopped[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("a canary failed"),
        "{stopped:?}"
    );
    assert_eq!(hosts_of(&out.events_of("rolled_back")), [hosts[0].clone()]);
    // `app` switched on no host (only `site`, which it comes after).
    assert!(
        out.events_of("activated")
            .iter()
            .all(|e| e["artifact"] == "site"),
        "{}",
        out.stdout
    );
    assert_eq!(fleet.currents(), before);
    for host in &hosts {
        assert_eq!(
            fleet.greeting(host),
            Some(format!("hello from {host}\n")),
            "{host}"
        );
    }
}

#[test]
fn a_failure_budget_deploys_the_other_hosts_and_a_pause_is_kept_between_batches() {
    let fleet = Fleet::new("batch = 2\npause = \"2s\"\nmax_fail = 1");
    fleet.deploy(&[]).assert_code(0);
    let hosts = fleet.hosts();
    let bad = &hosts[2];
    let old_bad = fleet.current(bad, APP);

    fleet.ws.make_unhealthy(bad);
    let out = fleet.deploy(&["--var", "greeting=howdy"]);
    out.assert_code(1);
    eprintln!(
        "{}",
        show(
            &out,
            &["batch", "pause", "activated", "rolled_back", "failed"]
        )
    );
    let statuses = out.statuses();
    for (target, status) in &statuses {
        let expected = if target == &format!("{bad}/app") {
            "failed"
        } else if target.ends_with("/app") {
            "deployed"
        } else {
            "unchanged"
        };
        assert_eq!(status, expected, "{target}: {statuses:?}");
    }
    let failed = out.events_of("failed");
    assert_eq!(hosts_of(&failed), std::slice::from_ref(bad), "{failed:?}");
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .contains("rolled back to"),
        "{failed:?}"
    );
    assert!(out.events_of("rollout_stopped").is_empty());
    assert_eq!(fleet.current(bad, APP), old_bad);
    for host in hosts.iter().filter(|h| *h != bad) {
        assert_eq!(fleet.greeting(host), Some(format!("howdy from {host}\n")));
    }
    assert_eq!(fleet.greeting(bad), Some(format!("hello from {bad}\n")));

    // Batches of two, in host order, each after a pause of 2 seconds.
    let expected: Vec<(String, Option<u64>)> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.clone(), Some(i as u64 / 2 + 1)))
        .collect();
    assert_eq!(batches(&out), expected);
    let pauses = out.events_of("pause");
    assert_eq!(pauses.len(), 2, "{pauses:?}");
    assert_eq!(pauses[0]["next"], 2);
    assert_eq!(pauses[0]["seconds"], 2.0);
    for pair in hosts.chunks(2).collect::<Vec<_>>().windows(2) {
        let (earlier, later) = (pair[0], pair[1]);
        let last = earlier
            .iter()
            .map(|h| fleet.activated_at(h))
            .fold(f64::MIN, f64::max);
        let first = later
            .iter()
            .map(|h| fleet.activated_at(h))
            .fold(f64::MAX, f64::min);
        assert!(
            first - last >= 2.0,
            "batch {later:?} activated {:.2}s after {earlier:?}",
            first - last
        );
    }

    // A re-run retries only what failed.
    fleet.ws.edit(
        "environments/testbed.toml",
        "vars = { healthy = false,",
        "vars = {",
    );
    let again = fleet.deploy(&["--var", "greeting=howdy"]);
    again.assert_code(0);
    let deployed: Vec<String> = again
        .statuses()
        .into_iter()
        .filter(|(_, s)| s == "deployed")
        .map(|(t, _)| t)
        .collect();
    assert_eq!(deployed, [format!("{bad}/app")]);
}

#[test]
fn once_runs_on_exactly_one_host_per_deploy_and_when_it_fails_nothing_switches() {
    let fleet = Fleet::new("batch = 2");
    fleet.ws.edit(
        "deploy.toml",
        "health_timeout = \"3s\"",
        "health_timeout = \"3s\"\n\
         once = \"echo {{ vars.greeting }} $LANDFALL_RELEASE >>/srv/once.log && test {{ vars.greeting }} != broken\"",
    );
    let hosts = fleet.hosts();
    let counts = || -> Vec<String> {
        hosts
            .iter()
            .flat_map(|h| {
                fs::read_to_string(fleet.testbed.srv(h).join("once.log"))
                    .unwrap_or_default()
                    .lines()
                    .map(|l| format!("{h}: {l}"))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    for (n, greeting) in ["hi", "howdy", "hey"].iter().enumerate() {
        let out = fleet.deploy(&["--var", &format!("greeting={greeting}")]);
        out.assert_code(0);
        let once = out.events_of("once");
        assert_eq!(once.len(), 1, "{once:?}");
        assert_eq!(once[0]["host"], hosts[0].as_str());
        // It ran before any host switched.
        let events = out.events();
        let at = |kind: &str, artifact: &str| {
            events
                .iter()
                .position(|e| e["event"] == kind && e["artifact"] == artifact)
                .unwrap()
        };
        assert!(at("once", "app") < at("activated", "app"));
        let lines = counts();
        assert_eq!(lines.len(), n + 1, "{lines:?}");
        assert!(
            lines[n].starts_with(&format!("{}: {greeting} ", hosts[0])),
            "{lines:?}"
        );
        for host in &hosts {
            assert_eq!(
                fleet.greeting(host),
                Some(format!("{greeting} from {host}\n"))
            );
        }
    }

    let before = fleet.currents();
    let out = fleet.deploy(&["--var", "greeting=broken"]);
    out.assert_code(1);
    eprintln!("{}", show(&out, &["once", "failed", "activated"]));
    let failed = out.events_of("failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["phase"], "once");
    assert!(out.events_of("activated").is_empty());
    assert_eq!(fleet.currents(), before);
    assert_eq!(counts().len(), 4);
    for host in &hosts {
        assert_eq!(fleet.greeting(host), Some(format!("hey from {host}\n")));
        assert!(
            !fleet
                .testbed
                .srv(host)
                .join(APP)
                .join(".landfall/lock")
                .exists()
        );
    }
}

#[test]
fn hooks_before_and_after_run_here_with_the_summary() {
    let fleet = Fleet::new("batch = 3");
    let log = fleet.ws.path("hooks.log");
    fleet.ws.write(
        "deploy.toml",
        &format!(
            "{}\n[hooks]\n\
             before = \"echo before $LANDFALL_ENV $LANDFALL_HOSTS >>{log}\"\n\
             after = \"echo after $LANDFALL_OK >>{log} && cat $LANDFALL_SUMMARY >>{log}\"\n",
            fleet.ws.read("deploy.toml"),
            log = log.display()
        ),
    );
    let out = fleet.deploy(&[]);
    out.assert_code(0);
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("before testbed {}", fleet.hosts().join(" "))
    );
    assert_eq!(lines[1], "after 1");
    let summary: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(summary, out.summary());
    let hooks = out.events_of("hook");
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[0]["hook"], "before");
    assert_eq!(hooks[1]["hook"], "after");

    // A `before` that fails deploys nothing, and contacts no host.
    fleet.ws.edit(
        "deploy.toml",
        "before = \"echo before",
        "before = \"false && echo",
    );
    let before = fleet.currents();
    let refused = fleet.deploy(&["--var", "greeting=howdy"]);
    refused.assert_code(1);
    assert!(
        refused
            .stderr
            .contains("the `before` hook of deploy.toml failed"),
        "{}",
        refused.stderr
    );
    assert_eq!(fleet.currents(), before);
}

#[test]
fn orphans_are_listed_by_status_and_pruned_after_confirmation() {
    let fleet = Fleet::new("batch = 6");
    fleet.deploy(&[]).assert_code(0);
    let hosts = fleet.hosts();
    // `site` leaves deploy.toml: what it left on the hosts is an orphan.
    fleet.ws.remove_site();
    fleet.deploy(&[]).assert_code(0);

    let orphans = fleet.ws.orphans("testbed");
    assert_eq!(orphans.len(), HOSTS, "{orphans:?}");
    for (orphan, host) in orphans.iter().zip(&hosts) {
        assert_eq!(orphan["host"], host.as_str());
        assert_eq!(orphan["artifact"], "site");
        assert_eq!(orphan["path"], "/srv/hello/site");
        assert!(orphan["current"].is_string());
    }
    let human = fleet.ws.run(&["status", "testbed"]);
    assert!(human.stdout.contains("orphans"), "{}", human.stdout);
    assert!(human.stdout.contains("cargo deploy prune testbed"));

    // Without a terminal, only `--yes` confirms.
    let unconfirmed = fleet.ws.run(&["prune", "testbed"]);
    unconfirmed.assert_code(2);
    assert!(
        unconfirmed.stderr.contains("--yes"),
        "{}",
        unconfirmed.stderr
    );
    for host in &hosts {
        assert!(fleet.testbed.srv(host).join(SITE).exists());
    }

    let pruned = fleet
        .ws
        .run(&["prune", "testbed", "--yes", "--message-format", "json"]);
    pruned.assert_code(0);
    let mut pruned_on = hosts_of(&pruned.events_of("pruned"));
    pruned_on.sort();
    assert_eq!(pruned_on, hosts);
    for host in &hosts {
        assert!(!fleet.testbed.srv(host).join(SITE).exists(), "{host}");
        assert!(fleet.current(host, APP).is_some());
    }
    assert!(fleet.ws.orphans("testbed").is_empty());
    fleet.ws.run(&["prune", "testbed"]).assert_code(0);
}

#[test]
fn a_host_that_cannot_be_reached_counts_against_the_budget() {
    let fleet = Fleet::with_hosts(3, "max_fail = 1");
    fleet.ws.write(
        "deploy.toml",
        &format!(
            "{}\n[artifact.site.rollout]\nmax_fail = 1\n",
            fleet.ws.read("deploy.toml")
        ),
    );
    fleet.deploy(&[]).assert_code(0);
    let hosts = fleet.hosts();
    fleet.testbed.stop(&hosts[1]).unwrap();
    let out = fleet.deploy(&["--var", "greeting=howdy"]);
    out.assert_code(1);
    for (target, status) in out.statuses() {
        let expected = if target.starts_with(&format!("{}/", hosts[1])) {
            "failed"
        } else if target.ends_with("/app") {
            "deployed"
        } else {
            "unchanged"
        };
        assert_eq!(status, expected, "{target}: {}", out.stdout);
    }
    let failed = out.events_of("failed");
    assert!(
        failed
            .iter()
            .all(|f| f["phase"] == "probe" && f["host"] == hosts[1].as_str())
    );
    for host in [&hosts[0], &hosts[2]] {
        assert_eq!(fleet.greeting(host), Some(format!("howdy from {host}\n")));
    }

    // Two artifacts' budgets are their own: with none for `site`, the same
    // host stops everything before any host switches.
    fleet
        .ws
        .edit("deploy.toml", "[artifact.site.rollout]\nmax_fail = 1\n", "");
    let before = fleet.currents();
    let out = fleet.deploy(&["--var", "greeting=hey"]);
    out.assert_code(1);
    assert!(out.events_of("activated").is_empty(), "{}", out.stdout);
    assert_eq!(fleet.currents(), before);
}

/// Each host with its current `app` release.
type On = Vec<(String, Option<String>)>;

/// Every host's current `app` release, by host.
fn on(fleet: &Fleet) -> On {
    fleet.hosts().into_iter().zip(fleet.currents()).collect()
}

/// A fleet of three hosts: `app` deployed twice (its default greeting,
/// then `two`), returning what each host ran after each deploy.
fn deployed_twice(rollout: &str) -> (Fleet, On, On) {
    let fleet = Fleet::with_hosts(3, rollout);
    fleet.deploy(&[]).assert_code(0);
    let first = on(&fleet);
    fleet.deploy(&["--var", "greeting=two"]).assert_code(0);
    let second = on(&fleet);
    for ((host, a), (_, b)) in first.iter().zip(&second) {
        assert_ne!(a, b, "{host} changed");
    }
    (fleet, first, second)
}

#[test]
fn rollback_after_a_failed_canary_takes_every_host_to_one_release() {
    let (fleet, first, second) = deployed_twice("canary = 1\nbatch = 2");
    let hosts = fleet.hosts();

    // The canary fails and switches back; the others are not reached.
    fleet.ws.make_unhealthy(&hosts[0]);
    let failed = fleet.deploy(&["--var", "greeting=three"]);
    failed.assert_code(1);
    assert_eq!(on(&fleet), second);

    // The failed deploy changed nothing: the rollback undoes the one
    // before it, on every host.
    let back = fleet
        .ws
        .run(&["rollback", "testbed", "--message-format", "json"]);
    back.assert_code(0);
    assert_eq!(on(&fleet), first, "{}", back.stdout);
    let summary = back.summary();
    let id = summary["deploy"].as_str().expect("the rollback's id");
    assert!(
        back.statuses()
            .iter()
            .filter(|(t, _)| t.ends_with("/app"))
            .all(|(_, s)| s == "rolled_back"),
        "{summary}"
    );
    for host in &hosts {
        assert_eq!(fleet.greeting(host), Some(format!("hello from {host}\n")));
    }

    // A second rollback would go back past the first deploy, which
    // brought everything: it is refused, and nothing moves.
    let refused = fleet
        .ws
        .run(&["rollback", "testbed", "--message-format", "json"]);
    refused.assert_code(1);
    assert_eq!(on(&fleet), first);
    assert!(
        refused.stdout.contains("nothing to roll back"),
        "{}",
        refused.stdout
    );

    // `status` shows which run put each release there.
    let status = fleet
        .ws
        .run(&["status", "testbed", "--message-format", "json"]);
    assert!(status.stdout.contains(id), "{}", status.stdout);
}

#[test]
fn rollback_after_ctrl_c_in_the_canarys_pause_takes_every_host_to_one_release() {
    use std::io::BufRead as _;
    let (fleet, first, second) = deployed_twice("canary = 1\nbatch = 2");
    let hosts = fleet.hosts();
    fleet.ws.edit(
        "deploy.toml",
        "canary = 1\nbatch = 2",
        "canary = 1\nbatch = 2\npause = \"5m\"",
    );

    let mut child = fleet.ws.spawn(&[
        "deploy",
        "testbed",
        "--message-format",
        "json",
        "--var",
        "greeting=three",
    ]);
    // The canary switched and passed; the rollout pauses: Ctrl-C then.
    let stdout = child.stdout.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            let _ = lines.send(line);
        }
        all
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = seen
            .recv_timeout(left)
            .expect("the rollout pauses after its canary");
        if line.contains(r#""event":"pause""#) && line.contains(r#""artifact":"app""#) {
            break;
        }
    }
    let group = format!("-{}", child.id());
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", "--", &group])
            .status()
            .unwrap()
            .success()
    );
    let mut out = crate::support::finish_within(child, 120, "the deploy stopped by Ctrl-C");
    out.stdout = reader.join().unwrap();
    assert_ne!(out.code, 0, "{}", out.stderr);
    // The canary is switched back, as the rollout stopped, and says so.
    assert_eq!(on(&fleet), second);
    let summary = out.summary();
    let canary = &summary["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == hosts[0].as_str() && h["artifact"] == "app")
        .unwrap()["message"];
    assert!(
        canary
            .as_str()
            .unwrap()
            .contains("landfall was asked to stop"),
        "{summary}"
    );

    // That deploy changed nothing: the rollback undoes the one before.
    let back = fleet
        .ws
        .run(&["rollback", "testbed", "--message-format", "json"]);
    back.assert_code(0);
    assert_eq!(on(&fleet), first, "{}", back.stdout);
    for host in &hosts {
        assert_eq!(fleet.greeting(host), Some(format!("hello from {host}\n")));
    }
}

#[test]
fn rollback_to_a_deploy_or_a_commit_reaches_hosts_whose_release_ids_differ() {
    let fleet = Fleet::with_hosts(3, "batch = 3");
    let first_commit = fleet.ws.git_commit("first");
    let first = fleet.deploy(&[]);
    first.assert_code(0);
    let first_deploy = first.summary()["deploy"].as_str().unwrap().to_string();
    let at_first = on(&fleet);
    // Release ids differ per host: each renders its own name.
    let ids: std::collections::BTreeSet<_> = at_first.iter().map(|(_, r)| r.clone()).collect();
    assert_eq!(ids.len(), 3, "{at_first:?}");

    fleet
        .ws
        .edit("deploy.toml", "greeting = \"hello\"", "greeting = \"two\"");
    fleet.ws.git_commit("second");
    fleet.deploy(&[]).assert_code(0);
    let at_second = on(&fleet);
    fleet
        .ws
        .edit("deploy.toml", "greeting = \"two\"", "greeting = \"three\"");
    fleet.ws.git_commit("third");
    fleet.deploy(&[]).assert_code(0);

    // To a deploy, by a prefix of its id.
    let prefix = &first_deploy[..first_deploy.len() - 2];
    fleet
        .ws
        .run(&["rollback", "testbed", "--to", prefix])
        .assert_code(0);
    assert_eq!(on(&fleet), at_first);

    // To a commit, by a git ref of the workspace: `HEAD~1` is `second`.
    fleet
        .ws
        .run(&["rollback", "testbed", "--to", "HEAD~1"])
        .assert_code(0);
    assert_eq!(on(&fleet), at_second);

    // To a commit, by a prefix of its hash.
    fleet
        .ws
        .run(&["rollback", "testbed", "--to", &first_commit[..10]])
        .assert_code(0);
    assert_eq!(on(&fleet), at_first);

    // A goal no host records is refused, and nothing moves.
    let none = fleet.ws.run(&["rollback", "testbed", "--to", "00000000"]);
    none.assert_code(1);
    assert!(
        none.stderr
            .contains("no deploy, release or commit `00000000`"),
        "{}",
        none.stderr
    );
    assert_eq!(on(&fleet), at_first);
}
