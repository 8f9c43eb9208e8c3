//! `cargo xtask bench`: landfall against a hand-written rsync+ssh baseline
//! on the real test bed, in the same run, alternating, and the targets
//! landfall must meet. See docs/benchmarks.md.

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

use measure::{Counters, Sample, measure};
use workspace::{BASELINE_PATH, HOOK, LANDFALL_PATH, Workspace};

const BASELINE_SH: &str = include_str!("baseline.sh");

/// The longest any one command of the benchmark may take before it is
/// killed and the benchmark fails.
const DEADLINE: Duration = Duration::from_mins(20);

/// What `cargo xtask bench` was asked for.
struct Options {
    runs: usize,
    fleets: Vec<usize>,
}

fn options(args: &[String]) -> Result<Options> {
    let mut options = Options {
        runs: 5,
        fleets: vec![1, 4, 8],
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("`{arg}` needs a value"))?;
        match arg.as_str() {
            "--runs" => options.runs = value.parse().context("--runs takes a number")?,
            "--hosts" => {
                options.fleets = value
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .context("--hosts takes numbers separated by commas, such as 1,4,8")?;
            }
            _ => bail!("unknown option `{arg}`"),
        }
    }
    ensure!(options.runs >= 1, "--runs must be at least 1");
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

/// Who ran: landfall, the baseline, or (for the no-op) cargo's freshness
/// check alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Side {
    Landfall,
    Baseline,
    Cargo,
}

/// Every sample, by fleet size, scenario and side.
pub(crate) type Results = BTreeMap<(usize, Scenario, Side), Vec<Sample>>;

/// Landfall's phase timings (seconds) from its summaries, by fleet and
/// scenario.
pub(crate) type Phases = BTreeMap<(usize, Scenario), Vec<BTreeMap<String, f64>>>;

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
    let root = sh.current_dir();
    for tool in ["nft", "rsync", "ssh", "git"] {
        ensure!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success()),
            "`{tool}` is not installed (apt-get install nftables rsync openssh-client git)"
        );
    }
    eprintln!("bench: building landfall (release)");
    cmd!(sh, "cargo build --quiet --release -p landfall-cli").run()?;
    let landfall = root.join("target/release/cargo-deploy");

    let dir = root.join("target/bench");
    fs::create_dir_all(&dir)?;
    let bed_dir = dir.join("testbed");
    if let Ok(old) = Testbed::open(&bed_dir) {
        old.down()?;
    }
    let largest = *options.fleets.last().expect("at least one fleet");
    eprintln!("bench: starting {largest} hosts");
    let bed = Bed(Testbed::up(&bed_dir, largest)?);
    let ws = Workspace::generate(&dir.join("ws"), &bed.0.ssh_config(), &options.fleets)?;
    let counters = Counters::install(bed.0.hosts[0].port)?;

    let mut run = Runner {
        bed: &bed.0,
        ws: &ws,
        landfall: &landfall,
        control_dir: dir.join("ctl"),
        counters: &counters,
        results: Results::new(),
        phases: Phases::new(),
        baseline_release: 0,
        binary: PathBuf::new(),
        script: dir.join("baseline.sh"),
    };
    fs::write(&run.script, BASELINE_SH)?;
    fs::create_dir_all(&run.control_dir)?;

    eprintln!("bench: first build of the workspace");
    run.landfall_build(largest)?;
    // Past the hash cache's racy window, then once more: from here on the
    // cache answers for every unchanged file, as it does for a user.
    std::thread::sleep(Duration::from_millis(2_100));
    run.landfall_build(largest)?;

    let hashing = report::hashing(&ws, &run.binary, options.runs)?;

    let mut round: u64 = 0;
    for &k in &options.fleets {
        let hosts: Vec<String> = (1..=k).map(|i| format!("host{i}")).collect();
        for scenario in Scenario::ALL {
            eprintln!("bench: {k} host(s), {}", scenario.title());
            for r in 0..options.runs {
                round += 1;
                run.round(k, &hosts, scenario, r, round)?;
            }
        }
    }

    let machine = report::machine(&root, options.runs);
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
    eprintln!("bench: the report is in {}", path.display());
    Ok(())
}

/// The test bed, stopped when the benchmark ends, however it ends.
pub(crate) struct Bed(pub(crate) Testbed);

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = self.0.down();
    }
}

struct Runner<'a> {
    bed: &'a Testbed,
    ws: &'a Workspace,
    landfall: &'a Path,
    control_dir: PathBuf,
    counters: &'a Counters,
    results: Results,
    phases: Phases,
    baseline_release: u64,
    /// The executable cargo built, which the baseline ships.
    binary: PathBuf,
    script: PathBuf,
}

impl Runner<'_> {
    /// One round of a scenario: prepares it (not measured), then measures
    /// each side once, in an order that alternates from round to round.
    fn round(
        &mut self,
        k: usize,
        hosts: &[String],
        scenario: Scenario,
        r: usize,
        round: u64,
    ) -> Result<()> {
        match scenario {
            Scenario::First => {
                for host in hosts {
                    let bench = self.bed.srv(host).join("bench");
                    if bench.exists() {
                        fs::remove_dir_all(&bench)?;
                    }
                }
            }
            Scenario::Noop => {}
            Scenario::OneFile => self.ws.change_one_file(round)?,
            Scenario::Binary => {
                self.ws.change_blob(round)?;
                self.cargo_build(k)?;
            }
        }
        let mut sides = if scenario == Scenario::Noop {
            vec![Side::Landfall, Side::Baseline, Side::Cargo]
        } else {
            vec![Side::Landfall, Side::Baseline]
        };
        let turn = r % sides.len();
        sides.rotate_left(turn);
        for side in sides {
            let sample = match side {
                Side::Landfall => self.landfall_deploy(k, scenario)?,
                Side::Baseline if scenario == Scenario::Noop => self.floor(hosts)?,
                Side::Baseline => self.baseline_deploy(k, hosts)?,
                Side::Cargo => Sample {
                    seconds: self.cargo_build(k)?.as_secs_f64(),
                    ..Sample::default()
                },
            };
            self.results
                .entry((k, scenario, side))
                .or_default()
                .push(sample);
        }
        Ok(())
    }

    fn landfall_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.landfall);
        // Cold, as the hand-written deploy is: every run opens its own
        // connections.
        cmd.args(args)
            .args(["--message-format", "json", "--no-persist"])
            .current_dir(&self.ws.root)
            // The generated workspace builds into its own `target/`, not
            // into the one this benchmark was built in.
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CI");
        cmd
    }

    /// `cargo deploy build`: compiles the binary and fills the store.
    fn landfall_build(&mut self, k: usize) -> Result<()> {
        let env = format!("bench{k}");
        let out = measure(
            &mut self.landfall_cmd(&["build", &env]),
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
        use landfall::{build, config, git, plan, secrets};
        let project = landfall::load(Some(&self.ws.root.join("Cargo.toml")))?;
        let env = config::load_environment(&project, &format!("bench{k}"))?;
        let secrets = secrets::load(&project, &env)?;
        let plan = plan::plan(&project, &env, &[], false, &secrets)?;
        // Where `cargo deploy` builds (see `landfall_cmd`), whatever
        // `CARGO_TARGET_DIR` this process was given.
        let target_dir = self.ws.root.join("target/landfall/build");
        let request = build::BuildRequest {
            workspace_root: &project.workspace.root,
            target_dir: &target_dir,
            settings: &project.build,
            bins: &plan.bins,
            source_date_epoch: git::revision(&project.workspace.root).time,
            quiet: true,
        };
        let started = Instant::now();
        build::build(&request)?;
        Ok(started.elapsed())
    }

    fn landfall_deploy(&mut self, k: usize, scenario: Scenario) -> Result<Sample> {
        let env = format!("bench{k}");
        let sample = measure(
            &mut self.landfall_cmd(&["deploy", &env]),
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
            "landfall's {} on {k} host(s) did not leave every host {expected}: {summary}",
            scenario.title()
        );
        if let Some(timings) = summary["timings"].as_object() {
            let timings = timings
                .iter()
                .filter_map(|(phase, s)| Some((phase.clone(), s.as_f64()?)))
                .collect();
            self.phases.entry((k, scenario)).or_default().push(timings);
        }
        Ok(sample)
    }

    fn baseline_cmd(&self, mode: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg(&self.script)
            .arg(mode)
            .env("SSH_CONFIG", self.bed.ssh_config())
            .env("CONTROL_DIR", &self.control_dir)
            .env("HOOK", HOOK);
        cmd
    }

    fn baseline_deploy(&mut self, k: usize, hosts: &[String]) -> Result<Sample> {
        self.baseline_release += 1;
        let release = format!("r{}", self.baseline_release);
        let mut cmd = self.baseline_cmd("deploy");
        cmd.arg(BASELINE_PATH)
            .arg(&release)
            .arg(&self.binary)
            .arg(self.ws.payload())
            .arg(format!("bench{k}"))
            .args(hosts);
        let sample = measure(&mut cmd, self.counters, DEADLINE)?;
        for host in hosts {
            let current = self
                .bed
                .srv(host)
                .join(BASELINE_PATH.trim_start_matches("/srv/"))
                .join("current");
            ensure!(
                fs::read_link(&current).is_ok_and(|l| l.ends_with(&release))
                    && current.join("etc/app.toml").exists(),
                "the baseline did not switch `{host}` to {release}"
            );
        }
        Ok(sample)
    }

    fn floor(&self, hosts: &[String]) -> Result<Sample> {
        let mut cmd = self.baseline_cmd("floor");
        cmd.arg(LANDFALL_PATH).args(hosts);
        measure(&mut cmd, self.counters, DEADLINE)
    }
}
