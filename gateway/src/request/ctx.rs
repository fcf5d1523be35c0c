//! One request's context, as states: a request is first [`Phase::New`], then routed against one
//! runtime, then either answered by varco itself or [`Allowed`] to a service. `Allowed` can only
//! be made from the [`Permit`] of an allow decision, and only it carries a back-end and a
//! citizen, so no phase can read what an earlier one did not establish.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use idp_bridge::SessionKey;
use policies::Permit;

use crate::runtime::{Runtime, ServiceRuntime};
use crate::store::Session;

/// What varco answered itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// varco's own pages and endpoints.
    Portal,
    /// `/.sso/*`.
    Sso,
    /// A service's page (a login redirect, the store unavailable...).
    Service(usize),
    /// 404 or 400.
    Nothing,
}

/// The citizen of an allowed request to a service that needs a login.
#[derive(Debug)]
pub(crate) struct Citizen {
    /// The session's store key (keys the JWT cache).
    pub(crate) key: SessionKey,
    /// The session.
    pub(crate) session: Arc<Session>,
}

/// A request the policy allowed to reach service `index` of `runtime`.
#[derive(Debug)]
pub(crate) struct Allowed {
    runtime: Arc<Runtime>,
    index: usize,
    citizen: Option<Citizen>,
    _permit: Permit,
}

impl Allowed {
    /// Only an allow decision's permit makes one.
    pub(crate) fn new(
        permit: Permit,
        runtime: Arc<Runtime>,
        index: usize,
        citizen: Option<Citizen>,
    ) -> Self {
        Self {
            runtime,
            index,
            citizen,
            _permit: permit,
        }
    }

    /// The runtime the request was decided with.
    pub(crate) fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The service's index in the runtime.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The service.
    pub(crate) fn service(&self) -> Option<&ServiceRuntime> {
        self.runtime.service(self.index)
    }

    /// The citizen, when the service needs a login.
    pub(crate) fn citizen(&self) -> Option<&Citizen> {
        self.citizen.as_ref()
    }
}

/// Where the request is.
#[derive(Debug)]
pub(crate) enum Phase {
    /// `request_filter` has not run.
    New,
    /// Being routed with this runtime.
    Routing(Arc<Runtime>),
    /// varco answered.
    Answered(Arc<Runtime>, Answer),
    /// Going to a back-end.
    Allowed(Allowed),
}

/// Per-request state.
#[derive(Debug)]
pub struct Ctx {
    pub(crate) started: Instant,
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) status: u16,
    pub(crate) phase: Phase,
    /// `varco.request`, only when traces are exported.
    pub(crate) span: Option<tracing::Span>,
    /// `Strict-Transport-Security` for the answer: set when the request came over varco's own
    /// TLS listener.
    pub(crate) hsts: Option<http::HeaderValue>,
}

impl Ctx {
    /// A request that just arrived.
    pub(crate) fn new(span: Option<tracing::Span>) -> Self {
        Self {
            started: Instant::now(),
            client_ip: None,
            status: 0,
            phase: Phase::New,
            span,
            hsts: None,
        }
    }

    /// The runtime the request is served with, once routing started.
    pub(crate) fn runtime(&self) -> Option<&Arc<Runtime>> {
        match &self.phase {
            Phase::New => None,
            Phase::Routing(rt) | Phase::Answered(rt, _) => Some(rt),
            Phase::Allowed(a) => Some(a.runtime()),
        }
    }

    /// Marks the request as answered by varco (for metrics and the access log).
    pub(crate) fn answered(&mut self, answer: Answer) {
        let phase = std::mem::replace(&mut self.phase, Phase::New);
        self.phase = match phase {
            Phase::Routing(rt) | Phase::Answered(rt, _) => Phase::Answered(rt, answer),
            other => other,
        };
    }

    /// The route's label, for logs and traces.
    pub(crate) fn route_label(&self) -> &str {
        match &self.phase {
            Phase::Allowed(a) => a.service().map_or("-", |s| &s.label),
            Phase::Answered(rt, Answer::Service(i)) => rt.service(*i).map_or("-", |s| &s.label),
            Phase::Answered(_, Answer::Portal) => "portal",
            Phase::Answered(_, Answer::Sso) => "sso",
            _ => "-",
        }
    }

    /// The metric attributes of the route.
    pub(crate) fn metric(&self) -> Option<&[opentelemetry::KeyValue; 2]> {
        Some(match &self.phase {
            Phase::New => return None,
            Phase::Allowed(a) => a.service().map_or(&a.runtime().metric_none, |s| &s.metric),
            Phase::Answered(rt, Answer::Service(i)) => {
                rt.service(*i).map_or(&rt.metric_none, |s| &s.metric)
            }
            Phase::Answered(rt, Answer::Portal) => &rt.metric_portal,
            Phase::Answered(rt, Answer::Sso) => &rt.metric_sso,
            Phase::Routing(rt) | Phase::Answered(rt, Answer::Nothing) => &rt.metric_none,
        })
    }
}
