//! `cargo xtask bench restarts`: what a deploy that restarts the service
//! costs its clients, stop-then-start against the overlapping hand-over
//! (`overlap`), under each way landfall runs a service, in one run. See
//! docs/benchmarks.md.
//!
//! The example (`examples/hello`, deployed by the repository's
//! `deploy.toml`) runs on three hosts, told to warm up 3 s before it
//! listens (`--var warmup=3s`, a line the benchmark adds to its copy of
//! the template, as the hand-over's tests do). Each deploy changes the
//! greeting, so that every service is activated. While each deploy runs,
//! every host is loaded by the clients of `clients.rs` (`/health` and
//! `/slow` back to back, a stream held open), which are under way before
//! it starts and stop after it ends. First come a quiet window of the same
//! load, with no deploy, and a few deploys that change nothing (what a
//! deploy's own work costs, without a restart). `figures.rs` counts what
//! was refused and cut and the latency the deploys added, and writes the
//! report. A deploy that fails on a host (the new release rolled back) is
//! counted, and the run goes on.
//!
//! The setups, each with hosts of its own (`fleet.rs`), so that none
//! inherits another's units or programs:
//!
//! - systemd with `listen` (socket activation), stop-then-start
//!   (`overlap = false`), and the hand-over (`notify = true`: ready is
//!   `READY=1`);
//! - supervisord without `listen`, stop-then-start, and with `listen`, the
//!   hand-over (each instance binds the address with `SO_REUSEPORT`);
//! - `--local`, each host an address of a block of loopback addresses the
//!   benchmark holds: stop-then-start, and the hand-over.
//!
//! A hand-over's deploy.toml has no `ready` (the old instance would answer
//! it on the shared address); stop-then-start keeps it.
//!
//! The test bed's hosts share the network namespace of the process that
//! starts them, by default the machine's. With `--migrate-req` the
//! benchmark runs in one of its own, where `net.ipv4.tcp_migrate_req` is 1:
//! an instance that stops, closing its own `SO_REUSEPORT` socket, then
//! hands the connections queued on it to the other instance's socket
//! rather than resetting them.

mod clients;
mod figures;
mod fleet;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use clients::{STREAM_LINES, TICK_MS, under_load};
use figures::Figures;
use fleet::Fleet;

/// How many deploys each setup is measured over, unless `--runs` says.
const DEPLOYS: usize = 10;

/// How many hosts run the service.
const HOSTS: usize = 3;

/// How long the service warms up before it listens.
const WARMUP: &str = "3s";

/// The quiet window: the same load, no deploy.
const QUIET: Duration = Duration::from_secs(30);

/// How many deploys that change nothing (and restart nothing) each setup
/// makes under load after its quiet window: what a deploy's own work adds
/// to the latency, without a restart.
const NOOP_DEPLOYS: usize = 3;

/// How long a deploy may take before it is killed and the benchmark fails.
const DEPLOY_DEADLINE: Duration = Duration::from_mins(5);

/// The line the benchmark adds to its copy of the template: the service's
/// warm-up, when the deploy gives one.
const WARMUP_LINE: &str =
    "{% if vars.warmup is defined %}warmup = \"{{ vars.warmup }}\"\n{% endif %}";

/// What the example's `deploy.toml` says of its service's manager, which
/// each setup replaces.
const MANAGER: &str = "manager = \"supervisor\"";

/// The example's readiness check, which a hand-over does without.
const READY: &str = "ready = \"http://{{ vars.bind }}:{{ vars.port }}/health\"\n";

/// Where a setup's hosts are.
#[derive(Debug, Clone, Copy)]
enum Hosts {
    /// A test bed whose hosts run systemd.
    Systemd,
    /// A test bed of plain hosts, each running supervisord.
    Supervisord,
    /// This machine (`--local`), each host on an address of its own.
    Local,
}

/// One way to run the service.
struct Setup {
    title: &'static str,
    hosts: Hosts,
    /// The lines replacing [`MANAGER`] in `deploy.toml`.
    service: &'static str,
    /// Whether it hands over (else it stops, then starts).
    handover: bool,
}

const SETUPS: [Setup; 6] = [
    Setup {
        title: "systemd + listen, stop-then-start",
        hosts: Hosts::Systemd,
        service: "manager = \"systemd\"\nlisten = [\"{{ vars.bind }}:{{ vars.port }}\"]\noverlap = false",
        handover: false,
    },
    Setup {
        title: "systemd + listen + notify, hand-over",
        hosts: Hosts::Systemd,
        service: "manager = \"systemd\"\nlisten = [\"{{ vars.bind }}:{{ vars.port }}\"]\nnotify = true",
        handover: true,
    },
    Setup {
        title: "supervisord, stop-then-start",
        hosts: Hosts::Supervisord,
        service: MANAGER,
        handover: false,
    },
    Setup {
        title: "supervisord + listen, hand-over",
        hosts: Hosts::Supervisord,
        service: "manager = \"supervisor\"\nlisten = [\"{{ vars.bind }}:{{ vars.port }}\"]",
        handover: true,
    },
    Setup {
        title: "--local + listen, stop-then-start",
        hosts: Hosts::Local,
        service: "manager = \"systemd\"\nlisten = [\"{{ vars.bind }}:{{ vars.port }}\"]\noverlap = false",
        handover: false,
    },
    Setup {
        title: "--local + listen + notify, hand-over",
        hosts: Hosts::Local,
        service: "manager = \"systemd\"\nlisten = [\"{{ vars.bind }}:{{ vars.port }}\"]\nnotify = true",
        handover: true,
    },
];

/// `cargo xtask bench restarts [--runs N] [--only WORD] [--migrate-req]`:
/// every setup (or those whose title contains WORD), `N` deploys each (10
/// unless told), with `landfall` (a release build); with `--migrate-req`,
/// in a network namespace of its own (see [`in_own_network_namespace`]).
pub(crate) fn restarts(root: &Path, landfall: &Path, args: &[String]) -> Result<()> {
    let Options {
        deploys,
        only,
        migrate_req,
    } = options(args)?;
    if migrate_req {
        return in_own_network_namespace(args);
    }
    let started = Instant::now();
    let dir = root.join("target/bench/restarts");
    let ws = dir.join("ws");
    workspace(root, &ws)?;
    let mut measured = Vec::new();
    for setup in SETUPS
        .iter()
        .filter(|s| only.is_none_or(|word| s.title.contains(word)))
    {
        let setup_started = Instant::now();
        measured.push(measure(&dir, &ws, landfall, setup, deploys)?);
        eprintln!(
            "bench: restarts, {}: {:.0} s",
            setup.title,
            setup_started.elapsed().as_secs_f64()
        );
    }
    let text = figures::render(&heading(root, deploys), &measured);
    print!("{text}");
    let own_namespace = std::env::var_os(OWN_NAMESPACE).is_some();
    let path = dir.join(if own_namespace {
        "report-migrate-req.md"
    } else {
        "report.md"
    });
    super::report::write(&path, &text, started)
}

/// What the command line asks for.
struct Options<'a> {
    deploys: usize,
    /// Only the setups whose title contains this.
    only: Option<&'a str>,
    /// Whether to run in a network namespace of the benchmark's own, where
    /// `net.ipv4.tcp_migrate_req` is 1.
    migrate_req: bool,
}

fn options(args: &[String]) -> Result<Options<'_>> {
    let mut options = Options {
        deploys: DEPLOYS,
        only: None,
        migrate_req: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--migrate-req" {
            options.migrate_req = true;
            continue;
        }
        let value = args
            .next()
            .with_context(|| format!("`{arg}` needs a value"))?;
        match arg.as_str() {
            "--runs" => {
                options.deploys = value.parse().context("--runs takes a number")?;
                ensure!(options.deploys >= 1, "--runs must be at least 1");
            }
            "--only" => options.only = Some(value.as_str()),
            _ => bail!(
                "`bench restarts` takes `--runs N` (deploys per setup), `--only WORD` (the \
                 setups whose title contains it) and `--migrate-req`, and nothing else"
            ),
        }
    }
    ensure!(
        options
            .only
            .is_none_or(|word| SETUPS.iter().any(|s| s.title.contains(word))),
        "no setup's title contains `{}`",
        options.only.unwrap_or_default()
    );
    Ok(options)
}

/// Runs this benchmark again, with `args` but `--migrate-req`, in a network
/// namespace of its own: its loopback interface up, and
/// `net.ipv4.tcp_migrate_req` set to 1 there, so that the connections
/// queued on a listening socket that closes move to another socket of its
/// `SO_REUSEPORT` group rather than being reset. The test bed's hosts
/// share the network namespace of the process that starts them, so they
/// are in that one too; the machine's own setting is left as it is.
fn in_own_network_namespace(args: &[String]) -> Result<()> {
    let xtask = std::env::current_exe()?;
    let status = Command::new("unshare")
        .args(["--net", "--", "sh", "-c"])
        .arg(
            "ip link set lo up && sysctl -qw net.ipv4.tcp_migrate_req=1 && \
             exec \"$@\"",
        )
        .arg("sh")
        .arg(xtask)
        .args(["bench", "restarts"])
        .args(args.iter().filter(|a| *a != "--migrate-req"))
        .env(OWN_NAMESPACE, "1")
        .status()
        .context("cannot run `unshare` (util-linux)")?;
    ensure!(
        status.success(),
        "the benchmark in a network namespace of its own failed ({status})"
    );
    Ok(())
}

/// Set in the environment of the benchmark run again by
/// [`in_own_network_namespace`], whose report goes beside the other.
const OWN_NAMESPACE: &str = "XTASK_BENCH_RESTARTS_OWN_NETNS";

/// Measures one setup: its hosts started, the service deployed, the quiet
/// window, then `deploys` deploys under load.
fn measure(
    dir: &Path,
    ws: &Path,
    landfall: &Path,
    setup: &Setup,
    deploys: usize,
) -> Result<Figures> {
    eprintln!("bench: restarts, {}: starting {HOSTS} hosts", setup.title);
    // landfall's state of the setup before (what it knows of the hosts,
    // its connections) goes; the workspace's build stays.
    remove(&ws.join("target/landfall"))?;
    let fleet = Fleet::start(dir, ws, setup.hosts)?;
    let mut deploy_toml = fs::read_to_string(ws.join("deploy.toml.orig"))?;
    ensure!(
        deploy_toml.contains(MANAGER) && deploy_toml.contains(READY),
        "the example's deploy.toml no longer says `{MANAGER}` and `{}`",
        READY.trim_end()
    );
    deploy_toml = deploy_toml.replace(MANAGER, setup.service);
    if setup.handover {
        deploy_toml = deploy_toml.replace(READY, "");
    }
    fs::write(ws.join("deploy.toml"), deploy_toml)?;
    fs::write(ws.join("environments/bench.toml"), &fleet.environment)?;
    let local = matches!(setup.hosts, Hosts::Local);
    eprintln!("bench: restarts, {}: first deploy", setup.title);
    deploy_done(landfall, ws, local, "first")?;

    let epoch = Instant::now();
    let mut figures = Figures::new(setup.title, setup.handover);
    eprintln!(
        "bench: restarts, {}: quiet window of {} s",
        setup.title,
        QUIET.as_secs()
    );
    let ((), seen) = under_load(&fleet.addresses, epoch, || {
        std::thread::sleep(QUIET);
        Ok(())
    })?;
    figures.add_quiet(&seen);
    eprintln!(
        "bench: restarts, {}: {NOOP_DEPLOYS} deploys that change nothing",
        setup.title
    );
    for _ in 0..NOOP_DEPLOYS {
        // The first deploy's variables again: the same release, which is
        // not activated again.
        let (_, seen) = under_load(&fleet.addresses, epoch, || {
            deploy_done(landfall, ws, local, "first")
        })?;
        figures.add_noop(&seen)?;
    }
    for n in 1..=deploys {
        let ((seconds, deployed), seen) = under_load(&fleet.addresses, epoch, || {
            deploy(landfall, ws, local, &format!("deploy{n}"))
        })?;
        let outcome = match &deployed {
            Deployed::Done => String::new(),
            Deployed::Failed(said) => format!(", failed: {said}"),
        };
        eprintln!(
            "bench: restarts, {}: deploy {n} of {deploys} in {seconds:.1} s{outcome}",
            setup.title
        );
        if let Deployed::Failed(said) = deployed {
            figures.failed.push(said);
        }
        figures.add_deploy(&seen, seconds);
    }
    figures.sockets = tcp_sockets();
    fleet.stop()?;
    Ok(figures)
}

/// How a deploy ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Deployed {
    /// Every host is on the new release.
    Done,
    /// It failed on a host (landfall's exit status 1): what its summary
    /// says of each host that is not on the new release.
    Failed(String),
}

/// Deploys the workspace in `ws` to environment `bench` (on this machine
/// if `local`) with greeting `greeting`; how long it took, in seconds, and
/// how it ended. A deploy that fails otherwise than on a host (a usage or
/// configuration error, a deadline passed) is an error.
fn deploy(landfall: &Path, ws: &Path, local: bool, greeting: &str) -> Result<(f64, Deployed)> {
    let mut cmd = Command::new(landfall);
    cmd.args(["deploy", "bench", "--message-format", "json", "--var"])
        .arg(format!("greeting={greeting}"))
        .arg("--var")
        .arg(format!("warmup={WARMUP}"))
        .current_dir(ws)
        .env_remove("CARGO_TARGET_DIR");
    if local {
        cmd.arg("--local");
    }
    let finished = super::measure::run(&mut cmd, DEPLOY_DEADLINE)?;
    if finished.status.success() {
        return Ok((finished.seconds, Deployed::Done));
    }
    let failed_on_hosts = finished.status.code() == Some(1);
    let summary = finished
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["event"] == "summary")
        .filter(|_| failed_on_hosts);
    let Some(summary) = summary else {
        bail!(
            "the deploy `{greeting}` failed ({}):\n{}\n{}",
            finished.status,
            finished.stdout.trim(),
            finished.stderr.trim()
        );
    };
    let mut said: Vec<String> = summary["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| !matches!(h["status"].as_str(), Some("deployed" | "unchanged")))
        .map(|h| {
            format!(
                "{}/{} {}: {}",
                h["host"].as_str().unwrap_or("?"),
                h["artifact"].as_str().unwrap_or("?"),
                h["status"].as_str().unwrap_or("?"),
                h["message"].as_str().unwrap_or("").trim()
            )
        })
        .collect();
    said.dedup();
    Ok((finished.seconds, Deployed::Failed(said.join("; "))))
}

/// Deploys as [`deploy`] does, and fails if the deploy failed on a host.
fn deploy_done(landfall: &Path, ws: &Path, local: bool, greeting: &str) -> Result<f64> {
    match deploy(landfall, ws, local, greeting)? {
        (seconds, Deployed::Done) => Ok(seconds),
        (_, Deployed::Failed(said)) => bail!("the deploy `{greeting}` failed: {said}"),
    }
}

/// How many TCP sockets this process's network namespace has (its
/// `/proc/net/tcp` and `tcp6`, every state), what a reader of those files
/// reads through.
fn tcp_sockets() -> usize {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .map(|file| {
            fs::read_to_string(file).map_or(0, |text| text.lines().count().saturating_sub(1))
        })
        .sum()
}

/// Removes a directory and everything in it; one that is not there is
/// fine.
fn remove(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("cannot remove `{}`", dir.display()))
        }
        _ => Ok(()),
    }
}

/// A workspace of the example under `ws`: its sources, the repository's
/// templates (the service's, with the warm-up line added) and
/// `deploy.toml` (kept as `deploy.toml.orig`, which each setup rewrites).
/// Kept between runs, so that the example is built once.
fn workspace(root: &Path, ws: &Path) -> Result<()> {
    for sub in [
        "examples/hello/src",
        "examples/hello/static",
        "examples/hello/site",
        "templates",
    ] {
        let to = ws.join(sub);
        remove(&to)?;
        copy_dir(&root.join(sub), &to)?;
    }
    let template = ws.join("templates/hello.toml.j2");
    let text = fs::read_to_string(&template)?;
    fs::write(&template, format!("{text}{WARMUP_LINE}"))?;
    fs::copy(
        root.join("examples/hello/Cargo.toml"),
        ws.join("examples/hello/Cargo.toml"),
    )?;
    fs::write(
        ws.join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"examples/hello\"]\n\n\
         [workspace.package]\nedition = \"2024\"\n\n[workspace.lints.rust]\nunsafe_code = \"forbid\"\n",
    )?;
    fs::copy(root.join("Cargo.lock"), ws.join("Cargo.lock"))?;
    // The repository's lock, with what hello does not use pruned (offline:
    // no version changes).
    let status = Command::new("cargo")
        .args(["update", "--workspace", "--offline", "--quiet"])
        .current_dir(ws)
        .status()?;
    ensure!(status.success(), "cannot prune Cargo.lock for the example");
    fs::copy(root.join("deploy.toml"), ws.join("deploy.toml.orig"))?;
    fs::create_dir_all(ws.join("environments"))?;
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        let dest: PathBuf = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// What the report says of the run: the commit, the machine and how
/// everything was measured.
fn heading(root: &Path, deploys: usize) -> String {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let (cpu, cores) = super::report::processor();
    let migrate = fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req")
        .map_or_else(|_| "unknown".into(), |v| v.trim().to_string());
    let namespace = if std::env::var_os(OWN_NAMESPACE).is_some() {
        "in a network namespace of the benchmark's own"
    } else {
        "in the machine's network namespace, which the test bed's hosts share"
    };
    format!(
        "Commit {commit}, {cpu}, {cores} cores; {namespace}, where \
         `net.ipv4.tcp_migrate_req` = {migrate}. {HOSTS} hosts; per setup, a quiet window of \
         {quiet} s, {NOOP_DEPLOYS} deploys that change nothing, then {deploys} deploys, each \
         with a new greeting (every service restarts) of a service that warms up {WARMUP} \
         before it listens. Per host, under way before each deploy and stopped after it: \
         `GET /health` back to back, `GET /slow?ms={slow}` back to back, and a stream held \
         open at all times, one `GET /stream?ms={TICK_MS}&lines={STREAM_LINES}` after the \
         other. Requests: those started during a deploy. Refused: not accepted. Cut: \
         accepted, but not answered whole. p99: of the `/health` answers, over every host \
         and deploy, corrected for the requests the client did not send while it waited \
         (an answer that took L also counts as L - m, L - 2m, …, m being the quiet window's \
         median), less that of the quiet window.",
        quiet = QUIET.as_secs(),
        slow = clients::SLOW_MS,
    )
}
