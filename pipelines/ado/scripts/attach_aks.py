"""Attach the AKS cluster AKS_NAME (resource group AKS_RESOURCE_GROUP) to the workspace as the compute
target AKS_NAME, when DEPLOY_AKS=true. Idempotent: a target already attached is left alone.

- MANYMODELS_BACKEND=aml (SDK v1): an AKS inference target (``AksCompute``) for AKS webservices.
- MANYMODELS_BACKEND=amlv2 (SDK v2, the default): a Kubernetes compute (``KubernetesCompute``, namespace
  ``azureml``) for Kubernetes online endpoints. The cluster needs the Azure ML extension first
  (``az k8s-extension create --extension-type Microsoft.AzureML.Kubernetes``, docs/deploy-azure.md
  section 1); without it Azure ML refuses the attach and this script says so.

Runs inside AzureCLI@2 (DefaultAzureCredential uses its login). Environment: NAMESPACE, RESOURCE_GROUP,
AZURE_SUBSCRIPTION_ID, AKS_NAME, AKS_RESOURCE_GROUP, DEPLOY_AKS, MANYMODELS_BACKEND.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

KUBERNETES_NAMESPACE = "azureml"  # where the Azure ML extension runs the endpoints


def cluster_resource_id(env: Mapping[str, str]) -> str:
    return (f"/subscriptions/{env['AZURE_SUBSCRIPTION_ID']}/resourceGroups/{env['AKS_RESOURCE_GROUP']}"
            f"/providers/Microsoft.ContainerService/managedClusters/{env['AKS_NAME']}")


def attach_v1(env: Mapping[str, str]) -> str:
    from azureml.core import Workspace
    from azureml.core.authentication import TokenAuthentication
    from azureml.core.compute import AksCompute, ComputeTarget

    from shared.workspace.aml.workspace import token_for_audience

    aks_name, aks_group = env["AKS_NAME"], env["AKS_RESOURCE_GROUP"]
    ws = Workspace(subscription_id=env["AZURE_SUBSCRIPTION_ID"], resource_group=env["RESOURCE_GROUP"],
                   workspace_name=f"{env['NAMESPACE']}aml", auth=TokenAuthentication(token_for_audience))
    if aks_name in ws.compute_targets:
        return f"AKS compute target {aks_name} is already attached"
    config = AksCompute.attach_configuration(resource_group=aks_group, cluster_name=aks_name)
    target = ComputeTarget.attach(ws, aks_name, config)
    target.wait_for_completion(show_output=True)
    return f"AKS cluster {aks_group}/{aks_name} attached as compute target {aks_name}"


def attach_v2(env: Mapping[str, str], client=None) -> str:
    """Attach as a Kubernetes compute through azure-ai-ml; ``client`` is an ``MLClient`` (tests pass a fake)."""
    from azure.ai.ml.entities import KubernetesCompute

    from shared.errors import InvalidValue, NotFound
    from shared.settings import Settings
    from shared.workspace.amlv2.sdk_errors import sdk_call
    from shared.workspace.amlv2.workspace import connect

    aks_name = env["AKS_NAME"]
    if client is None:
        settings = Settings.from_env({**env, "MANYMODELS_BACKEND": "amlv2",
                                      "AML_WORKSPACE_NAME": f"{env['NAMESPACE']}aml"})
        client = connect(settings)
    try:
        with sdk_call(f"read compute target {aks_name}"):
            existing = client.compute.get(aks_name)
    except NotFound:
        existing = None
    if existing is not None:
        if str(existing.type).lower() != "kubernetes":
            raise InvalidValue(f"compute target {aks_name} is attached as {existing.type!r}: Kubernetes online "
                               "endpoints (MANYMODELS_BACKEND=amlv2) need a Kubernetes compute. Retire its SDK v1 "
                               "webservices and detach it, or set AKS_NAME to another name (docs/deploy-azure.md)")
        return f"Kubernetes compute {aks_name} is already attached"
    compute = KubernetesCompute(name=aks_name, resource_id=cluster_resource_id(env), namespace=KUBERNETES_NAMESPACE)
    with sdk_call(f"attach AKS cluster {env['AKS_RESOURCE_GROUP']}/{aks_name} as a Kubernetes compute "
                  "(does the cluster have the Azure ML extension? docs/deploy-azure.md)"):
        client.compute.begin_attach(compute).result()
    return f"AKS cluster {env['AKS_RESOURCE_GROUP']}/{aks_name} attached as Kubernetes compute {aks_name}"


def main() -> int:
    env = os.environ
    if env.get("DEPLOY_AKS", "false").strip().lower() != "true":
        print("DEPLOY_AKS is not true: no AKS cluster to attach")
        return 0
    backend = env.get("MANYMODELS_BACKEND", "amlv2").strip().lower()
    print(attach_v2(env) if backend == "amlv2" else attach_v1(env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
