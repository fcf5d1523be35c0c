//! Where a login may send a browser back to ([`return_target`]: only URLs varco serves, no open
//! redirect), and the other end of it: the URL that sends a browser without a good enough
//! session to log in ([`login_redirect`]), which must always be one that `return_target`
//! accepts.

use catalog::ErrorPage;
use pingora::http::RequestHeader;
use policies::{RouteMatch, ServiceRef, Snapshot};

use crate::cookies::{binding_cookie, cookie_reaches, presented_binding, Cookie};
use crate::reply::Reply;
use crate::runtime::Runtime;

/// The validated place a login returns to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnTarget {
    /// Absolute URL on the public origin.
    pub url: String,
    /// The service there, if any.
    pub service: Option<ServiceRef>,
}

/// Accepts only URLs that varco itself serves, on the portal's scheme and port: the portal's
/// pages or a configured service. Anything else (other hosts, `//evil`, `/\evil`, `https:evil`,
/// credentials, control characters, `/.sso/` itself) is refused: no open redirect.
pub fn return_target(snapshot: &Snapshot, raw: &str) -> Option<ReturnTarget> {
    // The ports allowed are the portal's, the scheme's default and `[server] public_ports`
    // (cookies do not tell ports apart, so the host is the boundary; the list keeps a crafted
    // link from sending a citizen, and a handoff code, to some other server on that host).
    if raw.is_empty()
        || raw.len() > 2048
        || raw.bytes().any(|b| b < 0x21 || b == 0x7f || b == b'\\')
    {
        return None;
    }
    let public = &snapshot.config.server.public_url;
    let origin = public.origin();
    let absolute = if raw.starts_with('/') {
        if raw.starts_with("//") {
            return None;
        }
        format!("{origin}{raw}")
    } else {
        raw.to_string()
    };
    let uri: http::Uri = absolute.parse().ok()?;
    let (scheme, authority) = (uri.scheme_str()?, uri.authority()?);
    if authority.as_str().contains('@') || scheme != public.url.scheme() {
        return None;
    }
    if !snapshot.config.server.is_public_port(authority.port_u16()) {
        return None;
    }
    let service = match snapshot.routes.resolve(authority.as_str(), uri.path()) {
        Ok(RouteMatch::Portal) => None,
        Ok(RouteMatch::Service(r)) => Some(r),
        _ => return None,
    };
    Some(ReturnTarget {
        url: absolute,
        service,
    })
}

/// The origin the browser used for this request, which varco sends it back to after a login:
/// the portal's scheme, and the host and port the browser asked for (the request's authority).
/// Behind a trusted proxy, and only then, `X-Forwarded-Host` and `X-Forwarded-Port` say it
/// instead: a TLS front that rewrites `Host` (nginx's `$host` drops the port) still sends the
/// citizen back where they were. `None` for an authority with no single reading.
pub(crate) fn browser_origin(rt: &Runtime, req: &RequestHeader, trusted: bool) -> Option<String> {
    let public = &rt.snapshot.config.server.public_url;
    let forwarded = |name: &str| {
        if !trusted {
            return None;
        }
        let v = req.headers.get(name)?.to_str().ok()?;
        v.split(',').next().map(str::trim).filter(|v| !v.is_empty())
    };
    let raw = forwarded("x-forwarded-host").or_else(|| {
        req.uri.authority().map(|a| a.as_str()).or_else(|| {
            req.headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        })
    })?;
    let authority: http::uri::Authority = raw.parse().ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = policies::normalize_host(authority.host()).ok()?;
    let port = match authority.port_u16() {
        Some(p) => Some(p),
        None => match forwarded("x-forwarded-port") {
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0)?),
            None => None,
        },
    };
    let default = if public.https { 443 } else { 80 };
    let scheme = public.url.scheme();
    Some(match port {
        Some(p) if p != default => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// The 302 that sends a browser without a good enough session to the portal's login. On a host
/// the portal's cookie does not reach, the browser also gets this host's handoff-binding cookie,
/// and the login carries its digest: only this browser can redeem the code that brings the
/// session back here.
pub(crate) fn login_redirect(
    rt: &Runtime,
    req: &RequestHeader,
    level: policies::Level,
    trusted: bool,
) -> Reply {
    let public = &rt.snapshot.config.server.public_url;
    let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let Some(origin) = browser_origin(rt, req, trusted) else {
        return Reply::error_page(rt, ErrorPage::BadRequest);
    };
    let back = format!("{origin}{path}");
    // Every redirect varco emits must be accepted where it points: a host reached on a port
    // that `/.sso/login` would refuse gets a page now, and ops a line that says what to change.
    if return_target(&rt.snapshot, &back).is_none() {
        tracing::warn!(
            %origin,
            "a service was reached at an origin that logins cannot return to: list its port in [server] public_ports"
        );
        return Reply::error_page(rt, ErrorPage::BadRequest);
    }
    let raw_host = origin.split_once("://").map_or("", |(_, h)| h);
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("return_to", &back)
        .append_pair("level", level.as_str());
    let host = policies::normalize_host(raw_host).map(|h| h.into_owned());
    let binding = match host {
        Ok(h) if !cookie_reaches(rt, &h) => {
            let b = presented_binding(req, Cookie::Handoff, public.https)
                .unwrap_or_else(idp_bridge::BrowserBinding::new);
            query.append_pair("hb", &b.digest().to_param());
            binding_cookie(Cookie::Handoff, &b, public.https, false)
        }
        _ => None,
    };
    let location = format!("{}/.sso/login?{}", public.origin(), query.finish());
    let mut reply = Reply::redirect_to(&location);
    if let Some(cookie) = binding {
        reply.headers.push((http::header::SET_COOKIE, cookie));
    }
    reply
}
