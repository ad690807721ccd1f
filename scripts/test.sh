#!/usr/bin/env bash
# Every test: lint, typecheck, unit tests (on this Node, then with the embedded smoke test on Node 22 and 24), then
# integration tests against a real Redis and a real Kafka that scripts/services.sh installs (if missing), starts on
# loopback and stops again, then the failover tests against the highly available shape (Redis primary + replica +
# three Sentinels, three Kafka brokers), started once for all of them.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run --silent lint
npm run --silent typecheck
npm run --silent test:unit
bash scripts/node-versions.sh

bash scripts/services.sh up
trap 'bash scripts/services.sh down' EXIT
set -a
. .services/env
set +a
npm run --silent test:integration
# The ACL matrix, tokens, limits and TLS again, on the Redis stores (the run above uses the embedded ones).
npm run --silent test:integration:redis-stores

bash scripts/services.sh ha-up
set -a
. .services/ha/env
set +a
npm run --silent test:ha
