//! Metrics (OpenTelemetry instruments exported in Prometheus format on the admin listener), the
//! log subscriber, and optional OTLP trace export.
//!
//! Per-request recording uses attribute lists that are built once per policy snapshot, so the
//! hot path allocates nothing for metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};

use crate::error::{Error, Result};

/// Latency buckets in seconds: sub-millisecond proxying up to slow back-ends.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The instruments varco records, and the registry `/metrics` renders.
pub(crate) struct Metrics {
    registry: prometheus::Registry,
    meter: opentelemetry::metrics::Meter,
    // Kept alive: dropping the provider shuts the pipeline down.
    _provider: SdkMeterProvider,
    requests: Counter<u64>,
    duration: Histogram<f64>,
    reloads: Counter<u64>,
    stripped: Counter<u64>,
    events: Counter<u64>,
    generation: Arc<AtomicU64>,
    last_reload_errors: Arc<AtomicU64>,
    fast_path: Arc<AtomicU64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with every instrument registered.
    pub(crate) fn new() -> Result<Self> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .build()
            .map_err(|e| Error::Telemetry(e.to_string()))?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        let meter = provider.meter("varco");
        let requests = meter
            .u64_counter("varco.requests")
            .with_description("Requests answered, by comune, service and HTTP status")
            .build();
        let duration = meter
            .f64_histogram("varco.request.duration")
            .with_unit("s")
            .with_description("Time from request headers to the end of the response")
            .with_boundaries(LATENCY_BUCKETS.to_vec())
            .build();
        let reloads = meter
            .u64_counter("varco.policy.reloads")
            .with_description("Policy reloads, by result (success or failure)")
            .build();
        let stripped = meter
            .u64_counter("varco.inbound.identity.headers.stripped")
            .with_description("Inbound headers removed because varco owns their name (spoofing attempts or misconfigured clients)")
            .build();
        let events = meter
            .u64_counter("varco.security.events")
            .with_description("Things refused or kept out, by kind: upstream_set_cookie (a back-end tried to set a varco cookie), metadata_kept (a refused IdP metadata file at reload, its last good version kept), rate_limited, audit_unavailable")
            .build();
        let generation = Arc::new(AtomicU64::new(0));
        let g = generation.clone();
        let _gauge = meter
            .u64_observable_gauge("varco.policy.generation")
            .with_description(
                "Generation of the policy snapshot being served (1 = loaded at start)",
            )
            .with_callback(move |o| o.observe(g.load(Ordering::Relaxed), &[]))
            .build();
        let last_reload_errors = Arc::new(AtomicU64::new(0));
        let e = last_reload_errors.clone();
        let _errors = meter
            .u64_observable_gauge("varco.policy.last.reload.errors")
            .with_description("Problems found by the last reload attempt (0 when it succeeded)")
            .with_callback(move |o| o.observe(e.load(Ordering::Relaxed), &[]))
            .build();
        let fast_path = Arc::new(AtomicU64::new(0));
        let f = fast_path.clone();
        let _fast = meter
            .u64_observable_counter("varco.fast_path.requests")
            .with_description(
                "Requests that varco's fast path proxied (the others went through pingora's proxy)",
            )
            .with_callback(move |o| o.observe(f.load(Ordering::Relaxed), &[]))
            .build();
        Ok(Self {
            registry,
            meter,
            _provider: provider,
            requests,
            duration,
            reloads,
            stripped,
            events,
            generation,
            last_reload_errors,
            fast_path,
        })
    }

    /// Records one finished request.
    pub(crate) fn request(&self, route: &[KeyValue; 2], status: u16, seconds: f64) {
        let [comune, service] = route;
        self.requests.add(
            1,
            &[
                comune.clone(),
                service.clone(),
                KeyValue::new("status", i64::from(status)),
            ],
        );
        self.duration.record(seconds, route);
    }

    /// Counts one request proxied by the fast path (an atomic add: the request path's).
    pub(crate) fn fast_path(&self) {
        self.fast_path.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts removed inbound headers.
    pub(crate) fn stripped(&self, n: usize) {
        self.stripped.add(n as u64, &[]);
    }

    /// Counts one security event of this kind (see the instrument's description).
    pub(crate) fn event(&self, kind: &'static str) {
        self.events.add(1, &[KeyValue::new("kind", kind)]);
    }

    /// Records a reload attempt.
    pub(crate) fn reload(&self, ok: bool, generation: u64, errors: usize) {
        self.reloads.add(
            1,
            &[KeyValue::new(
                "result",
                if ok { "success" } else { "failure" },
            )],
        );
        if ok {
            self.generation.store(generation, Ordering::Relaxed);
        }
        self.last_reload_errors
            .store(errors as u64, Ordering::Relaxed);
    }

    /// Reports the IdP registries: the age of each set, seconds to its expiry, its IdPs, failed
    /// fetches and when the last one was (the error itself is in the log and on `/readyz`).
    pub(crate) fn watch_idp_sources(&self, sources: Arc<crate::ops::idp_sources::IdpSources>) {
        if sources.sources().is_empty() {
            return;
        }
        let label = |s: &crate::ops::idp_sources::Status| [KeyValue::new("source", s.url.clone())];
        let src = sources.clone();
        let _age = self
            .meter
            .f64_observable_gauge("varco.idp.source.age")
            .with_unit("s")
            .with_description("Seconds since the IdP registry set serving was fetched")
            .with_callback(move |o| {
                for s in src.status() {
                    if let Some(a) = s.age {
                        o.observe(a, &label(&s));
                    }
                }
            })
            .build();
        let src = sources.clone();
        let _valid = self
            .meter
            .f64_observable_gauge("varco.idp.source.valid")
            .with_unit("s")
            .with_description("Seconds until the IdP registry set serving expires (validUntil, or max_age after its fetch); negative: expired, its IdPs are not offered")
            .with_callback(move |o| {
                for s in src.status() {
                    if let Some(v) = s.valid_for {
                        o.observe(v, &label(&s));
                    }
                }
            })
            .build();
        let src = sources.clone();
        let _idps = self
            .meter
            .u64_observable_gauge("varco.idp.source.idps")
            .with_description("IdPs in the IdP registry set serving")
            .with_callback(move |o| {
                for s in src.status() {
                    o.observe(s.idps as u64, &label(&s));
                }
            })
            .build();
        let src = sources.clone();
        let _failures = self
            .meter
            .u64_observable_counter("varco.idp.source.failures")
            .with_description("Failed fetches of the IdP registry (unreachable, refused, not verified) since start")
            .with_callback(move |o| {
                for s in src.status() {
                    o.observe(s.failures, &label(&s));
                }
            })
            .build();
        let src = sources;
        let _last = self
            .meter
            .i64_observable_gauge("varco.idp.source.last.failure")
            .with_unit("s")
            .with_description(
                "Unix time of the last failed fetch of the IdP registry (0: none since start)",
            )
            .with_callback(move |o| {
                for s in src.status() {
                    o.observe(s.last_failure.unwrap_or(0), &label(&s));
                }
            })
            .build();
    }

    /// Reports every certificate's expiry (`notAfter`, Unix seconds), by kind and name.
    pub(crate) fn watch_certificates(
        &self,
        certificates: Arc<std::sync::RwLock<Vec<crate::ops::expiry::CertExpiry>>>,
    ) {
        let _expiry = self
            .meter
            .i64_observable_gauge("varco.certificate.expiry")
            .with_unit("s")
            .with_description("notAfter of each certificate varco holds or trusts, Unix seconds: kind = sp, sp_next, idp, federation, registry_ca, tls, upstream_ca, upstream_client")
            .with_callback(move |o| {
                if let Ok(list) = certificates.read() {
                    for c in list.iter() {
                        o.observe(
                            c.not_after,
                            &[
                                KeyValue::new("kind", c.kind),
                                KeyValue::new("name", c.name.clone()),
                            ],
                        );
                    }
                }
            })
            .build();
    }

    /// Sets the generation served at start.
    pub(crate) fn set_generation(&self, generation: u64) {
        self.generation.store(generation, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// The `[comune, service]` attributes of a route, built once per snapshot.
/// Values are reference-counted so that recording clones no string.
pub(crate) fn route_attributes(comune: &str, service: &str) -> [KeyValue; 2] {
    let comune: Arc<str> = Arc::from(comune);
    let service: Arc<str> = Arc::from(service);
    [
        KeyValue::new("comune", opentelemetry::StringValue::from(comune)),
        KeyValue::new("service", opentelemetry::StringValue::from(service)),
    ]
}
