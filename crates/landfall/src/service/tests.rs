//! The service definitions, the launcher and the sudo rules, tested: the
//! launcher under dash and busybox.

use super::*;
use crate::config::tests::Fixture;
use crate::secrets::Secrets;

/// A project whose artifact `web`, deployed at `path`, runs a service
/// with these keys (TOML lines).
fn fixture(path: &str, service: &str) -> Fixture {
    Fixture::new(&[
        (
            "deploy.toml",
            &format!(
                "[project]\nname = \"shop\"\n[vars]\nport = 8080\n\n\
                 [artifact.web]\nroles = [\"web\"]\npath = \"{path}\"\n\n\
                 [artifact.web.service]\n{service}\n"
            ),
        ),
        (
            "environments/dev.toml",
            "[hosts.web1]\nroles = [\"web\"]\nvars = { port = 81 }\n",
        ),
    ])
}

fn rendered(fixture: &Fixture) -> Result<RenderedService, String> {
    let (project, env) = fixture.load("dev");
    let secrets = Secrets::placeholders();
    crate::plan::plan(&project, &env, &[], false, &secrets)
        .map(|mut plan| plan.targets.remove(0).service.expect("a service"))
        .map_err(|e| e.to_string())
}

fn file<'s>(service: &'s RenderedService, name: &str) -> &'s str {
    let file = service
        .files
        .iter()
        .find(|f| f.dst == format!("{SERVICE_DIR}/{name}"))
        .unwrap_or_else(|| panic!("no {name}"));
    std::str::from_utf8(&file.contents).unwrap()
}

/// `systemd-analyze verify` on the service's units, installed under
/// their names in a directory of their own, with the release's
/// launcher where the unit expects it: systemd itself says whether it
/// would load them.
#[test]
fn systemd_accepts_the_units_it_is_given() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("srv").join("web");
    let path = path.to_str().unwrap();
    let fixture = fixture(
        path,
        "manager = \"systemd\"\nexec = \"bin/web --port {{ vars.port }}\"\nuser = \"daemon\"\n\
         environment = { RUST_LOG = \"info\", GREETING = \"it's 100% \\\"fine\\\"\" }\n\
         listen = [\"127.0.0.1:{{ vars.port }}\", \"[::1]:{{ vars.port }}\"]\n\
         ready = \"http://127.0.0.1:{{ vars.port }}/health\"\nstop_timeout = \"1m\"\nreload = true",
    );
    let service = rendered(&fixture).unwrap();
    assert_eq!(service.name, "shop-web");
    assert_eq!(service.listen, ["127.0.0.1:81", "[::1]:81"]);
    let release = std::path::Path::new(path).join("current").join(SERVICE_DIR);
    std::fs::create_dir_all(&release).unwrap();
    for f in &service.files {
        let name = f.dst.rsplit('/').next().unwrap();
        std::fs::write(release.join(name), &f.contents).unwrap();
        std::fs::set_permissions(
            release.join(name),
            std::os::unix::fs::PermissionsExt::from_mode(f.mode),
        )
        .unwrap();
    }
    let units = root.path().join("units");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(units.join("shop-web.service"), file(&service, "unit")).unwrap();
    std::fs::write(units.join("shop-web.socket"), file(&service, "socket")).unwrap();
    let unit = file(&service, "unit");
    // The manager, as root, reads nothing in the artifact but starts
    // its launcher: the launcher reads the environment.
    assert!(!unit.contains("EnvironmentFile"), "{unit}");
    assert!(file(&service, "run").contains(". ./.landfall-service/env"));
    for line in [
        &format!("ExecStart={path}/current/.landfall-service/run"),
        "User=daemon",
        "TimeoutStopSec=60",
        "Requires=shop-web.socket",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.lines().any(|l| l == line), "no `{line}` in\n{unit}");
    }
    let output = std::process::Command::new(landfall_testbed::require("systemd-analyze"))
        .arg("verify")
        .arg(units.join("shop-web.socket"))
        .arg(units.join("shop-web.service"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    // Only what concerns these units: systemd may warn of its own.
    let ours: Vec<&str> = said.lines().filter(|l| l.contains("shop-web")).collect();
    assert!(output.status.success() && ours.is_empty(), "{said}");
    // The environment reaches the service byte for byte through sh,
    // as under `--local`; systemd reads the same quoting.
    let env = file(&service, "env");
    let out = crate::process::run(
        &crate::process::Cmd::new("sh")
            .arg("-c")
            .arg(format!("{env}printf '%s|%s' \"$RUST_LOG\" \"$GREETING\"")),
    )
    .unwrap();
    assert_eq!(out.stdout_text(), "info|it's 100% \"fine\"");
}

#[test]
fn supervisor_programs_hold_no_values_and_log_where_only_root_writes() {
    let fixture = fixture(
        "/srv/web",
        "manager = \"supervisor\"\nexec = \"bin/web\"\nname = \"web\"\n\
         environment = { A = \"50% \\\"off\\\" now ;x\", B = \"{{ secrets.token }}\" }",
    );
    let service = rendered(&fixture).unwrap();
    let program = file(&service, "unit");
    for line in [
        "[program:web]",
        "command=/srv/web/current/.landfall-service/run",
        "environment=LANDFALL_PATH=\"/srv/web\"",
        "stdout_logfile=/var/log/supervisor/web.log",
        "stopwaitsecs=30",
    ] {
        assert!(
            program.lines().any(|l| l == line),
            "no `{line}` in\n{program}"
        );
    }
    assert!(!service.files.iter().any(|f| f.dst.ends_with("/socket")));
    // The program holds no value of the environment: it is readable by
    // all, and the environment, which reads a secret, is private.
    assert!(!program.contains("off"), "{program}");
    let env = service
        .files
        .iter()
        .find(|f| f.dst.ends_with("/env"))
        .unwrap();
    assert_eq!(env.mode, 0o600);
    assert!(
        service
            .files
            .iter()
            .find(|f| f.dst.ends_with("/unit"))
            .unwrap()
            .mode
            == 0o644
    );
}

#[test]
fn rendered_fields_are_checked_for_each_host() {
    let err = |service: &str| rendered(&fixture("/srv/web", service)).unwrap_err();
    let message =
        err("manager = \"systemd\"\nexec = \"bin/web\"\nlisten = [\"localhost:{{ vars.port }}\"]");
    assert!(
        message.contains(
            "`listen` renders `localhost:81` for host `web1`, which is not an address and port"
        ),
        "{message}"
    );
    let message = err("manager = \"systemd\"\nexec = \"bin/web {{ secrets.token }}\"");
    assert!(
        message.contains("the service's `exec` reads a secret"),
        "{message}"
    );
    let message =
        err("manager = \"systemd\"\nexec = \"bin/web\"\nready = \"tcp://{{ vars.port }}\"");
    assert!(message.contains("`ready` renders `tcp://81`"), "{message}");
}

/// The rules of `init --sudoers` for a project with a systemd service
/// (with sockets) and a supervisord one, deployed by `user`.
fn rules(user: &str) -> Result<String, String> {
    let (project, _) = Fixture::new(&[
        (
            "deploy.toml",
            "[project]\nname = \"shop\"\n\
             [artifact.web]\nroles = [\"web\"]\npath = \"/srv/shop/web\"\n\
             [artifact.web.service]\nmanager = \"systemd\"\nexec = \"bin/web\"\n\
             listen = [\"127.0.0.1:80\"]\n\
             [artifact.api]\nroles = [\"web\"]\npath = \"/srv/shop/api\"\n\
             [artifact.api.service]\nmanager = \"systemd\"\nexec = \"bin/api\"\n\
             [artifact.jobs]\nroles = [\"web\"]\npath = \"/srv/shop/jobs\"\n\
             [artifact.jobs.service]\nmanager = \"supervisor\"\nexec = \"bin/jobs\"\n",
        ),
        ("environments/dev.toml", "[hosts.web1]\nroles = [\"web\"]\n"),
    ])
    .load("dev");
    let services: Vec<_> = project
        .artifacts
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                a.path.as_str(),
                a.service.as_ref().unwrap(),
            )
        })
        .collect();
    sudoers(user, &services)
}

/// sudo reads a `*` in a rule's arguments as any words, and a command
/// with no arguments as any arguments: a rule to install a unit from
/// `releases/*/` let the deploy user write anywhere as root.
#[test]
fn sudo_rules_name_every_argument_and_install_nothing() {
    let text = rules("deploy").unwrap();
    let commands: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let l = l.trim().trim_end_matches('\\').trim().trim_end_matches(',');
            l.split_once("NOPASSWD: ").map_or(l, |(_, c)| c)
        })
        .collect();
    assert!(commands.len() >= 8, "{text}");
    for command in &commands {
        assert!(
            !command.contains(['*', '?', '[', ']', '\\', '=', ':', '!']),
            "a pattern in `{command}`"
        );
        let words: Vec<&str> = command.split(' ').collect();
        assert!(
            words.len() >= 3 && words.iter().all(|w| !w.is_empty()),
            "`{command}` must give its arguments"
        );
        assert!(
            ["/usr/bin/systemctl", "/usr/bin/supervisorctl"].contains(&words[0]),
            "`{command}` runs something other than a service manager's client"
        );
    }
    for verb in [
        "install",
        "mv",
        "rm",
        "tee",
        "cp",
        "daemon-reload",
        "reread",
        "update",
    ] {
        assert!(
            !commands
                .iter()
                .any(|c| c.split(' ').any(|w| w.ends_with(verb))),
            "`{verb}` in\n{text}"
        );
    }
    assert!(commands.contains(&"/usr/bin/systemctl restart shop-api.service"));
    // A service with `listen` is handed over between two instances.
    for slot in ["blue", "green"] {
        for verb in ["start", "stop", "enable --quiet", "disable --quiet"] {
            let rule = format!("/usr/bin/systemctl {verb} shop-web@{slot}.service");
            assert!(commands.contains(&rule.as_str()), "{rule}");
        }
    }
    assert!(
        !commands
            .iter()
            .any(|c| c.contains("shop-web.service") && !c.contains("disable --quiet --now"))
    );
    assert!(commands.contains(&"/usr/bin/systemctl start shop-web.socket"));
    assert!(
        commands.contains(
            &"/usr/bin/supervisorctl -c /etc/supervisor/supervisord.conf restart shop-jobs"
        )
    );
}

/// A deploy user sudoers would read as something else (a list, an
/// alias, everyone) is refused, not written.
#[test]
fn sudo_rules_refuse_a_user_that_sudoers_would_misread() {
    for user in [
        "ALL", "DEPLOY", "OPS_2", "a,b", "a b", "#0", "%wheel", "-x", "a:b", "",
    ] {
        assert!(rules(user).is_err(), "`{user}` was accepted");
    }
    assert!(rules("deploy.bot-2").is_ok());
}

/// A service without `user` ran as root under a deploy user that is
/// not: the definition names the environment's deploy user, the
/// service's own `user` before it, and, when neither is written, no
/// one: the host adds the account that deploys (and refuses root).
#[test]
fn a_definition_names_the_account_it_runs_as() {
    let with = |service: &str, env: &str| {
        let fixture = Fixture::new(&[
            (
                "deploy.toml",
                &format!(
                    "[project]\nname = \"shop\"\n[artifact.web]\nroles = [\"web\"]\n\
                     path = \"/srv/web\"\n[artifact.web.service]\n{service}\n"
                ),
            ),
            (
                "environments/dev.toml",
                &format!("{env}[hosts.web1]\nroles = [\"web\"]\n"),
            ),
        ]);
        let service = rendered(&fixture).unwrap();
        (file(&service, "unit").to_string(), service.user)
    };
    let (unit, user) = with(
        "manager = \"systemd\"\nexec = \"bin/web\"",
        "[environment]\nuser = \"deploy\"\n",
    );
    assert!(unit.ends_with("User=deploy\n"), "{unit}");
    assert_eq!(user.as_deref(), Some("deploy"));
    let (unit, _) = with(
        "manager = \"supervisor\"\nexec = \"bin/web\"\nuser = \"shop\"",
        "[environment]\nuser = \"deploy\"\n",
    );
    assert!(unit.ends_with("user=shop\n"), "{unit}");
    let (unit, user) = with("manager = \"systemd\"\nexec = \"bin/web\"", "");
    assert!(!unit.contains("User="), "{unit}");
    assert_eq!(user, None);
    // The host adds the line at the end, which is in `[Service]`.
    assert!(
        unit.trim_end()
            .rsplit("\n[")
            .next()
            .unwrap()
            .starts_with("Service]"),
        "{unit}"
    );
    let (unit, user) = with(
        "manager = \"systemd-user\"\nexec = \"bin/web\"",
        "[environment]\nuser = \"deploy\"\n",
    );
    assert!(!unit.contains("User="), "{unit}");
    assert_eq!(user, None);
}

#[test]
fn values_in_double_quotes_survive_sh() {
    let nasty = "it's $(echo pwned) `id` \"q\" \\ \\\\ %h $HOME";
    let text = env_file(&[("V".into(), nasty.into())]);
    let out = crate::process::run(
        &crate::process::Cmd::new("sh")
            .arg("-c")
            .arg(format!("{text}printf %s \"$V\"")),
    )
    .unwrap();
    assert_eq!(out.stdout_text(), nasty);
}

#[test]
fn ready_checks_become_commands() {
    assert!(
        ready_command("http://127.0.0.1:8080/health")
            .unwrap()
            .contains("curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:8080/health")
    );
    assert!(
        ready_command("tcp://[::1]:80")
            .unwrap()
            .contains("nc -z -w 5 ::1 80")
    );
    assert_eq!(ready_command("exec: bin/x check").unwrap(), "bin/x check");
    assert!(ready_command("tcp://host").is_err());
    assert!(ready_command("tcp://host:http").is_err());
    assert!(ready_command("exec:").is_err());
}

/// A release `aa01` of an artifact at `root/srv/web` whose supervisord
/// service runs `bin/svc`, the script `svc`, as a host holds it; the
/// path of its launcher.
fn launcher_of(root: &std::path::Path, svc: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = root.join("srv/web");
    let fixture = fixture(
        path.to_str().unwrap(),
        "manager = \"supervisor\"\nexec = \"bin/svc\"",
    );
    let service = rendered(&fixture).unwrap();
    let release = path.join("releases/aa01");
    std::fs::create_dir_all(release.join(SERVICE_DIR)).unwrap();
    std::fs::create_dir_all(release.join("bin")).unwrap();
    for f in &service.files {
        std::fs::write(release.join(&f.dst), &f.contents).unwrap();
        std::fs::set_permissions(
            release.join(&f.dst),
            std::fs::Permissions::from_mode(f.mode),
        )
        .unwrap();
    }
    std::fs::write(release.join("bin/svc"), svc).unwrap();
    std::fs::set_permissions(
        release.join("bin/svc"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    release.join(SERVICE_DIR).join("run")
}

/// A launcher started under `shell` (`dash`, or busybox's `sh`), in a
/// process group of its own as a manager starts it, with `env`; its
/// standard output read to its end on a thread.
struct Launched {
    child: std::process::Child,
    output: std::sync::mpsc::Receiver<String>,
}

impl Launched {
    fn start(shell: &str, run: &std::path::Path, env: &[(&str, &str)]) -> Launched {
        use std::os::unix::process::CommandExt as _;
        let mut command = std::process::Command::new(landfall_testbed::require(shell));
        if shell == "busybox" {
            command.arg("sh");
        }
        let mut child = command
            .arg(run)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (send, output) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            drop(std::io::Read::read_to_string(&mut stdout, &mut text));
            drop(send.send(text));
        });
        Launched { child, output }
    }

    /// Its exit status and all it wrote, once its output ended: the
    /// service's, and the awk's that wrote the time of each line.
    fn finish(self) -> (Option<i32>, String) {
        let deadline = std::time::Duration::from_secs(20);
        let output = self
            .output
            .recv_timeout(deadline)
            .expect("the output ends within 20s");
        // Its exit, told by a thread that waits for it.
        let mut child = self.child;
        let (ended, exit) = std::sync::mpsc::channel();
        std::thread::spawn(move || drop(ended.send(child.wait())));
        let status = exit
            .recv_timeout(deadline)
            .expect("the launcher ends within 20s")
            .unwrap();
        (status.code(), output)
    }
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ`.
fn epoch(time: &str) -> i64 {
    let n = |range: std::ops::Range<usize>| time[range].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    assert_eq!(
        (&time[4..5], &time[10..11], &time[19..]),
        ("-", "T", "Z"),
        "{time}"
    );
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Each line of the output after its time, a time between `from` and
/// `to`: the text of each.
fn stamped(output: &str, from: i64, to: i64) -> Vec<&str> {
    output
        .lines()
        .map(|line| {
            let (time, text) = line.split_once(' ').unwrap();
            let at = epoch(time);
            assert!(
                from <= at && at <= to,
                "{line} is not between {from} and {to}"
            );
            text
        })
        .collect()
}

#[test]
fn the_launcher_writes_each_line_after_its_time_and_exits_with_the_services_status() {
    let root = tempfile::tempdir().unwrap();
    let run = launcher_of(root.path(), "");
    // Its own lines pass the lint of the host steps; the environment
    // it reads is the release's.
    let lint = std::process::Command::new(landfall_testbed::require("shellcheck"))
        .args([
            "--norc",
            "--severity=style",
            "--shell=sh",
            "--exclude=SC1091",
        ])
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stdout)
    );
    for shell in ["dash", "busybox"] {
        let root = tempfile::tempdir().unwrap();
        let run = launcher_of(root.path(), "#!/bin/sh\necho one\necho two >&2\nexit 7\n");
        let from = now();
        let (code, output) = Launched::start(shell, &run, &[]).finish();
        assert_eq!(code, Some(7), "{shell}: {output}");
        assert_eq!(
            stamped(&output, from, now()),
            ["-- release aa01 started --", "one", "two"],
            "{shell}"
        );
        // Under systemd, the journal keeps the time of each line.
        let (code, output) = Launched::start(shell, &run, &[("LANDFALL_LOG", "journal")]).finish();
        assert_eq!(code, Some(7), "{shell}: {output}");
        assert_eq!(output, "-- release aa01 started --\none\n", "{shell}");
    }
}

/// A manager stops a service with TERM to its process group
/// (supervisord's `stopasgroup`): the service handles it, and what it
/// writes then is still written after its time.
#[test]
fn the_launcher_leaves_term_to_the_service_and_writes_its_last_words() {
    for shell in ["dash", "busybox"] {
        let root = tempfile::tempdir().unwrap();
        let up = root.path().join("up");
        let run = launcher_of(
            root.path(),
            // The signal may come while the shell starts its `sleep`,
            // which then misses it: the trap ends that `sleep` too,
            // whose output goes nowhere, so that nothing it holds keeps
            // the launcher's output open.
            "#!/bin/sh\ntrap 'kill $! 2>/dev/null; echo stopped; exit 3' TERM\necho up\n\
             : >\"$UP\"\nwhile :; do sleep 60 >/dev/null 2>&1 & wait $!; done\n",
        );
        let from = now();
        let launched = Launched::start(shell, &run, &[("UP", up.to_str().unwrap())]);
        landfall_testbed::support::wait_for(10, &format!("{shell}: the service to start"), || {
            up.exists()
        });
        let group = format!("-{}", launched.child.id());
        let killed = std::process::Command::new("kill")
            .args(["-TERM", "--", &group])
            .status()
            .unwrap();
        assert!(killed.success());
        let pid = launched.child.id();
        let (code, output) = launched.finish();
        landfall_testbed::support::kill_group(pid);
        assert_eq!(code, Some(3), "{shell}: {output}");
        // The shell may say that its `sleep` was terminated too.
        let lines = stamped(&output, from, now());
        assert_eq!(lines[..2], ["-- release aa01 started --", "up"], "{shell}");
        assert_eq!(lines.last(), Some(&"stopped"), "{shell}");
    }
}

/// Where awk has no `strftime`, the launcher's other program writes the
/// same time, by hand: under mawk and busybox's awk, now, and for days
/// of leap years and centuries.
#[test]
fn the_time_written_without_strftime_is_the_same() {
    let function = STAMP_SRAND.split("\n    {").next().unwrap();
    for awk in [&["awk"][..], &["busybox", "awk"][..]] {
        let run = |program: &str| {
            let mut command = std::process::Command::new(landfall_testbed::require(awk[0]));
            let out = command
                .args(&awk[1..])
                .arg(program)
                .env("TZ", "UTC0")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert!(out.status.success(), "{awk:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        for t in [
            0,
            951_782_399,
            951_782_400,
            951_868_800,
            1_709_164_800,
            1_796_663_666,
        ] {
            let by_hand = run(&format!("{function}\nBEGIN {{ print iso({t}) }}"));
            let by_strftime = run(&format!(
                "BEGIN {{ print strftime(\"%Y-%m-%dT%H:%M:%SZ\", {t}) }}"
            ));
            assert_eq!(by_hand, by_strftime, "{awk:?} at {t}");
            assert_eq!(epoch(by_hand.trim()), t);
        }
        // Both programs as the launcher runs them, on one line read now
        // (again if a second began between them).
        let agreed = (0..3).any(|_| {
            let [a, b] = [STAMP_SRAND, STAMP_STRFTIME].map(|program| {
                let mut command = std::process::Command::new(landfall_testbed::require(awk[0]));
                let mut child = command
                    .args(&awk[1..])
                    .arg(program)
                    .env("TZ", "UTC0")
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"x\n").unwrap();
                String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
            });
            assert!(a.ends_with("Z x\n"), "{awk:?}: {a}");
            a == b
        });
        assert!(agreed, "{awk:?}: the two programs disagree on the time");
    }
}
