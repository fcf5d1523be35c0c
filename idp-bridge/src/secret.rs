//! Secrets that must never print: random tokens for RelayState, login binding and sessions.
//! `Debug` shows `[redacted]`; equality compares SHA-256 digests, so that comparing a presented
//! token with a stored one leaks nothing through timing.
//!
//! What stores keep is a secret's digest, each kind its own type ([`BindingDigest`],
//! [`RelayDigest`], [`SessionKey`]), so that a relay state's digest cannot be passed where a
//! browser's binding is checked.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// `bytes` random bytes from OpenSSL's CSPRNG, as lower-case hex or base64url.
pub fn random_token(bytes: usize, base64url: bool) -> String {
    let mut buf = vec![0u8; bytes];
    // A CSPRNG failure leaves no safe way on: better to stop than to hand out weak tokens.
    #[allow(clippy::expect_used)]
    openssl::rand::rand_bytes(&mut buf).expect("OpenSSL's random generator failed");
    if base64url {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
    } else {
        to_hex(&buf)
    }
}

/// Lower-case hex of `bytes` (digests in store keys, logs and file names).
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

macro_rules! digest_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name([u8; 32]);

        impl $name {
            /// The SHA-256 digest of `value`.
            pub fn of(value: &[u8]) -> Self {
                Self(Sha256::digest(value).into())
            }

            /// The digest's bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The digest as it travels in a URL: unpadded base64url (43 characters).
            pub fn to_param(&self) -> String {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
            }

            /// A digest from a URL parameter written by [`Self::to_param`]; `None` for
            /// anything else.
            pub fn from_param(v: &str) -> Option<Self> {
                if v.len() != 43 {
                    return None;
                }
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(v)
                    .ok()?
                    .try_into()
                    .ok()
                    .map(Self)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // Enough to tell two apart in a test's failure, too little to look one up.
                write!(f, concat!(stringify!($name), "({:02x}{:02x}…)"), self.0[0], self.0[1])
            }
        }
    };
}

digest_type!(
    /// SHA-256 of a [`BrowserBinding`]: what a pending login or a handoff code is bound to.
    BindingDigest
);
digest_type!(
    /// SHA-256 of a [`RelayState`], kept with the pending login.
    RelayDigest
);
digest_type!(
    /// The key a session is stored under: SHA-256 of its ID, which lives only in the browser's
    /// cookie.
    SessionKey
);

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident, $digest:ident, $bytes:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(String);

        impl $name {
            /// A fresh random value.
            #[allow(clippy::new_without_default)] // a default value would not be random
            pub fn new() -> Self {
                Self(random_token($bytes, true))
            }

            /// Wraps a value received from outside (not yet known to be valid).
            pub fn from_untrusted(s: &str) -> Self {
                Self(s.to_string())
            }

            /// The value itself, for the wire. Never log it.
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// SHA-256 of the value, what stores keep.
            pub fn digest(&self) -> $digest {
                $digest::of(self.0.as_bytes())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted])"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.digest() == other.digest()
            }
        }

        impl Eq for $name {}
    };
}

secret_type!(
    /// The opaque RelayState of a login: random, never a URL (SPID requires it unintelligible).
    RelayState, RelayDigest, 24
);
secret_type!(
    /// The value of the short-lived cookie that binds pending logins to one browser.
    BrowserBinding, BindingDigest, 32
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print_and_are_random() {
        let a = RelayState::new();
        let b = RelayState::new();
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "RelayState([redacted])");
        assert_eq!(a.secret().len(), 32);
        assert!(!a.secret().contains("http"));
        assert_eq!(a, RelayState::from_untrusted(a.secret()));
        assert_eq!(random_token(16, false).len(), 32);
    }

    #[test]
    fn digests_travel_as_url_parameters_and_nothing_else_reads_as_one() {
        let d = BrowserBinding::new().digest();
        assert_eq!(BindingDigest::from_param(&d.to_param()), Some(d));
        for hostile in [
            "",
            "x",
            &"A".repeat(42),
            &"A".repeat(44),
            &format!("{}=", "A".repeat(42)),
            &"!".repeat(43),
        ] {
            assert_eq!(BindingDigest::from_param(hostile), None, "{hostile}");
        }
        assert!(format!("{d:?}").starts_with("BindingDigest("));
        assert_eq!(
            serde_json::to_string(&SessionKey::of(b"x"))
                .map(|s| s.starts_with('['))
                .ok(),
            Some(true)
        );
    }
}
