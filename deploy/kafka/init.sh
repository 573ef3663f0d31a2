#!/usr/bin/env bash
# One-shot init of the production Kafka cluster (docker-compose.yml service `kafka-init`, in the
# apache/kafka image; safe to run again): SCRAM credentials for every principal, every topic the
# services need (topics.txt, generated from the code), and the ACLs (acls.txt). It connects as `admin`
# over mutual TLS on the brokers' internal listener: the only super user besides the brokers.
# Settings (environment): BOOTSTRAP, ADMIN_CONFIG, PLAN_DIR, SECRETS_DIR, TOPIC_PARTITIONS (the
# services' CEASEFIRE_PARTITIONS), TOPIC_REPLICATION_FACTOR, TOPIC_MIN_INSYNC_REPLICAS,
# TOPIC_MAX_MESSAGE_BYTES, KAFKA_BIN. docs/security.md has the principals and the ACL table.
set -euo pipefail
BOOTSTRAP=${BOOTSTRAP:-kafka-1:19093}
ADMIN_CONFIG=${ADMIN_CONFIG:-/etc/ceasefire/admin.properties}
PLAN_DIR=${PLAN_DIR:-/etc/ceasefire}
SECRETS_DIR=${SECRETS_DIR:-/run/secrets}
PARTITIONS=${TOPIC_PARTITIONS:?set TOPIC_PARTITIONS to the CEASEFIRE_PARTITIONS of the services}
REPLICATION=${TOPIC_REPLICATION_FACTOR:-3}
MIN_ISR=${TOPIC_MIN_INSYNC_REPLICAS:-2}
MAX_BYTES=${TOPIC_MAX_MESSAGE_BYTES:-4194304}  # the producers' max_request_size (4 MiB): a batch record fits
BIN=${KAFKA_BIN:-/opt/kafka/bin}
admin=(--bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG")

# 1. SCRAM-SHA-512 credentials, one per password file kafka_password_<principal>. The password goes
# through a file in a private temporary directory, never on a command line (ps would show it).
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
shopt -s nullglob
users=0
for file in "$SECRETS_DIR"/kafka_password_*; do
  principal=${file##*/kafka_password_}
  printf 'SCRAM-SHA-512=[iterations=8192,password=%s]\n' "$(cat "$file")" > "$scratch/scram"
  "$BIN/kafka-configs.sh" "${admin[@]}" --alter --entity-type users --entity-name "$principal" \
    --add-config-file "$scratch/scram" >/dev/null
  rm -f "$scratch/scram"
  users=$((users + 1))
done
[[ $users -gt 0 ]] || { echo "no kafka_password_* files in $SECRETS_DIR: run deploy/kafka/make-secrets.sh" >&2; exit 1; }

# 2. Topics: created if missing, never altered (an existing topic keeps its partitions: the workers
# refuse to start on a co-partitioned topic with another count).
topics=0
while read -r name partitions cleanup; do
  [[ -z $name || $name == \#* ]] && continue
  [[ $partitions == CEASEFIRE_PARTITIONS ]] && partitions=$PARTITIONS
  "$BIN/kafka-topics.sh" "${admin[@]}" --create --if-not-exists --topic "$name" \
    --partitions "$partitions" --replication-factor "$REPLICATION" \
    --config "cleanup.policy=$cleanup" --config "min.insync.replicas=$MIN_ISR" \
    --config "max.message.bytes=$MAX_BYTES" --config unclean.leader.election.enable=false >/dev/null
  topics=$((topics + 1))
done < "$PLAN_DIR/topics.txt"

# 3. ACLs: allow only; one call per principal and resource with all its operations.
grants=0
while read -r principal resource name operations; do
  args=()
  for operation in ${operations//,/ }; do args+=(--operation "$operation"); done
  "$BIN/kafka-acls.sh" "${admin[@]}" --add --allow-principal "User:$principal" "--$resource" "$name" "${args[@]}" >/dev/null
  grants=$((grants + 1))
done < <(grep -v '^#' "$PLAN_DIR/acls.txt" | awk '{key=$1" "$2" "$3; ops[key]=(key in ops ? ops[key]"," : "")$4}
                                                 END {for (k in ops) print k, ops[k]}' | sort)
echo "kafka-init: $users SCRAM users, $topics topics, $grants ACL bindings"
