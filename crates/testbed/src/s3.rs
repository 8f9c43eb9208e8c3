//! A real S3-compatible object store for tests of pull mode: `s3s-fs`
//! (`cargo install s3s-fs --locked --features binary`), which keeps each
//! bucket as a directory and each object as a file under its root, on
//! 127.0.0.1 at a free port, with credentials of its own. Test-bed hosts
//! share the machine's network, so they reach it as the deploying machine
//! does. It is stopped on drop.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long s3s-fs may take to listen.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A running s3s-fs.
#[derive(Debug)]
pub struct S3Server {
    pub port: u16,
    /// Buckets are directories here, objects files under them.
    pub root: PathBuf,
    pub access_key: String,
    pub secret_key: String,
    child: Child,
}

/// `s3s-fs`, from `PATH` or cargo's own `bin` directory.
fn binary() -> Result<PathBuf> {
    crate::prerequisites::needed("s3s-fs")
}

impl S3Server {
    /// Starts s3s-fs with its root in `dir` (made if need be), and waits
    /// until it listens.
    pub fn start(dir: &Path) -> Result<S3Server> {
        let root = dir.join("s3");
        fs::create_dir_all(&root)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let access_key = "landfall-test".to_string();
        let secret_key = format!("secret-{}-{port}", std::process::id());
        let log = fs::File::create(dir.join("s3s-fs.log"))?;
        let child = Command::new(binary()?)
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--access-key")
            .arg(&access_key)
            .arg("--secret-key")
            .arg(&secret_key)
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start s3s-fs")?;
        let mut server = S3Server {
            port,
            root,
            access_key,
            secret_key,
            child,
        };
        let deadline = Instant::now() + START_DEADLINE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "s3s-fs ended ({status}) before it listened: {}",
                    fs::read_to_string(dir.join("s3s-fs.log")).unwrap_or_default()
                );
            }
            if Instant::now() >= deadline {
                bail!("s3s-fs did not listen on port {port} within {START_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(server)
    }

    /// Makes a bucket: s3s-fs keeps one as a directory of its root.
    pub fn bucket(&self, name: &str) -> Result<PathBuf> {
        let dir = self.root.join(name);
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// The `AWS_*` variables that point a client at this store.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }

    /// The files under a key prefix of a bucket, as sorted keys.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let start = prefix.trim_end_matches('/');
        crate::support::files_below(&self.root.join(bucket).join(start))
            .iter()
            .map(|key| format!("{start}/{}", key.display()))
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
