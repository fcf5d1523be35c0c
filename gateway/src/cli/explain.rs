//! `varco explain`: a dry run of routing and policy for one URL, for ops checking a change before
//! it goes live.

use std::fmt::Write;

use policies::{decide, Access, Decision, Level, RouteMatch, Snapshot};

use crate::request::identity::default_identity_header;

/// What `explain` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A service matched.
    Service,
    /// The portal or `/.sso/` answers.
    Varco,
    /// 404 or 400.
    NotRouted,
}

/// Explains `url` against `snapshot` for a session at `level` (none: anonymous).
pub fn explain(snapshot: &Snapshot, url: &str, level: Option<Level>) -> (Verdict, String) {
    let mut out = String::new();
    // `http::Uri` keeps the path exactly as written (dot segments, escapes), as a client sends it.
    let uri: http::Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => return (Verdict::NotRouted, format!("not a URL ({e}): {url}\n")),
    };
    let (Some(authority), Some(scheme)) = (uri.authority(), uri.scheme_str()) else {
        return (
            Verdict::NotRouted,
            format!("not an absolute http(s) URL: {url}\n"),
        );
    };
    if !matches!(scheme, "http" | "https") {
        return (Verdict::NotRouted, format!("not an http(s) URL: {url}\n"));
    }
    let host = authority.as_str();
    let path = uri.path();
    let _ = writeln!(out, "URL: {url}");
    let m = snapshot.routes.resolve(host, path);
    let r = match m {
        Err(reason) => {
            let _ = writeln!(out, "answer: 400 Bad Request page ({reason})");
            return (Verdict::NotRouted, out);
        }
        Ok(RouteMatch::NotFound) => {
            let _ = writeln!(
                out,
                "answer: 404 page (no service for host \"{host}\" and path \"{path}\")"
            );
            return (Verdict::NotRouted, out);
        }
        Ok(RouteMatch::Sso) => {
            let _ = writeln!(out, "answer: varco's login endpoints (/.sso/)");
            return (Verdict::Varco, out);
        }
        Ok(RouteMatch::Portal) => {
            let _ = writeln!(out, "answer: the portal (catalog pages)");
            return (Verdict::Varco, out);
        }
        Ok(RouteMatch::Service(r)) => r,
    };
    let Some((comune, service)) = snapshot.service(r) else {
        return (
            Verdict::NotRouted,
            "internal error: route to a missing service\n".to_string(),
        );
    };
    let _ = writeln!(
        out,
        "comune: {} (IPA {}, ISTAT {})",
        comune.name,
        comune.ipa_code.as_str(),
        comune.istat_code.as_str()
    );
    let _ = writeln!(
        out,
        "service: {} \"{}\" [{}]",
        service.id.as_str(),
        service.name,
        service.category.label()
    );
    let _ = writeln!(
        out,
        "route: host {}, path_prefix {}",
        service.route.host, service.route.path_prefix
    );
    let _ = writeln!(
        out,
        "upstream: {}://{}",
        if service.upstream.tls {
            "https"
        } else {
            "http"
        },
        service.upstream.authority()
    );
    let _ = writeln!(out, "access: {}", service.access.as_str());
    let who = level.map_or("an anonymous request".to_string(), |l| {
        format!("a session at {l} with the attributes the service needs")
    });
    let held = level.map(|level| policies::Held {
        level,
        attributes: service.attribute_mask(),
    });
    match decide(service, held) {
        Decision::Allow(_) => {
            let _ = writeln!(out, "decision for {who}: allow (proxied)");
        }
        Decision::Login { level: needed } => {
            let _ = writeln!(
                out,
                "decision for {who}: login required at {needed} (302 to /.sso/login)"
            );
        }
    }
    let _ = writeln!(
        out,
        "forwarding headers: X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host"
    );
    if let Access::Login(_) = service.access {
        let mut names: Vec<String> = service
            .attributes
            .iter()
            .filter_map(|a| default_identity_header(*a).map(|h| format!("{h} ({a})")))
            .collect();
        names.extend(["X-Varco-Level", "X-Varco-Idp", "X-Varco-Comune"].map(String::from));
        names.extend(service.headers.iter().map(|(h, a)| format!("{h} ({a})")));
        names.push(format!(
            "X-Varco-Assertion (signed JWT, aud {}/{})",
            comune.ipa_code.as_str(),
            service.id.as_str()
        ));
        let _ = writeln!(
            out,
            "identity headers for an allowed session: {}",
            names.join(", ")
        );
    } else {
        let _ = writeln!(out, "identity headers: none (public service)");
    }
    (Verdict::Service, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_the_example_configuration() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/varco.toml");
        let snap = policies::load(&path).expect("example loads");
        let (v, text) = explain(
            &snap,
            "http://capannori.localhost:8080/tari/avvisi",
            Some(Level::SpidL1),
        );
        assert_eq!(v, Verdict::Service);
        assert!(
            text.contains("comune: Comune di Capannori (IPA c_b648, ISTAT 046007)"),
            "{text}"
        );
        assert!(text.contains("login required at SpidL2"), "{text}");
        assert!(
            text.contains("X-Varco-Fiscal-Number (fiscalNumber)"),
            "{text}"
        );
        assert!(text.contains("X-CF (fiscalNumber)"), "{text}");
        assert!(text.contains("X-Varco-Email (email)"), "{text}");
        let (_, text) = explain(
            &snap,
            "http://capannori.localhost/tari/",
            Some(Level::SpidL3),
        );
        assert!(text.contains("allow"), "{text}");
        let (v, _) = explain(&snap, "http://nowhere.example/", None);
        assert_eq!(v, Verdict::NotRouted);
        let (v, text) = explain(&snap, "http://127.0.0.1:8080/", None);
        assert_eq!(v, Verdict::Varco, "{text}");
        let (v, text) = explain(&snap, "http://lucca.localhost/eventi/../certificati/", None);
        assert_eq!(v, Verdict::NotRouted, "{text}");
        assert!(
            text.contains("400") && text.contains("dot segment"),
            "{text}"
        );
    }
}
