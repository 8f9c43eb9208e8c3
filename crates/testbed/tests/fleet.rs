//! A test bed as large as the benchmark's largest fleet: 64 hosts start
//! within seconds, each answers ssh on its own address with its own
//! `/srv`, and nothing of them is left once they are down. Needs root,
//! OpenSSH's sshd and util-linux.

use std::fs;
use std::process::Output;
use std::time::{Duration, Instant};

use landfall_testbed::{Scoped, Testbed};

/// The benchmark's largest fleet.
const HOSTS: usize = 64;

/// How long any one ssh command of this test may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `command` on `host` over ssh and returns its output, within
/// [`DEADLINE`].
fn ssh(testbed: &Testbed, host: &str, command: &str) -> Output {
    testbed
        .ssh(host, command, "", DEADLINE)
        .unwrap_or_else(|err| panic!("{err:#}"))
}

#[test]
fn sixty_four_hosts_start_quickly_answer_on_their_own_addresses_and_leave_nothing() {
    let started = Instant::now();
    let testbed = Scoped::up(HOSTS).expect("64 hosts start");
    // About 5 s on two busy cores; a minute would mean a host waits for
    // something it should not.
    let took = started.elapsed();
    assert!(
        took < Duration::from_mins(1),
        "64 hosts took {took:?} to start"
    );
    assert_eq!(testbed.running().len(), HOSTS);

    let addresses: Vec<&str> = testbed.hosts.iter().map(|h| h.address.as_str()).collect();
    // Each its own, in one block of this process's.
    let block = |a: &str| a.rsplit_once('.').map(|(block, _)| block.to_string());
    assert!(addresses[0].ends_with(".2"), "{addresses:?}");
    assert!(addresses[HOSTS - 1].ends_with(".65"), "{addresses:?}");
    assert!(!addresses[0].starts_with("127.0."), "{addresses:?}");
    assert!(
        addresses.iter().all(|a| block(a) == block(addresses[0])),
        "{addresses:?}"
    );

    for host in &testbed.hosts {
        fs::write(testbed.srv(&host.name).join("name"), &host.name).expect("/srv is writable");
    }
    // Eight at a time, as the benchmark connects.
    std::thread::scope(|scope| {
        for chunk in testbed.hosts.chunks(HOSTS / 8) {
            let testbed = &testbed;
            scope.spawn(move || {
                for host in chunk {
                    let output = ssh(
                        testbed,
                        &host.name,
                        "cat /srv/name; echo; echo \"${SSH_CONNECTION}\"",
                    );
                    assert!(
                        output.status.success(),
                        "ssh {}: {}",
                        host.name,
                        String::from_utf8_lossy(&output.stderr)
                    );
                    let stdout = String::from_utf8_lossy(&output.stdout);
                    let mut lines = stdout.lines();
                    assert_eq!(
                        lines.next(),
                        Some(host.name.as_str()),
                        "the /srv of {}",
                        host.name
                    );
                    // `client-address client-port server-address server-port`.
                    let server = lines.next().unwrap_or_default().split_whitespace().nth(2);
                    assert_eq!(
                        server,
                        Some(host.address.as_str()),
                        "the address of {}",
                        host.name
                    );
                }
            });
        }
    });

    let pids: Vec<u32> = testbed
        .hosts
        .iter()
        .flat_map(|h| testbed.processes(&h.name))
        .collect();
    assert!(pids.len() >= HOSTS, "every host has its sshd: {pids:?}");
    testbed.down().expect("the hosts stop");
    assert!(testbed.running().is_empty());
    let left: Vec<u32> = pids
        .into_iter()
        .filter(|pid| fs::metadata(format!("/proc/{pid}")).is_ok())
        .collect();
    assert!(left.is_empty(), "processes of the hosts left: {left:?}");
}
