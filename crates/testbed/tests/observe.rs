//! The servers beside the hosts, for the checks judged from outside them,
//! for real: Debian's Prometheus scraping `examples/hello`'s `/metrics`,
//! and Debian's haproxy in front of hello. Needs `prometheus`, `haproxy`
//! and cargo (to build the example).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use landfall_testbed::support::{Addresses, kill_group, wait_or_kill_group};
use landfall_testbed::{Haproxy, Prometheus, Sample};

/// How long any one wait of these tests may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// How often Prometheus scrapes.
const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

/// The requests sent to hello through haproxy.
const REQUESTS: u32 = 200;

/// The ports of hello, Prometheus and haproxy, each on an address of this
/// test's block: above Linux's range of ephemeral ports, and no package's
/// default, so that no outgoing connection and no service of the machine
/// listening on every address (Debian's `prometheus` on 9090, should it
/// run) holds them.
const HELLO_PORT: u16 = 65_001;
const PROMETHEUS_PORT: u16 = 65_002;
const HAPROXY_PORT: u16 = 65_003;

/// `examples/hello`'s binary, built as the integration tests build it (in
/// release, into `target/it-prebuilt/`), so that one build serves both.
fn hello_binary() -> PathBuf {
    landfall_testbed::support::build_hello(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// hello, serving from a configuration of the test's, killed on drop.
struct Hello {
    child: Child,
    dir: PathBuf,
}

impl Hello {
    /// Starts hello on `address` with `config` (the lines after `listen`),
    /// and waits until it says it listens.
    fn start(address: SocketAddr, config: &str) -> Hello {
        let dir = std::env::temp_dir().join(format!(
            "lftb-observe-{}-{}",
            std::process::id(),
            address.port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hello.toml");
        std::fs::write(
            &file,
            format!("listen = \"{address}\"\nname = \"web-1\"\n{config}"),
        )
        .unwrap();
        let mut child = Command::new(hello_binary())
            .args(["serve", "--config"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("hello starts");
        let stdout = child.stdout.take().unwrap();
        let hello = Hello { child, dir };
        // Its line is the handshake: it listens once it has said so.
        let (lines, said) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match said.recv_timeout(left) {
                Ok(line) if line.starts_with("hello: listening on ") => return hello,
                Ok(_) => {}
                Err(err) => panic!("hello did not say it listens on {address}: {err}"),
            }
        }
    }

    /// Stops hello with SIGTERM, as a service manager does, and waits for
    /// it to end.
    fn stop(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(
            wait_or_kill_group(&mut self.child, DEADLINE),
            "hello did not stop within {DEADLINE:?}"
        );
    }
}

impl Drop for Hello {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            kill_group(self.child.id());
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value of a query's only sample.
#[track_caller]
fn only(samples: &[Sample]) -> f64 {
    assert_eq!(samples.len(), 1, "{samples:?}");
    samples[0].value
}

#[test]
fn prometheus_sees_the_errors_of_a_service_behind_haproxy_which_answers_503_once_it_stops() {
    let addresses = Addresses::lease();
    let hello_address = SocketAddr::from((addresses.host(1), HELLO_PORT));
    let mut hello = Hello::start(hello_address, "errors = \"0.05\"\n");
    let prometheus = Prometheus::start(
        SocketAddr::from((addresses.host(2), PROMETHEUS_PORT)),
        &[hello_address.to_string()],
        SCRAPE_INTERVAL,
    )
    .unwrap_or_else(|err| panic!("{err:#}"));
    let haproxy = Haproxy::start(&[(
        SocketAddr::from((addresses.host(3), HAPROXY_PORT)),
        hello_address,
    )])
    .unwrap_or_else(|err| panic!("{err:#}"));
    let url = format!("http://{}/", haproxy.frontend(0));

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(DEADLINE))
        .http_status_as_error(false)
        .build()
        .into();
    let mut statuses = BTreeMap::new();
    for _ in 0..REQUESTS {
        let response = agent.get(&url).call().expect("haproxy answers");
        *statuses.entry(response.status().as_u16()).or_insert(0) += 1;
    }
    // Exactly every 20th request fails.
    assert_eq!(
        statuses,
        BTreeMap::from([(200, 190), (500, 10)]),
        "{}",
        haproxy.log()
    );

    // Prometheus sees them all once it has scraped after the last.
    let total = prometheus
        .wait_for(
            &format!("sum(hello_requests_total) >= {REQUESTS}"),
            DEADLINE,
        )
        .unwrap_or_else(|err| panic!("{err:#}"));
    assert!(
        (only(&total) - f64::from(REQUESTS)).abs() < 1e-9,
        "{total:?}"
    );
    let ratio = prometheus
        .query(r#"sum(hello_requests_total{code="500"}) / sum(hello_requests_total)"#)
        .unwrap_or_else(|err| panic!("{err:#}"));
    assert!((only(&ratio) - 0.05).abs() < 1e-9, "{ratio:?}");
    let count = prometheus
        .query("sum(hello_request_duration_seconds_count)")
        .unwrap_or_else(|err| panic!("{err:#}"));
    assert!(
        (only(&count) - f64::from(REQUESTS)).abs() < 1e-9,
        "{count:?}"
    );
    // A host is named by more than its address.
    let info = prometheus
        .query("hello_info")
        .unwrap_or_else(|err| panic!("{err:#}"));
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].labels["name"], "web-1");
    assert_eq!(info[0].labels["instance"], hello_address.to_string());

    // A service that is down behind the proxy: 503, at once.
    hello.stop();
    let started = Instant::now();
    let response = agent.get(&url).call().expect("haproxy answers");
    assert_eq!(response.status().as_u16(), 503, "{}", haproxy.log());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_wait_for_data_that_never_comes_fails_with_the_log_and_a_bad_query_at_once() {
    let addresses = Addresses::lease();
    // Nothing listens there: every scrape fails.
    let target = SocketAddr::from((addresses.host(1), HELLO_PORT));
    let prometheus = Prometheus::start(
        SocketAddr::from((addresses.host(2), PROMETHEUS_PORT)),
        &[target.to_string()],
        SCRAPE_INTERVAL,
    )
    .unwrap_or_else(|err| panic!("{err:#}"));
    assert_eq!(
        prometheus.url(),
        format!("http://{}:{PROMETHEUS_PORT}", addresses.host(2))
    );
    let started = Instant::now();
    let err = prometheus
        .wait_for("hello_requests_total", Duration::from_secs(2))
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("with no sample for 2s")
            && message.contains("Server is ready to receive web requests"),
        "{message}"
    );
    assert!(started.elapsed() < DEADLINE, "{:?}", started.elapsed());
    let started = Instant::now();
    let err = prometheus.query("sum(").unwrap_err();
    assert!(format!("{err:#}").contains("parse error"), "{err:#}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
