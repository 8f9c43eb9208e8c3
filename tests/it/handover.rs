//! The hand-over (`overlap`): a new release starts beside the instance
//! that serves, on the same sockets, is proven ready on itself, and only
//! then is the old instance told to stop, which finishes what it has.
//! Under a real systemd on the test bed and under `--local`, with a
//! client asking every host back to back and a stream held open through
//! the deploy: nothing is refused, nothing is cut, both instances serve
//! during the overlap and only the new one after; a release that is never
//! ready leaves the old instance serving, its pid unchanged.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::services::{Fleet, USER_ID, app_status, rolled_back_not_ready, services};
use crate::support::Workspace;

/// What the example's `deploy.toml` says of its service, and what a
/// service that hands over says instead: it listens on sockets of its
/// own address, and says when it is ready (`sd_notify`), which `ready` on
/// that shared address could not tell. Its configuration may ask it to
/// warm up (`--var warmup=…`).
fn overlapping(ws: &Workspace, manager: &str) {
    ws.write(
        "templates/hello.toml.j2",
        &format!("{}{WARMUP}", ws.read("templates/hello.toml.j2")),
    );
    ws.edit("deploy.toml", "manager = \"supervisor\"", manager);
    ws.edit(
        "deploy.toml",
        "ready = \"http://{{ vars.bind }}:{{ vars.port }}/health\"\n",
        "",
    );
}

/// How long the service warms up before it listens, when told to.
const WARMUP: &str = "{% if vars.warmup is defined %}warmup = \"{{ vars.warmup }}\"\n{% endif %}";

/// One answer to `GET PATH`: its status and the pid of the instance that
/// gave it (`X-Hello-Pid`); `None` if it was refused or cut.
fn ask(address: &str, port: u16, path: &str) -> Option<(u16, u32)> {
    let mut stream = TcpStream::connect((address, port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let pid = response
        .lines()
        .find_map(|line| line.strip_prefix("X-Hello-Pid: "))?
        .trim()
        .parse()
        .ok()?;
    Some((status, pid))
}

/// Each answer a [`Load`] got, in order: the host's index, and the status
/// and pid of the answer (`None`: refused or cut); and a gate opened at
/// each new answer.
type Answers = Arc<(Mutex<Vec<(usize, Option<(u16, u32)>)>>, Condvar)>;

/// A client that asks every host, back to back, until it is stopped.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Answers,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(hosts: &[(String, u16)]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Answers = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let thread = std::thread::spawn({
            let (stop, seen, hosts) = (Arc::clone(&stop), Arc::clone(&seen), hosts.to_vec());
            move || {
                while !stop.load(Ordering::SeqCst) {
                    for (index, (address, port)) in hosts.iter().enumerate() {
                        let answer = ask(address, *port, "/health");
                        seen.0.lock().unwrap().push((index, answer));
                        seen.1.notify_all();
                    }
                }
            }
        });
        Load {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Waits, for at most two minutes, until host `index` answered from a
    /// process other than `old`; its pid.
    fn until_answered_by_other_than(&self, index: usize, old: u32) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(120);
        let (answers, answered) = &*self.seen;
        let mut seen = answers.lock().unwrap();
        loop {
            let new = seen.iter().find_map(|(i, answer)| {
                answer.and_then(|(_, pid)| (*i == index && pid != old).then_some(pid))
            });
            if let Some(pid) = new {
                return pid;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "host {index} answered from no other process than {old} within 2 minutes"
            );
            seen = answered.wait_timeout(seen, left).unwrap().0;
        }
    }

    /// Stops, and returns every answer, checking that none failed.
    fn finish(mut self) -> Vec<(usize, u32)> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        let seen = std::mem::take(&mut *self.seen.0.lock().unwrap());
        let failed = seen
            .iter()
            .filter(|(_, answer)| !matches!(answer, Some((200, _))))
            .count();
        assert_eq!(failed, 0, "{failed} of {} requests failed", seen.len());
        assert!(!seen.is_empty());
        seen.into_iter()
            .map(|(index, answer)| (index, answer.unwrap().1))
            .collect()
    }
}

/// A long-lived response, a line every 100 ms, held open by the test.
struct Stream {
    lines: BufReader<TcpStream>,
    pid: u32,
    ticks: u32,
}

impl Stream {
    fn open(address: &str, port: u16) -> Stream {
        let mut stream = TcpStream::connect((address, port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(stream, "GET /stream?ms=100&lines=100000 HTTP/1.0\r\n\r\n").unwrap();
        let mut lines = BufReader::new(stream);
        let mut pid = None;
        loop {
            let mut line = String::new();
            lines.read_line(&mut line).unwrap();
            assert!(!line.is_empty(), "the stream ended in its head");
            if let Some(value) = line.strip_prefix("X-Hello-Pid: ") {
                pid = value.trim().parse().ok();
            }
            if line == "\r\n" {
                break;
            }
        }
        Stream {
            lines,
            pid: pid.expect("the stream's head names its process"),
            ticks: 0,
        }
    }

    /// Reads the next line, which must come within 10 s.
    fn tick(&mut self) {
        let mut line = String::new();
        self.lines.read_line(&mut line).expect("the stream goes on");
        self.ticks += 1;
        assert!(line.starts_with("tick "), "the stream was cut: `{line}`");
    }
}

/// The pid and name of each host's serving instance, and of the one
/// beside it, as `status` reports them.
fn instances(ws: &Workspace, args: &[&str]) -> Vec<(u32, String, Option<serde_json::Value>)> {
    app_status(ws, args)
        .into_iter()
        .map(|t| {
            let service = &t["service"];
            (
                u32::try_from(service["pid"].as_u64().unwrap()).unwrap(),
                service["name"].as_str().unwrap().to_string(),
                t.get("beside").cloned(),
            )
        })
        .collect()
}

/// Each test-bed host's address and the port hello listens on there, and
/// its name.
fn on_the_bed(fleet: &Fleet) -> (Vec<(String, u16)>, Vec<String>) {
    fleet
        .testbed
        .hosts
        .iter()
        .map(|h| ((h.address.clone(), fleet.port), h.name.clone()))
        .unzip()
}

/// Each local host's address and port.
fn on_this_machine(ws: &Workspace) -> Vec<(String, u16)> {
    ws.listen
        .iter()
        .map(|a| (a.ip().to_string(), a.port()))
        .collect()
}

/// The whole hand-over on `hosts`, deployed by `deploy` (which gets extra
/// arguments) and looked at with `status ARGS`; `running(host, slot)`
/// asks the manager whether the instance in that slot runs.
fn hand_over(
    ws: &Workspace,
    hosts: &[(String, u16)],
    status: &[&str],
    deploy: &(dyn Fn(&[&str]) -> crate::support::Outcome + Sync),
    running: &dyn Fn(usize, &str) -> bool,
) {
    let pids = |names: &str| -> Vec<u32> {
        instances(ws, status)
            .into_iter()
            .map(|(pid, name, beside)| {
                assert_eq!(name, format!("hello-app@{names}"));
                assert!(beside.is_none(), "{beside:?}");
                pid
            })
            .collect()
    };
    deploy(&[]).assert_code(0);
    let first = pids("blue");
    for index in 0..hosts.len() {
        assert!(running(index, "blue") && !running(index, "green"));
    }

    // A new release, 1 s to warm up, under load, with a stream open on
    // the first host's old instance.
    let load = Load::start(hosts);
    let mut stream = Stream::open(&hosts[0].0, hosts[0].1);
    assert_eq!(stream.pid, first[0]);
    stream.tick();
    std::thread::scope(|scope| {
        let deploying = scope.spawn(|| deploy(&["--var", "greeting=two", "--var", "warmup=1s"]));
        let new = load.until_answered_by_other_than(0, first[0]);
        // Both serve: the new one answers, the old one streams on. Once
        // the new one is proven ready, `status` shows it serving, and the
        // old one beside it, draining for as long as the stream is open.
        let deadline = Instant::now() + Duration::from_secs(60);
        let during = loop {
            let during = instances(ws, status);
            if during[0].1 == "hello-app@green" {
                break during;
            }
            assert!(Instant::now() < deadline, "{during:?}");
            stream.tick();
        };
        assert_eq!(during[0].0, new, "{during:?}");
        let beside = during[0]
            .2
            .as_ref()
            .expect("the old instance beside the new");
        assert_eq!(beside["name"], "hello-app@blue");
        assert_eq!(beside["pid"], first[0]);
        for _ in 0..3 {
            stream.tick();
        }
        // The stream ends as its client leaves: the old instance has
        // nothing left, and stops.
        drop(stream);
        deploying.join().unwrap().assert_code(0);
    });
    let answers = load.finish();
    let second = pids("green");
    for (index, old) in first.iter().enumerate() {
        assert_ne!(second[index], *old);
        assert!(running(index, "green") && !running(index, "blue"));
        let last = answers.iter().rev().find(|(i, _)| *i == index).unwrap();
        assert_eq!(
            last.1, second[index],
            "host {index}: only the new one after"
        );
    }

    // A release that is never ready (it would warm up for a minute):
    // stopped, and the instance that serves never stopped.
    let load = Load::start(hosts);
    let out = deploy(&["--var", "greeting=three", "--var", "warmup=60s"]);
    load.finish();
    rolled_back_not_ready(&out);
    assert_eq!(pids("green"), second);
    for index in 0..hosts.len() {
        assert!(running(index, "green") && !running(index, "blue"));
    }

    // Rollback hands over the other way.
    let load = Load::start(hosts);
    ws.run(&[&["rollback"], status].concat()).assert_code(0);
    load.finish();
    let back = pids("blue");
    for (index, pid) in back.iter().enumerate() {
        assert_ne!(*pid, second[index]);
        assert!(running(index, "blue") && !running(index, "green"));
    }
}

#[test]
fn under_systemd_the_new_release_starts_beside_the_old_one_which_drains() {
    let fleet = Fleet::new(landfall_testbed::Init::Systemd);
    overlapping(
        &fleet.ws,
        "manager = \"systemd\"\nlisten = [\"{{ vars.bind }}:{{ vars.port }}\"]\nnotify = true",
    );
    let (hosts, names) = on_the_bed(&fleet);
    hand_over(
        &fleet.ws,
        &hosts,
        &["testbed"],
        &|extra| fleet.deploy(extra),
        &|index, slot| {
            fleet
                .on(
                    &names[index],
                    &[
                        "systemctl",
                        "is-active",
                        &format!("hello-app@{slot}.service"),
                    ],
                )
                .trim()
                == "active"
        },
    );
    // The socket unit held the sockets throughout; the instance that
    // serves is the one started at boot.
    for name in &names {
        let enabled = fleet.on(
            name,
            &[
                "systemctl",
                "is-enabled",
                "hello-app.socket",
                "hello-app@blue.service",
                "hello-app@green.service",
            ],
        );
        assert_eq!(enabled, "enabled\nenabled\ndisabled\n", "{name}");
    }
    let journal = fleet.on("host1", &["journalctl", "-u", "hello-app@*", "--no-pager"]);
    assert!(journal.contains("hello: stopped"), "{journal}");
    // `logs` reads both instances' lines, from where the current release
    // started.
    let logs = fleet.ws.run(&["logs", "testbed", "-n", "50"]);
    logs.assert_code(0);
    for name in &names {
        assert!(
            logs.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{name} | ")) && l.contains("hello: listening on")),
            "{}",
            logs.stdout
        );
    }
    assert_eq!(services(&fleet.ws, &["testbed"]).len(), 3);
}

#[test]
fn under_local_the_new_release_starts_beside_the_old_one_which_drains() {
    let ws = Workspace::hello_service();
    overlapping(
        &ws,
        "manager = \"systemd\"\nlisten = [\"{{ vars.bind }}:{{ vars.port }}\"]\nnotify = true",
    );
    let hosts = on_this_machine(&ws);
    // The hooks after the service know the slot its instance runs in.
    ws.edit(
        "deploy.toml",
        "pre_activate = \"bin/hello serve --config etc/hello.toml --check\"",
        "pre_activate = \"bin/hello serve --config etc/hello.toml --check\"\n\
         activate = 'printf %s \"$LANDFALL_SLOT\" > .slot'",
    );
    let running = |index: usize, slot: &str| {
        let host = ["web1", "web2"][index];
        let pidfile = ws
            .host_dir(host, "/srv/hello/app")
            .join(format!(".landfall/service-{slot}.pid"));
        std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|pid| pid.trim().parse().ok())
            .is_some_and(crate::support::alive)
    };
    hand_over(
        &ws,
        &hosts,
        &["dev", "--local"],
        &|extra| {
            ws.run(
                &[
                    &["deploy", "dev", "--local", "--message-format", "json"],
                    extra,
                ]
                .concat(),
            )
        },
        &running,
    );
    // Rolled back, blue serves, and its activation said so.
    for host in ["web1", "web2"] {
        let slot =
            std::fs::read_to_string(ws.host_dir(host, "/srv/hello/app").join("current/.slot"));
        assert_eq!(slot.unwrap(), "blue", "{host}");
    }
}

#[test]
fn under_supervisord_the_new_release_starts_beside_the_old_one_which_drains() {
    let fleet = Fleet::new(landfall_testbed::Init::Plain);
    for host in &fleet.testbed.hosts {
        fleet.testbed.start_supervisord(&host.name).unwrap();
    }
    // supervisord holds no sockets: each instance binds the address itself
    // (SO_REUSEPORT), and is ready once it listens on it.
    overlapping(
        &fleet.ws,
        "manager = \"supervisor\"\nlisten = [\"{{ vars.bind }}:{{ vars.port }}\"]",
    );
    let (hosts, names) = on_the_bed(&fleet);
    let program = |index: usize, slot: &str| {
        fleet.on(
            &names[index],
            &["supervisorctl", "status", &format!("hello-app@{slot}")],
        )
    };
    hand_over(
        &fleet.ws,
        &hosts,
        &["testbed"],
        &|extra| fleet.deploy(extra),
        &|index, slot| program(index, slot).contains(" RUNNING "),
    );
    // Each slot is a program of its own; the one that serves starts at
    // boot, the other not.
    for name in &names {
        let conf = |slot: &str| {
            fleet.on(
                name,
                &[
                    "cat",
                    &format!("/etc/supervisor/conf.d/hello-app@{slot}.conf"),
                ],
            )
        };
        assert!(conf("blue").contains("[program:hello-app@blue]\n"));
        assert!(
            conf("blue").contains("\nautostart=true\n"),
            "{}",
            conf("blue")
        );
        assert!(
            conf("green").contains("\nautostart=false\n"),
            "{}",
            conf("green")
        );
    }
    let log = fleet.on("host1", &["cat", "/var/log/supervisor/hello-app.log"]);
    assert!(log.contains("hello: stopped"), "{log}");
}

#[test]
fn under_systemd_turning_the_hand_over_on_hands_over_from_the_one_instance() {
    let fleet = Fleet::new(landfall_testbed::Init::Systemd);
    overlapping(
        &fleet.ws,
        "manager = \"systemd\"\nlisten = [\"{{ vars.bind }}:{{ vars.port }}\"]\nnotify = true\n\
         overlap = false",
    );
    let (hosts, _) = on_the_bed(&fleet);
    let active = |host: &str, unit: &str| {
        fleet
            .on(host, &["systemctl", "is-active", unit])
            .trim()
            .to_string()
    };
    fleet.deploy(&[]).assert_code(0);
    let one: Vec<u32> = instances(&fleet.ws, &["testbed"])
        .into_iter()
        .map(|(pid, name, _)| {
            assert_eq!(name, "hello-app");
            pid
        })
        .collect();

    // Turned on, by a release that is never ready: the one instance never
    // stopped, and is what the host runs after the switch back.
    fleet.ws.edit("deploy.toml", "\noverlap = false", "");
    let load = Load::start(&hosts);
    fleet
        .deploy(&["--var", "greeting=two", "--var", "warmup=60s"])
        .assert_code(1);
    load.finish();
    let kept: Vec<(u32, String)> = instances(&fleet.ws, &["testbed"])
        .into_iter()
        .map(|(pid, name, _)| (pid, name))
        .collect();
    assert_eq!(
        kept,
        one.iter()
            .map(|pid| (*pid, "hello-app".to_string()))
            .collect::<Vec<_>>()
    );
    for host in &fleet.testbed.hosts {
        assert_eq!(
            active(&host.name, "hello-app@blue.service"),
            "inactive",
            "{}",
            fleet.on(&host.name, &["sh", "-c", "systemctl status hello-app@blue.service hello-app.socket; journalctl -n 40 --no-pager"])
        );
        let units = fleet.on(&host.name, &["ls", "/etc/systemd/system"]);
        assert!(!units.contains("hello-app@.service"), "{units}");
    }

    // Turned on by a release that is ready: the one instance hands over
    // to the blue one, and goes with its definition; the socket stays.
    let load = Load::start(&hosts);
    fleet.deploy(&["--var", "greeting=two"]).assert_code(0);
    load.finish();
    fleet.expect_greeting("two");
    for (index, (pid, name, beside)) in instances(&fleet.ws, &["testbed"]).into_iter().enumerate() {
        assert_eq!(name, "hello-app@blue");
        assert_ne!(pid, one[index]);
        assert!(beside.is_none());
    }
    for host in &fleet.testbed.hosts {
        assert_eq!(active(&host.name, "hello-app.service"), "inactive");
        assert_eq!(active(&host.name, "hello-app.socket"), "active");
        let units = fleet.on(&host.name, &["ls", "/etc/systemd/system"]);
        assert!(!units.contains("hello-app.service\n"), "{units}");
    }
}

/// A deploy user that is not root hands over with the sudo rules `init
/// --sudoers` prints, once root installed the program of each slot (only
/// root installs definitions): each host says which, and where.
#[test]
fn a_deploy_user_that_is_not_root_hands_over_under_supervisord() {
    let etc = tempfile::tempdir().unwrap();
    let fleet = Fleet::new(landfall_testbed::Init::Plain);
    let (sudoers, _) = fleet.deploy_user(etc.path());
    for host in &fleet.testbed.hosts {
        fleet.testbed.start_supervisord(&host.name).unwrap();
    }
    overlapping(
        &fleet.ws,
        "manager = \"supervisor\"\nlisten = [\"{{ vars.bind }}:{{ vars.port }}\"]",
    );
    let rules = fleet.install_sudo_rules(&sudoers);
    let conf = "/etc/supervisor/supervisord.conf";
    for slot in ["blue", "green"] {
        for verb in ["status", "start", "stop", "pid"] {
            let rule = format!("/usr/bin/supervisorctl -c {conf} {verb} hello-app@{slot}");
            assert!(rules.contains(&rule), "{rules}");
        }
    }

    let want = |slot: &str| format!("/srv/hello/app/.landfall/hello-app@{slot}.unit");
    fleet.refused_before_switch(&[
        "only root installs definitions",
        "install -m 644 -T COPY /etc/supervisor/conf.d/hello-app@blue.conf",
        "install -m 644 -T COPY /etc/supervisor/conf.d/hello-app@green.conf",
        &want("blue"),
        &want("green"),
    ]);
    for host in &fleet.testbed.hosts {
        for slot in ["blue", "green"] {
            let program = fleet.on(&host.name, &["cat", &want(slot)]);
            assert!(
                program.contains(&format!("[program:hello-app@{slot}]\n")),
                "{program}"
            );
            assert!(program.contains("\nautostart=true\n"), "{program}");
            let out = fleet
                .testbed
                .exec_in(
                    &host.name,
                    &[
                        "sh",
                        "-c",
                        "install -m 644 -T \"$1\" \"/etc/supervisor/conf.d/hello-app@$2.conf\"",
                        "sh",
                        &want(slot),
                        slot,
                    ],
                )
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        fleet.on(&host.name, &["supervisorctl", "-c", conf, "reread"]);
        // Root adds the programs, which start; the first deploy hands over
        // from nothing, so both are stopped by hand first.
        fleet.on(&host.name, &["supervisorctl", "-c", conf, "update"]);
        fleet.on(
            &host.name,
            &[
                "supervisorctl",
                "-c",
                conf,
                "stop",
                "hello-app@blue",
                "hello-app@green",
            ],
        );
    }
    let (hosts, _) = on_the_bed(&fleet);
    fleet.deploy(&[]).assert_code(0);
    let first = instances(&fleet.ws, &["testbed"]);
    let load = Load::start(&hosts);
    fleet.deploy(&["--var", "greeting=two"]).assert_code(0);
    load.finish();
    fleet.expect_greeting("two");
    for (index, (pid, name, beside)) in instances(&fleet.ws, &["testbed"]).into_iter().enumerate() {
        assert_eq!(name, "hello-app@green");
        assert_ne!(pid, first[index].0);
        assert!(beside.is_none(), "{beside:?}");
        let owner = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(
            owner
                .lines()
                .any(|l| l.starts_with(&format!("Uid:\t{USER_ID}\t"))),
            "the service runs as the deploy user: {owner}"
        );
    }
}

#[test]
fn under_local_turning_the_hand_over_on_hands_over_from_the_one_process() {
    let ws = Workspace::hello_service();
    overlapping(
        &ws,
        "manager = \"systemd\"\nlisten = [\"{{ vars.bind }}:{{ vars.port }}\"]\nnotify = true\n\
         overlap = false",
    );
    let hosts = on_this_machine(&ws);
    let deploy = |extra: &[&str]| {
        ws.run(
            &[
                &["deploy", "dev", "--local", "--message-format", "json"],
                extra,
            ]
            .concat(),
        )
    };
    deploy(&[]).assert_code(0);
    let one: Vec<u32> = instances(&ws, &["dev", "--local"])
        .into_iter()
        .map(|(pid, name, _)| {
            assert_eq!(name, "hello-app");
            pid
        })
        .collect();
    ws.edit("deploy.toml", "\noverlap = false", "");

    // A release that is never ready: the one process serves on.
    let load = Load::start(&hosts);
    deploy(&["--var", "greeting=two", "--var", "warmup=60s"]).assert_code(1);
    load.finish();
    let kept: Vec<u32> = instances(&ws, &["dev", "--local"])
        .into_iter()
        .map(|(pid, name, beside)| {
            assert_eq!(name, "hello-app");
            assert!(beside.is_none(), "{beside:?}");
            pid
        })
        .collect();
    assert_eq!(kept, one);

    // A release that is ready: the one process hands over to blue.
    let load = Load::start(&hosts);
    deploy(&["--var", "greeting=two"]).assert_code(0);
    load.finish();
    for (index, (pid, name, beside)) in instances(&ws, &["dev", "--local"]).into_iter().enumerate()
    {
        assert_eq!(name, "hello-app@blue");
        assert!(beside.is_none(), "{beside:?}");
        assert!(!crate::support::alive(one[index]));
        assert_ne!(pid, one[index]);
    }
}
