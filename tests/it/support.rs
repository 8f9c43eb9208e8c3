//! The test harness: a temporary workspace holding a copy of
//! `examples/hello` and the repository's deployment of it, and a runner for
//! the real `cargo-deploy` binary.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use landfall_testbed::support::Addresses;

/// The repository root.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub(crate) use landfall_testbed::support::{free_port, wait_for};

/// A workspace in a temporary directory. Services its deploys start are
/// stopped when it is dropped.
pub(crate) struct Workspace {
    dir: tempfile::TempDir,
    /// Where hello listens on each of the two local hosts: an address of
    /// the workspace's own block and a free port.
    pub(crate) listen: [SocketAddrV4; 2],
    /// The block of `listen`'s addresses, held while the workspace (or a
    /// copy of it) lives.
    addresses: Arc<Addresses>,
}

/// What one run of `cargo-deploy` did.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl From<std::process::Output> for Outcome {
    fn from(output: std::process::Output) -> Outcome {
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Outcome {
    /// The JSON lines of a `--message-format json` run.
    pub(crate) fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// The events of one kind (`failed`, `pushed`, …), in order.
    pub(crate) fn events_of(&self, kind: &str) -> Vec<serde_json::Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == kind)
            .collect()
    }

    /// The final summary line, which must be the last one.
    pub(crate) fn summary(&self) -> serde_json::Value {
        let events = self.events();
        let last = events
            .last()
            .unwrap_or_else(|| panic!("no JSON output; stderr:\n{}", self.stderr))
            .clone();
        assert_eq!(last["event"], "summary", "{}", self.stdout);
        assert_eq!(events.iter().filter(|e| e["event"] == "summary").count(), 1);
        last
    }

    /// `host/artifact` -> status, from the summary.
    pub(crate) fn statuses(&self) -> Vec<(String, String)> {
        self.summary()["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    format!(
                        "{}/{}",
                        h["host"].as_str().unwrap(),
                        h["artifact"].as_str().unwrap()
                    ),
                    h["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    pub(crate) fn release_of(&self, host: &str, artifact: &str) -> String {
        let summary = self.summary();
        let entry = summary["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == host && h["artifact"] == artifact)
            .unwrap();
        entry["release"].as_str().unwrap().to_string()
    }

    /// Asserts that stderr says each of `parts`.
    #[track_caller]
    pub(crate) fn assert_says(&self, parts: &[&str]) -> &Outcome {
        for part in parts {
            assert!(
                self.stderr.contains(part),
                "no `{part}` in:\n{}",
                self.stderr
            );
        }
        self
    }

    #[track_caller]
    pub(crate) fn assert_code(&self, code: i32) -> &Outcome {
        assert_eq!(
            self.code, code,
            "exit status\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A `Cargo.lock` for a workspace of `examples/hello` alone: the
/// repository's, with what hello does not use pruned by cargo itself
/// (offline: it changes no version).
fn hello_lock() -> &'static str {
    static LOCK: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("landfall-it-lock-")
            .tempdir()
            .unwrap();
        let root = dir.path();
        let repo = repo();
        copy_dir(
            &repo.join("examples/hello/src"),
            &root.join("examples/hello/src"),
        );
        fs::copy(
            repo.join("examples/hello/Cargo.toml"),
            root.join("examples/hello/Cargo.toml"),
        )
        .unwrap();
        fs::write(root.join("Cargo.toml"), HELLO_WORKSPACE).unwrap();
        fs::copy(repo.join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
        update_lock(root);
        fs::read_to_string(root.join("Cargo.lock")).unwrap()
    })
}

/// Brings the `Cargo.lock` of the workspace at `root` in line with its
/// members, offline: cargo itself adds and prunes packages, and changes no
/// version.
pub(crate) fn update_lock(root: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["update", "--workspace", "--offline", "--quiet"])
        .current_dir(root)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cannot update the Cargo.lock of `{}`: {}",
        root.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The `Cargo.toml` of a workspace of `examples/hello` alone.
const HELLO_WORKSPACE: &str = "[workspace]\nresolver = \"3\"\nmembers = [\"examples/hello\"]\n\n\
     [workspace.package]\nedition = \"2024\"\n\n[workspace.lints.rust]\nunsafe_code = \"forbid\"\n";

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// `examples/hello`'s binary, built once per run of the tests (in release,
/// as the deployments build it) and shared by every workspace whose tests
/// are not about building: copied in as a file, it saves each of them a
/// build of its own.
fn prebuilt_hello() -> &'static Path {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| landfall_testbed::support::build_hello(&repo()))
}

impl Workspace {
    /// [`Workspace::hello_built`], with `hello` prebuilt: `app` deploys the
    /// binary built once for every test, as a file, and nothing is built.
    pub(crate) fn hello() -> Workspace {
        let ws = Workspace::hello_built();
        ws.prebuilt();
        ws
    }

    /// [`Workspace::hello_service_built`], with `hello` prebuilt (see
    /// [`Workspace::hello`]).
    pub(crate) fn hello_service() -> Workspace {
        let ws = Workspace::hello_service_built();
        ws.prebuilt();
        ws
    }

    /// Makes `app` deploy the prebuilt `hello` as a file rather than build
    /// it; deploy.toml keeps its lines where they were.
    fn prebuilt(&self) {
        fs::create_dir_all(self.path("prebuilt")).unwrap();
        fs::copy(prebuilt_hello(), self.path("prebuilt/hello")).unwrap();
        let text = self.read("deploy.toml");
        let file = "{ src = \"prebuilt/hello\", dst = \"bin/hello\" }";
        let text = if text.contains("bins = [\"hello\"]\nfiles = [") {
            text.replacen(
                "bins = [\"hello\"]\nfiles = [",
                &format!("# hello is prebuilt for the tests\nfiles = [{file}, "),
                1,
            )
        } else {
            text.replacen("bins = [\"hello\"]", &format!("files = [{file}]"), 1)
        };
        self.write("deploy.toml", &text);
    }

    /// `examples/hello` deployed by hooks (`fixtures/hooks-deploy.toml`: a
    /// restart script and a health hook), in a workspace of its own, with
    /// two local hosts, each on an address of its own; `app` builds `hello`.
    pub(crate) fn hello_built() -> Workspace {
        let ws = Workspace::hello_service_built();
        let fixtures = repo().join("tests/it/fixtures");
        fs::copy(fixtures.join("hooks-deploy.toml"), ws.path("deploy.toml")).unwrap();
        fs::create_dir_all(ws.path("examples/hello/scripts")).unwrap();
        fs::copy(
            fixtures.join("restart"),
            ws.path("examples/hello/scripts/restart"),
        )
        .unwrap();
        ws
    }

    /// The repository's own deployment of `examples/hello` (`deploy.toml`,
    /// which runs it as a service), in a workspace of its own, with two
    /// local hosts, each on an address of its own; `app` builds `hello`.
    pub(crate) fn hello_service_built() -> Workspace {
        let dir = tempfile::Builder::new()
            .prefix("landfall-it-")
            .tempdir()
            .unwrap();
        let repo = repo();
        let root = dir.path();
        for sub in ["src", "static", "site"] {
            copy_dir(
                &repo.join("examples/hello").join(sub),
                &root.join("examples/hello").join(sub),
            );
        }
        fs::copy(
            repo.join("examples/hello/Cargo.toml"),
            root.join("examples/hello/Cargo.toml"),
        )
        .unwrap();
        fs::write(root.join("Cargo.toml"), HELLO_WORKSPACE).unwrap();
        fs::write(root.join("Cargo.lock"), hello_lock()).unwrap();
        copy_dir(&repo.join("templates"), &root.join("templates"));
        fs::copy(repo.join("deploy.toml"), root.join("deploy.toml")).unwrap();
        let addresses = Addresses::lease();
        let listen = [1, 2].map(|n| SocketAddrV4::new(addresses.host(n), free_port()));
        let ws = Workspace {
            dir,
            listen,
            addresses: Arc::new(addresses),
        };
        ws.write(
            "environments/dev.toml",
            &format!(
                "[environment]\njobs = 4\n\n\
                 [hosts.web1]\naddress = \"127.0.0.1\"\nroles = [\"web\"]\nvars = {{ bind = \"{}\", port = {} }}\n\n\
                 [hosts.web2]\naddress = \"127.0.0.1\"\nroles = [\"web\"]\nvars = {{ bind = \"{}\", port = {} }}\n",
                listen[0].ip(),
                listen[0].port(),
                listen[1].ip(),
                listen[1].port()
            ),
        );
        ws
    }

    /// Points `environments/testbed.toml` at a running test bed: every host
    /// has role `web` and runs hello on its own address and `port`, and is
    /// deployed to as root, which is then the account hello runs as.
    pub(crate) fn use_testbed(&self, testbed: &landfall_testbed::Testbed, port: u16) {
        let mut env = format!(
            "[environment]\nssh_config = \"{}\"\njobs = 8\nuser = \"root\"\n",
            testbed.ssh_config().display()
        );
        for host in &testbed.hosts {
            let _ = write!(
                env,
                "\n[hosts.{}]\nroles = [\"web\"]\nvars = {{ bind = \"{}\", port = {port} }}\n",
                host.name, host.address
            );
        }
        self.write("environments/testbed.toml", &env);
    }

    /// Gives `app` a rollout: `[artifact.app.rollout]` with `keys`.
    pub(crate) fn roll_out_app(&self, keys: &str) {
        self.edit(
            "deploy.toml",
            "after = [\"site\"]\n",
            &format!("after = [\"site\"]\n\n[artifact.app.rollout]\n{keys}\n"),
        );
    }

    /// Makes the service of one test-bed host report itself unhealthy.
    pub(crate) fn make_unhealthy(&self, host: &str) {
        let header = format!("[hosts.{host}]\nroles = [\"web\"]\nvars = {{");
        self.edit(
            "environments/testbed.toml",
            &header,
            &format!("{header} healthy = false,"),
        );
    }

    /// Takes the `site` artifact out of the hooks deployment
    /// (`Workspace::hello`), and `app`'s `after` of it.
    pub(crate) fn remove_site(&self) {
        let text = self.read("deploy.toml");
        let start = text.find("# Static pages").unwrap();
        let end = text[start..].find("keep = 3\n").unwrap() + start + "keep = 3\n".len();
        self.write(
            "deploy.toml",
            &(text[..start].replace("after = [\"site\"]\n", "") + &text[end..]),
        );
    }

    /// The orphans `status ENV` reports, as JSON.
    pub(crate) fn orphans(&self, env: &str) -> Vec<serde_json::Value> {
        let status = self.run(&["status", env, "--message-format", "json"]);
        status.assert_code(0);
        let report: serde_json::Value =
            serde_json::from_str(status.stdout.lines().last().unwrap()).unwrap();
        report["orphans"].as_array().unwrap().clone()
    }

    /// Makes the workspace a git repository if it is not one, and commits
    /// everything; returns the commit.
    pub(crate) fn git_commit(&self, message: &str) -> String {
        if !self.path(".git").exists() {
            self.git(&["init", "-q"]);
            self.write(".gitignore", "/target\n");
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// A fresh clone of the workspace's repository, as CI checks it out.
    pub(crate) fn clone_repo(&self) -> Workspace {
        self.duplicate("landfall-it-clone-", |to| {
            let mut git = Command::new("git");
            git.args(["clone", "-q"]).arg(self.root()).arg(to);
            git
        })
    }

    /// A copy of the workspace, with what it has built, as a second
    /// operator's checkout.
    pub(crate) fn copy(&self) -> Workspace {
        self.duplicate("landfall-it-copy-", |to| {
            let mut cp = Command::new("cp");
            cp.arg("-a")
                .arg(format!("{}/.", self.root().display()))
                .arg(to);
            cp
        })
    }

    /// A new workspace in a fresh temporary directory, filled by the
    /// command `fill` makes for it, with the same ports.
    fn duplicate(&self, prefix: &str, fill: impl FnOnce(&Path) -> Command) -> Workspace {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        let out = fill(dir.path()).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Workspace {
            dir,
            listen: self.listen,
            addresses: Arc::clone(&self.addresses),
        }
    }

    /// An address of the workspace's own block that nothing listens on:
    /// a connection to it is refused, whatever the port.
    /// An address of the workspace's block that no host uses, for a
    /// server beside the hosts (`n` from 3 to 250).
    pub(crate) fn spare_address(&self, n: usize) -> std::net::Ipv4Addr {
        assert!((3..=250).contains(&n), "addresses 1, 2 and 253 are taken");
        self.addresses.host(n)
    }

    pub(crate) fn silent_address(&self) -> std::net::Ipv4Addr {
        self.addresses.host(253)
    }

    /// Runs git in the workspace, which must succeed; returns its output.
    pub(crate) fn git(&self, args: &[&str]) -> String {
        landfall_testbed::support::git(self.root(), args)
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub(crate) fn write(&self, rel: &str, content: &str) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Replaces text in a file, which must contain it.
    pub(crate) fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "`{rel}` has no `{from}`");
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// `cargo-deploy ARGS` in the workspace, with an environment that does
    /// not leak the test runner's build settings.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-deploy"));
        cmd.args(args);
        self.prepare(cmd)
    }

    /// `cmd` run in the workspace, with an environment that does not leak
    /// the test runner's build settings, nor its `CI` (which would make a
    /// command on a test's pseudo-terminal refuse to ask).
    fn prepare(&self, mut cmd: Command) -> Command {
        cmd.current_dir(self.root())
            .env("NO_COLOR", "1")
            .env_remove("CI")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("LANDFALL_AGE_IDENTITY")
            .env_remove("VISUAL")
            .env_remove("EDITOR");
        cmd
    }

    /// Runs `cargo-deploy ARGS` in the workspace.
    pub(crate) fn run(&self, args: &[&str]) -> Outcome {
        self.run_with(args, &[])
    }

    /// Runs `cargo-deploy ARGS` in the workspace with more environment
    /// variables.
    pub(crate) fn run_with(&self, args: &[&str], vars: &[(&str, &Path)]) -> Outcome {
        let mut command = self.command(args);
        command.envs(vars.iter().copied());
        Outcome::from(command.output().unwrap())
    }

    /// Runs `cargo-deploy ARGS` in the workspace under the file mode
    /// creation mask `umask`, with more environment variables.
    pub(crate) fn run_under_umask(
        &self,
        umask: u32,
        args: &[&str],
        vars: &[(&str, &Path)],
    ) -> Outcome {
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(format!("umask {umask:03o} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_cargo-deploy"))
            .args(args);
        let mut cmd = self.prepare(shell);
        cmd.envs(vars.iter().copied());
        Outcome::from(cmd.output().unwrap())
    }

    /// Starts `cargo-deploy ARGS` in the background, in a process group of
    /// its own (so that a test can kill it with everything it started).
    pub(crate) fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.spawn_with(args, &[])
    }

    pub(crate) fn spawn_with(&self, args: &[&str], vars: &[(&str, &Path)]) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        self.command(args)
            .envs(vars.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap()
    }

    /// Runs `cargo-deploy ARGS`, which must end within `seconds`: past
    /// that, it is killed with everything it started, and the test fails
    /// (a hang is a failure, never a wait).
    pub(crate) fn run_within(&self, seconds: u64, args: &[&str]) -> Outcome {
        finish_within(self.spawn(args), seconds, &args.join(" "))
    }

    /// The directory that stands for `path` on `host` in local mode.
    pub(crate) fn host_dir(&self, host: &str, path: &str) -> PathBuf {
        self.path("target/landfall/local/dev")
            .join(host)
            .join(path.trim_start_matches('/'))
    }

    /// The release `current` points at, for a host and artifact path.
    pub(crate) fn current(&self, host: &str, path: &str) -> Option<String> {
        let link = fs::read_link(self.host_dir(host, path).join("current")).ok()?;
        Some(link.file_name().unwrap().to_string_lossy().into_owned())
    }

    pub(crate) fn releases(&self, host: &str, path: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.host_dir(host, path).join("releases"))
            .map(|dir| {
                dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Every file and directory under the workspace, for "nothing changed"
    /// checks.
    pub(crate) fn snapshot(&self) -> Vec<PathBuf> {
        landfall_testbed::support::below(self.root())
            .into_iter()
            .map(|(path, _)| path)
            .collect()
    }
}

impl Drop for Workspace {
    /// Stops the services local deploys started: by the restart script
    /// (`shared/run/hello.pid`) or as a service (`.landfall/service.pid`,
    /// and each slot's of one handed over, `.landfall/service-SLOT.pid`).
    fn drop(&mut self) {
        for host in ["web1", "web2"] {
            let app = self.host_dir(host, "/srv/hello/app");
            for pid_file in [
                app.join("shared/run/hello.pid"),
                app.join(".landfall/service.pid"),
                app.join(".landfall/service-blue.pid"),
                app.join(".landfall/service-green.pid"),
            ] {
                if let Ok(pid) = fs::read_to_string(pid_file) {
                    let _ = Command::new("kill").arg(pid.trim()).status();
                }
            }
        }
    }
}

/// Whether process `pid` runs (is there, and has not ended unreaped).
pub(crate) fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// Waits for a process started by [`Workspace::spawn`], which must end
/// within `seconds`: past that, it is killed with everything it started,
/// and the test fails (a hang is a failure, never a wait).
pub(crate) fn finish_within(child: std::process::Child, seconds: u64, what: &str) -> Outcome {
    let pid = child.id();
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    if let Ok(output) = wait.recv_timeout(std::time::Duration::from_secs(seconds)) {
        return Outcome::from(output.unwrap());
    }
    landfall_testbed::support::kill_group(pid);
    let output = wait.recv().unwrap().unwrap();
    panic!(
        "`cargo deploy {what}` did not end within {seconds}s; stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Kills a process started by [`Workspace::spawn`] and everything in its
/// process group, at once.
pub(crate) fn kill_group(child: &mut std::process::Child) {
    landfall_testbed::support::kill_group(child.id());
    let _ = child.wait();
}

/// Asserts that `host`, at `address`, serves the example: its greeting on
/// `/` and the site's page under `/static/`.
#[track_caller]
pub(crate) fn serves_hello(host: &str, address: &str, port: u16) {
    assert_eq!(
        http_get_at(address, port, "/"),
        Some((200, format!("hello from {host}\n")))
    );
    let (status, page) = http_get_at(address, port, "/static/index.html").unwrap();
    assert_eq!(status, 200, "{host}");
    assert!(page.contains("The hello site"), "{host}: {page}");
}

/// `GET http://LISTEN/PATH`: the status and body.
pub(crate) fn http_get(listen: SocketAddrV4, path: &str) -> Option<(u16, String)> {
    http_get_at(&listen.ip().to_string(), listen.port(), path)
}

/// `GET http://ADDRESS:PORT/PATH`: the status and body.
pub(crate) fn http_get_at(address: &str, port: u16, path: &str) -> Option<(u16, String)> {
    http_get_with(address, port, path, "")
}

/// `GET http://ADDRESS:PORT/PATH` with extra header lines (each ending in
/// `\r\n`): the status and body.
pub(crate) fn http_get_with(
    address: &str,
    port: u16,
    path: &str,
    headers: &str,
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect((address, port)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{headers}\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((status, body))
}

/// A new cargo package, `shop`, without landfall's files, in a temporary
/// directory of its own: the directory, and the package's root.
pub(crate) fn new_package() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["new", "-q", "--vcs", "none", "shop"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let root = dir.path().join("shop");
    (dir, root)
}

/// A workspace deploying to a fresh test bed of three hosts.
pub(crate) struct Bed {
    pub(crate) ws: Workspace,
    pub(crate) testbed: landfall_testbed::Scoped,
    pub(crate) port: u16,
}

impl Bed {
    pub(crate) fn new() -> Bed {
        let testbed = landfall_testbed::Scoped::up(3)
            .expect("the test bed starts (this needs root, sshd and util-linux)");
        let ws = Workspace::hello();
        let port = free_port();
        ws.use_testbed(&testbed, port);
        Bed { ws, testbed, port }
    }

    pub(crate) fn deploy(&self, extra: &[&str]) -> Outcome {
        let mut args = vec!["deploy", "testbed", "--message-format", "json"];
        args.extend_from_slice(extra);
        self.ws.run(&args)
    }

    pub(crate) fn hosts(&self) -> Vec<(String, String)> {
        self.testbed
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.address.clone()))
            .collect()
    }

    /// A path under a host's `/srv`, seen from outside.
    pub(crate) fn srv(&self, host: &str, path: &str) -> std::path::PathBuf {
        self.testbed.srv(host).join(path)
    }

    pub(crate) fn current(&self, host: &str, path: &str) -> Option<String> {
        let link = fs::read_link(self.srv(host, path).join("current")).ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    }

    pub(crate) fn pid(&self, host: &str) -> String {
        fs::read_to_string(self.srv(host, "hello/app").join("shared/run/hello.pid")).unwrap()
    }

    /// Activates `app` one host at a time, in host order, with a short
    /// health timeout: host1 is switched before host2 is tried.
    pub(crate) fn activate_one_host_at_a_time(&self) {
        self.ws.edit(
            "deploy.toml",
            "health_timeout = \"10s\"",
            "health_timeout = \"2s\"",
        );
        self.ws.edit(
            "deploy.toml",
            "after = [\"site\"]",
            "after = [\"site\"]\nmax_parallel = 1",
        );
    }

    /// Sessions sshd has opened on a host, from its own log.
    pub(crate) fn sessions(&self, host: &str) -> usize {
        let log = fs::read_to_string(self.testbed.sshd_log(host)).unwrap_or_default();
        log.matches("server_input_channel_open: ctype session")
            .count()
    }

    /// [`sessions`](Bed::sessions) of every host, in host order.
    pub(crate) fn sessions_on_every_host(&self) -> Vec<usize> {
        self.hosts().iter().map(|(h, _)| self.sessions(h)).collect()
    }

    /// A new greeting in the config of `app` on every host.
    pub(crate) fn greet_howdy(&self) {
        self.ws.edit(
            "deploy.toml",
            "greeting = \"hello\"",
            "greeting = \"howdy\"",
        );
    }
}

/// The release `current` points at under `path` on a test-bed host, read
/// through the host's filesystem.
pub(crate) fn current_on(
    testbed: &landfall_testbed::Testbed,
    host: &str,
    path: &str,
) -> Option<String> {
    let link = fs::read_link(testbed.srv(host).join(path).join("current")).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}
