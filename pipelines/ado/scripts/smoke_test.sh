#!/usr/bin/env bash
# Call /api/health and /api/status of the deployed Function App. The function key is read at run
# time from the platform and only ever held in this process (never printed or stored).
set -euo pipefail
app="${NAMESPACE}func"
host="$(az functionapp show -g "$RESOURCE_GROUP" -n "$app" --query defaultHostName -o tsv)"
key="$(az functionapp keys list -g "$RESOURCE_GROUP" -n "$app" --query functionKeys.default -o tsv)"
for attempt in $(seq 1 20); do
  if curl -fsS -H "x-functions-key: $key" "https://$host/api/health" -o /tmp/health.json; then
    break
  fi
  echo "health check $attempt/20 failed; the app may still be starting"; sleep 15
done
curl -fsS -H "x-functions-key: $key" "https://$host/api/health"; echo
curl -fsS -H "x-functions-key: $key" "https://$host/api/status"; echo
echo "smoke test passed: https://$host"
