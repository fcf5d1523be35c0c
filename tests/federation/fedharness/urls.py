"""URLs of the Trust Anchor (at /) and of the OpenID Provider (at /oidc/op/),
laid out like examples/federation_authority/federation_authority/urls.py."""
from django.urls import path

from spid_cie_oidc.authority.urls import urlpatterns as ta_urlpatterns
from spid_cie_oidc.entity.urls import urlpatterns as entity_urlpatterns
from spid_cie_oidc.entity.views import entity_configuration, resolve_entity_statement
from spid_cie_oidc.provider.urls import urlpatterns as op_urlpatterns

urlpatterns = []
# /.well-known/openid-federation, /resolve, /.well-known/openid-federation-historical-jwks
urlpatterns.extend(entity_urlpatterns)
# /fetch, /list, /trust_mark_status, /advanced_entity_listing, /trust_marked_list
urlpatterns.extend(ta_urlpatterns)
# /oidc/op/authorization, consent, token, userinfo, revocation, introspection, ...
urlpatterns.extend(op_urlpatterns)
urlpatterns.extend(
    [
        path(
            "oidc/op/.well-known/openid-federation",
            entity_configuration,
            name="op_entity_configuration",
        ),
        path("oidc/op/resolve", resolve_entity_statement, name="op_entity_resolve"),
    ]
)
