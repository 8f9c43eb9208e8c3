//! The clients that load the service while it is measured, three per
//! host, each on a thread of its own: one asks `GET /health` back to back
//! and times each answer, one asks `GET /slow` back to back (each request
//! in flight for two seconds), and one holds a `GET /stream` open at all
//! times, a line every 100 ms: when a stream has sent its last line, the
//! next is opened. [`under_load`] starts them, waits until every one is
//! under way, runs what is measured, tells them to stop and returns what
//! they saw. They know nothing of deploys; the figures are drawn in
//! `figures.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// How long `/slow` takes to answer, in milliseconds.
pub(super) const SLOW_MS: u64 = 2_000;

/// The interval between the lines of `/stream`, in milliseconds.
pub(super) const TICK_MS: u64 = 100;

/// How many lines a stream has: 8 s of them, shorter than `stop_timeout`
/// (10 s), which is what an instance told to stop is given to finish: a
/// manager that lets it finish never cuts a stream. Since the client holds
/// one stream open at all times, one is in flight whenever an instance is
/// told to stop, however late in the deploy that comes.
pub(super) const STREAM_LINES: u64 = 80;

/// How long a connection may take to be accepted by the kernel; past it,
/// the request counts as refused.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an answer may take once asked; past it, the request counts as
/// cut. Longer than any wait a restart imposes (the old instance's drain
/// and the new one's warm-up).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client waits before it asks again after a request that
/// failed, so that a closed port counts about a hundred refusals a second
/// per client, not as many as the loopback interface can turn away.
const AFTER_FAILURE: Duration = Duration::from_millis(10);

/// How long every client has to get under way.
const GATE_DEADLINE: Duration = Duration::from_mins(1);

/// The largest answer read: hello's are a few hundred bytes.
const MAX_ANSWER: u64 = 64 * 1024;

/// Which client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Health,
    Slow,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// A whole `200` answer, from process `pid` (`X-Hello-Pid`).
    Answered { pid: u32 },
    /// The connection was refused, or not accepted within
    /// [`CONNECT_TIMEOUT`].
    Refused,
    /// The connection was accepted, but reset or closed before a whole
    /// `200` answer came, or none came within [`ANSWER_TIMEOUT`].
    Cut,
}

/// One request a client made.
#[derive(Debug, Clone, Copy)]
pub(super) struct Request {
    /// The host's index.
    pub(super) host: usize,
    pub(super) route: Route,
    /// When it started (before the connection was opened), since the
    /// setup's epoch.
    pub(super) started: Duration,
    /// From then until the answer was read whole, or the request failed.
    pub(super) took: Duration,
    pub(super) outcome: Outcome,
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StreamEnd {
    /// Every line came.
    Whole,
    /// It was accepted, but ended, failed or stalled (no line for
    /// [`ANSWER_TIMEOUT`]) before its last line.
    Cut,
    /// It still flowed when the client was told to stop.
    Open,
    /// It was refused, as a request is.
    Refused,
}

/// One stream a client opened, or tried to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stream {
    pub(super) host: usize,
    /// The process that sent it, as its head says.
    pub(super) pid: Option<u32>,
    /// When its last line came (when it was asked for, before any), since
    /// the setup's epoch.
    pub(super) last_line: Duration,
    pub(super) end: StreamEnd,
}

/// What the clients saw while something was measured.
pub(super) struct Seen {
    /// When what was measured ran, since the setup's epoch: the clients
    /// were under way before and stopped after.
    pub(super) window: Range<Duration>,
    pub(super) requests: Vec<Request>,
    pub(super) streams: Vec<Stream>,
}

impl Seen {
    /// The requests that started while what was measured ran.
    pub(super) fn within(&self) -> impl Iterator<Item = &Request> {
        self.requests
            .iter()
            .filter(|r| self.window.contains(&r.started))
    }
}

/// Runs `measured` under load: the clients of every host in `hosts` start;
/// once every one is under way (`/health` answered, `/slow` asked, a
/// stream's first line read), `measured` runs; then they are told to stop,
/// finish the request they have, and what they saw is returned with what
/// `measured` returned. Times are since `epoch`.
pub(super) fn under_load<T>(
    hosts: &[SocketAddr],
    epoch: Instant,
    measured: impl FnOnce() -> Result<T>,
) -> Result<(T, Seen)> {
    let stop = AtomicBool::new(false);
    let (under_way, gate) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let mut askers = Vec::new();
        let mut streams = Vec::new();
        for (host, &address) in hosts.iter().enumerate() {
            for route in [Route::Health, Route::Slow] {
                let (stop, under_way) = (&stop, under_way.clone());
                askers.push(scope.spawn(move || {
                    ask_back_to_back(host, address, route, epoch, stop, &under_way)
                }));
            }
            let (stop, under_way) = (&stop, under_way.clone());
            streams.push(scope.spawn(move || hold_streams(host, address, epoch, stop, &under_way)));
        }
        let outcome = wait_at_gate(&gate, 3 * hosts.len()).and_then(|()| {
            let from = epoch.elapsed();
            let value = measured()?;
            Ok((value, from..epoch.elapsed()))
        });
        stop.store(true, Ordering::SeqCst);
        let mut requests = Vec::new();
        for asker in askers {
            requests.extend(asker.join().expect("a client does not panic"));
        }
        let streams: Vec<Stream> = streams
            .into_iter()
            .flat_map(|streams| streams.join().expect("a client does not panic"))
            .collect();
        let (value, window) = outcome?;
        Ok((
            value,
            Seen {
                window,
                requests,
                streams,
            },
        ))
    })
}

/// Waits until `count` clients said they are under way, for at most
/// [`GATE_DEADLINE`] in all.
fn wait_at_gate(gate: &mpsc::Receiver<()>, count: usize) -> Result<()> {
    let deadline = Instant::now() + GATE_DEADLINE;
    for _ in 0..count {
        match gate.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(()) => {}
            Err(_) => bail!(
                "the clients were not all under way within {} s (is the service up?)",
                GATE_DEADLINE.as_secs()
            ),
        }
    }
    Ok(())
}

/// Asks host `host` at `address` for `route`, one request after the
/// other, until `stop`; says it is under way once `/health` was answered,
/// or `/slow` asked.
fn ask_back_to_back(
    host: usize,
    address: SocketAddr,
    route: Route,
    epoch: Instant,
    stop: &AtomicBool,
    under_way: &mpsc::Sender<()>,
) -> Vec<Request> {
    let path = match route {
        Route::Health => "/health".to_string(),
        Route::Slow => format!("/slow?ms={SLOW_MS}"),
    };
    let mut said = false;
    let mut requests = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let outcome = match ask(address, &path) {
            Ok(connection) => {
                if route == Route::Slow && !said {
                    said = under_way.send(()).is_ok();
                }
                read_answer(connection)
            }
            Err(refused) => refused,
        };
        if route == Route::Health && !said && matches!(outcome, Outcome::Answered { .. }) {
            said = under_way.send(()).is_ok();
        }
        requests.push(Request {
            host,
            route,
            started: started.duration_since(epoch),
            took: started.elapsed(),
            outcome,
        });
        if !matches!(outcome, Outcome::Answered { .. }) {
            std::thread::sleep(AFTER_FAILURE);
        }
    }
    requests
}

/// Opens a connection to `address` and sends `GET path`; refused if the
/// connection cannot be opened.
fn ask(address: SocketAddr, path: &str) -> Result<TcpStream, Outcome> {
    let mut connection =
        TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).map_err(|_| Outcome::Refused)?;
    connection
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .and_then(|()| {
            write!(
                connection,
                "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
            )
        })
        .map_err(|_| Outcome::Cut)?;
    Ok(connection)
}

/// Reads the answer to a request to its end: whole and `200`, or cut.
fn read_answer(connection: TcpStream) -> Outcome {
    let mut bytes = Vec::new();
    match connection.take(MAX_ANSWER).read_to_end(&mut bytes) {
        Ok(_) => whole_answer(&bytes).map_or(Outcome::Cut, |pid| Outcome::Answered { pid }),
        Err(_) => Outcome::Cut,
    }
}

/// The pid that sent `bytes`, if they are a whole `200` answer: its head,
/// and as much body as its `Content-Length` says.
fn whole_answer(bytes: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    if !lines.next()?.starts_with("HTTP/1.1 200 ") {
        return None;
    }
    let (mut pid, mut length) = (None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("x-hello-pid") {
            pid = value.trim().parse().ok();
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<usize>().ok();
        }
    }
    (body.len() == length?).then_some(pid?)
}

/// Holds a stream of host `host` open until `stop`: opens one, reads it
/// to its last line, its end or `stop`, and opens the next. Says it is
/// under way once a first line came.
fn hold_streams(
    host: usize,
    address: SocketAddr,
    epoch: Instant,
    stop: &AtomicBool,
    under_way: &mpsc::Sender<()>,
) -> Vec<Stream> {
    let path = format!("/stream?ms={TICK_MS}&lines={STREAM_LINES}");
    let mut said = false;
    let mut streams = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let stream = read_stream(host, address, &path, epoch, stop, || {
            if !said {
                said = under_way.send(()).is_ok();
            }
        });
        streams.push(stream);
        if matches!(stream.end, StreamEnd::Cut | StreamEnd::Refused) {
            std::thread::sleep(AFTER_FAILURE);
        }
    }
    streams
}

/// Reads one stream of host `host`, calling `first` once its first line
/// came, until its last line, its end, or `stop`.
fn read_stream(
    host: usize,
    address: SocketAddr,
    path: &str,
    epoch: Instant,
    stop: &AtomicBool,
    first: impl FnOnce(),
) -> Stream {
    let mut stream = Stream {
        host,
        pid: None,
        last_line: epoch.elapsed(),
        end: StreamEnd::Cut,
    };
    let Ok(mut connection) = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) else {
        stream.end = StreamEnd::Refused;
        return stream;
    };
    let asked = connection
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .and_then(|()| write!(connection, "GET {path} HTTP/1.0\r\n\r\n"));
    if asked.is_err() {
        return stream;
    }
    let mut lines = BufReader::new(connection);
    let Some(pid) = read_head(&mut lines) else {
        return stream;
    };
    stream.pid = Some(pid);
    let mut first = Some(first);
    for tick in 1..=STREAM_LINES {
        if stop.load(Ordering::SeqCst) {
            stream.end = StreamEnd::Open;
            return stream;
        }
        let mut line = String::new();
        match lines.read_line(&mut line) {
            Ok(_) if line.trim_end() == format!("tick {tick}") => {
                stream.last_line = epoch.elapsed();
                if let Some(first) = first.take() {
                    first();
                }
            }
            // The end of the connection, a line that is not the next one,
            // or an error: cut.
            _ => return stream,
        }
    }
    stream.end = StreamEnd::Whole;
    stream
}

/// Reads the head of a stream's answer; the pid it names, if it is a
/// `200` that names one.
fn read_head(lines: &mut impl BufRead) -> Option<u32> {
    let mut status = String::new();
    lines.read_line(&mut status).ok()?;
    let ok = status.starts_with("HTTP/1.1 200 ");
    let mut pid = None;
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(value) = line.strip_prefix("X-Hello-Pid: ") {
            pid = value.trim().parse().ok();
        }
        if line == "\r\n" {
            break;
        }
    }
    pid.filter(|_| ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_whole_when_its_body_is_as_long_as_it_says() {
        let whole = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Hello-Pid: 42\r\n\r\nok\n";
        assert_eq!(whole_answer(whole.as_bytes()), Some(42));
        assert_eq!(whole_answer(&whole.as_bytes()[..whole.len() - 1]), None);
        let unhealthy = whole.replace("200 OK", "503 Service Unavailable");
        assert_eq!(whole_answer(unhealthy.as_bytes()), None);
        assert_eq!(whole_answer(b"HTTP/1.1 200 OK\r\nContent-Le"), None);
    }
}
