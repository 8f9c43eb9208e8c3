//! `cargo xtask bench`: landfall against a hand-written rsync+ssh baseline
//! on the real test bed, in the same run, alternating, each with its ssh
//! connections opened for the run (cold) and kept from an earlier one
//! (warm), and the targets landfall must meet. See docs/benchmarks.md.

mod measure;
mod report;
mod restarts;
mod workspace;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use landfall_testbed::Testbed;
use xshell::{Shell, cmd};

use landfall_testbed::ByteCounter;
use measure::{Sample, measure};
use workspace::{BASELINE_PATH, HOOK, LANDFALL_PATH, Workspace};

const BASELINE_SH: &str = include_str!("baseline.sh");

/// The largest fleet measured `--runs` times; larger ones are measured
/// `--large-runs` times, so that the whole benchmark stays within about
/// 40 minutes on two cores.
const SMALL_FLEET: usize = 8;

/// How many hosts the baseline works on at once (`xargs -P`): as many as
/// landfall's `jobs` in the benchmark's environments.
pub(crate) const JOBS: usize = 8;

/// How long, in seconds, an idle master connection stays open, for
/// landfall (`ssh_persist`) and the baseline (`ControlPersist`) alike:
/// long enough that a master opened before a warm run is still there
/// when the run starts, whatever ran in between.
pub(crate) const PERSIST_SECONDS: u64 = 600;

/// The longest any one command of the benchmark may take before it is
/// killed and the benchmark fails.
const DEADLINE: Duration = Duration::from_mins(20);

/// What `cargo xtask bench` was asked for.
struct Options {
    runs: usize,
    /// Runs per figure for fleets of more than [`SMALL_FLEET`] hosts;
    /// `None`: `runs`, but at most 2.
    large_runs: Option<usize>,
    fleets: Vec<usize>,
}

impl Options {
    /// How many times each figure of a fleet of `k` hosts is measured.
    fn runs_for(&self, k: usize) -> usize {
        if k <= SMALL_FLEET {
            self.runs
        } else {
            self.large_runs.unwrap_or(self.runs.min(2))
        }
    }
}

fn options(args: &[String]) -> Result<Options> {
    let mut options = Options {
        runs: 5,
        large_runs: None,
        fleets: vec![1, 8, 32, 64],
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("`{arg}` needs a value"))?;
        match arg.as_str() {
            "--runs" => options.runs = value.parse().context("--runs takes a number")?,
            "--large-runs" => {
                options.large_runs = Some(value.parse().context("--large-runs takes a number")?);
            }
            "--hosts" => {
                options.fleets = value
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .context("--hosts takes numbers separated by commas, such as 1,8,64")?;
            }
            _ => bail!("unknown option `{arg}`"),
        }
    }
    ensure!(options.runs >= 1, "--runs must be at least 1");
    ensure!(
        options.large_runs != Some(0),
        "--large-runs must be at least 1"
    );
    ensure!(
        !options.fleets.is_empty() && options.fleets.iter().all(|k| (1..=250).contains(k)),
        "--hosts takes fleet sizes from 1 to 250"
    );
    options.fleets.sort_unstable();
    options.fleets.dedup();
    Ok(options)
}

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

/// Whose master connections: landfall's or the baseline's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Landfall,
    Baseline,
}

/// Every sample, by fleet size, scenario, mode and side.
pub(crate) type Results = BTreeMap<(usize, Scenario, Mode, Side), Vec<Sample>>;

/// Landfall's phase timings (seconds) from its summaries, and `rest`, the
/// wall time outside them, by fleet, scenario and mode.
pub(crate) type Phases = BTreeMap<(usize, Scenario, Mode), Vec<BTreeMap<String, f64>>>;

pub(crate) fn bench(sh: &Shell, args: &[String]) -> Result<()> {
    if args.first().map(String::as_str) == Some("restarts") {
        let options = options(&args[1..])?;
        let root = sh.current_dir();
        eprintln!("bench: building landfall (release)");
        cmd!(sh, "cargo build --quiet --release -p landfall-cli").run()?;
        return restarts::restarts(
            &root,
            &root.join("target/release/cargo-deploy"),
            options.runs,
        );
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

    let mut run = Runner {
        bed: &bed.0,
        ws: &ws,
        landfall: &landfall,
        masters: &masters,
        counters: &counters,
        results: Results::new(),
        phases: Phases::new(),
        baseline_release: 0,
        changes: 0,
        binary: PathBuf::new(),
        script: dir.join("baseline.sh"),
    };
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
    let path = dir.join("report.md");
    fs::write(&path, &text)?;
    eprintln!(
        "bench: the report is in {} ({:.0} min in all)",
        path.display(),
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

/// The test bed, stopped when the benchmark ends, however it ends.
pub(crate) struct Bed(pub(crate) Testbed);

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = self.0.down();
    }
}

/// The master connections both sides keep for their warm runs: landfall's
/// in `landfall-ssh/` of the `XDG_RUNTIME_DIR` the benchmark gives it, the
/// baseline's in a directory of its own. Every master still open is
/// closed when the benchmark ends, however it ends.
struct Masters {
    /// landfall's `XDG_RUNTIME_DIR`, private.
    runtime_dir: PathBuf,
    /// Where the baseline's sockets are.
    baseline_dir: PathBuf,
    ssh_config: PathBuf,
    /// The directory was made for this run, outside `target/bench/`, and
    /// goes with it.
    temporary: bool,
}

impl Masters {
    fn new(bench_dir: &Path, bed: &Testbed) -> Result<Masters> {
        use std::os::unix::fs::DirBuilderExt as _;
        // landfall keeps its sockets under `XDG_RUNTIME_DIR` only when the
        // path leaves room for theirs (34 bytes at most, of a socket
        // path's 108: `short_and_plain` in its ssh transport): else it
        // uses `/tmp/landfall-ssh-UID`, which other runs on this machine
        // share. A checkout too deep for that gets a directory of its own
        // in /tmp.
        let mut runtime_dir = bench_dir.join("xdg");
        let temporary = runtime_dir.as_os_str().len() > 34;
        if temporary {
            runtime_dir = PathBuf::from(format!("/tmp/landfall-bench-{}", std::process::id()));
        }
        let baseline_dir = bench_dir.join("ctl");
        for dir in [&runtime_dir, &baseline_dir] {
            let _ = fs::remove_dir_all(dir);
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot make `{}`", dir.display()))?;
        }
        Ok(Masters {
            runtime_dir,
            baseline_dir,
            ssh_config: bed.ssh_config(),
            temporary,
        })
    }

    /// Where landfall keeps its masters' sockets.
    fn landfall_sockets(&self) -> PathBuf {
        self.runtime_dir.join("landfall-ssh")
    }

    /// Where the sockets of `tool`'s masters are.
    fn sockets(&self, tool: Tool) -> PathBuf {
        match tool {
            Tool::Landfall => self.landfall_sockets(),
            Tool::Baseline => self.baseline_dir.clone(),
        }
    }

    /// Closes every master of `tool` that is open, as `ssh -O exit` on
    /// each socket.
    fn close(&self, tool: Tool) -> Result<()> {
        let Ok(entries) = fs::read_dir(self.sockets(tool)) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let mut control_path = std::ffi::OsString::from("ControlPath=");
            control_path.push(entry.path());
            // The socket names the master; the host is only a word ssh
            // wants on its command line.
            output(
                Command::new("ssh")
                    .args(["-F", "/dev/null", "-o"])
                    .arg(control_path)
                    .args(["-O", "exit", "master"]),
            )?;
            // A socket whose master was gone already stays behind.
            let _ = fs::remove_file(entry.path());
        }
        Ok(())
    }

    /// The process id of each host's master of `tool`, as `ssh -O check`
    /// says; `None` for a host that has no master that answers. The
    /// baseline's sockets are named by ssh's `%C`; landfall names its own,
    /// so each of its sockets is asked, and its master's command line says
    /// which host it is for.
    fn pids(&self, tool: Tool, hosts: &[String]) -> Result<Vec<Option<u32>>> {
        let check = |control_path: &std::path::Path, host: &str| -> Result<Option<u32>> {
            let mut option = std::ffi::OsString::from("ControlPath=");
            option.push(control_path);
            let out = output(
                Command::new("ssh")
                    .arg("-F")
                    .arg(&self.ssh_config)
                    .arg("-o")
                    .arg(option)
                    .args(["-O", "check", host]),
            )?;
            // "Master running (pid=1234)".
            let pid = out
                .stderr
                .split_once("(pid=")
                .and_then(|(_, rest)| rest.split_once(')'))
                .and_then(|(pid, _)| pid.parse().ok());
            Ok(pid.filter(|_| out.status.success()))
        };
        match tool {
            Tool::Baseline => {
                let control_path = self.sockets(tool).join("%C");
                on_threads(hosts, |host| check(&control_path, host))
            }
            Tool::Landfall => {
                let sockets: Vec<PathBuf> = fs::read_dir(self.sockets(tool))
                    .map(|entries| entries.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                let masters = on_threads(&sockets, |socket| {
                    let Some(pid) = check(socket, "master")? else {
                        return Ok(None);
                    };
                    // The master was started as `ssh … HOST`.
                    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    let host = cmdline
                        .split(|&b| b == 0)
                        .rfind(|word| !word.is_empty())
                        .map(|word| String::from_utf8_lossy(word).into_owned());
                    Ok(host.map(|host| (host, pid)))
                })?;
                let by_host: BTreeMap<String, u32> = masters.into_iter().flatten().collect();
                Ok(hosts.iter().map(|h| by_host.get(h).copied()).collect())
            }
        }
    }
}

impl Drop for Masters {
    fn drop(&mut self) {
        let _ = self.close(Tool::Landfall);
        let _ = self.close(Tool::Baseline);
        if self.temporary {
            let _ = fs::remove_dir_all(&self.runtime_dir);
        }
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

struct Runner<'a> {
    bed: &'a Testbed,
    ws: &'a Workspace,
    landfall: &'a Path,
    masters: &'a Masters,
    counters: &'a ByteCounter,
    results: Results,
    phases: Phases,
    baseline_release: u64,
    /// How many changes were made to the workspace so far: each is new.
    changes: u64,
    /// The executable cargo built, which the baseline ships.
    binary: PathBuf,
    script: PathBuf,
}

impl Runner<'_> {
    /// One round of a scenario: a cold half and a warm half, in an order
    /// that alternates from round to round.
    fn round(&mut self, k: usize, hosts: &[String], scenario: Scenario, r: usize) -> Result<()> {
        let mut modes = Mode::ALL;
        modes.rotate_left(r % Mode::ALL.len());
        for mode in modes {
            self.half(k, hosts, scenario, mode, r)?;
        }
        Ok(())
    }

    /// Prepares the scenario (not measured), then measures each side once
    /// in `mode`, its connections set up first (not measured), in an order
    /// that alternates from round to round. Each tool deploys once per
    /// preparation, so that each sends the same change.
    fn half(
        &mut self,
        k: usize,
        hosts: &[String],
        scenario: Scenario,
        mode: Mode,
        r: usize,
    ) -> Result<()> {
        self.prepare(k, hosts, scenario)?;
        let mut sides = if scenario == Scenario::Noop {
            vec![Side::Landfall, Side::Baseline, Side::Cargo]
        } else {
            vec![Side::Landfall, Side::Baseline]
        };
        let turn = r % sides.len();
        sides.rotate_left(turn);
        for side in sides {
            let kept = self.connections(k, hosts, side, mode)?;
            let sample = match side {
                Side::Landfall => self.landfall_deploy(k, scenario, mode)?,
                Side::Baseline if scenario == Scenario::Noop => self.floor(hosts, mode)?,
                Side::Baseline => self.baseline_deploy(k, hosts, mode)?,
                Side::Cargo => Sample {
                    seconds: self.cargo_build(k)?.as_secs_f64(),
                    ..Sample::default()
                },
            };
            if let Some((tool, kept)) = kept {
                // A warm run goes through the masters it was given and
                // leaves them open.
                ensure!(
                    self.masters.pids(tool, hosts)? == kept,
                    "the {} of {k} host(s), warm, did not keep the masters it found open",
                    scenario.title()
                );
            }
            self.results
                .entry((k, scenario, mode, side))
                .or_default()
                .push(sample);
        }
        Ok(())
    }

    /// Sets the connections up for a measured run of `side` (not
    /// measured). Cold: no master of either tool is open. Warm: each host
    /// has a master of that tool's own, opened by that tool (by an earlier
    /// run, or else by an unmeasured one), and landfall's are closed
    /// before the baseline runs: they ask each host every 5 s whether it
    /// is still there (`ServerAliveInterval`), which the byte counter
    /// would see; the baseline's, idle, send nothing. Returns, warm, whose
    /// masters they are and their process ids.
    fn connections(
        &self,
        k: usize,
        hosts: &[String],
        side: Side,
        mode: Mode,
    ) -> Result<Option<(Tool, Vec<Option<u32>>)>> {
        let open = |pids: &[Option<u32>]| pids.iter().all(Option::is_some);
        match (mode, side) {
            (_, Side::Cargo) => Ok(None),
            (Mode::Cold, _) => {
                self.masters.close(Tool::Landfall)?;
                self.masters.close(Tool::Baseline)?;
                Ok(None)
            }
            (Mode::Warm, Side::Landfall) => {
                let pids = self.masters.pids(Tool::Landfall, hosts)?;
                if open(&pids) {
                    return Ok(Some((Tool::Landfall, pids)));
                }
                // `cargo deploy status` only reads the hosts.
                let env = format!("bench{k}");
                let out = output(&mut self.landfall_cmd(&["status", &env], Mode::Warm))?;
                ensure!(
                    out.status.success(),
                    "`cargo deploy status {env}`, which opens landfall's masters, failed:\n{}{}",
                    out.stdout,
                    out.stderr
                );
                let pids = self.masters.pids(Tool::Landfall, hosts)?;
                ensure!(
                    open(&pids),
                    "landfall kept no master for some host of {env} in `{}`",
                    self.masters.landfall_sockets().display()
                );
                Ok(Some((Tool::Landfall, pids)))
            }
            (Mode::Warm, Side::Baseline) => {
                self.masters.close(Tool::Landfall)?;
                let pids = self.masters.pids(Tool::Baseline, hosts)?;
                if open(&pids) {
                    return Ok(Some((Tool::Baseline, pids)));
                }
                let out = output(self.baseline_cmd("open", Mode::Warm).args(hosts))?;
                let pids = self.masters.pids(Tool::Baseline, hosts)?;
                ensure!(
                    out.status.success() && open(&pids),
                    "the baseline's masters did not open: {}",
                    out.stderr
                );
                Ok(Some((Tool::Baseline, pids)))
            }
        }
    }

    /// What comes before a measured run of a scenario: both deploy
    /// directories removed for a first deploy, a data file rewritten, or
    /// the blob changed and the binary rebuilt. The baseline's releases
    /// but the current one are removed too (landfall keeps three, and
    /// prunes them in its own time; the baseline keeps everything, which
    /// would fill the disk at 64 hosts).
    fn prepare(&mut self, k: usize, hosts: &[String], scenario: Scenario) -> Result<()> {
        self.changes += 1;
        let mut doomed: Vec<PathBuf> = Vec::new();
        match scenario {
            Scenario::First => {
                doomed.extend(hosts.iter().map(|host| self.bed.srv(host).join("bench")));
            }
            Scenario::Noop => {}
            Scenario::OneFile => self.ws.change_one_file(self.changes)?,
            Scenario::Binary => {
                self.ws.change_blob(self.changes)?;
                self.cargo_build(k)?;
            }
        }
        for host in hosts {
            let base = self.baseline_dir(host);
            let current = fs::read_link(base.join("current")).ok();
            let Ok(releases) = fs::read_dir(base.join("releases")) else {
                continue;
            };
            for release in releases.flatten() {
                let name = release.file_name();
                if current
                    .as_ref()
                    .is_none_or(|c| c.file_name() != Some(&name))
                {
                    doomed.push(release.path());
                }
            }
        }
        remove_all(&doomed)
    }

    fn landfall_cmd(&self, args: &[&str], mode: Mode) -> Command {
        let mut cmd = Command::new(self.landfall);
        cmd.args(args)
            .args(["--message-format", "json"])
            .current_dir(&self.ws.root)
            .env("XDG_RUNTIME_DIR", &self.masters.runtime_dir)
            // The generated workspace builds into its own `target/`, not
            // into the one this benchmark was built in.
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CI");
        if mode == Mode::Cold {
            // Every run opens its own connections, and closes them.
            cmd.arg("--no-persist");
        }
        cmd
    }

    /// `cargo deploy build`: compiles the binary and fills the store.
    fn landfall_build(&mut self, k: usize) -> Result<()> {
        let env = format!("bench{k}");
        let out = measure(
            &mut self.landfall_cmd(&["build", &env], Mode::Cold),
            self.counters,
            DEADLINE,
        )?;
        self.binary = self.ws.root.join("target/landfall/build/release/benchapp");
        ensure!(
            out.stdout.contains("\"event\":\"manifest\"") && self.binary.exists(),
            "`cargo deploy build {env}` built no `benchapp`"
        );
        Ok(())
    }

    /// cargo's own part of a deploy: the build landfall runs, which is a
    /// freshness check when nothing changed, for the environment of `k`
    /// hosts. Returns how long cargo took.
    fn cargo_build(&self, k: usize) -> Result<Duration> {
        use landfall::{cargo, config, git, plan, secrets};
        let project = landfall::load(Some(&self.ws.root.join("Cargo.toml")))?;
        let env = config::load_environment(&project, &format!("bench{k}"))?;
        let secrets = secrets::load(&project, &env)?;
        let plan = plan::plan(&project, &env, &[], false, &secrets)?;
        // Where `cargo deploy` builds (see `landfall_cmd`), whatever
        // `CARGO_TARGET_DIR` this process was given.
        let target_dir = self.ws.root.join("target/landfall/build");
        let request = cargo::BuildRequest {
            workspace_root: &project.workspace.root,
            target_dir: &target_dir,
            settings: &project.build,
            bins: &plan.bins,
            source_date_epoch: git::revision(&project.workspace.root).time,
            quiet: true,
        };
        let started = Instant::now();
        cargo::build(&request)?;
        Ok(started.elapsed())
    }

    fn landfall_deploy(&mut self, k: usize, scenario: Scenario, mode: Mode) -> Result<Sample> {
        let env = format!("bench{k}");
        let sample = measure(
            &mut self.landfall_cmd(&["deploy", &env], mode),
            self.counters,
            DEADLINE,
        )?;
        let summary: serde_json::Value = sample
            .stdout
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .find(|event: &serde_json::Value| event["event"] == "summary")
            .context("landfall printed no summary")?;
        let expected = if scenario == Scenario::Noop {
            "unchanged"
        } else {
            "deployed"
        };
        let statuses: Vec<&str> = summary["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["status"].as_str())
            .collect();
        ensure!(
            summary["ok"] == true && statuses.len() == k && statuses.iter().all(|s| *s == expected),
            "landfall's {} ({}) on {k} host(s) did not leave every host {expected}: {summary}",
            scenario.title(),
            mode.name()
        );
        if let Some(timings) = summary["timings"].as_object() {
            let mut timings: BTreeMap<String, f64> = timings
                .iter()
                .filter_map(|(phase, s)| Some((phase.clone(), s.as_f64()?)))
                .collect();
            let phases: f64 = timings.values().sum();
            timings.insert("rest".into(), sample.seconds - phases);
            self.phases
                .entry((k, scenario, mode))
                .or_default()
                .push(timings);
        }
        Ok(sample)
    }

    fn baseline_cmd(&self, operation: &str, mode: Mode) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg(&self.script)
            .arg(operation)
            .env("SSH_CONFIG", self.bed.ssh_config())
            .env("CONTROL_DIR", &self.masters.baseline_dir)
            .env("HOOK", HOOK)
            .env("JOBS", JOBS.to_string())
            .env("PERSIST", PERSIST_SECONDS.to_string())
            .env(
                "KEEP",
                match mode {
                    Mode::Cold => "no",
                    Mode::Warm => "yes",
                },
            );
        cmd
    }

    /// Where the baseline deploys on a host, seen from outside.
    fn baseline_dir(&self, host: &str) -> PathBuf {
        self.bed
            .srv(host)
            .join(BASELINE_PATH.trim_start_matches("/srv/"))
    }

    fn baseline_deploy(&mut self, k: usize, hosts: &[String], mode: Mode) -> Result<Sample> {
        self.baseline_release += 1;
        let release = format!("r{}", self.baseline_release);
        let mut cmd = self.baseline_cmd("deploy", mode);
        cmd.arg(BASELINE_PATH)
            .arg(&release)
            .arg(&self.binary)
            .arg(self.ws.payload())
            .arg(format!("bench{k}"))
            .args(hosts);
        let sample = measure(&mut cmd, self.counters, DEADLINE)?;
        for host in hosts {
            let current = self.baseline_dir(host).join("current");
            ensure!(
                fs::read_link(&current).is_ok_and(|l| l.ends_with(&release))
                    && current.join("etc/app.toml").exists(),
                "the baseline did not switch `{host}` to {release}"
            );
        }
        Ok(sample)
    }

    fn floor(&self, hosts: &[String], mode: Mode) -> Result<Sample> {
        let mut cmd = self.baseline_cmd("floor", mode);
        cmd.arg(LANDFALL_PATH).args(hosts);
        measure(&mut cmd, self.counters, DEADLINE)
    }
}
