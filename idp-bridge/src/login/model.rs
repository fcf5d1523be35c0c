//! The door's vocabulary, whatever the protocol: what a login start asks for and sends, the
//! pending login the store keeps, and what a finished login yields or why it failed.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use policies::{AttributeMask, Audience, Level, LoginFailure};

use crate::audit::{AuditError, AuditRecord};
use crate::cns::{CnsError, CnsTrust};
use crate::keys::SpKeys;
use crate::oidc::error::OidcError;
use crate::oidc::pending::OidcPending;
use crate::oidc::provider::{OidcProvider, OidcRegistry};
use crate::principal::VerifiedPrincipal;
use crate::registry::{Idp, IdpRegistry};
use crate::saml::error::AcsError;
use crate::secret::{BindingDigest, BrowserBinding, RelayDigest, SessionKey};

/// How long a citizen has to complete a login at the IdP.
pub const LOGIN_TTL: Duration = Duration::from_secs(15 * 60);

/// Where the audit trail is written. The gateway's writer waits until a record is on the disk.
pub trait AuditSink: Sync {
    /// Writes `record`; `Err` when it could not be kept (the login then does not go on).
    fn record(&self, record: AuditRecord) -> impl Future<Output = Result<(), AuditError>> + Send;
}

/// The Service Provider as the IdPs know it: its configuration, keys and trusted IdPs.
#[derive(Debug, Clone, Copy)]
pub struct Sp<'a> {
    /// The configuration (entityID, public URL, declared attribute sets).
    pub config: &'a policies::Config,
    /// The SP's signing keys.
    pub keys: &'a SpKeys,
    /// The SAML IdPs it trusts.
    pub idps: &'a IdpRegistry,
    /// The OpenID providers it logs in through.
    pub oidc: &'a OidcRegistry,
    /// The CNS cards' CAs, when `[cns]` is configured.
    pub cns: Option<&'a CnsTrust>,
}

impl<'a> Sp<'a> {
    /// The provider named `id`: a SAML IdP by its entityID, an OpenID provider by its issuer,
    /// the CNS by [`policies::CNS_PROVIDER`].
    pub fn provider(&self, id: &str) -> Option<Provider<'a>> {
        if id == policies::CNS_PROVIDER {
            return self.cns.map(Provider::Cns);
        }
        self.idps
            .get(id)
            .map(|i| Provider::Saml(i))
            .or_else(|| self.oidc.get(id).map(Provider::Oidc))
    }
}

/// An identity provider, whichever its protocol.
#[derive(Debug, Clone, Copy)]
pub enum Provider<'a> {
    /// A SAML IdP (SPID, CIE).
    Saml(&'a Idp),
    /// An OpenID provider.
    Oidc(&'a OidcProvider),
    /// The CNS card, through a TLS client certificate.
    Cns(&'a CnsTrust),
}

impl Provider<'_> {
    /// Its ID: the SAML entityID, or the issuer as configured.
    pub fn id(&self) -> &str {
        match self {
            Provider::Saml(i) => &i.entity_id,
            Provider::Oidc(p) => &p.config.issuer,
            Provider::Cns(_) => policies::CNS_PROVIDER,
        }
    }

    /// Which button it sits behind.
    pub fn kind(&self) -> policies::IdpKind {
        match self {
            Provider::Saml(i) => i.kind,
            Provider::Oidc(p) => p.config.kind,
            // A button of its own.
            Provider::Cns(_) => policies::IdpKind::Other,
        }
    }
}

/// What the gateway asks for when a citizen picks an IdP.
#[derive(Debug, Clone)]
pub struct LoginStart<'a> {
    /// The provider chosen.
    pub provider: Provider<'a>,
    /// The level asked for (a minimum).
    pub level: Level,
    /// The declared attribute set asked for (`AttributeConsumingServiceIndex` in SAML).
    pub attribute_set: u16,
    /// The attributes wanted (OpenID Connect asks for these claims, those the provider maps).
    pub wanted: AttributeMask,
    /// The browser the login is bound to (its binding cookie).
    pub binding: &'a BrowserBinding,
    /// Where the citizen goes afterwards (a URL the gateway validated).
    pub return_to: String,
    /// The session this login replaces (a step-up, or a new login in a browser that had one):
    /// recorded now, because the IdP's cross-site answer does not carry the `SameSite=Lax`
    /// session cookie.
    pub replaces: Option<SessionKey>,
    /// The service host's handoff binding, when the login started from a host the portal's
    /// session cookie does not reach.
    pub handoff_binding: Option<BindingDigest>,
    /// Send the request with an auto-submitting form rather than a redirect (SAML HTTP-POST);
    /// an IdP that offers only one binding gets that one.
    pub prefer_post: bool,
    /// The SP entity the login is for (in aggregator mode, the service's comune): the
    /// AuthnRequest's `Issuer`, the answer's `Audience`, and what the session will serve.
    pub audience: Audience,
}

/// The message for the browser that takes it to the IdP.
#[derive(Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A 302 to this URL.
    Redirect(String),
    /// A page that posts these fields to `action` by itself.
    AutoPost {
        /// Where the form posts.
        action: String,
        /// Its fields, in order.
        fields: Vec<(&'static str, String)>,
    },
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The query and the fields carry the RelayState, a secret: only where it goes prints.
        match self {
            Outgoing::Redirect(url) => f
                .debug_tuple("Redirect")
                .field(&url.split('?').next().unwrap_or(""))
                .finish(),
            Outgoing::AutoPost { action, fields } => f
                .debug_struct("AutoPost")
                .field("action", action)
                .field("fields", &fields.iter().map(|(n, _)| n).collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// A login that was sent: the message for the browser, and what to keep until the answer.
#[derive(Debug)]
pub struct Started {
    /// What the browser gets.
    pub outgoing: Outgoing,
    /// What the store keeps (one-shot, for [`LOGIN_TTL`]).
    pub pending: PendingLogin,
}

/// Why a login could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The request could not be built or signed.
    #[error("cannot build the request: {0}")]
    Build(#[from] crate::Error),
    /// The request could not be recorded, so it was not sent.
    #[error("cannot write the audit trail: {0}")]
    Audit(AuditError),
    /// The OpenID provider cannot be used now (discovery failed, no usable acr mapping).
    #[error("{0}")]
    Provider(OidcError),
}

/// One login in flight: what the SP asked an IdP for, kept server-side until the answer comes
/// back, one-shot, bound to the browser that started it. Serialisable for shared stores (Redis):
/// it is the SP's own record, never read from the network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingLogin {
    /// What answers it names it by (the AuthnRequest's `ID` in SAML).
    request_id: String,
    /// When it was sent; the answer may not be older.
    issue_instant: DateTime<Utc>,
    /// entityID of the IdP it was sent to.
    idp: String,
    /// Level asked for.
    level: Level,
    /// The declared attribute set asked for.
    attribute_set: u16,
    /// The attributes that set asks this IdP for.
    asked: AttributeMask,
    /// Where the citizen goes after login (validated absolute URL).
    return_to: String,
    /// The browser that started it.
    binding: BindingDigest,
    /// The RelayState sent (SAML).
    relay_state: RelayDigest,
    /// See [`LoginStart::replaces`].
    replaces: Option<SessionKey>,
    /// See [`LoginStart::handoff_binding`].
    handoff_binding: Option<BindingDigest>,
    /// What an OpenID Connect login keeps besides (absent for SAML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oidc: Option<OidcPending>,
    /// See [`LoginStart::audience`] (logins stored before aggregator mode are the SP's).
    #[serde(default, skip_serializing_if = "Audience::is_sp")]
    pub(crate) audience: Audience,
}

impl PendingLogin {
    /// What a protocol's start records: crate-private, so that only a request that was really
    /// sent (and audited) leaves one.
    pub(crate) fn sent(
        request_id: String,
        issue_instant: DateTime<Utc>,
        relay_state: RelayDigest,
        asked: AttributeMask,
        req: LoginStart<'_>,
    ) -> Self {
        Self {
            request_id,
            issue_instant,
            idp: req.provider.id().to_string(),
            level: req.level,
            attribute_set: req.attribute_set,
            asked,
            return_to: req.return_to,
            binding: req.binding.digest(),
            relay_state,
            replaces: req.replaces,
            handoff_binding: req.handoff_binding,
            oidc: None,
            audience: req.audience,
        }
    }

    /// With what an OpenID Connect login keeps.
    pub(crate) fn with_oidc(mut self, oidc: OidcPending) -> Self {
        self.oidc = Some(oidc);
        self
    }

    /// What an OpenID Connect login kept.
    pub(crate) fn oidc(&self) -> Option<&OidcPending> {
        self.oidc.as_ref()
    }

    /// The attributes asked for.
    pub(crate) fn asked(&self) -> AttributeMask {
        self.asked
    }

    /// The key it is stored under: its ID with its browser's binding, so that only the browser
    /// that started the login can take it (a forged answer naming a known ID, from another
    /// browser, finds nothing and burns nothing).
    pub fn store_key(&self) -> String {
        Self::key_for(&self.request_id, &self.binding)
    }

    /// The store key of the login named `request_id` that the browser with `binding` started.
    pub fn key_for(request_id: &str, binding: &BindingDigest) -> String {
        format!(
            "{request_id}.{}",
            crate::secret::to_hex(&binding.as_bytes()[..16])
        )
    }

    /// What answers name it by.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }
    /// The IdP it was sent to.
    pub fn idp(&self) -> &str {
        &self.idp
    }
    /// The level asked for.
    pub fn level(&self) -> Level {
        self.level
    }
    /// The declared attribute set asked for.
    pub fn attribute_set(&self) -> u16 {
        self.attribute_set
    }
    /// The SP entity it was made for.
    pub fn audience(&self) -> &Audience {
        &self.audience
    }
    /// When it was sent.
    pub(crate) fn issue_instant(&self) -> DateTime<Utc> {
        self.issue_instant
    }
    /// The browser that started it.
    pub(crate) fn binding(&self) -> &BindingDigest {
        &self.binding
    }
    /// The RelayState sent.
    pub(crate) fn relay_state(&self) -> &RelayDigest {
        &self.relay_state
    }

    /// The login, now verified.
    pub(crate) fn verified(self, principal: VerifiedPrincipal) -> VerifiedLogin {
        VerifiedLogin {
            principal: principal.for_audience(self.audience),
            asked: self.asked,
            return_to: self.return_to,
            replaces: self.replaces,
            handoff_binding: self.handoff_binding,
        }
    }
}

/// A finished login: who, verified, and what the login was for.
#[derive(Debug)]
pub struct VerifiedLogin {
    /// The verified identity.
    pub principal: VerifiedPrincipal,
    /// The attributes the login asked for.
    pub asked: AttributeMask,
    /// Where the citizen was going.
    pub return_to: String,
    /// The session this login replaces, if any.
    pub replaces: Option<SessionKey>,
    /// The service host's handoff binding the login started with, if any.
    pub handoff_binding: Option<BindingDigest>,
}

/// Why a login did not finish.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    /// The answer was refused (or the IdP refused the citizen).
    #[error(transparent)]
    Refused(#[from] AcsError),
    /// The OpenID Connect callback was refused (or the provider refused the citizen, or could
    /// not be reached).
    #[error(transparent)]
    Oidc(#[from] OidcError),
    /// The CNS card's certificate was refused (or none came, or the login is not this
    /// browser's).
    #[error(transparent)]
    Cns(#[from] CnsError),
    /// The answer was good but could not be recorded, so it does not count.
    #[error("cannot write the audit trail: {0}")]
    Audit(AuditError),
}

impl FinishError {
    /// What the citizen is told; `None` when the service is unavailable (503) rather than the
    /// login refused.
    pub fn failure(&self) -> Option<LoginFailure> {
        match self {
            FinishError::Refused(e) => Some(e.failure()),
            FinishError::Oidc(e) => Some(e.failure()),
            FinishError::Cns(e) => Some(e.failure()),
            FinishError::Audit(_) => None,
        }
    }

    /// The HTTP status for it (never 404, never a 2xx).
    pub fn status(&self) -> u16 {
        match self {
            FinishError::Refused(e) => e.status(),
            FinishError::Oidc(e) => e.status(),
            FinishError::Cns(e) => e.status(),
            FinishError::Audit(_) => 503,
        }
    }
}
