#!/usr/bin/env bash
# First start of the production stack: a private CA, the brokers' and the admin's certificates, and one
# random SCRAM password per Kafka principal, in DIR (default deploy/secrets, which git and the image
# ignore). Nothing here is committed; run it once, keep DIR private, back up ca.key offline.
#   deploy/kafka/make-secrets.sh [DIR] [HOST...]
# HOST: extra names clients use to reach the brokers (KAFKA_ADVERTISED_HOST), put in every broker
# certificate beside kafka-1..3, localhost and 127.0.0.1. Existing files are kept (run it again after
# adding a principal); delete DIR to start over. docs/security.md says what each file is for.
set -euo pipefail
DIR=${1:-$(dirname "$0")/../secrets}
shift || true
DAYS=${CERT_DAYS:-825}
BROKERS="kafka-1 kafka-2 kafka-3"
# One principal per service, plus a reporter, a subscriber and an operator (deploy/kafka/acls.txt;
# services/runtime/topic_plan.py PRINCIPALS, which the suite compares with this list).
PRINCIPALS="ingest correlate alert archive reporter subscriber operator"
umask 077
mkdir -p "$DIR"
cd "$DIR"

if [[ ! -f ca.key ]]; then
  openssl req -x509 -newkey rsa:3072 -nodes -keyout ca.key -out ca.crt -days "$DAYS" \
    -subj "/CN=ceasefire-monitor private CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

# name, then subjectAltName entries; writes NAME.pem (PKCS#8 key, then certificate: Kafka's PEM keystore)
issue() {
  local name=$1 san=$2
  [[ -f $name.pem ]] && return
  openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "/CN=$name" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' \
    "$san" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$name.crt" \
    -days "$DAYS" -extfile "$name.ext" 2>/dev/null
  cat "$name.key" "$name.crt" > "$name.pem"
  rm -f "$name.csr" "$name.ext"
}

extra=""
for host in "$@"; do
  if [[ $host =~ ^[0-9.]+$ ]]; then extra+=",IP:$host"; else extra+=",DNS:$host"; fi
done
for broker in $BROKERS; do
  issue "$broker" "DNS:$broker,DNS:localhost,IP:127.0.0.1$extra"
done
issue admin "DNS:admin"  # the init container's identity (a super user over mutual TLS, inside the network)

mkdir -p passwords
for name in $PRINCIPALS grafana-admin archive-db; do  # letters and digits only: safe in URLs and SCRAM configs
  [[ -f passwords/$name ]] || openssl rand -base64 32 | tr -d '\n=/+' > "passwords/$name"
done
# the archive's database URL (CEASEFIRE_ARCHIVE_URL as a secret file: it holds the password)
[[ -f archive-url ]] || printf 'postgresql+psycopg://ceasefire:%s@archive-db:5432/archive' "$(cat passwords/archive-db)" > archive-url
rm -f ca.srl
# The containers run as other users than this one: the files are readable, the directory is not listed
# to others (keep DIR on a private disk; chmod/chown to taste).
chmod 0644 ./*.pem ./*.crt ./*.key archive-url passwords/*
chmod 0600 ca.key
echo "secrets in $(pwd): ca.crt (give it to clients), passwords/<principal>, kafka-N.pem, admin.pem, archive-url"
