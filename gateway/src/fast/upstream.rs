//! The fast path's side of a back-end: the idle connections, and one exchange (the request
//! written in one write, the response read, filtered and streamed to the client as it
//! arrives).
//!
//! The pool is one list behind a mutex held for a push or a pop: taking and returning a
//! connection spawns no task and makes no system call (a connection's liveness is read from the
//! readiness the runtime already has). It is not per thread: on pingora's work-stealing runtime
//! a request often ends on another thread than it began, and per-thread lists then fill on one
//! thread while the other keeps connecting (measured: a new back-end connection for one request
//! in a hundred).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Buf as _, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::Version;
use pingora::http::ResponseHeader;
use pingora::protocols::Stream;
use pingora::{Error, ErrorType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::chunked::{self, Dechunk};

/// Idle connections kept, over every back-end.
const MAX_IDLE: usize = 1024;
/// The longest response head accepted from a back-end.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// The most response headers accepted from a back-end.
const MAX_RESPONSE_HEADERS: usize = 128;
/// What one read from a back-end may bring.
const READ_SIZE: usize = 16 * 1024;

struct Idle {
    addr: SocketAddr,
    stream: TcpStream,
    since: Instant,
}

static IDLE: Mutex<Vec<Idle>> = Mutex::new(Vec::new());

fn idle() -> std::sync::MutexGuard<'static, Vec<Idle>> {
    // A panic while holding it cannot leave the list inconsistent (push and remove only).
    IDLE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A live idle connection to `addr`, the most recently used first.
fn take(addr: SocketAddr, max_idle: Duration) -> Option<TcpStream> {
    let mut dead = Vec::new();
    let found = {
        let mut idle = idle();
        let mut found = None;
        while let Some(i) = idle.iter().rposition(|c| c.addr == addr) {
            let c = idle.swap_remove(i);
            if c.since.elapsed() < max_idle && alive(&c.stream) {
                found = Some(c.stream);
                break;
            }
            dead.push(c);
        }
        found
    };
    // Closed outside the lock.
    drop(dead);
    found
}

/// Keeps `stream` for the next request to `addr`.
fn put(addr: SocketAddr, stream: TcpStream, max_idle: Duration) {
    let now = Instant::now();
    let mut gone = Vec::new();
    {
        let mut idle = idle();
        if idle
            .first()
            .is_some_and(|c| now.duration_since(c.since) >= max_idle)
        {
            let (stale, kept): (Vec<Idle>, Vec<Idle>) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|c| now.duration_since(c.since) >= max_idle);
            *idle = kept;
            gone = stale;
        }
        if idle.len() >= MAX_IDLE {
            gone.push(idle.remove(0));
        }
        idle.push(Idle {
            addr,
            stream,
            since: now,
        });
    }
    drop(gone);
}

/// An idle connection is alive when it has nothing to read: a back-end that closed it (or sent
/// bytes nobody asked for) makes it readable. No system call unless the socket became readable.
fn alive(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// The buffers of one client connection's exchanges, kept from request to request.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// What the back-end sent.
    up: BytesMut,
    /// What goes to the client next.
    out: Vec<u8>,
}

/// Where a back-end is and how long to wait for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) idle_timeout: Duration,
}

impl Upstream {
    /// The fast path reaches plain-HTTP back-ends at an IP address, without a proxy or a bound
    /// source address; every other peer is pingora's.
    pub(crate) fn of(peer: &pingora::prelude::HttpPeer) -> Option<Self> {
        if peer.is_tls() || peer.proxy.is_some() || peer.options.bind_to.is_some() {
            return None;
        }
        let addr = *peer._address.as_inet()?;
        let o = &peer.options;
        let connect = o.connection_timeout.unwrap_or(Duration::from_secs(3));
        Some(Self {
            addr,
            connect_timeout: o.total_connection_timeout.unwrap_or(connect).min(connect),
            read_timeout: o.read_timeout.unwrap_or(Duration::from_secs(60)),
            write_timeout: o.write_timeout.unwrap_or(Duration::from_secs(60)),
            idle_timeout: o.idle_timeout.unwrap_or(Duration::from_secs(60)),
        })
    }
}

/// How an exchange ended badly.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Before anything was sent to the client: it gets the error page.
    BeforeResponse(Box<Error>),
    /// After the response head went out (a truncated or malformed body): the connection closes.
    DuringResponse {
        /// The status already sent.
        status: u16,
        /// Why.
        error: Box<Error>,
    },
    /// The client went away or stopped reading: nothing to answer.
    Client(u16),
}

fn upstream(etype: ErrorType, context: &'static str) -> Box<Error> {
    Error::explain(etype, context).into_up()
}

/// The response head as the client gets it, and what its body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    None,
    Length(u64),
    Chunked,
    UntilClose,
    /// A transfer coding that does not end in chunked: the body lasts until the back-end
    /// closes (RFC 9112 §6.3), and goes to the client as it is, on a connection that then
    /// closes, as pingora forwards it.
    CodedUntilClose,
}

/// What the connection to the client does after the exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    /// The status the client got.
    pub(crate) status: u16,
    /// The client's connection must close (its response ended with the connection).
    pub(crate) close: bool,
}

/// Sends `wire` (a request without a body) to `to` and streams the response to `down`.
/// `filter` edits each response head before it goes out (varco's response policy);
/// `keepalive` says what the client connection does next, for the `Connection` header.
pub(crate) async fn exchange(
    down: &mut Stream,
    scratch: &mut Scratch,
    wire: &[u8],
    to: Upstream,
    head_request: bool,
    keepalive: bool,
    mut filter: impl FnMut(&mut ResponseHeader) -> pingora::Result<()>,
) -> Result<Sent, Failure> {
    let Scratch { up: buf, out } = scratch;
    buf.clear();
    out.clear();
    let mut up = send(wire, to, buf).await?;
    // The head, after any interim (1xx) responses, which go to the client as they come.
    let (status, body, reusable, close) = loop {
        let (len, resp) = read_head(&mut up, buf, to).await?;
        buf.advance(len);
        let status = resp.status.as_u16();
        if status == 101 {
            return Err(Failure::BeforeResponse(upstream(
                ErrorType::InvalidHTTPHeader,
                "101 to a request that asked for no upgrade",
            )));
        }
        let mut resp = resp;
        if resp.status.is_informational() {
            filter(&mut resp).map_err(Failure::BeforeResponse)?;
            out.clear();
            serialize(&resp, out);
            write_out(down, out).await.map_err(|_| Failure::Client(0))?;
            continue;
        }
        let body = framing(&resp, head_request).map_err(Failure::BeforeResponse)?;
        let reusable = !matches!(body, Body::UntilClose | Body::CodedUntilClose)
            && resp.version == Version::HTTP_11
            && !has_token(&resp, CONNECTION, "close");
        if body == Body::Chunked {
            resp.remove_header(&CONTENT_LENGTH);
        }
        if body == Body::UntilClose {
            // The client hears the end from a last chunk, so its connection stays usable.
            resp.set_version(Version::HTTP_11);
            resp.insert_header(TRANSFER_ENCODING, "chunked")
                .map_err(Failure::BeforeResponse)?;
        }
        filter(&mut resp).map_err(Failure::BeforeResponse)?;
        resp.insert_header(DATE, pingora::protocols::http::date::get_cached_date())
            .map_err(Failure::BeforeResponse)?;
        let keepalive = keepalive && body != Body::CodedUntilClose;
        resp.insert_header(CONNECTION, if keepalive { "keep-alive" } else { "close" })
            .map_err(Failure::BeforeResponse)?;
        out.clear();
        serialize(&resp, out);
        break (status, body, reusable, !keepalive);
    };
    let during = |error| Failure::DuringResponse { status, error };
    let client_gone = |_| Failure::Client(status);
    match body {
        Body::None => {
            write_out(down, out).await.map_err(client_gone)?;
            if buf.is_empty() && reusable {
                put(to.addr, up, to.idle_timeout);
            }
        }
        Body::Length(mut left) => {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            out.extend_from_slice(&buf[..n]);
            buf.advance(n);
            left -= n as u64;
            // Bytes past the body: the back-end spoke out of turn, the connection is not reused.
            let overread = !buf.is_empty();
            write_out(down, out).await.map_err(client_gone)?;
            while left > 0 {
                buf.clear();
                let want = usize::try_from(left).unwrap_or(usize::MAX).min(READ_SIZE);
                let n = read_some(&mut up, buf, want, to).await.map_err(during)?;
                if n == 0 {
                    return Err(during(upstream(
                        ErrorType::ConnectionClosed,
                        "the back-end closed before the end of the body",
                    )));
                }
                left -= n as u64;
                write_out(down, buf).await.map_err(client_gone)?;
            }
            // Reads never ask for more than is left of the body.
            if reusable && !overread {
                put(to.addr, up, to.idle_timeout);
            }
        }
        Body::Chunked => {
            let mut dechunk = Dechunk::default();
            loop {
                let Ok(used) = dechunk.feed(buf, out) else {
                    // What was good goes out (the head, as pingora sends it), then the end.
                    let _ = write_out(down, out).await;
                    return Err(during(upstream(ErrorType::InvalidHTTPHeader, "bad chunk")));
                };
                buf.advance(used);
                write_out(down, out).await.map_err(client_gone)?;
                out.clear();
                if dechunk.done() {
                    break;
                }
                buf.clear();
                if read_some(&mut up, buf, READ_SIZE, to)
                    .await
                    .map_err(during)?
                    == 0
                {
                    return Err(during(upstream(
                        ErrorType::ConnectionClosed,
                        "the back-end closed before the last chunk",
                    )));
                }
            }
            if buf.is_empty() && reusable {
                put(to.addr, up, to.idle_timeout);
            }
        }
        Body::CodedUntilClose => {
            out.extend_from_slice(buf);
            write_out(down, out).await.map_err(client_gone)?;
            loop {
                buf.clear();
                if read_some(&mut up, buf, READ_SIZE, to)
                    .await
                    .map_err(during)?
                    == 0
                {
                    break;
                }
                write_out(down, buf).await.map_err(client_gone)?;
            }
        }
        Body::UntilClose => {
            chunked::encode(buf, out);
            write_out(down, out).await.map_err(client_gone)?;
            loop {
                buf.clear();
                let n = read_some(&mut up, buf, READ_SIZE, to)
                    .await
                    .map_err(during)?;
                out.clear();
                if n == 0 {
                    out.extend_from_slice(chunked::LAST_CHUNK);
                    write_out(down, out).await.map_err(client_gone)?;
                    break;
                }
                chunked::encode(buf, out);
                write_out(down, out).await.map_err(client_gone)?;
            }
        }
    }
    Ok(Sent { status, close })
}

/// Writes the request on a pooled connection, or a new one; a pooled connection that turns out
/// closed (before any byte of a response) is replaced, as pingora retries a reused one.
async fn send(wire: &[u8], to: Upstream, buf: &mut BytesMut) -> Result<TcpStream, Failure> {
    loop {
        let (mut up, reused) = match take(to.addr, to.idle_timeout) {
            Some(s) => (s, true),
            None => (connect(to).await?, false),
        };
        match tokio::time::timeout(to.write_timeout, up.write_all(wire)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) if reused => continue,
            Ok(Err(_)) => {
                return Err(Failure::BeforeResponse(upstream(
                    ErrorType::WriteError,
                    "writing the request to the back-end",
                )))
            }
            Err(_) => {
                return Err(Failure::BeforeResponse(upstream(
                    ErrorType::WriteTimedout,
                    "writing the request to the back-end",
                )))
            }
        }
        match read_some(&mut up, buf, READ_SIZE, to).await {
            Ok(0) | Err(_) if reused && buf.is_empty() => continue,
            Ok(0) => {
                return Err(Failure::BeforeResponse(upstream(
                    ErrorType::ConnectionClosed,
                    "the back-end closed without an answer",
                )))
            }
            Ok(_) => return Ok(up),
            Err(e) => return Err(Failure::BeforeResponse(e)),
        }
    }
}

async fn connect(to: Upstream) -> Result<TcpStream, Failure> {
    match tokio::time::timeout(to.connect_timeout, TcpStream::connect(to.addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => {
            let etype = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                ErrorType::ConnectRefused
            } else {
                ErrorType::ConnectError
            };
            Err(Failure::BeforeResponse(
                Error::because(etype, "connecting to the back-end", e).into_up(),
            ))
        }
        Err(_) => Err(Failure::BeforeResponse(upstream(
            ErrorType::ConnectTimedout,
            "connecting to the back-end",
        ))),
    }
}

/// One read of at most `want` bytes, appended to `buf`, within the read timeout.
async fn read_some(
    up: &mut TcpStream,
    buf: &mut BytesMut,
    want: usize,
    to: Upstream,
) -> Result<usize, Box<Error>> {
    buf.reserve(want);
    let mut limited = (&mut *up).take(want as u64);
    match tokio::time::timeout(to.read_timeout, limited.read_buf(buf)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => {
            Err(Error::because(ErrorType::ReadError, "reading from the back-end", e).into_up())
        }
        Err(_) => Err(upstream(
            ErrorType::ReadTimedout,
            "waiting for the back-end",
        )),
    }
}

/// Reads until `buf` holds a whole response head; returns its length and the head, built as
/// pingora builds it.
async fn read_head(
    up: &mut TcpStream,
    buf: &mut BytesMut,
    to: Upstream,
) -> Result<(usize, ResponseHeader), Failure> {
    loop {
        if !buf.is_empty() {
            if let Some(parsed) = parse_response(buf).map_err(Failure::BeforeResponse)? {
                return Ok(parsed);
            }
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(Failure::BeforeResponse(upstream(
                ErrorType::InvalidHTTPHeader,
                "the back-end's response head is too long",
            )));
        }
        match read_some(up, buf, READ_SIZE, to).await {
            Ok(0) => {
                return Err(Failure::BeforeResponse(upstream(
                    ErrorType::ConnectionClosed,
                    "the back-end closed within the response head",
                )))
            }
            Ok(_) => {}
            Err(e) => return Err(Failure::BeforeResponse(e)),
        }
    }
}

/// A response head from `buf`: `None` while incomplete.
fn parse_response(buf: &[u8]) -> pingora::Result<Option<(usize, ResponseHeader)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(Error::because(
                ErrorType::InvalidHTTPHeader,
                "the back-end's response head",
                e,
            )
            .into_up())
        }
    };
    let (Some(code), Some(version)) = (resp.code, resp.version) else {
        return Err(upstream(ErrorType::InvalidHTTPHeader, "no status line"));
    };
    let mut head =
        ResponseHeader::build(code, Some(resp.headers.len())).map_err(|e| e.into_up())?;
    head.set_version(if version == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    });
    head.set_reason_phrase(resp.reason)
        .map_err(|e| e.into_up())?;
    for h in resp.headers.iter() {
        let value = http::HeaderValue::from_bytes(h.value)
            .map_err(|_| upstream(ErrorType::InvalidHTTPHeader, "a header value"))?;
        head.append_header(bytes::Bytes::copy_from_slice(h.name.as_bytes()), value)
            .map_err(|e| e.into_up())?;
    }
    Ok(Some((len, head)))
}

/// How the body of `resp` is framed (RFC 9112 §6.3). Refused: lengths that disagree or are not
/// digits.
fn framing(resp: &ResponseHeader, head_request: bool) -> pingora::Result<Body> {
    let status = resp.status.as_u16();
    if head_request || status == 204 || status == 304 {
        return Ok(Body::None);
    }
    if resp.headers.contains_key(TRANSFER_ENCODING) {
        let last = resp
            .headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
            .rfind(|t| !t.is_empty());
        return Ok(match last {
            Some(t) if t.eq_ignore_ascii_case(b"chunked") => Body::Chunked,
            _ => Body::CodedUntilClose,
        });
    }
    let mut length: Option<u64> = None;
    for v in resp.headers.get_all(CONTENT_LENGTH) {
        for part in v.as_bytes().split(|b| *b == b',') {
            let part = part.trim_ascii();
            let n = (!part.is_empty() && part.len() <= 19 && part.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(part).ok()?.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| upstream(ErrorType::InvalidHTTPHeader, "a bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(upstream(
                    ErrorType::InvalidHTTPHeader,
                    "Content-Length values that disagree",
                ));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => Body::None,
        Some(n) => Body::Length(n),
        None => Body::UntilClose,
    })
}

fn has_token(resp: &ResponseHeader, name: http::HeaderName, token: &str) -> bool {
    resp.headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// The head on the wire, as pingora writes it.
pub(crate) fn serialize(resp: &ResponseHeader, out: &mut Vec<u8>) {
    out.extend_from_slice(if resp.version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(resp.status.as_str().as_bytes());
    out.push(b' ');
    if let Some(reason) = resp.get_reason_phrase() {
        out.extend_from_slice(reason.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    resp.header_to_h1_wire(out);
    out.extend_from_slice(b"\r\n");
}

/// Writes `bytes` to the client and flushes (pingora's stream buffers writes).
pub(crate) async fn write_out(down: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    down.write_all(bytes).await?;
    down.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> ResponseHeader {
        parse_response(raw.as_bytes())
            .expect("valid")
            .expect("complete")
            .1
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let f = |raw: &str, head_req| framing(&head(raw), head_req);
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false).ok(),
            Some(Body::Length(3))
        );
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n",
                false
            )
            .ok(),
            Some(Body::Length(3))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true).ok(),
            Some(Body::None)
        );
        assert_eq!(
            f(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
                false
            )
            .ok(),
            Some(Body::None)
        );
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
                false
            )
            .ok(),
            Some(Body::Chunked)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\n\r\n", false).ok(),
            Some(Body::UntilClose)
        );
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                false
            )
            .ok(),
            Some(Body::CodedUntilClose)
        );
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 3 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        ] {
            assert!(f(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn heads_keep_their_spelling_and_reason() {
        let h = head("HTTP/1.0 299 Quite Fine\r\nX-Mixed-Case: a\r\n\r\n");
        let mut out = Vec::new();
        serialize(&h, &mut out);
        assert_eq!(out, b"HTTP/1.0 299 Quite Fine\r\nX-Mixed-Case: a\r\n\r\n");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n")
            .expect("so far")
            .is_none());
        assert!(parse_response(b"NOPE\r\n\r\n").is_err());
    }
}
