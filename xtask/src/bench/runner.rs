//! The measured runs of the deploy benchmark: each round of a scenario in
//! both modes, each side in turn, its connections set up and the
//! workspace and hosts prepared first (not measured); then landfall's
//! deploy (checked by its JSON summary, its phase timings kept), the
//! baseline's (checked by the release each host switched to), the floor,
//! and cargo's own part.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use landfall_testbed::{ByteCounter, Testbed};

use super::masters::{Masters, Tool};
use super::measure::{Sample, measure};
use super::workspace::{BASELINE_PATH, HOOK, LANDFALL_PATH, Workspace};
use super::{JOBS, Mode, PERSIST_SECONDS, Phases, Results, Scenario, Side, output, remove_all};

/// The longest any one command of the benchmark may take before it is
/// killed and the benchmark fails.
const DEADLINE: Duration = Duration::from_mins(20);

/// What the measured runs work with, and what they measured.
pub(crate) struct Runner<'a> {
    bed: &'a Testbed,
    ws: &'a Workspace,
    landfall: &'a Path,
    masters: &'a Masters,
    counters: &'a ByteCounter,
    pub(crate) results: Results,
    pub(crate) phases: Phases,
    baseline_release: u64,
    /// How many changes were made to the workspace so far: each is new.
    changes: u64,
    /// The executable cargo built, which the baseline ships.
    pub(crate) binary: PathBuf,
    /// Where the baseline's script is written.
    pub(crate) script: PathBuf,
}

impl<'a> Runner<'a> {
    /// A runner with nothing measured yet, which has built nothing.
    pub(crate) fn new(
        bed: &'a Testbed,
        ws: &'a Workspace,
        landfall: &'a Path,
        masters: &'a Masters,
        counters: &'a ByteCounter,
        script: PathBuf,
    ) -> Runner<'a> {
        Runner {
            bed,
            ws,
            landfall,
            masters,
            counters,
            results: Results::new(),
            phases: Phases::new(),
            baseline_release: 0,
            changes: 0,
            binary: PathBuf::new(),
            script,
        }
    }
}

impl Runner<'_> {
    /// One round of a scenario: a cold half and a warm half, in an order
    /// that alternates from round to round.
    pub(crate) fn round(
        &mut self,
        k: usize,
        hosts: &[String],
        scenario: Scenario,
        r: usize,
    ) -> Result<()> {
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
    pub(crate) fn landfall_build(&mut self, k: usize) -> Result<()> {
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
