//! `GET /.sso/session`: the current identity as JSON (no session ID, no tokens), or 401.

use pingora::http::RequestHeader;
use policies::AttributeMask;

use crate::cookies::current_session;
use crate::reply::Reply;
use crate::runtime::Runtime;
use crate::state::Shared;
use crate::store::StoreResult;

/// `GET /.sso/session`: the current identity as JSON (no session ID, no tokens), or 401.
pub(super) async fn session_info(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
) -> StoreResult<Reply> {
    let (status, value) = match current_session(rt, shared, req).await? {
        Some((_, s)) => {
            let p = s.principal();
            // A script on a service host reads only what that host's back-ends may receive,
            // never what the session got for another comune's service.
            let host = crate::request::target::request_host(req);
            let visible: Option<AttributeMask> = (host.as_deref()
                != Some(rt.snapshot.config.server.public_url.host.as_str()))
            .then(|| {
                rt.snapshot
                    .services()
                    .filter(|(_, _, svc)| Some(svc.route.host.as_str()) == host.as_deref())
                    .fold(AttributeMask::EMPTY, |m, (_, _, svc)| {
                        m.union(svc.attribute_mask())
                    })
            });
            let attributes: serde_json::Map<String, serde_json::Value> = p
                .attributes()
                .iter()
                .filter(|(a, _)| visible.is_none_or(|mask| mask.contains(*a)))
                .map(|(a, v)| (a.as_str().to_string(), serde_json::Value::String(v.clone())))
                .collect();
            (
                200,
                serde_json::json!({
                    "idp": p.idp(),
                    // The SP entity the identity was asserted to: the SP, or (aggregator
                    // mode) the comune whose services the session serves.
                    "entity_id": rt.snapshot.config.entity_id(p.audience()),
                    "level": p.level().as_str(),
                    "authn_instant": p.authn_instant().map(|t| t.to_rfc3339()),
                    "attributes": attributes,
                }),
            )
        }
        None => (401, serde_json::json!({ "error": "no session" })),
    };
    Ok(Reply::json(status, &value))
}
