//! Pull mode, end to end: a real S3-compatible store (`s3s-fs`, on
//! 127.0.0.1) and a test bed of real sshd hosts, which fetch the objects
//! they lack from the store with curl and check them with sha256sum. The
//! bytes the deploying machine sends to the hosts' sshd are counted by an
//! nftables counter, as the benchmark counts them.

use std::fs;
use std::process::Command;
use std::time::Instant;

use landfall_testbed::{S3Server, Scoped};

use crate::support::{Outcome, Workspace, free_port};

const BUCKET: &str = "releases";
const PREFIX: &str = "hello";
const SITE: &str = "hello/site";

/// A workspace deploying to a fresh test bed, with a store beside it.
struct PullBed {
    ws: Workspace,
    testbed: Scoped,
    port: u16,
    s3: S3Server,
    _dir: tempfile::TempDir,
}

impl PullBed {
    /// `hosts` hosts; with `pull`, the environment names the store.
    fn new(hosts: usize, pull: bool) -> PullBed {
        let dir = tempfile::tempdir().unwrap();
        let s3 = S3Server::start(dir.path()).expect("s3s-fs starts");
        s3.bucket(BUCKET).unwrap();
        let testbed =
            Scoped::up(hosts).expect("the test bed starts (this needs root, sshd and util-linux)");
        let ws = Workspace::hello();
        let port = free_port();
        ws.use_testbed(&testbed, port);
        if pull {
            ws.edit(
                "environments/testbed.toml",
                "jobs = 8\n",
                &format!("jobs = 16\nstore = \"s3://{BUCKET}/{PREFIX}\"\n"),
            );
        } else {
            ws.edit("environments/testbed.toml", "jobs = 8\n", "jobs = 16\n");
        }
        PullBed {
            ws,
            testbed,
            port,
            s3,
            _dir: dir,
        }
    }

    fn deploy(&self) -> Outcome {
        self.deploy_with(&[])
    }

    fn deploy_with(&self, extra: &[&str]) -> Outcome {
        let mut args = vec!["deploy", "testbed", "--message-format", "json"];
        args.extend_from_slice(extra);
        let mut command = self.ws.command(&args);
        command.envs(self.s3.env());
        Outcome::from(command.output().unwrap())
    }

    fn hosts(&self) -> Vec<(String, String)> {
        self.testbed
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.address.clone()))
            .collect()
    }

    fn current(&self, host: &str, path: &str) -> Option<String> {
        crate::support::current_on(&self.testbed, host, path)
    }

    /// The object of the store with this content.
    fn object(&self, content: &[u8]) -> std::path::PathBuf {
        self.s3
            .root
            .join(BUCKET)
            .join(PREFIX)
            .join("objects")
            .join(sha256(content))
    }

    /// The `stored` event of a deploy: objects needed, and put.
    fn stored(out: &Outcome) -> (u64, u64) {
        let stored = out.events_of("stored");
        assert_eq!(stored.len(), 1, "{}", out.stdout);
        (
            stored[0]["objects"].as_u64().unwrap(),
            stored[0]["uploaded"].as_u64().unwrap(),
        )
    }
}

fn sha256(content: &[u8]) -> String {
    let out = landfall_testbed::support::output_with_input(
        &mut Command::new("sha256sum"),
        content,
        std::time::Duration::from_secs(30),
    )
    .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

fn serves_every_host(bed: &PullBed) {
    for (host, address) in bed.hosts() {
        crate::support::serves_hello(&host, &address, bed.port);
    }
}

#[test]
fn hosts_pull_from_the_store_each_object_is_put_once_and_a_corrupt_one_is_refused() {
    let bed = PullBed::new(3, true);
    bed.ws.git_commit("first");
    let site_page = "examples/hello/site/index.html";
    let original = bed.ws.read(site_page);

    let first = bed.deploy();
    first.assert_code(0);
    assert!(
        first.statuses().iter().all(|(_, s)| s == "deployed"),
        "{:?}",
        first.statuses()
    );
    let (objects, uploaded) = PullBed::stored(&first);
    assert!(objects > 0);
    assert_eq!(objects, uploaded, "an empty store gets every object");
    let schema = crate::json_events::schema();
    crate::json_events::check_run(&schema, "a deploy in pull mode", &first);
    serves_every_host(&bed);
    // Each host fetched what it lacked from the store: the binary at least.
    for pushed in first.events_of("pushed") {
        if pushed["artifact"] == "app" {
            assert!(pushed["bytes"].as_u64().unwrap() > 100_000, "{pushed}");
        }
    }
    // The objects are the files' contents, under their sha256.
    assert!(bed.object(original.as_bytes()).is_file());
    // The release ids are those of the build, as in push mode.
    let build = bed
        .ws
        .run(&["build", "testbed", "--message-format", "json"]);
    build.assert_code(0);
    let manifest = build.events_of("manifest").remove(0);
    let releases = manifest["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 6);
    for release in releases {
        assert_eq!(
            release["release"].as_str().unwrap(),
            first.release_of(
                release["host"].as_str().unwrap(),
                release["artifact"].as_str().unwrap()
            )
        );
    }

    // A new release whose artifact is unchanged puts nothing.
    bed.ws
        .edit("templates/hello.toml.j2", "greeting", "# pulled\ngreeting");
    bed.ws.git_commit("a rendered file changes");
    let rendered = bed.deploy();
    rendered.assert_code(0);
    let (objects, uploaded) = PullBed::stored(&rendered);
    assert!(objects > 0);
    assert_eq!(uploaded, 0, "{}", rendered.stdout);

    // A one-file change puts one object.
    bed.ws
        .write(site_page, &original.replace("hello site", "new site"));
    bed.ws.git_commit("one file changes");
    let changed = bed.deploy();
    changed.assert_code(0);
    assert_eq!(PullBed::stored(&changed).1, 1, "{}", changed.stdout);
    for pushed in changed.events_of("pushed") {
        // The host fetched that file alone; the rest it linked.
        assert_eq!(pushed["files"], 1, "{pushed}");
    }
    let site_release = changed.release_of("host1", "site");

    // A page the store gets with a deploy to one host, and that is
    // corrupted there before the others fetch it: every other host refuses
    // it, and keeps its release.
    let third = original.replace("hello site", "third site");
    bed.ws.write(site_page, &third);
    bed.ws.git_commit("a third page");
    let one = bed.deploy_with(&["--only", "host1"]);
    one.assert_code(0);
    assert_eq!(PullBed::stored(&one).1, 1, "{}", one.stdout);
    fs::write(bed.object(third.as_bytes()), "<h1>tampered</h1>\n").unwrap();
    let corrupt = bed.deploy();
    corrupt.assert_code(1);
    assert_eq!(PullBed::stored(&corrupt).1, 0, "{}", corrupt.stdout);
    let failed = corrupt.events_of("failed");
    assert_eq!(failed.len(), 2, "{}", corrupt.stdout);
    for failure in &failed {
        let message = failure["message"].as_str().unwrap();
        assert!(
            message.contains("sha256 mismatch: public/index.html"),
            "{message}"
        );
    }
    for host in ["host2", "host3"] {
        assert_eq!(bed.current(host, SITE), Some(site_release.clone()));
        let releases = fs::read_dir(bed.testbed.srv(host).join(SITE).join("releases")).unwrap();
        for entry in releases {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".partial"), "{host}: {name} was left");
        }
    }
}

/// The bytes a first deploy sends from this machine to the hosts, and its
/// wall time, in push mode or pull mode, and the ids of the `site`
/// releases (the `app` ones differ between test beds: each renders its
/// hosts' addresses and port).
///
/// The site carries 4 MiB of data besides, so that the release weighs
/// what a service's usually does (the example's binary alone is 0.7 MB):
/// the step scripts (some 60 KB per host a deploy, in either mode) would
/// otherwise be most of what is measured.
fn first_deploy(hosts: usize, pull: bool) -> (u64, f64, Vec<String>) {
    let bed = PullBed::new(hosts, pull);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let data: Vec<u8> = (0..(4 << 20) / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    fs::write(bed.ws.path("examples/hello/site/data.bin"), data).unwrap();
    bed.ws.git_commit("first");
    // Built before it is measured: only the transfer counts.
    bed.ws
        .run(&["build", "testbed", "--message-format", "json"])
        .assert_code(0);
    let counter = landfall_testbed::ByteCounter::install(&bed.testbed.hosts).unwrap();
    let started = Instant::now();
    let out = bed.deploy();
    let seconds = started.elapsed().as_secs_f64();
    out.assert_code(0);
    let sent = counter.sent().unwrap();
    serves_every_host(&bed);
    let ids = bed
        .hosts()
        .iter()
        .map(|(host, _)| out.release_of(host, "site"))
        .collect();
    (sent, seconds, ids)
}

/// On 4 hosts, to keep the suite quick; `LANDFALL_PULL_HOSTS=16` measures
/// the fleet of the benchmark (the figures are printed: run it with
/// `--nocapture`).
#[test]
fn pull_mode_sends_the_hosts_at_most_5_percent_of_what_push_mode_sends() {
    let hosts: usize = std::env::var("LANDFALL_PULL_HOSTS")
        .ok()
        .map_or(4, |n| n.parse().expect("LANDFALL_PULL_HOSTS is a number"));
    let (push_bytes, push_seconds, push_ids) = first_deploy(hosts, false);
    let (pull_bytes, pull_seconds, pull_ids) = first_deploy(hosts, true);
    println!(
        "first deploy to {hosts} hosts: push mode {push_bytes} bytes in {push_seconds:.2}s, \
         pull mode {pull_bytes} bytes in {pull_seconds:.2}s ({:.1}%)",
        f64::from(u32::try_from(pull_bytes * 1000 / push_bytes).unwrap_or(u32::MAX)) / 10.0
    );
    assert_eq!(push_ids, pull_ids, "pull mode makes the same releases");
    assert!(
        pull_bytes * 20 <= push_bytes,
        "pull mode sent {pull_bytes} bytes, push mode {push_bytes}"
    );
}

/// Missing credentials are refused before any host is contacted.
#[test]
fn a_store_without_credentials_is_refused_before_anything_changes() {
    let ws = Workspace::hello();
    ws.edit(
        "environments/dev.toml",
        "jobs = 4\n",
        "jobs = 4\nstore = \"s3://releases/hello\"\n",
    );
    let mut command = ws.command(&["deploy", "dev"]);
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
    ] {
        command.env_remove(var);
    }
    let out = Outcome::from(command.output().unwrap());
    out.assert_code(2);
    assert!(
        out.stderr.contains("no credentials") && out.stderr.contains("AWS_ACCESS_KEY_ID"),
        "{}",
        out.stderr
    );
}

/// `build --out s3://…` publishes a bundle to a store, and `--from s3://…`
/// deploys it: the hosts pull its objects from that store, though the
/// environment names none.
#[test]
fn a_bundle_published_to_a_store_is_deployed_from_it() {
    let bed = PullBed::new(2, false);
    bed.ws.git_commit("first");
    let url = format!("s3://{BUCKET}/bundles/first");
    let mut publish = bed.ws.command(&[
        "build",
        "testbed",
        "--out",
        &url,
        "--message-format",
        "json",
    ]);
    publish.envs(bed.s3.env());
    let built = Outcome::from(publish.output().unwrap());
    built.assert_code(0);
    let (objects, uploaded) = PullBed::stored(&built);
    assert!(objects > 0);
    assert_eq!(objects, uploaded);
    let published = bed.s3.keys(BUCKET, "bundles/first");
    assert!(
        published.contains(&"bundles/first/landfall-bundle.json".to_string()),
        "{published:?}"
    );
    let manifest = built.events_of("bundle").remove(0)["manifest"].clone();
    let schema = crate::json_events::schema();
    crate::json_events::check_run(&schema, "build --out s3://", &built);

    let deployed = bed.deploy_with(&["--from", &url]);
    deployed.assert_code(0);
    assert_eq!(PullBed::stored(&deployed).1, 0, "{}", deployed.stdout);
    serves_every_host(&bed);
    for release in manifest["releases"].as_array().unwrap() {
        assert_eq!(
            release["release"].as_str().unwrap(),
            deployed.release_of(
                release["host"].as_str().unwrap(),
                release["artifact"].as_str().unwrap()
            )
        );
    }
    for pushed in deployed.events_of("pushed") {
        assert!(pushed["files"].as_u64().unwrap() > 0, "{pushed}");
    }
}

impl PullBed {
    /// Runs `cargo deploy ARGS` with the store's credentials.
    fn run(&self, args: &[&str]) -> Outcome {
        let mut command = self.ws.command(args);
        command.envs(self.s3.env());
        Outcome::from(command.output().unwrap())
    }

    /// Publishes HEAD's bundle at `url`; returns the digest it printed.
    fn publish(&self, url: &str) -> String {
        let built = self.run(&["build", "testbed", "--out", url, "--message-format", "json"]);
        built.assert_code(0);
        let digest = built.events_of("bundle").remove(0)["digest"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            digest.starts_with("blake3:") && digest.len() == 7 + 64,
            "{digest}"
        );
        digest
    }

    /// The ssh sessions each host's sshd opened so far.
    fn sessions(&self) -> Vec<usize> {
        self.hosts()
            .iter()
            .map(|(host, _)| {
                fs::read_to_string(self.testbed.sshd_log(host))
                    .unwrap_or_default()
                    .matches("server_input_channel_open: ctype session")
                    .count()
            })
            .collect()
    }
}

/// The digest of the manifest published at `url` of the store, computed
/// here from its bytes.
fn published_digest(bed: &PullBed, prefix: &str) -> String {
    let bytes = fs::read(
        bed.s3
            .root
            .join(BUCKET)
            .join(prefix)
            .join("landfall-bundle.json"),
    )
    .unwrap();
    format!("blake3:{}", blake3::hash(&bytes).to_hex())
}

#[test]
fn a_bundle_replaced_in_the_store_is_refused_when_pinned() {
    let bed = PullBed::new(2, false);
    bed.ws.git_commit("first");
    let url = format!("s3://{BUCKET}/bundles/app");
    let first = bed.publish(&url);
    assert_eq!(first, published_digest(&bed, "bundles/app"));
    // Someone who can write the bucket puts another bundle in its place.
    bed.ws.edit(
        "deploy.toml",
        "greeting = \"hello\"",
        "greeting = \"owned\"",
    );
    bed.ws.git_commit("another");
    let second = bed.publish(&url);
    assert_ne!(first, second);
    let before = bed.sessions();
    let refused = bed.run(&["deploy", "testbed", "--from", &format!("{url}#{first}")]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains(&first) && refused.stderr.contains(&second),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("is not the one pinned"),
        "{}",
        refused.stderr
    );
    assert_eq!(bed.sessions(), before, "a host was contacted");
    for (host, _) in bed.hosts() {
        assert_eq!(bed.current(&host, SITE), None, "{host}");
    }
}

#[test]
fn a_pinned_bundle_is_deployed_and_its_digest_recorded() {
    let bed = PullBed::new(2, false);
    bed.ws.git_commit("first");
    let url = format!("s3://{BUCKET}/bundles/app");
    let digest = bed.publish(&url);
    let pinned = format!("{url}#{digest}");
    let deployed = bed.run(&["deploy", "testbed", "--from", &pinned]);
    deployed.assert_code(0);
    assert!(
        !deployed.stderr.contains("not pinned"),
        "{}",
        deployed.stderr
    );
    serves_every_host(&bed);
    let status = bed.run(&["status", "testbed", "--message-format", "json"]);
    status.assert_code(0);
    let recorded =
        status.events_of("status").remove(0)["hosts"][0]["releases"][0]["provenance"]["bundle"]
            .clone();
    assert_eq!(recorded, pinned.as_str(), "{}", status.stdout);
}

#[test]
fn an_unpinned_bundle_is_deployed_saying_so_with_its_digest() {
    let bed = PullBed::new(2, false);
    bed.ws.git_commit("first");
    let url = format!("s3://{BUCKET}/bundles/app");
    let digest = bed.publish(&url);
    let deployed = bed.run(&["deploy", "testbed", "--from", &url]);
    deployed.assert_code(0);
    assert!(
        deployed
            .stderr
            .contains(&format!("the bundle `{url}` is not pinned"))
            && deployed
                .stderr
                .contains(&format!("--from '{url}#{digest}'")),
        "{}",
        deployed.stderr
    );
}

#[test]
fn an_object_replaced_in_the_store_is_refused_before_any_host_is_contacted() {
    let bed = PullBed::new(2, false);
    let page = "examples/hello/site/index.html";
    let content = fs::read_to_string(bed.ws.path(page)).unwrap();
    bed.ws.git_commit("first");
    let url = format!("s3://{BUCKET}/bundles/app");
    let digest = bed.publish(&url);
    // The manifest is left as published, and pinned; an object is not.
    let object = bed
        .s3
        .root
        .join(BUCKET)
        .join("bundles/app/objects")
        .join(sha256(content.as_bytes()));
    assert!(object.is_file(), "{}", object.display());
    fs::write(&object, "<h1>tampered</h1>\n").unwrap();
    let before = bed.sessions();
    let refused = bed.run(&["deploy", "testbed", "--from", &format!("{url}#{digest}")]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("sha256 mismatch"),
        "{}",
        refused.stderr
    );
    assert_eq!(bed.sessions(), before, "a host was contacted");
}
