#!/usr/bin/env bash
# Create the platform's topics, idempotently, with the contract's partition counts:
#   transactions (10), transactions.dlq (1), fraud-alerts (5), fraud-alerts.dlq (1),
#   decisions (as many as transactions; DECISIONS_TOPIC names it, '' skips it)
#
# Against $KAFKA_BOOTSTRAP_SERVERS (default localhost:9092). Topic names and counts follow
# the services' settings: TRANSACTIONS_TOPIC, ALERTS_TOPIC, DECISIONS_TOPIC,
# TRANSACTIONS_PARTITIONS, ALERTS_PARTITIONS, TOPIC_REPLICATION_FACTOR (default 1), and
# TOPIC_MIN_INSYNC_REPLICAS (default: unset, the broker's min.insync.replicas;
# docker-compose.prod.yml sets 3 and 2).
# KAFKA_EXTRA_CONFIG (JSON, as the services read it) configures the Python client, and
# KAFKA_COMMAND_CONFIG names a client properties file for kafka-topics.sh (SASL: see
# deploy/kafka/sasl-client.sh). The services also create their topics at start; this
# script is for doing it on demand.
#
# Without Docker: uses the project's Python and fraud_common (.venv/bin/python, else $PYTHON
# or python3 with the requirements installed):
#   KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 ./create-topics.sh
# With Docker: the compose file runs this script once in the apache/kafka image (service
# create-topics), where it uses kafka-topics.sh; run it again with
#   docker compose run --rm create-topics
# or from any machine with Kafka's tools on PATH (or KAFKA_HOME set):
#   KAFKA_BOOTSTRAP_SERVERS=localhost:9092 ./create-topics.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bootstrap="${KAFKA_BOOTSTRAP_SERVERS:-${KAFKA_HOST:-localhost:9092}}"
transactions="${TRANSACTIONS_TOPIC:-transactions}"
alerts="${ALERTS_TOPIC:-fraud-alerts}"
decisions="${DECISIONS_TOPIC-decisions}"
transactions_partitions="${TRANSACTIONS_PARTITIONS:-10}"
alerts_partitions="${ALERTS_PARTITIONS:-5}"
replication="${TOPIC_REPLICATION_FACTOR:-1}"
min_isr="${TOPIC_MIN_INSYNC_REPLICAS:-}"

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" "$here/.venv/bin/python" python3; do
    [[ -n "$candidate" ]] || continue
    if PYTHONPATH="$here" "$candidate" -c 'import confluent_kafka, fraud_common' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

find_kafka_topics() {
  local candidate
  for candidate in "$(command -v kafka-topics.sh || true)" "${KAFKA_HOME:-/opt/kafka}/bin/kafka-topics.sh"; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if python="$(find_python)"; then
  echo "creating topics on $bootstrap with $python and fraud_common"
  PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" \
    BOOTSTRAP="$bootstrap" T="$transactions" A="$alerts" D="$decisions" \
    TP="$transactions_partitions" AP="$alerts_partitions" RF="$replication" MIN_ISR="$min_isr" \
    "$python" - <<'PY'
import json
import os

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from fraud_common.kafka.config import admin_config
from fraud_common.kafka.topics import contract_topics, ensure_topics

specs = contract_topics(
    os.environ["T"],
    os.environ["A"],
    transactions_partitions=int(os.environ["TP"]),
    alerts_partitions=int(os.environ["AP"]),
    replication_factor=int(os.environ["RF"]),
    decisions=os.environ["D"] or None,
)
extra = json.loads(os.environ.get("KAFKA_EXTRA_CONFIG") or "{}")
created = set(ensure_topics(os.environ["BOOTSTRAP"], specs, timeout=30, extra=extra))
for spec in specs:
    state = "created" if spec.name in created else "exists "
    print(f"  {state} {spec.name} ({spec.partitions} partitions)")
if os.environ["MIN_ISR"]:
    admin = AdminClient(admin_config(os.environ["BOOTSTRAP"], extra))
    entry = ConfigEntry(
        "min.insync.replicas", os.environ["MIN_ISR"], incremental_operation=AlterConfigOpType.SET
    )
    resources = [ConfigResource("topic", s.name, incremental_configs=[entry]) for s in specs]
    for resource, future in admin.incremental_alter_configs(resources).items():
        future.result(timeout=30)
        print(f"  min.insync.replicas={os.environ['MIN_ISR']} on {resource.name}")
PY
elif kafka_topics="$(find_kafka_topics)"; then
  echo "creating topics on $bootstrap with $kafka_topics"
  options=()
  [[ -n "${KAFKA_COMMAND_CONFIG:-}" ]] && options+=(--command-config "$KAFKA_COMMAND_CONFIG")
  create() {
    local config=()
    [[ -n "$min_isr" ]] && config=(--config "min.insync.replicas=$min_isr")
    "$kafka_topics" --bootstrap-server "$bootstrap" "${options[@]}" --create --if-not-exists \
      --topic "$1" --partitions "$2" --replication-factor "$replication" "${config[@]}"
    if [[ -n "$min_isr" ]]; then  # an existing topic gets it too
      "${kafka_topics%kafka-topics.sh}kafka-configs.sh" --bootstrap-server "$bootstrap" \
        "${options[@]}" --alter --entity-type topics --entity-name "$1" \
        --add-config "min.insync.replicas=$min_isr"
    fi
  }
  create "$transactions" "$transactions_partitions"
  create "$transactions.dlq" 1
  create "$alerts" "$alerts_partitions"
  create "$alerts.dlq" 1
  if [[ -n "$decisions" ]]; then create "$decisions" "$transactions_partitions"; fi
  "$kafka_topics" --bootstrap-server "$bootstrap" "${options[@]}" --list
else
  echo "create-topics.sh: need the project's Python (make venv) or Kafka's kafka-topics.sh" >&2
  exit 1
fi
