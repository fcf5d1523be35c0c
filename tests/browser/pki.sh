#!/usr/bin/env bash
# Writes the browser tests' certificates into DIR with the openssl CLI: a server CA and varco's
# certificate for the test hosts (HTTPS), and a CNS card CA with two cards of the TS-CNS subject
# layout, one of them revoked in the CA's revocation list. browser.sh runs it before Node starts,
# so that NODE_EXTRA_CA_CERTS can name the server CA (Node reads it only at start).
set -euo pipefail
dir=${1:?usage: pki.sh DIR}
mkdir -p "$dir"
cd "$dir"
quiet() { "$@" >/dev/null 2>&1 || { echo "pki.sh: $* failed" >&2; "$@"; exit 1; }; }

# HTTPS: a CA, and one certificate for every host the tests visit.
quiet openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=varco browser test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout server-ca.key -out server-ca.pem
quiet openssl req -new -newkey rsa:2048 -nodes -subj "/CN=portal.localhost" -keyout server.key -out server.csr
printf '%s\n' "subjectAltName=DNS:portal.localhost,DNS:cns.portal.localhost,DNS:capannori.localhost,DNS:lucca.localhost,DNS:porcari.localhost" \
  "extendedKeyUsage=serverAuth" > server.ext
quiet openssl x509 -req -in server.csr -CA server-ca.pem -CAkey server-ca.key -CAcreateserial -days 30 \
  -extfile server.ext -out server.pem

# CNS: the card CA, two cards, and the CA's revocation list naming the second.
quiet openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
  -subj "/C=IT/O=Regione di Prova/CN=CA Cittadini di Prova" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout cns-ca.key -out cns-ca.pem
printf '%s\n' "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth" > card.ext
card() { # name fiscal-code given-name surname
  quiet openssl req -new -newkey rsa:2048 -nodes \
    -subj "/C=IT/O=Regione di Prova/SN=$4/GN=$3/serialNumber=TINIT-$2/CN=$2\/8038000000012345.Yx3mQ0b1L2Xg9Rr7Kq1n6Hc2Zk8=" \
    -keyout "$1.key" -out "$1.csr"
  quiet openssl x509 -req -in "$1.csr" -CA cns-ca.pem -CAkey cns-ca.key -CAcreateserial -days 30 \
    -extfile card.ext -out "$1.pem"
}
card card-good RSSMRA80A01H501U MARIO ROSSI
card card-revoked BNCGVN75L15G702L GIOVANNI BIANCHI
: > index.txt
printf '%s\n' "[ca]" "default_ca = cns" "[cns]" "database = index.txt" "default_md = sha256" \
  "default_crl_days = 1" > ca.cnf
quiet openssl ca -config ca.cnf -keyfile cns-ca.key -cert cns-ca.pem -revoke card-revoked.pem
quiet openssl ca -config ca.cnf -keyfile cns-ca.key -cert cns-ca.pem -gencrl -out cns-ca.crl
