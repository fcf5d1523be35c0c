#!/usr/bin/env python3
"""Proves the harness end to end with a relying party that is not varco: the
package's own spid_cie_oidc.relying_party app (refrp_run.py) registered as the
leaf under the harness' Trust Anchor. It logs the test citizen in, the way a
browser would, with one cookie session:

  RP start -> OP authorization (login form) -> POST credentials -> consent page
  -> POST consent -> redirect to the RP with code, state, iss -> the RP redeems
  the code and fetches UserInfo -> the RP's page shows the user's attributes

Then it checks the tokens the OP issued and the encrypted UserInfo itself.
Exit code 0 when the login worked. Run with the venv's python:

  .venv/bin/python check_with_reference_rp.py [--dump DIR] [--keep]
      [--rp-host 127.0.0.1|localhost] [--lenient-localhost]

(probe_op.py, beside it, sends hand-made requests to learn what the OP accepts.)
"""
import argparse
import base64
import json
import os
import select
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))

import requests  # noqa: E402
from cryptojwt.jwe.jwe import factory as jwe_factory  # noqa: E402
from cryptojwt.jwk.jwk import key_from_jwk_dict  # noqa: E402
from cryptojwt.jwk.rsa import new_rsa_key  # noqa: E402
from cryptojwt.jws.jws import JWS  # noqa: E402

USERNAME = "mario"
PASSWORD = "mario-rossi-password"
EXPECTED = {
    "given_name": "Mario",
    "family_name": "Rossi",
    "https://attributes.eid.gov.it/fiscal_number": "TINIT-RSSMRA80A01H501U",
    "email": "mario.rossi@example.it",
}
HTTP_TIMEOUT = 30


class Failure(Exception):
    pass


def b64json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def jwt_parts(jwt: str):
    p = jwt.split(".")
    return b64json(p[0]), (b64json(p[1]) if len(p) == 3 else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_jwk(use: str) -> dict:
    k = new_rsa_key(key_size=2048, use=use)
    d = k.to_dict()
    d["kid"] = k.thumbprint("SHA-256").decode()
    d["use"] = use
    return d


def public(jwk: dict) -> dict:
    return {k: v for k, v in jwk.items() if k in ("kty", "kid", "use", "alg", "n", "e")}


def sign(payload: dict, jwk: dict, **header) -> str:
    return JWS(json.dumps(payload), alg=header.pop("alg", "RS256"), **header).sign_compact(
        [key_from_jwk_dict(jwk)]
    )


class Forms(HTMLParser):
    """Collects every <form> with its action, method and <input> name/values."""

    def __init__(self):
        super().__init__()
        self.forms, self._cur = [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._cur = {"action": a.get("action"), "method": (a.get("method") or "get").upper(),
                         "inputs": {}, "buttons": []}
            self.forms.append(self._cur)
        elif tag == "input" and self._cur is not None and a.get("name"):
            self._cur["inputs"][a["name"]] = a.get("value", "")
        elif tag == "button" and self._cur is not None:
            self._cur["buttons"].append(a)

    def handle_endtag(self, tag):
        if tag == "form":
            self._cur = None


def forms_of(html: str) -> list:
    f = Forms()
    f.feed(html)
    return f.forms


class Proc:
    def __init__(self, name, argv, log_path):
        self.name = name
        self.log = open(log_path, "w")
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=HERE)

    def wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise Failure(f"{self.name} exited with {self.p.returncode} (see {self.log.name})")
            r, _, _ = select.select([self.p.stdout], [], [], 0.5)
            if r:
                line = self.p.stdout.readline().strip()
                if line.startswith("ready "):
                    return line
                raise Failure(f"{self.name} printed {line!r}")
        raise Failure(f"{self.name} not ready within {timeout}s")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()  # by PID: Popen.terminate sends SIGTERM to this child only
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=15)
        self.log.close()


def step(n, text):
    print(f"[{n}] {text}", flush=True)


def expect(cond, msg):
    if not cond:
        raise Failure(msg)


def op_login(s, authz_url, dump, log=False, agree=True, password=PASSWORD, csrf=True):
    """The OP's pages as a browser drives them: login form, then consent form.
    Returns the final redirect (to the RP's redirect_uri) and its query."""
    def say(n, text):
        if log:
            step(n, text)

    # 2. the OP validates the request object (trust chain of the RP) and shows the login form
    r = s.get(authz_url, allow_redirects=False, timeout=HTTP_TIMEOUT)
    expect(r.status_code == 200, f"OP authorization: HTTP {r.status_code} {r.headers.get('Location')}")
    login = [f for f in forms_of(r.text) if "username" in f["inputs"]]
    expect(login, "no login form on the OP's page")
    login = login[0]
    dump["login_form"] = {"action": login["action"], "method": login["method"],
                          "inputs": sorted(login["inputs"]), "cookies": sorted(s.cookies.keys())}
    say(2, f"GET OP authorization -> 200 login form {login['method']} {login['action']} "
           f"fields {sorted(login['inputs'])}; cookies {sorted(s.cookies.keys())}")

    # 3. POST the credentials (+ the csrf token and the hidden authz_request_object)
    data = dict(login["inputs"], username=USERNAME, password=password)
    if not csrf:
        data.pop("csrfmiddlewaretoken")
    r = s.post(urljoin(authz_url, login["action"]), data=data, allow_redirects=False, timeout=HTTP_TIMEOUT)
    expect(r.status_code == 302, f"login POST: HTTP {r.status_code}: {r.text[:300]}")
    consent_url = urljoin(authz_url, r.headers["Location"])
    say(3, f"POST {login['action']} -> 302 {r.headers['Location']}; cookies {sorted(s.cookies.keys())}")

    # 4. the consent page
    r = s.get(consent_url, allow_redirects=False, timeout=HTTP_TIMEOUT)
    expect(r.status_code == 200, f"consent page: HTTP {r.status_code}")
    consent = [f for f in forms_of(r.text) if "agree" in f["inputs"]]
    expect(consent, "no consent form")
    consent = consent[0]
    dump["consent_form"] = {"action": consent["action"], "method": consent["method"],
                            "inputs": dict(consent["inputs"], csrfmiddlewaretoken="<token>"),
                            "buttons": consent["buttons"]}
    say(4, f"GET {urlparse(consent_url).path} -> 200 consent form {consent['method']} {consent['action']} "
           f"fields {sorted(consent['inputs'])} agree={consent['inputs']['agree']!r}")

    # 5. POST the consent: 302 to the RP's redirect_uri with code, state, iss
    data = dict(consent["inputs"])
    if not agree:
        data.pop("agree")
    r = s.post(urljoin(consent_url, consent["action"]), data=data, allow_redirects=False, timeout=HTTP_TIMEOUT)
    expect(r.status_code == 302, f"consent POST: HTTP {r.status_code}")
    cb = r.headers["Location"]
    cbq = {k: v[0] for k, v in parse_qs(urlparse(cb).query).items()}
    say(5, f"POST {consent['action']} -> 302 {cb.split('?')[0]}?{'&'.join(sorted(cbq))}")
    return cb, cbq


def login_through_reference_rp(s, rp, op, dump):
    # 1. the RP starts the login: 302 to the OP's authorization endpoint
    start = f"{rp}oidc/rp/authorization?" + urlencode({"provider": op})
    r = s.get(start, allow_redirects=False, timeout=HTTP_TIMEOUT)
    expect(r.status_code == 302, f"RP start: HTTP {r.status_code}: {r.text[:300]}")
    authz_url = r.headers["Location"]
    q = {k: v[0] for k, v in parse_qs(urlparse(authz_url).query).items()}
    h, ro = jwt_parts(q["request"])
    dump["authorization_request_query"] = {k: (v if k != "request" else "<JWT>") for k, v in q.items()}
    dump["request_object_header"], dump["request_object"] = h, ro
    step(1, f"GET {start} -> 302 {authz_url.split('?')[0]}?{','.join(q)}")

    cb, cbq = op_login(s, authz_url, dump, log=True)
    dump["authorization_response"] = {"redirect_to": cb.split("?")[0], "params": sorted(cbq)}
    expect(cb.startswith(ro["redirect_uri"]), f"redirect to {cb}, not {ro['redirect_uri']}")
    expect(cbq.get("state") == ro["state"], "state differs")
    expect(cbq.get("iss") == op, f"iss {cbq.get('iss')} != {op}")
    expect(cbq.get("code"), "no code")

    # 6. the RP redeems the code (token endpoint, private_key_jwt), gets UserInfo, logs in
    r = s.get(cb, allow_redirects=False, timeout=HTTP_TIMEOUT)
    expect(r.status_code == 302, f"RP callback: HTTP {r.status_code}: {r.text[:500]}")
    step(6, f"GET RP callback -> 302 {r.headers['Location']}")

    # 7. the RP's page with the attributes it received
    r = s.get(urljoin(cb, r.headers["Location"]), allow_redirects=False, timeout=HTTP_TIMEOUT)
    expect(r.status_code == 200, f"RP echo page: HTTP {r.status_code}")
    missing = [v for v in EXPECTED.values() if v not in r.text]
    expect(not missing, f"the RP's page lacks {missing}")
    step(7, f"GET RP echo_attributes -> 200 with {', '.join(EXPECTED.values())}")
    return ro, cbq


def check_tokens(op_state, op, rp, rp_keys, ro, cbq, dump):
    """Reads what the OP issued from its database, then calls UserInfo itself."""
    db = sqlite3.connect(os.path.join(op_state, "federation.sqlite3"), timeout=30)
    row = db.execute(
        "SELECT t.access_token, t.id_token, t.refresh_token FROM spid_cie_oidc_provider_issuedtoken t "
        "JOIN spid_cie_oidc_provider_oidcsession s ON t.session_id = s.id WHERE s.auth_code = ?",
        (cbq["code"],),
    ).fetchone()
    db.close()
    expect(row, "no IssuedToken for the code")
    at, idt, rt = row
    ah, ap = jwt_parts(at)
    ih, ip = jwt_parts(idt)
    dump["access_token"] = {"header": ah, "payload": ap}
    dump["id_token"] = {"header": ih, "payload": ip}
    dump["refresh_token_issued"] = bool(rt)
    expect(ip["iss"] == op and ip["aud"] == [rp] and ip["nonce"] == ro["nonce"], f"id token {ip}")
    step(8, f"ID token: header {ih}, iss={ip['iss']}, aud={ip['aud']}, acr={ip['acr']}, claims {sorted(ip)}")

    r = requests.get(f"{op}userinfo", headers={"Authorization": f"Bearer {at}"}, timeout=HTTP_TIMEOUT)
    expect(r.status_code == 200, f"userinfo: HTTP {r.status_code}")
    jwe = r.text
    jh, _ = jwt_parts(jwe)
    enc_key = [k for k in rp_keys["core"] if k["kid"] == jh.get("kid")]
    expect(enc_key, f"UserInfo JWE kid {jh.get('kid')} is none of the RP's keys")
    inner = jwe_factory(jwe, alg=jh["alg"], enc=jh["enc"]).decrypt(jwe, [key_from_jwk_dict(enc_key[0])])
    inner = inner.decode() if isinstance(inner, bytes) else inner
    sh, sp = jwt_parts(inner)
    dump["userinfo"] = {"content_type": r.headers.get("Content-Type"), "jwe_header": jh,
                        "jws_header": sh, "payload": sp,
                        "encrypted_to_rp_key_with_use": enc_key[0]["use"]}
    for k, v in EXPECTED.items():
        expect(sp.get(k) == v, f"UserInfo {k}={sp.get(k)!r}")
    step(9, f"UserInfo: {r.headers.get('Content-Type')}, JWE {jh} to the RP key use={enc_key[0]['use']}; "
            f"inner JWS {sh}; claims {sorted(sp)}")
    return at


def fetch_federation(ta, op, rp, dump):
    for name, url in (("ta_entity_configuration", f"{ta}.well-known/openid-federation"),
                      ("op_entity_configuration", f"{op}.well-known/openid-federation"),
                      ("rp_entity_configuration", f"{rp}.well-known/openid-federation"),
                      ("ta_statement_about_op", f"{ta}fetch?" + urlencode({"sub": op})),
                      ("ta_statement_about_rp", f"{ta}fetch?" + urlencode({"sub": rp})),
                      ("ta_resolve_op", f"{ta}resolve?" + urlencode({"sub": op, "trust_anchor": ta})),
                      ("ta_resolve_rp", f"{ta}resolve?" + urlencode({"sub": rp, "trust_anchor": ta}))):
        r = requests.get(url, timeout=HTTP_TIMEOUT)
        expect(r.status_code == 200, f"{url}: HTTP {r.status_code} {r.text[:200]}")
        h, p = jwt_parts(r.text)
        dump[name] = {"url": url, "content_type": r.headers.get("Content-Type"), "header": h, "payload": p}
    r = requests.get(f"{ta}list", timeout=HTTP_TIMEOUT)
    dump["ta_list"] = r.json()
    expect(set(dump["ta_list"]) == {op, rp}, f"/list {dump['ta_list']}")
    step(10, f"federation endpoints: EC of TA/OP/RP, fetch, resolve, list {dump['ta_list']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--op-port", type=int, default=0)
    ap.add_argument("--rp-port", type=int, default=0)
    ap.add_argument("--rp-host", default="127.0.0.1", choices=["127.0.0.1", "localhost"])
    ap.add_argument("--lenient-localhost", action="store_true", help="passed on to run.py")
    ap.add_argument("--dump", help="write what was exchanged (decoded) to DIR/*.json")
    ap.add_argument("--keep", action="store_true", help="keep the temporary state directory")
    ap.add_argument("--timeout", type=float, default=90, help="seconds for each server to get ready")
    a = ap.parse_args()

    op_port = a.op_port or free_port()
    rp_port = a.rp_port or free_port()
    rp = f"http://{a.rp_host}:{rp_port}/"
    tmp = tempfile.mkdtemp(prefix="fedcheck-")
    procs, dump, rc = [], {}, 1
    try:
        rp_keys = {"federation": [new_jwk("sig")], "core": [new_jwk("sig"), new_jwk("enc")]}
        with open(os.path.join(tmp, "rp_keys.json"), "w") as f:
            json.dump(rp_keys, f)
        with open(os.path.join(tmp, "rp_fed_jwks.json"), "w") as f:
            json.dump({"keys": [public(k) for k in rp_keys["federation"]]}, f)

        argv = [sys.executable, "run.py", "--port", str(op_port), "--rp", rp,
                "--rp-jwks", os.path.join(tmp, "rp_fed_jwks.json"), "--state", os.path.join(tmp, "op"),
                "--ta-jwks-out", os.path.join(tmp, "ta_jwks.json"),
                "--rp-trust-marks-out", os.path.join(tmp, "rp_trust_marks.json")]
        if a.lenient_localhost:
            argv.append("--lenient-localhost")
        procs.append(Proc("run.py", argv, os.path.join(tmp, "run.stderr")))
        line = procs[-1].wait_ready(a.timeout)
        _, ta, op = line.split()
        step(0, f"run.py: {line}")

        procs.append(Proc("refrp_run.py", [
            sys.executable, "refrp_run.py", "--port", str(rp_port), "--host", a.rp_host,
            "--state", os.path.join(tmp, "rp"), "--ta", ta, "--op", op,
            "--keys", os.path.join(tmp, "rp_keys.json"),
            "--trust-marks", os.path.join(tmp, "rp_trust_marks.json")], os.path.join(tmp, "refrp.stderr")))
        step(0, f"refrp_run.py: {procs[-1].wait_ready(a.timeout)}")

        s = requests.Session()
        ro, cbq = login_through_reference_rp(s, rp, op, dump)
        check_tokens(os.path.join(tmp, "op"), op, rp, rp_keys, ro, cbq, dump)
        fetch_federation(ta, op, rp, dump)
        print("OK: the reference RP logged mario in through the harness OP", flush=True)
        rc = 0

    except Failure as e:
        print(f"FAIL: {e}", flush=True)
        for name in ("run.stderr", "refrp.stderr", "op/federation.log", "rp/refrp.log"):
            p = os.path.join(tmp, name)
            if os.path.exists(p):
                with open(p) as f:
                    tail = f.readlines()[-15:]
                print(f"--- last lines of {name}:\n" + "".join(tail), flush=True)
    finally:
        for p in reversed(procs):
            p.stop()
        if a.dump:
            os.makedirs(a.dump, exist_ok=True)
            for k, v in dump.items():
                with open(os.path.join(a.dump, f"{k}.json"), "w") as f:
                    json.dump(v, f, indent=2)
        if a.keep:
            print(f"state kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
