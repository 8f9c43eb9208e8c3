//! A minimal HTTP/1.1 server for the service's routes, and (in `probe`) a
//! minimal client for `hello probe`.
//!
//! Both sides close the connection after one exchange, which keeps framing
//! simple: the server always sends `Connection: close`, with a
//! `Content-Length` (or, for a stream, chunks), and the client asks for
//! `Connection: close`. It also means that no idle keep-alive connection can
//! hold up a server that stops: it only has answers in flight to finish.
//!
//! The server answers each connection on a thread of its own. Told to stop,
//! it stops accepting at once, closes its own descriptor of the listening
//! socket, and waits, for a grace at most, for the answers in flight,
//! streams included; this is what lets a new instance of the service take
//! over from an old one without a failed request (see `listen`). Every
//! response names the process that sent it in `X-Hello-Pid`, so that a test
//! running two instances side by side can tell which one answered.
//!
//! Besides the greeting, the health check, `/admin` and static files, two
//! routes give benchmarks of restarts something in flight: `/slow?ms=N`
//! answers after N milliseconds, and `/stream?ms=N&lines=K` sends K lines,
//! one every N milliseconds. `/metrics` gives the counts of the answers, by
//! status and time, for Prometheus to scrape (see `metrics`), and with
//! `errors` in the configuration, that share of the requests to `/` is
//! answered `500 Internal Server Error`: a release that fails some of its
//! requests while its health check passes, for the checks judged from
//! outside.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::{Config, Share};
use crate::listen::{Stop, Woken};

mod metrics;
mod probe;

use metrics::Metrics;

pub(crate) use probe::{parse_url, probe};

/// How long the server waits on a client that has stopped reading or
/// writing, so that a stalled client cannot hold its thread forever.
const SERVER_IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the accept loop pauses after an error such as running out of
/// file descriptors, which persists for a while: pausing keeps the loop from
/// spinning on it.
const ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The largest request head the server reads; the routes need only the
/// request line, so anything near this size is not a legitimate request.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// The longest wait `/slow` accepts, in milliseconds.
const MAX_SLOW_MS: u64 = 60_000;

/// The longest interval between the lines of `/stream`, in milliseconds.
const MAX_TICK_MS: u64 = 10_000;

/// The most lines `/stream` sends.
const MAX_TICKS: u64 = 100_000;

/// What the server answers with, built once and shared by every connection,
/// and what it counts of its answers.
#[derive(Debug)]
pub(crate) struct Site {
    pub(crate) greeting: String,
    pub(crate) name: String,
    pub(crate) healthy: bool,
    /// The directory `GET /static/<file>` reads from. The service uses
    /// `static` in its working directory; tests use a temporary directory
    /// instead, because changing the working directory would affect every
    /// test running in the process.
    pub(crate) static_root: PathBuf,
    pub(crate) admin_token: Option<String>,
    /// What `X-Hello-Pid` says: the service's process id; tests that run two
    /// servers in one process give each a number of its own.
    pub(crate) pid: u32,
    /// The share of the requests to `/` answered with an error.
    pub(crate) errors: Share,
    /// The requests to `/` so far, which number each for `errors`.
    pub(crate) greeted: AtomicU64,
    pub(crate) metrics: Metrics,
}

impl Site {
    pub(crate) fn new(config: Config, static_root: PathBuf) -> Site {
        Site {
            greeting: config.greeting,
            name: config.name,
            healthy: config.healthy,
            static_root,
            admin_token: config.admin_token,
            pid: std::process::id(),
            errors: config.errors,
            greeted: AtomicU64::new(0),
            metrics: Metrics::default(),
        }
    }

    /// The answer to the next request to `/`: the greeting, or, for the
    /// share `errors` of them, an error.
    fn greet(&self) -> Response {
        let n = self.greeted.fetch_add(1, Ordering::Relaxed) + 1;
        if self.errors.picks(n) {
            Response::text(500, "internal server error\n")
        } else {
            Response::text(200, &format!("{} from {}\n", self.greeting, self.name))
        }
    }
}

/// Accepts connections on `listener`, answering each on its own thread,
/// until `stop` is requested; then closes the listener and waits, at most
/// `grace`, for the answers in flight.
///
/// Closing the listener closes only this process's descriptor of it, never
/// shuts the socket down. A socket handed over by a service manager stays
/// open in the manager and in any other instance it started, with the
/// connections queued on it. A socket this process bound itself (`own`,
/// with `SO_REUSEPORT`) is its own to empty: new connections go to the
/// instance that listened last (see `listen::steer_to_newest`), so once
/// those already queued are accepted, none is left to be reset when it
/// closes.
pub(crate) fn serve(
    listener: TcpListener,
    own: bool,
    site: &Arc<Site>,
    stop: &Stop,
    grace: Duration,
) -> io::Result<()> {
    // A connection that `poll` announces may be taken first by another
    // process on the same socket; a blocking `accept` would then wait for
    // the next one, deaf to a stop.
    listener.set_nonblocking(true)?;
    let in_flight = Arc::new(InFlight::default());
    loop {
        match stop.wait(Some(&listener), None) {
            Ok(Woken::Stop) => break,
            Ok(Woken::Connection | Woken::TimedOut) => {}
            Err(err) => {
                eprintln!("hello: cannot wait for a connection: {err}");
                stop.sleep(ERROR_PAUSE);
                continue;
            }
        }
        match listener.accept() {
            Ok((stream, _)) => answer(stream, site, &in_flight),
            // Taken by another process, interrupted, or given up by the
            // client before it was accepted: there is nothing to answer.
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionAborted
                ) => {}
            Err(err) => {
                eprintln!("hello: cannot accept a connection: {err}");
                stop.sleep(ERROR_PAUSE);
            }
        }
    }
    if own {
        // What was queued before the steering took new connections away.
        loop {
            match listener.accept() {
                Ok((stream, _)) => answer(stream, site, &in_flight),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    drop(listener);
    let left = in_flight.wait_for_none(grace);
    if left > 0 {
        eprintln!(
            "hello: {left} answer(s) still in flight after {}s, dropped",
            grace.as_secs()
        );
    }
    Ok(())
}

/// How many connections are being answered, and a way to wait until none
/// is.
#[derive(Default)]
struct InFlight {
    count: Mutex<usize>,
    changed: Condvar,
}

impl InFlight {
    fn add(&self, delta: isize) {
        let mut count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        *count = count.saturating_add_signed(delta);
        self.changed.notify_all();
    }

    /// Waits until no connection is being answered, at most `grace`, and
    /// returns how many still are.
    fn wait_for_none(&self, grace: Duration) -> usize {
        let count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, _) = self
            .changed
            .wait_timeout_while(count, grace, |count| *count > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *count
    }
}

/// Answers one connection on a thread of its own, counted in `in_flight`
/// while it runs.
fn answer(stream: TcpStream, site: &Arc<Site>, in_flight: &Arc<InFlight>) {
    let site = Arc::clone(site);
    let counter = Arc::clone(in_flight);
    counter.add(1);
    let spawned = thread::Builder::new()
        .name("connection".to_owned())
        .spawn(move || {
            handle(stream, &site);
            counter.add(-1);
        });
    if let Err(err) = spawned {
        in_flight.add(-1);
        eprintln!("hello: cannot start a connection thread: {err}");
    }
}

/// Reads one request from `stream`, answers it and closes the connection,
/// counting the answer in the site's metrics (but the metrics themselves).
fn handle(mut stream: TcpStream, site: &Site) {
    // Some systems give an accepted socket the listener's non-blocking mode;
    // the connection's thread wants to block, within the timeouts.
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(SERVER_IO_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(SERVER_IO_TIMEOUT)).is_err()
    {
        return;
    }
    let head = read_request_head(&mut stream);
    // The time of an answer is counted from the request read, so that a
    // client slow to send it does not count as a slow service.
    let started = Instant::now();
    let answer = match head {
        Ok(Incoming::Head(head)) => respond(&head, site),
        Ok(Incoming::TooLarge) => {
            Answer::Now(Response::text(431, "request header fields too large\n"))
        }
        // A client that leaves or stalls before finishing its request gets
        // no answer: there is no one left to read it.
        Ok(Incoming::Closed) | Err(_) => return,
    };
    let status = answer.status();
    // A client that hangs up before reading the answer is not the server's
    // problem, so a failed write is dropped along with the connection; the
    // answer was given all the same.
    let _ = send(&mut stream, answer, site);
    if let Some(status) = status {
        site.metrics.record(status, started.elapsed());
    }
}

/// The outcome of reading a request head.
#[derive(Debug)]
enum Incoming {
    /// The head, without the blank line that ends it.
    Head(Vec<u8>),
    TooLarge,
    Closed,
}

/// Reads up to the end of the request head. The whole head is read, not just
/// the request line, because closing a socket with unread data makes the
/// kernel reset the connection, which can destroy the response in flight.
fn read_request_head(stream: &mut impl Read) -> io::Result<Incoming> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0; 1024];
    loop {
        let read = match stream.read(&mut chunk) {
            Ok(0) => return Ok(Incoming::Closed),
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        head.extend_from_slice(&chunk[..read]);
        if let Some(end) = find(&head, b"\r\n\r\n") {
            head.truncate(end);
            return Ok(Incoming::Head(head));
        }
        if head.len() > MAX_REQUEST_HEAD {
            return Ok(Incoming::TooLarge);
        }
    }
}

/// How the server answers a request: decided from the request alone, then
/// carried out by `send`.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// A response sent at once.
    Now(Response),
    /// A response sent after a wait (`/slow`).
    Later(Duration, Response),
    /// `lines` lines, `tick 1` to `tick LINES`, each sent after waiting
    /// `interval` (`/stream`). The body is chunked, unless the client speaks
    /// HTTP/1.0, which has no chunks; then the end of the connection ends it.
    Ticks {
        interval: Duration,
        lines: u64,
        chunked: bool,
    },
    /// The site's metrics, as they are when sent (`/metrics`).
    Metrics,
}

impl Answer {
    /// The status the answer is counted under, or `None` for the metrics,
    /// which do not count themselves.
    fn status(&self) -> Option<u16> {
        match self {
            Answer::Now(response) | Answer::Later(_, response) => Some(response.status),
            Answer::Ticks { .. } => Some(200),
            Answer::Metrics => None,
        }
    }
}

/// Answers a request, given its head.
fn respond(head: &[u8], site: &Site) -> Answer {
    let bad_request = || Response::text(400, "bad request\n");
    let Ok(head) = std::str::from_utf8(head) else {
        return Answer::Now(bad_request());
    };
    let request_line = head.split("\r\n").next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Answer::Now(bad_request());
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Answer::Now(bad_request());
    }
    if method != "GET" {
        return Answer::Now(Response::text(405, "method not allowed\n"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match path {
        "/slow" => return slow(query),
        "/stream" => return stream(query, version != "HTTP/1.0"),
        "/metrics" => return Answer::Metrics,
        _ => {}
    }
    Answer::Now(match path {
        "/" => site.greet(),
        "/health" if site.healthy => Response::text(200, "ok\n"),
        "/health" => Response::text(503, "unhealthy\n"),
        "/admin" => match &site.admin_token {
            Some(token) if bearer(head) == Some(token.as_str()) => {
                Response::text(200, "admin ok\n")
            }
            Some(_) => Response::text(401, "unauthorized\n"),
            None => Response::text(404, "not found\n"),
        },
        _ => match path.strip_prefix("/static/") {
            Some(file) => static_file(&site.static_root, file),
            None => Response::text(404, "not found\n"),
        },
    })
}

/// `GET /slow?ms=N`: `slow N`, after N milliseconds, so that a benchmark of
/// restarts has requests in flight when a server is told to stop.
fn slow(query: &str) -> Answer {
    match query_number(query, "ms", MAX_SLOW_MS) {
        Ok(ms) => Answer::Later(
            Duration::from_millis(ms),
            Response::text(200, &format!("slow {ms}\n")),
        ),
        Err(message) => Answer::Now(Response::text(400, &format!("bad request: {message}\n"))),
    }
}

/// `GET /stream?ms=N&lines=K`: K lines, one every N milliseconds, so that a
/// benchmark of restarts has a long response in flight when a server is
/// told to stop.
fn stream(query: &str, chunked: bool) -> Answer {
    let parameters = query_number(query, "ms", MAX_TICK_MS)
        .and_then(|ms| Ok((ms, query_number(query, "lines", MAX_TICKS)?)));
    match parameters {
        Ok((ms, lines)) => Answer::Ticks {
            interval: Duration::from_millis(ms),
            lines,
            chunked,
        },
        Err(message) => Answer::Now(Response::text(400, &format!("bad request: {message}\n"))),
    }
}

/// The parameter `name` of a query string: a whole number from 0 to `max`,
/// given once. The value is used as sent, without percent-decoding, since a
/// number needs none.
fn query_number(query: &str, name: &str, max: u64) -> Result<u64, String> {
    let mut values = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| value);
    let value = values
        .next()
        .ok_or_else(|| format!("`{name}` is missing"))?;
    if values.next().is_some() {
        return Err(format!("`{name}` is given twice"));
    }
    // Only plain digits: `u64`'s parser would also take a sign.
    Some(value)
        .filter(|value| !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|value| value.parse::<u64>().ok())
        .filter(|&number| number <= max)
        .ok_or_else(|| format!("`{name}` must be a whole number from 0 to {max}, found `{value}`"))
}

/// Carries out `answer` on `stream`.
fn send(stream: &mut TcpStream, answer: Answer, site: &Site) -> io::Result<()> {
    let pid = site.pid;
    match answer {
        Answer::Metrics => {
            let response = Response {
                status: 200,
                content_type: metrics::CONTENT_TYPE,
                body: site.metrics.render(&site.name).into_bytes(),
            };
            stream.write_all(&response.to_bytes(pid))
        }
        Answer::Now(response) => stream.write_all(&response.to_bytes(pid)),
        Answer::Later(wait, response) => {
            thread::sleep(wait);
            stream.write_all(&response.to_bytes(pid))
        }
        Answer::Ticks {
            interval,
            lines,
            chunked,
        } => {
            // Each line leaves as it is written, rather than waiting on
            // Nagle's algorithm for the acknowledgement of the one before.
            stream.set_nodelay(true)?;
            let framing = if chunked {
                "Transfer-Encoding: chunked"
            } else {
                ""
            };
            stream.write_all(head(200, "text/plain", framing, pid).as_bytes())?;
            for tick in 1..=lines {
                thread::sleep(interval);
                let line = format!("tick {tick}\n");
                if chunked {
                    stream.write_all(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes())?;
                } else {
                    stream.write_all(line.as_bytes())?;
                }
            }
            if chunked {
                stream.write_all(b"0\r\n\r\n")?;
            }
            Ok(())
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(head: &str) -> Option<&str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("authorization") {
            return None;
        }
        value.trim().strip_prefix("Bearer ").map(str::trim)
    })
}

/// Serves `file` from `root`. The path is used as sent, without
/// percent-decoding, so an encoded `..` names a literal file and cannot
/// escape `root`. The `..` test is a plain substring test: it also refuses a
/// harmless name such as `a..b`, which is cheaper than getting a
/// per-component test subtly wrong.
fn static_file(root: &Path, file: &str) -> Response {
    if file.contains("..") || file.starts_with('/') || file.contains('\0') {
        return Response::text(400, "bad request\n");
    }
    let not_found = || Response::text(404, "not found\n");
    if file.is_empty() {
        return not_found();
    }
    match read_regular_file(&root.join(file)) {
        Ok(Some(body)) => Response {
            status: 200,
            content_type: content_type(file),
            body,
        },
        Ok(None) => not_found(),
        Err(err) => {
            eprintln!("hello: cannot read static/{file}: {err}");
            Response::text(500, "internal server error\n")
        }
    }
}

/// Reads a regular file, or returns `None` when there is no regular file at
/// `path` (a directory is treated as missing).
fn read_regular_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None);
        }
        Err(err) => return Err(err),
    };
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let mut body = Vec::new();
    file.read_to_end(&mut body)?;
    Ok(Some(body))
}

fn content_type(file: &str) -> &'static str {
    match Path::new(file).extension().and_then(|ext| ext.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("html") => "text/html",
        Some(ext) if ext.eq_ignore_ascii_case("css") => "text/css",
        _ => "application/octet-stream",
    }
}

/// A response the server sends.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain",
            body: body.as_bytes().to_vec(),
        }
    }

    /// Renders the whole response into one buffer, so that it leaves in a
    /// single write: a separate small write for the body would wait on the
    /// client's delayed acknowledgement of the head (Nagle's algorithm).
    fn to_bytes(&self, pid: u32) -> Vec<u8> {
        let length = format!("Content-Length: {}", self.body.len());
        let mut bytes = head(self.status, self.content_type, &length, pid).into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// The head of a response, `framing` being the header that says where the
/// body ends, or nothing when the end of the connection does.
fn head(status: u16, content_type: &str, framing: &str, pid: u32) -> String {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\n",
        reason(status)
    );
    if !framing.is_empty() {
        head.push_str(framing);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n");
    if status == 405 {
        head.push_str("Allow: GET\r\n");
    }
    head.push_str("X-Hello-Pid: ");
    head.push_str(&pid.to_string());
    head.push_str("\r\n\r\n");
    head
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// The position of the first occurrence of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listen;
    use std::fs;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Instant;

    /// A directory under the system's temporary directory, unique to this
    /// process and test, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "hello-test-{}-{label}-{unique}",
                std::process::id()
            ));
            // A directory left by an earlier process with the same id would
            // otherwise leak its files into this test.
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A server running on a thread of its own.
    struct Server {
        stop: Arc<Stop>,
        done: mpsc::Receiver<()>,
    }

    impl Server {
        fn start(listener: TcpListener, site: Site, grace: Duration) -> Server {
            let stop = Arc::new(Stop::new().unwrap());
            let (finished, done) = mpsc::channel();
            let site = Arc::new(site);
            let server_stop = Arc::clone(&stop);
            thread::spawn(move || {
                serve(listener, true, &site, &server_stop, grace).unwrap();
                let _ = finished.send(());
            });
            Server { stop, done }
        }

        /// Waits for `serve` to return, at most `timeout`.
        fn returned_within(&self, timeout: Duration) -> bool {
            self.done.recv_timeout(timeout).is_ok()
        }
    }

    /// Starts a server for `site` on a free port and returns its address.
    fn start(site: Site) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        // The server runs until the test process ends.
        std::mem::forget(Server::start(listener, site, Duration::ZERO));
        address
    }

    #[test]
    fn a_stop_finishes_the_answers_in_flight_and_leaves_the_queue() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        // The descriptor a service manager keeps of the socket it handed
        // over: the server closes only its own.
        let manager = listener.try_clone().unwrap();
        let server = Server::start(
            listener,
            site(true, PathBuf::from("/nonexistent")),
            Duration::from_secs(10),
        );
        // A client that is in the middle of its request when the stop
        // comes still gets its answer.
        let mut slow = TcpStream::connect(address).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        slow.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
        // The server accepts in turn, so its connection is accepted once
        // the probe, made after it, is answered.
        let probe = get(address, "/health");
        assert_eq!(probe.0, 200);
        server.stop.request();
        slow.write_all(b"Host: x\r\n\r\n").unwrap();
        let mut answer = String::new();
        slow.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(server.returned_within(Duration::from_secs(10)));
        // A connection made now waits in the queue of the socket, which
        // outlives the server: the next server to accept on it answers.
        let queued = TcpStream::connect(address).unwrap();
        drop(queued);
        manager.set_nonblocking(false).unwrap();
        let waiter = Stop::new().unwrap();
        let woken = waiter.wait(Some(&manager), Some(Duration::from_secs(10)));
        assert_eq!(woken.unwrap(), Woken::Connection);
        let (_, _) = manager.accept().unwrap();
    }

    #[test]
    fn a_stop_closes_the_listener_at_once_and_finishes_a_slow_answer() {
        let listener = listen::bind("127.77.2.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = Server::start(
            listener,
            site(true, PathBuf::from("/nonexistent")),
            Duration::from_secs(10),
        );
        let mut slow = TcpStream::connect(address).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        slow.write_all(b"GET /slow?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        // Accepted in turn: once the probe is answered, so is the slow
        // request being.
        assert_eq!(get(address, "/health").0, 200);
        server.stop.request();
        // The listener closes at once, while the slow answer is still being
        // prepared: no new connection reaches the stopping server.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpStream::connect(address) {
                Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => break,
                // Queued just before the close, or caught in its handshake
                // by it: the close resets it.
                Ok(_) => assert!(Instant::now() < deadline, "{address} still accepts"),
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {
                    assert!(Instant::now() < deadline, "{address} still accepts");
                }
                Err(err) => panic!("{err}"),
            }
        }
        assert!(
            server.done.try_recv().is_err(),
            "the server returned before the slow answer was sent"
        );
        let mut answer = String::new();
        slow.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("\r\nX-Hello-Pid: 4242\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nslow 2000\n"), "{answer}");
        assert!(server.returned_within(Duration::from_secs(10)));
    }

    #[test]
    fn the_instance_that_listened_last_gets_every_new_connection() {
        use std::io::{Read as _, Write as _};
        let first = listen::bind("127.77.2.2:0").unwrap();
        let address = first.local_addr().unwrap();
        // Alone, the first gets the connections: this one waits in its
        // queue.
        let mut queued = std::net::TcpStream::connect(address).unwrap();
        queued
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let second = listen::bind(&address.to_string()).unwrap();
        let servers = [(first, 1001), (second, 1002)].map(|(listener, pid)| {
            let site = Site {
                pid,
                ..site(true, PathBuf::from("/nonexistent"))
            };
            Server::start(listener, site, Duration::from_secs(10))
        });
        let pid_of = |response: &str| {
            assert!(
                response.ends_with("\r\n\r\nhowdy from web-1\n"),
                "{response}"
            );
            response
                .lines()
                .find_map(|line| line.strip_prefix("X-Hello-Pid: "))
                .and_then(|pid| pid.trim().parse::<u32>().ok())
                .unwrap_or_else(|| panic!("no pid in {response}"))
        };
        // Both listen: every new connection goes to the second.
        for _ in 0..50 {
            assert_eq!(
                pid_of(&raw(address, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")),
                1002
            );
        }
        // Told to stop, the first answers what was queued on it before it
        // closes.
        servers[0].stop.request();
        assert!(servers[0].returned_within(Duration::from_secs(10)));
        queued
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut response = String::new();
        queued.read_to_string(&mut response).unwrap();
        assert_eq!(pid_of(&response), 1001);
        for _ in 0..20 {
            assert_eq!(
                pid_of(&raw(address, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")),
                1002
            );
        }
        servers[1].stop.request();
        assert!(servers[1].returned_within(Duration::from_secs(10)));
    }

    #[test]
    fn serves_slow_answers_and_streams() {
        let address = start(site(true, std::env::temp_dir()));
        assert_eq!(get(address, "/slow?ms=5"), (200, "slow 5\n".to_owned()));
        assert_eq!(
            get(address, "/stream?lines=3&ms=1"),
            (200, "tick 1\ntick 2\ntick 3\n".to_owned())
        );
        assert_eq!(get(address, "/stream?ms=0&lines=0"), (200, String::new()));
        let chunked = raw(
            address,
            "GET /stream?ms=0&lines=2 HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(
            chunked,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\nX-Hello-Pid: 4242\r\n\r\n\
             7\r\ntick 1\n\r\n7\r\ntick 2\n\r\n0\r\n\r\n"
        );
        // HTTP/1.0 has no chunks: the end of the connection ends the body.
        let unframed = raw(address, "GET /stream?ms=0&lines=2 HTTP/1.0\r\n\r\n");
        assert_eq!(
            unframed,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
             Connection: close\r\nX-Hello-Pid: 4242\r\n\r\ntick 1\ntick 2\n"
        );
    }

    #[test]
    fn refuses_bad_slow_and_stream_parameters() {
        let site = site(true, std::env::temp_dir());
        let answer = |target: &str| respond(format!("GET {target} HTTP/1.1").as_bytes(), &site);
        let refused =
            |body: &str| Answer::Now(Response::text(400, &format!("bad request: {body}\n")));
        assert_eq!(
            answer("/slow?ms=1500"),
            Answer::Later(
                Duration::from_millis(1500),
                Response::text(200, "slow 1500\n")
            )
        );
        assert!(matches!(answer("/slow?ms=60000"), Answer::Later(..)));
        assert_eq!(
            answer("/stream?ms=10000&lines=100000&x=1"),
            Answer::Ticks {
                interval: Duration::from_secs(10),
                lines: 100_000,
                chunked: true
            }
        );
        let slow_range = "`ms` must be a whole number from 0 to 60000";
        for (target, expected) in [
            ("/slow", "`ms` is missing".to_owned()),
            ("/slow?ms", "`ms` is missing".to_owned()),
            ("/slow?ms=1&ms=2", "`ms` is given twice".to_owned()),
            ("/slow?ms=", format!("{slow_range}, found ``")),
            ("/slow?ms=abc", format!("{slow_range}, found `abc`")),
            ("/slow?ms=-1", format!("{slow_range}, found `-1`")),
            ("/slow?ms=+1", format!("{slow_range}, found `+1`")),
            ("/slow?ms=1.5", format!("{slow_range}, found `1.5`")),
            ("/slow?ms=60001", format!("{slow_range}, found `60001`")),
            (
                "/slow?ms=99999999999999999999",
                format!("{slow_range}, found `99999999999999999999`"),
            ),
            ("/stream?lines=1", "`ms` is missing".to_owned()),
            ("/stream?ms=1", "`lines` is missing".to_owned()),
            (
                "/stream?ms=10001&lines=1",
                "`ms` must be a whole number from 0 to 10000, found `10001`".to_owned(),
            ),
            (
                "/stream?ms=1&lines=100001",
                "`lines` must be a whole number from 0 to 100000, found `100001`".to_owned(),
            ),
            (
                "/stream?ms=1&lines=x",
                "`lines` must be a whole number from 0 to 100000, found `x`".to_owned(),
            ),
        ] {
            assert_eq!(answer(target), refused(&expected), "{target}");
        }
    }

    fn site(healthy: bool, static_root: PathBuf) -> Site {
        Site {
            greeting: "howdy".to_owned(),
            name: "web-1".to_owned(),
            healthy,
            static_root,
            admin_token: Some("t0ken".to_owned()),
            pid: 4242,
            errors: Share::NONE,
            greeted: AtomicU64::new(0),
            metrics: Metrics::default(),
        }
    }

    fn get(address: SocketAddr, path: &str) -> (u16, String) {
        let url = parse_url(&format!("http://{address}{path}")).unwrap();
        let reply = probe(&url, Duration::from_secs(5)).unwrap();
        (reply.status, String::from_utf8(reply.body).unwrap())
    }

    /// Sends `request` as is and returns the whole raw response.
    fn raw(address: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn serves_the_routes() {
        let dir = TempDir::new("routes");
        let static_root = dir.0.join("static");
        fs::create_dir(&static_root).unwrap();
        fs::write(static_root.join("index.html"), "<h1>hi</h1>\n").unwrap();
        fs::create_dir(static_root.join("css")).unwrap();
        fs::write(static_root.join("css/site.css"), "body {}\n").unwrap();
        fs::write(dir.0.join("secret"), "do not serve\n").unwrap();
        let address = start(site(true, static_root));

        assert_eq!(get(address, "/health"), (200, "ok\n".to_owned()));
        assert_eq!(get(address, "/"), (200, "howdy from web-1\n".to_owned()));
        assert_eq!(
            get(address, "/?q=1"),
            (200, "howdy from web-1\n".to_owned())
        );
        assert_eq!(
            get(address, "/static/index.html"),
            (200, "<h1>hi</h1>\n".to_owned())
        );
        assert_eq!(
            get(address, "/static/css/site.css"),
            (200, "body {}\n".to_owned())
        );
        assert_eq!(get(address, "/static/missing.css").0, 404);
        assert_eq!(get(address, "/static/css").0, 404);
        assert_eq!(get(address, "/static/").0, 404);
        assert_eq!(get(address, "/elsewhere").0, 404);
        assert_eq!(
            get(address, "/static/../secret"),
            (400, "bad request\n".to_owned())
        );
        assert_eq!(get(address, "/static/css/../../secret").0, 400);
        assert_eq!(get(address, "/static//etc/passwd").0, 400);
        assert_eq!(get(address, "/admin").0, 401);
        let admin = |auth: &str| {
            raw(
                address,
                &format!("GET /admin HTTP/1.1\r\nHost: x\r\n{auth}\r\n\r\n"),
            )
        };
        assert!(admin("authorization: Bearer t0ken").ends_with("admin ok\n"));
        assert!(admin("Authorization: Bearer nope").contains(" 401 "));
    }

    #[test]
    fn sends_content_types_and_closes() {
        let dir = TempDir::new("types");
        fs::write(dir.0.join("a.css"), "p {}").unwrap();
        fs::write(dir.0.join("a.bin"), [0, 1, 2]).unwrap();
        let address = start(site(true, dir.0.clone()));

        let response = raw(address, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(
            response.contains("\r\nContent-Type: text/plain\r\n"),
            "{response}"
        );
        assert!(response.contains("\r\nConnection: close\r\n"), "{response}");
        let css = raw(address, "GET /static/a.css HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(css.contains("\r\nContent-Type: text/css\r\n"), "{css}");
        let bin = raw(address, "GET /static/a.bin HTTP/1.0\r\n\r\n");
        assert!(
            bin.contains("\r\nContent-Type: application/octet-stream\r\n"),
            "{bin}"
        );
    }

    #[test]
    fn refuses_other_methods_and_bad_requests() {
        let address = start(site(true, std::env::temp_dir()));
        let post = raw(
            address,
            "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(
            post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{post}"
        );
        assert!(post.contains("\r\nAllow: GET\r\n"), "{post}");
        let garbage = raw(address, "hello there\r\n\r\n");
        assert!(
            garbage.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{garbage}"
        );
    }

    #[test]
    fn reports_unhealthy() {
        let address = start(site(false, std::env::temp_dir()));
        assert_eq!(get(address, "/health"), (503, "unhealthy\n".to_owned()));
        assert_eq!(get(address, "/"), (200, "howdy from web-1\n".to_owned()));
    }

    #[test]
    fn the_share_of_errors_fails_every_nth_greeting_and_nothing_else() {
        let dir = TempDir::new("errors");
        fs::write(dir.0.join("a.css"), "p {}").unwrap();
        let address = start(Site {
            errors: crate::config::parse("t", "listen = \"x:1\"\nerrors = \"0.25\"\n")
                .unwrap()
                .errors,
            ..site(true, dir.0.clone())
        });
        let mut statuses = Vec::new();
        for _ in 0..8 {
            statuses.push(get(address, "/").0);
            // Neither the health check, the static files nor the metrics
            // fail, nor do they count as greetings.
            assert_eq!(get(address, "/health").0, 200);
            assert_eq!(get(address, "/static/a.css").0, 200);
            assert_eq!(get(address, "/metrics").0, 200);
        }
        assert_eq!(statuses, [200, 200, 200, 500, 200, 200, 200, 500]);
        let ninth = raw(address, "GET /?n=9 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ninth.starts_with("HTTP/1.1 200 OK\r\n"), "{ninth}");
        for _ in 0..2 {
            get(address, "/");
        }
        let failed = raw(address, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            failed.starts_with("HTTP/1.1 500 Internal Server Error\r\n")
                && failed.ends_with("\r\n\r\ninternal server error\n"),
            "{failed}"
        );
    }

    #[test]
    fn metrics_count_every_answer_but_their_own() {
        let address = start(site(true, PathBuf::from("/nonexistent")));
        for path in ["/", "/", "/health", "/nowhere", "/admin", "/slow?ms=30"] {
            get(address, path);
        }
        raw(
            address,
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        );
        let response = raw(address, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            response.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"),
            "{response}"
        );
        let (_, text) = response.split_once("\r\n\r\n").unwrap();
        // A second scrape counts the first no more than itself.
        let (status, again) = get(address, "/metrics");
        assert_eq!(status, 200);
        assert_eq!(again, text);
        let (samples, _) = metrics::tests::parse(text);
        let requests =
            |code: &str| samples[&format!("hello_requests_total{{code=\"{code}\"}}")].clone();
        assert_eq!(requests("200"), "4");
        assert_eq!(requests("401"), "1");
        assert_eq!(requests("404"), "1");
        assert_eq!(requests("405"), "1");
        assert_eq!(requests("500"), "0");
        assert_eq!(samples["hello_request_duration_seconds_count"], "7");
        // `/slow?ms=30` took 30 ms at least.
        let sum: f64 = samples["hello_request_duration_seconds_sum"]
            .parse()
            .unwrap();
        assert!(sum >= 0.03, "{text}");
        let bucket = |le: &str| {
            samples[&format!("hello_request_duration_seconds_bucket{{le=\"{le}\"}}")].clone()
        };
        assert!(bucket("0.025").parse::<u64>().unwrap() <= 6, "{text}");
        assert_eq!(bucket("+Inf"), "7", "{text}");
        assert_eq!(samples["hello_info{name=\"web-1\"}"], "1");
    }
}
