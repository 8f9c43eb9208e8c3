//! Every way a rollout stops (a canary fails, a host fails with no failure
//! allowed, more hosts fail than the budget allows) said the same in the
//! human summary and the JSON one: the same statuses per host, the same
//! reason and counts, from one place. (Ctrl-C is in `local.rs`.)

use crate::support::{Outcome, Workspace};

/// Makes `host`'s `app` unhealthy in the `dev` environment.
fn unhealthy(ws: &Workspace, host: &str) {
    let text = ws.read("environments/dev.toml");
    let at = text.find(&format!("[hosts.{host}]")).unwrap();
    let vars = at + text[at..].find("vars = {").unwrap() + "vars = {".len();
    ws.write(
        "environments/dev.toml",
        &format!("{} healthy = false,{}", &text[..vars], &text[vars..]),
    );
}

/// Sets `app`'s rollout.
fn rollout(ws: &Workspace, rollout: &str) {
    let text = ws.read("deploy.toml");
    let text = match text.find("\n[artifact.app.rollout]\n") {
        Some(at) => {
            let end = text[at + 1..]
                .find("\n[")
                .map_or(text.len(), |e| at + 1 + e);
            format!("{}{}", &text[..at], &text[end..])
        }
        None => text,
    };
    ws.write(
        "deploy.toml",
        &text.replacen(
            "after = [\"site\"]\n",
            &format!("after = [\"site\"]\n\n[artifact.app.rollout]\n{rollout}\n"),
            1,
        ),
    );
}

/// The rows of a human summary: `host/artifact` and status.
fn rows(stderr: &str) -> Vec<(String, String)> {
    let table = &stderr[stderr.rfind("host  ").expect("a summary table")..];
    table
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| !l.starts_with(' '))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            // After the host and the artifact, a batch column may come.
            let status = words[2..]
                .iter()
                .find(|w| !w.chars().all(|c| c.is_ascii_digit() || c == '-'))
                .unwrap();
            (format!("{}/{}", words[0], words[1]), (*status).to_string())
        })
        .collect()
}

/// Deploys a new greeting in both formats, from the same state (a failed
/// deploy leaves the hosts as they were): both fail, and say the same.
fn both(ws: &Workspace, greeting: &str) -> (Outcome, Outcome) {
    let var = format!("greeting={greeting}");
    let human = ws.run(&["deploy", "dev", "--local", "--var", &var]);
    let json = ws.run(&[
        "deploy",
        "dev",
        "--local",
        "--var",
        &var,
        "--message-format",
        "json",
    ]);
    human.assert_code(1);
    json.assert_code(1);
    assert_eq!(rows(&human.stderr), json.statuses(), "{}", human.stderr);
    (human, json)
}

/// The summary's `stopped`, and the human line that says it.
fn stopped(human: &Outcome, json: &Outcome, reason: &str, failed: u64, allowed: &str) {
    let stopped = &json.summary()["stopped"];
    assert_eq!(stopped["artifact"], "app", "{stopped}");
    assert!(
        stopped["reason"].as_str().unwrap().starts_with(reason),
        "{stopped}"
    );
    assert_eq!(stopped["failed"], failed, "{stopped}");
    let hosts = if failed == 1 { "host" } else { "hosts" };
    let line = format!(
        "app: the rollout stopped, {} ({failed} {hosts} failed, {allowed})",
        stopped["reason"].as_str().unwrap()
    );
    let summary = &human.stderr[human.stderr.rfind("host  ").unwrap()..];
    assert!(summary.contains(&line), "{line:?} in:\n{}", human.stderr);
    // Every host not activated says why, as the summary does.
    for host in json.summary()["hosts"].as_array().unwrap() {
        if host["artifact"] == "app" && host["status"] == "skipped" {
            assert_eq!(
                host["message"],
                format!(
                    "not activated: the rollout stopped ({})",
                    stopped["reason"].as_str().unwrap()
                ),
            );
        }
    }
}

#[test]
fn every_rollout_stop_reads_the_same_in_the_human_and_json_summaries() {
    let ws = Workspace::hello();
    // An unhealthy host is given up on sooner.
    ws.edit(
        "deploy.toml",
        "health_timeout = \"10s\"",
        "health_timeout = \"2s\"",
    );
    ws.run(&["deploy", "dev", "--local"]).assert_code(0);
    unhealthy(&ws, "web1");

    // A canary fails: web1 switches back, web2 is never activated.
    rollout(&ws, "canary = 1");
    let (human, json) = both(&ws, "one");
    assert_eq!(
        json.statuses(),
        [
            ("web1/site".to_string(), "unchanged".to_string()),
            ("web2/site".into(), "unchanged".into()),
            ("web1/app".into(), "rolled_back".into()),
            ("web2/app".into(), "skipped".into()),
        ]
    );
    stopped(&human, &json, "a canary failed: `web1`", 1, "none allowed");
    assert!(human.stderr.contains("1 rolled_back"), "{}", human.stderr);

    // One host at a time, none may fail: web1 fails, web2 is not reached.
    rollout(&ws, "batch = 1");
    let (human, json) = both(&ws, "two");
    stopped(
        &human,
        &json,
        "1 host failed, more than `max_fail` allows (0)",
        1,
        "none allowed",
    );

    // Both fail in one batch, one may: past the budget.
    unhealthy(&ws, "web2");
    rollout(&ws, "batch = 2\nmax_fail = 1");
    let (human, json) = both(&ws, "three");
    stopped(
        &human,
        &json,
        "2 hosts failed, more than `max_fail` allows (1)",
        2,
        "1 allowed",
    );
    assert_eq!(
        json.statuses()[2..],
        [
            ("web1/app".to_string(), "rolled_back".to_string()),
            ("web2/app".into(), "rolled_back".into()),
        ]
    );
}

#[test]
fn ctrl_c_reads_as_the_reason_in_the_human_summary_on_every_host_it_switched_back() {
    let ws = Workspace::hello();
    ws.run(&["deploy", "dev", "--local"]).assert_code(0);
    // web1 activates first; web2's activate hook waits for the test.
    let gate = crate::local::gate_activation(&ws, |_| "[ {{ host.name }} = web2 ]".to_string());
    rollout(&ws, "batch = 1");
    ws.run(&["deploy", "dev", "--local"]).assert_code(0);
    std::fs::remove_file(format!("{gate}/started")).unwrap();

    let child = ws.spawn(&["deploy", "dev", "--local", "--var", "greeting=howdy"]);
    crate::support::wait_for(60, "web2's activate hook to start", || {
        std::path::Path::new(&format!("{gate}/started")).exists()
    });
    crate::local::signal_group(&child, "-INT");
    std::fs::write(format!("{gate}/go"), "").unwrap();
    let out = crate::support::finish_within(child, 120, "the deploy stopped by Ctrl-C");
    assert_eq!(out.code, 130, "{}", out.stderr);
    assert_eq!(
        rows(&out.stderr)[2..],
        [
            ("web1/app".to_string(), "rolled_back".to_string()),
            ("web2/app".into(), "rolled_back".into()),
        ],
        "{}",
        out.stderr
    );
    let summary = &out.stderr[out.stderr.rfind("host  ").unwrap()..];
    assert_eq!(
        summary
            .matches("the rollout stopped: landfall was asked to stop")
            .count(),
        2,
        "each host switched back says why:\n{summary}"
    );
    assert!(!summary.contains("another host failed"), "{summary}");
    assert!(
        summary.contains(
            "app: the rollout stopped, landfall was asked to stop (0 hosts failed, none allowed)"
        ),
        "{summary}"
    );
}
