//! The listening socket, and the stop that ends the wait on it.
//!
//! A deploy may start the new release's service beside the old one, on the
//! same address, and stop the old one only once the new one is ready. For
//! that, both must listen at once:
//!
//! - A socket handed over by a service manager (systemd's `LISTEN_FDS`) is
//!   already shared by the manager and by every instance it starts. An
//!   instance that stops must not shut that socket down, only stop
//!   accepting and close its own descriptor.
//! - Without a manager that holds the socket, each instance binds the
//!   address itself with `SO_REUSEPORT`, so that the second bind succeeds
//!   while the first still listens. The kernel would spread new connections
//!   over the sockets of the group, and reset those queued on one that
//!   closes (unless the sysctl `net.ipv4.tcp_migrate_req` is 1). So each
//!   instance, once it listens (it is ready then), steers every new
//!   connection to itself, the newest (see [`steer_to_newest`]); the old
//!   one, told to stop, accepts what is left in its queue, to which nothing
//!   new comes, and closes losing nothing.
//!
//! A stopping instance must stop accepting at once. A blocking `accept` can
//! only be woken by a connection, and with two instances on one address a
//! connection made to wake one may well land in the other; so the accept
//! loop waits with `poll` on the listener and on a pipe, and a stop writes
//! to the pipe.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use socket2::{Domain, Protocol, Socket, Type};

/// How many connections the kernel queues for the service before it refuses
/// more; a restart, when the new instance is still warming up and the old
/// one is busy, is when the queue fills.
const BACKLOG: i32 = 1024;

/// Binds `address` (`HOST:PORT`, the host resolved if it is a name) so that
/// another instance of the service can bind it too, trying each address the
/// host resolves to in turn, as std's `TcpListener::bind` does.
pub(crate) fn bind(address: &str) -> io::Result<TcpListener> {
    let mut last_error = None;
    for address in address.to_socket_addrs()? {
        match bind_one(address) {
            Ok(listener) => return Ok(listener),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host has no address")))
}

/// Binds one address with `SO_REUSEADDR`, as std does, and `SO_REUSEPORT`.
/// An IPv6 socket keeps the system's default for `IPV6_V6ONLY`, as std's
/// does too.
fn bind_one(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    steer_to_newest(&socket)?;
    Ok(socket.into())
}

/// Makes the kernel give every new connection to the address of `socket`
/// to the socket that joined its `SO_REUSEPORT` group last: a classic BPF
/// program of one instruction, `return 1`, the index of the second socket
/// of the group. The program belongs to the group, and each instance that
/// listens puts it there again. While two instances listen, the one that
/// joined second, the new one, gets every new connection; alone, the
/// index is past the end of the group, and the kernel picks the only
/// socket there is.
fn steer_to_newest(socket: &Socket) -> io::Result<()> {
    let mut program = [libc::sock_filter {
        code: u16::try_from(libc::BPF_RET | libc::BPF_K).expect("a BPF opcode fits in 16 bits"),
        jt: 0,
        jf: 0,
        k: 1,
    }];
    let program = libc::sock_fprog {
        len: 1,
        filter: program.as_mut_ptr(),
    };
    nix::sys::socket::setsockopt(
        socket,
        nix::sys::socket::sockopt::AttachReusePortCbpf,
        &program,
    )
    .map_err(io::Error::from)
}

/// A request to stop, which the accept loop and the warm-up see at once.
///
/// The flag is for whoever asks between waits; the pipe wakes whoever is
/// waiting. The pipe is written once and never read, so that it stays
/// readable and every later wait ends at once too.
#[derive(Debug)]
pub(crate) struct Stop {
    requested: AtomicBool,
    readable: OwnedFd,
    writable: OwnedFd,
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// The listener has a connection to accept (or, shared with another
    /// process, had one that the other may have taken first).
    Connection,
    Stop,
    TimedOut,
}

impl Stop {
    pub(crate) fn new() -> io::Result<Stop> {
        let (readable, writable) = rustix::pipe::pipe()?;
        for fd in [&readable, &writable] {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
        }
        Ok(Stop {
            requested: AtomicBool::new(false),
            readable,
            writable,
        })
    }

    /// Asks to stop. Only the first request writes to the pipe, so the
    /// write, of one byte into an empty pipe, cannot block.
    pub(crate) fn request(&self) {
        if !self.requested.swap(true, Ordering::SeqCst) {
            loop {
                match rustix::io::write(&self.writable, &[1]) {
                    Err(rustix::io::Errno::INTR) => {}
                    Ok(_) => break,
                    Err(err) => {
                        // Nothing can fail writing one byte into a pipe this
                        // process holds both ends of; should it, the flag
                        // alone is still seen at the next wake-up.
                        eprintln!("hello: cannot wake the accept loop: {err}");
                        break;
                    }
                }
            }
        }
    }

    pub(crate) fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Waits for `duration`, or less if a stop is requested meanwhile.
    pub(crate) fn sleep(&self, duration: Duration) -> Woken {
        match self.wait(None, Some(duration)) {
            Ok(woken) => woken,
            Err(err) => {
                // Without a working poll, a plain sleep still waits as long;
                // a stop meanwhile is seen when it ends.
                eprintln!("hello: cannot wait for a stop: {err}");
                std::thread::sleep(duration);
                if self.requested() {
                    Woken::Stop
                } else {
                    Woken::TimedOut
                }
            }
        }
    }

    /// Waits until `listener` has a connection to accept or a stop is
    /// requested, at most `timeout` if one is given. A stop wins over a
    /// connection: the connection stays queued on the socket, for whoever
    /// else listens on it.
    pub(crate) fn wait(
        &self,
        listener: Option<&TcpListener>,
        timeout: Option<Duration>,
    ) -> io::Result<Woken> {
        // A timeout too long for the clock is as good as none.
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        loop {
            if self.requested() {
                return Ok(Woken::Stop);
            }
            let left = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(
                        Timespec::try_from(left)
                            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
                    ),
                    _ => return Ok(Woken::TimedOut),
                },
                None => None,
            };
            let mut fds = vec![PollFd::new(&self.readable, PollFlags::IN)];
            if let Some(listener) = listener {
                fds.push(PollFd::new(listener, PollFlags::IN));
            }
            match rustix::event::poll(&mut fds, left.as_ref()) {
                // A signal handled meanwhile (the one that asks to stop, for
                // one) interrupts the wait; the loop looks again.
                Err(rustix::io::Errno::INTR) => continue,
                Err(err) => return Err(err.into()),
                Ok(_) => {}
            }
            if !fds[0].revents().is_empty() {
                return Ok(Woken::Stop);
            }
            if fds.get(1).is_some_and(|fd| !fd.revents().is_empty()) {
                return Ok(Woken::Connection);
            }
            // Nothing is ready: the timeout passed, which the next turn
            // sees.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;
    use std::sync::Arc;

    #[test]
    fn a_second_instance_binds_the_same_address() {
        let first = bind("127.77.1.1:0").unwrap();
        let address = first.local_addr().unwrap();
        let second = bind(&address.to_string()).unwrap();
        assert_eq!(second.local_addr().unwrap(), address);
        // A socket bound without SO_REUSEPORT, such as std's, cannot join.
        let err = TcpListener::bind(address).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    }

    #[test]
    fn binds_ipv6_too() {
        let listener = bind("[::1]:0").unwrap();
        let address = listener.local_addr().unwrap();
        assert!(address.is_ipv6(), "{address}");
        bind(&address.to_string()).unwrap();
    }

    #[test]
    fn a_wait_ends_on_a_connection_a_stop_or_its_timeout() {
        let listener = bind("127.77.1.2:0").unwrap();
        let stop = Stop::new().unwrap();
        let short = Some(Duration::from_millis(10));
        assert_eq!(stop.wait(Some(&listener), short).unwrap(), Woken::TimedOut);
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let long = Some(Duration::from_secs(10));
        assert_eq!(stop.wait(Some(&listener), long).unwrap(), Woken::Connection);
        stop.request();
        stop.request();
        // The stop wins over the connection still queued, every time.
        assert_eq!(stop.wait(Some(&listener), long).unwrap(), Woken::Stop);
        assert_eq!(stop.wait(Some(&listener), None).unwrap(), Woken::Stop);
    }

    #[test]
    fn a_stop_cuts_a_sleep_short() {
        let stop = Arc::new(Stop::new().unwrap());
        assert_eq!(stop.sleep(Duration::from_millis(1)), Woken::TimedOut);
        let started = Instant::now();
        let sleeper = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || stop.sleep(Duration::from_secs(50)))
        };
        stop.request();
        assert_eq!(sleeper.join().unwrap(), Woken::Stop);
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}
