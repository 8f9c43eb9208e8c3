//! `cargo xtask bench restarts`: how many requests a deploy that restarts
//! the service loses. The example (`examples/hello`, deployed by the
//! repository's `deploy.toml`) runs on three test-bed hosts; a client asks
//! one host after the other for `/health`, one request every 50 ms, while
//! a deploy with a changed greeting restarts every service; a second client
//! asks back to back, as fast as answers come, to see short gaps too. Each
//! way to run the service is measured in the same run:
//!
//! - supervisord, every host restarted at once;
//! - supervisord, one host at a time (`max_parallel = 1`, a rolling
//!   restart);
//! - systemd with `listen`: the sockets stay with systemd (socket
//!   activation), every host at once.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use landfall_testbed::{Init, Testbed};

use super::Bed;

/// How often the client asks.
const EVERY: Duration = Duration::from_millis(50);

/// One way to run the service.
struct Setup {
    title: &'static str,
    init: Init,
    /// Lines replacing `manager = "supervisor"` in `deploy.toml`.
    manager: &'static str,
    max_parallel: Option<u32>,
}

const SETUPS: [Setup; 3] = [
    Setup {
        title: "supervisord, all hosts at once",
        init: Init::Plain,
        manager: "manager = \"supervisor\"",
        max_parallel: None,
    },
    Setup {
        title: "supervisord, rolling (max_parallel = 1)",
        init: Init::Plain,
        manager: "manager = \"supervisor\"",
        max_parallel: Some(1),
    },
    Setup {
        title: "systemd, socket activation (listen)",
        init: Init::Systemd,
        manager: "manager = \"systemd\"\nlisten = [\"{{ vars.bind }}:{{ vars.port }}\"]\noverlap = false",
        max_parallel: None,
    },
];

/// What the client saw during one deploy.
#[derive(Debug, Clone, Copy, Default)]
struct Probe {
    answered: u32,
    failed: u32,
    seconds: f64,
}

pub(crate) fn restarts(root: &Path, landfall: &Path, runs: usize) -> Result<()> {
    let dir = root.join("target/bench/restarts");
    let mut rows = Vec::new();
    for setup in &SETUPS {
        eprintln!("bench: restarts, {}", setup.title);
        let bed_dir = dir.join("testbed");
        if let Ok(old) = Testbed::open(&bed_dir) {
            old.down()?;
        }
        let _ = fs::remove_dir_all(&bed_dir);
        let bed = Bed(Testbed::up_with(&bed_dir, 3, setup.init)?);
        if matches!(setup.init, Init::Plain) {
            for host in &bed.0.hosts {
                bed.0.start_supervisord(&host.name)?;
            }
        }
        let ws = dir.join("ws");
        let port = workspace(root, &ws, &bed.0, setup)?;
        let deploy = |greeting: &str| -> Result<()> {
            let status = Command::new(landfall)
                .args(["deploy", "bench", "-q", "--var"])
                .arg(format!("greeting={greeting}"))
                .current_dir(&ws)
                .env_remove("CARGO_TARGET_DIR")
                .status()?;
            ensure!(status.success(), "the deploy failed ({status})");
            Ok(())
        };
        deploy("first")?;
        let mut probes = Vec::new();
        for run in 0..runs {
            let stop = AtomicBool::new(false);
            let (probe, busy, deployed) = std::thread::scope(|scope| {
                let client_every = scope.spawn(|| client(&bed.0, port, &stop, EVERY));
                let client_busy = scope.spawn(|| client(&bed.0, port, &stop, Duration::ZERO));
                let deployed = deploy(&format!("run{run}"));
                stop.store(true, Ordering::SeqCst);
                (
                    client_every.join().expect("the client does not panic"),
                    client_busy.join().expect("the client does not panic"),
                    deployed,
                )
            });
            deployed?;
            probes.push((probe, busy));
        }
        rows.push((setup.title, probes));
    }
    let text = render(&rows, runs);
    print!("{text}");
    let path = dir.join("report.md");
    fs::write(&path, &text)?;
    eprintln!("bench: the report is in {}", path.display());
    Ok(())
}

/// Asks one host after the other for `/health` every `every` (zero: back
/// to back) until `stop`; a request refused, reset or answered with
/// anything but 200 counts as failed.
fn client(bed: &Testbed, port: u16, stop: &AtomicBool, every: Duration) -> Probe {
    let started = Instant::now();
    let mut probe = Probe::default();
    let mut next = Instant::now();
    let mut hosts = bed.hosts.iter().cycle();
    while !stop.load(Ordering::SeqCst) {
        let host = hosts.next().expect("the test bed has hosts");
        if health(&host.address, port) {
            probe.answered += 1;
        } else {
            probe.failed += 1;
        }
        next += every;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    probe.seconds = started.elapsed().as_secs_f64();
    probe
}

fn health(address: &str, port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(addr) = format!("{address}:{port}").parse() else {
        return false;
    };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    stream.read_to_string(&mut answer).is_ok() && answer.starts_with("HTTP/1.1 200")
}

/// A workspace of the example under `ws`, deploying to the test bed as
/// environment `bench` the way `setup` runs the service. Returns the port
/// hello listens on.
fn workspace(root: &Path, ws: &Path, bed: &Testbed, setup: &Setup) -> Result<u16> {
    let _ = fs::remove_dir_all(ws);
    for sub in [
        "examples/hello/src",
        "examples/hello/static",
        "examples/hello/site",
        "templates",
    ] {
        copy_dir(&root.join(sub), &ws.join(sub))?;
    }
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
    let mut deploy = fs::read_to_string(root.join("deploy.toml"))?
        .replace("manager = \"supervisor\"", setup.manager);
    if let Some(n) = setup.max_parallel {
        deploy = deploy.replace(
            "after = [\"site\"]",
            &format!("after = [\"site\"]\nmax_parallel = {n}"),
        );
    }
    fs::write(ws.join("deploy.toml"), deploy)?;
    let port = std::net::TcpListener::bind("0.0.0.0:0")?
        .local_addr()?
        .port();
    let mut env = format!(
        "[environment]\nssh_config = \"{}\"\njobs = 8\n",
        bed.ssh_config().display()
    );
    for host in &bed.hosts {
        let _ = write!(
            env,
            "\n[hosts.{}]\nroles = [\"web\"]\nvars = {{ bind = \"{}\", port = {port} }}\n",
            host.name, host.address
        );
    }
    fs::create_dir_all(ws.join("environments"))?;
    fs::write(ws.join("environments/bench.toml"), env)?;
    Ok(port)
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

fn render(rows: &[(&str, Vec<(Probe, Probe)>)], runs: usize) -> String {
    let mut text = format!(
        "## Requests lost while a deploy restarts the service\n\n\
         3 hosts, a deploy that changes the greeting (every service restarts), {runs} run(s) \
         each. One client sends `GET /health` every 50 ms, to each host in turn; another \
         sends them back to back. Failed: refused, reset or not 200.\n\n\
         | service | every 50 ms: failed / requests, per run | back to back: failed / requests, \
         per run | deploy (s, median) |\n|---|---|---|---|\n"
    );
    for (title, probes) in rows {
        let runs = |pick: fn(&(Probe, Probe)) -> Probe| {
            probes
                .iter()
                .map(|p| {
                    let p = pick(p);
                    format!("{}/{}", p.failed, p.answered + p.failed)
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut seconds: Vec<f64> = probes.iter().map(|p| p.0.seconds).collect();
        seconds.sort_by(f64::total_cmp);
        let _ = writeln!(
            text,
            "| {title} | {} | {} | {:.2} |",
            runs(|p| p.0),
            runs(|p| p.1),
            seconds[seconds.len() / 2],
        );
    }
    text
}
