//! Output of processes read in bounded pieces: what a host prints is
//! untrusted, and may be one line of gigabytes or never end.
//!
//! [`Lines`] splits a stream into lines as it comes, cutting a line longer
//! than [`LINE_LIMIT`] (it says so at its end) and discarding the rest of
//! that line as it streams, never holding it. [`Tail`] keeps the last bytes
//! of a stream (what an error shows of stderr), [`Head`] its first ones (a
//! script's reports). Nothing here reads more than [`CHUNK`] bytes at once,
//! and nothing keeps more than its limit.

use std::io;

/// The longest line shown or handed on as it is; the rest of a longer
/// line is discarded.
pub(crate) const LINE_LIMIT: usize = 64 * 1024;

/// How much is read from a stream at once.
pub(crate) const CHUNK: usize = 8 * 1024;

/// The words that end a line cut at `limit` bytes.
pub(crate) fn cut_note(limit: usize) -> String {
    format!(" … [line cut at {limit} bytes]")
}

/// Splits bytes fed in pieces into lines of at most `limit` bytes (with
/// their newline): a longer line is handed on at once, cut and noted, and
/// the rest of it, up to its newline, is dropped as it comes.
#[derive(Debug)]
pub(crate) struct Lines {
    line: Vec<u8>,
    limit: usize,
    /// The line in progress was cut: its bytes are dropped up to its end.
    dropping: bool,
}

impl Lines {
    pub(crate) fn new(limit: usize) -> Lines {
        Lines {
            line: Vec::new(),
            limit,
            dropping: false,
        }
    }

    /// Takes `bytes` and hands each line they complete to `line`, with its
    /// newline; a cut line ends with its note and a newline.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], line: &mut dyn FnMut(&[u8])) {
        while !bytes.is_empty() {
            let end = bytes.iter().position(|&b| b == b'\n');
            let (piece, rest, ended) = match end {
                Some(at) => (&bytes[..=at], &bytes[at + 1..], true),
                None => (bytes, &[][..], false),
            };
            bytes = rest;
            if self.dropping {
                self.dropping = !ended;
                continue;
            }
            let room = self.limit - self.line.len();
            // A newline that ends the line at the limit does not cut it.
            let content = piece.len() - usize::from(ended);
            if content > room {
                self.line.extend_from_slice(&piece[..room]);
                self.line.extend_from_slice(cut_note(self.limit).as_bytes());
                self.line.push(b'\n');
                line(&self.line);
                self.line.clear();
                self.dropping = !ended;
                continue;
            }
            self.line.extend_from_slice(piece);
            if ended {
                line(&self.line);
                self.line.clear();
            }
        }
    }

    /// Hands on the last line, which had no newline, if there is one.
    pub(crate) fn finish(&mut self, line: &mut dyn FnMut(&[u8])) {
        if !self.line.is_empty() {
            line(&self.line);
            self.line.clear();
        }
        self.dropping = false;
    }
}

/// Reads `reader` to its end in chunks of [`CHUNK`] bytes, handing each
/// line to `line` as [`Lines`] cuts them.
pub(crate) fn read_lines(
    reader: &mut dyn io::Read,
    limit: usize,
    line: &mut dyn FnMut(&[u8]),
) -> io::Result<()> {
    let mut lines = Lines::new(limit);
    let mut buf = [0u8; CHUNK];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => lines.feed(&buf[..n], line),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                lines.finish(line);
                return Err(err);
            }
        }
    }
    lines.finish(line);
    Ok(())
}

/// The last `limit` bytes of a stream, in lines cut at [`LINE_LIMIT`]: what
/// an error shows of a process's stderr.
#[derive(Debug)]
pub(crate) struct Tail {
    kept: Vec<u8>,
    limit: usize,
    lines: Lines,
}

impl Tail {
    pub(crate) fn new(limit: usize) -> Tail {
        Tail {
            kept: Vec::new(),
            limit,
            lines: Lines::new(LINE_LIMIT.min(limit)),
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let Tail {
            kept, limit, lines, ..
        } = self;
        lines.feed(bytes, &mut |line| keep_last(kept, *limit, line));
    }

    /// What was kept, the last line included even if it had no newline.
    pub(crate) fn into_bytes(mut self) -> Vec<u8> {
        let Tail {
            kept, limit, lines, ..
        } = &mut self;
        lines.finish(&mut |line| keep_last(kept, *limit, line));
        last(&self.kept, self.limit).to_vec()
    }
}

/// Appends `line` to `kept` and drops what is older than its last `limit`
/// bytes, by whole lines where it can. The buffer is shifted only once it
/// is twice its limit, so each byte is moved at most once or twice.
fn keep_last(kept: &mut Vec<u8>, limit: usize, line: &[u8]) {
    kept.extend_from_slice(line);
    if kept.len() > 2 * limit {
        let mut from = kept.len() - limit;
        if let Some(at) = kept[from..].iter().position(|&b| b == b'\n') {
            from += at + 1;
        }
        kept.drain(..from);
    }
}

/// The last `limit` bytes of `bytes`, or a little less, to start at a
/// line.
fn last(bytes: &[u8], limit: usize) -> &[u8] {
    if bytes.len() <= limit {
        return bytes;
    }
    let from = bytes.len() - limit;
    let from = bytes[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(from, |at| from + at + 1);
    &bytes[from..]
}

/// The first `limit` bytes of a stream and how many more there were.
#[derive(Debug)]
pub(crate) struct Head {
    kept: Vec<u8>,
    limit: usize,
    dropped: u64,
}

impl Head {
    pub(crate) fn new(limit: usize) -> Head {
        Head {
            kept: Vec::new(),
            limit,
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let room = self.limit.saturating_sub(self.kept.len());
        let take = room.min(bytes.len());
        self.kept.extend_from_slice(&bytes[..take]);
        self.dropped += (bytes.len() - take) as u64;
    }

    /// How many bytes past the limit were dropped.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(pieces: &[&[u8]], limit: usize) -> Vec<String> {
        let mut lines = Lines::new(limit);
        let mut out = Vec::new();
        for piece in pieces {
            lines.feed(piece, &mut |l| {
                out.push(String::from_utf8_lossy(l).into_owned());
            });
        }
        lines.finish(&mut |l| out.push(String::from_utf8_lossy(l).into_owned()));
        out
    }

    #[test]
    fn lines_split_across_pieces_come_whole() {
        assert_eq!(
            lines_of(&[b"ab", b"c\nde", b"f\n\ng"], 10),
            ["abc\n", "def\n", "\n", "g"]
        );
        // A line exactly at the limit is not cut.
        assert_eq!(lines_of(&[b"abcd\nx\n"], 4), ["abcd\n", "x\n"]);
    }

    #[test]
    fn a_line_longer_than_the_limit_is_cut_and_the_rest_dropped() {
        let note = cut_note(4);
        assert_eq!(
            lines_of(&[b"abcdefgh", b"ijkl", b"mn\nnext\n"], 4),
            [format!("abcd{note}\n"), "next\n".to_string()]
        );
        // Cut before its end came, and it never came.
        assert_eq!(lines_of(&[b"abcdefgh"], 4), [format!("abcd{note}\n")]);
    }

    /// A host printing one line of hundreds of megabytes took memory in
    /// proportion: the reader now holds no more than its limit.
    #[test]
    fn an_endless_line_is_read_in_bounded_memory() {
        struct Endless(usize);
        impl io::Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Ok(0);
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(b'x');
                self.0 -= n;
                Ok(n)
            }
        }
        let mut count = 0;
        let mut longest = 0;
        read_lines(&mut Endless(50 << 20), LINE_LIMIT, &mut |line| {
            count += 1;
            longest = longest.max(line.len());
        })
        .unwrap();
        assert_eq!(count, 1);
        assert_eq!(longest, LINE_LIMIT + cut_note(LINE_LIMIT).len() + 1);
    }

    #[test]
    fn a_tail_keeps_the_last_lines_only() {
        let mut tail = Tail::new(10);
        for i in 0..1000 {
            tail.push(format!("line {i}\n").as_bytes());
            assert!(tail.kept.len() <= 2 * 10 + LINE_LIMIT.min(10) + 30);
        }
        assert_eq!(tail.into_bytes(), b"line 999\n");
    }

    #[test]
    fn a_head_keeps_the_first_bytes_and_counts_the_rest() {
        let mut head = Head::new(5);
        head.push(b"abc");
        head.push(b"defg");
        assert_eq!(head.dropped(), 2);
        assert_eq!(head.into_bytes(), b"abcde");
    }
}
