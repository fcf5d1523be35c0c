//! A test PKI (a CA and the certificates it issues, made with openssl at test time) and a small
//! HTTPS file server on loopback, for the tests of what varco fetches or serves over TLS.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509NameBuilder, X509};

/// A CA that issues test certificates.
pub(crate) struct TestCa {
    pub(crate) cert: X509,
    key: PKey<Private>,
}

/// A certificate with its key.
pub(crate) struct Issued {
    pub(crate) cert: X509,
    pub(crate) key: PKey<Private>,
}

fn serial() -> openssl::asn1::Asn1Integer {
    let mut bn = BigNum::new().expect("bn");
    bn.rand(64, MsbOption::MAYBE_ZERO, false).expect("rand");
    bn.to_asn1_integer().expect("serial")
}

impl TestCa {
    /// A fresh CA named `name`.
    pub(crate) fn new(name: &str) -> Self {
        let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("key");
        let mut subject = X509NameBuilder::new().expect("name");
        subject.append_entry_by_text("CN", name).expect("cn");
        let subject = subject.build();
        let mut b = X509::builder().expect("builder");
        b.set_version(2).expect("version");
        b.set_serial_number(&serial()).expect("serial");
        b.set_subject_name(&subject).expect("subject");
        b.set_issuer_name(&subject).expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        b.set_not_before(&Asn1Time::days_from_now(0).expect("t"))
            .expect("nb");
        b.set_not_after(&Asn1Time::days_from_now(30).expect("t"))
            .expect("na");
        b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
            .expect("ext");
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .expect("ku"),
        )
        .expect("ext");
        b.sign(&key, MessageDigest::sha256()).expect("sign");
        Self {
            cert: b.build(),
            key,
        }
    }

    /// A TLS client certificate named `name`.
    pub(crate) fn client(&self, name: &str) -> Issued {
        self.issue(&[name], false, 30)
    }

    /// A TLS server certificate for `hosts` that is valid for `days` days.
    pub(crate) fn server_valid(&self, hosts: &[&str], days: u32) -> Issued {
        self.issue(hosts, true, days)
    }

    /// A TLS server certificate for `hosts` (DNS names, or IP addresses).
    pub(crate) fn server(&self, hosts: &[&str]) -> Issued {
        self.issue(hosts, true, 30)
    }

    fn issue(&self, hosts: &[&str], server: bool, days: u32) -> Issued {
        let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("key");
        let mut subject = X509NameBuilder::new().expect("name");
        subject.append_entry_by_text("CN", hosts[0]).expect("cn");
        let subject = subject.build();
        let mut b = X509::builder().expect("builder");
        b.set_version(2).expect("version");
        b.set_serial_number(&serial()).expect("serial");
        b.set_subject_name(&subject).expect("subject");
        b.set_issuer_name(self.cert.subject_name()).expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        b.set_not_before(&Asn1Time::days_from_now(0).expect("t"))
            .expect("nb");
        b.set_not_after(&Asn1Time::days_from_now(days).expect("t"))
            .expect("na");
        let mut san = SubjectAlternativeName::new();
        for h in hosts {
            if h.parse::<std::net::IpAddr>().is_ok() {
                san.ip(h);
            } else {
                san.dns(h);
            }
        }
        let ctx = b.x509v3_context(Some(&self.cert), None);
        let san = san.build(&ctx).expect("san");
        b.append_extension(san).expect("ext");
        let mut eku = ExtendedKeyUsage::new();
        if server {
            eku.server_auth();
        } else {
            eku.client_auth();
        }
        b.append_extension(eku.build().expect("eku")).expect("ext");
        b.sign(&self.key, MessageDigest::sha256()).expect("sign");
        Issued {
            cert: b.build(),
            key,
        }
    }

    /// Writes the CA certificate as PEM.
    pub(crate) fn write_pem(&self, path: &Path) {
        std::fs::write(path, self.cert.to_pem().expect("pem")).expect("write");
    }
}

/// What the file server answers.
#[derive(Clone)]
pub(crate) enum Serve {
    /// 200 with these bytes.
    Body(Vec<u8>),
    /// This status, no body.
    Status(u16),
}

/// An HTTPS server on a loopback port that answers every GET with what it was told; it can go
/// away (connections refused) and come back on the same port.
pub(crate) struct HttpsFileServer {
    pub(crate) port: u16,
    identity: Arc<Issued>,
    answer: Arc<Mutex<Serve>>,
    running: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    /// GET requests answered.
    pub(crate) hits: Arc<std::sync::atomic::AtomicUsize>,
    /// The head of the last request, as received.
    pub(crate) last_head: Arc<Mutex<String>>,
    /// When set, a client certificate issued by this CA is required.
    client_ca: Option<X509>,
}

impl HttpsFileServer {
    /// Starts serving `answer` with `identity` on a free port.
    pub(crate) fn start(identity: Issued, answer: Serve) -> Self {
        Self::start_with(identity, answer, None)
    }

    /// As [`Self::start`]; with `client_ca`, only clients with a certificate it issued get in.
    pub(crate) fn start_with(identity: Issued, answer: Serve, client_ca: Option<&X509>) -> Self {
        let port = crate::harness::free_port();
        let mut s = Self {
            port,
            identity: Arc::new(identity),
            answer: Arc::new(Mutex::new(answer)),
            running: None,
            hits: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            last_head: Arc::new(Mutex::new(String::new())),
            client_ca: client_ca.cloned(),
        };
        s.up();
        s
    }

    /// What every request gets from now on.
    pub(crate) fn serve(&self, answer: Serve) {
        *self.answer.lock().expect("answer") = answer;
    }

    /// Listens again on the same port.
    pub(crate) fn up(&mut self) {
        if self.running.is_some() {
            return;
        }
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("ssl");
        acceptor.set_private_key(&self.identity.key).expect("key");
        acceptor.set_certificate(&self.identity.cert).expect("cert");
        if let Some(ca) = &self.client_ca {
            let mut store = openssl::x509::store::X509StoreBuilder::new().expect("store");
            store.add_cert(ca.clone()).expect("ca");
            acceptor
                .set_verify_cert_store(store.build())
                .expect("verify store");
            acceptor.set_verify(
                openssl::ssl::SslVerifyMode::PEER
                    | openssl::ssl::SslVerifyMode::FAIL_IF_NO_PEER_CERT,
            );
        }
        let acceptor = Arc::new(acceptor.build());
        let stop = Arc::new(AtomicBool::new(false));
        let (answer, flag, hits) = (self.answer.clone(), stop.clone(), self.hits.clone());
        let last_head = self.last_head.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        let _ = tcp.set_nonblocking(false);
                        let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                        let (acceptor, answer, hits) =
                            (acceptor.clone(), answer.clone(), hits.clone());
                        let last_head = last_head.clone();
                        std::thread::spawn(move || {
                            let Ok(mut tls) = acceptor.accept(tcp) else {
                                return;
                            };
                            let mut buf = [0u8; 4096];
                            let mut head = Vec::new();
                            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                                match tls.read(&mut buf) {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => head.extend_from_slice(&buf[..n]),
                                }
                            }
                            hits.fetch_add(1, Ordering::Relaxed);
                            *last_head.lock().expect("head") =
                                String::from_utf8_lossy(&head).into_owned();
                            let reply = answer.lock().expect("answer").clone();
                            let (status, body) = match reply {
                                Serve::Body(b) => (200, b),
                                Serve::Status(s) => (s, Vec::new()),
                            };
                            let _ = write!(
                                tls,
                                "HTTP/1.1 {status} X\r\ncontent-type: application/samlmetadata+xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                                body.len()
                            );
                            let _ = tls.write_all(&body);
                            let _ = tls.shutdown();
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => break,
                }
            }
        });
        self.running = Some((stop, thread));
    }

    /// Stops listening: connections are refused until [`Self::up`].
    pub(crate) fn down(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }

    /// `https://localhost:PORT{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }
}

impl Drop for HttpsFileServer {
    fn drop(&mut self) {
        self.down();
    }
}
