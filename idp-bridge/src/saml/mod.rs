//! SAML 2.0 for SPID and CIE, behind the login door ([`crate::login`]): the AuthnRequest out
//! ([`authn`]), the Response in ([`acs`]), single logout ([`slo`]) and the SP's metadata
//! ([`metadata`]).

pub mod acs;
pub(crate) mod authn;
pub mod error;
pub mod metadata;
pub mod slo;

use crate::audit::{AuditKind, AuditRecord};
use crate::login::model::{
    AuditSink, FinishError, LoginStart, Outgoing, PendingLogin, Sp, StartError, Started,
    VerifiedLogin,
};
use crate::secret::BrowserBinding;
use acs::{AcsContext, AcsError, UnverifiedResponse};
use authn::LoginRequest;

/// Signs the AuthnRequest (HTTP-Redirect unless HTTP-POST is preferred or the only one the IdP
/// offers), records it, and returns it with its pending login.
pub(crate) async fn start(
    sp: Sp<'_>,
    idp: &crate::Idp,
    req: LoginStart<'_>,
    audit: &impl AuditSink,
) -> Result<Started, StartError> {
    let entity_id = &*sp.config.entity_id(&req.audience);
    let request = LoginRequest {
        idp,
        level: req.level,
        attribute_set: req.attribute_set,
    };
    let use_post = req.prefer_post || idp.sso_redirect.is_none();
    let (id, issue_instant, xml, relay_state, outgoing) = if use_post {
        let o = authn::post_request(entity_id, sp.keys, &request)?;
        let outgoing = Outgoing::AutoPost {
            action: o.action,
            fields: vec![
                ("SAMLRequest", o.saml_request),
                ("RelayState", o.relay_state.secret().to_string()),
            ],
        };
        (o.id, o.issue_instant, o.xml, o.relay_state, outgoing)
    } else {
        let o = authn::redirect_request(entity_id, sp.keys, &request)?;
        let outgoing = Outgoing::Redirect(o.redirect_url);
        (o.id, o.issue_instant, o.xml, o.relay_state, outgoing)
    };
    let record = AuditRecord::new(
        AuditKind::AuthnRequest,
        &idp.entity_id,
        &id,
        "sent",
        xml.as_bytes(),
    );
    audit.record(record).await.map_err(StartError::Audit)?;
    let asked = sp.config.sp.asked_by(req.attribute_set, idp.kind);
    let pending = PendingLogin::sent(id, issue_instant, relay_state.digest(), asked, req);
    Ok(Started { outgoing, pending })
}

/// Verifies a posted Response and records it with the outcome; `at` is the entity whose ACS it
/// was posted to.
#[allow(clippy::too_many_arguments)] // one per thing the ACS received, each checked
pub(crate) async fn finish(
    sp: Sp<'_>,
    at: &policies::Audience,
    received: Result<UnverifiedResponse, AcsError>,
    relay_state: Option<&str>,
    message: &[u8],
    pending: Option<PendingLogin>,
    binding: Option<&BrowserBinding>,
    audit: &impl AuditSink,
) -> Result<VerifiedLogin, FinishError> {
    let ctx = AcsContext {
        config: sp.config,
        at,
        idps: sp.idps,
    };
    let result = received.and_then(|r| acs::verify(&ctx, &r, pending, relay_state, binding));
    let (idp, outcome) = match &result {
        Ok(l) => (l.principal.idp().to_string(), "accepted".to_string()),
        Err(e) => ("-".to_string(), format!("refused: {e}")),
    };
    // A post that answers no login of this browser was never verified: junk must not be able to
    // fill the disk, so only its head and digest are kept.
    let unverified = matches!(
        &result,
        Err(AcsError::Malformed(_)
            | AcsError::Dangerous(_)
            | AcsError::NoPendingLogin
            | AcsError::WrongBrowser)
    );
    let kind = AuditKind::Response;
    let record = if unverified {
        AuditRecord::bounded(kind, &idp, "-", &outcome, message)
    } else {
        AuditRecord::new(kind, &idp, "-", &outcome, message)
    };
    let recorded = audit.record(record).await;
    let login = result?;
    recorded.map_err(FinishError::Audit)?;
    Ok(login)
}
