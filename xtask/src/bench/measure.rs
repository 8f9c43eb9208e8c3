//! Measuring one run: its wall time, the bytes it sent to the hosts (the
//! test bed's nftables counter on its port, so landfall and the baseline
//! are counted the same way, at the IP level) and the peak resident memory
//! of the process started.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What one run cost.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    pub(crate) seconds: f64,
    pub(crate) sent: u64,
    /// The started process's own peak resident set (`VmHWM`), in KiB.
    pub(crate) peak_kib: u64,
    pub(crate) stdout: String,
}

/// How a command ended, with what it printed and its peak memory.
pub(crate) struct Finished {
    pub(crate) status: std::process::ExitStatus,
    pub(crate) seconds: f64,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// The started process's own peak resident set (`VmHWM`), in KiB.
    pub(crate) peak_kib: u64,
}

/// Runs `cmd` to completion; past `deadline`, it is killed with every
/// process it started (and the run is an error). It stays in this
/// process's group, so that Ctrl-C at a terminal reaches it too.
pub(crate) fn run(cmd: &mut Command, deadline: Duration) -> Result<Finished> {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let pid = child.id();
    // Pipes are read on threads so that a chatty child never blocks.
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    // VmHWM only grows; the last reading before the process exits is its
    // peak, give or take the final few milliseconds.
    let mut peak_kib = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > deadline {
            let mut doomed = vec![pid];
            let mut i = 0;
            while let Some(&parent) = doomed.get(i) {
                doomed.extend(children(parent));
                i += 1;
            }
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(doomed.iter().map(ToString::to_string))
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.wait();
            bail!(
                "{cmd:?} did not end within {} s and was killed",
                deadline.as_secs()
            );
        }
        peak_kib = peak_kib.max(vm_hwm(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(2));
    };
    let seconds = started.elapsed().as_secs_f64();
    Ok(Finished {
        status,
        seconds,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        peak_kib,
    })
}

/// Runs `cmd` to completion (within `deadline`) and measures it; a
/// failure is an error with its output, since a benchmark of a failing run
/// means nothing.
pub(crate) fn measure(
    cmd: &mut Command,
    counters: &landfall_testbed::ByteCounter,
    deadline: Duration,
) -> Result<Sample> {
    let before = counters.sent()?;
    let finished = run(cmd, deadline)?;
    if !finished.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            finished.status,
            finished.stdout,
            finished.stderr
        );
    }
    Ok(Sample {
        seconds: finished.seconds,
        sent: counters.sent()? - before,
        peak_kib: finished.peak_kib,
        stdout: finished.stdout,
    })
}

/// The children of process `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|child| child.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The median, least and greatest of some samples.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Spread {
    pub(crate) fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut values: Vec<f64> = values.into_iter().collect();
        if values.is_empty() {
            return Spread::default();
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            f64::midpoint(values[n / 2 - 1], values[n / 2])
        };
        Spread {
            median,
            min: values[0],
            max: values[n - 1],
        }
    }
}
