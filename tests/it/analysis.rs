//! Releases judged from outside the hosts, on a test bed of three real sshd
//! hosts: a real Prometheus scraping `examples/hello`'s `/metrics` stops a
//! canary that serves errors while its `/health` is fine, and a probe
//! through a real haproxy stops a release that answers on 127.0.0.1 but
//! not from outside.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use landfall_testbed::{Haproxy, Prometheus, Scoped};

use crate::support::{Outcome, Workspace, current_on, free_port, http_get_at};

const APP: &str = "hello/app";
const HOSTS: usize = 3;

/// Three hosts running hello by its hooks, on `port` of each host's own
/// address, with its config's `errors` from `vars.errors`, and `rollout`
/// (a canary, and the checks under test).
struct Bed {
    ws: Workspace,
    testbed: Scoped,
    port: u16,
}

impl Bed {
    fn new(rollout: &str) -> Bed {
        let testbed =
            Scoped::up(HOSTS).expect("the test bed starts (this needs root, sshd and util-linux)");
        let ws = Workspace::hello();
        let port = free_port();
        ws.use_testbed(&testbed, port);
        ws.edit(
            "deploy.toml",
            "health_timeout = \"10s\"",
            "health_timeout = \"3s\"",
        );
        ws.edit(
            "deploy.toml",
            "healthy = true\n",
            "healthy = true\nerrors = \"0\"\n",
        );
        let template = ws.read("templates/hello.toml.j2");
        ws.write(
            "templates/hello.toml.j2",
            &format!("{template}errors = \"{{{{ vars.errors }}}}\"\n"),
        );
        ws.roll_out_app(rollout);
        Bed { ws, testbed, port }
    }

    fn deploy(&self) -> Outcome {
        self.ws
            .run_within(180, &["deploy", "testbed", "--message-format", "json"])
    }

    fn hosts(&self) -> Vec<(String, String)> {
        self.testbed
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.address.clone()))
            .collect()
    }

    fn currents(&self) -> Vec<Option<String>> {
        self.hosts()
            .iter()
            .map(|(h, _)| self.ws_current(h))
            .collect()
    }

    fn ws_current(&self, host: &str) -> Option<String> {
        current_on(&self.testbed, host, APP)
    }

    /// Where hello listens on each host, as Prometheus scrapes it.
    fn targets(&self) -> Vec<String> {
        self.hosts()
            .iter()
            .map(|(_, address)| format!("{address}:{}", self.port))
            .collect()
    }
}

/// Requests to `/` on every host, paced, until dropped: the traffic whose
/// errors Prometheus sees. Refused connections (a restart) are skipped.
struct Traffic {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(targets: Vec<(String, u16)>) -> Traffic {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            // A round to every host each 10 ms (about 100 requests a
            // second on each), until told to stop or dropped.
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_millis(10))
            {
                for (address, port) in &targets {
                    let _ = http_get_at(address, *port, "/");
                }
            }
        });
        Traffic {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The error ratio of the hosts on the new release, over the last 5
/// seconds, as a rollout check. Prometheus knows the hosts by the address
/// it scrapes (the test bed's hosts are named in ssh's configuration), so
/// the query picks them by the name hello gives in `hello_info`.
const ERRORS_CHECK: &str = r#"
[[artifact.app.rollout.check]]
name = "errors"
prometheus = "PROMETHEUS"
query = '''
  sum(rate(hello_requests_total{code="500"}[5s])
      * on (instance) group_left hello_info{name=~"{{ new.hosts }}"})
/ sum(rate(hello_requests_total[5s])
      * on (instance) group_left hello_info{name=~"{{ new.hosts }}"})
'''
below = 0.01
timeout = "30s"
"#;

#[test]
fn a_canary_that_serves_errors_is_stopped_by_a_prometheus_check_and_not_without_it() {
    let bed = Bed::new("canary = 1\npause = \"12s\"");
    let prometheus = Prometheus::start(
        SocketAddr::new(bed.ws.spare_address(10).into(), free_port()),
        &bed.targets(),
        Duration::from_secs(1),
    )
    .expect("Prometheus starts (apt-get install prometheus)");
    let check = ERRORS_CHECK.replace("PROMETHEUS", &prometheus.url());
    bed.ws.edit(
        "deploy.toml",
        "pause = \"12s\"\n",
        &format!("pause = \"12s\"\n{check}"),
    );
    let _traffic = Traffic::start(
        bed.hosts()
            .into_iter()
            .map(|(_, address)| (address, bed.port))
            .collect(),
    );

    // A good release: the check waits for data on the canary, then passes,
    // and the rollout goes on.
    let first = bed.deploy();
    assert_eq!(
        first.code,
        0,
        "{}\n{}\nPrometheus scraped: {:?}\n{}",
        first.stdout,
        first.stderr,
        prometheus.query("up"),
        prometheus.log()
    );
    let passed: Vec<_> = first
        .events_of("check")
        .into_iter()
        .filter(|e| e["state"] == "passed")
        .collect();
    assert!(
        passed
            .iter()
            .any(|e| e["check"] == "errors" && e["kind"] == "prometheus"),
        "{}",
        first.stdout
    );
    let good = bed.currents();
    assert!(good.iter().all(Option::is_some));

    // The same service answering 5% of its requests with 500, while
    // `/health` is fine: the canary is switched back by the check, and no
    // other host is touched.
    bed.ws
        .edit("deploy.toml", "errors = \"0\"", "errors = \"0.05\"");
    let second = bed.deploy();
    second.assert_code(1);
    print_rollout(&second);
    let failed: Vec<_> = second
        .events_of("check")
        .into_iter()
        .filter(|e| e["state"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{}", second.stdout);
    let canary = bed.hosts()[0].0.clone();
    assert_eq!(failed[0]["hosts"], serde_json::json!([canary]));
    assert!(
        failed[0]["detail"]
            .as_str()
            .unwrap()
            .contains("not below 0.01"),
        "{}",
        failed[0]
    );
    assert_eq!(
        second.events_of("rolled_back").len(),
        1,
        "{}",
        second.stdout
    );
    let stopped = second.events_of("rollout_stopped");
    assert!(
        stopped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("a canary failed"),
        "{}",
        second.stdout
    );
    assert_eq!(bed.currents(), good, "every host is on the good release");
    let summary = second.summary();
    let canary_entry = summary["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == canary.as_str() && h["artifact"] == "app")
        .unwrap()
        .clone();
    assert!(
        canary_entry["message"]
            .as_str()
            .unwrap()
            .contains("the check `errors` failed"),
        "{canary_entry}"
    );

    // The same release without the check goes everywhere: the check is what
    // stopped it.
    let text = bed.ws.read("deploy.toml");
    bed.ws.write("deploy.toml", &text.replace(&check, "\n"));
    let third = bed.deploy();
    third.assert_code(0);
    for (host, _) in bed.hosts() {
        assert_eq!(
            third.release_of(&host, "app"),
            second.release_of(&host, "app"),
            "the release the check stopped is the one deployed on {host}"
        );
    }
    assert!(third.events_of("check").is_empty());
    assert!(
        bed.currents()
            .iter()
            .zip(&good)
            .all(|(now, before)| now != before)
    );
}

#[test]
fn a_release_unreachable_from_outside_is_stopped_by_a_probe_through_the_proxy() {
    let bed = Bed::new(
        "canary = 1\n\n[[artifact.app.rollout.check]]\nname = \"public\"\n\
         http = \"http://{{ host.vars.front }}/health\"\ntimeout = \"5s\"",
    );
    let routes: Vec<(SocketAddr, SocketAddr)> = bed
        .hosts()
        .iter()
        .enumerate()
        .map(|(n, (_, address))| {
            (
                SocketAddr::new(bed.ws.spare_address(20 + n).into(), free_port()),
                SocketAddr::new(address.parse().unwrap(), bed.port),
            )
        })
        .collect();
    let proxy = Haproxy::start(&routes).expect("haproxy starts (apt-get install haproxy)");
    // Each host is reached from outside through its own frontend.
    let env = bed.ws.read("environments/testbed.toml");
    let mut with_fronts = env.clone();
    for (n, (_, address)) in bed.hosts().iter().enumerate() {
        let vars = format!("vars = {{ bind = \"{address}\", port = {}", bed.port);
        with_fronts =
            with_fronts.replace(&vars, &format!("{vars}, front = \"{}\"", proxy.frontend(n)));
    }
    assert_ne!(with_fronts, env);
    bed.ws.write("environments/testbed.toml", &with_fronts);

    let first = bed.deploy();
    first.assert_code(0);
    let passed: Vec<_> = first
        .events_of("check")
        .into_iter()
        .filter(|e| e["state"] == "passed")
        .flat_map(|e| e["hosts"].as_array().unwrap().clone())
        .collect();
    assert_eq!(passed.len(), HOSTS, "{}", first.stdout);
    let good = bed.currents();

    // The new release listens on 127.0.0.1 only: its own health check, on
    // the host, passes; from outside, the port is closed.
    let text = bed.ws.read("environments/testbed.toml");
    let mut loopback = text.clone();
    for (_, address) in bed.hosts() {
        loopback = loopback.replace(&format!("bind = \"{address}\""), "bind = \"127.0.0.1\"");
    }
    bed.ws.write("environments/testbed.toml", &loopback);
    let second = bed.deploy();
    second.assert_code(1);
    print_rollout(&second);
    let canary = bed.hosts()[0].0.clone();
    let activated = second.events_of("activated");
    assert_eq!(
        activated.len(),
        1,
        "the canary's own checks pass: {}",
        second.stdout
    );
    assert_eq!(activated[0]["host"], canary.as_str());
    let failed: Vec<_> = second
        .events_of("check")
        .into_iter()
        .filter(|e| e["state"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{}", second.stdout);
    assert_eq!(failed[0]["check"], "public");
    assert_eq!(failed[0]["hosts"], serde_json::json!([canary]));
    let detail = failed[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("did not pass within 5s") && detail.contains("503"),
        "{detail}"
    );
    assert_eq!(bed.currents(), good);
    // Back on the good release, it answers from outside again.
    let front = proxy.frontend(0);
    assert_eq!(
        http_get_at(&front.ip().to_string(), front.port(), "/health").map(|(s, _)| s),
        Some(200)
    );
}

/// Prints a run's rollout events (`--nocapture` shows them): what stopped
/// it, in the words of the JSON stream.
fn print_rollout(outcome: &Outcome) {
    for line in outcome.stdout.lines().filter(|l| {
        [
            "batch",
            "activated",
            "check",
            "rolled_back",
            "rollout_stopped",
        ]
        .iter()
        .any(|e| l.starts_with(&format!("{{\"event\":\"{e}\"")))
    }) {
        eprintln!("{line}");
    }
}
