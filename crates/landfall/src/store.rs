//! The object store of pull mode: an S3-compatible bucket that hosts fetch
//! the objects they lack from, so that what the deploying machine sends
//! does not grow with the fleet, nor with the payload.
//!
//! Objects are keyed by content, `PREFIX/objects/<sha256>`: each is put
//! once per store, ever (a HEAD first says whether the store has it), and
//! a host checks what it fetched against the key with `sha256sum`. A
//! bundle published with `build --out s3://…` is its objects and its
//! manifest, `PREFIX/landfall-bundle.json`.
//!
//! Requests are signed with `rusty-s3` as presigned URLs (`SigV4` in the
//! query string) and sent with `ureq`, blocking, every one with deadlines;
//! the hosts get presigned GET URLs, so they need no credentials, only
//! `curl`. The endpoint and credentials come from the usual `AWS_*`
//! variables. sha256 sums of the local store's objects are computed once
//! and kept in `target/landfall/store/sha256`, keyed by blake3.
//!
//! This module knows nothing of hosts or steps: it puts, reads and signs.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};
use sha2::Digest as _;

use crate::error::{Error, Result};

/// The key of the bundle manifest under a store's prefix.
pub const BUNDLE_KEY: &str = "landfall-bundle.json";

/// How long a presigned URL stays valid. A host uses its URLs within its
/// push, which has its own, shorter deadline.
pub const PRESIGN_TIME: Duration = Duration::from_secs(6 * 3600);

/// HEAD and PUT requests in flight at once.
const REQUESTS_AT_ONCE: usize = 16;

/// Where a store is: `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    pub bucket: String,
    /// Empty, or segments each followed by `/`.
    pub prefix: String,
}

impl StoreUrl {
    /// Reads `s3://BUCKET[/PREFIX]`. The bucket is named as S3 names
    /// buckets (3 to 63 lowercase letters, digits, dots and hyphens); the
    /// prefix is plain path segments, none empty, `.` or `..`.
    pub fn parse(text: &str) -> std::result::Result<StoreUrl, String> {
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| "a store is written `s3://BUCKET/PREFIX`".to_string())?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_ok {
            return Err(
                "a bucket name is 3 to 63 lowercase letters, digits, dots and hyphens".into(),
            );
        }
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        let mut normal = String::new();
        if !prefix.is_empty() {
            for segment in prefix.split('/') {
                let ok = !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !ok {
                    return Err(
                        "a prefix is segments of letters, digits, `-`, `_` and `.`, \
                         separated by `/`"
                            .into(),
                    );
                }
                normal.push_str(segment);
                normal.push('/');
            }
        }
        Ok(StoreUrl {
            bucket: bucket.to_string(),
            prefix: normal,
        })
    }

    /// The key of the object with this sha256 (hex).
    pub fn object_key(&self, sha256: &str) -> String {
        format!("{}objects/{sha256}", self.prefix)
    }

    /// The key of a bundle's manifest.
    pub fn bundle_key(&self) -> String {
        format!("{}{BUNDLE_KEY}", self.prefix)
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// A store to talk to: its place, endpoint and credentials.
#[derive(Clone)]
pub struct Remote {
    pub url: StoreUrl,
    bucket: Bucket,
    credentials: Credentials,
    agent: ureq::Agent,
}

impl fmt::Debug for Remote {
    // The secret key is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .field("endpoint", &self.bucket.base_url().as_str())
            .field("region", &self.bucket.region())
            .finish_non_exhaustive()
    }
}

/// One object a release needs in the store: its content's sha256, its
/// size, and a local file holding it.
#[derive(Debug, Clone)]
pub struct Object {
    pub sha256: String,
    pub size: u64,
    pub path: PathBuf,
}

/// What making sure of a set of objects did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uploaded {
    /// The distinct objects the releases need.
    pub objects: usize,
    /// Those the store lacked, now put.
    pub uploaded: usize,
    pub bytes: u64,
}

impl Remote {
    /// The store at `url`, with the endpoint, region and credentials of
    /// the environment's `AWS_*` variables: `AWS_ENDPOINT_URL_S3` or
    /// `AWS_ENDPOINT_URL` (addressed path-style; AWS's own endpoint for
    /// the region otherwise), `AWS_REGION` or `AWS_DEFAULT_REGION`
    /// (`us-east-1`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`.
    pub fn from_env(url: &StoreUrl) -> Result<Remote> {
        Remote::with_vars(url, |name| {
            std::env::var(name).ok().filter(|value| !value.is_empty())
        })
        .map_err(|message| Error::Usage(format!("the store `{url}`: {message}")))
    }

    fn with_vars(
        url: &StoreUrl,
        var: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<Remote, String> {
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let (endpoint, style) = match var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL"))
        {
            Some(endpoint) => (endpoint, UrlStyle::Path),
            None => (
                format!("https://s3.{region}.amazonaws.com"),
                UrlStyle::VirtualHost,
            ),
        };
        let parsed = endpoint
            .parse()
            .map_err(|err| format!("the endpoint `{endpoint}` is no URL: {err}"))?;
        let bucket = Bucket::new(parsed, style, url.bucket.clone(), region)
            .map_err(|err| format!("the endpoint `{endpoint}`: {err}"))?;
        let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(
                "no credentials: set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` \
                 (and `AWS_ENDPOINT_URL` for a store other than AWS's)"
                    .into(),
            );
        };
        let credentials = match var("AWS_SESSION_TOKEN") {
            Some(token) => Credentials::new_with_token(key, secret, token),
            None => Credentials::new(key, secret),
        };
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            // A transfer that stalls this long is given up, as rsync's is.
            .timeout_per_read(Some(Duration::from_secs(120)))
            .timeout_per_write(Some(Duration::from_secs(120)))
            .timeout_global(Some(Duration::from_secs(3600)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(Remote {
            url: url.clone(),
            bucket,
            credentials,
            agent,
        })
    }

    /// A URL that lets whoever holds it GET `key` until [`PRESIGN_TIME`]
    /// has passed.
    pub fn presign_get(&self, key: &str) -> String {
        self.bucket
            .get_object(Some(&self.credentials), key)
            .sign(PRESIGN_TIME)
            .to_string()
    }

    fn failed(&self, what: &str, key: &str, detail: impl fmt::Display) -> Error {
        Error::Failed(format!(
            "cannot {what} `{}` in the store `s3://{}/`: {detail}",
            key, self.url.bucket
        ))
    }

    /// Whether the store holds `key`.
    pub fn has(&self, key: &str) -> Result<bool> {
        let url = self
            .bucket
            .head_object(Some(&self.credentials), key)
            .sign(Duration::from_secs(600));
        let response = self
            .agent
            .head(url.as_str())
            .config()
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .call()
            .map_err(|err| self.failed("look up", key, err))?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            status => Err(self.failed("look up", key, format!("HTTP status {status}"))),
        }
    }

    /// Puts a local file under `key`.
    pub fn put_file(&self, key: &str, path: &Path, size: u64) -> Result<()> {
        let file = fs::File::open(path).map_err(Error::io("cannot read", path))?;
        self.put(key, size, file)
    }

    /// Puts bytes under `key`.
    pub fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.put(key, bytes.len() as u64, bytes)
    }

    /// Puts `size` bytes read from `body` under `key`, within the time
    /// they may take to send.
    fn put(&self, key: &str, size: u64, body: impl ureq::AsSendBody) -> Result<()> {
        let url = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(Duration::from_secs(600));
        let response = self
            .agent
            .put(url.as_str())
            .header("content-length", size.to_string())
            .config()
            .timeout_global(Some(transfer_time(size)))
            .build()
            .send(body)
            .map_err(|err| self.failed("put", key, err))?;
        check_status(self, "put", key, response)
    }

    /// The bytes under `key`, or `None` if the store has none.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(Duration::from_secs(600));
        let mut response = self
            .agent
            .get(url.as_str())
            .call()
            .map_err(|err| self.failed("get", key, err))?;
        match response.status().as_u16() {
            200 => response
                .body_mut()
                .with_config()
                .limit(u64::MAX)
                .read_to_vec()
                .map(Some)
                .map_err(|err| self.failed("get", key, err)),
            404 => Ok(None),
            status => Err(self.failed("get", key, format!("HTTP status {status}"))),
        }
    }

    /// Makes sure the store holds every object: a HEAD for each (several
    /// at once), and a PUT for each it lacks. Objects are distinct by
    /// sha256.
    pub fn upload(&self, objects: &[Object]) -> Result<Uploaded> {
        let mut distinct: BTreeMap<&str, &Object> = BTreeMap::new();
        for object in objects {
            distinct.entry(object.sha256.as_str()).or_insert(object);
        }
        let distinct: Vec<&Object> = distinct.into_values().collect();
        let next = AtomicUsize::new(0);
        let results: Vec<Result<Option<u64>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..REQUESTS_AT_ONCE.min(distinct.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(object) = distinct.get(i) else {
                                return done;
                            };
                            let key = self.url.object_key(&object.sha256);
                            let result = self.has(&key).and_then(|has| {
                                if has {
                                    return Ok(None);
                                }
                                self.put_file(&key, &object.path, object.size)?;
                                Ok(Some(object.size))
                            });
                            done.push((i, result));
                        }
                    })
                })
                .collect();
            let mut all: Vec<(usize, Result<Option<u64>>)> = workers
                .into_iter()
                .flat_map(|w| w.join().expect("an upload thread panicked"))
                .collect();
            all.sort_by_key(|(i, _)| *i);
            all.into_iter().map(|(_, r)| r).collect()
        });
        let mut uploaded = Uploaded {
            objects: distinct.len(),
            ..Uploaded::default()
        };
        for result in results {
            if let Some(bytes) = result? {
                uploaded.uploaded += 1;
                uploaded.bytes += bytes;
            }
        }
        Ok(uploaded)
    }
}

fn check_status(
    remote: &Remote,
    what: &str,
    key: &str,
    mut response: ureq::http::Response<ureq::Body>,
) -> Result<()> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(4096)
        .read_to_string()
        .unwrap_or_default();
    Err(remote.failed(what, key, format!("HTTP status {status} {}", body.trim())))
}

/// How long a transfer of `size` bytes may take: a minute, and a second
/// per megabyte.
pub fn transfer_time(size: u64) -> Duration {
    Duration::from_secs(60 + size / 1_000_000)
}

/// The sha256 sums of the local store's objects, keyed by their blake3:
/// an object's content never changes, so neither does its sum. Kept in
/// `target/landfall/store/sha256`, one `BLAKE3 SHA256` line each; lines
/// are only ever appended, and one that cannot be read is ignored.
#[derive(Debug)]
pub struct Sha256Index {
    path: PathBuf,
    sums: BTreeMap<String, String>,
    new: Vec<(String, String)>,
}

impl Sha256Index {
    pub fn open(store: &crate::assemble::Store) -> Sha256Index {
        let path = store.root.join("store").join("sha256");
        let text = fs::read_to_string(&path).unwrap_or_default();
        let sums = text
            .lines()
            .filter_map(|line| {
                let (blake3, sha256) = line.split_once(' ')?;
                let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
                (hex(blake3) && hex(sha256)).then(|| (blake3.to_string(), sha256.to_string()))
            })
            .collect();
        Sha256Index {
            path,
            sums,
            new: Vec::new(),
        }
    }

    /// The sha256 of the file at `path`, whose content has this blake3:
    /// remembered, or read (and checked against the blake3 as it is read).
    pub fn sum(&mut self, blake3: &blake3::Hash, path: &Path) -> Result<String> {
        let key = blake3.to_hex().to_string();
        if let Some(sum) = self.sums.get(&key) {
            return Ok(sum.clone());
        }
        let mut file = fs::File::open(path).map_err(Error::io("cannot read", path))?;
        let mut sha = sha2::Sha256::new();
        let mut check = blake3::Hasher::new();
        let mut buffer = vec![0; 1 << 16];
        loop {
            let n = file
                .read(&mut buffer)
                .map_err(Error::io("cannot read", path))?;
            if n == 0 {
                break;
            }
            sha.update(&buffer[..n]);
            check.update(&buffer[..n]);
        }
        if check.finalize() != *blake3 {
            return Err(Error::Failed(format!(
                "`{}` is not what the store recorded; remove `target/landfall/store` and run again",
                path.display()
            )));
        }
        let sum = hex(&sha.finalize());
        self.sums.insert(key.clone(), sum.clone());
        self.new.push((key, sum.clone()));
        Ok(sum)
    }

    /// Appends the sums computed since it was opened.
    pub fn save(&mut self) -> Result<()> {
        if self.new.is_empty() {
            return Ok(());
        }
        let text = self
            .new
            .iter()
            .fold(String::new(), |mut text, (blake3, sha256)| {
                use std::fmt::Write as _;
                writeln!(text, "{blake3} {sha256}").unwrap();
                text
            });
        let mut file = fs::File::options()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(Error::io("cannot write", &self.path))?;
        file.write_all(text.as_bytes())
            .map_err(Error::io("cannot write", &self.path))?;
        self.new.clear();
        Ok(())
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        write!(s, "{b:02x}").unwrap();
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_a_bucket_and_a_prefix() {
        let url = StoreUrl::parse("s3://releases/shop/prod/").unwrap();
        assert_eq!(url.bucket, "releases");
        assert_eq!(url.prefix, "shop/prod/");
        assert_eq!(url.to_string(), "s3://releases/shop/prod/");
        assert_eq!(url.object_key("ab12"), "shop/prod/objects/ab12");
        assert_eq!(url.bundle_key(), "shop/prod/landfall-bundle.json");
        let bare = StoreUrl::parse("s3://my-bucket.example").unwrap();
        assert_eq!(bare.prefix, "");
        assert_eq!(bare.object_key("ab12"), "objects/ab12");
        for bad in [
            "https://bucket/x",
            "s3://",
            "s3://ab",
            "s3://Upper",
            "s3://-bucket",
            "s3://bucket//x",
            "s3://bucket/../x",
            "s3://bucket/a b",
            "s3://bucket/x?y",
        ] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad} was taken");
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn a_store_needs_credentials() {
        let url = StoreUrl::parse("s3://bucket/p").unwrap();
        let err = Remote::with_vars(&url, vars(&[("AWS_ACCESS_KEY_ID", "k")])).unwrap_err();
        assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    }

    #[test]
    fn presigned_urls_are_path_style_at_an_endpoint_and_expire() {
        let url = StoreUrl::parse("s3://bucket/p").unwrap();
        let remote = Remote::with_vars(
            &url,
            vars(&[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
                ("AWS_ACCESS_KEY_ID", "key"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
                ("AWS_REGION", "eu-west-1"),
            ]),
        )
        .unwrap();
        let signed = remote.presign_get(&url.object_key("ab12"));
        assert!(
            signed.starts_with("http://127.0.0.1:9000/bucket/p/objects/ab12?"),
            "{signed}"
        );
        assert!(signed.contains("X-Amz-Signature="), "{signed}");
        assert!(signed.contains("X-Amz-Expires=21600"), "{signed}");
        assert!(signed.contains("eu-west-1"), "{signed}");
        assert!(!signed.contains("secret"), "{signed}");
        assert!(!format!("{remote:?}").contains("secret"));
        // A URL travels to the host as one field of a tab-separated line,
        // and reaches curl in a quoted string of its configuration.
        assert!(!signed.contains(['\t', '\n', ' ', '"', '\\']));

        let aws = Remote::with_vars(
            &url,
            vars(&[
                ("AWS_ACCESS_KEY_ID", "key"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
            ]),
        )
        .unwrap();
        assert!(
            aws.presign_get("k")
                .starts_with("https://bucket.s3.us-east-1.amazonaws.com/k?")
        );
    }

    #[test]
    fn sha256_sums_are_remembered_by_blake3() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::assemble::Store {
            root: dir.path().to_path_buf(),
        };
        fs::create_dir_all(dir.path().join("store")).unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"hello\n").unwrap();
        let blake3 = blake3::hash(b"hello\n");
        let mut index = Sha256Index::open(&store);
        let sum = index.sum(&blake3, &file).unwrap();
        assert_eq!(
            sum,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        index.save().unwrap();
        // Remembered: the file is not read again.
        fs::remove_file(&file).unwrap();
        let mut again = Sha256Index::open(&store);
        assert_eq!(again.sum(&blake3, &file).unwrap(), sum);
        // A file that is not what its blake3 says is refused.
        fs::write(&file, b"other\n").unwrap();
        assert!(
            Sha256Index::open(&store)
                .sum(&blake3::hash(b"x"), &file)
                .is_err()
        );
    }
}
