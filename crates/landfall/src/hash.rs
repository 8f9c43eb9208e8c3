//! Content hashing with blake3, and a cache so that unchanged files are not
//! read again.
//!
//! A cache entry is trusted only while the file's size, mtime, ctime, inode
//! and device are what they were, and only if the file was already older
//! than [`RACY_WINDOW`] when it was hashed: a file written in the same clock
//! tick as its hashing could change again without its mtime moving (git's
//! "racy timestamp" problem), so such entries are re-hashed next time.
//!
//! A warm run costs one `stat` per file plus reading the cache, so the cache
//! is a compact binary file (records of fixed-size fields after the path)
//! rather than text: an unreadable or foreign one is simply an empty cache.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

const RACY_WINDOW: Duration = Duration::from_secs(2);
/// Files at least this big are memory-mapped and hashed on several threads.
const MMAP_THRESHOLD: u64 = 1 << 20;
/// The cache file's first bytes: its format and version.
const MAGIC: &[u8; 16] = b"landfall-hash\0v2";
/// Below this many files, one thread stats them all.
const PARALLEL_STAT_MIN: usize = 512;

/// What hashing a file tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileFacts {
    pub size: u64,
    pub hash: blake3::Hash,
    pub executable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
    mode: u32,
}

impl Stat {
    fn of(meta: &fs::Metadata) -> Stat {
        Stat {
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
            mode: meta.mode(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    stat: Stat,
    hash: blake3::Hash,
    hashed_at_ns: i128,
}

/// The hash cache, loaded from and saved to one file.
#[derive(Debug)]
pub(crate) struct HashCache {
    path: PathBuf,
    entries: HashMap<String, Entry>,
    changed: bool,
    /// How many files were read (cache misses) since loading.
    pub(crate) files_read: usize,
    pub bytes_read: u64,
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().try_into().unwrap_or(i128::MAX))
}

impl HashCache {
    /// Loads the cache; a missing or unreadable cache is an empty one.
    pub(crate) fn load(path: &Path) -> HashCache {
        let entries = fs::read(path)
            .ok()
            .and_then(|bytes| decode(&bytes))
            .unwrap_or_default();
        HashCache {
            path: path.to_path_buf(),
            entries,
            changed: false,
            files_read: 0,
            bytes_read: 0,
        }
    }

    /// A cache that is never saved.
    #[cfg(test)]
    pub(crate) fn in_memory() -> HashCache {
        HashCache::load(Path::new(""))
    }

    /// Hashes files, in parallel for those the cache cannot answer.
    pub(crate) fn hash_files(&mut self, paths: &[&Path]) -> Result<Vec<FileFacts>> {
        let stats = stat_all(paths)?;
        let mut results: Vec<Option<FileFacts>> = vec![None; paths.len()];
        let mut misses: Vec<(usize, Stat)> = Vec::new();
        let now = now_ns();
        for (i, (path, stat)) in paths.iter().zip(stats).enumerate() {
            let hit = path
                .to_str()
                .and_then(|key| self.entries.get(key))
                .filter(|entry| {
                    entry.stat == stat
                        && stat.mtime_ns + RACY_WINDOW.as_nanos().cast_signed()
                            <= entry.hashed_at_ns
                });
            match hit {
                Some(entry) => {
                    results[i] = Some(FileFacts {
                        size: stat.size,
                        hash: entry.hash,
                        executable: stat.mode & 0o111 != 0,
                    });
                }
                None => misses.push((i, stat)),
            }
        }

        let hashed = hash_in_parallel(paths, &misses)?;
        for ((i, stat), hash) in misses.into_iter().zip(hashed) {
            self.files_read += 1;
            self.bytes_read += stat.size;
            results[i] = Some(FileFacts {
                size: stat.size,
                hash,
                executable: stat.mode & 0o111 != 0,
            });
            if let Some(key) = paths[i].to_str() {
                self.entries.insert(
                    key.to_string(),
                    Entry {
                        stat,
                        hash,
                        hashed_at_ns: now,
                    },
                );
                self.changed = true;
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every file was hashed"))
            .collect())
    }

    /// Writes the cache back if it changed, atomically.
    pub(crate) fn save(&self) -> Result<()> {
        if !self.changed || self.path.as_os_str().is_empty() {
            return Ok(());
        }
        crate::files::write_atomically(&self.path, &encode(&self.entries))
    }
}

/// `stat`s every path, on several threads when there are many.
fn stat_all(paths: &[&Path]) -> Result<Vec<Stat>> {
    let stat = |path: &&Path| {
        fs::metadata(path)
            .map(|meta| Stat::of(&meta))
            .map_err(Error::io("cannot read", path))
    };
    if paths.len() < PARALLEL_STAT_MIN {
        return paths.iter().map(stat).collect();
    }
    map_on_cores(paths, stat)
}

/// `f` of every item, in order, the items spread over the cores in
/// contiguous parts; the first error wins.
fn map_on_cores<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(items.len());
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Result<Vec<_>>>()))
            .collect();
        let mut all = Vec::with_capacity(items.len());
        for handle in handles {
            all.extend(handle.join().expect("worker threads do not panic")?);
        }
        Ok(all)
    })
}

/// The cache file: [`MAGIC`], then per entry the path's length (u32) and
/// bytes, size, mtime, ctime, inode, device, mode, hash and hashing time,
/// little-endian.
fn encode(entries: &HashMap<String, Entry>) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + entries.len() * 160);
    out.extend_from_slice(MAGIC);
    for (path, entry) in entries {
        let len = u32::try_from(path.len()).expect("paths are shorter than 4 GiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        let stat = &entry.stat;
        out.extend_from_slice(&stat.size.to_le_bytes());
        out.extend_from_slice(&stat.mtime_ns.to_le_bytes());
        out.extend_from_slice(&stat.ctime_ns.to_le_bytes());
        out.extend_from_slice(&stat.ino.to_le_bytes());
        out.extend_from_slice(&stat.dev.to_le_bytes());
        out.extend_from_slice(&stat.mode.to_le_bytes());
        out.extend_from_slice(entry.hash.as_bytes());
        out.extend_from_slice(&entry.hashed_at_ns.to_le_bytes());
    }
    out
}

/// Reads what [`encode`] wrote; `None` for anything else.
fn decode(bytes: &[u8]) -> Option<HashMap<String, Entry>> {
    fn take<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
        let (head, tail) = rest.split_first_chunk::<N>()?;
        *rest = tail;
        Some(*head)
    }
    let mut rest = bytes.strip_prefix(MAGIC.as_slice())?;
    // An entry takes 112 bytes besides its path: room for every one, made
    // once.
    let mut entries = HashMap::with_capacity(rest.len() / 112);
    while !rest.is_empty() {
        let len = usize::try_from(u32::from_le_bytes(take(&mut rest)?)).ok()?;
        let (path, tail) = rest.split_at_checked(len)?;
        rest = tail;
        let path = std::str::from_utf8(path).ok()?.to_string();
        let stat = Stat {
            size: u64::from_le_bytes(take(&mut rest)?),
            mtime_ns: i128::from_le_bytes(take(&mut rest)?),
            ctime_ns: i128::from_le_bytes(take(&mut rest)?),
            ino: u64::from_le_bytes(take(&mut rest)?),
            dev: u64::from_le_bytes(take(&mut rest)?),
            mode: u32::from_le_bytes(take(&mut rest)?),
        };
        let hash = blake3::Hash::from_bytes(take(&mut rest)?);
        let hashed_at_ns = i128::from_le_bytes(take(&mut rest)?);
        entries.insert(
            path,
            Entry {
                stat,
                hash,
                hashed_at_ns,
            },
        );
    }
    Some(entries)
}

/// Hashes the files at the given indices, spreading them over the cores.
fn hash_in_parallel(paths: &[&Path], misses: &[(usize, Stat)]) -> Result<Vec<blake3::Hash>> {
    map_on_cores(misses, |(i, stat)| {
        hash_file(paths[*i], stat.size).map_err(Error::io("cannot hash", paths[*i]))
    })
}

/// Hashes one file: big files are memory-mapped and hashed on all cores.
pub(crate) fn hash_file(path: &Path, size: u64) -> io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    if size >= MMAP_THRESHOLD {
        hasher.update_mmap_rayon(path)?;
    } else {
        hasher.update_reader(fs::File::open(path)?)?;
    }
    Ok(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_answers_without_reading_and_notices_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        fs::write(&file, b"one").unwrap();
        // Age the file past the racy window so that its entry is trusted.
        let old = SystemTime::now() - Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let cache_path = dir.path().join("cache.json");

        let mut cache = HashCache::load(&cache_path);
        let first = cache.hash_files(&[&file]).unwrap();
        assert_eq!(first[0].hash, blake3::hash(b"one"));
        assert_eq!(cache.files_read, 1);
        cache.save().unwrap();

        let mut cache = HashCache::load(&cache_path);
        assert_eq!(cache.hash_files(&[&file]).unwrap(), first);
        assert_eq!(cache.files_read, 0, "an unchanged file is not read again");

        fs::write(&file, b"two").unwrap();
        let second = cache.hash_files(&[&file]).unwrap();
        assert_eq!(second[0].hash, blake3::hash(b"two"));
        assert_eq!(cache.files_read, 1);
    }

    #[test]
    fn a_cache_file_of_another_format_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache");
        fs::write(&path, b"{\"version\":1,\"entries\":{}}").unwrap();
        assert!(HashCache::load(&path).entries.is_empty());
        let mut truncated = MAGIC.to_vec();
        truncated.extend_from_slice(&9u32.to_le_bytes());
        truncated.extend_from_slice(b"abc");
        fs::write(&path, truncated).unwrap();
        assert!(HashCache::load(&path).entries.is_empty());
    }

    #[test]
    fn racy_entries_are_rehashed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        fs::write(&file, b"fresh").unwrap();
        let mut cache = HashCache::in_memory();
        cache.hash_files(&[&file]).unwrap();
        cache.hash_files(&[&file]).unwrap();
        assert_eq!(
            cache.files_read, 2,
            "a file modified just before hashing is not trusted"
        );
    }

    #[test]
    fn big_files_hash_like_small_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&file, &bytes).unwrap();
        assert_eq!(
            hash_file(&file, bytes.len() as u64).unwrap(),
            blake3::hash(&bytes)
        );
    }
}
