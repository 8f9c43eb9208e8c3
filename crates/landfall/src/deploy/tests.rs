//! The fleet's logic over the local transport, in milliseconds: locks,
//! switching back one host or every host, `on_failure = "stop"`, taking
//! over a lock a gone deploy left, rollback, and the dry run's decision.
//! Each host is a directory; the artifact is files only, so nothing is
//! built. The sshd test bed is for end-to-end tests (`tests/it/`).

use std::fs;
use std::path::PathBuf;

use super::Status::{Deployed, RolledBack, Skipped};
use super::{DeployOptions, Identity, Run, Status, Summary};
use crate::config::tests::Fixture;
use crate::config::{Environment, Project};
use crate::event::Event;
use crate::git::Revision;
use crate::secrets::Secrets;
use crate::transport::Local;

/// A workspace of one files-only artifact on three local hosts. Its
/// hooks append to `shared/hooks` and fail where a host's variable says.
struct Fleet {
    fixture: Fixture,
}

const DEPLOY: &str = r#"
[vars]
version = "1"
healthy = "yes"

[artifact.app]
roles = ["web"]
path = "/srv/app"
files = [{ src = "static", dst = "static" }]
shared = ["log"]
keep = 5
max_parallel = 1

[artifact.app.hooks]
activate = "echo activate {{ vars.version }} >>$LANDFALL_PATH/shared/log/hooks"
health = "echo health {{ vars.version }} >>$LANDFALL_PATH/shared/log/hooks && test {{ vars.healthy }} = yes"
health_timeout = "1s"
"#;

impl Fleet {
    fn new(on_failure: &str) -> Fleet {
        let env = format!(
            "[environment]\non_failure = \"{on_failure}\"\n\n\
             [hosts.web1]\nroles = [\"web\"]\n[hosts.web2]\nroles = [\"web\"]\n\
             [hosts.web3]\nroles = [\"web\"]\n"
        );
        Fleet {
            fixture: Fixture::new(&[
                ("deploy.toml", DEPLOY),
                ("environments/dev.toml", &env),
                ("static/index.html", "v1\n"),
            ]),
        }
    }

    /// A fleet deployed once, successfully.
    fn deployed(on_failure: &str) -> Fleet {
        let fleet = Fleet::new(on_failure);
        let first = fleet.deploy(&DeployOptions::default());
        assert!(first.ok, "{first:?}");
        fleet
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.fixture.dir.path().join(file);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no `{from}`");
        fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    /// Makes one host's health check fail.
    fn unhealthy(&self, host: &str) {
        self.edit(
            "environments/dev.toml",
            &format!("[hosts.{host}]\nroles = [\"web\"]\n"),
            &format!("[hosts.{host}]\nroles = [\"web\"]\nvars = {{ healthy = \"no\" }}\n"),
        );
    }

    fn load(&self) -> (Project, Environment) {
        self.fixture.load("dev")
    }

    fn dir(&self, host: &str) -> PathBuf {
        self.fixture
            .dir
            .path()
            .join("target/landfall/local/dev")
            .join(host)
            .join("srv/app")
    }

    fn current(&self, host: &str) -> Option<String> {
        let link = fs::read_link(self.dir(host).join("current")).ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    }

    fn hooks(&self, host: &str) -> Vec<String> {
        fs::read_to_string(self.dir(host).join("shared/log/hooks"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Runs `f` with a run over the local hosts.
    fn with_run<T>(&self, f: impl FnOnce(&Run<'_>, &crate::plan::Plan) -> T) -> T {
        self.with_run_events(|_| {}, f)
    }

    /// Runs `f` with a run over the local hosts whose events go to `events`.
    fn with_run_events<T>(
        &self,
        events: impl Fn(Event) + Sync,
        f: impl FnOnce(&Run<'_>, &crate::plan::Plan) -> T,
    ) -> T {
        let (project, env) = self.load();
        let plan = crate::plan::plan(&project, &env, &[], true, &Secrets::none()).unwrap();
        let local = Local::new(&project.workspace.landfall_dir(), &env.name);
        let identity = Identity::current(Revision {
            commit: Some("c0ffee".repeat(6) + "c0ff"),
            dirty: crate::git::Dirty::known(false),
            time: 0,
        });
        let run = Run {
            project: &project,
            env: &env,
            transport: &local,
            identity: &identity,
            jobs: 4,
            events: &events,
            cancel: &crate::interrupt::Cancel::default(),
        };
        f(&run, &plan)
    }

    fn deploy(&self, options: &DeployOptions) -> Summary {
        self.with_run(|run, plan| {
            let built = built(run.project, plan);
            super::deploy(run, &built.releases, options)
        })
    }

    fn statuses(summary: &Summary) -> Vec<(String, Status)> {
        summary
            .hosts
            .iter()
            .map(|o| (o.host.clone(), o.status))
            .collect()
    }
}

fn statuses(pairs: &[(&str, Status)]) -> Vec<(String, Status)> {
    pairs.iter().map(|(h, s)| ((*h).to_string(), *s)).collect()
}

#[test]
fn a_failure_switches_back_every_host_switched_with_rollback_all() {
    let fleet = Fleet::new("rollback-all");
    let first = fleet.deploy(&DeployOptions::default());
    assert!(first.ok, "{first:?}");
    let old = fleet.current("web1").unwrap();
    assert_eq!(fleet.current("web3").as_deref(), Some(old.as_str()));

    fleet.edit("deploy.toml", "version = \"1\"", "version = \"2\"");
    fleet.unhealthy("web2");
    let second = fleet.deploy(&DeployOptions::default());
    assert!(!second.ok);
    assert_eq!(
        Fleet::statuses(&second),
        statuses(&[
            ("web1", RolledBack),
            ("web2", RolledBack),
            ("web3", Skipped)
        ])
    );
    for host in ["web1", "web2", "web3"] {
        assert_eq!(fleet.current(host).as_deref(), Some(old.as_str()), "{host}");
        assert!(!fleet.dir(host).join(".landfall/lock").exists(), "{host}");
    }
    // web1 switched, then back when web2 failed; each switch back ran the
    // hooks of the release it went back to (version 1).
    assert_eq!(
        fleet.hooks("web1"),
        [
            "activate 1",
            "health 1",
            "activate 2",
            "health 2",
            "activate 1",
            "health 1"
        ]
    );
    let web2 = fleet.hooks("web2");
    assert_eq!(web2[..3], ["activate 1", "health 1", "activate 2"]);
    assert_eq!(
        web2[web2.len() - 2..],
        ["activate 1", "health 1"],
        "{web2:?}"
    );
    assert_eq!(fleet.hooks("web3"), ["activate 1", "health 1"]);
}

#[test]
fn on_failure_stop_keeps_the_hosts_already_switched() {
    let fleet = Fleet::deployed("stop");
    let old = fleet.current("web1").unwrap();
    fleet.edit("deploy.toml", "version = \"1\"", "version = \"2\"");
    fleet.unhealthy("web2");
    let second = fleet.deploy(&DeployOptions::default());
    assert_eq!(
        Fleet::statuses(&second),
        statuses(&[("web1", Deployed), ("web2", RolledBack), ("web3", Skipped)])
    );
    assert_ne!(fleet.current("web1").as_deref(), Some(old.as_str()));
    assert_eq!(fleet.current("web2").as_deref(), Some(old.as_str()));
    assert_eq!(fleet.current("web3").as_deref(), Some(old.as_str()));
}

/// A lock line as a deploy writes it.
fn lock_line(from: &str, pid: u32) -> String {
    serde_json::json!({
        "user": "ann", "from": from, "pid": pid, "since": "2026-01-01T00:00:00Z",
        "env": "dev", "token": "t",
    })
    .to_string()
}

#[test]
fn a_lock_of_a_live_deploy_refuses_the_run_on_every_host() {
    let fleet = Fleet::deployed("rollback-all");
    let old = fleet.current("web1").unwrap();
    fleet.edit("static/index.html", "v1", "v2");
    let lock = fleet.dir("web3").join(".landfall/lock");
    fs::write(&lock, lock_line("another-machine", 1)).unwrap();
    let refused = fleet.deploy(&DeployOptions::default());
    assert!(!refused.ok);
    let web3 = &refused.hosts[2];
    assert_eq!(web3.status, Status::Failed);
    let message = web3.message.as_deref().unwrap();
    assert!(
        message.contains("is locked by another deploy: ann@another-machine (pid 1"),
        "{message}"
    );
    assert!(message.contains("--break-lock"), "{message}");
    for host in ["web1", "web2", "web3"] {
        assert_eq!(fleet.current(host).as_deref(), Some(old.as_str()), "{host}");
    }
    assert!(lock.exists(), "another deploy's lock stays");
    assert!(!fleet.dir("web1").join(".landfall/lock").exists());

    // `--break-lock` clears it.
    let broken = fleet.deploy(&DeployOptions {
        break_lock: true,
        ..DeployOptions::default()
    });
    assert!(broken.ok, "{broken:?}");
    assert!(!lock.exists());
}

/// A lock line as a deploy of this machine, this boot and `pid_ns`
/// writes it, for process `pid` started at `started`.
fn lock_of_this_machine(pid: u32, pid_ns: &str, started: u64) -> String {
    let ours = Identity::current(Revision::default());
    let process = ours.process.expect("this machine has /proc");
    serde_json::json!({
        "user": "ann", "from": ours.machine, "pid": pid, "since": "2026-01-01T00:00:00Z",
        "env": "dev", "token": "t",
        "process": { "boot": process.boot, "pid_ns": pid_ns, "started": started },
    })
    .to_string()
}

/// The pid of a process of this machine that has ended: it is free.
fn ended_pid() -> u32 {
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    pid
}

#[test]
fn a_lock_left_by_a_gone_deploy_of_this_machine_is_taken_over() {
    let fleet = Fleet::deployed("rollback-all");
    fleet.edit("static/index.html", "v1", "v2");
    let ours = Identity::current(Revision::default()).process.unwrap();
    // A deploy whose process is gone, and one whose pid another process
    // has now (this one, started at another time).
    let gone = lock_of_this_machine(ended_pid(), &ours.pid_ns, 1);
    let reused = lock_of_this_machine(std::process::id(), &ours.pid_ns, ours.started + 1);
    fs::write(fleet.dir("web1").join(".landfall/lock"), gone).unwrap();
    fs::write(fleet.dir("web2").join(".landfall/lock"), reused).unwrap();
    let summary = fleet.deploy(&DeployOptions::default());
    assert!(summary.ok, "{summary:?}");
    assert!(summary.hosts.iter().all(|o| o.status == Deployed));
    assert!(!fleet.dir("web1").join(".landfall/lock").exists());
    assert!(!fleet.dir("web2").join(".landfall/lock").exists());
}

#[test]
fn a_lock_of_a_live_deploy_or_of_another_pid_namespace_is_never_taken_over() {
    let fleet = Fleet::deployed("rollback-all");
    fleet.edit("static/index.html", "v1", "v2");
    let old = fleet.current("web1").unwrap();
    let ours = Identity::current(Revision::default()).process.unwrap();
    // This very process holds it: alive.
    let live = lock_of_this_machine(std::process::id(), &ours.pid_ns, ours.started);
    // A container of this machine: same name and boot, pids of its own,
    // so a pid free here says nothing of it.
    let container = lock_of_this_machine(ended_pid(), "pid:[1]", 1);
    // An older landfall's lock says nothing of the boot or the namespace.
    let old_style = lock_line(&Identity::current(Revision::default()).machine, ended_pid());
    for lock in [live, container, old_style] {
        let path = fleet.dir("web2").join(".landfall/lock");
        fs::write(&path, &lock).unwrap();
        let summary = fleet.deploy(&DeployOptions::default());
        assert!(!summary.ok, "{lock}: {summary:?}");
        assert_eq!(summary.hosts[1].status, Status::Failed, "{lock}");
        assert!(path.exists(), "{lock}");
        assert_eq!(
            fleet.current("web1").as_deref(),
            Some(old.as_str()),
            "{lock}"
        );
    }
}

#[test]
fn a_first_deploy_refused_on_one_host_leaves_nothing_on_the_others() {
    let fleet = Fleet::new("rollback-all");
    // web3's directory cannot be made: a file stands where it would be.
    let web3 = fleet
        .fixture
        .dir
        .path()
        .join("target/landfall/local/dev/web3");
    fs::create_dir_all(&web3).unwrap();
    fs::write(web3.join("srv"), "in the way").unwrap();
    let summary = fleet.deploy(&DeployOptions::default());
    assert!(!summary.ok);
    assert_eq!(summary.hosts[2].status, Status::Failed, "{summary:?}");
    let hosts = fleet.fixture.dir.path().join("target/landfall/local/dev");
    let mut left: Vec<String> = fs::read_dir(&hosts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["web3"], "web1 and web2 are as they were: absent");

    fs::remove_file(web3.join("srv")).unwrap();
    assert!(fleet.deploy(&DeployOptions::default()).ok);
}

#[test]
fn rollback_runs_the_hooks_the_release_recorded_not_the_workspaces() {
    let fleet = Fleet::deployed("rollback-all");
    let first = fleet.current("web1").unwrap();
    fleet.edit("deploy.toml", "version = \"1\"", "version = \"2\"");
    assert!(fleet.deploy(&DeployOptions::default()).ok);
    // The workspace's hooks change again, and are never deployed.
    fleet.edit("deploy.toml", "echo activate", "echo changed");
    let summary =
        fleet.with_run(|run, plan| crate::ops::rollback::switch_back(run, plan, None, false));
    assert!(summary.ok, "{summary:?}");
    assert!(summary.hosts.iter().all(|o| o.status == RolledBack));
    assert_eq!(fleet.current("web1").as_deref(), Some(first.as_str()));
    let hooks = fleet.hooks("web1");
    assert_eq!(
        hooks[hooks.len() - 2..],
        ["activate 1", "health 1"],
        "{hooks:?}"
    );
    let log = fs::read_to_string(fleet.dir("web1").join(".landfall/log")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "rollback");
    assert_eq!(last["release"], first.as_str());
    assert_eq!(last["revision"], "c0ffeec0ffee");
}

#[test]
fn the_dry_run_lists_the_hooks_the_decision_runs() {
    let fleet = Fleet::new("rollback-all");
    fleet.edit(
        "deploy.toml",
        "[artifact.app.hooks]\n",
        "[artifact.app.hooks]\nbuild = \"true\"\n",
    );
    assert!(fleet.deploy(&DeployOptions::default()).ok);
    let first = fleet.current("web1").unwrap();
    fleet.edit("static/index.html", "v1", "v2");
    assert!(fleet.deploy(&DeployOptions::default()).ok);
    // Back to the first files: that release is on the hosts, and its
    // build hook does not run again.
    fleet.edit("static/index.html", "v2", "v1");
    let (project, env) = fleet.load();
    let plan = crate::plan::plan(&project, &env, &[], true, &Secrets::none()).unwrap();
    let built = built(&project, &plan);
    assert_eq!(built.releases[0].release.id, first);
    let local = Local::new(&project.workspace.landfall_dir(), &env.name);
    let identity = Identity::current(Revision::default());
    let seen = std::sync::Mutex::new(Vec::new());
    let events = |event: Event| {
        if let Event::WouldDeploy { hooks, .. } = event {
            seen.lock().unwrap().push(hooks);
        }
    };
    let run = Run {
        project: &project,
        env: &env,
        transport: &local,
        identity: &identity,
        jobs: 4,
        events: &events,
        cancel: &crate::interrupt::Cancel::default(),
    };
    let options = DeployOptions {
        dry_run: true,
        ..DeployOptions::default()
    };
    let summary = super::deploy(&run, &built.releases, &options);
    assert!(summary.ok);
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|hooks| hooks == &["activate", "health"]),
        "{seen:?}"
    );
}

/// A file outside every host, with what it held: what a link planted on a
/// host points at, which a deploy must never write through.
fn bystander(fleet: &Fleet, name: &str) -> PathBuf {
    let path = fleet.fixture.dir.path().join(name);
    fs::write(&path, "untouched\n").unwrap();
    path
}

#[test]
fn links_landfall_did_not_make_are_never_written_through() {
    let fleet = Fleet::deployed("rollback-all");
    fleet.edit("static/index.html", "v1", "v2");
    let dry = fleet.deploy(&DeployOptions {
        dry_run: true,
        ..DeployOptions::default()
    });
    let next = dry.hosts[0].release.clone().unwrap();

    let dir = fleet.dir("web1");
    let log = bystander(&fleet, "log-elsewhere");
    fs::remove_file(dir.join(".landfall/log")).unwrap();
    std::os::unix::fs::symlink(&log, dir.join(".landfall/log")).unwrap();
    let steps = bystander(&fleet, "steps-elsewhere");
    std::os::unix::fs::symlink(&steps, dir.join(".landfall/steps")).unwrap();
    let elsewhere = fleet.fixture.dir.path().join("partial-elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("keep"), "untouched\n").unwrap();
    let partial = dir.join("releases").join(format!("{next}.partial"));
    std::os::unix::fs::symlink(&elsewhere, &partial).unwrap();

    let warnings = std::sync::Mutex::new(Vec::new());
    let summary = fleet.with_run_events(
        |event| {
            if let Event::Warning { message } = event {
                warnings.lock().unwrap().push(message);
            }
        },
        |run, plan| {
            let built = built(run.project, plan);
            super::deploy(run, &built.releases, &DeployOptions::default())
        },
    );
    assert!(summary.ok, "{summary:?}");
    assert_eq!(fleet.current("web1").as_deref(), Some(next.as_str()));
    assert_eq!(fs::read_to_string(&log).unwrap(), "untouched\n");
    assert_eq!(fs::read_to_string(&steps).unwrap(), "untouched\n");
    assert_eq!(
        fs::read_to_string(elsewhere.join("keep")).unwrap(),
        "untouched\n"
    );
    let warnings = warnings.into_inner().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("could not be appended to") && w.contains("web1")),
        "{warnings:?}"
    );
}

#[test]
fn a_directory_another_user_owns_or_anyone_may_write_to_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let fleet = Fleet::deployed("rollback-all");
    fleet.edit("static/index.html", "v1", "v2");
    let old = fleet.current("web1").unwrap();

    let dir = fleet.dir("web1");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let summary = fleet.deploy(&DeployOptions::default());
    assert!(!summary.ok);
    let message = summary.hosts[0].message.clone().unwrap();
    assert!(
        message.contains("can be written by any user (drwxrwxrwx)"),
        "{message}"
    );
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();

    let landfall = dir.join(".landfall");
    let owner = {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(&landfall).unwrap().uid()
    };
    std::os::unix::fs::chown(&landfall, Some(65534), None)
        .expect("giving a directory to another user needs root, as the test bed does");
    let summary = fleet.deploy(&DeployOptions::default());
    assert!(!summary.ok);
    let message = summary.hosts[0].message.clone().unwrap();
    assert!(message.contains("belongs to user id 65534"), "{message}");
    std::os::unix::fs::chown(&landfall, Some(owner), None).unwrap();

    let moved = fleet.fixture.dir.path().join("landfall-elsewhere");
    fs::rename(&landfall, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &landfall).unwrap();
    let summary = fleet.deploy(&DeployOptions::default());
    assert!(!summary.ok);
    let message = summary.hosts[0].message.clone().unwrap();
    assert!(
        message.contains(".landfall is a link, which landfall did not make"),
        "{message}"
    );
    for host in ["web1", "web2", "web3"] {
        assert_eq!(fleet.current(host).as_deref(), Some(old.as_str()), "{host}");
    }
}

#[test]
fn a_release_an_interrupted_deploy_never_confirmed_is_not_switched_back_to() {
    let fleet = Fleet::deployed("rollback-all");
    let good = fleet.current("web1").unwrap();
    // A deploy switched web1 to another release and was killed before its
    // health check passed: `current` points at a release the log never
    // confirmed, and its lock is left (of a process that is gone).
    let dir = fleet.dir("web1");
    let unconfirmed = "abcdef0123456789abcd";
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(dir.join("releases").join(&good))
        .arg(dir.join("releases").join(unconfirmed))
        .status()
        .unwrap();
    assert!(status.success());
    fs::remove_file(dir.join("current")).unwrap();
    std::os::unix::fs::symlink(format!("releases/{unconfirmed}"), dir.join("current")).unwrap();
    let ours = Identity::current(Revision::default()).process.unwrap();
    fs::write(
        dir.join(".landfall/lock"),
        lock_of_this_machine(ended_pid(), &ours.pid_ns, 1),
    )
    .unwrap();

    // The next deploy fails its health check on web1: it goes back to the
    // release the log last confirmed.
    fleet.edit("deploy.toml", "version = \"1\"", "version = \"2\"");
    fleet.unhealthy("web1");
    let summary = fleet.deploy(&DeployOptions::default());
    assert!(!summary.ok);
    assert_eq!(summary.hosts[0].status, RolledBack, "{summary:?}");
    assert_eq!(fleet.current("web1").as_deref(), Some(good.as_str()));
    let hooks = fleet.hooks("web1");
    assert_eq!(
        hooks[hooks.len() - 2..],
        ["activate 1", "health 1"],
        "{hooks:?}"
    );
}

#[test]
fn a_host_that_keeps_landfall_waiting_is_named_every_ten_seconds() {
    use std::time::{Duration, Instant};
    let fixture = Fleet::new("rollback-all");
    let local = Local::new(&fixture.fixture.dir.path().join("target/landfall"), "dev");
    let watched = super::watch::Watched {
        inner: &local,
        in_flight: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        next: std::sync::atomic::AtomicU64::new(0),
    };
    let now = Instant::now();
    let ago = |seconds| now.checked_sub(Duration::from_secs(seconds)).unwrap();
    watched.in_flight.lock().unwrap().extend([
        (0, ("web1".to_string(), ago(25))),
        (1, ("web2".to_string(), ago(3))),
    ]);
    let seen = std::sync::Mutex::new(Vec::new());
    let events = |event: Event| {
        if let Event::Waiting { host, seconds } = event {
            seen.lock().unwrap().push((host, seconds));
        }
    };
    let mut named = std::collections::BTreeMap::new();
    watched.report_waiting(&events, &mut named);
    watched.report_waiting(&events, &mut named);
    assert_eq!(*seen.lock().unwrap(), [("web1".to_string(), 25)]);

    // Ten seconds on, it is named again; a round trip that ended is not.
    watched.in_flight.lock().unwrap().remove(&0);
    watched
        .in_flight
        .lock()
        .unwrap()
        .insert(2, ("web3".to_string(), ago(10)));
    watched.report_waiting(&events, &mut named);
    assert_eq!(
        *seen.lock().unwrap(),
        [("web1".to_string(), 25), ("web3".to_string(), 10)]
    );
    assert_eq!(named.len(), 2, "{named:?}");
}

impl Fleet {
    /// Replaces `max_parallel = 1` with a `[artifact.app.rollout]` of
    /// `keys`, and adds `hooks` to the artifact's hooks.
    fn rollout(&self, keys: &str, hooks: &str) {
        self.edit(
            "deploy.toml",
            "max_parallel = 1\n",
            &format!("\n[artifact.app.rollout]\n{keys}\n"),
        );
        if !hooks.is_empty() {
            self.edit(
                "deploy.toml",
                "health_timeout = \"1s\"\n",
                &format!("health_timeout = \"1s\"\n{hooks}\n"),
            );
        }
    }

    fn batches(summary: &Summary) -> Vec<Option<usize>> {
        summary.hosts.iter().map(|o| o.batch).collect()
    }
}

#[test]
fn a_host_that_fails_within_the_budget_is_switched_back_alone() {
    let fleet = Fleet::deployed("rollback-all");
    fleet.rollout("batch = 1\nmax_fail = 1", "");
    let old = fleet.current("web1").unwrap();
    fleet.edit("deploy.toml", "version = \"1\"", "version = \"2\"");
    fleet.unhealthy("web2");
    let second = fleet.deploy(&DeployOptions::default());
    assert!(!second.ok, "a host failed");
    assert_eq!(
        Fleet::statuses(&second),
        statuses(&[
            ("web1", Deployed),
            ("web2", Status::Failed),
            ("web3", Deployed)
        ])
    );
    assert_eq!(Fleet::batches(&second), [Some(1), Some(2), Some(3)]);
    let message = second.hosts[1].message.as_deref().unwrap();
    assert!(message.contains("rolled back to"), "{message}");
    assert_ne!(fleet.current("web1").as_deref(), Some(old.as_str()));
    assert_eq!(fleet.current("web2").as_deref(), Some(old.as_str()));
    assert_ne!(fleet.current("web3").as_deref(), Some(old.as_str()));

    // A second failure is past the budget: with `rollback-all`, every
    // host switched in that run goes back.
    fleet.edit("deploy.toml", "version = \"2\"", "version = \"3\"");
    fleet.unhealthy("web3");
    let third = fleet.deploy(&DeployOptions::default());
    assert_eq!(
        Fleet::statuses(&third),
        statuses(&[
            ("web1", RolledBack),
            ("web2", Status::Failed),
            ("web3", RolledBack)
        ])
    );
}

#[test]
fn a_canary_that_fails_stops_the_rollout_before_any_other_host_switches() {
    let fleet = Fleet::deployed("stop");
    fleet.rollout("canary = 1\nbatch = \"50%\"\nmax_fail = 2", "");
    let old = fleet.current("web1").unwrap();
    fleet.edit("deploy.toml", "version = \"1\"", "version = \"2\"");
    fleet.unhealthy("web1");
    let events = std::sync::Mutex::new(Vec::new());
    let second = fleet.with_run_events(
        |e| events.lock().unwrap().push(e),
        |run, plan| {
            let built = built(run.project, plan);
            super::deploy(run, &built.releases, &DeployOptions::default())
        },
    );
    assert_eq!(
        Fleet::statuses(&second),
        statuses(&[("web1", RolledBack), ("web2", Skipped), ("web3", Skipped)])
    );
    for host in ["web1", "web2", "web3"] {
        assert_eq!(fleet.current(host).as_deref(), Some(old.as_str()), "{host}");
    }
    let events = events.into_inner().unwrap();
    assert!(events.iter().any(|e| matches!(e,
        Event::Batch { batch: 1, batches: 2, canary: true, hosts, .. } if hosts == &["web1"])));
    assert!(events.iter().any(|e| matches!(e,
        Event::RolloutStopped { reason, .. } if reason.starts_with("a canary failed"))));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Batch { batch: 2, .. }))
    );
}

#[test]
fn once_runs_on_one_host_before_any_switch_and_stops_all_when_it_fails() {
    let fleet = Fleet::deployed("rollback-all");
    let once = "once = \"echo once {{ vars.version }} $(readlink $LANDFALL_PATH/current) \
                >>$LANDFALL_PATH/shared/log/once && test {{ vars.version }} != 3\"";
    fleet.rollout("batch = 2", once);
    let count = |version: &str| {
        ["web1", "web2", "web3"]
            .iter()
            .map(|h| {
                fs::read_to_string(fleet.dir(h).join("shared/log/once"))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.starts_with(&format!("once {version} ")))
                    .count()
            })
            .sum::<usize>()
    };
    let before = fleet.current("web1").unwrap();
    fleet.edit("deploy.toml", "version = \"1\"", "version = \"2\"");
    let second = fleet.deploy(&DeployOptions::default());
    assert!(second.ok, "{second:?}");
    assert_eq!(count("2"), 1);
    // It ran on the first host, before that host switched.
    let line = fs::read_to_string(fleet.dir("web1").join("shared/log/once")).unwrap();
    assert!(line.contains(&before), "{line}");
    // Nothing changed: nothing runs, once included.
    assert!(fleet.deploy(&DeployOptions::default()).ok);
    assert_eq!(count("2"), 1);

    let deployed = fleet.current("web1").unwrap();
    fleet.edit("deploy.toml", "version = \"2\"", "version = \"3\"");
    let failed = fleet.deploy(&DeployOptions::default());
    assert!(!failed.ok);
    assert_eq!(failed.hosts[0].status, Status::Failed);
    assert!(
        failed.hosts[0]
            .message
            .as_deref()
            .unwrap()
            .starts_with("once:"),
        "{:?}",
        failed.hosts[0].message
    );
    assert_eq!(count("3"), 1);
    for host in ["web1", "web2", "web3"] {
        assert_eq!(
            fleet.current(host).as_deref(),
            Some(deployed.as_str()),
            "{host}"
        );
        assert!(!fleet.dir(host).join(".landfall/lock").exists(), "{host}");
    }
}

#[test]
fn an_artifact_that_moved_leaves_an_orphan_that_prune_removes() {
    let fleet = Fleet::deployed("rollback-all");
    let old = fleet.dir("web1");
    fleet.edit("deploy.toml", "path = \"/srv/app\"", "path = \"/srv/app2\"");
    assert!(fleet.deploy(&DeployOptions::default()).ok);
    let found = fleet.with_run(|run, plan| {
        let hosts: Vec<&crate::config::Host> = run.env.hosts.iter().collect();
        crate::ops::prune::orphans(run, plan, &hosts)
    });
    assert_eq!(found.len(), 3);
    for host in &found {
        assert_eq!(host.error, None);
        assert_eq!(host.orphans.len(), 1, "{host:?}");
        assert_eq!(host.orphans[0].artifact, "app");
        assert!(host.orphans[0].path.ends_with("/srv/app"), "{host:?}");
    }
    assert!(old.exists());
    let pruned = fleet.with_run(|run, _| crate::ops::prune::remove(run, &found));
    assert!(
        pruned
            .iter()
            .all(|r| r.error.is_none() && r.pruned.len() == 1),
        "{pruned:?}"
    );
    assert!(!old.exists());
    assert!(
        fleet
            .dir("web1")
            .parent()
            .unwrap()
            .join("app2/current")
            .exists()
    );
    let again = fleet.with_run(|run, plan| {
        let hosts: Vec<&crate::config::Host> = run.env.hosts.iter().collect();
        crate::ops::prune::orphans(run, plan, &hosts)
    });
    assert!(again.iter().all(|h| h.orphans.is_empty()), "{again:?}");
}

#[test]
fn a_rollback_after_a_partly_failed_rollout_leaves_one_release_on_the_fleet() {
    let fleet = Fleet::deployed("rollback-all");
    fleet.rollout("batch = 1\nmax_fail = 1", "");
    let old = fleet.current("web1").unwrap();
    fleet.edit("deploy.toml", "version = \"1\"", "version = \"2\"");
    fleet.unhealthy("web2");
    let partly = fleet.deploy(&DeployOptions::default());
    assert_eq!(partly.hosts[1].status, Status::Failed);
    let back =
        fleet.with_run(|run, plan| crate::ops::rollback::switch_back(run, plan, None, false));
    assert!(back.ok, "{back:?}");
    assert_eq!(
        Fleet::statuses(&back),
        statuses(&[
            ("web1", RolledBack),
            ("web2", Skipped),
            ("web3", RolledBack)
        ])
    );
    for host in ["web1", "web2", "web3"] {
        assert_eq!(fleet.current(host).as_deref(), Some(old.as_str()), "{host}");
    }
    // A release asked for by name goes to every host that has it, or to
    // none.
    let only_on_web1 = fleet.with_run(|run, plan| {
        crate::ops::rollback::switch_back(
            run,
            plan,
            Some(&partly.hosts[0].release.clone().unwrap()),
            false,
        )
    });
    assert!(!only_on_web1.ok);
    for host in ["web1", "web2", "web3"] {
        assert_eq!(fleet.current(host).as_deref(), Some(old.as_str()), "{host}");
    }
}

/// A frontend that shows nothing, asks no one, and keeps the events.
#[derive(Default)]
struct Silent(std::sync::Mutex<Vec<Event>>);

impl crate::ops::Frontend for Silent {
    fn event(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
    fn diagnostics(&self, _: &[crate::diag::Diagnostic]) {}
    fn hide(&self, _: &crate::secrets::Mask) {}
    fn can_ask(&self) -> bool {
        false
    }
    fn ask(&self, _: &str) -> crate::Result<bool> {
        Ok(false)
    }
}

/// The library's deploy is one call, the one `cargo deploy` makes.
#[test]
fn the_library_deploys_with_the_operation_the_command_runs() {
    use crate::ops::deploy::{DeployRequest, deploy};
    let fleet = Fleet::new("rollback-all");
    // The operation asks cargo for the workspace: a real one, of no
    // package, as the fleet's artifact is files only.
    fleet.fixture.write("Cargo.toml", "[workspace]\n");
    let (project, _) = fleet.load();
    let settings = crate::ops::Settings {
        manifest_path: Some(project.workspace.manifest_path.clone()),
        quiet_build: true,
        ..crate::ops::Settings::default()
    };
    let request = DeployRequest {
        env: "dev".into(),
        local: true,
        ..DeployRequest::default()
    };
    let ui = Silent::default();
    let summary = deploy(&settings, &request, &ui).unwrap();
    assert!(summary.ok, "{summary:?}");
    assert!(!summary.hosts.is_empty());
    assert!(
        summary.hosts.iter().all(|o| o.status == Deployed),
        "{summary:?}"
    );
    for outcome in &summary.hosts {
        assert_eq!(fleet.current(&outcome.host), outcome.release.clone());
    }
    let activated =
        ui.0.lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Activated { .. }))
            .count();
    assert_eq!(
        activated,
        summary.hosts.len(),
        "each activation is reported"
    );
    // Again from the same workspace: the same releases, which the hosts
    // hold already.
    let summary = deploy(&settings, &request, &ui).unwrap();
    assert!(summary.ok, "{summary:?}");
    assert!(
        summary.hosts.iter().all(|o| o.status == Status::Unchanged),
        "{summary:?}"
    );
    // An environment that does not exist is refused before anything runs.
    let nowhere = DeployRequest {
        env: "nowhere".into(),
        ..request
    };
    let Err(err) = deploy(&settings, &nowhere, &ui) else {
        panic!("an unknown environment was deployed");
    };
    assert!(matches!(err, crate::Error::Usage(_)), "{err:?}");
}

/// The releases of `plan`, built and staged, saying nothing.
fn built(project: &Project, plan: &crate::plan::Plan) -> crate::ops::build::Built {
    crate::ops::build::build_releases(
        project,
        plan,
        &crate::ops::build::BuildOptions::default(),
        &|_| {},
    )
    .unwrap()
}

/// Under `--local` a host is a directory, and the watcher a process of
/// this machine: each host is confirmed as soon as it is activated, which
/// logs the activation and stops its watcher, and the lock is released
/// once it is.
#[test]
fn an_activation_to_be_confirmed_is_confirmed_at_once_and_its_watcher_stopped() {
    let fleet = Fleet::new("rollback-all");
    fleet.rollout("confirm = \"30s\"", "");
    let seen = std::sync::Mutex::new(Vec::new());
    let summary = fleet.with_run_events(
        |event| match event {
            Event::Confirmed { host, .. } => seen.lock().unwrap().push(format!("confirmed {host}")),
            Event::RolledBack { host, .. } => seen.lock().unwrap().push(format!("back {host}")),
            _ => {}
        },
        |run, plan| {
            let built = built(run.project, plan);
            super::deploy(run, &built.releases, &DeployOptions::default())
        },
    );
    assert!(summary.ok, "{summary:?}");
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    assert_eq!(seen, ["confirmed web1", "confirmed web2", "confirmed web3"]);
    for host in ["web1", "web2", "web3"] {
        let dir = fleet.dir(host).join(".landfall");
        let record = fs::read_to_string(dir.join("confirm.done")).unwrap();
        assert!(!dir.join("confirm").exists() && !dir.join("lock").exists());
        let pid: u32 = record
            .lines()
            .find_map(|l| l.strip_prefix("pid="))
            .unwrap()
            .parse()
            .unwrap();
        landfall_testbed::support::wait_for(10, "the watcher to end", || {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |stat| stat.contains(") Z "))
        });
        let log = fs::read_to_string(dir.join("log")).unwrap();
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains("\"event\":\"activated\""), "{log}");
    }
}

impl Fleet {
    /// Goes on with the rollout that waits for promotion, as `cargo deploy
    /// promote` does: the same releases, built again.
    fn promote(&self) -> crate::error::Result<Summary> {
        self.with_run(|run, plan| {
            let built = built(run.project, plan);
            let resume = super::resumable(run, &built.releases, None)?;
            let options = DeployOptions {
                resume: Some(resume),
                ..DeployOptions::default()
            };
            Ok(super::deploy(run, &built.releases, &options))
        })
    }

    fn abort(&self) -> crate::error::Result<Summary> {
        self.with_run(super::abort)
    }

    fn lock(&self, host: &str) -> Option<String> {
        fs::read_to_string(self.dir(host).join(".landfall/lock")).ok()
    }

    fn count(&self, host: &str, hook: &str) -> usize {
        self.hooks(host).iter().filter(|h| *h == hook).count()
    }
}

#[test]
fn a_rollout_until_promoted_waits_with_its_locks_and_goes_on_under_its_deploy_id() {
    use super::Status::Waiting;
    let fleet = Fleet::deployed("rollback-all");
    fleet.rollout("canary = 1\nbatch = 1\npause = \"until promoted\"", "");
    let old = fleet.current("web1").unwrap();
    fleet.edit("deploy.toml", "version = \"1\"", "version = \"2\"");
    let first = fleet.deploy(&DeployOptions::default());
    assert_eq!(
        Fleet::statuses(&first),
        statuses(&[("web1", Deployed), ("web2", Waiting), ("web3", Waiting)])
    );
    let waiting = first.waiting.clone().expect("the rollout waits");
    assert_eq!((waiting.batch, waiting.batches), (1, 3));
    assert_eq!(first.deploy.as_deref(), Some(waiting.deploy.as_str()));
    let new = first.hosts[0].release.clone().unwrap();
    assert_eq!(fleet.current("web1").as_deref(), Some(new.as_str()));
    let locks: Vec<String> = ["web1", "web2", "web3"]
        .iter()
        .map(|h| fleet.lock(h).expect("the lock is kept"))
        .collect();
    for (lock, activated) in locks.iter().zip([true, false, false]) {
        let (record, _) = super::waiting_in(lock).expect("a waiting record");
        assert_eq!(record.deploy, waiting.deploy);
        assert_eq!(record.activated, activated, "{lock}");
        assert_eq!(record.previous.as_deref(), Some(old.as_str()));
    }

    // Another deploy is refused, and changes nothing.
    let refused = fleet.deploy(&DeployOptions::default());
    assert!(!refused.ok);
    let message = refused.hosts[1].message.clone().unwrap();
    assert!(
        message.contains(&format!("a rollout of deploy {} waits", waiting.deploy))
            && message.contains("`cargo deploy promote dev` goes on")
            && message.contains("`cargo deploy abort dev` switches back"),
        "{message}"
    );
    for (host, lock) in ["web1", "web2", "web3"].iter().zip(&locks) {
        assert_eq!(fleet.lock(host).as_ref(), Some(lock), "{host}");
    }

    // Promoted, it takes the next batch, and waits again.
    let second = fleet.promote().unwrap();
    assert_eq!(
        Fleet::statuses(&second),
        statuses(&[("web1", Deployed), ("web2", Deployed), ("web3", Waiting)])
    );
    let again = second.waiting.clone().expect("it waits again");
    assert_eq!((again.batch, again.batches), (2, 3));
    assert_eq!(again.deploy, waiting.deploy, "the same deploy goes on");
    assert_eq!(Fleet::batches(&second), [None, Some(2), None]);
    assert_eq!(fleet.current("web3").as_deref(), Some(old.as_str()));

    let third = fleet.promote().unwrap();
    assert!(third.ok && third.waiting.is_none(), "{third:?}");
    assert_eq!(third.deploy.as_deref(), Some(waiting.deploy.as_str()));
    for host in ["web1", "web2", "web3"] {
        assert_eq!(fleet.current(host).as_deref(), Some(new.as_str()), "{host}");
        assert_eq!(fleet.lock(host), None, "{host}");
        // Activated once; checked again by each promotion that followed.
        assert_eq!(fleet.count(host, "activate 2"), 1, "{host}");
    }
    assert_eq!(fleet.count("web1", "health 2"), 3);
    let err = fleet.promote().unwrap_err().to_string();
    assert!(
        err.contains("no rollout waits for promotion in `dev`"),
        "{err}"
    );
}

#[test]
fn an_aborted_rollout_switches_back_what_it_activated_and_unlocks_everything() {
    use super::Status::Waiting;
    let fleet = Fleet::deployed("rollback-all");
    fleet.rollout("canary = 1\npause = \"until promoted\"", "");
    let old = fleet.current("web1").unwrap();
    fleet.edit("deploy.toml", "version = \"1\"", "version = \"2\"");
    let first = fleet.deploy(&DeployOptions::default());
    assert_eq!(
        Fleet::statuses(&first),
        statuses(&[("web1", Deployed), ("web2", Waiting), ("web3", Waiting)])
    );

    // A checkout that builds other releases cannot promote it.
    fleet.edit("deploy.toml", "version = \"2\"", "version = \"3\"");
    let err = fleet.promote().unwrap_err();
    assert!(matches!(err, crate::error::Error::Usage(_)), "{err}");
    let err = err.to_string();
    assert!(
        err.contains(&"c0ffee".repeat(6)) && err.contains("`cargo deploy abort dev`"),
        "{err}"
    );
    assert!(fleet.lock("web2").is_some());

    let aborted = fleet.abort().unwrap();
    assert!(aborted.ok, "{aborted:?}");
    assert_eq!(
        aborted.deploy, first.deploy,
        "the switch back is the deploy's"
    );
    assert_eq!(
        Fleet::statuses(&aborted),
        statuses(&[("web1", RolledBack), ("web2", Skipped), ("web3", Skipped)])
    );
    for host in ["web1", "web2", "web3"] {
        assert_eq!(fleet.current(host).as_deref(), Some(old.as_str()), "{host}");
        assert_eq!(fleet.lock(host), None, "{host}");
    }
    // Back on version 1, running what it recorded.
    assert_eq!(
        fleet.hooks("web1")[2..],
        ["activate 2", "health 2", "activate 1", "health 1"]
    );
    let err = fleet.abort().unwrap_err().to_string();
    assert!(
        err.contains("no rollout waits for promotion in `dev`"),
        "{err}"
    );
    // And the next deploy goes on as any.
    let next = fleet.deploy(&DeployOptions::default());
    assert!(next.ok && next.waiting.is_some(), "{next:?}");
}

#[test]
fn a_promotion_that_activates_nothing_leaves_the_rollout_waiting_as_it_was() {
    use super::Status::Waiting;
    let fleet = Fleet::deployed("rollback-all");
    fleet.rollout("canary = 1\npause = \"until promoted\"", "");
    let old = fleet.current("web1").unwrap();
    fleet.edit("deploy.toml", "version = \"1\"", "version = \"2\"");
    let first = fleet.deploy(&DeployOptions::default());
    let deploy = first.waiting.clone().expect("the rollout waits").deploy;
    // Someone broke the lock of web3 and deploys there now.
    fs::write(
        fleet.dir("web3").join(".landfall/lock"),
        lock_line("another-machine", 1),
    )
    .unwrap();

    let refused = fleet.promote().unwrap();
    assert!(!refused.ok && refused.waiting.is_none(), "{refused:?}");
    assert_eq!(
        Fleet::statuses(&refused),
        statuses(&[
            ("web1", Deployed),
            ("web2", Waiting),
            ("web3", Status::Failed)
        ])
    );
    let new = fleet.current("web1").unwrap();
    assert_ne!(new, old);
    assert_eq!(fleet.current("web2").as_deref(), Some(old.as_str()));
    for (host, activated) in [("web1", true), ("web2", false)] {
        let lock = fleet.lock(host).expect("kept");
        let (record, _) = super::waiting_in(&lock).expect("a waiting record");
        assert_eq!(
            (record.deploy.as_str(), record.activated),
            (deploy.as_str(), activated)
        );
    }

    // The rollout is as it was: an abort switches its canary back.
    let aborted = fleet.abort().unwrap();
    assert_eq!(
        Fleet::statuses(&aborted),
        statuses(&[("web1", RolledBack), ("web2", Skipped), ("web3", Skipped)])
    );
    assert_eq!(fleet.current("web1").as_deref(), Some(old.as_str()));
    assert_eq!(fleet.lock("web1"), None);
    assert!(fleet.lock("web3").is_some(), "another deploy's lock stays");
}
