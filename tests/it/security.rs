//! Security defaults: what landfall writes is open to nobody else, whatever
//! the user's umask and the modes of the workspace's files, unless a mode
//! is declared; files holding secrets are private; the log says who
//! deployed what, and no other artifact can write into it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::remote::Bed;
use crate::secrets::sealed_secrets;

/// The one file declared writable by others.
const DECLARED: &str = "inbox/drop.css";

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Every file and directory under `dir` (links are not followed: a link's
/// own mode means nothing) that its group or others may write, but those
/// whose path ends with `declared`.
fn writable_by_others(dir: &Path, declared: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 && !path.ends_with(declared) {
            found.push(format!("{} {mode:04o}", path.display()));
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        }
    }
    found
}

/// Checks one host's artifact directories, `app` and `site` under `srv`.
fn assert_closed(host: &str, srv: &Path) {
    for artifact in ["app", "site"] {
        let base = srv.join("hello").join(artifact);
        assert_eq!(mode(&base.join(".landfall")), 0o700, "{host}: {artifact}");
        let open = writable_by_others(&base, DECLARED);
        assert!(open.is_empty(), "{host}: {artifact}: {open:#?}");
    }
    let release = srv.join("hello/app/current/");
    assert_eq!(mode(&release.join("etc/hello.toml")), 0o600, "{host}");
    assert_eq!(mode(&release.join("bin/restart")), 0o755, "{host}");
    assert_eq!(mode(&release.join("bin/hello")), 0o755, "{host}");
    let site = srv.join("hello/site/current/");
    assert_eq!(mode(&site.join("public/index.html")), 0o644, "{host}");
    assert_eq!(mode(&site.join("public")), 0o755, "{host}");
    assert_eq!(mode(&site.join(DECLARED)), 0o666, "{host}: declared");
}

#[test]
fn nothing_written_is_open_to_others_whatever_the_umask_unless_declared() {
    let bed = Bed::new();
    let ws = &bed.ws;
    let testbed = sealed_secrets(ws, "testbed");
    let dev = sealed_secrets(ws, "dev");
    // The workspace's own modes are as loose as they come, and one file is
    // declared writable by everyone.
    for (path, loose) in [
        ("examples/hello/site", 0o777),
        ("examples/hello/site/index.html", 0o666),
        ("examples/hello/scripts/restart", 0o777),
    ] {
        fs::set_permissions(ws.path(path), fs::Permissions::from_mode(loose)).unwrap();
    }
    ws.edit(
        "deploy.toml",
        "files = [{ src = \"examples/hello/site\", dst = \"public\" }]",
        &format!(
            "files = [{{ src = \"examples/hello/site\", dst = \"public\" }}, \
             {{ src = \"examples/hello/site/style.css\", dst = \"{DECLARED}\", mode = \"0666\" }}]"
        ),
    );

    let deploy = ws.run_under_umask(
        0o000,
        &["deploy", "testbed", "--message-format", "json"],
        &[("LANDFALL_AGE_IDENTITY", &testbed)],
    );
    deploy.assert_code(0);
    for (host, _) in bed.hosts() {
        assert_closed(&host, &bed.srv(&host, ""));
    }

    let local = ws.run_under_umask(
        0o000,
        &["deploy", "dev", "--local", "--message-format", "json"],
        &[("LANDFALL_AGE_IDENTITY", &dev)],
    );
    local.assert_code(0);
    for host in ["web1", "web2"] {
        assert_closed(host, &ws.host_dir(host, "/srv"));
    }
    // landfall's own directory, where rendered secrets are staged, is
    // private.
    assert_eq!(mode(&ws.path("target/landfall")), 0o700);
}
