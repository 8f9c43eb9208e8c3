//! Promotion by a person, on a test bed of three real sshd hosts: with
//! `pause = "until promoted"`, a deploy stops after its canary with exit
//! status 3, its hosts locked; `promote` goes on from a fresh clone (a new
//! process, a new checkout: the state is the hosts'), `abort` from another
//! switches the canary back; any other deploy meanwhile is refused, and a
//! checkout that builds other releases cannot promote.

use std::fs;

use landfall_testbed::Scoped;

use crate::json_events::{check_run, schema};
use crate::support::{Outcome, Workspace, current_on, free_port, http_get_at};

const APP: &str = "hello/app";
const SITE: &str = "hello/site";

/// Three hosts; `app` rolls out one canary, then waits for promotion
/// before the other two.
struct Fleet {
    ws: Workspace,
    testbed: Scoped,
    port: u16,
    schema: jsonschema::Validator,
}

impl Fleet {
    fn new() -> Fleet {
        let testbed =
            Scoped::up(3).expect("the test bed starts (this needs root, sshd and util-linux)");
        let ws = Workspace::hello();
        let port = free_port();
        ws.use_testbed(&testbed, port);
        ws.roll_out_app("canary = 1\npause = \"until promoted\"");
        Fleet {
            ws,
            testbed,
            port,
            schema: schema(),
        }
    }

    fn hosts(&self) -> Vec<String> {
        self.testbed.hosts.iter().map(|h| h.name.clone()).collect()
    }

    /// `cargo deploy ARGS testbed --message-format json` in `ws`, its
    /// every line checked against the schema.
    fn run(&self, ws: &Workspace, args: &[&str]) -> Outcome {
        let mut words = args.to_vec();
        words.extend(["testbed", "--message-format", "json"]);
        let out = ws.run(&words);
        check_run(&self.schema, &words.join(" "), &out);
        out
    }

    fn deploy(&self) -> Outcome {
        self.run(&self.ws, &["deploy"])
    }

    /// A new greeting for `app`, committed.
    fn greet(&self, from: &str, to: &str) -> String {
        self.ws.edit(
            "deploy.toml",
            &format!("greeting = \"{from}\""),
            &format!("greeting = \"{to}\""),
        );
        self.ws.git_commit(to)
    }

    fn current(&self, host: &str) -> Option<String> {
        current_on(&self.testbed, host, APP)
    }

    fn currents(&self) -> Vec<Option<String>> {
        self.hosts().iter().map(|h| self.current(h)).collect()
    }

    /// The lock of each host's `app` and `site`, as the host holds it.
    fn locks(&self) -> Vec<Option<String>> {
        self.hosts()
            .iter()
            .flat_map(|h| [APP, SITE].map(|a| (h.clone(), a)))
            .map(|(h, a)| {
                fs::read_to_string(self.testbed.srv(&h).join(a).join(".landfall/lock")).ok()
            })
            .collect()
    }

    /// What `/` answers on a host.
    fn greeting(&self, host: &str) -> Option<String> {
        let address = &self.testbed.hosts.iter().find(|h| h.name == host)?.address;
        http_get_at(address, self.port, "/").map(|(_, body)| body)
    }

    #[track_caller]
    fn assert_greets(&self, hosts: &[String], word: &str) {
        for host in hosts {
            assert_eq!(
                self.greeting(host),
                Some(format!("{word} from {host}\n")),
                "{host}"
            );
        }
    }
}

/// The status of each host's `app` in a summary, in host order.
fn app_statuses(out: &Outcome) -> Vec<String> {
    out.statuses()
        .into_iter()
        .filter(|(target, _)| target.ends_with("/app"))
        .map(|(_, status)| status)
        .collect()
}

#[test]
fn a_rollout_waits_for_promotion_and_goes_on_from_a_fresh_clone_or_is_aborted_from_another() {
    let fleet = Fleet::new();
    let hosts = fleet.hosts();
    fleet.ws.git_commit("hello");

    // Even a first deploy waits after its canary; promoted, every host has
    // the first release.
    fleet.deploy().assert_code(3);
    fleet.run(&fleet.ws, &["promote"]).assert_code(0);
    fleet.assert_greets(&hosts, "hello");
    let v1 = fleet.currents();

    // The second waits after its canary: the canary is on it, the others
    // are not.
    let v2_commit = fleet.greet("hello", "howdy");
    let waits = fleet.deploy();
    waits.assert_code(3);
    assert_eq!(app_statuses(&waits), ["deployed", "waiting", "waiting"]);
    let summary = waits.summary();
    let deploy = summary["deploy"].as_str().unwrap().to_string();
    assert_eq!(
        summary["waiting"],
        serde_json::json!({"artifact": "app", "batch": 1, "batches": 2, "deploy": deploy})
    );
    assert_eq!(waits.events_of("rollout_waiting").len(), 1);
    let currents = fleet.currents();
    assert_ne!(currents[0], v1[0]);
    assert_eq!(currents[1..], v1[1..]);
    fleet.assert_greets(&hosts[..1], "howdy");
    fleet.assert_greets(&hosts[1..], "hello");

    // `status` shows it.
    let status = fleet.run(&fleet.ws, &["status"]);
    status.assert_code(0);
    let report: serde_json::Value =
        serde_json::from_str(status.stdout.lines().last().unwrap()).unwrap();
    for entry in report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["artifact"] == "app")
    {
        let lock = entry["lock"].as_str().unwrap();
        assert!(
            lock.starts_with(&format!(
                "waits for promotion: deploy {deploy}, batch 1 of 2, since "
            )),
            "{lock}"
        );
        assert_eq!(entry["waiting"]["deploy"], deploy.as_str());
        assert_eq!(entry["waiting"]["commit"], v2_commit.as_str());
    }

    // Another deploy is refused, names the deploy and both commands, and
    // changes nothing.
    let locks = fleet.locks();
    let refused = fleet.deploy();
    refused.assert_code(1);
    let failed = refused.events_of("failed");
    assert!(!failed.is_empty(), "{}", refused.stdout);
    for event in &failed {
        let message = event["message"].as_str().unwrap();
        for part in [
            &format!("a rollout of deploy {deploy} waits for promotion"),
            "`cargo deploy promote testbed` goes on",
            "`cargo deploy abort testbed` switches back",
        ] {
            assert!(message.contains(part), "no `{part}` in {message}");
        }
    }
    assert_eq!(fleet.currents(), currents);
    assert_eq!(fleet.locks(), locks);

    // Promoted from a fresh clone: the same deploy goes on, sending
    // nothing, and every host ends on the second release, unlocked.
    let clone = fleet.ws.clone_repo();
    let promoted = fleet.run(&clone, &["promote"]);
    promoted.assert_code(0);
    assert_eq!(app_statuses(&promoted), ["deployed"; 3]);
    assert_eq!(promoted.summary()["deploy"], deploy.as_str());
    assert!(
        promoted.events_of("pushed").is_empty(),
        "{}",
        promoted.stdout
    );
    let v2 = fleet.currents();
    assert_eq!(v2[0], currents[0], "the canary is not activated again");
    for (new, old) in v2.iter().zip(&v1) {
        assert_ne!(new, old);
    }
    fleet.assert_greets(&hosts, "howdy");
    assert!(
        fleet.locks().iter().all(Option::is_none),
        "{:?}",
        fleet.locks()
    );

    // A third waits, and is aborted from another clone: the canary goes
    // back, the others never left.
    fleet.greet("howdy", "hi");
    fleet.deploy().assert_code(3);
    assert_ne!(fleet.current(&hosts[0]), v2[0]);
    fleet.assert_greets(&hosts[..1], "hi");
    let other = fleet.ws.clone_repo();
    let aborted = fleet.run(&other, &["abort"]);
    aborted.assert_code(0);
    assert_eq!(
        app_statuses(&aborted),
        ["rolled_back", "skipped", "skipped"]
    );
    assert_eq!(fleet.currents(), v2);
    fleet.assert_greets(&hosts, "howdy");
    assert!(
        fleet.locks().iter().all(Option::is_none),
        "{:?}",
        fleet.locks()
    );
    let nothing = fleet.run(&other, &["abort"]);
    nothing.assert_code(2);
    assert!(
        nothing
            .stderr
            .contains("no rollout waits for promotion in `testbed`"),
        "{}",
        nothing.stderr
    );

    // And the next deploy goes as any: it waits after its canary.
    let again = fleet.deploy();
    again.assert_code(3);
    assert_eq!(app_statuses(&again), ["deployed", "waiting", "waiting"]);
    fleet.assert_greets(&hosts[..1], "hi");
}

#[test]
fn a_promotion_from_a_checkout_that_builds_other_releases_is_refused_and_changes_nothing() {
    let fleet = Fleet::new();
    let commit = fleet.ws.git_commit("hello");
    fleet.deploy().assert_code(3);
    let (currents, locks) = (fleet.currents(), fleet.locks());

    fleet.ws.edit(
        "deploy.toml",
        "greeting = \"hello\"",
        "greeting = \"howdy\"",
    );
    let refused = fleet.run(&fleet.ws, &["promote"]);
    refused.assert_code(2);
    refused.assert_says(&[
        "this checkout does not build what the rollout of deploy",
        &format!("check out {commit}"),
        "`cargo deploy abort testbed`",
    ]);
    assert_eq!(fleet.currents(), currents);
    assert_eq!(fleet.locks(), locks);
}
