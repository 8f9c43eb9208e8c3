//! Secrets end to end: `secrets edit` through a scripted editor, a deploy
//! that puts them in a private file on real hosts, and every output that
//! must never show them; the errors of a wrong identity, a damaged file and
//! missing recipients; variables with their origins.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::Bed;
use crate::support::{Outcome, Workspace, http_get_with, wait_for};

pub(crate) const TOKEN: &str = "tok-7f3a9c1e-canary";
const PASSWORD: &str = "pw-c0ffee-canary-22";

/// An ssh-ed25519 key pair made by `ssh-keygen` in the workspace; the
/// environment lists its public half as the one recipient. Returns the
/// private key, the identity landfall decrypts with.
fn recipient_key(ws: &Workspace, env: &str, name: &str) -> PathBuf {
    let (key, public) = ssh_key(ws, name);
    let file = format!("environments/{env}.toml");
    let text = ws.read(&file);
    ws.write(
        &file,
        &format!("{text}\n[secrets]\nrecipients = [\"{}\"]\n", public.trim()),
    );
    key
}

/// An unencrypted ssh-ed25519 key `keys/NAME`, commented `NAME@test`
/// (made by the first call for a name): its private path and its public
/// line.
fn ssh_key(ws: &Workspace, name: &str) -> (PathBuf, String) {
    let key = ws.path(&format!("keys/{name}"));
    if key.exists() {
        let public = fs::read_to_string(key.with_extension("pub")).unwrap();
        return (key, public.trim().to_string());
    }
    fs::create_dir_all(key.parent().unwrap()).unwrap();
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("{name}@test"))
        .arg("-f")
        .arg(&key)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success());
    let public = fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

/// An editor that writes `contents` over the file it is given, and notes
/// that file's path in `keys/edited`.
fn editor_writing(ws: &Workspace, name: &str, contents: &str) -> PathBuf {
    let script = ws.path(&format!("keys/{name}"));
    let noted = ws.path("keys/edited");
    fs::create_dir_all(script.parent().unwrap()).unwrap();
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s' \"$1\" > '{}'\ncat > \"$1\" <<'EOF'\n{contents}EOF\n",
            noted.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    script
}

const SECRETS: &str =
    "admin_token = \"tok-7f3a9c1e-canary\"\n[db]\npassword = \"pw-c0ffee-canary-22\"\n";

/// Every file under `dir` (but not `skip`) whose bytes contain `needle`.
fn files_containing(dir: &Path, skip: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if path == skip || kind.is_symlink() {
            continue;
        }
        if kind.is_dir() {
            found.extend(files_containing(&path, skip, needle));
        } else if fs::read(&path)
            .unwrap_or_default()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            found.push(path);
        }
    }
    found
}

#[test]
fn secrets_reach_the_hosts_in_private_files_and_no_output_shows_them() {
    let bed = Bed::new();
    let ws = &bed.ws;
    let identity = recipient_key(ws, "testbed", "ops");
    let editor = editor_writing(ws, "editor", SECRETS);
    let env: [(&str, &Path); 2] = [("LANDFALL_AGE_IDENTITY", &identity), ("EDITOR", &editor)];
    let run = |args: &[&str], code: i32| {
        let out = ws.run_with(args, &env);
        out.assert_code(code);
        out
    };
    let mut outputs: Vec<(&str, Outcome)> = Vec::new();

    outputs.push(("secrets edit", run(&["secrets", "edit", "testbed"], 0)));
    let sealed = fs::read(ws.path("secrets/testbed.toml.age")).unwrap();
    assert!(sealed.starts_with(b"age-encryption.org/v1\n"));
    assert!(!sealed.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()));
    let plaintext = PathBuf::from(ws.read("keys/edited"));
    assert!(
        !plaintext.exists(),
        "the plaintext `{}` is gone",
        plaintext.display()
    );

    outputs.push((
        "deploy",
        run(&["deploy", "testbed", "--message-format", "json"], 0),
    ));
    for (host, address) in bed.hosts() {
        let config = bed.srv(&host, "hello/app/current/etc/hello.toml");
        let text = fs::read_to_string(&config).unwrap();
        assert!(
            text.contains(&format!("admin_token = \"{TOKEN}\"")),
            "{text}"
        );
        let mode = fs::metadata(&config).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "{host}: a file rendered with secrets is private"
        );
        let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
        assert_eq!(
            http_get_with(&address, bed.port, "/admin", &bearer),
            Some((200, "admin ok\n".to_string())),
            "{host} serves with the token it was given"
        );
    }
    outputs.push(("redeploy", run(&["deploy", "testbed", "-v"], 0)));
    outputs.push(("secrets show", run(&["secrets", "show", "testbed"], 0)));
    // A build stages what it renders with the secrets, and keeps none of it.
    outputs.push(("build", run(&["build", "testbed"], 0)));
    outputs.push((
        "build json",
        run(&["build", "testbed", "--message-format", "json"], 0),
    ));

    // A changed template: the dry run shows its diff, masked.
    ws.edit(
        "templates/hello.toml.j2",
        "static_dir = ",
        "# one more line\nstatic_dir = ",
    );
    outputs.push(("dry run", run(&["deploy", "testbed", "--dry-run", "-v"], 0)));
    let dry = &outputs.last().unwrap().1.stderr;
    assert!(dry.contains("+# one more line"), "{dry}");
    assert!(dry.contains(" admin_token = \"********\""), "{dry}");
    outputs.push((
        "dry run json",
        run(
            &["deploy", "testbed", "--dry-run", "--message-format", "json"],
            0,
        ),
    ));

    // Status needs no identity at all.
    let status = ws.run(&["status", "testbed"]);
    status.assert_code(0);
    outputs.push(("status", status));

    // A failing deploy whose hook prints the secrets.
    ws.edit(
        "deploy.toml",
        "pre_activate = \"bin/hello serve --config etc/hello.toml --check\"",
        "pre_activate = \"cat etc/hello.toml; cat etc/hello.toml >&2; exit 3\"",
    );
    outputs.push(("failing deploy", run(&["deploy", "testbed", "-v"], 1)));
    let failed = &outputs.last().unwrap().1.stderr;
    assert!(
        failed.contains("admin_token = \"********\""),
        "the hook's output is shown, masked: {failed}"
    );
    outputs.push((
        "failing deploy json",
        run(&["deploy", "testbed", "--message-format", "json"], 1),
    ));

    for secret in [TOKEN, PASSWORD] {
        for (what, out) in &outputs {
            assert!(
                !out.stdout.contains(secret) && !out.stderr.contains(secret),
                "`{what}` shows a secret:\n{}\n{}",
                out.stdout,
                out.stderr
            );
        }
        for (host, _) in bed.hosts() {
            let log = fs::read_to_string(bed.srv(&host, "hello/app/.landfall/log")).unwrap();
            assert!(!log.contains(secret), "{host}'s log: {log}");
        }
        let landfall = ws.path("target/landfall");
        let kept = files_containing(&landfall, &landfall.join("build"), secret);
        assert!(kept.is_empty(), "decrypted material left behind: {kept:?}");
    }
}

/// Gives environment `env` of a workspace secrets (`admin_token`, which
/// the example's template renders, and a password), encrypted to a key of
/// its own. Returns the identity.
pub(crate) fn sealed_secrets(ws: &Workspace, env: &str) -> PathBuf {
    let identity = recipient_key(ws, env, "ops");
    let editor = editor_writing(ws, "editor", SECRETS);
    ws.run_with(
        &["secrets", "edit", env],
        &[("LANDFALL_AGE_IDENTITY", &identity), ("EDITOR", &editor)],
    )
    .assert_code(0);
    identity
}

#[test]
fn a_wrong_identity_a_damaged_file_and_missing_recipients_are_refused() {
    let ws = Workspace::hello();
    let identity = sealed_secrets(&ws, "dev");
    let (stranger, _) = ssh_key(&ws, "stranger");
    let deploy = |identity: &Path| {
        let out = ws.run_with(
            &["deploy", "dev", "--local"],
            &[("LANDFALL_AGE_IDENTITY", identity)],
        );
        out.assert_code(2);
        assert!(
            !ws.path("target/landfall/local").exists(),
            "nothing deployed"
        );
        out.stderr
    };

    let err = deploy(&stranger);
    assert!(
        err.contains(&format!(
            "cannot decrypt `secrets/dev.toml.age` with the identity `{}`",
            stranger.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("the file is encrypted to `ssh-ed25519 "),
        "{err}"
    );
    assert!(err.contains("ops@test`"), "names the recipient: {err}");
    assert!(err.contains("secrets recipients dev --rekey"), "{err}");

    let sealed = ws.path("secrets/dev.toml.age");
    let good = fs::read(&sealed).unwrap();
    let mut flipped = good.clone();
    let last = flipped.len() - 5;
    flipped[last] ^= 0x20;
    fs::write(&sealed, &flipped).unwrap();
    let err = deploy(&identity);
    assert!(
        err.contains("`secrets/dev.toml.age` is corrupted: its contents do not decrypt"),
        "{err}"
    );
    fs::write(&sealed, &good[..good.len() / 3]).unwrap();
    let err = deploy(&identity);
    assert!(err.contains("`secrets/dev.toml.age` is corrupted"), "{err}");
    fs::write(&sealed, &good).unwrap();

    // `check` needs no identity that decrypts: with one that is not a
    // recipient, or with none at all (an empty home, as a CI job has), the
    // templates are checked with every secret as a placeholder.
    ws.run_with(&["check", "dev"], &[("LANDFALL_AGE_IDENTITY", &stranger)])
        .assert_code(0)
        .assert_says(&[
            "checked with every secret as a placeholder",
            "cannot decrypt `secrets/dev.toml.age`",
        ]);
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME is set"));
    let cargo_home =
        std::env::var_os("CARGO_HOME").map_or_else(|| home.join(".cargo"), PathBuf::from);
    let rustup_home =
        std::env::var_os("RUSTUP_HOME").map_or_else(|| home.join(".rustup"), PathBuf::from);
    let empty = ws.path("keys/empty-home");
    fs::create_dir_all(&empty).unwrap();
    let without_identity = [
        ("HOME", empty.as_path()),
        ("CARGO_HOME", cargo_home.as_path()),
        ("RUSTUP_HOME", rustup_home.as_path()),
    ];
    ws.run_with(&["check", "dev"], &without_identity)
        .assert_code(0)
        .assert_says(&[
            "checked with every secret as a placeholder",
            "no identity to decrypt secrets with",
        ]);
    // What is not an age file is refused all the same.
    fs::write(&sealed, b"token = \"in the clear\"\n").unwrap();
    ws.run_with(&["check", "dev"], &without_identity)
        .assert_code(2)
        .assert_says(&["`secrets/dev.toml.age` is corrupted"]);
    fs::write(&sealed, &good).unwrap();

    let env = ws.read("environments/dev.toml");
    let (head, _) = env.split_once("\n[secrets]").unwrap();
    ws.write("environments/dev.toml", head);
    let err = deploy(&identity);
    assert!(
        err.contains("environment `dev` lists no recipients for its secrets"),
        "{err}"
    );
    ws.write(
        "environments/dev.toml",
        &format!("{head}\n[secrets]\nrecipients = [\"age1notakey\"]\n"),
    );
    let err = deploy(&identity);
    assert!(
        err.contains("environments/dev.toml:") && err.contains("invalid secrets recipient"),
        "{err}"
    );

    ws.write("environments/dev.toml", &env);
    ws.run_with(
        &["deploy", "dev", "--local"],
        &[("LANDFALL_AGE_IDENTITY", &identity)],
    )
    .assert_code(0);
    let config = ws.host_dir("web1", "/srv/hello/app/current/etc/hello.toml");
    assert!(fs::read_to_string(&config).unwrap().contains(TOKEN));
    assert_eq!(
        fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_new_recipient_is_added_by_rekeying() {
    let ws = Workspace::hello();
    let ops = sealed_secrets(&ws, "dev");
    let (dev, public) = ssh_key(&ws, "dev");
    let env = ws.read("environments/dev.toml");
    ws.write(
        "environments/dev.toml",
        &env.replace(
            "recipients = [",
            &format!("recipients = [\"{}\", ", public.trim()),
        ),
    );

    let listed = ws.run_with(
        &["secrets", "recipients", "dev"],
        &[("LANDFALL_AGE_IDENTITY", &ops)],
    );
    listed.assert_code(0);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert!(
        lines[1].ends_with("dev@test  # NOT in the file"),
        "{}",
        listed.stdout
    );
    assert!(
        lines[2].ends_with("ops@test  # in the file"),
        "{}",
        listed.stdout
    );
    assert!(listed.stderr.contains("--rekey"), "{}", listed.stderr);
    // Until then the new key cannot decrypt, and deploys say why.
    let check = ws.run_with(&["check", "dev"], &[("LANDFALL_AGE_IDENTITY", &ops)]);
    assert!(
        check
            .assert_code(0)
            .stderr
            .contains("is not encrypted to `ssh-ed25519")
    );
    ws.run_with(
        &["secrets", "show", "dev"],
        &[("LANDFALL_AGE_IDENTITY", &dev)],
    )
    .assert_code(2);

    ws.run_with(
        &["secrets", "recipients", "dev", "--rekey"],
        &[("LANDFALL_AGE_IDENTITY", &ops)],
    )
    .assert_code(0);
    let shown = ws.run_with(
        &["secrets", "show", "dev", "db.password"],
        &[("LANDFALL_AGE_IDENTITY", &dev)],
    );
    assert_eq!(shown.assert_code(0).stdout, format!("{PASSWORD}\n"));
    let listed = ws.run_with(
        &["secrets", "recipients", "dev"],
        &[("LANDFALL_AGE_IDENTITY", &dev)],
    );
    assert!(!listed.stdout.contains("NOT"), "{}", listed.stdout);
    assert!(!listed.stderr.contains("--rekey"), "{}", listed.stderr);
}

#[test]
fn an_invalid_edit_goes_back_to_the_editor_and_ctrl_c_leaves_no_plaintext() {
    let ws = Workspace::hello();
    let identity = recipient_key(&ws, "dev", "ops");
    // The first save is not TOML; the second is.
    let editor = ws.path("keys/twice");
    let noted = ws.path("keys/edited");
    fs::write(
        &editor,
        format!(
            "#!/bin/sh\nprintf '%s' \"$1\" > '{noted}'\nif [ -e '{noted}.once' ]; then\n\
             printf 'token = \"fixed-on-second-try\"\\n' > \"$1\"\nelse\n\
             touch '{noted}.once'\nprintf 'token = \"unterminated\\n' > \"$1\"\nfi\n",
            noted = noted.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&editor, fs::Permissions::from_mode(0o755)).unwrap();
    let vars: [(&str, &Path); 2] = [("LANDFALL_AGE_IDENTITY", &identity), ("EDITOR", &editor)];
    let out = ws.run_with(&["secrets", "edit", "dev"], &vars);
    out.assert_code(0);
    assert!(
        out.stderr.contains("`secrets/dev.toml.age` (decrypted):1:"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("unterminated"),
        "errors never quote the file"
    );
    let shown = ws.run_with(&["secrets", "show", "dev", "token"], &vars);
    assert_eq!(shown.assert_code(0).stdout, "fixed-on-second-try\n");
    assert_eq!(
        ws.run_with(&["secrets", "show", "dev"], &vars).stdout,
        "token = ********\n"
    );

    // An editor that keeps saving the same broken text gives up.
    let broken = editor_writing(&ws, "broken", "token = [\n");
    let sealed = fs::read(ws.path("secrets/dev.toml.age")).unwrap();
    let out = ws.run_with(
        &["secrets", "edit", "dev"],
        &[("LANDFALL_AGE_IDENTITY", &identity), ("EDITOR", &broken)],
    );
    out.assert_code(1);
    assert!(out.stderr.contains("edit abandoned"), "{}", out.stderr);
    assert_eq!(fs::read(ws.path("secrets/dev.toml.age")).unwrap(), sealed);

    // Ctrl-C while the editor is open.
    let slow = ws.path("keys/slow");
    fs::write(
        &slow,
        format!(
            "#!/bin/sh\nprintf '%s' \"$1\" > '{noted}.tmp'\nmv '{noted}.tmp' '{noted}.slow'\nexec sleep 30\n",
            noted = noted.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&slow, fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = ws.spawn_with(
        &["secrets", "edit", "dev"],
        &[("LANDFALL_AGE_IDENTITY", &identity), ("EDITOR", &slow)],
    );
    let marker = PathBuf::from(format!("{}.slow", noted.display()));
    wait_for(20, "the editor to open", || marker.exists());
    let plaintext = PathBuf::from(fs::read_to_string(&marker).unwrap());
    assert!(plaintext.exists());
    let mode = fs::metadata(&plaintext).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = fs::metadata(plaintext.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    // The terminal sends SIGINT to the whole foreground group.
    let group = format!("-{}", child.id());
    let sent = std::process::Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(!plaintext.exists(), "the plaintext is removed on Ctrl-C");
    assert!(!plaintext.parent().unwrap().exists());
    assert_eq!(fs::read(ws.path("secrets/dev.toml.age")).unwrap(), sealed);
}

#[test]
fn config_annotate_says_where_every_variable_comes_from() {
    let ws = Workspace::hello();
    ws.edit(
        "environments/dev.toml",
        "[environment]\njobs = 4\n",
        "[environment]\njobs = 4\n\n[vars]\ngreeting = \"hi from dev\"\nbind = \"127.0.0.1\"\n",
    );
    ws.edit(
        "environments/dev.toml",
        "[hosts.web2]\naddress = \"127.0.0.1\"\nroles = [\"web\"]\nvars = {",
        "[hosts.web2]\naddress = \"127.0.0.1\"\nroles = [\"web\"]\nvars = { greeting = \"hi from web2\",",
    );
    let out = ws.run(&["config", "dev", "--annotate", "--var", "healthy=false"]);
    out.assert_code(0);
    let [web1, web2] = ws.listen;
    let expected = format!(
        "# host `web1` of environment `dev`\n\
         bind = \"{}\" # environments/dev.toml:11 (host `web1`), overrides deploy.toml:15, environments/dev.toml:6\n\
         greeting = \"hi from dev\"   # environments/dev.toml:5 (environment), overrides deploy.toml:13\n\
         healthy = false            # --var (command line), overrides deploy.toml:14\n\
         port = {}                # environments/dev.toml:11 (host `web1`)\n\
         \n\
         # host `web2` of environment `dev`\n\
         bind = \"{}\" # environments/dev.toml:16 (host `web2`), overrides deploy.toml:15, environments/dev.toml:6\n\
         greeting = \"hi from web2\"  # environments/dev.toml:16 (host `web2`), overrides deploy.toml:13, environments/dev.toml:5\n\
         healthy = false            # --var (command line), overrides deploy.toml:14\n\
         port = {}                # environments/dev.toml:16 (host `web2`)\n\
         \n",
        web1.ip(),
        web1.port(),
        web2.ip(),
        web2.port()
    );
    // Comments are aligned per host; compare without the padding.
    let unpadded = |text: &str| -> String {
        text.lines()
            .map(|l| match l.split_once("  #") {
                Some((a, b)) => format!("{} #{b}", a.trim_end()),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(unpadded(&out.stdout), unpadded(&expected));

    let json = ws.run(&[
        "config",
        "dev",
        "--host",
        "web2",
        "--message-format",
        "json",
    ]);
    let events = json.assert_code(0).events();
    assert_eq!(events.len(), 1);
    let greeting = &events[0]["vars"][1];
    assert_eq!(greeting["key"], "greeting");
    assert_eq!(greeting["value"], "hi from web2");
    assert_eq!(greeting["origin"]["layer"], "host");
    assert_eq!(greeting["overrides"][1]["layer"], "environment");

    // And the deploy uses what `config` shows.
    ws.run(&["deploy", "dev", "--local", "--var", "greeting=howdy"])
        .assert_code(0);
    for host in ["web1", "web2"] {
        let config = ws.host_dir(host, "/srv/hello/app/current/etc/hello.toml");
        let text = fs::read_to_string(config).unwrap();
        assert!(text.contains("greeting = \"howdy\""), "{host}: {text}");
    }
}

/// `secrets set ENV NAME` with `input` on its standard input.
fn set_secret(ws: &Workspace, identity: &Path, name: &str, input: &str) -> Outcome {
    let output = landfall_testbed::support::output_with_input(
        ws.command(&["secrets", "set", "dev", name])
            .env("LANDFALL_AGE_IDENTITY", identity),
        input.as_bytes(),
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    Outcome::from(output)
}

#[test]
fn a_secret_is_set_from_standard_input_and_edit_without_a_terminal_names_that_way() {
    let ws = Workspace::hello();
    let identity = recipient_key(&ws, "dev", "ops");
    // No editor named and no terminal: refused at once, naming `set`.
    let edit = ws.run_with(
        &["secrets", "edit", "dev"],
        &[("LANDFALL_AGE_IDENTITY", &identity)],
    );
    edit.assert_code(2).assert_says(&[
        "standard input is not one",
        "cargo deploy secrets set dev NAME",
    ]);
    assert!(!ws.path("secrets/dev.toml.age").exists());

    // The first secret makes the file; the next keeps the others.
    set_secret(&ws, &identity, "token", &format!("{TOKEN}\n")).assert_code(0);
    set_secret(&ws, &identity, "db.password", PASSWORD).assert_code(0);
    let vars: [(&str, &Path); 1] = [("LANDFALL_AGE_IDENTITY", &identity)];
    let token = ws.run_with(&["secrets", "show", "dev", "token"], &vars);
    assert_eq!(token.assert_code(0).stdout, format!("{TOKEN}\n"));
    let password = ws.run_with(&["secrets", "show", "dev", "db.password"], &vars);
    assert_eq!(password.assert_code(0).stdout, format!("{PASSWORD}\n"));
    // The file is encrypted: neither value is in it.
    let sealed = fs::read(ws.path("secrets/dev.toml.age")).unwrap();
    let sealed = String::from_utf8_lossy(&sealed);
    assert!(!sealed.contains(TOKEN) && !sealed.contains(PASSWORD));

    // Bad input: a name that is no TOML key, an empty value, a table
    // named as a secret. Each leaves the file as it was.
    let before = fs::read(ws.path("secrets/dev.toml.age")).unwrap();
    for (name, input, says) in [
        ("a b", "x-value-1", "a secret's name is made of"),
        ("token", "\n", "is empty; nothing was changed"),
        (
            "db",
            "x-value-2",
            "`db` in `secrets/dev.toml.age` is a table",
        ),
        (
            "token.inner",
            "x-value-3",
            "`token` in `secrets/dev.toml.age` is a value",
        ),
    ] {
        set_secret(&ws, &identity, name, input)
            .assert_code(2)
            .assert_says(&[says]);
    }
    assert_eq!(fs::read(ws.path("secrets/dev.toml.age")).unwrap(), before);
}
