"""infra/: the Bicep templates, checked structurally (no Bicep CLI here: the text is parsed with
careful regexes - resource declarations, params, module wiring, app settings)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest

from shared.errors import SettingsError
from shared.settings import _SPEC, Settings, env_names

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"
MODULES = INFRA / "modules"

# AzureWebJobsStorage is identity-based on Azure: the host and shared/storage read these instead
# of a connection string (which would hold an account key).
IDENTITY_STORAGE_KEYS = {"AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential"}


@cache
def text(path: Path) -> str:
    return path.read_text()


def block(source: str, header: str) -> str:
    """The ``{...}`` body following ``header`` (balanced braces), e.g. ``var appSettings =``."""
    start = source.index(header)
    open_at = source.index("{", start)
    depth = 0
    for i in range(open_at, len(source)):
        depth += {"{": 1, "}": -1}.get(source[i], 0)
        if depth == 0:
            return source[open_at + 1:i]
    raise AssertionError(f"unbalanced braces after {header!r}")


def top_level_keys(body: str) -> list[str]:
    """Keys of an object literal body, only at its own nesting level."""
    keys, depth = [], 0
    for line in body.splitlines():
        if depth == 0:
            m = re.match(r"\s*'?([A-Za-z_][\w]*)'?\s*:", line)
            if m:
                keys.append(m.group(1))
        depth += line.count("{") + line.count("[") - line.count("}") - line.count("]")
    return keys


def params(source: str) -> dict[str, bool]:
    """param name -> has a default value."""
    return {m.group(1): m.group(2) is not None
            for m in re.finditer(r"^param (\w+) [\w.]+(\s*=.*)?$", source, re.MULTILINE)}


def resources(source: str) -> list[tuple[str, str]]:
    return re.findall(r"^resource (\w+) '([\w./]+)@[\w-]+'", source, re.MULTILINE)


def modules(source: str) -> dict[str, tuple[str, str]]:
    """module symbol -> (path, body)."""
    found = {}
    for m in re.finditer(r"^module (\w+) '([^']+)'", source, re.MULTILINE):
        found[m.group(1)] = (m.group(2), block(source[m.start():], f"module {m.group(1)}"))
    return found


def app_settings() -> set[str]:
    storage_settings = top_level_keys(block(text(MODULES / "functionapp.bicep"), "var storageSettings ="))
    return set(top_level_keys(block(text(MAIN), "var appSettings ="))) | set(storage_settings)


def test_every_setting_the_app_reads_is_set_by_the_function_app():
    settings = app_settings()
    missing = [name for name in env_names() if name not in settings
               and not (name == "AzureWebJobsStorage" and settings >= IDENTITY_STORAGE_KEYS)]
    assert not missing, f"infra/main.bicep var appSettings does not set {missing} (shared/settings.py reads them)"


def test_every_app_setting_is_one_the_app_or_the_platform_reads():
    platform = {"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"}
    unknown = {s for s in app_settings() if s not in env_names() and s not in platform
               and not s.startswith("AzureWebJobsStorage__")}
    assert not unknown, f"app settings nothing reads (typo?): {sorted(unknown)}"


def allowed_values(source: str, param: str) -> list[str]:
    """The @allowed([...]) list declared right above ``param <name>``."""
    m = re.search(rf"@allowed\(\[([^\]]*)\]\)\n(?:@.*\n)*param {param} ", source)
    assert m, f"param {param} has no @allowed list"
    return re.findall(r"'([^']*)'", m.group(1))


def param_default(source: str, param: str) -> str:
    m = re.search(rf"^param {param} \w+ = (.+)$", source, re.MULTILINE)
    assert m, f"param {param} has no default"
    return m.group(1).strip("'")


def app_setting_env(backend: str, **deploy: bool) -> dict[str, str]:
    """appSettings as the Function App gets them for a backend: the literals, the deploy flags and the
    values Azure fills in (subscription, resource group, workspace)."""
    body = block(text(MAIN), "var appSettings =")
    literals = dict(re.findall(r"^\s+(\w+): '([^']*)'$", body, re.MULTILINE))
    flags = {"DEPLOY_ACI": "deployAci", "DEPLOY_MANAGED": "deployManaged", "DEPLOY_AKS": "deployAks"}
    for env_name, param in flags.items():
        assert re.search(rf"^\s+{env_name}: string\({param}\)$", body, re.MULTILINE), env_name
    values = {env_name: str(deploy.get(param, param_default(text(MAIN), param) == "true")).lower()
              for env_name, param in flags.items()}
    return {**literals, **values, "MANYMODELS_BACKEND": backend, "AZURE_SUBSCRIPTION_ID": "sub",
            "RESOURCE_GROUP": "rg", "AML_WORKSPACE_NAME": "nsaml", "AKS_NAME": "aks"}


def test_backend_parameter_is_the_app_setting_and_allows_exactly_the_azure_backends():
    main = text(MAIN)
    assert re.search(r"^\s+MANYMODELS_BACKEND: backend$", block(main, "var appSettings ="), re.MULTILINE)
    product = set(re.findall(r"'(\w+)'", _SPEC["backend"].allowed))  # what shared/settings.py accepts
    # every backend the product runs on Azure with, and not 'local' (a stand-in, never on Azure)
    assert set(allowed_values(main, "backend")) == product - {"local"}
    assert param_default(main, "backend") == "amlv2"  # SDK v1 support ended 30 June 2026
    assert "var sdkV2 = backend == 'amlv2'" in main


@pytest.mark.parametrize("backend", ["amlv2", "aml"])
def test_app_setting_values_are_valid_settings(backend):
    """The app settings Bicep writes, with the template's defaults, pass shared/settings.py's own checks."""
    settings = Settings.from_env(app_setting_env(backend))
    assert settings.backend == backend and settings.deploy_local is False
    assert settings.deploy_managed is False and settings.deploy_aci is False


def test_deploy_targets_each_backend_takes_and_refuses():
    assert Settings.from_env(app_setting_env("amlv2", deployManaged=True)).enabled_targets == ("managed",)
    assert Settings.from_env(app_setting_env("aml", deployAci=True)).enabled_targets == ("aci",)
    with pytest.raises(SettingsError, match="DEPLOY_ACI"):
        Settings.from_env(app_setting_env("amlv2", deployAci=True))
    with pytest.raises(SettingsError, match="DEPLOY_MANAGED"):
        Settings.from_env(app_setting_env("aml", deployManaged=True))


def test_names_derive_from_the_namespace_as_in_the_original():
    body = block(text(MAIN), "var names =")
    for key, suffix in (("storage", "sa"), ("keyVault", "kv"), ("appInsights", "ai"), ("registry", "cr"),
                        ("workspace", "aml")):
        assert re.search(rf"^\s+{key}: '\${{namespace}}{suffix}'$", body, re.MULTILINE), key


def test_every_module_exists_and_gets_exactly_its_params():
    for symbol, (path, body) in modules(text(MAIN)).items():
        module_file = (INFRA / path)
        assert module_file.is_file(), f"module {symbol}: {path} does not exist"
        declared = params(text(module_file))
        passed = set(top_level_keys(block(body, "params:")))
        assert passed <= set(declared), f"{path}: unknown params {passed - set(declared)}"
        required = {p for p, has_default in declared.items() if not has_default}
        assert required <= passed, f"{path}: required params not passed {required - passed}"


def test_main_parameters_file_names_only_declared_params():
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = params(text(MAIN))
    assert set(values) <= set(declared)
    assert {p for p, has_default in declared.items() if not has_default} <= set(values)


def test_required_resources_are_declared():
    types = {t for path in [MAIN, *MODULES.glob("*.bicep")] for _, t in resources(text(path))}
    assert {
        "Microsoft.Storage/storageAccounts", "Microsoft.Storage/storageAccounts/blobServices/containers",
        "Microsoft.Storage/storageAccounts/queueServices/queues",
        "Microsoft.Storage/storageAccounts/tableServices/tables", "Microsoft.KeyVault/vaults",
        "Microsoft.OperationalInsights/workspaces", "Microsoft.Insights/components",
        "Microsoft.ContainerRegistry/registries", "Microsoft.MachineLearningServices/workspaces",
        "Microsoft.MachineLearningServices/workspaces/computes", "Microsoft.Web/serverfarms", "Microsoft.Web/sites",
        "Microsoft.EventGrid/systemTopics", "Microsoft.EventGrid/systemTopics/eventSubscriptions",
        "Microsoft.Authorization/roleAssignments",
    } <= types


def test_storage_is_https_only_private_with_the_product_containers_queue_and_table():
    storage = text(MODULES / "storage.bicep")
    assert "kind: 'StorageV2'" in storage
    assert "supportsHttpsTrafficOnly: true" in storage and "allowBlobPublicAccess: false" in storage
    containers = block(text(MAIN), "var containers =")
    defaults = Settings.from_env({})
    for name in (defaults.landing_container, defaults.predictions_container, "deadletter", "datasets"):
        assert f"'{name}'" in containers
    assert f"var deployQueue = '{defaults.deploy_queue}'" in text(MAIN)
    assert f"var ledgerTable = '{defaults.ledger_table}'" in text(MAIN)


def test_function_app_is_flex_consumption_python_311_with_identity_storage():
    app = text(MODULES / "functionapp.bicep")
    assert "tier: 'FlexConsumption'" in app and "name: 'FC1'" in app
    assert re.search(r"runtime: \{ name: 'python', version: '3\.11' \}", app)
    assert "identity: { type: 'SystemAssigned' }" in app
    assert "authentication: { type: 'SystemAssignedIdentity' }" in app
    assert "AzureWebJobsStorage__credential: 'managedidentity'" in app


def test_function_identity_gets_least_privilege_data_roles():
    app = text(MODULES / "functionapp.bicep")
    scopes = re.findall(r"scope: (\w+)\n\s+properties: \{\n\s+principalId: site\.identity\.principalId", app)
    assert sorted(scopes) == ["appInsights", "routerIdentity", "storage", "storage", "storage", "workspace"]
    # it may attach the router's identity to the endpoint it creates, only when there is one
    assert re.search(r"resource routerIdentityOperator '[^']+' = if \(!empty\(routerIdentityName\)\)", app)
    assert "roles.managedIdentityOperator)" in app
    assert "Owner'" not in app.replace("storageBlobDataOwner", "")  # no control-plane Owner anywhere
    for role in ("storageBlobDataOwner", "storageQueueDataContributor", "storageTableDataContributor",
                 "azureMlDataScientist"):
        assert f"roles.{role})" in app


def test_workspace_key_vault_and_compute():
    aml = text(MODULES / "aml.bicep")
    assert "identity: { type: 'SystemAssigned' }" in aml
    for link in ("storageAccount:", "keyVault:", "applicationInsights:", "containerRegistry:"):
        assert link in aml
    assert "computeType: 'AmlCompute'" in aml and "credentialsType: 'None'" in aml
    assert "enableRbacAuthorization: true" in text(MODULES / "keyvault.bicep")
    assert f"param computeName string = '{Settings.from_env({}).compute_name}'" in text(MAIN)
    for p in ("computeVmSize", "computeMinNodes", "computeMaxNodes"):
        assert p in params(text(MAIN))


def test_event_grid_subscriptions_come_from_the_shared_declaration():
    main = text(MAIN)
    assert "loadJsonContent('eventgrid/subscriptions.json')" in main
    assert (INFRA / "eventgrid" / "subscriptions.json").is_file()
    assert re.search(r"subscriptions: eventGrid\.subscriptions", main)
    grid = text(MODULES / "eventgrid.bicep")
    assert re.search(r"\[for s in subscriptions: if \(deploySubscriptions\)", grid)
    assert "endpointType: 'AzureFunction'" in grid
    assert "resourceId: '${functionAppId}/functions/${s.function}'" in grid
    for field in ("s.includedEventTypes", "s.subjectBeginsWith", "s.maxDeliveryAttempts",
                  "s.eventTimeToLiveInMinutes"):
        assert field in grid
    assert "deadLetterWithResourceIdentity" in grid and "blobContainerName: deadLetterContainer" in grid
    declared_topics = set(json.loads((INFRA / "eventgrid" / "subscriptions.json").read_text())["topics"])
    assert declared_topics == set(top_level_keys(block(grid, "var topicNames =")))


SECRET_PATTERNS = [
    r"listKeys\s*\(", r"listkeys", r"AccountKey\s*=", r"accountKey\s*:", r"SharedAccessKey", r"SharedAccessSignature",
    r"\bsig=", r"password\s*[:=]", r"clientSecret", r"primaryKey\s*:", r"secureString\(\)", r"connectionStrings\s*:",
]


@pytest.mark.parametrize("path", sorted(
    [*INFRA.rglob("*.bicep"), *INFRA.rglob("*.json"), *(REPO / "pipelines" / "ado").rglob("*.*")]),
    ids=lambda p: str(p.relative_to(REPO)))
def test_no_secret_or_account_key_in_templates_and_pipelines(path: Path):
    body = path.read_text()
    hits = [p for p in SECRET_PATTERNS if re.search(p, body, re.IGNORECASE)]
    assert not hits, f"{path.relative_to(REPO)} matches {hits}: use managed identity, never keys"


def test_router_identity_exists_only_on_sdk_v2_and_reaches_the_function_app():
    main = text(MAIN)
    assert re.search(r"^module routerIdentity 'modules/routeridentity\.bicep' = if \(sdkV2\) \{", main, re.MULTILINE)
    settings = block(main, "var appSettings =")
    assert "ROUTER_IDENTITY_RESOURCE_ID: sdkV2 ? routerIdentity.outputs.id : ''" in settings
    assert "ROUTER_IDENTITY_CLIENT_ID: sdkV2 ? routerIdentity.outputs.clientId : ''" in settings
    assert "routerIdentityName: sdkV2 ? names.routerIdentity : ''" in block(main, "module functionApp")
    # what the ternaries read is what the module outputs
    outputs = dict(re.findall(r"^output (\w+) string = (.+)$", text(MODULES / "routeridentity.bicep"), re.MULTILINE))
    assert outputs["id"] == "identity.id" and outputs["clientId"] == "identity.properties.clientId"


def test_router_identity_may_score_pull_and_read_models_and_nothing_more():
    module = text(MODULES / "routeridentity.bicep")
    assert "resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@" in module
    role = block(module, "resource scorer 'Microsoft.Authorization/roleDefinitions@")
    assert re.findall(r"^\s+actions: \[\n\s+(\w+)\n\s+\]", role, re.MULTILINE) == ["scoreAction"]
    assert ("var scoreAction = 'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/score/action'"
            in module)
    assert "'*'" not in role and "type: 'customRole'" in role and "resourceGroup().id" in role
    assignments = re.findall(r"scope: (\w+)\n\s+properties: \{\n\s+principalId: identity\.properties\.principalId"
                             r"\n\s+principalType: 'ServicePrincipal'\n\s+roleDefinitionId: ([^\n]+)", module)
    assert sorted(assignments) == [
        ("registry", "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPull)"),
        ("storage", "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)"),
        ("vault", "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)"),
        ("workspace", "scorer.id"),
    ]
    # the group keys in Key Vault only for a router that needs them: Kubernetes endpoints take keys
    assert re.search(r"^resource groupKeysRole '[^']+' = if \(readsGroupKeys\) \{", module, re.MULTILINE)
    assert "readsGroupKeys: deployAks" in block(text(MAIN), "module routerIdentity")
    # built-in role ids: AcrPull, Storage Blob Data Reader, Key Vault Secrets User (as keyvault.bicep's)
    assert "acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'" in module
    assert "storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'" in module
    secrets_user = re.search(r"keyVaultSecretsUser = '([\w-]+)'", text(MODULES / "keyvault.bicep")).group(1)
    assert f"keyVaultSecretsUser: '{secrets_user}'" in module


def test_registry_admin_account_only_for_sdk_v1_aci():
    assert "adminUserEnabled: !sdkV2" in block(text(MAIN), "module registry")
    registry = text(MODULES / "registry.bicep")
    assert "param adminUserEnabled bool = false" in registry and "adminUserEnabled: adminUserEnabled" in registry


def test_storage_replication_is_a_parameter_not_locally_redundant_by_default():
    main = text(MAIN)
    assert param_default(main, "storageSku") == "Standard_GRS"
    assert "Standard_LRS" in allowed_values(main, "storageSku")
    assert "sku: storageSku" in block(main, "module storage")
    assert "sku: { name: sku }" in text(MODULES / "storage.bicep")
