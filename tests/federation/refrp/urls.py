"""The reference RP: its entity configuration at /.well-known/openid-federation
(entity ID http://HOST:PORT/) and the package's RP views under /oidc/rp/."""
from spid_cie_oidc.entity.urls import urlpatterns as entity_urlpatterns
from spid_cie_oidc.relying_party.urls import urlpatterns as rp_urlpatterns

urlpatterns = []
urlpatterns.extend(entity_urlpatterns)
urlpatterns.extend(rp_urlpatterns)
