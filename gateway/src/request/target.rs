//! Which host a request is for: the absolute-form target's authority, else `Host`.

use http::header::HOST;
use pingora::http::RequestHeader;

/// The authority as the request names it: an absolute-form target's wins over `Host`
/// (RFC 9112 §3.2.2).
pub(crate) fn authority(req: &RequestHeader) -> Option<&str> {
    req.uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers.get(HOST).and_then(|h| h.to_str().ok()))
}

/// The request's host, normalised (lower case, no port).
pub(crate) fn request_host(req: &RequestHeader) -> Option<String> {
    authority(req).and_then(|h| policies::normalize_host(h).ok().map(|h| h.into_owned()))
}
