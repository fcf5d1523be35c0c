//! The login door: one entry to start a login ([`start`]), one to finish it ([`finish`]),
//! whatever the protocol. The gateway hands in what the browser asked for, or sent back, and
//! the pending login it took from its store; it gets back a message to send the browser (a
//! redirect or an auto-POST), or a [`VerifiedLogin`] with the verified principal and what the
//! login asked for. Every message sent and received is written to the audit trail here, before
//! the caller sees the outcome: no record, no login (SPID requires the SP to keep them).
//!
//! Two protocols are behind the door: SAML ([`crate::saml`]) and OpenID Connect
//! ([`crate::oidc`]). Each has its own [`Callback`] constructor; the [`PendingLogin`] and the
//! [`VerifiedLogin`] are the same.

pub(crate) mod model;

pub use self::model::{
    AuditSink, FinishError, LoginStart, Outgoing, PendingLogin, Provider, Sp, StartError, Started,
    VerifiedLogin, LOGIN_TTL,
};
use crate::cns::flow::CnsCallback;
use crate::oidc::flow::OidcCallback;
use crate::saml::acs::UnverifiedResponse;
use crate::saml::error::AcsError;
use crate::secret::BrowserBinding;

/// Starts a login: the signed request for the browser, the pending login for the store. The
/// request is in the audit trail before this returns.
pub async fn start(
    sp: Sp<'_>,
    req: LoginStart<'_>,
    audit: &impl AuditSink,
) -> Result<Started, StartError> {
    match req.provider {
        Provider::Saml(idp) => crate::saml::start(sp, idp, req, audit).await,
        Provider::Oidc(p) => crate::oidc::flow::start(sp, p, req, audit).await,
        Provider::Cns(t) => crate::cns::flow::start(sp, t, req, audit).await,
    }
}

/// What an identity provider sent back to varco's callback, not verified in any way yet.
pub struct Callback(Received);

enum Received {
    Saml(SamlCallback),
    Oidc(OidcCallback),
    Cns(CnsCallback),
}

struct SamlCallback {
    /// The entity whose ACS it was posted to.
    at: policies::Audience,
    /// The answer, or why it is not even a well-formed one.
    received: Result<UnverifiedResponse, AcsError>,
    /// The `RelayState` field.
    relay_state: Option<String>,
    /// The message as received, for the audit trail.
    message: Vec<u8>,
}

impl Callback {
    /// The form a browser posted to the ACS of `at`'s entity (SAML HTTP-POST binding).
    pub fn saml_post(body: &[u8], at: policies::Audience) -> Self {
        let mut response = None;
        let mut relay_state = None;
        // A bounded look: a form of thousands of fields costs no more than eight.
        for (k, v) in url::form_urlencoded::parse(body).take(8) {
            match &*k {
                "SAMLResponse" if response.is_none() => response = Some(v.into_owned()),
                "RelayState" if relay_state.is_none() => relay_state = Some(v.into_owned()),
                _ => {}
            }
        }
        let Some(response) = response else {
            return Self(Received::Saml(SamlCallback {
                at,
                received: Err(AcsError::Malformed("no SAMLResponse field")),
                relay_state,
                message: body.to_vec(),
            }));
        };
        let received = crate::saml::acs::receive(&response);
        let message = match &received {
            Ok(r) => r.xml().as_bytes().to_vec(),
            Err(_) => {
                use base64::Engine as _;
                let compact: String = response.split_ascii_whitespace().collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .unwrap_or_else(|_| response.into_bytes())
            }
        };
        Self(Received::Saml(SamlCallback {
            at,
            received,
            relay_state,
            message,
        }))
    }

    /// The query an OpenID provider redirected the browser to the callback with (`code`,
    /// `state`, `iss`, or `error`).
    pub fn oidc_redirect(query: &str) -> Self {
        Self(Received::Oidc(OidcCallback::parse(query)))
    }

    /// What the CNS host received for the login `login` (its `login` query field, unverified):
    /// the certificate chain of its TLS handshake, DER, the card's first (empty: none was sent).
    pub fn cns(login: String, chain: Vec<Vec<u8>>) -> Self {
        Self(Received::Cns(CnsCallback { login, chain }))
    }

    /// The ID of the pending login this answer claims to answer (unverified: use it only to take
    /// that login from the store). `None` for an answer that is not even well formed.
    pub fn answers(&self) -> Option<std::borrow::Cow<'_, str>> {
        match &self.0 {
            Received::Saml(c) => c
                .received
                .as_ref()
                .ok()
                .map(|r| std::borrow::Cow::Borrowed(r.in_response_to())),
            Received::Oidc(c) => c.answers().map(std::borrow::Cow::Owned),
            Received::Cns(c) => Some(std::borrow::Cow::Borrowed(&c.login)),
        }
    }
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The message holds the citizen's data (names, fiscal number): only its size prints.
        match &self.0 {
            Received::Saml(c) => f
                .debug_struct("Callback")
                .field("received", &c.received.as_ref().map(|_| "well formed"))
                .field("message_bytes", &c.message.len())
                .finish_non_exhaustive(),
            Received::Oidc(c) => f.debug_tuple("Callback").field(c).finish(),
            Received::Cns(c) => f
                .debug_struct("Callback")
                .field("certificates", &c.chain.len())
                .finish_non_exhaustive(),
        }
    }
}

/// Finishes a login: verifies the `callback` against the `pending` login it answers (as taken,
/// once, from the store: `None` when there is none) and the browser's `binding`. The answer is
/// in the audit trail, with the outcome, before this returns.
pub async fn finish(
    sp: Sp<'_>,
    callback: Callback,
    pending: Option<PendingLogin>,
    binding: Option<&BrowserBinding>,
    audit: &impl AuditSink,
) -> Result<VerifiedLogin, FinishError> {
    match callback.0 {
        Received::Saml(c) => {
            crate::saml::finish(
                sp,
                &c.at,
                c.received,
                c.relay_state.as_deref(),
                &c.message,
                pending,
                binding,
                audit,
            )
            .await
        }
        Received::Oidc(c) => crate::oidc::flow::finish(sp, c, pending, binding, audit).await,
        Received::Cns(c) => crate::cns::flow::finish(sp, c, pending, binding, audit).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditRecord;

    #[test]
    fn a_callback_reads_a_bounded_form() {
        let c = Callback::saml_post(b"RelayState=x", policies::Audience::Sp);
        assert_eq!(c.answers(), None);
        assert!(matches!(
            c.0,
            Received::Saml(SamlCallback {
                received: Err(AcsError::Malformed(_)),
                ..
            })
        ));
        // The field past the eighth is never looked at.
        let mut flood = "a=1&".repeat(8);
        flood.push_str("SAMLResponse=PHg%2B");
        assert!(matches!(
            Callback::saml_post(flood.as_bytes(), policies::Audience::Sp).0,
            Received::Saml(SamlCallback {
                received: Err(AcsError::Malformed("no SAMLResponse field")),
                ..
            })
        ));
    }

    #[test]
    fn raw_saml_never_prints() {
        use base64::Engine as _;
        let xml = "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_r\" InResponseTo=\"_a\"><x>RSSMRA80A01H501U</x></samlp:Response>";
        let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("SAMLResponse", &b64)
            .finish();
        let c = Callback::saml_post(form.as_bytes(), policies::Audience::Sp);
        assert_eq!(c.answers().as_deref(), Some("_a"));
        let Received::Saml(inner) = &c.0 else {
            panic!("a SAML callback")
        };
        let printed = format!("{c:?} {:?}", inner.received);
        assert!(!printed.contains("RSSMRA"), "{printed}");
        let record = AuditRecord::new(
            crate::AuditKind::Response,
            "i",
            "-",
            "accepted",
            xml.as_bytes(),
        );
        assert!(!format!("{record:?}").contains("RSSMRA"));
        let secret = crate::RelayState::new();
        let out = Outgoing::Redirect(format!(
            "https://idp.example/sso?RelayState={}",
            secret.secret()
        ));
        let post = Outgoing::AutoPost {
            action: "https://idp.example/sso".into(),
            fields: vec![("RelayState", secret.secret().to_string())],
        };
        assert!(!format!("{out:?} {post:?}").contains(secret.secret()));
    }

    #[test]
    fn the_store_key_binds_the_browser() {
        let a = BrowserBinding::new().digest();
        let b = BrowserBinding::new().digest();
        assert_ne!(
            PendingLogin::key_for("_x", &a),
            PendingLogin::key_for("_x", &b)
        );
        assert!(PendingLogin::key_for("_x", &a).starts_with("_x."));
    }
}
