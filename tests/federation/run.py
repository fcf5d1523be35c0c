#!/usr/bin/env python3
"""A local SPID/CIE OpenID Connect Federation in one process (spid-cie-oidc 1.6.3):
a Trust Anchor at http://127.0.0.1:PORT/ and an OpenID Provider at
http://127.0.0.1:PORT/oidc/op/, with the given relying parties registered as leaves
under the TA. Run it with the venv's python (tests/federation/setup.sh):

  .venv/bin/python run.py --port P --rp RP_ENTITY_ID --rp-jwks RP_FED_JWKS.json \
      --state DIR [--ta-jwks-out TA_JWKS.json] [--rp-trust-marks-out TM.json]

--rp / --rp-jwks may be repeated (paired in order). Every start migrates a fresh
database in DIR, generates fresh keys, prints exactly one line
`ready <TA entity id> <OP entity id>` on stdout once the server answers, then
serves until SIGTERM/SIGINT. Logs go to DIR/federation.log.
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

USER = {
    "username": "mario",
    "password": "mario-rossi-password",
    "email": "mario.rossi@example.it",
    "first_name": "Mario",
    "last_name": "Rossi",
    # what the OP releases: UserInfo copies user.attributes[claim] for every
    # claim named in the request object's claims.userinfo
    "attributes": {
        "given_name": "Mario",
        "family_name": "Rossi",
        "https://attributes.eid.gov.it/fiscal_number": "TINIT-RSSMRA80A01H501U",
        "email": "mario.rossi@example.it",
        "birthdate": "1980-01-01",
        "gender": "M",
        "place_of_birth": {"region": "RM", "locality": "H501"},
        "https://attributes.eid.gov.it/spid_code": "TEST0123456789",
        "phone_number": "+393331234567",
    },
}

RP_PROFILE_ID = "https://www.spid.gov.it/certification/rp/public"
OP_PROFILE_ID = "https://www.spid.gov.it/certification/op"
SIGNING_ALGS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rp", action="append", required=True, help="RP entity ID (repeatable)")
    p.add_argument("--rp-jwks", action="append", required=True,
                   help="file with the RP's federation public JWK Set (repeatable, paired with --rp)")
    p.add_argument("--state", required=True, help="directory for the database and the log")
    p.add_argument("--ta-jwks-out", help="write the TA's public federation JWK Set here")
    p.add_argument("--rp-trust-marks-out",
                   help="write {rp_entity_id: [trust mark objects]} here (for the RPs' own ECs)")
    p.add_argument("--required-trust-marks", default="",
                   help="comma-separated trust mark types the OP requires in an RP's EC "
                        "(OIDCFED_REQUIRED_TRUST_MARKS); default none")
    p.add_argument("--lenient-localhost", action="store_true",
                   help="let RP URLs on http://localhost pass the OP's pydantic HttpUrl checks "
                        "(a deviation from the package; see README)")
    a = p.parse_args()
    if len(a.rp) != len(a.rp_jwks):
        p.error("give one --rp-jwks per --rp")
    return a


def read_public_jwks(path: str) -> list:
    with open(path) as f:
        data = json.load(f)
    keys = data["keys"] if isinstance(data, dict) else data
    if not keys:
        raise SystemExit(f"{path}: no keys")
    for k in keys:
        if "d" in k:
            raise SystemExit(f"{path}: key {k.get('kid')} is private; give the public JWK Set")
        if not k.get("kid"):
            raise SystemExit(f"{path}: every key needs a kid")
    return keys


def new_private_jwk(use: str) -> dict:
    from cryptojwt.jwk.rsa import new_rsa_key

    key = new_rsa_key(key_size=2048, use=use)
    jwk = key.to_dict()
    jwk["kid"] = key.thumbprint("SHA-256").decode()
    jwk["use"] = use  # the package's get_key() reads jwk["use"] and fails without it
    return jwk


def public_jwk(jwk: dict) -> dict:
    from spid_cie_oidc.entity.jwks import public_jwk_from_private_jwk

    return public_jwk_from_private_jwk(jwk)


def op_metadata(base: str, op: str, op_core_public: list) -> dict:
    return {
        "federation_entity": {
            "organization_name": "Harness SPID OpenID Provider",
            "homepage_uri": base,
            "policy_uri": f"{base}oidc/op/policy",
            "logo_uri": f"{base}static/svg/spid-logo-c-lb.svg",
            "contacts": ["ops@op.example.it"],
            "federation_resolve_endpoint": f"{op}resolve",
        },
        "openid_provider": {
            "issuer": op,
            "authorization_endpoint": f"{op}authorization",
            "token_endpoint": f"{op}token",
            "userinfo_endpoint": f"{op}userinfo",
            "introspection_endpoint": f"{op}introspection",
            "revocation_endpoint": f"{op}revocation",
            "jwks": {"keys": op_core_public},
            "organization_name": "Harness SPID OpenID Provider",
            "op_name": "Harness SPID OP",
            "op_uri": base,
            "op_policy_uri": f"{base}oidc/op/policy",
            "logo_uri": f"{base}static/svg/spid-logo-c-lb.svg",
            "contacts": ["ops@op.example.it"],
            "client_registration_types_supported": ["automatic"],
            "request_authentication_methods_supported": {"ar": ["request_object"]},
            "request_parameter_supported": True,
            "request_uri_parameter_supported": False,
            "authorization_response_iss_parameter_supported": True,
            "scopes_supported": ["openid", "offline_access"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "acr_values_supported": [
                "https://www.spid.gov.it/SpidL1",
                "https://www.spid.gov.it/SpidL2",
                "https://www.spid.gov.it/SpidL3",
            ],
            "subject_types_supported": ["pairwise"],
            "claims_parameter_supported": True,
            "claims_supported": [
                "https://attributes.eid.gov.it/spid_code",
                "given_name",
                "family_name",
                "place_of_birth",
                "birthdate",
                "gender",
                "https://attributes.eid.gov.it/company_name",
                "https://attributes.eid.gov.it/registered_office",
                "https://attributes.eid.gov.it/fiscal_number",
                "https://attributes.eid.gov.it/company_fiscal_number",
                "https://attributes.eid.gov.it/vat_number",
                "document_details",
                "phone_number",
                "email",
                "https://attributes.eid.gov.it/e_delivery_service",
                "https://attributes.eid.gov.it/eid_exp_date",
                "address",
            ],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
            "request_object_signing_alg_values_supported": SIGNING_ALGS,
            # what the package really does: ID token, access token and the inner
            # UserInfo JWS are RS256 (create_jws' default); UserInfo is encrypted
            # with DEFAULT_JWE_ALG/ENC = RSA-OAEP / A256CBC-HS512
            "id_token_signing_alg_values_supported": ["RS256"],
            "userinfo_signing_alg_values_supported": ["RS256"],
            "userinfo_encryption_alg_values_supported": ["RSA-OAEP", "RSA-OAEP-256"],
            "userinfo_encryption_enc_values_supported": [
                "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512",
                "A128GCM", "A192GCM", "A256GCM",
            ],
            # required by the package's OPMetadataSpid schema; the OP never
            # encrypts the ID token nor decrypts request objects
            "id_token_encryption_alg_values_supported": ["RSA-OAEP", "RSA-OAEP-256"],
            "id_token_encryption_enc_values_supported": ["A128CBC-HS256", "A256CBC-HS512"],
            "request_object_encryption_alg_values_supported": ["RSA-OAEP", "RSA-OAEP-256"],
            "request_object_encryption_enc_values_supported": ["A128CBC-HS256", "A256CBC-HS512"],
        },
    }


def bootstrap(a):
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from spid_cie_oidc.authority.models import (
        FederationDescendant,
        FederationEntityAssignedProfile,
        FederationEntityProfile,
    )
    from spid_cie_oidc.entity.models import FederationEntityConfiguration
    from spid_cie_oidc.entity.validators import validate_entity_metadata, validate_metadata_algs

    ta, op = settings.TA_ENTITY_ID, settings.OP_ENTITY_ID
    base = ta

    # --- Trust Anchor -------------------------------------------------------
    ta_fed = new_private_jwk("sig")
    ta_conf = FederationEntityConfiguration.objects.create(
        sub=ta,
        default_signature_alg="RS256",
        authority_hints=[],
        jwks_fed=[ta_fed],
        jwks_core=[new_private_jwk("sig")],
        trust_marks=[],
        trust_mark_issuers={RP_PROFILE_ID: [ta], OP_PROFILE_ID: [ta]},
        entity_type="federation_entity",
        metadata={
            "federation_entity": {
                "organization_name": "Harness SPID Trust Anchor",
                "homepage_uri": base,
                "policy_uri": f"{base}policy",
                "logo_uri": f"{base}static/svg/spid-logo-c-lb.svg",
                "contacts": ["ops@ta.example.it"],
                "federation_fetch_endpoint": f"{ta}fetch",
                "federation_resolve_endpoint": f"{ta}resolve",
                "federation_list_endpoint": f"{ta}list",
                "federation_trust_mark_status_endpoint": f"{ta}trust_mark_status",
            }
        },
        constraints={"max_path_length": 1},
        is_active=True,
    )

    # --- profiles (trust mark templates) ------------------------------------
    rp_profile = FederationEntityProfile.objects.create(
        name="SPID Public SP",
        profile_category="openid_relying_party",
        profile_id=RP_PROFILE_ID,
        trust_mark_template={
            "id": RP_PROFILE_ID,
            "organization_type": "public",
            "id_code": {"ipa_code": "c_h501"},
            "email": "protocollo@pec.example.it",
            "organization_name": "Harness test relying party",
            "ref": "https://docs.italia.it/italia/spid/spid-cie-oidc-docs/it/versione-corrente/",
        },
    )
    op_profile = FederationEntityProfile.objects.create(
        name="SPID OpenID Provider",
        profile_category="openid_provider",
        profile_id=OP_PROFILE_ID,
        trust_mark_template={
            "id": OP_PROFILE_ID,
            "organization_type": "private",
            "organization_name": "Harness SPID OpenID Provider",
            "ref": "https://docs.italia.it/italia/spid/spid-cie-oidc-docs/it/versione-corrente/",
        },
    )

    # --- OpenID Provider ----------------------------------------------------
    op_fed = new_private_jwk("sig")
    op_core = new_private_jwk("sig")
    md = op_metadata(base, op, [public_jwk(op_core)])
    validate_entity_metadata(md)  # the package's own OPMetadataSpid schema
    validate_metadata_algs(md)
    op_conf = FederationEntityConfiguration.objects.create(
        sub=op,
        default_signature_alg="RS256",
        authority_hints=[ta],
        jwks_fed=[op_fed],
        jwks_core=[op_core],
        trust_marks=[],
        trust_mark_issuers={},
        entity_type="openid_provider",
        metadata=md,
        constraints={},
        is_active=True,
    )
    op_desc = FederationDescendant.objects.create(
        name="harness OP",
        sub=op,
        type="openid_provider",
        jwks=[public_jwk(op_fed)],
        status="valid",
        is_active=True,
    )
    op_assigned = FederationEntityAssignedProfile.objects.create(
        descendant=op_desc, profile=op_profile, issuer=ta_conf
    )
    op_conf.trust_marks = [op_assigned.trust_mark]
    op_conf.save()

    # --- relying parties ----------------------------------------------------
    rp_trust_marks = {}
    for i, (rp, jwks_path) in enumerate(zip(a.rp, a.rp_jwks)):
        desc = FederationDescendant.objects.create(
            name=f"rp {i}",
            sub=rp,
            type="openid_relying_party",
            jwks=read_public_jwks(jwks_path),
            status="valid",
            is_active=True,
        )
        assigned = FederationEntityAssignedProfile.objects.create(
            descendant=desc, profile=rp_profile, issuer=ta_conf
        )
        rp_trust_marks[rp] = [assigned.trust_mark]

    # --- the citizen --------------------------------------------------------
    get_user_model().objects.create_user(**USER)

    if a.ta_jwks_out:
        with open(a.ta_jwks_out, "w") as f:
            json.dump({"keys": ta_conf.public_jwks}, f, indent=2)
    if a.rp_trust_marks_out:
        with open(a.rp_trust_marks_out, "w") as f:
            json.dump(rp_trust_marks, f, indent=2)


def prime_op_trust_chain():
    """Builds (over HTTP, against this very server) the TA -> OP trust chain, so
    that the TA's /resolve endpoint answers for the OP from the start."""
    from django.conf import settings
    from spid_cie_oidc.entity.trust_chain_operations import get_or_create_trust_chain

    get_or_create_trust_chain(
        subject=settings.OP_ENTITY_ID,
        trust_anchor=settings.TA_ENTITY_ID,
        httpc_params=settings.HTTPC_PARAMS,
        force=True,
    )


def main():
    a = parse_args()
    state = os.path.abspath(a.state)
    os.makedirs(state, exist_ok=True)
    os.environ["DJANGO_SETTINGS_MODULE"] = "fedharness.settings"
    os.environ["FEDH_PORT"] = str(a.port)
    os.environ["FEDH_STATE"] = state
    os.environ["FEDH_REQUIRED_TRUST_MARKS"] = a.required_trust_marks
    os.environ["FEDH_LENIENT_LOCALHOST"] = "1" if a.lenient_localhost else "0"
    logging.captureWarnings(True)

    import django
    from django.conf import settings

    _serve.fresh_sqlite(os.path.join(state, "federation.sqlite3"))
    django.setup()
    _serve.enable_sqlite_wal()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False, skip_checks=True)
    bootstrap(a)

    httpd = _serve.start_server("127.0.0.1", a.port)
    rc = _serve.serve_until_signal(
        httpd,
        ready_url=f"{settings.TA_ENTITY_ID}.well-known/openid-federation",
        ready_line=f"ready {settings.TA_ENTITY_ID} {settings.OP_ENTITY_ID}",
        before_ready=prime_op_trust_chain,
    )
    sys.exit(rc)


if __name__ == "__main__":
    main()
