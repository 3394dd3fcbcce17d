#!/usr/bin/env bash
# Deploy infra/main.bicep to $RESOURCE_GROUP. Usage: deploy_infra.sh true|false
# (the argument is deployEventSubscriptions: true only once the functions exist). The backend
# (MANYMODELS_BACKEND: amlv2 or aml) and DEPLOY_MANAGED come from bootstrap.yml's parameters.
set -euo pipefail
subscriptions="${1:-false}"
cd "$(dirname "$0")/../../.."
az group create --name "$RESOURCE_GROUP" --location "$LOCATION" --output none
deployer="$(bash pipelines/ado/scripts/deployer_object_id.sh)"
to_bool() { [ "$(echo "${1:-false}" | tr '[:upper:]' '[:lower:]')" = "true" ] && echo true || echo false; }
# Azure AutoML many models on SDK v2 trains every series of a dataset version, so the Function App gets
# TRAINING_MODE=all with it (shared/settings.py refuses 'changed' with it at start-up).
default_mode=changed
if [ "${MANYMODELS_BACKEND:-amlv2}" = "amlv2" ] && [ "$(echo "${TRAINING_METHOD:-}" | tr '[:upper:]' '[:lower:]')" = "automl" ]; then
  default_mode=all
fi
az deployment group create \
  --resource-group "$RESOURCE_GROUP" \
  --name "manymodels-$(date -u +%Y%m%d%H%M%S)" \
  --template-file infra/main.bicep \
  --parameters infra/main.parameters.json \
  --parameters namespace="$NAMESPACE" location="$LOCATION" \
               deployerPrincipalId="$deployer" \
               deployEventSubscriptions="$subscriptions" \
               backend="${MANYMODELS_BACKEND:-amlv2}" \
               trainingMethod="$TRAINING_METHOD" trainingMode="$default_mode" \
               deployAci="$(to_bool "$DEPLOY_ACI")" deployAks="$(to_bool "$DEPLOY_AKS")" \
               deployManaged="$(to_bool "${DEPLOY_MANAGED:-false}")" \
               aksName="${AKS_NAME:-}" aksResourceGroup="${AKS_RESOURCE_GROUP:-}" \
               maxContainerSize="$MAX_CONTAINER_SIZE" \
               resetDeployment="$(to_bool "$RESET_DEPLOYMENT")" updateDeployment="$(to_bool "$UPDATE_DEPLOYMENT")" \
               datasetMaxFiles="$DATASET_MAXFILES" \
  --output none
echo "infra/main.bicep deployed to $RESOURCE_GROUP (backend: ${MANYMODELS_BACKEND:-amlv2}, event subscriptions: $subscriptions)"
