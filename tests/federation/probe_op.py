#!/usr/bin/env python3
"""Learns, by trying, what the harness OP (spid-cie-oidc 1.6.3) accepts from a
relying party. It starts run.py with a set of hand-made RPs registered under
the TA, each serving its own entity configuration from a small server in this
script (http://127.0.0.1:X/<variant>/), and then sends authorization requests,
whole logins and token requests. One line per case:

  probe: <case>: <what the OP did>

  .venv/bin/python probe_op.py [--only SUBSTRING,...] [--required-trust-marks ID] [--keep]

Nothing here is needed to run the harness; it is the evidence behind the
README's tables. Exit code 0 when every case ran (whatever the OP answered).
"""
import argparse
import base64
import hashlib
import json
import os
import secrets
import shutil
import string
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import requests  # noqa: E402
from cryptojwt.jwe.jwe import factory as jwe_factory  # noqa: E402
from cryptojwt.jwk.jwk import key_from_jwk_dict  # noqa: E402

from check_with_reference_rp import (  # noqa: E402
    EXPECTED, HTTP_TIMEOUT, Failure, Proc, free_port, jwt_parts, new_jwk, op_login, public, sign,
)


def rand(n=32):
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def pkce():
    v = rand(64)
    return v, base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).decode().rstrip("=")


# --- the hand-made RPs' entity configurations --------------------------------
FED = new_jwk("sig")          # federation key of every probe RP (registered in the TA)
OTHER_FED = new_jwk("sig")    # a key the TA does not know
CORE_SIG, CORE_ENC = new_jwk("sig"), new_jwk("enc")


def rp_metadata(sub):
    return {
        "federation_entity": {
            "organization_name": "Probe RP", "homepage_uri": sub, "policy_uri": f"{sub}policy",
            "logo_uri": f"{sub}logo.svg", "contacts": ["ops@probe.example.it"],
            "federation_resolve_endpoint": f"{sub}resolve",
        },
        "openid_relying_party": {
            "client_id": sub, "client_registration_types": ["automatic"], "application_type": "web",
            "organization_name": "Probe RP", "client_name": "Probe RP", "contacts": ["ops@probe.example.it"],
            "redirect_uris": [f"{sub}cb"], "response_types": ["code"],
            "grant_types": ["authorization_code", "refresh_token"],
            "jwks": {"keys": [public(CORE_SIG), public(CORE_ENC)]},
            "id_token_signed_response_alg": "RS256", "userinfo_signed_response_alg": "RS256",
            "userinfo_encrypted_response_alg": "RSA-OAEP", "userinfo_encrypted_response_enc": "A128CBC-HS256",
            "token_endpoint_auth_method": "private_key_jwt",
        },
    }


def orp(f):
    """a mutation of metadata.openid_relying_party"""
    return lambda ctx: f(ctx["payload"]["metadata"]["openid_relying_party"])


# variant name -> mutation of ctx = {"payload", "header", "key"}
VARIANTS = {
    "good": None,
    "typ-jwt": lambda c: c["header"].update(typ="JWT"),
    "no-typ": lambda c: c["header"].pop("typ"),
    "no-authority-hints": lambda c: c["payload"].pop("authority_hints"),
    "ta-hint-without-slash": lambda c: c["payload"].update(authority_hints=[c["ta"].rstrip("/")]),
    "no-trust-marks": lambda c: c["payload"].pop("trust_marks", None),
    "trust-marks-id-only": lambda c: c["payload"].update(trust_marks=[
        {"id": t["id"], "trust_mark": t["trust_mark"]} for t in c["payload"].get("trust_marks", [])]),
    "trust-marks-type-only": lambda c: c["payload"].update(trust_marks=[
        {"trust_mark_type": t["trust_mark_type"], "trust_mark": t["trust_mark"]}
        for t in c["payload"].get("trust_marks", [])]),
    "no-federation-entity": lambda c: c["payload"]["metadata"].pop("federation_entity"),
    "only-jwks-and-client-id": lambda c: c["payload"]["metadata"].update(openid_relying_party={
        "client_id": c["sub"], "jwks": {"keys": [public(CORE_SIG), public(CORE_ENC)]}}),
    "only-jwks": lambda c: c["payload"]["metadata"].update(openid_relying_party={
        "jwks": {"keys": [public(CORE_SIG), public(CORE_ENC)]}}),
    "scope-string": orp(lambda m: m.update(scope="openid")),
    "scope-list": orp(lambda m: m.update(scope=["openid"])),
    "grant-types-implicit": orp(lambda m: m.update(grant_types=["implicit"])),
    "jwks-uri-only": orp(lambda m: (m.pop("jwks"), m.update(jwks_uri=f"{m['client_id']}jwks.json"))),
    "keys-without-use": orp(lambda m: m.update(jwks={"keys": [
        {k: v for k, v in public(CORE_SIG).items() if k != "use"},
        {k: v for k, v in public(CORE_ENC).items() if k != "use"}]})),
    "only-sig-key": orp(lambda m: m.update(jwks={"keys": [public(CORE_SIG)]})),
    "enc-key-first": orp(lambda m: m.update(jwks={"keys": [public(CORE_ENC), public(CORE_SIG)]})),
    "signed-by-unknown-key": lambda c: (c.update(key=OTHER_FED),
                                        c["header"].update(kid=OTHER_FED["kid"]),
                                        c["payload"].update(jwks={"keys": [public(OTHER_FED)]})),
    "exp-in-the-past": lambda c: c["payload"].update(iat=c["payload"]["iat"] - 7200,
                                                     exp=c["payload"]["iat"] - 3600),
    "client-id-differs-from-sub": orp(lambda m: m.update(client_id="http://127.0.0.1:1/other/")),
    "redirect-uris-https-only": orp(lambda m: m.update(redirect_uris=["https://rp.example.it/cb"])),
}


class ECServer:
    def __init__(self, port, ta):
        self.port, self.ta, self.trust_marks = port, ta, {}
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) == 2 and parts[1] == "jwks.json" and parts[0] in VARIANTS:
                    body, ctype = json.dumps({"keys": [public(CORE_SIG), public(CORE_ENC)]}), "application/json"
                elif len(parts) == 3 and parts[1:] == [".well-known", "openid-federation"] and parts[0] in VARIANTS:
                    body, ctype = outer.ec(parts[0]), "application/entity-statement+jwt"
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), H)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def sub(self, variant):
        return f"http://127.0.0.1:{self.port}/{variant}/"

    def ec(self, variant):
        sub, now = self.sub(variant), int(time.time())
        ctx = {
            "sub": sub, "ta": self.ta, "key": FED,
            "header": {"typ": "entity-statement+jwt", "kid": FED["kid"]},
            "payload": {"iss": sub, "sub": sub, "iat": now, "exp": now + 3600,
                        "jwks": {"keys": [public(FED)]}, "authority_hints": [self.ta],
                        "metadata": rp_metadata(sub), "trust_marks": self.trust_marks.get(sub, [])},
        }
        if VARIANTS[variant]:
            VARIANTS[variant](ctx)
        return sign(ctx["payload"], ctx["key"], **ctx["header"])


# --- requests ----------------------------------------------------------------
class Prober:
    def __init__(self, ta, op, ecs, only):
        self.ta, self.op, self.ecs, self.only = ta, op, ecs, only
        self.results = []
        self.authz, self.login, self.token_case = (
            self.guard(self.authz), self.guard(self.login), self.guard(self.token_case))

    def out(self, name, text):
        text = " ".join(text.split())
        self.results.append((name, text))
        print(f"probe: {name}: {text}", flush=True)

    def guard(self, fn):
        def wrapped(name, *a, **kw):
            try:
                return fn(name, *a, **kw)
            except Exception as e:  # a probe case must not stop the others
                self.out(name, f"probe error {type(e).__name__}: {e}")
        return wrapped

    def want(self, name):
        return not self.only or any(o in name for o in self.only.split(","))

    def ro(self, sub, redirect_uri=None):
        verifier, challenge = pkce()
        now = int(time.time())
        return verifier, {
            "client_id": sub, "response_type": "code", "scope": "openid",
            "redirect_uri": redirect_uri or f"{sub}cb", "code_challenge": challenge,
            "code_challenge_method": "S256", "nonce": rand(), "state": rand(),
            "prompt": "consent login", "acr_values": "https://www.spid.gov.it/SpidL2",
            "claims": {"userinfo": {k: None for k in EXPECTED}},
            "iss": sub, "aud": [self.op], "iat": now, "exp": now + 60, "jti": str(uuid.uuid4()),
        }

    def authz(self, name, mutate=None, variant="good", header=None, query=None, key=None, raw=None):
        """an authorization request only: does the OP show its login form?"""
        if not self.want(name):
            return
        sub = self.ecs.sub(variant)
        _, ro = self.ro(sub)
        if mutate:
            mutate(ro)
        jwt = raw or sign(ro, key or CORE_SIG, **(header if header is not None else {"kid": CORE_SIG["kid"]}))
        params = {"request": jwt} if query is None else dict(query, request=jwt)
        r = requests.get(f"{self.op}authorization", params=params, allow_redirects=False, timeout=HTTP_TIMEOUT)
        if r.status_code == 200 and 'name="username"' in r.text:
            self.out(name, "ACCEPTED (200 login form)")
        elif r.status_code == 302:
            loc = r.headers["Location"]
            q = parse_qs(urlparse(loc).query)
            self.out(name, f"REJECTED 302 to {loc.split('?')[0]} error={q.get('error', ['?'])[0]} "
                           f"({q.get('error_description', [''])[0][:60]})")
        else:
            self.out(name, f"REJECTED HTTP {r.status_code}")

    def login(self, name, mutate=None, variant="good", agree=True, nonce=None, assertion_aud=None,
              **op_login_kw):
        """a whole login: authorization, login form, consent, token, UserInfo"""
        if not self.want(name):
            return None
        sub = self.ecs.sub(variant)
        verifier, ro = self.ro(sub)
        if mutate:
            mutate(ro)
        if nonce:
            ro["nonce"] = nonce
        jwt = sign(ro, CORE_SIG, kid=CORE_SIG["kid"])
        query = {"client_id": sub, "response_type": "code", "scope": ro["scope"],
                 "code_challenge": ro["code_challenge"], "code_challenge_method": "S256", "request": jwt}
        try:
            cb, cbq = op_login(requests.Session(), f"{self.op}authorization?" + urlencode(query), {},
                               agree=agree, **op_login_kw)
        except Failure as e:
            self.out(name, f"login failed: {str(e)[:200]}")
            return ro
        if "code" not in cbq:
            self.out(name, f"redirect {cb.split('?')[0]} with {cbq}")
            return ro
        r = self.token(sub, cbq["code"], verifier, aud=assertion_aud)
        if r.status_code != 200:
            self.out(name, f"code redirect ok, then token HTTP {r.status_code} {r.text[:100]}")
            return ro
        tok = r.json()
        _, idp = jwt_parts(tok["id_token"])
        u = requests.get(f"{self.op}userinfo", headers={"Authorization": f"Bearer {tok['access_token']}"},
                         timeout=HTTP_TIMEOUT)
        if u.status_code != 200:
            self.out(name, f"token ok, then UserInfo HTTP {u.status_code}")
            return ro
        jh, _ = jwt_parts(u.text)
        keys = {CORE_SIG["kid"]: CORE_SIG, CORE_ENC["kid"]: CORE_ENC}
        which = {CORE_SIG["kid"]: "the sig key", CORE_ENC["kid"]: "the enc key"}.get(jh.get("kid"), "?")
        dkey = {k: v for k, v in keys[jh["kid"]].items() if k != "use"}  # cryptojwt won't decrypt with use=sig
        inner = jwe_factory(u.text, alg=jh["alg"], enc=jh["enc"]).decrypt(u.text, [key_from_jwk_dict(dkey)])
        _, uip = jwt_parts(inner.decode() if isinstance(inner, bytes) else inner)
        self.out(name, f"OK; token keys {sorted(tok)} scope={tok.get('scope')!r}; id_token acr={idp['acr']} "
                       f"claims {sorted(idp)}; UserInfo JWE {jh['alg']}/{jh['enc']} to {which}, "
                       f"claims {sorted(uip)}")
        return ro, cbq["code"], verifier

    def token(self, sub, code, verifier, aud=None, drop=(), key=None, kid=None, client_id=None):
        now = int(time.time())
        ca = {"iss": sub, "sub": sub, "aud": aud if aud is not None else [f"{self.op}token"],
              "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())}
        for k in drop:
            ca.pop(k, None)
        k = key or CORE_SIG
        return requests.post(f"{self.op}token", timeout=HTTP_TIMEOUT, data={
            "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "client_id": client_id or sub,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": sign(ca, k, kid=kid or k["kid"])})

    def token_case(self, name, code, verifier, **kw):
        if not self.want(name):
            return
        r = self.token(self.ecs.sub("good"), code, verifier, **kw)
        self.out(name, f"HTTP {r.status_code} " + (str(sorted(r.json())) if r.status_code == 200
                                                   else r.text[:100].replace("\n", " ")))


def run_probes(p: Prober):
    op = p.op

    def drop(*keys):
        return lambda ro: [ro.pop(k) for k in keys]

    def setv(**kv):
        return lambda ro: ro.update(kv)

    # 1. the request object (RP "good")
    p.authz("ro: baseline (scope 'openid', aud [OP entity ID], prompt 'consent login', acr SpidL2)")
    p.authz("ro: only `request` in the query string", query={})
    p.authz("ro: aud = 'https://unrelated.example/'", setv(aud="https://unrelated.example/"))
    p.authz("ro: aud = [OP authorization endpoint]", setv(aud=[f"{op}authorization"]))
    p.authz("ro: aud missing", drop("aud"))
    p.authz("ro: iat missing", drop("iat"))
    p.authz("ro: iat and exp one day in the past",
            lambda ro: ro.update(iat=ro["iat"] - 86400, exp=ro["exp"] - 86400))
    p.authz("ro: exp missing", drop("exp"))
    p.authz("ro: jti missing", drop("jti"))
    p.authz("ro: nonce of 31 chars", setv(nonce=rand(31)))
    p.authz("ro: state of 31 chars", setv(state=rand(31)))
    p.authz("ro: prompt = 'login'", setv(prompt="login"))
    p.authz("ro: prompt = 'consent'", setv(prompt="consent"))
    p.authz("ro: prompt = 'login consent' (other order)", setv(prompt="login consent"))
    p.authz("ro: prompt missing", drop("prompt"))
    p.authz("ro: scope = 'openid profile'", setv(scope="openid profile"))
    p.authz("ro: scope = 'offline_access' (no openid)", setv(scope="offline_access"))
    p.authz("ro: scope = ['openid'] (JSON list)", setv(scope=["openid"]))
    p.authz("ro: scope = 'openid offline_access', prompt 'consent login'", setv(scope="openid offline_access"))
    p.authz("ro: scope = 'openid offline_access', prompt missing",
            lambda ro: (ro.update(scope="openid offline_access"), ro.pop("prompt")))
    p.authz("ro: acr_values = 'SpidL2 SpidL1' (space-separated)",
            setv(acr_values="https://www.spid.gov.it/SpidL2 https://www.spid.gov.it/SpidL1"))
    p.authz("ro: acr_values = 'urn:unknown'", setv(acr_values="urn:unknown"))
    p.authz("ro: acr_values missing", drop("acr_values"))
    p.authz("ro: claims missing", drop("claims"))
    p.authz("ro: claims.userinfo.given_name = {'essential': true}",
            lambda ro: ro["claims"]["userinfo"].update(given_name={"essential": True}))
    p.authz("ro: claims.userinfo.given_name = 'yes' (not an object)",
            lambda ro: ro["claims"]["userinfo"].update(given_name="yes"))
    p.authz("ro: code_challenge_method = 'plain'", setv(code_challenge_method="plain"))
    p.authz("ro: code_challenge missing", drop("code_challenge"))
    p.authz("ro: response_type = 'id_token'", setv(response_type="id_token"))
    p.authz("ro: redirect_uri not in the RP's redirect_uris (same host)",
            setv(redirect_uri=f"{p.ecs.sub('good')}not-registered"))
    p.authz("ro: redirect_uri on another host", setv(redirect_uri="https://evil.example/cb"))
    p.authz("ro: iss missing", drop("iss"))
    p.authz("ro: client_id missing", drop("client_id"))
    p.authz("ro: header typ = 'oauth-authz-req+jwt'", header={"kid": CORE_SIG["kid"], "typ": "oauth-authz-req+jwt"})
    p.authz("ro: header without kid", key={k: v for k, v in CORE_SIG.items() if k != "kid"}, header={})
    p.authz("ro: signed with the RP's federation key", key=FED, header={"kid": FED["kid"]})
    p.authz("ro: alg RS512", header={"kid": CORE_SIG["kid"], "alg": "RS512"})
    p.authz("ro: alg PS256", header={"kid": CORE_SIG["kid"], "alg": "PS256"})
    _, ro = p.ro(p.ecs.sub("good"))
    p.authz("ro: unsigned (alg none)", raw=base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=")
            + "." + base64.urlsafe_b64encode(json.dumps(ro).encode()).decode().rstrip("=") + ".")

    # 2. the RP's entity configuration (one RP per variant)
    for v in VARIANTS:
        if v != "good":
            p.authz(f"ec: {v}", variant=v)

    # 3. whole logins
    first = p.login("login: baseline (RP 'good')")
    if first:
        p.login("login: a new request with the nonce of a completed login", nonce=first[0]["nonce"])
    p.login("login: acr_values 'SpidL2 SpidL1'",
            setv(acr_values="https://www.spid.gov.it/SpidL2 https://www.spid.gov.it/SpidL1"))
    p.login("login: acr_values ['SpidL3'] (JSON list)", setv(acr_values=["https://www.spid.gov.it/SpidL3"]))
    p.login("login: acr_values missing", drop("acr_values"))
    p.login("login: scope 'openid offline_access', acr SpidL1",
            setv(scope="openid offline_access", acr_values="https://www.spid.gov.it/SpidL1"))
    p.login("login: scope 'openid offline_access', acr SpidL2", setv(scope="openid offline_access"))
    p.login("login: claims.id_token {given_name: {essential: true}}",
            lambda ro: ro["claims"].update(id_token={"given_name": {"essential": True}}))
    p.login("login: claims.userinfo + birthdate, spid_code, place_of_birth, phone_number",
            lambda ro: ro["claims"]["userinfo"].update({
                "birthdate": None, "https://attributes.eid.gov.it/spid_code": None,
                "place_of_birth": None, "phone_number": None}))
    p.login("login: claims missing", drop("claims"))
    p.login("login: consent POST without the 'agree' field", agree=False)
    p.login("login: wrong password", password="wrong")
    p.login("login: login POST without csrfmiddlewaretoken", csrf=False)
    p.login("login: redirect_uri not in redirect_uris (same host)",
            setv(redirect_uri=f"{p.ecs.sub('good')}not-registered"))
    for v in ("no-trust-marks", "no-federation-entity", "only-jwks-and-client-id", "only-jwks",
              "jwks-uri-only", "keys-without-use", "only-sig-key", "enc-key-first", "exp-in-the-past",
              "scope-list", "client-id-differs-from-sub", "redirect-uris-https-only"):
        p.login(f"login: RP ec {v}", variant=v)

    # 4. the token endpoint, with a code from a fresh login of RP "good"
    got = p.login("login: for the token cases")
    if got:
        _, code, verifier = got
        p.token_case("token: aud = [token endpoint URL]", code, verifier)
        p.token_case("token: aud = token endpoint URL (string)", code, verifier, aud=f"{op}token")
        p.token_case("token: aud = [OP entity ID]", code, verifier, aud=[op])
        p.token_case("token: aud = OP entity ID (string)", code, verifier, aud=op)
        p.token_case("token: aud = [OP entity ID, token endpoint URL]", code, verifier, aud=[op, f"{op}token"])
        p.token_case("token: aud = [authorization endpoint]", code, verifier, aud=[f"{op}authorization"])
        p.token_case("token: aud = [http://localhost:PORT/oidc/op/token]", code, verifier,
                     aud=[f"{op}token".replace("127.0.0.1", "localhost")])
        p.token_case("token: no jti", code, verifier, drop=("jti",))
        p.token_case("token: no exp", code, verifier, drop=("exp",))
        p.token_case("token: assertion signed with the RP's federation key", code, verifier, key=FED)
        r = p.token(p.ecs.sub("good"), code, rand(64))
        p.out("token: wrong code_verifier", f"HTTP {r.status_code} {r.text[:80]}")
        r = p.token(p.ecs.sub("good"), code, verifier)
        p.out("token: the same code once more (after several redemptions)", f"HTTP {r.status_code}")
        r = p.token(p.ecs.sub("only-sig-key"), code, verifier)
        p.out("token: this code, redeemed by another registered RP with its own assertion",
              f"HTTP {r.status_code} {sorted(r.json()) if r.status_code == 200 else r.text[:80]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="run only the cases whose name contains one of these (comma-separated)")
    ap.add_argument("--required-trust-marks", default="", help="passed on to run.py")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--timeout", type=float, default=90)
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args()

    op_port, ec_port = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="fedprobe-")
    procs, rc = [], 1
    try:
        jwks_path = os.path.join(tmp, "probe_fed_jwks.json")
        with open(jwks_path, "w") as f:
            json.dump({"keys": [public(FED)]}, f)
        subs = [f"http://127.0.0.1:{ec_port}/{v}/" for v in VARIANTS]
        argv = [sys.executable, "run.py", "--port", str(op_port), "--state", os.path.join(tmp, "op"),
                "--rp-trust-marks-out", os.path.join(tmp, "tm.json"),
                "--required-trust-marks", a.required_trust_marks]
        for s in subs:
            argv += ["--rp", s, "--rp-jwks", jwks_path]
        procs.append(Proc("run.py", argv, os.path.join(tmp, "run.stderr")))
        _, ta, op = procs[-1].wait_ready(a.timeout).split()
        ecs = ECServer(ec_port, ta)
        with open(os.path.join(tmp, "tm.json")) as f:
            ecs.trust_marks = json.load(f)
        p = Prober(ta, op, ecs, a.only)
        run_probes(p)
        if a.out:
            with open(a.out, "w") as f:
                json.dump(p.results, f, indent=1)
        rc = 0
    except Failure as e:
        print(f"FAIL: {e}")
    finally:
        for pr in procs:
            pr.stop()
        if a.keep:
            print(f"state kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
