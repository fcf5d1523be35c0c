//! Registries as a federation publishes them, and as an attacker would alter them. The test
//! federation key is the spid-sp-test IdP's (it stands in for AgID's metadata-signing key).

use std::path::PathBuf;

use super::*;
use crate::insecure_test_idp::{signed_registry, with_sha1, TestIdpKey};

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_vectors")
}

fn federation_key() -> TestIdpKey {
    TestIdpKey::from_pem(
        &std::fs::read(vectors().join("spid-sp-test-idp/private.key")).expect("key"),
        &std::fs::read(vectors().join("spid-sp-test-idp/public.cert")).expect("cert"),
    )
    .expect("key pair")
}

fn rules(cert: &Path) -> SetRules<'_> {
    SetRules {
        source: "https://registry.test/idps.xml",
        federation_cert: cert,
        kind: IdpKind::Spid,
        cache: Path::new("/var/lib/varco/idps/spid.xml"),
        max_age: Duration::from_secs(7 * 24 * 3600),
    }
}

fn fed_cert() -> PathBuf {
    vectors().join("spid-sp-test-idp/public.cert")
}

/// The spid-sp-test IdP, and the same IdP under another entityID and name.
fn entities() -> (String, String) {
    let one = std::fs::read_to_string(vectors().join("spid-sp-test-idp.xml")).expect("idp");
    let two = one
        .replace("https://localhost:8443", "https://idp2.localhost:8443")
        .replace("Exempel AB", "Seconda IdP");
    (one, two)
}

fn verify(xml: &str) -> Result<IdpSet> {
    IdpSet::verify(xml.as_bytes(), &rules(&fed_cert()), Utc::now())
}

fn reason(r: Result<IdpSet>) -> String {
    match r {
        Ok(s) => panic!(
            "accepted: {:?}",
            s.idps().iter().map(|i| &i.entity_id).collect::<Vec<_>>()
        ),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_signed_registry_gives_every_idp_in_it() {
    let (one, two) = entities();
    let until = Utc::now() + chrono::Duration::days(2);
    let xml =
        signed_registry(&[&one, &two], "_reg1", Some(until), &federation_key()).expect("sign");
    let set = verify(&xml).expect("verified");
    let ids: Vec<&str> = set.idps().iter().map(|i| i.entity_id.as_str()).collect();
    assert_eq!(
        ids,
        ["https://localhost:8443", "https://idp2.localhost:8443"]
    );
    assert_eq!(set.idps()[1].display_name, "Seconda IdP");
    assert!(set.idps().iter().all(|i| i.kind == IdpKind::Spid));
    assert_eq!(set.valid_until().timestamp(), until.timestamp());
    // Each IdP serves no longer than its set.
    assert!(set
        .idps()
        .iter()
        .all(|i| i.valid_until == Some(set.valid_until())));
    assert!(set.skipped().is_empty());
}

#[test]
fn without_valid_until_a_set_serves_for_max_age_after_its_fetch() {
    let (one, _) = entities();
    let xml = signed_registry(&[&one], "_reg1", None, &federation_key()).expect("sign");
    let fetched = Utc::now() - chrono::Duration::days(6);
    let set = IdpSet::verify(xml.as_bytes(), &rules(&fed_cert()), fetched).expect("fresh enough");
    assert_eq!(set.valid_until(), fetched + chrono::Duration::days(7));
    let stale = Utc::now() - chrono::Duration::days(8);
    let r = IdpSet::verify(xml.as_bytes(), &rules(&fed_cert()), stale);
    assert!(reason(r).contains("expired"));
    let past = signed_registry(
        &[&one],
        "_reg1",
        Some(Utc::now() - chrono::Duration::hours(1)),
        &federation_key(),
    )
    .expect("sign");
    assert!(reason(verify(&past)).contains("expired"));
}

#[test]
fn only_the_federations_signature_on_the_root_counts() {
    let (one, two) = entities();
    let good = signed_registry(&[&one, &two], "_reg1", None, &federation_key()).expect("sign");
    // Tampered after signing.
    let tampered = good.replace("Seconda IdP", "IdP dell'attaccante");
    assert!(
        reason(verify(&tampered)).contains("does not verify"),
        "{}",
        reason(verify(&tampered))
    );
    // Signed by another key (the SP's).
    let other = signed_registry(
        &[&one],
        "_reg1",
        None,
        &TestIdpKey::from_pem(
            &std::fs::read(vectors().join("../../examples/keys/sp.key")).expect("key"),
            &std::fs::read(vectors().join("../../examples/keys/sp.crt")).expect("cert"),
        )
        .expect("key"),
    )
    .expect("sign");
    assert!(reason(verify(&other)).contains("does not verify"));
    // Not signed at all.
    let unsigned = format!(
        "<md:EntitiesDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" ID=\"_u\">{}</md:EntitiesDescriptor>",
        one
    );
    assert!(reason(verify(&unsigned)).contains("not signed"));
    // A genuine signed registry wrapped in a forged one vouches for nothing.
    let body = good.split_once("?>").map_or(good.as_str(), |(_, b)| b);
    let wrapped = format!(
        "<md:EntitiesDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" ID=\"_outer\">{body}{}</md:EntitiesDescriptor>",
        one
    );
    assert!(reason(verify(&wrapped)).contains("not signed"));
    // SHA-1: refused before anything is verified.
    let sha1 = with_sha1(&good);
    assert!(reason(verify(&sha1)).contains("not allowed"));
    // An entity that reuses the root's ID (to be what the reference points at).
    let clash = signed_registry(
        &[&one.replacen("entityID=", "ID=\"_reg1\" entityID=", 1)],
        "_reg1",
        None,
        &federation_key(),
    )
    .expect("sign");
    assert!(reason(verify(&clash)).contains("not unique"));
    // Not a registry: one EntityDescriptor, or garbage.
    assert!(reason(verify(&one)).contains("not md:EntitiesDescriptor"));
    assert!(reason(verify("<!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>")).contains("IdP registry"));
    assert!(reason(IdpSet::verify(b"\xff\xfe", &rules(&fed_cert()), Utc::now())).contains("UTF-8"));
}

#[test]
fn a_bad_entry_is_skipped_and_the_rest_serves() {
    let (one, two) = entities();
    let no_cert = two
        .replace("https://idp2.localhost:8443", "https://idp3.localhost:8443")
        .replace("use=\"signing\"", "use=\"encryption\"");
    let xml =
        signed_registry(&[&one, &no_cert, &one], "_reg1", None, &federation_key()).expect("sign");
    let set = verify(&xml).expect("verified");
    assert_eq!(set.idps().len(), 1);
    let skipped = set.skipped().join("\n");
    assert!(
        skipped
            .contains("https://idp3.localhost:8443: the IdP metadata has no signing certificate"),
        "{skipped}"
    );
    assert!(
        skipped.contains("https://localhost:8443: listed twice"),
        "{skipped}"
    );
    // Nothing usable at all: refused.
    let none = signed_registry(&[&no_cert], "_reg1", None, &federation_key()).expect("sign");
    assert!(reason(verify(&none)).contains("no usable IdP"));
}

#[test]
fn an_idps_own_signature_inside_the_set_is_content() {
    // AgID's registry may carry each IdP's own signed descriptor: the federation's signature
    // over the whole set is what counts, the inner one (here by an unrelated key) is not checked.
    let (one, two) = entities();
    let sp_key = TestIdpKey::from_pem(
        &std::fs::read(vectors().join("../../examples/keys/sp.key")).expect("key"),
        &std::fs::read(vectors().join("../../examples/keys/sp.crt")).expect("cert"),
    )
    .expect("key");
    let inner =
        crate::insecure_test_idp::signed_registry(&[&two], "_inner", None, &sp_key).expect("sign");
    // Reuse the signed inner set's signature on an EntityDescriptor of its own.
    let signature = &inner[inner.find("<ds:Signature").expect("sig")
        ..inner.find("</ds:Signature>").expect("end") + "</ds:Signature>".len()];
    let close = two.find("entityID=").expect("entityID");
    let with_id = format!("{}ID=\"_idp2\" {}", &two[..close], &two[close..]);
    let open_end = with_id.find('>').expect("open") + 1;
    let signed_two = format!(
        "{}{signature}{}",
        &with_id[..open_end],
        &with_id[open_end..]
    );
    let xml =
        signed_registry(&[&one, &signed_two], "_reg1", None, &federation_key()).expect("sign");
    let set = verify(&xml).expect("verified");
    assert_eq!(set.idps().len(), 2, "{:?}", set.skipped());
}
