//! A CNS certification authority for tests: it issues card certificates with the TS-CNS subject
//! layout (`CN=<fiscal code>/<card number>.<hash>`, `serialNumber=TINIT-<fiscal code>`, given
//! name, surname) and signs revocation lists naming the cards it revoked. OpenSSL builds the
//! certificates; the revocation list, which the `openssl` crate cannot build, is written here
//! in DER and signed with the CA's key.

use chrono::{DateTime, Duration, Utc};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use openssl::x509::{X509Name, X509NameBuilder, X509};

/// Results of the kit: its failures are the test's.
pub type KitResult<T> = Result<T, openssl::error::ErrorStack>;

/// A test CA that issues CNS cards.
#[derive(Debug)]
pub struct TestCnsCa {
    /// Its certificate.
    pub cert: X509,
    key: PKey<Private>,
}

/// A card: its certificate and key.
#[derive(Debug)]
pub struct TestCard {
    /// The certificate.
    pub cert: X509,
    /// The card's private key.
    pub key: PKey<Private>,
}

impl TestCard {
    /// The certificate, PEM.
    pub fn cert_pem(&self) -> Vec<u8> {
        self.cert.to_pem().unwrap_or_default()
    }
    /// The key, PKCS#8 PEM.
    pub fn key_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().unwrap_or_default()
    }
    /// The certificate, DER.
    pub fn der(&self) -> Vec<u8> {
        self.cert.to_der().unwrap_or_default()
    }
}

/// What goes in a card's subject (each `None` is left out).
#[derive(Debug, Clone, Default)]
pub struct CardSubject {
    /// `CN`.
    pub common_name: Option<String>,
    /// `serialNumber`.
    pub serial_number: Option<String>,
    /// `GN`.
    pub given_name: Option<String>,
    /// `SN`.
    pub surname: Option<String>,
}

impl CardSubject {
    /// A TS-CNS subject for this person.
    pub fn cns(fiscal_code: &str, given_name: &str, surname: &str) -> Self {
        Self {
            common_name: Some(format!(
                "{fiscal_code}/8038000000012345.Yx3mQ0b1L2Xg9Rr7Kq1n6Hc2Zk8="
            )),
            serial_number: Some(format!("TINIT-{fiscal_code}")),
            given_name: Some(given_name.into()),
            surname: Some(surname.into()),
        }
    }
}

fn name(entries: &[(Nid, &str)]) -> KitResult<X509Name> {
    let mut b = X509NameBuilder::new()?;
    for (nid, v) in entries {
        b.append_entry_by_nid(*nid, v)?;
    }
    Ok(b.build())
}

fn serial() -> KitResult<Asn1Integer> {
    let mut bn = BigNum::new()?;
    bn.rand(63, MsbOption::MAYBE_ZERO, false)?;
    bn.to_asn1_integer()
}

impl TestCnsCa {
    /// A self-signed CA named `common_name`.
    pub fn new(common_name: &str) -> KitResult<Self> {
        let key = PKey::from_rsa(Rsa::generate(2048)?)?;
        let subject = name(&[
            (Nid::COUNTRYNAME, "IT"),
            (Nid::ORGANIZATIONNAME, "Regione di Prova"),
            (Nid::COMMONNAME, common_name),
        ])?;
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let serial = serial()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&subject)?;
        b.set_issuer_name(&subject)?;
        b.set_pubkey(&key)?;
        let (from, to) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(3650)?);
        b.set_not_before(&from)?;
        b.set_not_after(&to)?;
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(Self {
            cert: b.build(),
            key,
        })
    }

    /// The CA's certificate, PEM.
    pub fn cert_pem(&self) -> Vec<u8> {
        self.cert.to_pem().unwrap_or_default()
    }

    /// A card for this person, valid for a year.
    pub fn card(&self, fiscal_code: &str, given_name: &str, surname: &str) -> KitResult<TestCard> {
        self.card_with(
            &CardSubject::cns(fiscal_code, given_name, surname),
            -1,
            365,
            true,
        )
    }

    /// A card with this subject, valid from `from_days` to `to_days` from now, with the client
    /// authentication usage or without it.
    pub fn card_with(
        &self,
        subject: &CardSubject,
        from_days: i64,
        to_days: i64,
        client_auth: bool,
    ) -> KitResult<TestCard> {
        let key = PKey::from_rsa(Rsa::generate(2048)?)?;
        let mut entries = vec![
            (Nid::COUNTRYNAME, "IT"),
            (Nid::ORGANIZATIONNAME, "Regione di Prova"),
        ];
        let fields = [
            (Nid::SURNAME, &subject.surname),
            (Nid::GIVENNAME, &subject.given_name),
            (Nid::SERIALNUMBER, &subject.serial_number),
            (Nid::COMMONNAME, &subject.common_name),
        ];
        for (nid, v) in &fields {
            if let Some(v) = v {
                entries.push((*nid, v.as_str()));
            }
        }
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let serial = serial()?;
        b.set_serial_number(&serial)?;
        let subject = name(&entries)?;
        b.set_subject_name(&subject)?;
        b.set_issuer_name(self.cert.subject_name())?;
        b.set_pubkey(&key)?;
        let at = |days: i64| Asn1Time::from_unix((Utc::now() + Duration::days(days)).timestamp());
        let (from, to) = (at(from_days)?, at(to_days)?);
        b.set_not_before(&from)?;
        b.set_not_after(&to)?;
        b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
        if client_auth {
            b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
        } else {
            b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
        }
        b.sign(&self.key, MessageDigest::sha256())?;
        Ok(TestCard {
            cert: b.build(),
            key,
        })
    }

    /// A revocation list (DER) that revokes `revoked`, issued now and current until `next_update`.
    pub fn crl(&self, revoked: &[&TestCard], next_update: DateTime<Utc>) -> KitResult<Vec<u8>> {
        let now = Utc::now();
        // sha256WithRSAEncryption, NULL parameters.
        let algorithm = der(
            0x30,
            &[
                der(
                    0x06,
                    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
                ),
                vec![0x05, 0x00],
            ]
            .concat(),
        );
        let mut tbs = vec![
            der(0x02, &[0x01]), // v2
            algorithm.clone(),
            self.cert.subject_name().to_der()?,
            utc_time(now - Duration::minutes(1)),
            utc_time(next_update),
        ];
        if !revoked.is_empty() {
            let mut entries = Vec::new();
            for card in revoked {
                let mut serial = card.cert.serial_number().to_bn()?.to_vec();
                if serial.first().is_some_and(|b| b & 0x80 != 0) || serial.is_empty() {
                    serial.insert(0, 0);
                }
                entries.push(der(
                    0x30,
                    &[der(0x02, &serial), utc_time(now - Duration::minutes(1))].concat(),
                ));
            }
            tbs.push(der(0x30, &entries.concat()));
        }
        let tbs = der(0x30, &tbs.concat());
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &self.key)?;
        signer.update(&tbs)?;
        let signature = signer.sign_to_vec()?;
        let bits = der(0x03, &[&[0u8][..], &signature].concat());
        Ok(der(0x30, &[tbs, algorithm, bits].concat()))
    }
}

/// One DER TLV.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A UTCTime (years 1950–2049), `YYMMDDHHMMSSZ`.
fn utc_time(t: DateTime<Utc>) -> Vec<u8> {
    der(0x17, t.format("%y%m%d%H%M%SZ").to_string().as_bytes())
}
