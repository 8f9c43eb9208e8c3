//! A real reverse proxy (Debian's `haproxy`) for tests of the checks judged
//! from outside the hosts, which go through one as a user's would: one HTTP
//! frontend per route, each passing every request to one backend.
//!
//! The backend has no health check, and a refused connection is not tried
//! again (`retries 0`): a backend that is down makes the client's request
//! answered `503 Service Unavailable` at once, as a proxy in front of a
//! stopped service does, rather than held while haproxy makes up its mind.
//! Timeouts are short (a second to connect, ten to read or write), so that
//! a test that goes wrong ends soon. haproxy runs in the foreground and
//! logs each request (`option httplog`) on its stdout, which is kept for
//! errors.
//!
//! haproxy says nothing once it listens, so it is ready when every
//! frontend accepts a connection, within a deadline. Its frontends bind
//! without `SO_REUSEPORT` (`noreuseport`), so that an address in use is an
//! error at start rather than shared with whatever listens there.

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::server::{Server, TempDir};

/// How long haproxy may take to listen on every frontend.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A running haproxy, stopped on drop.
#[derive(Debug)]
pub struct Haproxy {
    frontends: Vec<SocketAddr>,
    server: Server,
}

impl Haproxy {
    /// Starts haproxy with a frontend on the first address of each of
    /// `routes` that passes every request to the second, and waits until
    /// every frontend accepts connections.
    pub fn start(routes: &[(SocketAddr, SocketAddr)]) -> Result<Haproxy> {
        let binary = crate::prerequisites::needed("haproxy")?;
        for (frontend, _) in routes {
            // Said plainly here, rather than found in haproxy's log.
            TcpListener::bind(frontend)
                .with_context(|| format!("haproxy's frontend `{frontend}` is not free"))?;
        }
        let dir = TempDir::new("haproxy")?;
        let config = dir.path().join("haproxy.cfg");
        fs::write(&config, config_text(routes))
            .with_context(|| format!("cannot write `{}`", config.display()))?;
        let mut command = Command::new(binary);
        command.arg("-db").arg("-f").arg(&config);
        let mut server = Server::start("haproxy", dir, &mut command)?;
        let deadline = Instant::now() + START_DEADLINE;
        for (frontend, _) in routes {
            while TcpStream::connect_timeout(frontend, Duration::from_secs(1)).is_err() {
                server.check_running()?;
                if Instant::now() >= deadline {
                    bail!(
                        "haproxy did not listen on `{frontend}` within {START_DEADLINE:?}:\n{}",
                        server.log()
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // A frontend that failed to bind ends haproxy, whatever accepted.
        server.check_running()?;
        Ok(Haproxy {
            frontends: routes.iter().map(|(frontend, _)| *frontend).collect(),
            server,
        })
    }

    /// The address of the frontend of route `i`, in the order given.
    pub fn frontend(&self, i: usize) -> SocketAddr {
        self.frontends[i]
    }

    /// The last lines haproxy logged: a line per request.
    pub fn log(&self) -> String {
        self.server.log()
    }
}

/// An address as haproxy's `bind` and `server` read it.
fn haproxy_address(address: SocketAddr) -> String {
    match address {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => format!("ipv6@{}:{}", v6.ip(), v6.port()),
    }
}

/// The configuration: a frontend and a backend per route.
fn config_text(routes: &[(SocketAddr, SocketAddr)]) -> String {
    let mut text = String::from(
        "# Written by landfall's test bed.\n\
         global\n    log stdout format raw local0 info\n    noreuseport\n\n\
         defaults\n    mode http\n    log global\n    option httplog\n    \
         option dontlognull\n    retries 0\n    timeout connect 1s\n    \
         timeout client 10s\n    timeout server 10s\n",
    );
    for (i, (frontend, backend)) in routes.iter().enumerate() {
        let _ = write!(
            text,
            "\nfrontend route{i}\n    bind {}\n    default_backend backend{i}\n\
             \nbackend backend{i}\n    server server{i} {}\n",
            haproxy_address(*frontend),
            haproxy_address(*backend)
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_has_a_frontend_and_an_unchecked_backend_per_route() {
        let text = config_text(&[
            (
                "127.1.2.3:8080".parse().unwrap(),
                "127.1.2.4:8081".parse().unwrap(),
            ),
            ("[::1]:8082".parse().unwrap(), "[::1]:8083".parse().unwrap()),
        ]);
        assert!(
            text.contains(
                "\nfrontend route0\n    bind 127.1.2.3:8080\n    default_backend backend0\n\
                 \nbackend backend0\n    server server0 127.1.2.4:8081\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("    bind ipv6@::1:8082\n") && text.contains(" server1 ipv6@::1:8083\n"),
            "{text}"
        );
        assert!(!text.contains("check"), "{text}");
        assert!(
            text.contains("    retries 0\n    timeout connect 1s\n"),
            "{text}"
        );
    }
}
