"""Opt-in deviation from spid-cie-oidc (run.py --lenient-localhost).

The package validates the authorization request object and the token request
with pydantic 1.10 `HttpUrl`, which requires a top-level domain: a relying party
whose client_id / redirect_uri / iss is http://localhost:PORT/... is rejected
(`URL host invalid, top level domain required`). IP literals
(http://127.0.0.1:PORT/) pass. These subclasses only relax those URL fields to
`AnyHttpUrl` (no TLD required); every other rule of the "spid" profile stays.
"""
from pydantic import AnyHttpUrl

from spid_cie_oidc.entity.schemas.op_metadata import OPMetadataSpid
from spid_cie_oidc.provider.schemas.authn_requests import (
    AuthenticationRequestDoc,
    AuthenticationRequestSpid,
)
from spid_cie_oidc.provider.schemas.authn_response import (
    AuthenticationErrorResponse,
    AuthenticationResponse,
)
from spid_cie_oidc.provider.schemas.introspection_request import IntrospectionRequest
from spid_cie_oidc.provider.schemas.introspection_response import (
    IntrospectionErrorResponseSpid,
    IntrospectionResponse,
)
from spid_cie_oidc.provider.schemas.revocation_request import RevocationRequest
from spid_cie_oidc.provider.schemas.revocation_response import RevocationErrorResponse
from spid_cie_oidc.provider.schemas.token_requests import (
    TokenAuthnCodeRequest,
    TokenRefreshRequest,
)
from spid_cie_oidc.provider.schemas.token_response import (
    TokenErrorResponse,
    TokenRefreshResponse,
    TokenResponse,
)


class LenientAuthenticationRequestSpid(AuthenticationRequestSpid):
    client_id: AnyHttpUrl
    redirect_uri: AnyHttpUrl
    iss: AnyHttpUrl


class LenientTokenAuthnCodeRequest(TokenAuthnCodeRequest):
    client_id: AnyHttpUrl


class LenientTokenRefreshRequest(TokenRefreshRequest):
    client_id: AnyHttpUrl


LENIENT_PROVIDER_PROFILES = {
    "spid": {
        "authorization_request": LenientAuthenticationRequestSpid,
        "authorization_request_doc": AuthenticationRequestDoc,
        "authorization_response": AuthenticationResponse,
        "authorization_error_response": AuthenticationErrorResponse,
        "op_metadata": OPMetadataSpid,
        "authorization_code": LenientTokenAuthnCodeRequest,
        "authorization_code_response": TokenResponse,
        "refresh_token": LenientTokenRefreshRequest,
        "refresh_token_response": TokenRefreshResponse,
        "token_error_response": TokenErrorResponse,
        "revocation_request": RevocationRequest,
        "revocation_response": RevocationErrorResponse,
        "introspection_request": IntrospectionRequest,
        "introspection_response": IntrospectionResponse,
        "introspection_error_response": IntrospectionErrorResponseSpid,
    },
}
