//! The service managers of the test bed's hosts, for real: a private
//! supervisord per host, and hosts that run under a real systemd. Needs
//! root, OpenSSH's sshd, util-linux, supervisor, and, for the systemd
//! hosts, systemd and cgroup v2.

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use landfall_testbed::{Init, Scoped, Testbed};

/// How long any one wait of these tests may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `command` on `host` over ssh with `input` on its standard input,
/// and returns its output, within [`DEADLINE`].
fn ssh(testbed: &Testbed, host: &str, command: &str, input: &str) -> Output {
    testbed
        .ssh(host, command, input, DEADLINE)
        .unwrap_or_else(|err| panic!("{err:#}"))
}

/// The trimmed standard output of a command that must succeed.
fn ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// Polls `check` until it holds; fails the test after [`DEADLINE`].
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what}: not so after {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` still exists (a zombie too).
fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The state letter of process `pid` (`T` when stopped).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Every process whose cgroup2 path holds `needle`.
fn processes_in_cgroups(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|cgroups| {
                cgroups
                    .lines()
                    .any(|l| l.starts_with("0::") && l.contains(needle))
            })
        })
        .collect()
}

/// The machine's mounts, without their ids, but those inside test beds
/// (the small disks of test beds of other tests, which run meanwhile): a
/// test bed must leave them as they were.
fn mounts() -> Vec<String> {
    let beds = std::env::temp_dir().join("lftb-");
    let beds = beds.to_string_lossy();
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .map(|line| line.split_whitespace().skip(2).collect::<Vec<_>>())
        .filter(|fields| {
            fields
                .get(2)
                .is_some_and(|point| !point.starts_with(&*beds))
        })
        .map(|fields| fields.join(" "))
        .collect();
    mounts.sort();
    mounts
}

#[test]
fn each_host_has_a_supervisord_of_its_own() {
    let started = Instant::now();
    let testbed =
        Scoped::up(2).expect("the test bed starts (this needs root, sshd and util-linux)");
    testbed
        .start_supervisord("host1")
        .expect("host1's supervisord starts");
    eprintln!("up and supervisord started in {:?}", started.elapsed());

    // A program written from outside, into the host's /etc/supervisor.
    std::fs::write(
        testbed.etc_supervisor("host1").join("conf.d/x.conf"),
        "[program:x]\ncommand=/bin/sleep 1000\nstartsecs=0\n",
    )
    .expect("x.conf is written");
    let seen = testbed
        .exec_in("host1", &["cat", "/etc/supervisor/conf.d/x.conf"])
        .expect("cat runs on host1");
    assert!(ok(&seen, "cat on host1").contains("[program:x]"));
    let update = testbed
        .exec_in("host1", &["supervisorctl", "update"])
        .expect("supervisorctl update runs on host1");
    assert!(
        ok(&update, "supervisorctl update").contains("x: added process group"),
        "{}",
        text(&update)
    );
    wait_until("x RUNNING on host1", || {
        let status = testbed
            .exec_in("host1", &["supervisorctl", "status"])
            .expect("supervisorctl status runs on host1");
        text(&status)
            .lines()
            .any(|l| l.starts_with("x ") && l.contains("RUNNING"))
    });
    let x: u32 = ok(
        &testbed
            .exec_in("host1", &["supervisorctl", "pid", "x"])
            .expect("supervisorctl pid x"),
        "supervisorctl pid x",
    )
    .parse()
    .expect("x's pid");
    let supervisord: u32 = ok(
        &testbed
            .exec_in("host1", &["supervisorctl", "pid"])
            .expect("supervisorctl pid"),
        "supervisorctl pid",
    )
    .parse()
    .expect("supervisord's pid");
    let host1 = testbed.processes("host1");
    assert!(
        host1.contains(&x) && host1.contains(&supervisord),
        "{host1:?}"
    );

    // host2 sees neither the program nor a supervisord, then has its own.
    let missing = testbed
        .exec_in("host2", &["test", "-e", "/etc/supervisor/conf.d/x.conf"])
        .expect("test runs on host2");
    assert!(!missing.status.success());
    let none = testbed
        .exec_in("host2", &["supervisorctl", "status"])
        .expect("supervisorctl runs on host2");
    assert!(!none.status.success(), "{}", text(&none));
    assert!(text(&none).contains("no such file"), "{}", text(&none));
    testbed
        .start_supervisord("host2")
        .expect("host2's supervisord starts");
    let status = testbed
        .exec_in("host2", &["supervisorctl", "status"])
        .expect("supervisorctl status runs on host2");
    assert!(ok(&status, "supervisorctl status on host2").is_empty());
    // Over ssh too, the way landfall reaches it.
    let status = ssh(&testbed, "host1", "supervisorctl status x", "");
    assert!(ok(&status, "ssh host1 supervisorctl status x").contains("RUNNING"));

    testbed.down().expect("the test bed stops");
    // supervisord daemonized: the machine's init reaps it and x, in its
    // own time.
    for pid in [x, supervisord] {
        assert!(
            process_state(pid).is_none_or(|s| s == 'Z'),
            "{pid} still runs"
        );
    }
    eprintln!("whole test in {:?}", started.elapsed());
}

#[test]
fn systemd_hosts_run_their_own_systemd() {
    let before = mounts();
    let started = Instant::now();
    let testbed = Scoped::up_with(2, Init::Systemd)
        .expect("the test bed starts (this needs root, sshd, util-linux, systemd and cgroup v2)");
    eprintln!("2 systemd hosts up in {:?}", started.elapsed());
    let reopened = Testbed::open(&testbed.dir).expect("the state reads back");
    assert_eq!(reopened.init, Init::Systemd);
    assert_eq!(testbed.running(), ["host1", "host2"]);

    let state = ssh(&testbed, "host1", "systemctl is-system-running", "");
    assert_eq!(ok(&state, "systemctl is-system-running"), "running");
    let name = ssh(&testbed, "host1", "hostname", "");
    assert_eq!(ok(&name, "hostname"), "host1");
    let pid1 = ssh(&testbed, "host1", "cat /proc/1/comm", "");
    assert_eq!(ok(&pid1, "cat /proc/1/comm"), "systemd");

    // A unit written over ssh, started, and its output in the journal.
    let unit = "[Unit]\nDescription=lftb hello\n[Service]\n\
                ExecStart=/bin/sh -c 'echo hello from $(hostname); exec sleep infinity'\n";
    let written = ssh(
        &testbed,
        "host1",
        "cat > /etc/systemd/system/lftb-hello.service && systemctl daemon-reload && \
         systemctl start lftb-hello.service && systemctl is-active lftb-hello.service",
        unit,
    );
    assert_eq!(ok(&written, "starting lftb-hello"), "active");
    assert!(
        testbed
            .etc_systemd_system("host1")
            .join("lftb-hello.service")
            .is_file()
    );
    wait_until("lftb-hello's output in host1's journal", || {
        let journal = ssh(
            &testbed,
            "host1",
            "journalctl -u lftb-hello.service --no-pager -o cat",
            "",
        );
        text(&journal).contains("hello from host1")
    });
    let active = testbed
        .exec_in("host1", &["systemctl", "is-active", "lftb-hello.service"])
        .expect("systemctl runs in host1");
    assert_eq!(ok(&active, "systemctl is-active"), "active");

    // A socket unit: the test connects, systemd starts the service.
    let host1 = testbed.host("host1").expect("host1").address.clone();
    let port = landfall_testbed::support::free_port();
    std::fs::write(
        testbed.srv("host1").join("greet.py"),
        "import socket\n\
         server = socket.socket(fileno=3)\n\
         while True:\n\
         \x20   client, _ = server.accept()\n\
         \x20   client.sendall(('hello from ' + socket.gethostname() + '\\n').encode())\n\
         \x20   client.close()\n",
    )
    .expect("greet.py is written");
    let units = ssh(
        &testbed,
        "host1",
        &format!(
            "cd /etc/systemd/system && \
             printf '[Socket]\\nListenStream={host1}:{port}\\n' > lftb-greet.socket && \
             printf '[Service]\\nExecStart=/usr/bin/python3 /srv/greet.py\\n' > lftb-greet.service && \
             systemctl daemon-reload && systemctl start lftb-greet.socket && \
             systemctl is-active lftb-greet.socket; systemctl is-active lftb-greet.service; true"
        ),
        "",
    );
    assert_eq!(ok(&units, "starting lftb-greet.socket"), "active\ninactive");
    let address: SocketAddr = format!("{host1}:{port}").parse().expect("an address");
    let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))
        .expect("host1's socket unit accepts a connection");
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("a read timeout");
    let mut greeting = String::new();
    BufReader::new(stream)
        .read_line(&mut greeting)
        .expect("the service answers");
    assert_eq!(greeting, "hello from host1\n");
    let service = testbed
        .exec_in("host1", &["systemctl", "is-active", "lftb-greet.service"])
        .expect("systemctl runs in host1");
    assert_eq!(ok(&service, "systemctl is-active lftb-greet"), "active");

    // host2 has none of it.
    let absent = ssh(
        &testbed,
        "host2",
        "test ! -e /etc/systemd/system/lftb-hello.service && \
         systemctl list-units --all --no-legend 'lftb-*'; systemctl cat lftb-hello.service",
        "",
    );
    assert!(!absent.status.success(), "{}", text(&absent));
    assert!(
        String::from_utf8_lossy(&absent.stdout).trim().is_empty(),
        "{}",
        text(&absent)
    );
    assert!(
        !testbed
            .etc_systemd_system("host2")
            .join("lftb-hello.service")
            .exists()
    );

    // supervisord runs as a unit there, like Debian's.
    testbed
        .start_supervisord("host2")
        .expect("host2's supervisord starts");
    let supervisor = testbed
        .exec_in("host2", &["systemctl", "is-active", "supervisor.service"])
        .expect("systemctl runs in host2");
    assert_eq!(ok(&supervisor, "systemctl is-active supervisor"), "active");
    let none = testbed
        .exec_in("host1", &["supervisorctl", "status"])
        .expect("supervisorctl runs in host1");
    assert!(!none.status.success(), "{}", text(&none));

    // A frozen host's processes all stop, and go on when thawed.
    let frozen = testbed.processes("host1");
    assert!(frozen.len() >= 4, "{frozen:?}");
    testbed.freeze("host1").expect("host1 freezes");
    wait_until("host1's processes stopped", || {
        frozen
            .iter()
            .all(|pid| process_state(*pid).is_none_or(|s| s == 'T'))
    });
    testbed.thaw("host1").expect("host1 thaws");
    let state = ssh(&testbed, "host1", "systemctl is-system-running", "");
    assert_eq!(
        ok(&state, "systemctl is-system-running after a thaw"),
        "running"
    );

    // A small disk restarts host2 on a tmpfs /srv: a new systemd boots.
    let old = testbed.processes("host2");
    testbed
        .small_disk("host2", 1 << 20)
        .expect("host2 restarts with a small disk");
    assert!(old.iter().all(|pid| !exists(*pid)), "{old:?}");
    let size = ssh(
        &testbed,
        "host2",
        "df -B1 --output=size /srv | tail -n 1",
        "",
    );
    assert_eq!(ok(&size, "df /srv"), "1048576");
    let state = ssh(&testbed, "host2", "systemctl is-system-running", "");
    assert_eq!(
        ok(&state, "systemctl is-system-running after a restart"),
        "running"
    );

    // Down: nothing of the test bed runs, its cgroups are gone, and the
    // machine's mounts are as they were.
    let mut processes = testbed.processes("host1");
    processes.extend(testbed.processes("host2"));
    let cgroups: Vec<_> = ["host1", "host2"]
        .iter()
        .map(|host| testbed.cgroup(host).expect("a systemd host has a cgroup"))
        .collect();
    assert!(cgroups.iter().all(|dir| dir.is_dir()));
    let tag = cgroups[0]
        .file_name()
        .expect("a cgroup name")
        .to_string_lossy()
        .trim_end_matches("host1")
        .to_string();
    assert!(processes_in_cgroups(&tag).len() >= processes.len() / 2);
    let stopping = Instant::now();
    testbed.down().expect("the test bed stops");
    eprintln!("down in {:?}", stopping.elapsed());
    let left: Vec<_> = processes.iter().filter(|pid| exists(**pid)).collect();
    assert!(left.is_empty(), "left running: {left:?}");
    assert!(processes_in_cgroups(&tag).is_empty());
    assert!(cgroups.iter().all(|dir| !dir.exists()), "{cgroups:?}");
    assert!(testbed.running().is_empty());
    assert_eq!(mounts(), before);
    eprintln!("whole test in {:?}", started.elapsed());
}

#[test]
fn a_test_bed_from_before_init_was_chosen_is_plain() {
    let dir = std::env::temp_dir().join(format!("lftb-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    std::fs::write(
        dir.join("testbed.json"),
        r#"{"dir": "/nowhere", "hosts": [{"name": "host1", "address": "127.0.0.2", "port": 2222}]}"#,
    )
    .expect("the state is written");
    let testbed = Testbed::open(&dir).expect("the state reads");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(testbed.init, Init::Plain);
    assert!(testbed.running().is_empty());
    assert_eq!(testbed.cgroup("host1"), None);
}
