//! A CNS login behind the login door. [`start`] sends the browser to `[cns] host`, whose TLS
//! handshake asks for the card; the gateway's endpoint there carries the certificate chain the
//! handshake received back to the portal, one-shot, and [`finish`] verifies it against the
//! pending login of the browser that started it.

use chrono::Utc;
use policies::{Attribute, AttributeMask};

use super::{CnsError, CnsTrust, RELEASED};
use crate::audit::{AuditKind, AuditRecord};
use crate::login::model::{
    AuditSink, FinishError, LoginStart, Outgoing, PendingLogin, Sp, StartError, Started,
    VerifiedLogin, LOGIN_TTL,
};
use crate::principal::{Principal, Protocol};
use crate::secret::{BrowserBinding, RelayDigest};

/// The path of the endpoint on `[cns] host` that asks for the card.
pub const CNS_PATH: &str = "/.sso/cns";
/// The portal's endpoint the card's certificate comes back to.
pub const CNS_CALLBACK_PATH: &str = "/.sso/cns/callback";

/// Where the browser goes to present its card for the login `request_id`: `[cns] host`, on the
/// portal's port.
pub fn cns_url(config: &policies::Config, trust: &CnsTrust, request_id: &str) -> String {
    let port = match config.server.public_url.url.port() {
        Some(p) => format!(":{p}"),
        None => String::new(),
    };
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("login", request_id);
    format!(
        "https://{}{port}{CNS_PATH}?{}",
        trust.config.host,
        q.finish()
    )
}

/// What a CNS login gives of `wanted`.
fn asked_of(wanted: AttributeMask) -> AttributeMask {
    wanted.iter().filter(|a| RELEASED.contains(a)).collect()
}

pub(crate) async fn start(
    sp: Sp<'_>,
    trust: &CnsTrust,
    req: LoginStart<'_>,
    audit: &impl AuditSink,
) -> Result<Started, StartError> {
    let request_id = format!("_cns{}", crate::secret::random_token(16, false));
    let url = cns_url(sp.config, trust, &request_id);
    let record = AuditRecord::new(
        AuditKind::CnsRequest,
        policies::CNS_PROVIDER,
        &request_id,
        "sent",
        url.as_bytes(),
    );
    audit.record(record).await.map_err(StartError::Audit)?;
    let asked = asked_of(req.wanted);
    let relay = RelayDigest::of(request_id.as_bytes());
    let pending = PendingLogin::sent(request_id, Utc::now(), relay, asked, req);
    Ok(Started {
        outgoing: Outgoing::Redirect(url),
        pending,
    })
}

/// What the gateway's endpoint on `[cns] host` received: the login it names (unverified) and
/// the chain the TLS handshake proved the browser holds the key of (DER, the card's first).
pub(crate) struct CnsCallback {
    pub login: String,
    pub chain: Vec<Vec<u8>>,
}

pub(crate) async fn finish(
    sp: Sp<'_>,
    callback: CnsCallback,
    pending: Option<PendingLogin>,
    binding: Option<&BrowserBinding>,
    audit: &impl AuditSink,
) -> Result<VerifiedLogin, FinishError> {
    let now = Utc::now();
    let result = verify(sp, &callback, pending, binding, now);
    let outcome = match &result {
        Ok(_) => "accepted".to_string(),
        Err(e) => format!("refused: {e}"),
    };
    let message = pem_of(&callback.chain);
    let record = AuditRecord::new(
        AuditKind::ClientCertificate,
        policies::CNS_PROVIDER,
        &callback.login,
        &outcome,
        message.as_bytes(),
    );
    let recorded = audit.record(record).await;
    let login = result.map_err(FinishError::Cns)?;
    recorded.map_err(FinishError::Audit)?;
    Ok(login)
}

fn verify(
    sp: Sp<'_>,
    callback: &CnsCallback,
    pending: Option<PendingLogin>,
    binding: Option<&BrowserBinding>,
    now: chrono::DateTime<Utc>,
) -> Result<VerifiedLogin, CnsError> {
    let trust = sp.cns.ok_or(CnsError::NotConfigured)?;
    let pending = pending.ok_or(CnsError::NoPendingLogin)?;
    // The store's key already binds the browser; a login of another protocol, or one past its
    // time, is not this answer's either.
    let ours = pending.idp() == policies::CNS_PROVIDER
        && pending.request_id() == callback.login
        && binding.is_some_and(|b| b.digest() == *pending.binding())
        && now - pending.issue_instant()
            <= chrono::Duration::from_std(LOGIN_TTL).unwrap_or(chrono::Duration::zero());
    if !ours {
        return Err(CnsError::NoPendingLogin);
    }
    let holder = trust.verify(&callback.chain, now)?;
    let mut attributes = vec![(
        Attribute::FiscalNumber,
        format!("TINIT-{}", holder.fiscal_code),
    )];
    if let Some(n) = holder.given_name {
        attributes.push((Attribute::Name, n));
    }
    if let Some(n) = holder.family_name {
        attributes.push((Attribute::FamilyName, n));
    }
    if pending
        .asked()
        .iter()
        .any(|a| !attributes.iter().any(|(have, _)| *have == a))
    {
        return Err(CnsError::Subject(
            "the certificate lacks a name the service needs",
        ));
    }
    let principal = Principal::asserted(
        Protocol::Cns,
        policies::CNS_PROVIDER.to_string(),
        holder.certificate_digest,
        None,
        trust.config.level,
        Some(now),
        attributes,
    );
    Ok(pending.verified(principal))
}

/// The chain as PEM, for the audit trail.
fn pem_of(chain: &[Vec<u8>]) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    for der in chain {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap_or(""));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}
