//! The benchmark's workspace: a Cargo package whose binary embeds a 20 MiB
//! blob (so that it is a real, binary-like 20 MiB executable that cargo
//! builds), 2,000 data files of about 4 KiB and one template rendered per
//! host. Everything is generated from fixed seeds, so every run of the
//! benchmark deploys the same bytes.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

pub(crate) const BLOB_SIZE: usize = 20 << 20;
pub(crate) const DATA_FILES: usize = 2_000;
const DATA_DIRS: usize = 20;
/// The share of the blob a "rebuilt binary" changes, in tenths of a percent.
const REBUILT_PER_MILLE: usize = 100;
const REBUILT_REGIONS: usize = 40;

/// Where landfall deploys, on every host.
pub(crate) const LANDFALL_PATH: &str = "/srv/bench/landfall";
/// Where the baseline deploys, on every host.
pub(crate) const BASELINE_PATH: &str = "/srv/bench/baseline";
/// The hook both run after switching `current`.
pub(crate) const HOOK: &str = "test -s etc/app.toml";

/// splitmix64: a small, well-known generator; the benchmark needs
/// reproducible bytes, not cryptographic ones.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("below n")
    }
}

/// The generated workspace.
pub(crate) struct Workspace {
    pub(crate) root: PathBuf,
}

/// A fixed past time for generated files: their hash cache entries are
/// trusted from the first run on, as they would be for sources that were
/// not just written.
fn epoch() -> SystemTime {
    // 2026-01-01T00:00:00Z.
    SystemTime::UNIX_EPOCH + Duration::from_hours(490_896)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, bytes).with_context(|| format!("cannot write `{}`", path.display()))
}

/// Writes a file dated `age` after [`epoch`]. Each generated file gets its
/// own time, to the nanosecond, as files written by a checkout or a build
/// have: identical times would let rsync shorten the baseline's file list
/// (it leaves out a time equal to the previous entry's), which no real
/// source tree allows.
fn write_aged(path: &Path, bytes: &[u8], age: Duration) -> Result<()> {
    write(path, bytes)?;
    fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(epoch() + age)?;
    Ok(())
}

impl Workspace {
    /// Writes the workspace into `root` (replacing one left there), with an
    /// environment `bench<K>` for each fleet size, and commits it.
    pub(crate) fn generate(root: &Path, ssh_config: &Path, fleets: &[usize]) -> Result<Workspace> {
        let _ = fs::remove_dir_all(root);
        let ws = Workspace {
            root: root.to_path_buf(),
        };
        write(
            &root.join("Cargo.toml"),
            b"[package]\nname = \"benchapp\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
              # Its own workspace, not a member of the one it is generated in.\n[workspace]\n",
        )?;
        write(
            &root.join("src/main.rs"),
            b"//! A service of the benchmark: a 20 MiB executable.\n\n\
              static BLOB: &[u8] = include_bytes!(\"../blob.bin\");\n\n\
              fn main() {\n    let blob = std::hint::black_box(BLOB);\n    \
              println!(\"benchapp: {} bytes\", blob.len());\n}\n",
        )?;
        let mut blob = vec![0; BLOB_SIZE];
        Rng(1).fill(&mut blob);
        write_aged(&root.join("blob.bin"), &blob, Duration::ZERO)?;

        let mut rng = Rng(2);
        for i in 0..DATA_FILES {
            // About 4 KiB: 3,584 to 4,608 bytes.
            let mut bytes = vec![0; 3_584 + rng.below(1_025)];
            rng.fill(&mut bytes);
            let age = Duration::new(i as u64, u32::try_from(rng.below(1_000_000_000))?);
            write_aged(&ws.data_file(i), &bytes, age)?;
        }
        write(
            &root.join("templates/app.toml.j2"),
            b"# Rendered by landfall for {{ host.name }} in {{ env }}.\nname = \"{{ host.name }}\"\n\
              greeting = \"{{ vars.greeting }}\"\n",
        )?;
        write(&root.join("deploy.toml"), deploy_toml().as_bytes())?;
        for &k in fleets {
            write(
                &root.join(format!("environments/bench{k}.toml")),
                environment(ssh_config, k).as_bytes(),
            )?;
        }
        // The blob is generated, as a build's assets are, and is not
        // committed: a new 20 MiB version of it in every round would grow
        // the repository by as much.
        write(&root.join(".gitignore"), b"/target\n/blob.bin\n")?;
        let status = std::process::Command::new("cargo")
            .args(["generate-lockfile", "--offline", "--quiet"])
            .current_dir(root)
            .status()?;
        anyhow::ensure!(
            status.success(),
            "cargo generate-lockfile failed in the bench workspace"
        );
        ws.git(&["init", "-q"])?;
        ws.commit("benchmark workspace")?;
        Ok(ws)
    }

    /// Commits every change of the workspace.
    fn commit(&self, message: &str) -> Result<()> {
        self.git(&["add", "-A"])?;
        self.git(&[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            message,
        ])
    }

    fn git(&self, args: &[&str]) -> Result<()> {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(args)
            .status()
            .context("cannot run git")?;
        anyhow::ensure!(
            status.success(),
            "git {args:?} failed in the bench workspace"
        );
        Ok(())
    }

    pub(crate) fn payload(&self) -> PathBuf {
        self.root.join("payload")
    }

    pub(crate) fn data_file(&self, i: usize) -> PathBuf {
        self.payload()
            .join(format!("d{:02}", i % DATA_DIRS))
            .join(format!("f{i:04}.dat"))
    }

    /// Rewrites one 4 KiB data file, differently for every `round`, and
    /// commits it, as a change is before it is deployed.
    pub(crate) fn change_one_file(&self, round: u64) -> Result<()> {
        let mut bytes = vec![0; 4_096];
        Rng(1_000 + round).fill(&mut bytes);
        write(
            &self.data_file(usize::try_from(round).unwrap_or(0) % DATA_FILES),
            &bytes,
        )?;
        self.commit(&format!("change {round}"))
    }

    /// Rewrites about 10% of the blob the binary embeds, in regions spread
    /// over it, differently for every `round`; the binary must then be
    /// rebuilt.
    pub(crate) fn change_blob(&self, round: u64) -> Result<()> {
        let path = self.root.join("blob.bin");
        let mut blob = fs::read(&path)?;
        let region = BLOB_SIZE * REBUILT_PER_MILLE / 1_000 / REBUILT_REGIONS;
        let stride = BLOB_SIZE / REBUILT_REGIONS;
        let mut rng = Rng(2_000 + round);
        for r in 0..REBUILT_REGIONS {
            let start = r * stride + rng.below(stride - region);
            rng.fill(&mut blob[start..start + region]);
        }
        write(&path, &blob)
    }
}

fn deploy_toml() -> String {
    format!(
        "# The benchmark's service: a 20 MiB binary, 2,000 data files and a\n\
         # config rendered per host.\n\n\
         [project]\nname = \"bench\"\n\n\
         [build]\nprofile = \"release\"\n\n\
         [vars]\ngreeting = \"hello\"\n\n\
         [artifact.app]\nroles = [\"app\"]\npath = \"{LANDFALL_PATH}\"\nbins = [\"benchapp\"]\n\
         files = [{{ src = \"payload\", dst = \"data\" }}]\n\
         templates = [{{ src = \"app.toml.j2\", dst = \"etc/app.toml\" }}]\nkeep = 3\n\n\
         [artifact.app.hooks]\nactivate = \"{HOOK}\"\n"
    )
}

/// An environment of `hosts` hosts. Kept masters stay as long as the
/// baseline's do (see [`super::PERSIST_SECONDS`]); landfall works on as
/// many hosts at once as the baseline does.
fn environment(ssh_config: &Path, hosts: usize) -> String {
    let mut text = format!(
        "[environment]\nssh_config = \"{}\"\njobs = {}\nssh_persist = \"{}s\"\n",
        ssh_config.display(),
        super::JOBS,
        super::PERSIST_SECONDS,
    );
    for i in 1..=hosts {
        let _ = write!(text, "\n[hosts.host{i}]\nroles = [\"app\"]\n");
    }
    text
}
