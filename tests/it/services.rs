//! The example run as a service (the repository's own `deploy.toml`):
//! under `--local` as a plain process, and on test-bed hosts under a real
//! supervisord and a real systemd, each deployed, restarted, rolled back,
//! failing `ready` and switched back, and its logs read.

use std::fs;

use crate::support::{Workspace, alive, http_get, http_get_at};

const APP: &str = "/srv/hello/app";

/// The pid `--local` recorded for a host's service.
fn local_pid(ws: &Workspace, host: &str) -> u32 {
    fs::read_to_string(ws.host_dir(host, APP).join(".landfall/service.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `status ARGS --message-format json`: what it says of each host's `app`.
pub(crate) fn app_status(ws: &Workspace, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--message-format", "json"]);
    let out = ws.run(&all);
    out.assert_code(0);
    out.events_of("status")[0]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["artifact"] == "app")
        .cloned()
        .collect()
}

/// Each host's app service, as `status` reports it.
pub(crate) fn services(ws: &Workspace, args: &[&str]) -> Vec<(String, serde_json::Value)> {
    app_status(ws, args)
        .into_iter()
        .map(|t| {
            (
                t["host"].as_str().unwrap().to_string(),
                t["service"].clone(),
            )
        })
        .collect()
}

#[test]
fn under_local_the_service_is_a_process_that_each_activation_restarts() {
    let ws = Workspace::hello_service();
    let deploy = |extra: &[&str]| {
        let mut args = vec!["deploy", "dev", "--local", "--message-format", "json"];
        args.extend_from_slice(extra);
        ws.run(&args)
    };
    deploy(&[]).assert_code(0);
    for (host, listen) in ["web1", "web2"].into_iter().zip(ws.listen) {
        assert_eq!(
            http_get(listen, "/"),
            Some((200, format!("hello from {host}\n")))
        );
    }
    let first = [local_pid(&ws, "web1"), local_pid(&ws, "web2")];
    for (host, service) in services(&ws, &["dev", "--local"]) {
        assert_eq!(service["manager"], "process", "{host}: {service}");
        assert_eq!(service["name"], "hello-app");
        assert_eq!(service["state"], "running");
        let pid = service["pid"].as_u64().unwrap();
        assert!(first.iter().any(|p| u64::from(*p) == pid), "{service}");
    }

    // Its log, prefixed by host, each line after its time.
    let logs = ws.run(&["logs", "dev", "--local", "-n", "5"]);
    logs.assert_code(0);
    for (host, listen) in ["web1", "web2"].into_iter().zip(ws.listen) {
        let line = format!("hello: listening on {listen}");
        assert!(
            logged(&logs.stdout, host).iter().any(|(_, l)| *l == line),
            "{}",
            logs.stdout
        );
    }

    // `--force` restarts it: a new process, the old one gone.
    deploy(&["--force"]).assert_code(0);
    let forced = [local_pid(&ws, "web1"), local_pid(&ws, "web2")];
    for (old, new) in first.iter().zip(forced) {
        assert_ne!(*old, new);
        assert!(!alive(*old) && alive(new));
    }

    // A release that is not ready is switched back from, and the previous
    // release's service runs again.
    let out = deploy(&["--var", "healthy=false", "--var", "greeting=bye"]);
    out.assert_code(1);
    assert!(
        out.statuses()
            .iter()
            .all(|(t, s)| !t.ends_with("/app") || s == "rolled_back"),
        "{:?}",
        out.statuses()
    );
    assert!(
        out.summary()["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["artifact"] == "app")
            .all(|h| h["message"]
                .as_str()
                .is_some_and(|m| m.contains("the service was not ready within 10s"))),
        "{}",
        out.stdout
    );
    for (host, listen) in ["web1", "web2"].into_iter().zip(ws.listen) {
        assert_eq!(
            http_get(listen, "/"),
            Some((200, format!("hello from {host}\n")))
        );
        assert!(alive(local_pid(&ws, host)));
    }

    // A change, then a rollback to the release before it.
    deploy(&["--var", "greeting=howdy"]).assert_code(0);
    assert_eq!(
        http_get(ws.listen[0], "/"),
        Some((200, "howdy from web1\n".into()))
    );
    ws.run(&["rollback", "dev", "--local", "--message-format", "json"])
        .assert_code(0);
    assert_eq!(
        http_get(ws.listen[0], "/"),
        Some((200, "hello from web1\n".into()))
    );
}

/// The lines `logs` printed for `host`: each line's time and text. Every
/// line carries its time, in UTC: the launcher's (`…T17:00:01Z`) or the
/// journal's, with its host and process (`…T17:00:01.123456+0000 host1
/// hello-app[42]:`), which is left out of the text.
fn logged<'a>(stdout: &'a str, host: &str) -> Vec<(&'a str, &'a str)> {
    let prefix = format!("{host} | ");
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|line| {
            let (time, text) = line.split_once(' ').unwrap_or((line, ""));
            let digits = |range: std::ops::Range<usize>| {
                time.get(range)
                    .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
            };
            let shape = time.get(4..5) == Some("-")
                && time.get(10..11) == Some("T")
                && digits(0..4)
                && digits(11..13)
                && digits(17..19);
            let utc = time.ends_with('Z') || time.ends_with("+00:00") || time.ends_with("+0000");
            assert!(
                shape && utc,
                "`{line}` of {host} does not start with its time in UTC"
            );
            let text = if time.ends_with('Z') {
                text
            } else {
                text.split_once(": ").map_or(text, |(_, said)| said)
            };
            (time, text)
        })
        .collect()
}

/// The line the launcher writes where release `id` started its service.
fn started(id: &str) -> String {
    format!("-- release {id} started --")
}

/// Each host's current release of `app`, as `status` reports it.
fn current_releases(ws: &Workspace, args: &[&str]) -> Vec<(String, String)> {
    app_status(ws, args)
        .into_iter()
        .map(|t| {
            (
                t["host"].as_str().unwrap().to_string(),
                t["current"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Two releases were deployed to every host (`before` the first, then
/// the current one): `logs` (run with `args`) shows the current release's
/// lines only, each after its time; `--all-releases`, both releases', told
/// apart by the line where each started; `-n 1`, one line.
fn logs_tell_releases_apart(ws: &Workspace, args: &[&str], before: &[(String, String)]) {
    let logs = |extra: &[&str]| {
        let mut all = vec!["logs"];
        all.extend_from_slice(args);
        all.extend_from_slice(extra);
        let out = ws.run(&all);
        out.assert_code(0);
        out.stdout
    };
    let now = current_releases(ws, args);
    let current = logs(&["-n", "200"]);
    let every = logs(&["-n", "200", "--all-releases"]);
    let last = logs(&["-n", "1"]);
    for ((host, old), (_, new)) in before.iter().zip(&now) {
        assert_ne!(old, new, "{host}: a second release was deployed");
        let texts: Vec<&str> = logged(&current, host).into_iter().map(|(_, t)| t).collect();
        assert!(texts.contains(&started(new).as_str()), "{host}:\n{current}");
        assert!(
            !texts.contains(&started(old).as_str()),
            "{host}:\n{current}"
        );
        assert_eq!(
            texts
                .iter()
                .filter(|t| t.starts_with("hello: listening on"))
                .count(),
            1,
            "{host}: the current release's service started once\n{current}"
        );
        let texts: Vec<&str> = logged(&every, host).into_iter().map(|(_, t)| t).collect();
        let at = |line: &str| texts.iter().rposition(|t| *t == line);
        let (old_at, new_at) = (at(&started(old)), at(&started(new)));
        assert!(
            old_at.is_some() && new_at.is_some() && old_at < new_at,
            "{host}: both releases, the old one first\n{every}"
        );
        let listening = |range: std::ops::Range<usize>| {
            texts[range]
                .iter()
                .any(|t| t.starts_with("hello: listening on"))
        };
        let (old_at, new_at) = (old_at.unwrap(), new_at.unwrap());
        assert!(
            listening(old_at..new_at) && listening(new_at..texts.len()),
            "{every}"
        );
        assert_eq!(logged(&last, host).len(), 1, "{host}:\n{last}");
    }
}

#[test]
fn logs_show_the_current_releases_lines_with_their_time_and_all_releases_told_apart() {
    let ws = Workspace::hello_service();
    ws.run(&["deploy", "dev", "--local"]).assert_code(0);
    let before = current_releases(&ws, &["dev", "--local"]);
    ws.run(&["deploy", "dev", "--local", "--var", "greeting=howdy"])
        .assert_code(0);
    logs_tell_releases_apart(&ws, &["dev", "--local"], &before);
}

#[test]
fn logs_of_an_environment_without_services_is_a_usage_error() {
    let ws = Workspace::hello();
    let out = ws.run(&["logs", "dev", "--local"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("no artifact of environment `dev` runs a service"),
        "{}",
        out.stderr
    );
}

/// A test bed of three hosts under `init`, and the example deployed there
/// as a service under `manager`: the environment `testbed`, hello on
/// `port` of each host's own address.
pub(crate) struct Fleet {
    pub(crate) testbed: landfall_testbed::Scoped,
    pub(crate) ws: Workspace,
    pub(crate) port: u16,
}

impl Fleet {
    pub(crate) fn new(init: landfall_testbed::Init) -> Fleet {
        let testbed = landfall_testbed::Scoped::up_with(3, init).unwrap();
        let ws = Workspace::hello_service();
        let port = crate::support::free_port();
        ws.use_testbed(&testbed, port);
        Fleet { testbed, ws, port }
    }

    pub(crate) fn deploy(&self, extra: &[&str]) -> crate::support::Outcome {
        let mut args = vec!["deploy", "testbed", "--message-format", "json"];
        args.extend_from_slice(extra);
        self.ws.run(&args)
    }

    /// What each host's hello answers on `/`.
    pub(crate) fn greetings(&self) -> Vec<Option<String>> {
        self.testbed
            .hosts
            .iter()
            .map(|h| http_get_at(&h.address, self.port, "/").map(|(_, body)| body))
            .collect()
    }

    pub(crate) fn expect_greeting(&self, greeting: &str) {
        let want: Vec<Option<String>> = self
            .testbed
            .hosts
            .iter()
            .map(|h| Some(format!("{greeting} from {}\n", h.name)))
            .collect();
        assert_eq!(self.greetings(), want);
    }

    /// Deploys, and expects every host to have refused before its switch
    /// (no `current` for the app anywhere), saying each of `said`.
    pub(crate) fn refused_before_switch(&self, said: &[&str]) {
        let out = self.deploy(&[]);
        out.assert_code(1);
        for host in &self.testbed.hosts {
            let current = self.testbed.srv(&host.name).join("hello/app/current");
            assert!(!current.exists(), "{}", host.name);
        }
        for text in said {
            assert!(out.stdout.contains(text), "no `{text}` in\n{}", out.stdout);
        }
    }

    /// Runs a command on a host, in its namespaces; its stdout.
    pub(crate) fn on(&self, host: &str, args: &[&str]) -> String {
        let output = self.testbed.exec_in(host, args).unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Each host's service pid, as `status` reports it.
    fn pids(&self) -> Vec<u64> {
        services(&self.ws, &["testbed"])
            .into_iter()
            .map(|(host, service)| {
                assert!(
                    service["state"]
                        .as_str()
                        .is_some_and(|s| s == "RUNNING" || s.starts_with("active")),
                    "{host}: {service}"
                );
                service["pid"].as_u64().unwrap()
            })
            .collect()
    }

    /// The whole life of a service: deployed, its state and log read,
    /// restarted, a release that is not ready switched back from, changed
    /// and rolled back.
    fn lifecycle(&self, listening: &str) {
        let out = self.deploy(&[]);
        out.assert_code(0);
        self.expect_greeting("hello");
        let first = self.pids();
        let logs = self.ws.run(&["logs", "testbed", "-n", "5"]);
        logs.assert_code(0);
        // journald puts its own prefix (time, host, process) first.
        for host in &self.testbed.hosts {
            let said = format!(
                "hello: listening on {}:{}{listening}",
                host.address, self.port
            );
            assert!(
                logs.stdout
                    .lines()
                    .any(|l| l.starts_with(&format!("{} | ", host.name)) && l.ends_with(&said)),
                "no `{said}` from {} in\n{}",
                host.name,
                logs.stdout
            );
        }

        let out = self.deploy(&["--force"]);
        out.assert_code(0);
        let forced = self.pids();
        assert!(
            first.iter().zip(&forced).all(|(a, b)| a != b),
            "{first:?} {forced:?}\n{}",
            out.stdout
        );
        self.expect_greeting("hello");

        let out = self.deploy(&["--var", "healthy=false", "--var", "greeting=bye"]);
        rolled_back_not_ready(&out);
        self.expect_greeting("hello");
        self.pids();

        self.deploy(&["--var", "greeting=howdy"]).assert_code(0);
        self.expect_greeting("howdy");
        let howdy = current_releases(&self.ws, &["testbed"]);
        self.ws
            .run(&["rollback", "testbed", "--message-format", "json"])
            .assert_code(0);
        self.expect_greeting("hello");
        // The release rolled back to is the current one, its lines told
        // apart from those of the release before it.
        logs_tell_releases_apart(&self.ws, &["testbed"], &howdy);
    }
}

impl Fleet {
    /// A value with quotes, a dollar, a backslash and a percent sign
    /// reaches the service as written: each manager's quoting of the
    /// environment is its own, and each is read by the real manager here.
    fn environment_arrives_byte_for_byte(&self, tricky: &str) {
        self.ws.edit(
            "deploy.toml",
            "exec = \"bin/hello serve --config etc/hello.toml\"",
            &format!(
                "exec = \"sh -c 'printf %s \\\"$TRICKY\\\" >\\\"$LANDFALL_PATH/tricky\\\"; \
                 exec bin/hello serve --config etc/hello.toml'\"\n\
                 environment = {{ TRICKY = '''{tricky}''' }}"
            ),
        );
        self.deploy(&[]).assert_code(0);
        for host in &self.testbed.hosts {
            let written =
                fs::read_to_string(self.testbed.srv(&host.name).join("hello/app/tricky")).unwrap();
            assert_eq!(written, tricky, "{}", host.name);
        }
    }
}

#[test]
fn under_supervisord_on_the_test_bed() {
    let fleet = Fleet::new(landfall_testbed::Init::Plain);
    // No supervisord answers yet: no host is switched.
    fleet.refused_before_switch(&[
        "the service manager cannot be used here; `current` is untouched",
        "supervisord does not answer here",
    ]);
    for host in &fleet.testbed.hosts {
        fleet.testbed.start_supervisord(&host.name).unwrap();
    }
    fleet.lifecycle("");
    let program = fleet.on("host1", &["cat", "/etc/supervisor/conf.d/hello-app.conf"]);
    assert!(program.contains("[program:hello-app]"), "{program}");
    let state = fleet.on("host2", &["supervisorctl", "status", "hello-app"]);
    assert!(state.contains("RUNNING"), "{state}");
    // supervisord cannot hold both kinds of quote in one value.
    fleet.environment_arrives_byte_for_byte(r"it's $HOME \ \\ `x` 100%;#x");

    // A log followed over ssh: once interrupted, nothing of it is left
    // running on the hosts.
    let mut child = fleet.ws.spawn(&["logs", "testbed", "-f", "-n", "1"]);
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.contains(" | "), "{first}");
    let following = |host: &str| {
        fleet.testbed.processes(host).into_iter().any(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "tail")
        })
    };
    // The lines written before come first, then the follower starts.
    crate::support::wait_for(20, "a follower on the hosts", || {
        fleet.testbed.hosts.iter().any(|h| following(&h.name))
    });
    let status = std::process::Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        crate::support::finish_within(child, 20, "logs -f").code,
        130
    );
    crate::support::wait_for(20, "the followers on the hosts to end", || {
        !fleet.testbed.hosts.iter().any(|h| following(&h.name))
    });

    // An artifact that stops being a service: the program is stopped and
    // its definition removed, on every host.
    let deploy = fleet.ws.read("deploy.toml");
    let start = deploy.find("[artifact.app.service]").unwrap();
    let end = deploy.find("# Static pages").unwrap();
    fleet.ws.write(
        "deploy.toml",
        &format!("{}{}", &deploy[..start], &deploy[end..]),
    );
    fleet.deploy(&[]).assert_code(0);
    for host in &fleet.testbed.hosts {
        let left = fleet.on(&host.name, &["ls", "/etc/supervisor/conf.d"]);
        assert_eq!(left.trim(), "", "{}", host.name);
        assert_eq!(http_get_at(&host.address, fleet.port, "/"), None);
    }
}

#[test]
fn prune_stops_the_service_of_an_orphan_unless_another_path_runs_it_now() {
    let fleet = Fleet::new(landfall_testbed::Init::Plain);
    for host in &fleet.testbed.hosts {
        fleet.testbed.start_supervisord(&host.name).unwrap();
    }
    fleet.deploy(&[]).assert_code(0);
    fleet.expect_greeting("hello");

    // The artifact moves: its service, of the same name, now runs from the
    // new path, and pruning the old one leaves it running.
    fleet.ws.edit(
        "deploy.toml",
        "path = \"/srv/hello/app\"",
        "path = \"/srv/hello/app2\"",
    );
    fleet.deploy(&["--var", "greeting=moved"]).assert_code(0);
    fleet.expect_greeting("moved");
    let found = fleet.ws.orphans("testbed");
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found
            .iter()
            .all(|o| o["path"] == "/srv/hello/app" && o["service"] == "supervisor hello-app"),
        "{found:?}"
    );
    let pruned = fleet
        .ws
        .run(&["prune", "testbed", "--yes", "--message-format", "json"]);
    pruned.assert_code(0);
    assert!(
        pruned
            .events_of("warning")
            .iter()
            .any(|w| w["message"].as_str().unwrap().contains("was left running")),
        "{}",
        pruned.stdout
    );
    for host in &fleet.testbed.hosts {
        assert!(!fleet.testbed.srv(&host.name).join("hello/app").exists());
    }
    fleet.expect_greeting("moved");
    assert!(fleet.ws.orphans("testbed").is_empty());

    // The artifact leaves deploy.toml: pruning stops its service and
    // removes its program.
    let deploy = fleet.ws.read("deploy.toml");
    let start = deploy.find("[artifact.app]").unwrap();
    let end = deploy.find("# Static pages").unwrap();
    fleet.ws.write(
        "deploy.toml",
        &format!("{}{}", &deploy[..start], &deploy[end..]),
    );
    fleet.deploy(&[]).assert_code(0);
    fleet.expect_greeting("moved");
    let found = fleet.ws.orphans("testbed");
    assert_eq!(found.len(), 3, "{found:?}");
    let pruned = fleet
        .ws
        .run(&["prune", "testbed", "--yes", "--message-format", "json"]);
    pruned.assert_code(0);
    let events = pruned.events_of("pruned");
    assert_eq!(events.len(), 3, "{}", pruned.stdout);
    assert!(
        events
            .iter()
            .all(|e| e["service"] == "supervisor hello-app")
    );
    for host in &fleet.testbed.hosts {
        let left = fleet.on(&host.name, &["ls", "/etc/supervisor/conf.d"]);
        assert_eq!(left.trim(), "", "{}", host.name);
        assert_eq!(http_get_at(&host.address, fleet.port, "/"), None);
        assert!(!fleet.testbed.srv(&host.name).join("hello/app2").exists());
    }
}

#[test]
fn under_systemd_on_the_test_bed_with_sockets_that_refuse_nothing() {
    let fleet = Fleet::new(landfall_testbed::Init::Systemd);
    fleet.ws.edit(
        "deploy.toml",
        "manager = \"supervisor\"",
        // Stop-then-start: systemd holds the sockets while the one
        // instance restarts.
        "manager = \"systemd\"\nlisten = [\"{{ vars.bind }}:{{ vars.port }}\"]\noverlap = false",
    );
    fleet.lifecycle(" (a socket of the service manager)");
    fleet.environment_arrives_byte_for_byte(r#"it's "quoted" $HOME \ \\ `x` 100%;#x"#);
    for host in &fleet.testbed.hosts {
        let active = fleet.on(
            &host.name,
            &[
                "systemctl",
                "is-active",
                "hello-app.socket",
                "hello-app.service",
            ],
        );
        assert_eq!(active, "active\nactive\n", "{}", host.name);
    }
    let journal = fleet.on(
        "host1",
        &["journalctl", "-u", "hello-app.service", "--no-pager"],
    );
    assert!(journal.contains("hello: listening on"), "{journal}");

    // Restarts under load: a client that connects again and again, to
    // every host, while a change restarts every service, is never
    // refused: systemd holds the sockets.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (answered, refused) = std::thread::scope(|scope| {
        let prober = scope.spawn(|| {
            let (mut answered, mut refused) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for host in &fleet.testbed.hosts {
                    match http_get_at(&host.address, fleet.port, "/health") {
                        Some((200, _)) => answered += 1,
                        _ => refused += 1,
                    }
                }
            }
            (answered, refused)
        });
        fleet.deploy(&["--var", "greeting=zero"]).assert_code(0);
        fleet
            .deploy(&["--var", "greeting=zero", "--force"])
            .assert_code(0);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        prober.join().unwrap()
    });
    fleet.expect_greeting("zero");
    assert!(answered > 0);
    assert_eq!(
        refused,
        0,
        "{refused} of {} requests failed",
        answered + refused
    );
}

#[test]
fn logs_follow_prints_each_line_as_it_comes_until_interrupted() {
    use std::io::BufRead as _;
    let ws = Workspace::hello_service();
    ws.run(&["deploy", "dev", "--local"]).assert_code(0);
    let mut child = ws.spawn(&["logs", "dev", "--local", "-f", "-n", "1"]);
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    // Each line as it comes, after its time.
    let wait_for_line = |what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line)
                    if logged(&line, "web1")
                        .first()
                        .is_some_and(|(_, t)| *t == what) =>
                {
                    return;
                }
                Ok(_) => {}
                Err(err) => panic!("no `{what}` within 30s ({err})"),
            }
        }
    };
    let release = current_releases(&ws, &["dev", "--local"])[0].1.clone();
    wait_for_line(&format!("hello: listening on {}", ws.listen[0]));
    // A restart writes to the log while it is followed: the service's last
    // words, where the release started again, and its first words.
    ws.run(&["deploy", "dev", "--local", "--force"])
        .assert_code(0);
    wait_for_line("hello: stopped");
    wait_for_line(&started(&release));
    wait_for_line(&format!("hello: listening on {}", ws.listen[0]));
    let status = std::process::Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    let out = crate::support::finish_within(child, 20, "logs -f");
    assert_eq!(out.code, 130, "{}", out.stderr);
    assert!(!out.stderr.contains("error"), "{}", out.stderr);
}

/// The account that deploys in the tests of a deploy user that is not
/// root.
pub(crate) const USER: &str = "lfdeploy";
pub(crate) const USER_ID: u32 = 4242;

impl Fleet {
    /// Makes [`USER`] the account that deploys, on the hosts only: each
    /// gets an /etc/passwd, group and shadow with it, and an
    /// /etc/sudoers.d and a /var/lib/systemd (holding `linger/`) of its
    /// own: the sudoers and linger directories returned (in `dir`) start
    /// empty. `/srv/hello` is
    /// the account's.
    pub(crate) fn deploy_user(
        &self,
        dir: &std::path::Path,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt as _;
        let add = |file: &str, line: String, mode: u32| {
            let path = dir.join(file);
            let text = fs::read_to_string(format!("/etc/{file}")).unwrap();
            fs::write(&path, format!("{text}{line}\n")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            path
        };
        let passwd = add(
            "passwd",
            format!("{USER}:x:{USER_ID}:{USER_ID}:landfall deploys:/srv/hello:/bin/sh"),
            0o644,
        );
        let group = add("group", format!("{USER}:x:{USER_ID}:"), 0o644);
        // It may read the journal, as a user of a host without persistent
        // journals of users' own needs to, for `logs`.
        let groups = fs::read_to_string(&group).unwrap();
        let groups: String = groups
            .lines()
            .map(|line| match line.strip_suffix(':') {
                Some(head) if line.starts_with("systemd-journal:") => format!("{head}:{USER}\n"),
                _ if line.starts_with("systemd-journal:") => format!("{line},{USER}\n"),
                _ => format!("{line}\n"),
            })
            .collect();
        fs::write(&group, groups).unwrap();
        let shadow = add("shadow", format!("{USER}:*:19000:0:99999:7:::"), 0o640);
        let sudoers = dir.join("sudoers.d");
        let state = dir.join("systemd");
        let linger = state.join("linger");
        for made in [&sudoers, &state, &linger] {
            fs::create_dir(made).unwrap();
            fs::set_permissions(made, fs::Permissions::from_mode(0o755)).unwrap();
        }
        for host in &self.testbed.hosts {
            let mounts = [
                (&passwd, "/etc/passwd"),
                (&group, "/etc/group"),
                (&shadow, "/etc/shadow"),
                (&sudoers, "/etc/sudoers.d"),
                (&state, "/var/lib/systemd"),
            ];
            for (source, target) in mounts {
                let out = self
                    .testbed
                    .exec_in(
                        &host.name,
                        &["mount", "--bind", source.to_str().unwrap(), target],
                    )
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let base = self.testbed.srv(&host.name).join("hello");
            fs::create_dir_all(&base).unwrap();
            std::os::unix::fs::chown(&base, Some(USER_ID), Some(USER_ID)).unwrap();
        }
        self.ws.edit(
            "environments/testbed.toml",
            "user = \"root\"\n",
            &format!("user = \"{USER}\"\n"),
        );
        (sudoers, linger)
    }
}

impl Fleet {
    /// Installs the sudo rules `init --sudoers` prints into the hosts'
    /// `sudoers` directory, as the guide says, which visudo must accept;
    /// the rules.
    pub(crate) fn install_sudo_rules(&self, sudoers: &std::path::Path) -> String {
        use std::os::unix::fs::PermissionsExt as _;
        let rules = self.ws.run(&["init", "--sudoers", "testbed"]);
        rules.assert_code(0);
        let file = sudoers.join("landfall-hello");
        fs::write(&file, &rules.stdout).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o440)).unwrap();
        let visudo = self.on(
            "host1",
            &["visudo", "-c", "-f", "/etc/sudoers.d/landfall-hello"],
        );
        assert!(visudo.contains("parsed OK"), "{visudo}\n{}", rules.stdout);
        rules.stdout
    }

    /// Runs `args` on `host` as the deploy user [`USER`]: whether it
    /// succeeded, and what it said on stdout and stderr.
    pub(crate) fn as_deploy_user(&self, host: &str, args: &[&str]) -> (bool, String) {
        let mut all = vec!["runuser", "-u", USER, "--"];
        all.extend_from_slice(args);
        let out = self.testbed.exec_in(host, &all).unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// A test bed whose hosts run supervisord and are deployed to by
    /// [`USER`], with the sudo rules `init --sudoers` prints installed as
    /// the guide says, and the program's definition installed by root as
    /// the first deploy asks; deployed once.
    fn with_sudo_rules(etc: &std::path::Path) -> Fleet {
        let fleet = Fleet::new(landfall_testbed::Init::Plain);
        let (sudoers, _) = fleet.deploy_user(etc);
        for host in &fleet.testbed.hosts {
            fleet.testbed.start_supervisord(&host.name).unwrap();
        }
        for tool in ["sudo", "visudo", "runuser"] {
            landfall_testbed::require(tool);
        }

        // Without a rule, no host is switched, and each says why.
        fleet.refused_before_switch(&[&format!(
            "user {USER} may not run \\\"supervisorctl -c /etc/supervisor/supervisord.conf restart hello-app\\\" as root without a password"
        )]);

        fleet.install_sudo_rules(&sudoers);

        // With the rules, still no host is switched: the program is not
        // installed, and only root installs one. Each host says what to
        // install, and where.
        let want = format!("{APP}/.landfall/hello-app.unit");
        fleet.refused_before_switch(&[
            "only root installs definitions",
            "install -m 644 -T COPY /etc/supervisor/conf.d/hello-app.conf",
            &want,
        ]);
        for host in &fleet.testbed.hosts {
            let program = fleet.on(&host.name, &["cat", &want]);
            assert!(program.contains(&format!("\nuser={USER}\n")), "{program}");
            let out = fleet
                .testbed
                .exec_in(
                    &host.name,
                    &[
                        "sh",
                        "-c",
                        "install -m 644 -T \"$1\" /etc/supervisor/conf.d/hello-app.conf && \
                         supervisorctl -c /etc/supervisor/supervisord.conf update hello-app",
                        "sh",
                        &want,
                    ],
                )
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        fleet
    }
}

#[test]
fn a_deploy_user_that_is_not_root_manages_services_with_the_sudo_rules_init_prints() {
    let etc = tempfile::tempdir().unwrap();
    let fleet = Fleet::with_sudo_rules(etc.path());
    // Then everything works as root's deploys do, and the service runs as
    // the deploy user, as its configuration names no other.
    fleet.lifecycle("");
    let owner = fs::metadata(fleet.testbed.srv("host1").join("hello/app/.landfall")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&owner), USER_ID);
    assert_eq!(uid_of(fleet.pids()[0]), USER_ID, "the service's account");

    // A service that refuses to start: its manager's verdict is read
    // with the rules' `status`, and its log as the deploy user may.
    refuse_to_start(&fleet.ws);
    let out = fleet.deploy(&[]);
    rolled_back_for_its_own_reason(&out, &["supervisord gave up on the service: FATAL"]);
}

/// The real user id of a process of a test-bed host (whose processes are
/// the machine's: the hosts have no PID namespace of their own).
fn uid_of(pid: u64) -> u32 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
        .unwrap_or_else(|| panic!("no Uid in\n{status}"))
}

/// The user id of an account of the machine's /etc/passwd.
fn uid_named(name: &str) -> u32 {
    fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| {
            let fields: Vec<&str> = l.split(':').collect();
            (fields.first() == Some(&name)).then(|| fields[2].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no account `{name}`"))
}

/// The rules `init --sudoers` printed put `*` in arguments, which sudo
/// reads as any words: the deploy user could `install` anything as root,
/// into /etc/sudoers.d. Installed as the guide says, the rules now allow
/// exactly the commands they list, and sudo itself refuses the rest.
#[test]
fn the_sudo_rules_allow_the_deploy_user_nothing_but_the_commands_listed() {
    let etc = tempfile::tempdir().unwrap();
    let fleet = Fleet::with_sudo_rules(etc.path());
    let (ok, listed) = fleet.as_deploy_user("host1", &["sudo", "-n", "-l"]);
    assert!(ok, "{listed}");
    eprintln!("$ sudo -n -l   # as {USER}\n{listed}");
    let conf = "/etc/supervisor/supervisord.conf";
    for verb in ["status", "start", "stop", "restart", "signal HUP"] {
        let rule = format!("/usr/bin/supervisorctl -c {conf} {verb} hello-app");
        assert!(listed.contains(&rule), "no `{rule}` in\n{listed}");
    }
    assert!(!listed.contains('*'), "{listed}");
    let planted = "/srv/hello/app/shared-evil.conf";
    fs::write(
        fleet
            .testbed
            .srv("host1")
            .join("hello/app/shared-evil.conf"),
        "[supervisorctl]\nserverurl=unix:///tmp/nothing.sock\n",
    )
    .unwrap();
    let hostile: &[&[&str]] = &[
        // A listed command with a word more, or another program's name.
        &[
            "/usr/bin/supervisorctl",
            "-c",
            conf,
            "restart",
            "hello-app",
            "all",
        ],
        &["/usr/bin/supervisorctl", "-c", conf, "restart", "other"],
        &["/usr/bin/supervisorctl", "-c", conf, "restart", "all"],
        // Its own configuration, or none (supervisorctl would then look in
        // the directory it starts in).
        &[
            "/usr/bin/supervisorctl",
            "-c",
            planted,
            "restart",
            "hello-app",
        ],
        &["/usr/bin/supervisorctl", "restart", "hello-app"],
        &["/usr/bin/supervisorctl", "-c", conf, "reread"],
        &["/usr/bin/supervisorctl", "-c", conf, "update", "hello-app"],
        // What the old rules let it do.
        &[
            "/usr/bin/install",
            "-m",
            "644",
            planted,
            "/etc/sudoers.d/evil",
        ],
        &[
            "/usr/bin/install",
            "-m",
            "644",
            "/srv/hello/app/releases/x/.landfall-service/unit",
            "/etc/supervisor/conf.d/hello-app.conf.landfall-new",
        ],
        &[
            "/usr/bin/mv",
            "-f",
            planted,
            "/etc/supervisor/conf.d/hello-app.conf",
        ],
        &["/usr/bin/rm", "-f", "/etc/supervisor/conf.d/hello-app.conf"],
        &["/usr/bin/systemctl", "restart", "hello-app.service"],
        &["/bin/sh", "-c", "id"],
    ];
    for command in hostile {
        let mut args = vec!["sudo", "-n"];
        args.extend_from_slice(command);
        let (ok, said) = fleet.as_deploy_user("host1", &args);
        eprintln!("$ {}\n{}", args.join(" "), said.trim_end());
        assert!(
            !ok && (said.contains("not allowed") || said.contains("a password is required")),
            "`{}` was allowed: {said}",
            command.join(" ")
        );
        // sudo's own policy check says the same, with no password asked.
        let mut check = vec!["sudo", "-n", "-l"];
        check.extend_from_slice(command);
        let (ok, said) = fleet.as_deploy_user("host1", &check);
        assert!(!ok, "sudo -l allows `{}`: {said}", command.join(" "));
    }
    let allowed = [
        "sudo",
        "-n",
        "-l",
        "/usr/bin/supervisorctl",
        "-c",
        conf,
        "restart",
        "hello-app",
    ];
    let (ok, said) = fleet.as_deploy_user("host1", &allowed);
    assert!(ok, "{said}");
    assert!(
        !fleet
            .testbed
            .srv("host1")
            .join("../etc")
            .join("sudoers.d/evil")
            .exists()
    );
    let evil = fleet.on("host1", &["ls", "/etc/sudoers.d"]);
    assert!(!evil.contains("evil"), "{evil}");
}

/// The manager, as root, read the environment file and wrote the log in
/// directories the deploy user owns, and started a launcher it may
/// replace: a link or a script planted there made root read or write
/// where the deploy user pointed. Now the launcher and the environment
/// are the service's own account's to run and read, and the log is where
/// only root writes.
#[test]
fn what_the_deploy_user_plants_is_never_read_or_written_as_root() {
    let etc = tempfile::tempdir().unwrap();
    let fleet = Fleet::with_sudo_rules(etc.path());
    fleet.deploy(&[]).assert_code(0);
    let host = "host1";
    let srv = fleet.testbed.srv(host);
    let current = srv.join("hello/app/current");
    let service = current.join(".landfall-service");
    // A file only root may read, beside which root must write nothing.
    fleet.on(
        host,
        &[
            "sh",
            "-c",
            "mkdir -p /root/lf && printf 'LEAKED=yes\\n' >/root/lf/env && chmod 600 /root/lf/env",
        ],
    );
    // The deploy user replaces the launcher with its own script (which
    // then starts the service as before), points the environment at a
    // file only root may read, and the artifact's old log at a file only
    // root may write.
    let as_user = |script: &str| {
        let (ok, said) = fleet.as_deploy_user(host, &["sh", "-c", script]);
        assert!(ok, "{said}");
    };
    as_user(&format!(
        "cd {APP}/current/.landfall-service && mv run run.real && \
         printf '#!/bin/sh\\nid -u >{APP}/ran-as\\nenv >{APP}/seen\\ncat {APP}/current/.landfall-service/env >>{APP}/seen 2>{APP}/env-error\\nexec {APP}/current/.landfall-service/run.real\\n' >run && chmod 755 run && \
         rm -f env && ln -s /root/lf/env env && \
         ln -sfn /root/lf/written {APP}/.landfall/service.log"
    ));
    fleet.deploy(&["--force"]);
    let ran_as = fs::read_to_string(srv.join("hello/app/ran-as")).unwrap();
    assert_eq!(
        ran_as.trim(),
        USER_ID.to_string(),
        "the planted launcher ran as root"
    );
    let seen = fs::read_to_string(srv.join("hello/app/seen")).unwrap();
    assert!(
        !seen.contains("LEAKED"),
        "root's file reached the service:\n{seen}"
    );
    let error = fs::read_to_string(srv.join("hello/app/env-error")).unwrap();
    assert!(
        error.contains("Permission denied") || error.contains("can't open"),
        "{error}"
    );
    let written = fleet.on(host, &["sh", "-c", "ls /root/lf"]);
    assert!(
        !written.contains("written"),
        "root wrote through the planted log: {written}"
    );
    let log = fs::read_to_string(fleet.testbed.supervisor_log(host).join("hello-app.log")).unwrap();
    assert!(log.contains("hello: listening"), "{log}");
    assert!(service.exists());
}

/// Two projects naming one service: the second deploy took the first's
/// service over. A service name belongs to the path whose definition is
/// installed under it: another is refused before its switch, with both
/// owners named, and the first keeps running.
#[test]
fn a_service_name_belongs_to_the_artifact_that_installed_it() {
    let fleet = Fleet::new(landfall_testbed::Init::Plain);
    for host in &fleet.testbed.hosts {
        fleet.testbed.start_supervisord(&host.name).unwrap();
    }
    fleet.deploy(&[]).assert_code(0);
    let pids = fleet.pids();
    let other = Workspace::hello_service();
    other.use_testbed(&fleet.testbed, crate::support::free_port());
    other.edit("deploy.toml", "name = \"hello\"", "name = \"other\"");
    other.edit(
        "deploy.toml",
        "5c0ea9e7d1a04b6f9f2e8d3b7a61c4f0",
        "0123456789abcdef0123456789abcdef",
    );
    other.edit(
        "deploy.toml",
        "path = \"/srv/hello/app\"",
        "path = \"/srv/other/app\"",
    );
    other.edit(
        "deploy.toml",
        "path = \"/srv/hello/site\"",
        "path = \"/srv/other/site\"",
    );
    other.edit(
        "deploy.toml",
        "manager = \"supervisor\"",
        "manager = \"supervisor\"\nname = \"hello-app\"",
    );
    let out = other.run(&["deploy", "testbed", "--message-format", "json"]);
    out.assert_code(1);
    let said = "service hello-app is installed for /srv/hello/app \
        (hello:5c0ea9e7d1a04b6f9f2e8d3b7a61c4f0/app@testbed), not for /srv/other/app \
        (other:0123456789abcdef0123456789abcdef/app@testbed)";
    assert!(out.stdout.contains(said), "no `{said}` in\n{}", out.stdout);
    for host in &fleet.testbed.hosts {
        assert!(
            !fleet
                .testbed
                .srv(&host.name)
                .join("other/app/current")
                .exists()
        );
        let program = fleet.on(
            &host.name,
            &["cat", "/etc/supervisor/conf.d/hello-app.conf"],
        );
        assert!(
            program.contains("command=/srv/hello/app/current/"),
            "{program}"
        );
    }
    assert_eq!(fleet.pids(), pids);
    fleet.expect_greeting("hello");
    // A definition that landfall did not write is never replaced.
    fleet.on(
        "host1",
        &["sh", "-c", "printf '[program:hello-app]\\ncommand=/bin/true\\n' >/etc/supervisor/conf.d/hello-app.conf"],
    );
    let out = fleet.deploy(&["--force"]);
    assert!(
        out.stdout.contains("service hello-app is installed (/etc/supervisor/conf.d/hello-app.conf) but not by landfall"),
        "{}",
        out.stdout
    );
}

/// A service whose configuration names no account ran as root whenever
/// root deployed it. Now a host refuses it before its switch, unless the
/// configuration says root.
#[test]
fn a_service_is_never_run_as_root_unless_the_configuration_says_so() {
    let fleet = Fleet::new(landfall_testbed::Init::Plain);
    for host in &fleet.testbed.hosts {
        fleet.testbed.start_supervisord(&host.name).unwrap();
    }
    fleet
        .ws
        .edit("environments/testbed.toml", "user = \"root\"\n", "");
    fleet.refused_before_switch(&[
        "service hello-app would run as root, the account that deploys",
        "(user = \\\"root\\\" if root is meant)",
    ]);
    // Said in the service itself, it is run so.
    fleet.ws.edit(
        "deploy.toml",
        "manager = \"supervisor\"",
        "manager = \"supervisor\"\nuser = \"root\"",
    );
    fleet.deploy(&[]).assert_code(0);
    let program = fleet.on("host1", &["cat", "/etc/supervisor/conf.d/hello-app.conf"]);
    assert!(program.ends_with("user=root\n"), "{program}");
    // Named as another account, it runs as that account.
    fleet
        .ws
        .edit("deploy.toml", "user = \"root\"", "user = \"daemon\"");
    fleet.deploy(&[]).assert_code(0);
    assert_eq!(uid_of(fleet.pids()[0]), uid_named("daemon"));
}

#[test]
fn under_a_users_own_systemd_with_lingering() {
    let fleet = Fleet::new(landfall_testbed::Init::Systemd);
    let etc = tempfile::tempdir().unwrap();
    let (_, linger) = fleet.deploy_user(etc.path());
    fleet.ws.edit(
        "deploy.toml",
        "manager = \"supervisor\"",
        "manager = \"systemd-user\"\nlisten = [\"{{ vars.bind }}:{{ vars.port }}\"]\noverlap = false",
    );
    // Without lingering the user's services would stop at logout: no host
    // is switched, and each says so.
    fleet.refused_before_switch(&[&format!(
        "user {USER} has no lingering systemd: a service of systemd-user would stop at logout"
    )]);
    // Lingering on: the user's manager runs, as logind would start it. The
    // test bed runs no logind nor D-Bus, so the runtime directory (and the
    // variable naming it) that logind would give are given by drop-ins.
    fs::write(linger.join(USER), "").unwrap();
    let runtime_dir = "d=/run/systemd/system && \
        mkdir -p $d/user-runtime-dir@.service.d $d/user@.service.d && \
        printf '[Service]\\nExecStart=\\nExecStart=/usr/bin/install -d -m 700 -o %%i -g %%i \
        /run/user/%%i\\nExecStop=\\nExecStop=/bin/rm -rf /run/user/%%i\\n' \
        >$d/user-runtime-dir@.service.d/testbed.conf && \
        printf '[Service]\\nEnvironment=XDG_RUNTIME_DIR=/run/user/%%i\\n' \
        >$d/user@.service.d/testbed.conf && \
        systemctl daemon-reload && systemctl start user@$1.service";
    for host in &fleet.testbed.hosts {
        let out = fleet
            .testbed
            .exec_in(
                &host.name,
                &["sh", "-c", runtime_dir, "sh", &USER_ID.to_string()],
            )
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fleet.lifecycle(" (a socket of the service manager)");
    let unit = fleet
        .testbed
        .srv("host1")
        .join("hello/.config/systemd/user/hello-app.service");
    assert!(unit.is_file(), "{}", unit.display());
}

/// The service's command made one that says `refusing to start` and
/// exits 1, waited for `ready` up to a minute: a wait that ends well
/// before that ended because the manager gave up. It refuses once its
/// readiness check (which never passes) was tried, so that its manager
/// surely started it (a command that exits at once may fail `systemctl
/// restart` itself), and at once whenever the manager starts it again.
/// The file the check leaves (see [`untried`]) must go before it is
/// deployed again.
fn refuse_to_start(ws: &Workspace) {
    ws.edit(
        "deploy.toml",
        "exec = \"bin/hello serve --config etc/hello.toml\"",
        r#"exec = """sh -c 'n=0; while [ ! -e "$LANDFALL_PATH/tried" ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done; echo refusing to start; exit 1'""""#,
    );
    ws.edit(
        "deploy.toml",
        "ready = \"http://{{ vars.bind }}:{{ vars.port }}/health\"\nready_timeout = \"10s\"",
        r#"ready = """exec:touch "$LANDFALL_PATH/tried"; exit 1"""
ready_timeout = "60s""#,
    );
}

/// Removes the file the readiness check of [`refuse_to_start`] leaves in
/// `app`, the app's directory.
fn untried(app: &std::path::Path) {
    match fs::remove_file(app.join("tried")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{}: {e}", app.display()),
        _ => {}
    }
}

/// How long a deploy of a service that refuses to start may take, against
/// the minute its readiness check is given.
const GAVE_UP_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Asserts that every app in `out` (JSON) was switched back from, its
/// message naming one of what `manager_said` and the service's own line,
/// and not `pre_activate`'s output (`config ok`); the messages.
#[track_caller]
/// The deploy `out` failed, and every host's `app` was switched back
/// because its service was not ready within its `ready_timeout` (10 s).
pub(crate) fn rolled_back_not_ready(out: &crate::support::Outcome) {
    out.assert_code(1);
    let summary = out.summary();
    let app: Vec<&serde_json::Value> = summary["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["artifact"] == "app")
        .collect();
    assert!(
        !app.is_empty()
            && app.iter().all(|h| h["status"] == "rolled_back"
                && h["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("the service was not ready within 10s"))),
        "{}",
        out.stdout
    );
}

fn rolled_back_for_its_own_reason(
    out: &crate::support::Outcome,
    manager_said: &[&str],
) -> Vec<String> {
    out.assert_code(1);
    let summary = out.summary();
    let messages: Vec<String> = summary["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["artifact"] == "app")
        .map(|h| {
            assert_eq!(h["status"], "rolled_back", "{}", out.stdout);
            h["message"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(!messages.is_empty(), "{}", out.stdout);
    for message in &messages {
        assert!(
            manager_said.iter().any(|said| message.contains(said))
                && message
                    .lines()
                    .any(|l| said_after_its_time(l, "refusing to start"))
                && !message.contains("config ok"),
            "{message}"
        );
    }
    messages
}

/// Whether `line` of a service's log is `text`, after the time the
/// launcher wrote before it (`2026-12-07T17:00:01Z `) where no journal
/// keeps the time apart.
fn said_after_its_time(line: &str, text: &str) -> bool {
    line == text
        || line
            .split_once(' ')
            .is_some_and(|(time, said)| time.len() == 20 && time.ends_with('Z') && said == text)
}

#[test]
fn under_local_a_service_that_exits_at_start_is_reported_with_its_own_words() {
    let ws = Workspace::hello_service();
    let identity = crate::secrets::sealed_secrets(&ws, "dev");
    let deploy = |json: bool| {
        let mut args = vec!["deploy", "dev", "--local"];
        if json {
            args.extend(["--message-format", "json"]);
        }
        ws.run_with(&args, &[("LANDFALL_AGE_IDENTITY", &identity)])
    };
    deploy(true).assert_code(0);
    refuse_to_start(&ws);
    // What the service prints goes through the mask of the secrets like
    // any host output.
    ws.edit(
        "deploy.toml",
        "echo refusing to start;",
        "echo refusing to start; echo token tok-7f3a9c1e-canary;",
    );
    let began = std::time::Instant::now();
    let out = deploy(true);
    let took = began.elapsed();
    let messages = rolled_back_for_its_own_reason(
        &out,
        &["the service's process is gone: it exited with status 1"],
    );
    assert!(
        messages.iter().all(|m| m.contains("token ********")),
        "{messages:?}"
    );
    assert!(took < GAVE_UP_WITHIN, "{took:?}");
    assert!(
        !out.stdout.contains("tok-7f3a9c1e-canary"),
        "{}",
        out.stdout
    );

    for host in ["web1", "web2"] {
        untried(&ws.host_dir(host, APP));
    }
    let out = deploy(false);
    out.assert_code(1);
    out.assert_says(&[
        "exited with status 1",
        "refusing to start",
        "token ********",
    ]);
    assert!(
        !out.stderr.contains("tok-7f3a9c1e-canary"),
        "{}",
        out.stderr
    );
    for (host, listen) in ["web1", "web2"].into_iter().zip(ws.listen) {
        assert_eq!(
            http_get(listen, "/"),
            Some((200, format!("hello from {host}\n")))
        );
    }
}

impl Fleet {
    /// A service that refuses to start, deployed over one that runs: each
    /// host switches back, the summary (JSON, then for people) names what
    /// `manager_said` and the service's own line, and the deploy ends long
    /// before the minute `ready` may take. When the first of those
    /// deploys ended.
    fn refusing_to_start(&self, manager_said: &[&str]) -> std::time::SystemTime {
        self.deploy(&[]).assert_code(0);
        self.expect_greeting("hello");
        refuse_to_start(&self.ws);
        let began = std::time::Instant::now();
        let out = self.deploy(&[]);
        let took = began.elapsed();
        let ended = std::time::SystemTime::now();
        rolled_back_for_its_own_reason(&out, manager_said);
        assert!(took < GAVE_UP_WITHIN, "{took:?}\n{}", out.stdout);
        self.expect_greeting("hello");

        // The second deploy meets the same service afresh: its check not
        // tried yet, and (under systemd) the starts of the first no longer
        // counted against its limit.
        for host in &self.testbed.hosts {
            untried(&self.testbed.srv(&host.name).join("hello/app"));
            self.on(
                &host.name,
                &[
                    "sh",
                    "-c",
                    "systemctl reset-failed hello-app.service 2>/dev/null || true",
                ],
            );
        }
        let out = self.ws.run(&["deploy", "testbed"]);
        out.assert_code(1);
        out.assert_says(&["refusing to start"]);
        assert!(
            manager_said.iter().any(|said| out.stderr.contains(said))
                && !out.stderr.contains("config ok"),
            "{}",
            out.stderr
        );
        self.expect_greeting("hello");
        ended
    }
}

#[test]
fn under_supervisord_a_service_that_exits_at_start_is_reported_once_it_is_fatal() {
    let fleet = Fleet::new(landfall_testbed::Init::Plain);
    for host in &fleet.testbed.hosts {
        fleet.testbed.start_supervisord(&host.name).unwrap();
    }
    fleet.refusing_to_start(&["supervisord gave up on the service: FATAL"]);
}

#[test]
fn under_systemd_a_service_that_exits_at_start_is_reported_once_its_start_limit_is_hit() {
    let fleet = Fleet::new(landfall_testbed::Init::Systemd);
    fleet.ws.edit(
        "deploy.toml",
        "manager = \"supervisor\"",
        "manager = \"systemd\"",
    );
    let ended = fleet.refusing_to_start(&[
        "systemd gave up on the service: failed (Result: exit-code), restarted",
        "systemd gave up on the service: failed (Result: start-limit-hit), restarted",
    ]);
    // When systemd gave up on it, by its journal: the first time it said
    // so, in the first of the two deploys.
    let journal = fleet.on(
        "host1",
        &[
            "journalctl",
            "-u",
            "hello-app.service",
            "-o",
            "json",
            "--no-pager",
        ],
    );
    let gave_up = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| {
            e["MESSAGE"]
                .as_str()
                .is_some_and(|m| m.contains("Start request repeated too quickly"))
        })
        .unwrap_or_else(|| panic!("systemd never gave up:\n{journal}"));
    let micros: u64 = gave_up["__REALTIME_TIMESTAMP"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let gave_up = std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros);
    let after = ended.duration_since(gave_up).unwrap();
    // The deploy noticed within a second or two, then switched back (the
    // previous release's service restarted and ready) and unlocked.
    assert!(after < std::time::Duration::from_secs(5), "{after:?}");
    eprintln!("ended {after:?} after systemd gave up");
}
