#!/usr/bin/env bash
# Simulate DATASET_MAXFILES sample series and upload their training files to the landing
# container as one batch closed by its manifest: the Function App takes it from there (dataset
# version -> training run -> registered models -> deployment). The inference files are kept as a
# pipeline artifact: upload them once models are deployed (docs/deploy-azure.md). By identity.
set -euo pipefail
cd "$(dirname "$0")/../../.."
data="${1:?usage: prepare_data.sh OUT_DIR}"
export AzureWebJobsStorage="https://${NAMESPACE}sa.blob.core.windows.net"
export LANDING_CONTAINER=landing
manymodels data simulate --series "$DATASET_MAXFILES" --out "$data"
manymodels data upload "$data/train" --kind train --json
