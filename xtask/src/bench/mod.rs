//! `cargo xtask bench`: landfall against a hand-written rsync+ssh baseline
//! on the real test bed, in the same run, alternating, each with its ssh
//! connections opened for the run (cold) and kept from an earlier one
//! (warm), and the targets landfall must meet. See docs/benchmarks.md.
//!
//! This module holds the words the benchmark's modules share (scenarios,
//! modes, sides, the results) and runs it: the test bed, the workspace
//! (`workspace.rs`), the byte counters and the masters (`masters.rs`) set
//! up, the rounds of each fleet and scenario run (`runner.rs`, which
//! measures with `measure.rs`), and the report written (`report.rs`).
//! `options.rs` reads the command line; `bench restarts`, what a deploy
//! that restarts the service costs its clients, is `restarts/`.

mod masters;
mod measure;
mod options;
mod report;
mod restarts;
mod runner;
mod workspace;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use landfall_testbed::Testbed;
use xshell::{Shell, cmd};

use landfall_testbed::ByteCounter;
use masters::Masters;
use measure::Sample;
use options::options;
use runner::Runner;
use workspace::Workspace;

const BASELINE_SH: &str = include_str!("baseline.sh");

/// How many hosts the baseline works on at once (`xargs -P`): as many as
/// landfall's `jobs` in the benchmark's environments.
pub(crate) const JOBS: usize = 8;

/// How long, in seconds, an idle master connection stays open, for
/// landfall (`ssh_persist`) and the baseline (`ControlPersist`) alike:
/// long enough that a master opened before a warm run is still there
/// when the run starts, whatever ran in between.
pub(crate) const PERSIST_SECONDS: u64 = 600;

/// The scenarios, in the order they run for each fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Scenario {
    First,
    Noop,
    OneFile,
    Binary,
}

impl Scenario {
    pub(crate) const ALL: [Scenario; 4] = [
        Scenario::First,
        Scenario::Noop,
        Scenario::OneFile,
        Scenario::Binary,
    ];

    pub(crate) fn title(self) -> &'static str {
        match self {
            Scenario::First => "first deploy",
            Scenario::Noop => "no-op redeploy",
            Scenario::OneFile => "one 4 KiB file changed",
            Scenario::Binary => "binary rebuilt (~10% changed)",
        }
    }
}

/// How the ssh connections stand when a measured run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Mode {
    /// None is open: the run opens its own (landfall with `--no-persist`,
    /// the baseline's masters closed before, and by, each run).
    Cold,
    /// A master per host is open, kept from an earlier run, and stays
    /// open after this one.
    Warm,
}

impl Mode {
    pub(crate) const ALL: [Mode; 2] = [Mode::Cold, Mode::Warm];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Cold => "cold",
            Mode::Warm => "warm",
        }
    }
}

/// Who ran: landfall, the baseline (for the no-op, the floor), or (for
/// the no-op) cargo's freshness check alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Side {
    Landfall,
    Baseline,
    Cargo,
}

/// Every sample, by fleet size, scenario, mode and side.
pub(crate) type Results = BTreeMap<(usize, Scenario, Mode, Side), Vec<Sample>>;

/// Landfall's phase timings (seconds) from its summaries, and `rest`, the
/// wall time outside them, by fleet, scenario and mode.
pub(crate) type Phases = BTreeMap<(usize, Scenario, Mode), Vec<BTreeMap<String, f64>>>;

/// `cargo xtask bench ARGS`: the deploy benchmark, or with `restarts`
/// first, the restarts benchmark.
pub(crate) fn bench(sh: &Shell, args: &[String]) -> Result<()> {
    if args.first().map(String::as_str) == Some("restarts") {
        let root = sh.current_dir();
        eprintln!("bench: building landfall (release)");
        cmd!(sh, "cargo build --quiet --release -p landfall-cli").run()?;
        return restarts::restarts(&root, &root.join("target/release/cargo-deploy"), &args[1..]);
    }
    let options = options(args)?;
    // Without `..`: landfall's kept sockets go under it, where the length
    // of a path counts.
    let root = fs::canonicalize(sh.current_dir())?;
    for tool in ["nft", "rsync", "ssh", "git", "xargs"] {
        ensure!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success()),
            "`{tool}` is not installed (apt-get install nftables rsync openssh-client git findutils)"
        );
    }
    eprintln!("bench: building landfall (release)");
    cmd!(sh, "cargo build --quiet --release -p landfall-cli").run()?;
    let landfall = root.join("target/release/cargo-deploy");

    let started = Instant::now();
    let dir = root.join("target/bench");
    fs::create_dir_all(&dir)?;
    let bed_dir = dir.join("testbed");
    if let Ok(old) = Testbed::open(&bed_dir) {
        old.down()?;
    }
    let largest = *options.fleets.last().expect("at least one fleet");
    eprintln!("bench: starting {largest} hosts");
    let bed = Bed(Testbed::up(&bed_dir, largest)?);
    eprintln!(
        "bench: {largest} hosts up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // What an earlier benchmark deployed to the hosts.
    let deployed: Vec<PathBuf> = bed
        .0
        .hosts
        .iter()
        .map(|h| bed.0.srv(&h.name).join("bench"))
        .collect();
    remove_all(&deployed)?;
    let ws = Workspace::generate(&dir.join("ws"), &bed.0.ssh_config(), &options.fleets)?;
    let counters = ByteCounter::install(&bed.0.hosts)?;
    let masters = Masters::new(&dir, &bed.0)?;

    let mut run = Runner::new(
        &bed.0,
        &ws,
        &landfall,
        &masters,
        &counters,
        dir.join("baseline.sh"),
    );
    fs::write(&run.script, BASELINE_SH)?;

    eprintln!("bench: first build of the workspace");
    run.landfall_build(largest)?;
    // Past the hash cache's racy window, then once more: from here on the
    // cache answers for every unchanged file, as it does for a user.
    std::thread::sleep(Duration::from_millis(2_100));
    run.landfall_build(largest)?;

    let hashing = report::hashing(&ws, &run.binary, options.runs)?;

    for &k in &options.fleets {
        let hosts: Vec<String> = (1..=k).map(|i| format!("host{i}")).collect();
        for scenario in Scenario::ALL {
            let scenario_started = Instant::now();
            let runs = options.runs_for(k);
            for r in 0..runs {
                eprintln!(
                    "bench: {k} host(s), {}, run {} of {runs}",
                    scenario.title(),
                    r + 1
                );
                run.round(k, &hosts, scenario, r)?;
            }
            // What the runs themselves took, and what preparing them did.
            let measured: f64 = run
                .results
                .iter()
                .filter(|((fleet, of, _, _), _)| *fleet == k && *of == scenario)
                .flat_map(|(_, samples)| samples)
                .map(|sample| sample.seconds)
                .sum();
            eprintln!(
                "bench: {k} host(s), {}: {:.0} s, {measured:.0} s of it measured",
                scenario.title(),
                scenario_started.elapsed().as_secs_f64()
            );
        }
    }

    let machine = report::machine(&root, &options.fleets, |k| options.runs_for(k));
    let text = report::render(
        &machine,
        &options.fleets,
        &run.results,
        &run.phases,
        &hashing,
    );
    print!("{text}");
    report::write(&dir.join("report.md"), &text, started)
}

/// The test bed, stopped when the benchmark ends, however it ends.
pub(crate) struct Bed(pub(crate) Testbed);

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = self.0.down();
    }
}

/// Runs a command of the benchmark's own (not measured) and returns how
/// it ended, whatever that was; it is killed past five minutes.
fn output(cmd: &mut Command) -> Result<measure::Finished> {
    measure::run(cmd, Duration::from_mins(5))
}

/// `work` done to every item, [`JOBS`] items at a time, on threads; the
/// results in the items' order, or the first error.
fn on_threads<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<R>>>> =
        Mutex::new(std::iter::repeat_with(|| None).take(items.len()).collect());
    std::thread::scope(|scope| {
        for _ in 0..JOBS.min(items.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = work(item);
                    results.lock().expect("not poisoned")[i] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .map(|result| result.expect("every item was worked on"))
        .collect()
}

/// Removes directories (and everything in them; one that is not there is
/// fine) on several threads: removing is mostly waiting for the disk (a
/// first deploy of 64 hosts leaves 256,000 files), and waits overlap.
fn remove_all(dirs: &[PathBuf]) -> Result<()> {
    on_threads(dirs, |dir| match fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("cannot remove `{}`", dir.display()))
        }
        _ => Ok(()),
    })?;
    Ok(())
}
