//! What a pending OpenID Connect login keeps in the store besides the door's own record.

use crate::secret::RelayDigest;

/// What a pending OpenID Connect login keeps besides the door's own record: the PKCE verifier
/// (sent to the token endpoint) and the nonce's digest (compared with the ID token's).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct OidcPending {
    pub(crate) code_verifier: String,
    pub(crate) nonce: RelayDigest,
    pub(crate) redirect_uri: String,
}

impl std::fmt::Debug for OidcPending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcPending")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}
