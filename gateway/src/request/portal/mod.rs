//! The portal's own pages and data on the portal host: the catalog home (`/`), the results page
//! (`/catalog`), and the catalog as JSON (`/catalog.json`) and JSON-LD (`/catalog.jsonld`).
//!
//! Unfiltered answers are rendered once per policy snapshot (in the [`Runtime`]); filtered ones
//! are rendered on demand and kept in a bounded cache keyed by the snapshot's generation, the kind
//! of answer and the canonical query, so a reload never serves an old catalog. JSON answers carry
//! a strong ETag (`If-None-Match` gets 304) and may be read cross-origin (open data).

pub(crate) mod cache;

use std::sync::Arc;

use bytes::Bytes;
use catalog::{ErrorPage, Query, Rendered};
use http::header::{HeaderName, HeaderValue, CACHE_CONTROL, ETAG, IF_NONE_MATCH, VARY};
use http::Method;
use pingora::http::RequestHeader;

pub(crate) use self::cache::Kind;
use crate::reply::Reply;
use crate::runtime::Runtime;
use crate::state::Shared;

const JSON: &str = "application/json";
const JSON_LD: &str = "application/ld+json";
const HTML: &str = "text/html; charset=utf-8";

/// Whether this portal path is one the portal answers (the rest of the reserved paths are 404).
pub(crate) fn is_portal_page(path: &str) -> bool {
    path == "/"
        || path.eq_ignore_ascii_case("/catalog")
        || path.eq_ignore_ascii_case("/catalog.json")
        || path.eq_ignore_ascii_case("/catalog.jsonld")
        || path == idp_bridge::oidc::federation::WELL_KNOWN
}

/// Answers `GET`/`HEAD` of a portal page.
pub(crate) async fn handle(rt: &Runtime, shared: &Shared, req: &RequestHeader) -> Reply {
    let path = req.uri.path();
    if !is_portal_page(path) {
        return reply(404, HTML, rt.pages.error(ErrorPage::NotFound).clone());
    }
    if !matches!(req.method, Method::GET | Method::HEAD) {
        let mut r = reply(405, HTML, rt.pages.error(ErrorPage::BadRequest).clone());
        r.headers
            .push((http::header::ALLOW, HeaderValue::from_static("GET, HEAD")));
        return r;
    }
    let raw = req.uri.query().unwrap_or("");
    let lower = path.to_ascii_lowercase();
    if path == idp_bridge::oidc::federation::WELL_KNOWN {
        return entity_configuration(rt);
    }
    match lower.as_str() {
        "/catalog.json" | "/catalog.jsonld" => data(rt, shared, req, raw, lower.ends_with("ld")),
        _ => page(rt, shared, req, raw, path == "/").await,
    }
}

/// varco's entity configuration in the SPID/CIE OpenID Connect Federation (a signed JWT), or 404
/// without `[oidc_federation]`.
fn entity_configuration(rt: &Runtime) -> Reply {
    match rt.identity.oidc.entity_configuration(&rt.snapshot.config) {
        None => reply(404, HTML, rt.pages.error(ErrorPage::NotFound).clone()),
        Some(Ok(jwt)) => {
            let mut r = reply(
                200,
                idp_bridge::oidc::federation::ENTITY_STATEMENT_TYPE,
                Bytes::from(jwt),
            );
            r.headers.push((
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=600"),
            ));
            r
        }
        Some(Err(e)) => {
            tracing::error!(error = %e, "cannot sign the entity configuration");
            reply(500, HTML, rt.pages.error(ErrorPage::Internal).clone())
        }
    }
}

/// `/favicon.ico` on a host where no service answers it (a service whose routes cover it serves
/// its own): varco's icon, cacheable for a day.
pub(crate) fn favicon() -> Reply {
    let mut r = reply(200, "image/x-icon", Bytes::from_static(catalog::FAVICON));
    r.headers.push((
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    ));
    r
}

fn reply(status: u16, content_type: &'static str, body: Bytes) -> Reply {
    Reply {
        status,
        content_type,
        body,
        headers: Vec::new(),
        csp: None,
    }
}

fn header(r: &mut Reply, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers.push((name, v));
    }
}

/// Whether the client takes gzip (`Accept-Encoding: gzip`, not refused with `q=0`).
fn accepts_gzip(req: &RequestHeader) -> bool {
    req.headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// Whether `If-None-Match` names `etag` (or `*`).
fn not_modified(req: &RequestHeader, etag: &str) -> bool {
    req.headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn data(rt: &Runtime, shared: &Shared, req: &RequestHeader, raw: &str, ld: bool) -> Reply {
    let content_type = if ld { JSON_LD } else { JSON };
    let (query, errors) = Query::parse(raw, true);
    if !errors.is_empty() {
        let body = serde_json::json!({
            "error": "invalid query",
            "problems": errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        });
        let mut r = reply(400, JSON, Bytes::from(body.to_string()));
        header(&mut r, CACHE_CONTROL, "no-store");
        return r;
    }
    let mut gzipped = false;
    let (body, etag): (Bytes, Arc<str>) = if query.is_unfiltered() {
        let doc = if ld {
            &rt.catalog_jsonld
        } else {
            &rt.catalog_json
        };
        // A different representation has its own validator.
        gzipped = !doc.gzip.is_empty() && accepts_gzip(req);
        if gzipped {
            (doc.gzip.clone(), doc.etag_gzip.clone())
        } else {
            (doc.plain.clone(), doc.etag.clone())
        }
    } else {
        let kind = if ld { Kind::JsonLd } else { Kind::Json };
        shared
            .catalog_cache
            .get_with((rt.generation, kind, query.canonical()), || {
                let rendered = Rendered::new(if ld {
                    rt.catalog.render_jsonld(&query)
                } else {
                    rt.catalog.render_json(&query)
                });
                (rendered.body, Arc::from(rendered.etag))
            })
    };
    let mut r = if not_modified(req, &etag) {
        reply(304, content_type, Bytes::new())
    } else {
        reply(200, content_type, body)
    };
    header(&mut r, ETAG, &etag);
    header(&mut r, CACHE_CONTROL, "public, max-age=60");
    header(&mut r, VARY, "Accept-Encoding");
    if gzipped {
        header(&mut r, http::header::CONTENT_ENCODING, "gzip");
    }
    r.headers.push((
        HeaderName::from_static("access-control-allow-origin"),
        HeaderValue::from_static("*"),
    ));
    r
}

/// The catalog's viewer for a session: what it holds, and which comuni's services it serves
/// (every comune's with one SP; in aggregator mode, the comune it was made for).
fn viewer(rt: &Runtime, s: &crate::store::Session) -> catalog::Viewer {
    let config = &rt.snapshot.config;
    let serves = match (s.principal().audience(), config.sp.mode.aggregator()) {
        (policies::Audience::Sp, None) => catalog::Serves::Every,
        (policies::Audience::Comune(ipa), Some(_)) => rt
            .catalog
            .comune(ipa.as_str())
            .map_or(catalog::Serves::None, catalog::Serves::Comune),
        _ => catalog::Serves::None,
    };
    catalog::Viewer {
        held: s.held(),
        serves,
    }
}

async fn page(rt: &Runtime, shared: &Shared, req: &RequestHeader, raw: &str, home: bool) -> Reply {
    // Only a request that carries a session cookie costs a store lookup; a store that cannot be
    // reached leaves the catalog readable, without the personal notes.
    let viewer = if req.headers.get(http::header::COOKIE).is_some() {
        match crate::cookies::current_session(rt, shared, req).await {
            Ok(found) => found.map(|(_, s)| viewer(rt, &s)),
            Err(e) => {
                tracing::warn!(error = %e, "catalog page without the session: store unavailable");
                None
            }
        }
    } else {
        None
    };
    let body = if home {
        match viewer {
            None => rt.pages.home.clone(),
            Some(_) => Bytes::from(catalog::home(&rt.site, &rt.catalog, viewer)),
        }
    } else {
        let (query, errors) = Query::parse(raw, false);
        if viewer.is_none() && errors.is_empty() && query.is_unfiltered() {
            rt.catalog_page.clone()
        } else if !errors.is_empty() {
            Bytes::from(catalog::results(
                &rt.site,
                &rt.catalog,
                &query,
                &errors,
                viewer,
            ))
        } else {
            shared
                .catalog_cache
                .get_with(
                    (rt.generation, Kind::Page(viewer), query.canonical()),
                    || {
                        let html = catalog::results(&rt.site, &rt.catalog, &query, &[], viewer);
                        (Bytes::from(html), Arc::from(""))
                    },
                )
                .0
        }
    };
    let mut r = reply(200, HTML, body);
    if viewer.is_some() {
        header(&mut r, CACHE_CONTROL, "private, no-store");
    } else {
        header(&mut r, CACHE_CONTROL, "public, max-age=60");
    }
    header(&mut r, VARY, "Cookie");
    r
}
