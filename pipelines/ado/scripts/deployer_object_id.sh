#!/usr/bin/env bash
# Print the object id of the principal the Azure CLI is logged in as (the service connection),
# read from its own access token: no Microsoft Graph permission needed, nothing secret printed.
set -euo pipefail
token="$(az account get-access-token --query accessToken -o tsv)"
payload="$(printf '%s' "$token" | cut -d. -f2 | tr '_-' '/+')"
while [ $(( ${#payload} % 4 )) -ne 0 ]; do payload="${payload}="; done
printf '%s' "$payload" | base64 -d | python3 -c 'import json, sys; print(json.load(sys.stdin)["oid"])'
