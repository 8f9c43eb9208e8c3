//! The example run as a service (the repository's own `deploy.toml`):
//! under `--local` as a plain process, and on test-bed hosts under a real
//! supervisord and a real systemd, each deployed, restarted, rolled back,
//! failing `ready` and switched back, and its logs read.

use std::fs;

use crate::support::{Workspace, http_get};

const APP: &str = "/srv/hello/app";

/// The pid `--local` recorded for a host's service.
fn local_pid(ws: &Workspace, host: &str) -> u32 {
    fs::read_to_string(ws.host_dir(host, APP).join(".landfall/service.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// `status --message-format json`: each host's app service, as reported.
fn services(ws: &Workspace, args: &[&str]) -> Vec<(String, serde_json::Value)> {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--message-format", "json"]);
    let out = ws.run(&all);
    out.assert_code(0);
    let status = out.events_of("status");
    status[0]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["artifact"] == "app")
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
    for (host, port) in ["web1", "web2"].into_iter().zip(ws.ports) {
        assert_eq!(
            http_get(port, "/"),
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

    // Its log, prefixed by host.
    let logs = ws.run(&["logs", "dev", "--local", "-n", "5"]);
    logs.assert_code(0);
    for (host, port) in ["web1", "web2"].into_iter().zip(ws.ports) {
        let line = format!("{host} | hello: listening on 127.0.0.1:{port}");
        assert!(logs.stdout.lines().any(|l| l == line), "{}", logs.stdout);
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
    for (host, port) in ["web1", "web2"].into_iter().zip(ws.ports) {
        assert_eq!(
            http_get(port, "/"),
            Some((200, format!("hello from {host}\n")))
        );
        assert!(alive(local_pid(&ws, host)));
    }

    // A change, then a rollback to the release before it.
    deploy(&["--var", "greeting=howdy"]).assert_code(0);
    assert_eq!(
        http_get(ws.ports[0], "/"),
        Some((200, "howdy from web1\n".into()))
    );
    ws.run(&["rollback", "dev", "--local", "--message-format", "json"])
        .assert_code(0);
    assert_eq!(
        http_get(ws.ports[0], "/"),
        Some((200, "hello from web1\n".into()))
    );
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
