//! Records written before the fact, on a test bed of real sshd hosts: a
//! command run by `exec` is in the host's log before it starts (so one
//! that ends the shell which ran it is on record all the same), how it
//! ended follows under the same id, and `--var` values that are secrets
//! are neither shown by `status` nor written where others may read them.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use crate::secrets::sealed_secrets;
use crate::support::Bed;

const APP: &str = "hello/app";

/// The secrets `sealed_secrets` gives an environment.
const TOKEN: &str = "tok-7f3a9c1e-canary";
const PASSWORD: &str = "pw-c0ffee-canary-22";

/// Gives `host` an artifact directory with a log, as a deploy leaves it,
/// so that `exec` records what it runs there.
fn with_log(bed: &Bed, host: &str) {
    let dir = bed.srv(host, APP).join(".landfall");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
}

/// The entries of the log of `app` on `host`, each parsed.
fn log(bed: &Bed, host: &str) -> Vec<serde_json::Value> {
    fs::read_to_string(bed.srv(host, APP).join(".landfall/log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line `{l}`: {e}")))
        .collect()
}

/// Runs `exec` on host1 with a shell command, within a minute.
fn exec_sh(bed: &Bed, command: &str) -> crate::support::Outcome {
    bed.ws.run_within(
        60,
        &[
            "exec", "testbed", "--only", "host1", "--", "sh", "-c", command,
        ],
    )
}

/// The one `exec` entry of the log whose command contains `needle`.
#[track_caller]
fn started(entries: &[serde_json::Value], needle: &str) -> serde_json::Value {
    let found: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["event"] == "exec")
        .filter(|e| e["command"].as_str().is_some_and(|c| c.contains(needle)))
        .collect();
    assert_eq!(found.len(), 1, "{entries:#?}");
    found[0].clone()
}

#[test]
fn exec_that_kills_the_shell_running_it_is_logged_all_the_same() {
    let bed = Bed::new();
    with_log(&bed, "host1");
    let out = exec_sh(&bed, "kill -9 $PPID");
    assert_ne!(out.code, 0, "{}", out.stderr);
    let entries = log(&bed, "host1");
    let entry = started(&entries, "kill -9 $PPID");
    assert_eq!(entry["user"], "root", "{entry}");
    assert!(entry["time"].is_string(), "{entry}");
    assert!(entry["id"].is_string(), "{entry}");
    // The shell that would have recorded how it ended is gone.
    assert!(
        !entries.iter().any(|e| e["event"] == "exec_end"),
        "{entries:#?}"
    );
}

#[test]
fn exec_that_kills_its_process_group_is_logged_all_the_same() {
    let bed = Bed::new();
    with_log(&bed, "host1");
    let out = exec_sh(&bed, "kill -KILL 0");
    assert_ne!(out.code, 0, "{}", out.stderr);
    let entries = log(&bed, "host1");
    let entry = started(&entries, "kill -KILL 0");
    assert_eq!(entry["env"], "testbed", "{entry}");
    // Other hosts ran nothing, and recorded nothing.
    assert!(log(&bed, "host2").is_empty());
}

#[test]
fn exec_command_finds_itself_in_the_log_and_its_status_follows() {
    let bed = Bed::new();
    with_log(&bed, "host1");
    let out = exec_sh(&bed, "cat /srv/hello/app/.landfall/log; exit 3");
    out.assert_code(1);
    // What the command read of the log while it ran: its own entry.
    assert!(
        out.stdout.contains("\"event\":\"exec\"") && out.stdout.contains("exit 3"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("exec_end"), "{}", out.stdout);
    let entries = log(&bed, "host1");
    let entry = started(&entries, "exit 3");
    let ended: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["event"] == "exec_end")
        .collect();
    assert_eq!(ended.len(), 1, "{entries:#?}");
    assert_eq!(ended[0]["id"], entry["id"], "{entries:#?}");
    assert_eq!(ended[0]["status"], 3, "{entries:#?}");
    assert_eq!(ended[0]["command"], entry["command"], "{entries:#?}");
    assert!(ended[0]["time"].is_string(), "{entries:#?}");
    // The start comes first.
    assert_eq!(entries.last(), Some(ended[0]), "{entries:#?}");
}

#[test]
fn exec_is_refused_where_its_record_cannot_be_written() {
    let bed = Bed::new();
    with_log(&bed, "host1");
    // A log that is a link landfall did not make is not written through,
    // and a command that cannot be recorded does not run.
    let elsewhere = bed.srv("host1", "elsewhere");
    fs::write(&elsewhere, "").unwrap();
    std::os::unix::fs::symlink(
        "/srv/elsewhere",
        bed.srv("host1", APP).join(".landfall/log"),
    )
    .unwrap();
    let out = exec_sh(&bed, "touch /srv/ran");
    out.assert_code(1);
    assert!(!bed.srv("host1", "ran").exists(), "the command ran");
    assert!(
        out.stderr
            .contains("cannot record the command in /srv/hello/app/.landfall/log"),
        "{}",
        out.stderr
    );
    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "");
}

#[test]
fn var_holding_a_secret_is_masked_in_status_and_its_provenance_is_private() {
    let bed = Bed::new();
    let identity = sealed_secrets(&bed.ws, "testbed");
    let with_identity = [("LANDFALL_AGE_IDENTITY", identity.as_path())];
    let deploy = bed.ws.run_with(
        &[
            "deploy",
            "testbed",
            "--message-format",
            "json",
            // A value that is a secret's, under a name that is not.
            "--var",
            &format!("greeting_extra={PASSWORD}"),
            // A key that is a secret's name.
            "--var",
            "admin_token=handed-on-the-command-line",
            // A key that says it is a credential.
            "--var",
            "smtp_password=hunter2-on-the-line",
            // A plain value, shown as given.
            "--var",
            "release_note=spring",
        ],
        &with_identity,
    );
    deploy.assert_code(0);
    let human = bed.ws.run(&["status", "testbed"]);
    human.assert_code(0);
    let json = bed
        .ws
        .run(&["status", "testbed", "--message-format", "json"]);
    json.assert_code(0);
    for out in [&human, &json] {
        let all = format!("{}{}", out.stdout, out.stderr);
        for secret in [
            PASSWORD,
            TOKEN,
            "handed-on-the-command-line",
            "hunter2-on-the-line",
        ] {
            assert!(!all.contains(secret), "{secret} shown: {all}");
        }
        assert!(all.contains("release_note=spring"), "{all}");
        assert!(all.contains("smtp_password=********"), "{all}");
        assert!(all.contains("admin_token=********"), "{all}");
        assert!(all.contains("greeting_extra=********"), "{all}");
    }
    for (host, _) in bed.hosts() {
        let provenance = bed.srv(&host, APP).join("current/.landfall-release");
        let mode = fs::metadata(&provenance).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{host}: {}", provenance.display());
        let text = fs::read_to_string(&provenance).unwrap();
        assert!(!text.contains(PASSWORD), "{host}: {text}");
        assert!(!text.contains("hunter2-on-the-line"), "{host}: {text}");
        assert!(text.contains("release_note=spring"), "{host}: {text}");
    }
}
