#!/usr/bin/env bash
# Deploy infra/main.bicep to $RESOURCE_GROUP. Usage: deploy_infra.sh true|false
# (the argument is deployEventSubscriptions: true only once the functions exist).
set -euo pipefail
subscriptions="${1:-false}"
cd "$(dirname "$0")/../../.."
az group create --name "$RESOURCE_GROUP" --location "$LOCATION" --output none
deployer="$(bash pipelines/ado/scripts/deployer_object_id.sh)"
to_bool() { [ "$(echo "${1:-false}" | tr '[:upper:]' '[:lower:]')" = "true" ] && echo true || echo false; }
az deployment group create \
  --resource-group "$RESOURCE_GROUP" \
  --name "manymodels-$(date -u +%Y%m%d%H%M%S)" \
  --template-file infra/main.bicep \
  --parameters infra/main.parameters.json \
  --parameters namespace="$NAMESPACE" location="$LOCATION" \
               deployerPrincipalId="$deployer" \
               deployEventSubscriptions="$subscriptions" \
               trainingMethod="$TRAINING_METHOD" \
               deployAci="$(to_bool "$DEPLOY_ACI")" deployAks="$(to_bool "$DEPLOY_AKS")" \
               aksName="${AKS_NAME:-}" aksResourceGroup="${AKS_RESOURCE_GROUP:-}" \
               maxContainerSize="$MAX_CONTAINER_SIZE" \
               resetDeployment="$(to_bool "$RESET_DEPLOYMENT")" updateDeployment="$(to_bool "$UPDATE_DEPLOYMENT")" \
               datasetMaxFiles="$DATASET_MAXFILES" \
  --output none
echo "infra/main.bicep deployed to $RESOURCE_GROUP (event subscriptions: $subscriptions)"
