//! The HTTP client of `hello probe`, which deploy hooks use to check the
//! service: one `GET`, with `Connection: close`, within a time limit.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::find;

/// The largest response the probe reads, so that a misbehaving server cannot
/// exhaust memory.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// A URL the probe can fetch: `http://HOST:PORT/PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// The host as written, for the `Host` header.
    authority: String,
    /// The host to connect to, without the brackets of an IPv6 literal.
    host: String,
    port: u16,
    path: String,
}

/// Parses a probe URL. The probe speaks plain HTTP to a known port, so the
/// scheme and port are required rather than guessed.
pub(crate) fn parse_url(url: &str) -> Result<Url, String> {
    // Whitespace or control characters would end up inside the request line
    // or the `Host` header.
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("url must not contain spaces or control characters".to_owned());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(if url.starts_with("https://") {
            "https is not supported, use http://HOST:PORT/PATH".to_owned()
        } else {
            "url must have the form http://HOST:PORT/PATH".to_owned()
        });
    };
    let (authority, path) = rest
        .find('/')
        .map_or((rest, "/"), |slash| rest.split_at(slash));
    if authority.contains(['@', '?', '#']) {
        return Err("url must have the form http://HOST:PORT/PATH".to_owned());
    }
    let Some((host, port)) = authority.rsplit_once(':') else {
        return Err("url must name a port, as in http://HOST:PORT/PATH".to_owned());
    };
    let host = host
        .strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err("url must name a host, as in http://HOST:PORT/PATH".to_owned());
    }
    // Only plain digits are accepted: `u16`'s parser would also take a sign.
    let port = Some(port)
        .filter(|port| port.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|port| port.parse::<u16>().ok())
        .filter(|&port| port != 0)
        .ok_or_else(|| format!("invalid port `{port}`"))?;
    let path = path.split_once('#').map_or(path, |(path, _)| path);
    Ok(Url {
        authority: authority.to_owned(),
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

/// A response the probe received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// Fetches `url`. The timeout bounds the whole exchange (connecting, sending
/// and reading), not each step, because a health check must give an answer
/// within a known time even against a server that trickles its response.
/// Name resolution is the one step it cannot bound, since std offers no
/// timeout for it.
pub(crate) fn probe(url: &Url, timeout: Duration) -> io::Result<Reply> {
    let deadline = Instant::now() + timeout;
    let mut stream = connect(url, deadline)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: hello/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path,
        url.authority,
        env!("CARGO_PKG_VERSION")
    );
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    stream
        .write_all(request.as_bytes())
        .map_err(|err| timed_out_or(&err, "sending the request"))?;

    let mut raw = Vec::new();
    let mut chunk = [0; 8192];
    loop {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        let read = match stream.read(&mut chunk) {
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(timed_out_or(&err, "reading the response")),
        };
        raw.extend_from_slice(&chunk[..read]);
        if raw.len() > MAX_RESPONSE {
            return Err(invalid_data("the response is larger than 16 MiB"));
        }
        // A server may keep the connection open despite `Connection: close`,
        // so the response ends when its framing says so, not only at EOF.
        if let Some(reply) = parse_response(&raw, read == 0)? {
            return Ok(reply);
        }
    }
}

/// Connects to the first address of `url` that accepts before `deadline`.
fn connect(url: &Url, deadline: Instant) -> io::Result<TcpStream> {
    let context = |err: io::Error| {
        io::Error::new(
            err.kind(),
            format!("cannot connect to {}: {err}", url.authority),
        )
    };
    let addresses = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(context)?;
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, remaining(deadline)?) {
            Ok(stream) => return Ok(stream),
            Err(err) => last_error = Some(err),
        }
    }
    Err(context(last_error.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "no addresses found")
    })))
}

/// The time left before `deadline`, or a timeout error if there is none.
/// Zero counts as none because std rejects a zero socket timeout.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "timed out"))
}

/// Gives a socket timeout a readable message: on Unix it surfaces as
/// `WouldBlock`, whose text ("resource temporarily unavailable") misleads.
fn timed_out_or(err: &io::Error, doing: &str) -> io::Error {
    if matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        io::Error::new(io::ErrorKind::TimedOut, format!("timed out {doing}"))
    } else {
        io::Error::new(err.kind(), format!("error {doing}: {err}"))
    }
}

fn invalid_data(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// Parses a response from the bytes received so far. Returns `None` while
/// more bytes are needed; `eof` says that no more will come.
fn parse_response(raw: &[u8], eof: bool) -> io::Result<Option<Reply>> {
    let incomplete = |what: &str| {
        if eof {
            Err(invalid_data(&format!(
                "the connection closed before the end of the {what}"
            )))
        } else {
            Ok(None)
        }
    };
    let Some(head_end) = find(raw, b"\r\n\r\n") else {
        return incomplete("response headers");
    };
    let head = std::str::from_utf8(&raw[..head_end])
        .map_err(|_| invalid_data("the response headers are not utf-8"))?;
    let rest = &raw[head_end + 4..];

    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let status = match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") && code.len() == 3 => {
            code.parse::<u16>().ok()
        }
        _ => None,
    }
    .filter(|code| (100..1000).contains(code))
    .ok_or_else(|| invalid_data(&format!("invalid status line `{status_line}`")))?;

    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid_data(&format!("invalid header line `{line}`")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = value
                .parse::<usize>()
                .map_err(|_| invalid_data(&format!("invalid content-length `{value}`")))?;
            length = Some(parsed);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked, when used, is always the last coding applied.
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
        }
    }

    // Framing follows RFC 9112, section 6.3: no body for 1xx, 204 and 304,
    // then chunked, then Content-Length, then everything up to EOF.
    let body = if (100..200).contains(&status) || status == 204 || status == 304 {
        Some(Vec::new())
    } else if chunked {
        decode_chunked(rest)?
    } else if let Some(length) = length {
        rest.get(..length).map(<[u8]>::to_vec)
    } else if eof {
        Some(rest.to_vec())
    } else {
        None
    };
    match body {
        Some(body) => Ok(Some(Reply { status, body })),
        None => incomplete("response body"),
    }
}

/// Decodes a chunked body, or returns `None` if it has not all arrived yet.
fn decode_chunked(data: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    let mut position = 0;
    loop {
        let Some(line_length) = find(&data[position..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[position..position + line_length])
            .map_err(|_| invalid_data("invalid chunk size line"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid_data(&format!("invalid chunk size `{size_text}`")))?;
        position += line_length + 2;
        if size == 0 {
            // Trailer fields may follow the last chunk; the body is complete
            // once the blank line that ends them has arrived.
            let trailers = &data[position..];
            let complete = trailers.starts_with(b"\r\n") || find(trailers, b"\r\n\r\n").is_some();
            return Ok(complete.then_some(body));
        }
        if data.len() - position < size.saturating_add(2) {
            return Ok(None);
        }
        let end = position + size;
        if &data[end..end + 2] != b"\r\n" {
            return Err(invalid_data("a chunk does not end with CRLF"));
        }
        body.extend_from_slice(&data[position..end]);
        position = end + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn probe_reports_a_refused_connection() {
        // Binding and then dropping a listener yields a closed port: the
        // kernel hands out ephemeral ports in turn, so no other test gets it
        // back in the moment before the probe.
        let address = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let url = parse_url(&format!("http://{address}/health")).unwrap();
        let err = probe(&url, Duration::from_secs(2)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot connect to {address}: ")),
            "{err}"
        );
    }

    #[test]
    fn parses_urls() {
        let url = parse_url("http://127.0.0.1:8081/health?x=1").unwrap();
        assert_eq!(
            url,
            Url {
                authority: "127.0.0.1:8081".to_owned(),
                host: "127.0.0.1".to_owned(),
                port: 8081,
                path: "/health?x=1".to_owned(),
            }
        );
        let url = parse_url("http://[::1]:80").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("::1", 80, "/")
        );
        for bad in [
            "https://127.0.0.1:1/",
            "127.0.0.1:1/",
            "http://127.0.0.1/",
            "http://:80/",
            "http://host:0/",
            "http://host:+80/",
            "http://host:99999/",
            "http://user@host:1/",
            "http://host:1/a b",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn parses_framed_responses() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\nextra";
        assert_eq!(
            parse_response(full, false).unwrap(),
            Some(Reply {
                status: 200,
                body: b"ok\n".to_vec()
            })
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok", false).unwrap(),
            None
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok", true).is_err());

        let chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nunhe\r\n6\r\nalthy\n\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked, false).unwrap(),
            Some(Reply {
                status: 503,
                body: b"unhealthy\n".to_vec()
            })
        );
        assert_eq!(
            parse_response(&chunked[..chunked.len() - 2], false).unwrap(),
            None
        );

        let unframed = b"HTTP/1.0 200 OK\r\n\r\nuntil eof";
        assert_eq!(parse_response(unframed, false).unwrap(), None);
        assert_eq!(
            parse_response(unframed, true).unwrap().unwrap().body,
            b"until eof"
        );
        assert!(parse_response(b"SMTP 220 hi\r\n\r\n", true).is_err());
    }
}
