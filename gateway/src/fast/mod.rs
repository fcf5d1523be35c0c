//! varco's HTTP/1.1 fast path: the connection loop in front of pingora's proxy.
//!
//! Every connection of the public listeners comes here first (a pingora `ServerApp`). The
//! common request (a GET or HEAD without a body, for a service on a plain-HTTP back-end, that
//! the policy allows) is served in this loop: the head is parsed once ([`head`]), the same
//! functions as pingora's path strip, route, admit and add the identity headers
//! ([`crate::request`]), and the request goes to a back-end connection of this thread's pool
//! in one write ([`upstream`]); one task per connection, the read buffer kept between
//! requests, nothing spawned per request.
//!
//! Everything else goes to pingora's `HttpProxy`, unchanged: the bytes already read are handed
//! to a pingora session as its first bytes, before anything was sent anywhere (so a request is
//! served by exactly one path), and the connection comes back to this loop when pingora would
//! reuse it. HTTP/2 and other ALPN connections go to pingora whole. `[server] fast_path =
//! false` sends every request to pingora.

pub mod chunked;
pub mod head;
pub(crate) mod upstream;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf as _, BytesMut};
use http::header::{CONNECTION, DATE, HOST};
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use pingora::{Error, ErrorType};
use policies::RouteMatch;
use tokio::io::AsyncReadExt as _;

use self::head::{FastHead, Head, MAX_HEAD};
use self::upstream::{Failure, Upstream};
use crate::request::ctx::Phase;
use crate::request::headers::{is_trusted, strip_inbound};
use crate::request::{self, Admission, Ctx, Proxy};
use crate::state::Shared;

/// How long a connection may wait for a request head, idle or half-sent. (pingora waits 60 s
/// for the first request's head and, after that, for ever.)
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);

/// The read buffer each connection keeps.
const READ_BUFFER: usize = 8 * 1024;

/// The listeners' application: the fast path, with pingora's proxy for everything else.
pub struct FastApp {
    proxy: Arc<HttpProxy<Proxy>>,
    shared: Arc<Shared>,
}

impl FastApp {
    /// The fast path in front of `proxy`.
    pub fn new(proxy: HttpProxy<Proxy>, shared: Arc<Shared>) -> Self {
        Self {
            proxy: Arc::new(proxy),
            shared,
        }
    }
}

impl std::fmt::Debug for FastApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastApp").finish_non_exhaustive()
    }
}

/// What a connection is, for every request on it, and the buffers its exchanges reuse.
struct Connection {
    client_ip: Option<IpAddr>,
    hsts: Option<http::HeaderValue>,
    scratch: upstream::Scratch,
}

/// How one request ended on the fast path.
enum Served {
    /// Answered; the connection takes the next request.
    KeepAlive,
    /// Answered (or the client left); the connection closes.
    Close,
    /// Not the fast path's: nothing was sent anywhere, pingora serves it.
    Slow,
}

#[async_trait]
impl ServerApp for FastApp {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if !matches!(stream.selected_alpn_proto(), None | Some(ALPN::H1)) {
            return ServerApp::process_new(&self.proxy, stream, shutdown).await;
        }
        self.connection(stream, shutdown).await;
        None
    }

    async fn cleanup(&self) {
        // Wakes the keep-alive connections parked in pingora's sessions.
        HttpServerApp::http_cleanup(&*self.proxy).await;
    }
}

impl FastApp {
    /// One HTTP/1 connection, request after request, on whichever path each takes.
    async fn connection(self: &Arc<Self>, mut stream: Stream, shutdown: &ShutdownWatch) {
        let mut conn = Connection {
            client_ip: stream
                .get_socket_digest()
                .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip())),
            hsts: self
                .shared
                .hsts
                .clone()
                .filter(|_| stream.get_ssl_digest().is_some()),
            scratch: upstream::Scratch::default(),
        };
        let mut buf = BytesMut::with_capacity(READ_BUFFER);
        let mut served = 0u64;
        let mut carried: Option<HttpPersistentSettings> = None;
        let mut watch = shutdown.clone();
        loop {
            let fast = loop {
                if !buf.is_empty() {
                    match head::parse(&buf) {
                        Head::Partial if buf.len() < MAX_HEAD => {}
                        Head::Partial | Head::Slow => break None,
                        Head::Fast(h) => break Some(h),
                    }
                }
                let idle = buf.is_empty();
                if idle && *watch.borrow() {
                    return;
                }
                if buf.capacity() - buf.len() < 1024 {
                    buf.reserve(READ_BUFFER);
                }
                let read = tokio::select! {
                    biased;
                    _ = watch.changed(), if idle => return,
                    r = tokio::time::timeout(HEAD_TIMEOUT, stream.read_buf(&mut buf)) => r,
                };
                match read {
                    Ok(Ok(n)) if n > 0 => {}
                    // Closed, reset, or no complete head in time.
                    _ => return,
                }
            };
            if let Some(h) = fast {
                let len = h.len;
                match self.serve(&mut stream, h, &mut conn, &watch).await {
                    Served::KeepAlive => {
                        buf.advance(len);
                        served += 1;
                        continue;
                    }
                    Served::Close => return,
                    Served::Slow => {}
                }
            }
            // pingora's turn, with what was read so far as the start of its session.
            let mut session = ServerSession::new_http1(stream);
            match carried.take() {
                Some(settings) => settings.apply_to_session(&mut session),
                // What pingora's own loop would set: 60 s for a first head, then none.
                None => session.set_keepalive(if *shutdown.borrow() {
                    None
                } else if served == 0 {
                    Some(60)
                } else {
                    Some(0)
                }),
            }
            if !buf.is_empty() {
                session.set_pipelined_prefix(buf.split());
            }
            let Some(reused) =
                HttpServerApp::process_new_http(&self.proxy, session, shutdown).await
            else {
                return;
            };
            let (next, settings) = reused.consume();
            stream = next;
            carried = settings;
            served += 1;
        }
    }

    /// One request the fast path may serve: routed, admitted and proxied, or handed back
    /// untouched (`Slow`) when it turns out to be pingora's (not a service, a login to start, a
    /// back-end the fast path does not reach, the store unavailable, the switch off).
    async fn serve(
        &self,
        stream: &mut Stream,
        head: FastHead,
        conn: &mut Connection,
        shutdown: &ShutdownWatch,
    ) -> Served {
        let started = std::time::Instant::now();
        let rt = self.shared.current();
        let server = &rt.snapshot.config.server;
        if !server.fast_path {
            return Served::Slow;
        }
        let FastHead {
            mut header, close, ..
        } = head;
        let removed = strip_inbound(
            &mut header,
            is_trusted(conn.client_ip, &server.trusted_proxies),
        );
        let Ok(RouteMatch::Service(route)) = request::resolve(&rt, &header) else {
            return Served::Slow;
        };
        let Some(to) = rt
            .index(route)
            .and_then(|i| rt.service(i))
            .and_then(|s| Upstream::of(&s.peer))
        else {
            return Served::Slow;
        };
        let host = header.headers.get(HOST).cloned();
        let (admission, mapped) =
            request::admit(&self.shared, rt.clone(), route, &mut header).await;
        let Admission::Allowed(allowed) = admission else {
            return Served::Slow;
        };
        // From here on the request is the fast path's (its context and span are made only now).
        let mut ctx = request::new_ctx(&self.shared);
        ctx.started = started;
        self.shared.metrics.fast_path();
        if removed + mapped > 0 {
            self.shared.metrics.stripped(removed + mapped);
        }
        ctx.client_ip = conn.client_ip;
        ctx.hsts = conn.hsts.clone();
        ctx.phase = Phase::Allowed(allowed);
        let keepalive = !close && !self.shared.is_draining() && !*shutdown.borrow();
        let method = header.method.clone();
        let outcome = self
            .proxy(
                stream,
                &mut conn.scratch,
                &mut header,
                host.as_ref(),
                to,
                &mut ctx,
                keepalive,
            )
            .await;
        let sent = match outcome {
            Ok(sent) => sent,
            Err(Failure::Client(status)) => {
                request::log_request(&self.shared, &method, &ctx, status);
                return Served::Close;
            }
            Err(Failure::DuringResponse { status, error }) => {
                let page = request::page_for(&error).map_or(0, |p| p.status());
                tracing::warn!(status = page, error = %error, route = %ctx.route_label(), "request failed");
                request::log_request(&self.shared, &method, &ctx, status);
                return Served::Close;
            }
            Err(Failure::BeforeResponse(error)) => {
                if let Some(h) = host {
                    // The page is the comune's of the host the citizen asked for.
                    let _ = header.insert_header(HOST, h);
                }
                let status = self.fail(stream, &header, &ctx, &error).await;
                request::log_request(&self.shared, &method, &ctx, status);
                return Served::Close;
            }
        };
        request::log_request(&self.shared, &method, &ctx, sent.status);
        if keepalive && !sent.close {
            Served::KeepAlive
        } else {
            Served::Close
        }
    }

    /// Sends an allowed request to its back-end and streams the answer back; the status sent.
    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one request, each borrowed on its own terms"
    )]
    async fn proxy(
        &self,
        stream: &mut Stream,
        scratch: &mut upstream::Scratch,
        header: &mut pingora::http::RequestHeader,
        host: Option<&http::HeaderValue>,
        to: Upstream,
        ctx: &mut Ctx,
        keepalive: bool,
    ) -> Result<upstream::Sent, Failure> {
        let Phase::Allowed(allowed) = &ctx.phase else {
            return Err(Failure::BeforeResponse(Error::explain(
                ErrorType::InternalError,
                "no permit for this request",
            )));
        };
        // The client's connection is its own business (pingora strips it the same way).
        header.remove_header(&CONNECTION);
        request::prepare_upstream(&self.shared, allowed, ctx.client_ip, host, header)
            .map_err(Failure::BeforeResponse)?;
        pingora::protocols::http::authority::validate_request_authority(header)
            .map_err(|e| Failure::BeforeResponse(e.into_in()))?;
        let Some(wire) = pingora::protocols::http::v1::client::http_req_header_to_wire(header)
        else {
            return Err(Failure::BeforeResponse(Error::explain(
                ErrorType::InternalError,
                "the request cannot be written",
            )));
        };
        let head_request = header.method == http::Method::HEAD;
        let shared = &self.shared;
        let sent = upstream::exchange(
            stream,
            scratch,
            &wire,
            to,
            head_request,
            keepalive,
            |resp| request::filter_response(shared, ctx, resp),
        )
        .await?;
        ctx.status = sent.status;
        Ok(sent)
    }

    /// The page for a failure before anything was sent, on a connection that then closes (as
    /// pingora's path does); returns the status.
    async fn fail(
        &self,
        stream: &mut Stream,
        req: &pingora::http::RequestHeader,
        ctx: &Ctx,
        error: &Error,
    ) -> u16 {
        let Some(page) = request::page_for(error) else {
            return 0;
        };
        let status = page.status();
        tracing::warn!(status, error = %error, route = %ctx.route_label(), "request failed");
        let rt = ctx
            .runtime()
            .cloned()
            .unwrap_or_else(|| self.shared.current());
        let body = rt.error_for(page, req);
        let written = async {
            let mut resp = request::page_header(status, body.len(), None, ctx.hsts.as_ref())?;
            resp.insert_header(DATE, pingora::protocols::http::date::get_cached_date())?;
            resp.insert_header(CONNECTION, "close")?;
            let mut out = Vec::with_capacity(512 + body.len());
            upstream::serialize(&resp, &mut out);
            if req.method != http::Method::HEAD {
                out.extend_from_slice(&body);
            }
            upstream::write_out(stream, &out)
                .await
                .map_err(|e| Error::because(ErrorType::WriteError, "the error page", e))
        };
        if let Err(err) = written.await {
            tracing::debug!(%err, "could not send the error page");
        }
        status
    }
}
