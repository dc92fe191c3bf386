#!/usr/bin/env bash
# Writes the client properties Kafka's own tools need to reach a broker of
# docker-compose.prod.yml (SASL PLAIN on the INTERNAL listener) to the file named by $1,
# readable by its owner only, from SASL_USERNAME and SASL_PASSWORD in the environment
# (never committed). Used by the brokers' healthcheck and by create-topics
# (KAFKA_COMMAND_CONFIG, see create-topics.sh).
set -euo pipefail
out="${1:?usage: sasl-client.sh OUTPUT_FILE}"
: "${SASL_USERNAME:?set SASL_USERNAME}" "${SASL_PASSWORD:?set SASL_PASSWORD}"
umask 077
cat > "$out" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="${SASL_USERNAME}" password="${SASL_PASSWORD}";
PROPERTIES
