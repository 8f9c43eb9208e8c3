//! The hashing measurement, the machine's description and the report: a
//! Markdown table per topic, then every target as met or missed.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, ensure};
use landfall::hash::HashCache;

use super::measure::Spread;
use super::workspace::{DATA_FILES, Workspace};
use super::{Phases, Results, Scenario, Side};

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
        let mut cold_cache = HashCache::load(&cache);
        cold_cache.hash_files(&paths)?;
        cold_cache.save()?;
        cold.push(started.elapsed().as_secs_f64());
        ensure!(
            cold_cache.files_read == paths.len(),
            "a cold hash reads every file"
        );

        let started = Instant::now();
        let mut warm_cache = HashCache::load(&cache);
        warm_cache.hash_files(&paths)?;
        warm.push(started.elapsed().as_secs_f64());
        ensure!(
            warm_cache.files_read == 0,
            "the warm hash read {} files again",
            warm_cache.files_read
        );

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
        let mut disk_cache = HashCache::load(&cache);
        disk_cache.hash_files(&paths)?;
        disk_cache.save()?;
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

/// A line describing the machine and the tools' versions.
pub(crate) fn machine(root: &Path, runs: usize) -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("unknown CPU", |l| l.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
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
    format!(
        "{cpu}, {cores} cores, {memory_gib:.0} GiB; {}; {}; {}; landfall {} ({}); {}. \
         Each figure is the median of {runs} runs, with the least and greatest in brackets; \
         landfall and the baseline ran alternately, in the same run.",
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

#[allow(clippy::cast_precision_loss)] // byte and KiB counts far below 2^52
pub(crate) fn render(
    machine: &str,
    fleets: &[usize],
    results: &Results,
    phases: &Phases,
    hashing: &Hashing,
) -> String {
    let time = |k, scenario, side| {
        Spread::of(
            results
                .get(&(k, scenario, side))
                .into_iter()
                .flatten()
                .map(|s| s.seconds),
        )
    };
    let sent = |k, scenario, side| {
        Spread::of(
            results
                .get(&(k, scenario, side))
                .into_iter()
                .flatten()
                .map(|s| s.sent as f64),
        )
        .median
    };
    let peak = |k, scenario| {
        results
            .get(&(k, scenario, Side::Landfall))
            .into_iter()
            .flatten()
            .map(|s| s.peak_kib)
            .max()
            .unwrap_or(0)
    };
    // The no-op's baseline is the floor plus cargo's freshness check.
    let baseline_time = |k, scenario: Scenario| {
        let base = time(k, scenario, Side::Baseline).median;
        if scenario == Scenario::Noop {
            base + time(k, scenario, Side::Cargo).median
        } else {
            base
        }
    };

    let mut out = String::from("# landfall benchmark\n\n");
    let _ = writeln!(out, "{machine}\n");
    out.push_str(
        "## Deploys\n\n\
         | hosts | scenario | landfall | baseline | time ratio | landfall sent | baseline sent | bytes ratio | landfall peak RSS |\n\
         |---:|---|---|---|---:|---:|---:|---:|---:|\n",
    );
    let mut targets: Vec<Target> = Vec::new();
    for &k in fleets {
        for scenario in Scenario::ALL {
            let landfall = time(k, scenario, Side::Landfall);
            let baseline = if scenario == Scenario::Noop {
                format!(
                    "floor {} + cargo {}",
                    seconds(time(k, scenario, Side::Baseline)),
                    seconds(time(k, scenario, Side::Cargo))
                )
            } else {
                seconds(time(k, scenario, Side::Baseline))
            };
            let ratio = landfall.median / baseline_time(k, scenario);
            let (l_sent, b_sent) = (
                sent(k, scenario, Side::Landfall),
                sent(k, scenario, Side::Baseline),
            );
            let _ = writeln!(
                out,
                "| {k} | {} | {} | {baseline} | {ratio:.2} | {} | {} | {:.2} | {} |",
                scenario.title(),
                seconds(landfall),
                mib(l_sent),
                mib(b_sent),
                l_sent / b_sent,
                mib(peak(k, scenario) as f64 * 1_024.0),
            );
            let hosts = if k == 1 { "host" } else { "hosts" };
            match scenario {
                Scenario::Noop => targets.push(Target {
                    met: ratio <= 1.5,
                    text: format!(
                        "no-op, {k} {hosts}: {:.3} s is {ratio:.2}× the floor plus cargo's \
                         freshness check ({:.3} s); at most 1.5×",
                        landfall.median,
                        baseline_time(k, scenario)
                    ),
                }),
                Scenario::First | Scenario::OneFile => {
                    targets.push(Target {
                        met: ratio <= 1.2,
                        text: format!(
                            "{}, {k} {hosts}: wall time {ratio:.2}× the baseline's; at most 1.2×",
                            scenario.title()
                        ),
                    });
                    targets.push(Target {
                        met: l_sent <= 1.1 * b_sent,
                        text: format!(
                            "{}, {k} {hosts}: bytes sent {:.2}× the baseline's; at most 1.1×",
                            scenario.title(),
                            l_sent / b_sent
                        ),
                    });
                }
                Scenario::Binary => {}
            }
        }
    }

    out.push_str(
        "\n## Where landfall's time goes\n\n\
         Medians of the phases in landfall's own summary; the rest of its wall time is \
         loading the configuration, probing the hosts and closing connections.\n\n\
         | hosts | scenario | build (cargo) | assemble | push | activate |\n\
         |---:|---|---:|---:|---:|---:|\n",
    );
    for &k in fleets {
        for scenario in Scenario::ALL {
            let phase = |name: &str| {
                Spread::of(
                    phases
                        .get(&(k, scenario))
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t.get(name).copied()),
                )
                .median
            };
            let _ = writeln!(
                out,
                "| {k} | {} | {:.3} s | {:.3} s | {:.3} s | {:.3} s |",
                scenario.title(),
                phase("build"),
                phase("assemble"),
                phase("push"),
                phase("activate")
            );
        }
    }

    if let (Some(&small), Some(&large)) = (fleets.first(), fleets.last())
        && small < large
    {
        let _ = write!(
            out,
            "\n## Growth from {small} to {large} hosts\n\n\
             | scenario | landfall {large}/{small} | baseline {large}/{small} | quotient |\n\
             |---|---:|---:|---:|\n"
        );
        for scenario in [Scenario::Noop, Scenario::OneFile] {
            let landfall = time(large, scenario, Side::Landfall).median
                / time(small, scenario, Side::Landfall).median;
            let baseline = baseline_time(large, scenario) / baseline_time(small, scenario);
            let quotient = landfall / baseline;
            let _ = writeln!(
                out,
                "| {} | {landfall:.2} | {baseline:.2} | {quotient:.2} |",
                scenario.title()
            );
            targets.push(Target {
                met: quotient <= 1.1,
                text: format!(
                    "growth, {}: landfall's {large}/{small}-host time is {quotient:.2}× the \
                     baseline's; at most 1.1×",
                    scenario.title()
                ),
            });
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
