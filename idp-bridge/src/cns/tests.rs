use std::path::PathBuf;

use chrono::{Duration, Utc};
use policies::{Attribute, AttributeMask, Level};

use super::*;
use crate::insecure_test_idp::cns::{CardSubject, TestCnsCa};
use crate::insecure_test_idp::{ready, DiscardAudit};
use crate::login::{Callback, FinishError, LoginStart, Outgoing, Provider, Sp};
use crate::{BrowserBinding, IdpRegistry, OidcRegistry, SpKeys};

/// A `[cns]` over `ca` with the revocation list `crl`, in a temporary directory.
struct Setup {
    _dir: tempfile::TempDir,
    config: CnsConfig,
}

fn setup(cas: &[&TestCnsCa], crls: &[Vec<u8>]) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ca = Vec::new();
    for (i, c) in cas.iter().enumerate() {
        let p = dir.path().join(format!("ca-{i}.pem"));
        std::fs::write(&p, c.cert_pem()).expect("write");
        ca.push(p);
    }
    let mut crl = Vec::new();
    for (i, c) in crls.iter().enumerate() {
        let p = dir.path().join(format!("ca-{i}.crl"));
        std::fs::write(&p, c).expect("write");
        crl.push(p);
    }
    Setup {
        _dir: dir,
        config: CnsConfig {
            host: "cns.portal.example".into(),
            ca,
            crl,
            level: Level::SpidL2,
            display_name: "CNS".into(),
        },
    }
}

fn tomorrow() -> chrono::DateTime<Utc> {
    Utc::now() + Duration::days(1)
}

#[test]
fn fiscal_codes_are_checked_by_layout_and_check_character() {
    for good in ["RSSMRA80A01H501U", "BNCGVN75L15G702L", "VRDLGU85T10D612O"] {
        assert!(is_fiscal_code(good), "{good}");
    }
    // Omocodia: the last digit replaced by its letter (1 → M), with its own check character.
    assert!(is_fiscal_code("RSSMRA80A01H50MM"));
    for bad in [
        "",
        "RSSMRA80A01H501A",     // wrong check character
        "rssmra80a01h501u",     // lower case is not how cards write it
        "RSSMRA80Z01H501U",     // Z is no month
        "RSSMRA80A01H501",      // short
        "RSSMRA80A01H501UU",    // long
        "1SSMRA80A01H501U",     // a digit in the name part
        "RSSMRA80A01H501\u{0}", // NUL
        "RSSMRA80A01H5ü1U",
        "12345678901", // a company's fiscal number is no person's
    ] {
        assert!(!is_fiscal_code(bad), "{bad:?}");
    }
}

#[test]
fn the_holder_is_read_from_the_cns_subject() {
    let ca = TestCnsCa::new("CA Cittadini di Prova").expect("ca");
    let card = ca.card("RSSMRA80A01H501U", "MARIO", "ROSSI").expect("card");
    let h = holder_of(&card.cert).expect("holder");
    assert_eq!(h.fiscal_code, "RSSMRA80A01H501U");
    assert_eq!(h.given_name.as_deref(), Some("MARIO"));
    assert_eq!(h.family_name.as_deref(), Some("ROSSI"));
    assert!(
        !format!("{h:?}").contains("RSSMRA"),
        "a holder never prints"
    );

    let with = |s: CardSubject| ca.card_with(&s, -1, 30, true).map(|c| holder_of(&c.cert));
    // An older card: the fiscal code only in the common name.
    let cn_only = CardSubject {
        serial_number: None,
        ..CardSubject::cns("BNCGVN75L15G702L", "GIOVANNI", "BIANCHI")
    };
    assert_eq!(
        with(cn_only).expect("card").map(|h| h.fiscal_code),
        Ok("BNCGVN75L15G702L".to_string())
    );
    // `IT:` as the older serialNumber prefix, and a card number as the only serialNumber.
    let it_prefix = CardSubject {
        common_name: Some("Giovanni Bianchi".into()),
        serial_number: Some("IT:BNCGVN75L15G702L".into()),
        ..Default::default()
    };
    assert_eq!(
        with(it_prefix).expect("card").map(|h| h.fiscal_code),
        Ok("BNCGVN75L15G702L".to_string())
    );
}

#[test]
fn a_hostile_subject_is_refused() {
    let ca = TestCnsCa::new("CA").expect("ca");
    let refused = |s: CardSubject| {
        let card = ca.card_with(&s, -1, 30, true).expect("card");
        holder_of(&card.cert).expect_err("refused")
    };
    // Two fiscal codes: which one would it be?
    assert!(matches!(
        refused(CardSubject {
            serial_number: Some("TINIT-BNCGVN75L15G702L".into()),
            ..CardSubject::cns("RSSMRA80A01H501U", "M", "R")
        }),
        CnsError::Subject(_)
    ));
    // None at all, or not a valid one.
    assert!(matches!(
        refused(CardSubject {
            common_name: Some("Mario Rossi".into()),
            ..Default::default()
        }),
        CnsError::Subject(_)
    ));
    assert!(matches!(
        refused(CardSubject::cns("RSSMRA80A01H501A", "M", "R")),
        CnsError::Subject(_)
    ));
    assert!(matches!(
        refused(CardSubject {
            common_name: Some("RSSMRA80A01H501U\u{0}/1.x".into()),
            serial_number: None,
            ..Default::default()
        }),
        CnsError::Subject(_)
    ));
}

#[test]
fn a_card_is_verified_against_the_cas_and_their_revocation_lists() {
    let ca = TestCnsCa::new("CA Cittadini").expect("ca");
    let good = ca.card("RSSMRA80A01H501U", "MARIO", "ROSSI").expect("card");
    let revoked = ca
        .card("BNCGVN75L15G702L", "GIOVANNI", "BIANCHI")
        .expect("card");
    let s = setup(&[&ca], &[ca.crl(&[&revoked], tomorrow()).expect("crl")]);
    let trust = CnsTrust::load(&s.config).expect("loads");
    let now = Utc::now();

    let h = trust.verify(&[good.der()], now).expect("accepted");
    assert_eq!(h.fiscal_code, "RSSMRA80A01H501U");
    assert_eq!(h.certificate_digest.len(), 64);

    assert!(matches!(
        trust.verify(&[revoked.der()], now),
        Err(CnsError::Revoked { .. })
    ));
    // Another CA's card, an expired card, a card not for client authentication.
    let stranger = TestCnsCa::new("CA Cittadini").expect("ca");
    let forged = stranger
        .card("RSSMRA80A01H501U", "MARIO", "ROSSI")
        .expect("card");
    assert!(matches!(
        trust.verify(&[forged.der()], now),
        Err(CnsError::Untrusted(_))
    ));
    let expired = ca
        .card_with(
            &CardSubject::cns("RSSMRA80A01H501U", "M", "R"),
            -30,
            -1,
            true,
        )
        .expect("card");
    assert!(matches!(
        trust.verify(&[expired.der()], now),
        Err(CnsError::Untrusted(_))
    ));
    let server = ca
        .card_with(
            &CardSubject::cns("RSSMRA80A01H501U", "M", "R"),
            -1,
            30,
            false,
        )
        .expect("card");
    assert!(matches!(
        trust.verify(&[server.der()], now),
        Err(CnsError::Untrusted(_))
    ));
    // The stranger's card with the real CA's certificate beside it proves nothing.
    assert!(matches!(
        trust.verify(&[forged.der(), ca.cert.to_der().expect("der")], now),
        Err(CnsError::Untrusted(_))
    ));

    // Nothing, garbage, too much.
    assert_eq!(trust.verify(&[], now), Err(CnsError::NoCertificate));
    assert!(matches!(
        trust.verify(&[b"\x30\x03\x02\x01".to_vec()], now),
        Err(CnsError::Malformed(_))
    ));
    assert!(matches!(
        trust.verify(&vec![good.der(); 5], now),
        Err(CnsError::Malformed(_))
    ));
    assert!(matches!(
        trust.verify(&[vec![0x30; MAX_CERTIFICATE + 1]], now),
        Err(CnsError::Malformed(_))
    ));
}

#[test]
fn a_revocation_list_past_its_next_update_stops_its_cards() {
    let ca = TestCnsCa::new("CA").expect("ca");
    let card = ca.card("RSSMRA80A01H501U", "MARIO", "ROSSI").expect("card");
    let s = setup(
        &[&ca],
        &[ca.crl(&[], Utc::now() - Duration::hours(1)).expect("crl")],
    );
    let trust = CnsTrust::load(&s.config).expect("a stale list still loads");
    let e = trust
        .verify(&[card.der()], Utc::now())
        .expect_err("refused");
    assert!(matches!(e, CnsError::StaleRevocationList { .. }), "{e}");
    assert_eq!(e.status(), 503);
    assert_eq!(e.failure(), LoginFailure::ProviderFailed);
    let dates = trust.dates();
    assert!(dates
        .iter()
        .any(|d| d.kind == "cns_crl" && d.at < Utc::now().timestamp()));
    assert!(dates.iter().any(|d| d.kind == "cns_ca"));
}

#[test]
fn loading_names_the_file_at_fault() {
    let ca = TestCnsCa::new("CA").expect("ca");
    let other = TestCnsCa::new("Other CA").expect("ca");
    let message = |s: &Setup| CnsTrust::load(&s.config).expect_err("refused").to_string();

    // A list signed by a CA that is not configured.
    let s = setup(&[&ca], &[other.crl(&[], tomorrow()).expect("crl")]);
    let m = message(&s);
    assert!(
        m.contains("ca-0.crl") && m.contains("not signed by any CA"),
        "{m}"
    );
    // A CA without a list.
    let s = setup(&[&ca, &other], &[ca.crl(&[], tomorrow()).expect("crl")]);
    let m = message(&s);
    assert!(
        m.contains("ca-1.pem") && m.contains("no revocation list"),
        "{m}"
    );
    // Garbage in either.
    let s = setup(&[&ca], &[b"not a list".to_vec()]);
    assert!(message(&s).contains("not a certificate revocation list"));
    let mut s = setup(&[&ca], &[ca.crl(&[], tomorrow()).expect("crl")]);
    std::fs::write(
        &s.config.ca[0],
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    assert!(message(&s).contains("ca-0.pem"));
    s.config.ca = vec![PathBuf::from("/nonexistent/ca.pem")];
    assert!(message(&s).contains("cannot read"));
}

/// A level 2 login through `provider` for the browser with `binding`.
fn login_start<'a>(
    provider: Provider<'a>,
    binding: &'a BrowserBinding,
    wanted: AttributeMask,
) -> LoginStart<'a> {
    LoginStart {
        provider,
        level: Level::SpidL2,
        attribute_set: 0,
        wanted,
        binding,
        return_to: "https://portal.example/".into(),
        replaces: None,
        handoff_binding: None,
        prefer_post: false,
        audience: policies::Audience::Sp,
    }
}

/// The example deployment's configuration, for the door's SP.
fn config() -> &'static policies::Config {
    static CONFIG: std::sync::OnceLock<policies::Config> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/varco.toml");
        policies::load(&path).expect("the example loads").config
    })
}

#[test]
fn the_door_starts_and_finishes_a_cns_login_once_for_its_browser() {
    let ca = TestCnsCa::new("CA").expect("ca");
    let card = ca.card("RSSMRA80A01H501U", "MARIO", "ROSSI").expect("card");
    let s = setup(&[&ca], &[ca.crl(&[], tomorrow()).expect("crl")]);
    let trust = CnsTrust::load(&s.config).expect("loads");
    let config = config();
    let keys = SpKeys::load(&config.sp.key, &config.sp.cert).expect("keys");
    let (idps, oidc) = (IdpRegistry::default(), OidcRegistry::default());
    let sp = Sp {
        config,
        keys: &keys,
        idps: &idps,
        oidc: &oidc,
        cns: Some(&trust),
    };
    let Some(provider @ Provider::Cns(_)) = sp.provider(policies::CNS_PROVIDER) else {
        panic!("the CNS is a provider");
    };
    let binding = BrowserBinding::new();
    let start = |wanted| login_start(provider, &binding, wanted);
    let wanted: AttributeMask = [Attribute::FiscalNumber, Attribute::Name]
        .into_iter()
        .collect();
    let started = ready(crate::login::start(sp, start(wanted), &DiscardAudit)).expect("started");
    let Outgoing::Redirect(url) = &started.outgoing else {
        panic!("a redirect");
    };
    let id = started.pending.request_id().to_string();
    assert!(url.starts_with("https://cns.portal.example"), "{url}");
    assert!(url.ends_with(&format!("/.sso/cns?login={id}")), "{url}");

    let finish = |pending, binding: Option<&BrowserBinding>, chain: Vec<Vec<u8>>| {
        ready(crate::login::finish(
            sp,
            Callback::cns(id.clone(), chain),
            pending,
            binding,
            &DiscardAudit,
        ))
    };
    // Without the pending login (used, expired, another browser's), nothing.
    let e = finish(None, Some(&binding), vec![card.der()]).expect_err("refused");
    assert!(
        matches!(e, FinishError::Cns(CnsError::NoPendingLogin)),
        "{e}"
    );
    // Another browser's binding.
    let other = BrowserBinding::new();
    let e = finish(
        Some(started.pending.clone()),
        Some(&other),
        vec![card.der()],
    )
    .expect_err("refused");
    assert!(
        matches!(e, FinishError::Cns(CnsError::NoPendingLogin)),
        "{e}"
    );
    // No card.
    let e = finish(Some(started.pending.clone()), Some(&binding), vec![]).expect_err("refused");
    assert_eq!(e.failure(), Some(LoginFailure::NoCertificate));

    let login = finish(
        Some(started.pending.clone()),
        Some(&binding),
        vec![card.der()],
    )
    .expect("verified");
    let p = &login.principal;
    assert_eq!(p.protocol(), crate::Protocol::Cns);
    assert_eq!(p.idp(), "cns");
    assert_eq!(p.level(), Level::SpidL2);
    assert_eq!(
        p.fiscal_number().map(|f| f.as_str().to_string()).as_deref(),
        Some("RSSMRA80A01H501U")
    );
    assert_eq!(p.attribute(Attribute::Name), Some("MARIO"));
    assert_eq!(login.asked, wanted);

    // A card without the name the login asked for does not make a session without it.
    let nameless = ca
        .card_with(
            &CardSubject {
                given_name: None,
                ..CardSubject::cns("RSSMRA80A01H501U", "M", "ROSSI")
            },
            -1,
            30,
            true,
        )
        .expect("card");
    let e = finish(
        Some(started.pending.clone()),
        Some(&binding),
        vec![nameless.der()],
    )
    .expect_err("refused");
    assert!(matches!(e, FinishError::Cns(CnsError::Subject(_))), "{e}");
}

#[test]
fn a_saml_login_cannot_be_finished_with_a_card() {
    let ca = TestCnsCa::new("CA").expect("ca");
    let card = ca.card("RSSMRA80A01H501U", "MARIO", "ROSSI").expect("card");
    let s = setup(&[&ca], &[ca.crl(&[], tomorrow()).expect("crl")]);
    let trust = CnsTrust::load(&s.config).expect("loads");
    let config = config();
    let keys = SpKeys::load(&config.sp.key, &config.sp.cert).expect("keys");
    let idps = IdpRegistry::load(&[policies::IdpConfig {
        metadata: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("test_vectors/spid-sp-test-idp.xml"),
        kind: policies::IdpKind::Spid,
        federation_cert: None,
    }])
    .expect("idp");
    let oidc = OidcRegistry::default();
    let sp = Sp {
        config,
        keys: &keys,
        idps: &idps,
        oidc: &oidc,
        cns: Some(&trust),
    };
    let entity = idps.iter().next().expect("an IdP").entity_id.clone();
    let saml = sp.provider(&entity).expect("a SAML IdP");
    let binding = BrowserBinding::new();
    let started = ready(crate::login::start(
        sp,
        login_start(saml, &binding, AttributeMask::EMPTY),
        &DiscardAudit,
    ))
    .expect("started");
    let id = started.pending.request_id().to_string();
    let e = ready(crate::login::finish(
        sp,
        Callback::cns(id, vec![card.der()]),
        Some(started.pending),
        Some(&binding),
        &DiscardAudit,
    ))
    .expect_err("refused");
    assert!(
        matches!(e, FinishError::Cns(CnsError::NoPendingLogin)),
        "{e}"
    );
}
