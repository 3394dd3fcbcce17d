"""Attach the AKS cluster AKS_NAME (resource group AKS_RESOURCE_GROUP) to the workspace as an
inference compute target, when DEPLOY_AKS=true. Idempotent: an attached target is left alone.

Runs inside AzureCLI@2 (DefaultAzureCredential uses its login). Environment: NAMESPACE,
RESOURCE_GROUP, AZURE_SUBSCRIPTION_ID, AKS_NAME, AKS_RESOURCE_GROUP, DEPLOY_AKS.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    if os.environ.get("DEPLOY_AKS", "false").strip().lower() != "true":
        print("DEPLOY_AKS is not true: no AKS cluster to attach")
        return 0
    from azureml.core import Workspace
    from azureml.core.authentication import TokenAuthentication
    from azureml.core.compute import AksCompute, ComputeTarget

    from shared.workspace.aml.workspace import token_for_audience

    aks_name, aks_group = os.environ["AKS_NAME"], os.environ["AKS_RESOURCE_GROUP"]
    ws = Workspace(subscription_id=os.environ["AZURE_SUBSCRIPTION_ID"], resource_group=os.environ["RESOURCE_GROUP"],
                   workspace_name=f"{os.environ['NAMESPACE']}aml", auth=TokenAuthentication(token_for_audience))
    if aks_name in ws.compute_targets:
        print(f"AKS compute target {aks_name} is already attached")
        return 0
    config = AksCompute.attach_configuration(resource_group=aks_group, cluster_name=aks_name)
    target = ComputeTarget.attach(ws, aks_name, config)
    target.wait_for_completion(show_output=True)
    print(f"AKS cluster {aks_group}/{aks_name} attached as compute target {aks_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
