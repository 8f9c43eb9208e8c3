//! OpenSSH's connection multiplexing (its `PROTOCOL.mux`), spoken by
//! landfall itself over a master's control socket: whether a master is
//! alive, a session on it, and telling it to stop listening or to end,
//! without starting an ssh client for any of them.
//!
//! A session is opened as `ssh -S SOCKET HOST COMMAND` opens one (a
//! "passenger"): after the hellos, a new-session request with the command,
//! then the standard input, output and error the session is to use, passed
//! over the socket as file descriptors. The master runs the session over
//! its connection, and says on the socket how it ended.

use std::io::{self, Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::process::{Ended, Shell};

const HELLO: u32 = 0x0000_0001;
const VERSION: u32 = 4;
const NEW_SESSION: u32 = 0x1000_0002;
const ALIVE_CHECK: u32 = 0x1000_0004;
const TERMINATE: u32 = 0x1000_0005;
const STOP_LISTENING: u32 = 0x1000_0009;
const PERMISSION_DENIED: u32 = 0x8000_0002;
const FAILURE: u32 = 0x8000_0003;
const EXIT_MESSAGE: u32 = 0x8000_0004;
const ALIVE: u32 = 0x8000_0005;
const SESSION_OPENED: u32 = 0x8000_0006;
/// No escape character: the session has no terminal to type one on.
const NO_ESCAPE: u32 = 0xffff_ffff;
/// The one request of a connection.
const REQUEST: u32 = 1;
/// Larger than any packet a master sends.
const MAX_PACKET: usize = 256 * 1024;

/// ssh's exit status when the master went away without an exit status.
const DISCONNECTED: i32 = 255;

/// A packet of the protocol, as it is built.
#[derive(Default)]
struct Packet(Vec<u8>);

impl Packet {
    fn u32(mut self, value: u32) -> Packet {
        self.0.extend(value.to_be_bytes());
        self
    }

    fn string(self, value: &str) -> Packet {
        let len = u32::try_from(value.len()).expect("a command is shorter than 4 GiB");
        let mut packet = self.u32(len);
        packet.0.extend(value.as_bytes());
        packet
    }

    /// The packet with its length before it, as it goes on the socket.
    fn framed(self) -> Vec<u8> {
        let len = u32::try_from(self.0.len()).expect("a packet is shorter than 4 GiB");
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend(self.0);
        framed
    }
}

fn read_packet(stream: &mut UnixStream) -> io::Result<Vec<u8>> {
    let mut len = [0; 4];
    stream.read_exact(&mut len)?;
    let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
    if !(4..=MAX_PACKET).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a packet of {len} bytes from the master"),
        ));
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body)?;
    Ok(body)
}

/// The `at`-th word of a packet.
fn word(body: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        body.get(at * 4..at * 4 + 4)?.try_into().ok()?,
    ))
}

/// The string that starts at byte `at` of a packet.
fn string(body: &[u8], at: usize) -> Option<String> {
    let len = usize::try_from(u32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?)).ok()?;
    let bytes = body.get(at + 4..at + 4 + len)?;
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// The hello of the version landfall speaks, which each side sends first.
fn hello() -> Vec<u8> {
    Packet::default().u32(HELLO).u32(VERSION).framed()
}

/// Whether `packet` is a master's hello in the version landfall speaks.
fn is_hello(packet: &[u8]) -> bool {
    word(packet, 0) == Some(HELLO) && word(packet, 1) == Some(VERSION)
}

/// What is found at a master's control socket.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Master {
    /// A master, which answered.
    Alive,
    /// Nothing takes connections there: no socket, or one that nobody
    /// listens on any more (ssh replaces it).
    Nothing,
    /// Something took the connection but did not answer as a master within
    /// a second: a master that is stopped or stuck, say, which an ssh
    /// client would wait for without end.
    Silent,
}

/// Asks the socket at `socket` whether a master is alive there, as `ssh -O
/// check` does: each side's hello, then an alive check that the master
/// answers with its pid.
pub(super) fn check_master(socket: &Path) -> Master {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return Master::Nothing;
    };
    match request(&mut stream, ALIVE_CHECK) {
        Ok((hello, alive))
            if is_hello(&hello)
                && word(&alive, 0) == Some(ALIVE)
                && word(&alive, 1) == Some(REQUEST)
                && word(&alive, 2).is_some_and(|pid| pid > 0) =>
        {
            Master::Alive
        }
        _ => Master::Silent,
    }
}

/// Sends a master, on a connection of its own, the hello and the one
/// request `kind`, and reads its hello and its answer: each waited for a
/// second at most, as a few bytes to a process on this machine are.
fn request(stream: &mut UnixStream, kind: u32) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let limit = Some(Duration::from_secs(1));
    stream.set_read_timeout(limit)?;
    stream.set_write_timeout(limit)?;
    let mut request = hello();
    request.extend(Packet::default().u32(kind).u32(REQUEST).framed());
    stream.write_all(&request)?;
    Ok((read_packet(stream)?, read_packet(stream)?))
}

/// A session that a master runs for landfall: its control connection, and
/// how it ended once it has.
pub(super) struct Session {
    control: UnixStream,
    /// Says once that the master has the session open on the host.
    opened: std::sync::mpsc::Receiver<()>,
    open: bool,
    ended: std::sync::mpsc::Receiver<i32>,
    status: Option<Ended>,
}

/// The ends of a session's standard streams that landfall keeps.
pub(super) struct Streams {
    pub(super) stdin: io::PipeWriter,
    pub(super) stdout: io::PipeReader,
    pub(super) stderr: io::PipeReader,
}

/// Opens a session running `command` (as the remote shell reads it) on the
/// master at `socket`, with pipes of landfall's for its standard streams,
/// and returns at once: the master's answers (its hello, the session
/// opened, and at last how it ended) are read by a thread of the
/// session's, so that a host slow to open a session keeps no other waiting.
/// A master that refuses the session ends it as ssh would, with status
/// 255, and says why on the session's standard error. An error here means
/// that no master takes requests at `socket`.
pub(super) fn session(socket: &Path, command: &str) -> io::Result<(Session, Streams)> {
    let control = UnixStream::connect(socket)?;
    // A few bytes to a process on this machine: one that does not take
    // them at once is not a master at work.
    control.set_write_timeout(Some(Duration::from_secs(1)))?;
    let mut request = hello();
    let new_session = Packet::default()
        .u32(NEW_SESSION)
        .u32(REQUEST)
        // Reserved.
        .string("")
        // No terminal, no X11 or agent forwarding, not a subsystem.
        .u32(0)
        .u32(0)
        .u32(0)
        .u32(0)
        .u32(NO_ESCAPE)
        // The terminal type, for a terminal it has not got.
        .string("")
        .string(command);
    request.extend(new_session.framed());
    (&control).write_all(&request)?;
    let (session_stdin, stdin) = io::pipe()?;
    let (stdout, session_stdout) = io::pipe()?;
    let (stderr, session_stderr) = io::pipe()?;
    // One descriptor a message, each with one byte, as the master reads
    // them; its copies stay open after landfall closes its own.
    for fd in [
        session_stdin.as_fd(),
        session_stdout.as_fd(),
        session_stderr.as_fd(),
    ] {
        send_fd(&control, fd)?;
    }
    // Standard error stays open here until the session ends, for the
    // master's refusal to be said on it.
    let mut said = session_stderr;
    drop((session_stdin, session_stdout));
    let mut reader = control.try_clone()?;
    let (send, ended) = std::sync::mpsc::channel();
    let (now_open, opened) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let status = answers(&mut reader, &now_open).unwrap_or_else(|why| {
            if !why.is_empty() {
                let _ = writeln!(said, "landfall: {why}");
            }
            DISCONNECTED
        });
        drop(said);
        let _ = send.send(status);
    });
    let session = Session {
        control,
        opened,
        open: false,
        ended,
        status: None,
    };
    Ok((
        session,
        Streams {
            stdin,
            stdout,
            stderr,
        },
    ))
}

/// Reads the master's answers to a new session up to the session's exit
/// status, saying on `now_open` when the session is open; or why there is
/// no status (nothing to say when the master just went away, or the
/// session was ended here).
fn answers(
    control: &mut UnixStream,
    now_open: &std::sync::mpsc::Sender<()>,
) -> Result<i32, String> {
    let next = |control: &mut UnixStream| read_packet(control).map_err(|_| String::new());
    if !is_hello(&next(control)?) {
        return Err("the ssh master does not speak version 4 of its multiplexing protocol".into());
    }
    let opened = next(control)?;
    match word(&opened, 0) {
        Some(SESSION_OPENED) if word(&opened, 1) == Some(REQUEST) => {
            let _ = now_open.send(());
        }
        Some(PERMISSION_DENIED | FAILURE) => {
            let reason = string(&opened, 8).unwrap_or_default();
            return Err(format!("the ssh master did not open a session: {reason}"));
        }
        _ => return Err("the ssh master answered a new session with something else".into()),
    }
    loop {
        let packet = next(control)?;
        // Anything else (a failure to allocate the terminal it did not ask
        // for, or what a later master adds) is passed over.
        if word(&packet, 0) == Some(EXIT_MESSAGE) {
            return Ok(word(&packet, 2).map_or(DISCONNECTED, u32::cast_signed));
        }
    }
}

fn send_fd(control: &UnixStream, fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    ancillary.push(SendAncillaryMessage::ScmRights(&fds));
    let sent = rustix::net::sendmsg(
        control,
        &[io::IoSlice::new(&[0])],
        &mut ancillary,
        SendFlags::empty(),
    )?;
    if sent == 1 {
        Ok(())
    } else {
        Err(io::ErrorKind::WriteZero.into())
    }
}

impl Session {
    /// Whether the master has said, by `deadline`, that the session is open
    /// on the host. That takes a round trip over the master's connection,
    /// which a master whose host went away or froze while it idled never
    /// completes, though it answers on its socket.
    pub(super) fn opened_by(&mut self, deadline: std::time::Instant) -> bool {
        if !self.open {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            self.open = self.opened.recv_timeout(left).is_ok();
        }
        self.open
    }
}

/// Asks the master at `socket` to take no more sessions, as `ssh -O stop`
/// does. It takes its socket away at once, and ends once the sessions it
/// runs have.
pub(super) fn stop_listening(socket: &Path) {
    tell(socket, STOP_LISTENING);
}

/// Asks the master at `socket` to end, as `ssh -O exit` does.
pub(super) fn exit(socket: &Path) {
    tell(socket, TERMINATE);
}

/// Sends the master at `socket`, if one takes connections there, the
/// request `kind`, and waits a second at most for its answer.
fn tell(socket: &Path, kind: u32) {
    if let Ok(mut stream) = UnixStream::connect(socket) {
        let _ = request(&mut stream, kind);
    }
}

impl Shell for Session {
    fn ended(&mut self) -> Option<Ended> {
        self.wait_ended(Duration::ZERO)
    }

    /// The master says how the session ended: that is waited for, not
    /// looked for now and then.
    fn wait_ended(&mut self, deadline: Duration) -> Option<Ended> {
        if self.status.is_none() {
            self.status = self
                .ended
                .recv_timeout(deadline)
                .ok()
                .map(|code| Ended { code: Some(code) });
        }
        self.status
    }

    /// Closes the control connection, on which the master closes the
    /// session, as it does when the ssh client of a session is killed.
    fn kill(&mut self) {
        let _ = self.control.shutdown(std::net::Shutdown::Both);
        if self.ended().is_none() {
            self.status = Some(Ended { code: None });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_master_is_alive_only_if_it_answers_as_a_master() {
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        // Nothing there, or a socket nobody listens on any more.
        let socket = dir.path().join("gone");
        assert_eq!(check_master(&socket), Master::Nothing);
        drop(UnixListener::bind(&socket).unwrap());
        // A process another test forks at that moment holds a copy of the
        // listener until it runs its program: nobody listens once it has.
        landfall_testbed::support::wait_for(10, "nobody to listen on a dropped socket", || {
            check_master(&socket) == Master::Nothing
        });
        // A listener that never answers (a master that is stopped) is
        // given up within its second.
        let silent = dir.path().join("silent");
        let listener = UnixListener::bind(&silent).unwrap();
        let started = std::time::Instant::now();
        assert_eq!(check_master(&silent), Master::Silent);
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(listener);
        // One that answers each request as a master does (hello, then
        // MUX_S_ALIVE with the request's id and its pid), and one that
        // answers with another request's id.
        for (id, found) in [(1u32, Master::Alive), (7, Master::Silent)] {
            let path = dir.path().join(format!("master{id}"));
            let listener = UnixListener::bind(&path).unwrap();
            let master = std::thread::spawn(move || {
                let (mut stream, _) = listener.accept().unwrap();
                let words = |stream: &mut UnixStream, n: usize| -> Vec<u32> {
                    let mut bytes = vec![0u8; n * 4];
                    stream.read_exact(&mut bytes).unwrap();
                    bytes
                        .chunks(4)
                        .map(|w| u32::from_be_bytes(w.try_into().unwrap()))
                        .collect()
                };
                assert_eq!(words(&mut stream, 3), [8, 1, 4]);
                stream.write_all(&hello()).unwrap();
                assert_eq!(words(&mut stream, 3), [8, 0x1000_0004, 1]);
                let reply = Packet::default().u32(ALIVE).u32(id).u32(4242).framed();
                stream.write_all(&reply).unwrap();
            });
            assert_eq!(check_master(&path), found);
            master.join().unwrap();
        }
    }

    /// A master that refuses the session, or speaks another version of the
    /// protocol, ends it as ssh would (255), and the reason is on its
    /// standard error; a socket nobody answers on is an error at once.
    #[test]
    fn a_session_a_master_refuses_ends_with_255_and_says_why() {
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        assert!(session(&dir.path().join("gone"), "sh -s").is_err());
        for (version, said) in [
            (
                VERSION,
                "did not open a session: Session open refused by peer",
            ),
            (3, "does not speak version 4"),
        ] {
            let path = dir.path().join(format!("master{version}"));
            let listener = UnixListener::bind(&path).unwrap();
            let master = std::thread::spawn(move || {
                let (mut stream, _) = listener.accept().unwrap();
                let hello = read_packet(&mut stream).unwrap();
                assert_eq!(word(&hello, 0), Some(HELLO));
                let request = read_packet(&mut stream).unwrap();
                assert_eq!(word(&request, 0), Some(NEW_SESSION));
                assert_eq!(string(&request, 36).as_deref(), Some("sh -s"));
                // The three descriptors, a byte each (the descriptors
                // themselves are closed unread).
                let mut fds = [0u8; 3];
                stream.read_exact(&mut fds).unwrap();
                let mut reply = Packet::default().u32(HELLO).u32(version).framed();
                reply.extend(
                    Packet::default()
                        .u32(FAILURE)
                        .u32(REQUEST)
                        .string("Session open refused by peer")
                        .framed(),
                );
                stream.write_all(&reply).unwrap();
            });
            let (mut shell, mut streams) = session(&path, "sh -s").unwrap();
            master.join().unwrap();
            let mut stderr = String::new();
            streams.stderr.read_to_string(&mut stderr).unwrap();
            assert!(stderr.contains(said), "{stderr}");
            let ended = shell.wait_ended(Duration::from_secs(10));
            assert_eq!(ended.expect("the session ends").code, Some(DISCONNECTED));
            // A session that ended unopened is not waited for.
            let started = std::time::Instant::now();
            assert!(!shell.opened_by(started + Duration::from_secs(10)));
            assert!(started.elapsed() < Duration::from_secs(3));
        }
    }

    /// A session is open once the master says so; a master that says
    /// nothing (its host gone quiet) is given up at the deadline. A master
    /// is asked to take no more sessions, or to end, as `ssh -O stop` and
    /// `ssh -O exit` ask it.
    #[test]
    fn a_session_is_open_once_the_master_says_so_and_a_master_is_told_to_stop() {
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        for says_open in [true, false] {
            let path = dir.path().join(format!("master-{says_open}"));
            let listener = UnixListener::bind(&path).unwrap();
            let (done, finish) = std::sync::mpsc::channel::<()>();
            let master = std::thread::spawn(move || {
                let (mut stream, _) = listener.accept().unwrap();
                read_packet(&mut stream).unwrap();
                read_packet(&mut stream).unwrap();
                let mut fds = [0u8; 3];
                stream.read_exact(&mut fds).unwrap();
                let mut reply = hello();
                if says_open {
                    reply.extend(Packet::default().u32(SESSION_OPENED).u32(REQUEST).framed());
                }
                stream.write_all(&reply).unwrap();
                // The connection stays open until the test is done with it.
                let _ = finish.recv();
            });
            let (mut shell, _streams) = session(&path, "sh -s").unwrap();
            let started = std::time::Instant::now();
            let deadline = started + Duration::from_millis(300);
            assert_eq!(shell.opened_by(deadline), says_open);
            assert!(started.elapsed() < Duration::from_secs(3));
            if !says_open {
                assert!(started.elapsed() >= Duration::from_millis(300));
            }
            drop(done);
            master.join().unwrap();
        }

        for (tell, kind) in [
            (stop_listening as fn(&Path), STOP_LISTENING),
            (exit, TERMINATE),
        ] {
            let path = dir.path().join(format!("master-told-{kind}"));
            let listener = UnixListener::bind(&path).unwrap();
            let master = std::thread::spawn(move || {
                let (mut stream, _) = listener.accept().unwrap();
                assert_eq!(word(&read_packet(&mut stream).unwrap(), 0), Some(HELLO));
                let request = read_packet(&mut stream).unwrap();
                assert_eq!(
                    [word(&request, 0), word(&request, 1)],
                    [Some(kind), Some(REQUEST)]
                );
                let mut reply = hello();
                reply.extend(Packet::default().u32(0x8000_0001).u32(REQUEST).framed());
                stream.write_all(&reply).unwrap();
            });
            tell(&path);
            master.join().unwrap();
        }
        // Nobody there: nothing waits.
        stop_listening(&dir.path().join("gone"));
    }
}
