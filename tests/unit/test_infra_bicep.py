"""infra/: the Bicep templates, checked structurally (no Bicep CLI here: the text is parsed with
careful regexes - resource declarations, params, module wiring, app settings)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest

from shared.settings import Settings, env_names

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


def test_app_setting_values_are_valid_settings():
    """The literal values in appSettings pass shared/settings.py's own checks."""
    body = block(text(MAIN), "var appSettings =")
    literals = dict(re.findall(r"^\s+(\w+): '([^']*)'$", body, re.MULTILINE))
    env = {**literals, "AZURE_SUBSCRIPTION_ID": "sub", "RESOURCE_GROUP": "rg", "AML_WORKSPACE_NAME": "nsaml"}
    settings = Settings.from_env(env)
    assert settings.backend == "aml" and settings.deploy_local is False


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
    assert sorted(scopes) == ["appInsights", "storage", "storage", "storage", "workspace"]
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
