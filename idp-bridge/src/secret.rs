//! Secrets that must never print: random tokens for RelayState, login binding and (later)
//! sessions. `Debug` shows `[redacted]`; equality compares SHA-256 digests, so that comparing a
//! presented token with a stored one leaks nothing through timing.

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
        buf.iter().map(|b| format!("{b:02x}")).collect()
    }
}

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident, $bytes:expr) => {
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
            pub fn digest(&self) -> [u8; 32] {
                Sha256::digest(self.0.as_bytes()).into()
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
    RelayState, 24
);
secret_type!(
    /// The value of the short-lived cookie that binds pending logins to one browser.
    BrowserBinding, 32
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
}
