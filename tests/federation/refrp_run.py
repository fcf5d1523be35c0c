#!/usr/bin/env python3
"""The reference relying party (spid-cie-oidc's own relying_party app) on loopback,
for check_with_reference_rp.py. Entity ID http://HOST:PORT/, redirect URI
http://HOST:PORT/oidc/rp/callback, login start
http://HOST:PORT/oidc/rp/authorization?provider=<OP entity id>.

  .venv/bin/python refrp_run.py --port Q [--host 127.0.0.1] --state DIR \
      --ta TA_ID --op OP_ID --keys RP_PRIVATE_KEYS.json [--trust-marks TM.json]

RP_PRIVATE_KEYS.json is {"federation": [private JWK], "core": [sig JWK, enc JWK]}
(check_with_reference_rp.py writes it). Prints `ready <RP entity id>` on stdout.
"""
import argparse
import json
import logging
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _serve  # noqa: E402


def rp_metadata(rp: str, core_public: list) -> dict:
    return {
        "federation_entity": {
            "organization_name": "Reference RP (spid-cie-oidc)",
            "homepage_uri": rp,
            "policy_uri": f"{rp}policy",
            "logo_uri": f"{rp}static/svg/spid-logo-c-lb.svg",
            "contacts": ["ops@rp.example.it"],
            "federation_resolve_endpoint": f"{rp}resolve",
        },
        "openid_relying_party": {
            "client_id": rp,
            "client_registration_types": ["automatic"],
            "application_type": "web",
            "organization_name": "Reference RP (spid-cie-oidc)",
            "client_name": "Reference RP",
            "contacts": ["ops@rp.example.it"],
            "redirect_uris": [f"{rp}oidc/rp/callback"],
            "response_types": ["code"],
            "grant_types": ["authorization_code", "refresh_token"],
            "jwks": {"keys": core_public},
            "id_token_signed_response_alg": "RS256",
            "userinfo_signed_response_alg": "RS256",
            "userinfo_encrypted_response_alg": "RSA-OAEP",
            "userinfo_encrypted_response_enc": "A128CBC-HS256",
            "token_endpoint_auth_method": "private_key_jwt",
            "subject_type": "pairwise",
        },
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "localhost"])
    p.add_argument("--state", required=True)
    p.add_argument("--ta", required=True)
    p.add_argument("--op", required=True)
    p.add_argument("--keys", required=True)
    p.add_argument("--trust-marks", help="run.py --rp-trust-marks-out file")
    a = p.parse_args()

    state = os.path.abspath(a.state)
    os.makedirs(state, exist_ok=True)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="refrp.settings",
        REFRP_HOST=a.host,
        REFRP_PORT=str(a.port),
        REFRP_STATE=state,
        REFRP_TA=a.ta,
        REFRP_OP=a.op,
    )
    logging.captureWarnings(True)
    import django
    from django.conf import settings

    _serve.fresh_sqlite(os.path.join(state, "refrp.sqlite3"))
    django.setup()
    _serve.enable_sqlite_wal()
    from django.core.management import call_command
    from spid_cie_oidc.entity.jwks import public_jwk_from_private_jwk
    from spid_cie_oidc.entity.models import FederationEntityConfiguration
    from spid_cie_oidc.entity.schemas.rp_metadata import RPMetadataSpid

    call_command("migrate", verbosity=0, interactive=False, skip_checks=True)

    with open(a.keys) as f:
        keys = json.load(f)
    rp = settings.RP_ENTITY_ID
    md = rp_metadata(rp, [public_jwk_from_private_jwk(k) for k in keys["core"]])
    if a.host != "localhost":
        RPMetadataSpid(**md["openid_relying_party"])  # the package's RP schema
    trust_marks = []
    if a.trust_marks:
        with open(a.trust_marks) as f:
            trust_marks = json.load(f).get(rp, [])
    FederationEntityConfiguration.objects.create(
        sub=rp,
        default_signature_alg="RS256",
        authority_hints=[a.ta],
        jwks_fed=keys["federation"],
        jwks_core=keys["core"],
        trust_marks=trust_marks,
        entity_type="openid_relying_party",
        metadata=md,
        is_active=True,
    )

    httpd = _serve.start_server("127.0.0.1", a.port)
    sys.exit(
        _serve.serve_until_signal(
            httpd,
            ready_url=f"{rp}.well-known/openid-federation",
            ready_line=f"ready {rp}",
        )
    )


if __name__ == "__main__":
    main()
