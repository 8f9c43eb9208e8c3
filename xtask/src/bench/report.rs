//! The hashing measurement, the machine's description and the report: a
//! Markdown table per topic, then every target as met or missed.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, ensure};

use super::measure::{Sample, Spread};
use super::workspace::{DATA_FILES, Workspace};
use super::{JOBS, Mode, Phases, Results, Scenario, Side};

/// Hashing the payload: landfall cold (empty hash cache), landfall warm
/// (every entry a hit) and the blake3 crate reading and hashing the same
/// files on one thread, all with the files in the page cache; the `stat`
/// of every file alone (what a warm run cannot do without); and landfall
/// cold with the page cache dropped first, reading from the disk.
pub(crate) struct Hashing {
    files: usize,
    bytes: u64,
    cold: Spread,
    warm: Spread,
    reference: Spread,
    stat: Spread,
    from_disk: Spread,
}

pub(crate) fn hashing(ws: &Workspace, binary: &Path, runs: usize) -> Result<Hashing> {
    let mut paths: Vec<PathBuf> = (0..DATA_FILES).map(|i| ws.data_file(i)).collect();
    paths.push(binary.to_path_buf());
    paths.push(ws.root.join("templates/app.toml.j2"));
    let paths: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let bytes = paths
        .iter()
        .map(|p| fs::metadata(p).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    let cache = ws.root.join("target/bench-hash-cache.json");
    let (mut cold, mut warm, mut reference) = (Vec::new(), Vec::new(), Vec::new());
    let (mut stat, mut from_disk) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let _ = fs::remove_file(&cache);
        let started = Instant::now();
        let read = landfall::assemble::hash_files(&cache, &paths)?;
        cold.push(started.elapsed().as_secs_f64());
        ensure!(read == paths.len(), "a cold hash reads every file");

        let started = Instant::now();
        let read = landfall::assemble::hash_files(&cache, &paths)?;
        warm.push(started.elapsed().as_secs_f64());
        ensure!(read == 0, "the warm hash read {read} files again");

        let started = Instant::now();
        for path in &paths {
            let mut hasher = blake3::Hasher::new();
            hasher.update_reader(fs::File::open(path)?)?;
            std::hint::black_box(hasher.finalize());
        }
        reference.push(started.elapsed().as_secs_f64());

        let started = Instant::now();
        for path in &paths {
            std::hint::black_box(fs::metadata(path)?);
        }
        stat.push(started.elapsed().as_secs_f64());

        let _ = fs::remove_file(&cache);
        drop_page_cache()?;
        let started = Instant::now();
        landfall::assemble::hash_files(&cache, &paths)?;
        from_disk.push(started.elapsed().as_secs_f64());
    }
    Ok(Hashing {
        files: paths.len(),
        bytes,
        cold: Spread::of(cold),
        warm: Spread::of(warm),
        reference: Spread::of(reference),
        stat: Spread::of(stat),
        from_disk: Spread::of(from_disk),
    })
}

/// Writes dirty pages out and drops the page cache, so that the next
/// reads come from the disk.
fn drop_page_cache() -> Result<()> {
    ensure!(Command::new("sync").status()?.success(), "`sync` failed");
    fs::write("/proc/sys/vm/drop_caches", "3\n").map_err(|err| {
        anyhow::anyhow!("cannot drop the page cache (the benchmark runs as root): {err}")
    })
}

/// This machine's processor, as `/proc/cpuinfo` names it, and how many
/// cores this process may use.
pub(crate) fn processor() -> (String, usize) {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("unknown CPU", |l| l.trim_start_matches([' ', '\t', ':']))
        .to_string();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    (cpu, cores)
}

/// Writes the report `text` to `path`, and says where, and how long the
/// benchmark took since `started`.
pub(crate) fn write(path: &Path, text: &str, started: std::time::Instant) -> Result<()> {
    fs::write(path, text)?;
    eprintln!(
        "bench: the report is in {} ({:.0} min in all)",
        path.display(),
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

/// A line describing the machine, the tools' versions and how many runs
/// each figure is the median of.
pub(crate) fn machine(root: &Path, fleets: &[usize], runs_for: impl Fn(usize) -> usize) -> String {
    let (cpu, cores) = processor();
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1_048_576.0);
    let output = |program: &str, args: &[&str]| -> String {
        Command::new(program)
            .args(args)
            .current_dir(root)
            .output()
            .map(|o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            })
            .unwrap_or_default()
    };
    // "5 runs for 1, 4 and 8 hosts, 3 for 32 and 64 hosts".
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for &k in fleets {
        match groups.last_mut() {
            Some((runs, ks)) if *runs == runs_for(k) => ks.push(k),
            _ => groups.push((runs_for(k), vec![k])),
        }
    }
    let runs = groups
        .iter()
        .map(|(runs, ks)| {
            let ks: Vec<String> = ks.iter().map(ToString::to_string).collect();
            let ks = match ks.split_last() {
                Some((last, [])) => last.clone(),
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                None => String::new(),
            };
            let noun = if *runs == 1 { "run" } else { "runs" };
            format!("{runs} {noun} for {ks} hosts")
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{cpu}, {cores} cores, {memory_gib:.0} GiB; {}; {}; {}; landfall {} ({}); {}. \
         Each figure is the median of {runs}, with the least and greatest in brackets; \
         landfall and the baseline, cold and warm, ran alternately, in the same run.",
        output("uname", &["-sr"]),
        output("ssh", &["-V"]),
        output("rsync", &["--version"])
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        landfall::VERSION,
        output("git", &["rev-parse", "--short", "HEAD"]),
        output("date", &["-u", "+%Y-%m-%d"]),
    )
}

fn seconds(spread: Spread) -> String {
    format!(
        "{:.3} s ({:.3}–{:.3})",
        spread.median, spread.min, spread.max
    )
}

#[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
fn mib(bytes: f64) -> String {
    if bytes >= 1_048_576.0 {
        format!("{:.2} MiB", bytes / 1_048_576.0)
    } else {
        format!("{:.1} KiB", bytes / 1_024.0)
    }
}

/// A target and whether it was met.
struct Target {
    met: bool,
    text: String,
}

/// The fleet a target "at `wanted` hosts" is checked at: `wanted` if it
/// ran, else the fleet closest to it by ratio (fleets grow by factors: 8
/// is closer to 4 than 1 is), the larger of two as close.
fn closest(fleets: &[usize], wanted: usize) -> Option<usize> {
    #[allow(clippy::cast_precision_loss)] // fleets of at most 250 hosts
    let distance = |k: usize| ((k as f64) / (wanted as f64)).ln().abs();
    fleets
        .iter()
        .copied()
        .min_by(|&a, &b| distance(a).total_cmp(&distance(b)).then_with(|| b.cmp(&a)))
}

fn hosts(k: usize) -> &'static str {
    if k == 1 { "host" } else { "hosts" }
}

/// The figures of a report, read from the samples.
struct Figures<'a> {
    results: &'a Results,
}

impl Figures<'_> {
    fn samples(&self, k: usize, scenario: Scenario, mode: Mode, side: Side) -> &[Sample] {
        self.results
            .get(&(k, scenario, mode, side))
            .map_or(&[], Vec::as_slice)
    }

    fn time(&self, k: usize, scenario: Scenario, mode: Mode, side: Side) -> Spread {
        Spread::of(
            self.samples(k, scenario, mode, side)
                .iter()
                .map(|s| s.seconds),
        )
    }

    #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
    fn sent(&self, k: usize, scenario: Scenario, mode: Mode, side: Side) -> f64 {
        Spread::of(
            self.samples(k, scenario, mode, side)
                .iter()
                .map(|s| s.sent as f64),
        )
        .median
    }

    /// landfall's peak resident memory, in KiB, over both modes.
    fn peak(&self, k: usize, scenario: Scenario) -> u64 {
        Mode::ALL
            .iter()
            .flat_map(|&mode| self.samples(k, scenario, mode, Side::Landfall))
            .map(|s| s.peak_kib)
            .max()
            .unwrap_or(0)
    }

    /// The baseline's time; for the no-op, the floor plus cargo's
    /// freshness check.
    fn baseline(&self, k: usize, scenario: Scenario, mode: Mode) -> f64 {
        let base = self.time(k, scenario, mode, Side::Baseline).median;
        if scenario == Scenario::Noop {
            base + self.time(k, scenario, mode, Side::Cargo).median
        } else {
            base
        }
    }

    /// The baseline's time as a table shows it.
    fn baseline_cell(&self, k: usize, scenario: Scenario, mode: Mode) -> String {
        if scenario == Scenario::Noop {
            format!(
                "floor {} + cargo {}",
                seconds(self.time(k, scenario, mode, Side::Baseline)),
                seconds(self.time(k, scenario, mode, Side::Cargo))
            )
        } else {
            seconds(self.time(k, scenario, mode, Side::Baseline))
        }
    }

    /// landfall's time over the baseline's.
    fn time_ratio(&self, k: usize, scenario: Scenario, mode: Mode) -> f64 {
        self.time(k, scenario, mode, Side::Landfall).median / self.baseline(k, scenario, mode)
    }

    /// landfall's bytes over the baseline's.
    fn bytes_ratio(&self, k: usize, scenario: Scenario, mode: Mode) -> f64 {
        self.sent(k, scenario, mode, Side::Landfall) / self.sent(k, scenario, mode, Side::Baseline)
    }

    /// landfall's and the baseline's time at `large` hosts over their
    /// time at `small` hosts.
    fn growth(&self, small: usize, large: usize, scenario: Scenario, mode: Mode) -> (f64, f64) {
        (
            self.time(large, scenario, mode, Side::Landfall).median
                / self.time(small, scenario, mode, Side::Landfall).median,
            self.baseline(large, scenario, mode) / self.baseline(small, scenario, mode),
        )
    }
}

#[allow(clippy::cast_precision_loss)] // byte and KiB counts far below 2^52
pub(crate) fn render(
    machine: &str,
    fleets: &[usize],
    results: &Results,
    phases: &Phases,
    hashing: &Hashing,
) -> String {
    let figures = Figures { results };
    let mut out = String::from("# landfall benchmark\n\n");
    let _ = writeln!(out, "{machine}\n");

    let _ = write!(
        out,
        "## Wall time\n\n\
         Cold: every run opens its ssh connections (landfall with `--no-persist`; the \
         baseline's masters closed before and after each run; the floor a connection per \
         host). Warm: a master per host is open before the run, kept from an earlier one, \
         and stays open after it (landfall's `ssh_persist`, the baseline's `ControlPersist`; \
         the floor over the baseline's master). Both work on {JOBS} hosts at a time \
         (landfall's `jobs`, the baseline's `xargs -P`).\n\n\
         | hosts | scenario | landfall cold | baseline cold | ratio | landfall warm | baseline warm | ratio |\n\
         |---:|---|---|---|---:|---|---|---:|\n",
    );
    for &k in fleets {
        for scenario in Scenario::ALL {
            let _ = writeln!(
                out,
                "| {k} | {} | {} | {} | {:.2} | {} | {} | {:.2} |",
                scenario.title(),
                seconds(figures.time(k, scenario, Mode::Cold, Side::Landfall)),
                figures.baseline_cell(k, scenario, Mode::Cold),
                figures.time_ratio(k, scenario, Mode::Cold),
                seconds(figures.time(k, scenario, Mode::Warm, Side::Landfall)),
                figures.baseline_cell(k, scenario, Mode::Warm),
                figures.time_ratio(k, scenario, Mode::Warm),
            );
        }
    }

    out.push_str(
        "\n## Bytes sent and memory\n\n\
         Medians of the bytes sent to the hosts (IP packets to their sshd port); for the \
         no-op, the baseline's are the floor's. landfall's peak RSS is the largest of its \
         runs, cold and warm.\n\n\
         | hosts | scenario | landfall cold | baseline cold | ratio | landfall warm | baseline warm | ratio | landfall peak RSS |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for &k in fleets {
        for scenario in Scenario::ALL {
            let _ = writeln!(
                out,
                "| {k} | {} | {} | {} | {:.2} | {} | {} | {:.2} | {} |",
                scenario.title(),
                mib(figures.sent(k, scenario, Mode::Cold, Side::Landfall)),
                mib(figures.sent(k, scenario, Mode::Cold, Side::Baseline)),
                figures.bytes_ratio(k, scenario, Mode::Cold),
                mib(figures.sent(k, scenario, Mode::Warm, Side::Landfall)),
                mib(figures.sent(k, scenario, Mode::Warm, Side::Baseline)),
                figures.bytes_ratio(k, scenario, Mode::Warm),
                mib(figures.peak(k, scenario) as f64 * 1_024.0),
            );
        }
    }

    out.push_str(
        "\n## Where landfall's time goes\n\n\
         Medians of the phases in landfall's own summary; the rest is its wall time outside \
         them: loading the configuration, waiting for the connections (opened while cargo \
         builds, or checked when kept), probing the hosts and closing connections.\n\n\
         | hosts | scenario | mode | build (cargo) | assemble | push | activate | the rest |\n\
         |---:|---|---|---:|---:|---:|---:|---:|\n",
    );
    for &k in fleets {
        for scenario in Scenario::ALL {
            for mode in Mode::ALL {
                let phase = |name: &str| {
                    Spread::of(
                        phases
                            .get(&(k, scenario, mode))
                            .into_iter()
                            .flatten()
                            .filter_map(|t| t.get(name).copied()),
                    )
                    .median
                };
                let _ = writeln!(
                    out,
                    "| {k} | {} | {} | {:.3} s | {:.3} s | {:.3} s | {:.3} s | {:.3} s |",
                    scenario.title(),
                    mode.name(),
                    phase("build"),
                    phase("assemble"),
                    phase("push"),
                    phase("activate"),
                    phase("rest"),
                );
            }
        }
    }

    let mut growth_targets: Vec<Target> = Vec::new();
    if let (Some(&small), Some(&large)) = (fleets.first(), fleets.last())
        && small < large
    {
        let _ = write!(
            out,
            "\n## Growth from {small} to {large} {}\n\n\
             Each tool's time at K hosts over its own time at {small} {}; the quotient is \
             landfall's growth over the baseline's (below 1, landfall grows less).\n\n\
             | scenario | hosts | landfall cold | baseline cold | quotient | landfall warm | baseline warm | quotient |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n",
            hosts(large),
            hosts(small),
        );
        for scenario in Scenario::ALL {
            for &k in fleets.iter().filter(|&&k| k > small) {
                let (l_cold, b_cold) = figures.growth(small, k, scenario, Mode::Cold);
                let (l_warm, b_warm) = figures.growth(small, k, scenario, Mode::Warm);
                let _ = writeln!(
                    out,
                    "| {} | {k}/{small} | {l_cold:.2} | {b_cold:.2} | {:.2} | {l_warm:.2} | {b_warm:.2} | {:.2} |",
                    scenario.title(),
                    l_cold / b_cold,
                    l_warm / b_warm,
                );
            }
        }
        for scenario in [Scenario::Noop, Scenario::OneFile] {
            for mode in Mode::ALL {
                let (landfall, baseline) = figures.growth(small, large, scenario, mode);
                let quotient = landfall / baseline;
                growth_targets.push(Target {
                    met: quotient <= 1.1,
                    text: format!(
                        "growth, {}, {}: landfall's {large}/{small}-host time is {quotient:.2}× \
                         the baseline's; at most 1.1×",
                        scenario.title(),
                        mode.name()
                    ),
                });
            }
        }
    }

    let throughput = |s: Spread| hashing.bytes as f64 / s.median / 1_048_576.0;
    let _ = write!(
        out,
        "\n## Hashing the payload\n\n\
         {} files, {}, in the page cache unless said otherwise.\n\n\
         | | time | throughput |\n|---|---|---:|\n\
         | landfall, cold (empty hash cache) | {} | {:.0} MiB/s |\n\
         | landfall, warm (every file a cache hit) | {} | {:.0} MiB/s |\n\
         | blake3 crate, one thread, one process | {} | {:.0} MiB/s |\n\
         | `stat` of every file, nothing else | {} | |\n\
         | landfall, cold, page cache dropped first | {} | {:.0} MiB/s |\n",
        hashing.files,
        mib(hashing.bytes as f64),
        seconds(hashing.cold),
        throughput(hashing.cold),
        seconds(hashing.warm),
        throughput(hashing.warm),
        seconds(hashing.reference),
        throughput(hashing.reference),
        seconds(hashing.stat),
        seconds(hashing.from_disk),
        throughput(hashing.from_disk),
    );

    let mut targets: Vec<Target> = Vec::new();
    // The no-op, at 4 hosts or the fleet closest to it.
    if let Some(k) = closest(fleets, 4) {
        let standing = if k == 4 {
            String::new()
        } else {
            " (the fleet closest to 4 hosts that ran)".to_string()
        };
        for mode in Mode::ALL {
            let ratio = figures.time_ratio(k, Scenario::Noop, mode);
            targets.push(Target {
                met: ratio <= 1.5,
                text: format!(
                    "no-op, {}, {k} {}{standing}: {:.3} s is {ratio:.2}× the {} floor plus \
                     cargo's freshness check ({:.3} s); at most 1.5×",
                    mode.name(),
                    hosts(k),
                    figures.time(k, Scenario::Noop, mode, Side::Landfall).median,
                    mode.name(),
                    figures.baseline(k, Scenario::Noop, mode),
                ),
            });
        }
    }
    for &k in fleets {
        // (scenario, mode, time at most, bytes at most)
        let limits = [
            (Scenario::First, Mode::Cold, 1.2, 1.1),
            (Scenario::First, Mode::Warm, 1.2, 1.1),
            (Scenario::OneFile, Mode::Cold, 1.2, 1.1),
            (Scenario::OneFile, Mode::Warm, 1.1, 1.1),
        ];
        for (scenario, mode, time_limit, bytes_limit) in limits {
            let time = figures.time_ratio(k, scenario, mode);
            targets.push(Target {
                met: time <= time_limit,
                text: format!(
                    "{}, {}, {k} {}: wall time {time:.2}× the baseline's; at most {time_limit}×",
                    scenario.title(),
                    mode.name(),
                    hosts(k),
                ),
            });
            let bytes = figures.bytes_ratio(k, scenario, mode);
            targets.push(Target {
                met: bytes <= bytes_limit,
                text: format!(
                    "{}, {}, {k} {}: bytes sent {bytes:.2}× the baseline's; at most \
                     {bytes_limit}×",
                    scenario.title(),
                    mode.name(),
                    hosts(k),
                ),
            });
        }
    }
    targets.append(&mut growth_targets);
    let warm_share = hashing.warm.median / hashing.cold.median;
    targets.push(Target {
        met: warm_share < 0.05,
        text: format!(
            "warm re-hash: {:.1}% of the cold hash time with the files in the page cache \
             (`stat` alone is {:.1}%; {:.1}% of a cold hash from the disk); under 5%",
            warm_share * 100.0,
            hashing.stat.median / hashing.cold.median * 100.0,
            hashing.warm.median / hashing.from_disk.median * 100.0,
        ),
    });

    let met = targets.iter().filter(|t| t.met).count();
    let _ = writeln!(out, "\n## Targets: {met} of {} met\n", targets.len());
    for target in &targets {
        let mark = if target.met { "met" } else { "**missed**" };
        let _ = writeln!(out, "- {mark}: {}", target.text);
    }
    out
}
