//! The decision for one request to one service, and the proof that it was allowed.

use crate::identity::{Access, AttributeMask, Level};
use crate::policy::Service;

/// Proof that the policy allowed a request. Only [`decide`] builds one; the gateway needs it to
/// pick an upstream, so a code path that forgot to decide cannot proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit(());

/// What to do with a request for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Proxy it.
    Allow(Permit),
    /// Send the citizen to log in (or step up) at this level first.
    Login {
        /// The level the service needs.
        level: Level,
    },
}

/// What a session holds, as far as a decision is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Held {
    /// The level the citizen authenticated at.
    pub level: Level,
    /// The attributes asked for at that login (whether or not the IdP released each one: an
    /// attribute the citizen lacks must not send them round the login again).
    pub attributes: AttributeMask,
}

impl Held {
    /// Whether this session is enough for `access` needing the attributes `needs`: the level,
    /// and every attribute asked for at login.
    pub fn allows(self, access: Access, needs: AttributeMask) -> bool {
        match access {
            Access::Public => true,
            Access::Login(level) => self.level >= level && self.attributes.covers(needs),
        }
    }
}

/// Decides for `service` given what the caller's session holds, if any. Fails closed: anything
/// but a public service, or a session at a sufficient level that was given every attribute the
/// service needs, asks for login (a step-up when there is a session).
pub fn decide(service: &Service, session: Option<Held>) -> Decision {
    match service.access {
        Access::Public => Decision::Allow(Permit(())),
        Access::Login(needed) => match session {
            Some(held) if held.allows(service.access, service.attribute_mask()) => {
                Decision::Allow(Permit(()))
            }
            _ => Decision::Login { level: needed },
        },
    }
}

/// Why a login did not complete, as the citizen is told: the one vocabulary that the protocols
/// (which find out why) and the pages (which explain it) share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// A SPID error code sent by the identity provider (19 for nr19...).
    Spid(u8),
    /// The login took too long, was already used, or was started in another browser.
    Expired,
    /// The identity provider's answer could not be accepted.
    Rejected,
    /// The browser already has a session of another person on this site.
    OtherPerson,
    /// The citizen (or the provider for them) declined the login: OpenID Connect's
    /// `access_denied`.
    Denied,
    /// The provider needs the citizen to log in, pick an account or consent first: OpenID
    /// Connect's `login_required`, `consent_required`, `interaction_required`,
    /// `account_selection_required`.
    InteractionRequired,
    /// The provider could not complete the login for reasons of its own (`server_error`,
    /// `temporarily_unavailable`, a refused request).
    ProviderFailed,
    /// A CNS login found no card: the browser sent no certificate.
    NoCertificate,
    /// The card's certificate is revoked or suspended.
    CertificateRevoked,
    /// The certificate sent is not a valid CNS card's (another issuer, expired, no fiscal code).
    CertificateRefused,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Attribute;
    use crate::policy::{Route, ServiceId, Upstream};

    fn service(access: Access, attributes: Vec<Attribute>) -> Service {
        Service {
            id: ServiceId("tari".into()),
            name: "TARI".into(),
            description: String::new(),
            category: crate::Category::ALL[0],
            route: Route {
                host: "comune.example".into(),
                path_prefix: "/tari".into(),
                match_prefix: "/tari".into(),
            },
            upstream: Upstream {
                tls: false,
                host: "127.0.0.1".into(),
                port: 9000,
            },
            access,
            attributes,
            headers: Vec::new(),
            connect_timeout: None,
            read_timeout: None,
            keywords: Vec::new(),
            help_url: None,
            unlisted: false,
            upstream_tls: Default::default(),
            upstream_host: None,
        }
    }

    fn held(level: Level, attributes: &[Attribute]) -> Option<Held> {
        Some(Held {
            level,
            attributes: attributes.iter().copied().collect(),
        })
    }

    #[test]
    fn public_services_need_nothing() {
        let s = service(Access::Public, vec![]);
        assert!(matches!(decide(&s, None), Decision::Allow(_)));
        assert!(matches!(
            decide(&s, held(Level::SpidL1, &[])),
            Decision::Allow(_)
        ));
    }

    #[test]
    fn a_level_is_needed_and_anything_lower_steps_up() {
        let s = service(Access::Login(Level::SpidL2), vec![Attribute::FiscalNumber]);
        let login = Decision::Login {
            level: Level::SpidL2,
        };
        assert_eq!(decide(&s, None), login);
        assert_eq!(
            decide(&s, held(Level::SpidL1, &[Attribute::FiscalNumber])),
            login
        );
        for l in [Level::SpidL2, Level::SpidL3] {
            assert!(matches!(
                decide(&s, held(l, &[Attribute::FiscalNumber, Attribute::Name])),
                Decision::Allow(_)
            ));
        }
    }

    #[test]
    fn a_missing_attribute_asks_for_a_new_login_even_at_a_higher_level() {
        let s = service(
            Access::Login(Level::SpidL1),
            vec![Attribute::FiscalNumber, Attribute::Email],
        );
        assert_eq!(
            decide(&s, held(Level::SpidL3, &[Attribute::FiscalNumber])),
            Decision::Login {
                level: Level::SpidL1
            }
        );
        assert!(matches!(
            decide(
                &s,
                held(Level::SpidL1, &[Attribute::Email, Attribute::FiscalNumber])
            ),
            Decision::Allow(_)
        ));
    }
}
