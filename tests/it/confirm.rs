//! The confirmation of an activation (`[artifact.X.rollout] confirm`) on a
//! test bed of real sshd hosts: a release that kills its host's sshd passes
//! its health check, but no new connection reaches the host, which then
//! switches back by itself, and landfall says so and exits 1; deploys
//! confirmed in time never switch back; and a host switches back by itself
//! when landfall is killed before it confirmed.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use landfall_testbed::Scoped;

use crate::support::{
    Outcome, Workspace, current_on, free_port, http_get_at, kill_group, wait_for,
};

const APP: &str = "hello/app";

struct Fleet {
    ws: Workspace,
    testbed: Scoped,
    port: u16,
}

impl Fleet {
    /// `hosts` hosts; `app` is to be confirmed within `confirm`, and its
    /// activate hook, before it restarts hello, kills the listening sshd
    /// whose pid file a host's `sshd_pid` names and writes to the fifo
    /// `gate` names, when they are set.
    fn new(hosts: usize, confirm: &str) -> Fleet {
        let testbed =
            Scoped::up(hosts).expect("the test bed starts (this needs root, sshd and util-linux)");
        let ws = Workspace::hello();
        let port = free_port();
        ws.use_testbed(&testbed, port);
        ws.edit(
            "deploy.toml",
            "healthy = true\n",
            "healthy = true\nsshd_pid = \"\"\ngate = \"\"\n",
        );
        ws.edit(
            "deploy.toml",
            "activate = \"bin/restart\"",
            "activate = \"{% if vars.sshd_pid %}kill $(cat {{ vars.sshd_pid }}) && {% endif %}\
             {% if vars.gate %}echo activated >{{ vars.gate }} && {% endif %}bin/restart\"",
        );
        ws.roll_out_app(&format!("confirm = \"{confirm}\""));
        Fleet { ws, testbed, port }
    }

    fn hosts(&self) -> Vec<String> {
        self.testbed.hosts.iter().map(|h| h.name.clone()).collect()
    }

    fn deploy(&self, extra: &[&str]) -> Outcome {
        let mut args = vec!["deploy", "testbed", "--message-format", "json"];
        args.extend_from_slice(extra);
        self.ws.run_within(120, &args)
    }

    /// `app`'s directory on a host, seen from outside.
    fn app(&self, host: &str) -> PathBuf {
        self.testbed.srv(host).join(APP)
    }

    fn current(&self, host: &str) -> Option<String> {
        current_on(&self.testbed, host, APP)
    }

    /// `app`'s log on a host, read from outside.
    fn log(&self, host: &str) -> Vec<serde_json::Value> {
        fs::read_to_string(self.app(host).join(".landfall/log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// What `/` answers on a host.
    fn greeting(&self, host: &str) -> Option<String> {
        let address = &self.testbed.host(host).ok()?.address;
        http_get_at(address, self.port, "/").map(|(_, body)| body)
    }

    /// The pid file of a host's listening sshd.
    fn sshd_pid_file(&self, host: &str) -> PathBuf {
        self.testbed.dir.join("hosts").join(host).join("sshd.pid")
    }

    /// Gives a host a variable, in the environment.
    fn set_host_var(&self, host: &str, key: &str, value: &str) {
        let header = format!("[hosts.{host}]\nroles = [\"web\"]\nvars = {{");
        self.ws.edit(
            "environments/testbed.toml",
            &header,
            &format!("{header} {key} = {value:?},"),
        );
    }
}

/// The events of one kind for one host.
fn of_host(out: &Outcome, kind: &str, host: &str) -> Vec<serde_json::Value> {
    out.events_of(kind)
        .into_iter()
        .filter(|e| e["host"] == host && e["artifact"] == "app")
        .collect()
}

/// The entries of a log that record `event`.
fn entries<'a>(log: &'a [serde_json::Value], event: &str) -> Vec<&'a serde_json::Value> {
    log.iter().filter(|e| e["event"] == event).collect()
}

/// Starts sshd again on a host whose listening sshd was killed, in the
/// host's own mount namespace (that of a process it still runs, `pid`),
/// as the test bed started it: then the test bed knows the host runs, and
/// stops it, with everything in it, when it is dropped.
fn restart_sshd(fleet: &Fleet, host: &str, pid: &str) {
    let dir = fleet.testbed.dir.join("hosts").join(host);
    let started = Command::new("nsenter")
        .arg(format!("--mount=/proc/{}/ns/mnt", pid.trim()))
        .arg("--")
        .arg(landfall_testbed::require("sshd"))
        .arg("-E")
        .arg(fleet.testbed.sshd_log(host))
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .status()
        .unwrap();
    assert!(started.success(), "sshd of `{host}` does not start again");
    wait_for(10, &format!("sshd of `{host}` to run again"), || {
        fleet.testbed.running().iter().any(|h| h == host)
    });
}

#[test]
fn a_release_that_kills_sshd_is_not_confirmed_and_its_host_switches_back_by_itself() {
    let fleet = Fleet::new(3, "5s");
    let hosts = fleet.hosts();
    let lost = &hosts[0];
    let first = fleet.deploy(&[]);
    first.assert_code(0);
    assert_eq!(first.events_of("confirmed").len(), 3, "{}", first.stdout);
    let before = fleet.current(lost).unwrap();

    // The new release of `lost` kills its listening sshd as it activates:
    // the connection landfall keeps goes on working, and the health check,
    // on the host, passes.
    let pid_file = fleet.sshd_pid_file(lost);
    fleet.set_host_var(lost, "sshd_pid", &pid_file.to_string_lossy());
    let out = fleet.deploy(&["--var", "greeting=howdy"]);
    let hello_pid = fs::read_to_string(fleet.app(lost).join("shared/run/hello.pid"));
    // Whatever the run said, the host is given its sshd back.
    let sshd_killed = fleet.testbed.running().iter().all(|h| h != lost);
    if sshd_killed {
        restart_sshd(&fleet, lost, hello_pid.as_deref().unwrap());
    }
    eprintln!("{}\n{}", out.stdout, out.stderr);
    assert!(sshd_killed, "the release did not kill the sshd of `{lost}`");
    out.assert_code(1);

    // The events: the host activated, was never confirmed (which was said
    // at the first try), and went back.
    assert_eq!(of_host(&out, "activated", lost).len(), 1);
    let warned: Vec<_> = out
        .events_of("warning")
        .into_iter()
        .filter(|w| {
            w["message"].as_str().unwrap().starts_with(&format!(
                "on `{lost}`: `app` could not be confirmed over a new connection yet"
            ))
        })
        .collect();
    assert_eq!(warned.len(), 1, "{}", out.stdout);
    assert!(of_host(&out, "confirmed", lost).is_empty());
    let back = of_host(&out, "rolled_back", lost);
    assert_eq!(back.len(), 1, "{}", out.stdout);
    assert_eq!(back[0]["to"], before.as_str());
    let summary = out.summary();
    let entry = summary["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == lost.as_str() && h["artifact"] == "app")
        .unwrap();
    assert_eq!(entry["status"], "rolled_back", "{entry}");
    let message = entry["message"].as_str().unwrap();
    assert!(
        message.starts_with("confirm: not confirmed within 5s: no new connection reached the host")
            && message.ends_with(&format!("the host switched back to {before} by itself")),
        "{message}"
    );
    // The others were confirmed, then switched back with the whole run
    // (`rollback-all`): the fleet is not left mixed.
    for host in &hosts[1..] {
        assert_eq!(of_host(&out, "confirmed", host).len(), 1, "{host}");
    }
    let stopped = out.events_of("rollout_stopped");
    assert_eq!(stopped.len(), 1, "{}", out.stdout);

    // On the host itself: back on the old release by itself, logged so.
    assert_eq!(fleet.current(lost).as_deref(), Some(before.as_str()));
    let log = fleet.log(lost);
    let rolled_back = entries(&log, "rolled_back");
    assert_eq!(rolled_back.len(), 1, "{log:?}");
    assert_eq!(rolled_back[0]["reason"], "not confirmed within 5s");
    assert_eq!(rolled_back[0]["release"], before.as_str());
    assert_eq!(rolled_back[0]["deploy"], summary["deploy"]);
    assert_eq!(
        entries(&log, "activated").len(),
        1,
        "the unconfirmed activation is not logged: {log:?}"
    );
    let record = fs::read_to_string(fleet.app(lost).join(".landfall/confirm.expired")).unwrap();
    assert!(record.contains("status=0\n"), "{record}");
    assert!(!fleet.app(lost).join(".landfall/lock").exists());
    for host in &hosts {
        assert_eq!(
            fleet.greeting(host),
            Some(format!("hello from {host}\n")),
            "{host}"
        );
    }
}

/// Twenty real deploys, alternating two releases (about 40 s on two
/// cores): a confirmation that fails now and then, or a watcher that acts
/// after one, shows only over many.
#[test]
fn deploys_confirmed_in_time_never_switch_back() {
    let fleet = Fleet::new(2, "5s");
    let runs = 20;
    for n in 0..runs {
        let greeting = if n % 2 == 0 { "hello" } else { "howdy" };
        let out = fleet.deploy(&["--var", &format!("greeting={greeting}")]);
        out.assert_code(0);
        assert_eq!(
            out.events_of("confirmed").len(),
            2,
            "run {n}: {}",
            out.stdout
        );
        assert!(
            out.events_of("rolled_back").is_empty(),
            "run {n}: {}",
            out.stdout
        );
    }
    for host in fleet.hosts() {
        let log = fleet.log(&host);
        assert_eq!(entries(&log, "activated").len(), runs, "{host}: {log:?}");
        assert!(entries(&log, "rolled_back").is_empty(), "{host}: {log:?}");
        let app = fleet.app(&host);
        assert!(
            !app.join(".landfall/confirm").exists(),
            "{host}: still armed"
        );
        assert!(!app.join(".landfall/confirm.expired").exists(), "{host}");
        assert_eq!(fleet.greeting(&host), Some(format!("howdy from {host}\n")));
    }
}

#[test]
fn a_host_switches_back_by_itself_when_landfall_is_killed_before_it_confirmed() {
    let fleet = Fleet::new(1, "10s");
    let host = fleet.hosts()[0].clone();
    fleet.deploy(&[]).assert_code(0);
    let before = fleet.current(&host).unwrap();

    // The activate hook says, through a fifo, that the activation is
    // under way; landfall is stopped then, so that it cannot confirm.
    let gate = fleet.testbed.srv(&host).join("hello/gate");
    let made = Command::new("mkfifo").arg(&gate).status().unwrap();
    assert!(made.success());
    let mut landfall = fleet.ws.spawn(&[
        "deploy",
        "testbed",
        "--message-format",
        "json",
        "--var",
        "greeting=howdy",
        "--var",
        "gate=/srv/hello/gate",
    ]);
    let opened = Command::new("timeout")
        .arg("60")
        .arg("cat")
        .arg(&gate)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&opened.stdout),
        "activated\n",
        "the activate hook did not say so within 60s"
    );
    let stopped = Command::new("kill")
        .args(["-STOP", "--", &format!("-{}", landfall.id())])
        .status()
        .unwrap();
    assert!(stopped.success());
    // The host finishes the activation by itself and arms its watcher;
    // then landfall is killed, before it ever confirmed.
    let record = fleet.app(&host).join(".landfall/confirm");
    wait_for(30, "the host to arm its watcher", || record.exists());
    let armed = fs::read_to_string(&record).unwrap();
    kill_group(&mut landfall);
    let release = armed
        .lines()
        .find_map(|l| l.strip_prefix("release="))
        .unwrap()
        .to_string();
    assert_ne!(release, before);
    assert_eq!(fleet.current(&host).as_deref(), Some(release.as_str()));

    // The host switches back by itself, within its window.
    let expired = fleet.app(&host).join(".landfall/confirm.expired");
    wait_for(30, "the host to switch back by itself", || {
        fs::read_to_string(&expired).is_ok_and(|r| r.contains("status="))
    });
    assert!(fs::read_to_string(&expired).unwrap().contains("status=0\n"));
    assert_eq!(fleet.current(&host).as_deref(), Some(before.as_str()));
    let log = fleet.log(&host);
    let rolled_back = entries(&log, "rolled_back");
    assert_eq!(rolled_back.len(), 1, "{log:?}");
    assert_eq!(rolled_back[0]["reason"], "not confirmed within 10s");
    assert_eq!(fleet.greeting(&host), Some(format!("hello from {host}\n")));
    // The lock of the run that was killed went with the switch back: the
    // next deploy needs no `--break-lock`.
    assert!(!fleet.app(&host).join(".landfall/lock").exists());
    let again = fleet.deploy(&[]);
    again.assert_code(0);
    let statuses = again.statuses();
    assert!(
        statuses.iter().all(|(_, status)| status == "unchanged"),
        "{statuses:?}"
    );
}
