"""SDK v2 scoring services (shared/workspace/amlv2/services.py): the entities it builds, checked
through the SDK's own ``_to_rest_object``, and the store on the fake MLClient
(tests/unit/workspace_contract/amlv2_backend.py, real entity classes): deploy, blue/green update,
a failed update, delete, keys, list; and a Kubernetes router's keys written to a Key Vault
standing in on 127.0.0.1."""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import KubernetesOnlineEndpoint, ManagedOnlineEndpoint, Model
from azure.core.credentials import AccessToken

from shared.deploy_config import load_service_config
from shared.errors import InvalidValue, ManyModelsError, NotFound
from shared.settings import Settings
from shared.workspace.amlv2 import services as v2
from shared.workspace.amlv2.services import AmlV2ServiceStore
from shared.workspace.base import ModelRecord, ServiceKind, ServiceState
from shared.workspace.service_environment import looks_secret, secret_name

sys.path.insert(0, str(Path(__file__).resolve().parent / "workspace_contract"))
from amlv2_backend import FakeMLClient

SERVICE = "manymodels-lr-1"
NAME_RULE = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")  # azure-ai-ml EndpointConfigurations
LOCATION = "westeurope"


def settings(**extra: str) -> Settings:
    return Settings.from_env({"MANYMODELS_BACKEND": "amlv2", "AZURE_SUBSCRIPTION_ID": "sub", "RESOURCE_GROUP": "rg",
                              "AML_WORKSPACE_NAME": "ws", "AzureWebJobsStorage": "https://sa.blob.core.windows.net",
                              **extra})


@pytest.fixture
def client(tmp_path: Path) -> FakeMLClient:
    return FakeMLClient(tmp_path / "aml", workspace_name="ws")


@pytest.fixture
def store(client: FakeMLClient) -> AmlV2ServiceStore:
    return AmlV2ServiceStore(client, settings(AKS_NAME="aks-1"))


def register(client: FakeMLClient, tmp_path: Path, name: str) -> ModelRecord:
    """A model as training registers it: a folder with model.json."""
    folder = tmp_path / "trained" / f"{name}-{len(list(client.models.list(name=name)))}" / "model"
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps({"name": name}))
    model = client.models.create_or_update(Model(name=name, path=str(folder), type=AssetTypes.CUSTOM_MODEL))
    return ModelRecord(name=name, version=int(model.version), tags={}, path=str(model.path))


MODELS = load_service_config("managed", "models")
ROUTER = load_service_config("managed", "router")
KUBERNETES = load_service_config("aks", "models")


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("service", ["manymodels-lr-1", "routing-manymodels", "1-group", "Ünïcode & co_7",
                                     "x", "-", "managed-manymodels-" + "very-long-group-name-" * 5 + "12"])
def test_endpoint_names_follow_azure_mls_rule(service):
    name = v2.endpoint_name(service, workspace="sub/rg/ws")
    assert 3 <= len(name) <= 32 and NAME_RULE.match(name), name
    assert name == v2.endpoint_name(service, workspace="sub/rg/ws")  # deterministic


def test_endpoint_names_are_unique_per_workspace_and_service():
    assert v2.endpoint_name("g_1", workspace="a") != v2.endpoint_name("g-1", workspace="a")  # slug alike
    assert v2.endpoint_name("g-1", workspace="sub/rg/a") != v2.endpoint_name("g-1", workspace="sub/rg/b")
    assert v2.endpoint_name("manymodels-lr-1", workspace="w").startswith("manymodels-lr-1-")


# --------------------------------------------------------------------------- entities


def test_a_managed_endpoint_uses_entra_tokens_and_a_system_assigned_identity():
    rest = v2.endpoint_entity("ep-1", SERVICE, MODELS, traffic={"blue": 100})._to_rest_online_endpoint(LOCATION)
    assert rest.properties.auth_mode == "AADToken" and rest.identity.type == "SystemAssigned"
    assert rest.properties.traffic == {"blue": 100} and rest.properties.compute is None
    assert rest.tags[v2.TAG_SERVICE] == SERVICE and rest.tags["manymodels_target"] == "managed"


def test_a_managed_deployment_runs_the_model_webservice_on_the_configured_vm():
    deployment = v2.deployment_entity("blue", "ep-1", "azureml:ep-1-models:3", MODELS)
    rest = deployment._to_rest_object(LOCATION)
    p = rest.properties
    assert p.code_configuration.scoring_script == "model_webservice.py"
    assert Path(p.code_configuration.code_id) == Path(v2.REPO_ROOT / "scoring")
    assert p.model == "azureml:ep-1-models:3"
    assert (p.instance_type, rest.sku.capacity) == ("Standard_DS2_v2", 1)
    assert p.environment_variables == {"WORKER_COUNT": "1"}
    assert p.request_settings.max_concurrent_requests_per_instance == 1  # WORKER_COUNT x threads
    assert p.request_settings.request_timeout.total_seconds() == 60
    assert p.readiness_probe.failure_threshold * p.readiness_probe.period.total_seconds() == 600
    env = deployment.environment
    assert env.image == v2.BASE_IMAGE
    pip = next(d["pip"] for d in env.conda_file["dependencies"] if isinstance(d, dict))
    assert "azureml-inference-server-http==1.5.1" in pip


def test_the_routers_deployment_waits_longer_than_its_calls_and_holds_no_key():
    rest = v2.deployment_entity("blue", "ep-r", "azureml:ep-r-models:1", ROUTER)._to_rest_object(LOCATION)
    p = rest.properties
    assert p.code_configuration.scoring_script == "routing_webservice.py"
    assert p.instance_type == "Standard_F2s_v2"
    assert p.request_settings.max_concurrent_requests_per_instance == 16  # 2 workers x 8 threads
    assert p.request_settings.request_timeout.total_seconds() == 60 + 5 + 10
    assert p.environment_variables["ROUTER_AUTH"] == "entra"
    assert not [k for k in p.environment_variables if looks_secret(k)]


def test_a_kubernetes_endpoint_uses_keys_on_the_attached_compute():
    rest = v2.endpoint_entity("ep-1", SERVICE, KUBERNETES, compute="aks-1")._to_rest_online_endpoint(LOCATION)
    assert rest.properties.auth_mode == "Key" and rest.properties.compute == "aks-1"
    assert rest.identity.type == "SystemAssigned"
    deployment = v2.deployment_entity("green", "ep-1", "azureml:ep-1-models:1", KUBERNETES)
    p = deployment._to_rest_object(LOCATION).properties
    assert p.endpoint_compute_type == "Kubernetes" and p.instance_type is None  # the cluster's default
    requests = p.container_resource_requirements.container_resource_requests
    assert (requests.cpu, requests.memory) == ("1.0", "1024Mi")
    assert p.container_resource_requirements.container_resource_limits.memory == "1024Mi"
    with pytest.raises(InvalidValue, match="AKS_NAME"):
        v2.endpoint_entity("ep-1", SERVICE, KUBERNETES, compute="")


def test_secrets_in_the_environment_and_other_kinds_are_refused():
    with pytest.raises(InvalidValue, match="DB_PASSWORD look like secrets"):
        v2.deployment_entity("blue", "ep", "azureml:m:1", replace(MODELS, environment={"DB_PASSWORD": "x"}))
    with pytest.raises(InvalidValue, match="'aci' is not allowed on Azure ML SDK v2"):
        v2.endpoint_entity("ep", SERVICE, load_service_config("aci", "models"))
    with pytest.raises(InvalidValue, match="needs an instance type"):
        v2.deployment_entity("blue", "ep", "azureml:m:1", replace(MODELS, instance_type=""))


# --------------------------------------------------------------------------- the store


def endpoint(client: FakeMLClient, store: AmlV2ServiceStore, name: str = SERVICE):
    return client.online_endpoints.get(store.endpoint_name(name))


def traffic(client: FakeMLClient, store: AmlV2ServiceStore, name: str = SERVICE) -> dict[str, int]:
    """Where the endpoint's traffic goes (a deleted deployment may stay listed with 0)."""
    return {k: v for k, v in (endpoint(client, store, name).traffic or {}).items() if v}


def deployments(client: FakeMLClient, store: AmlV2ServiceStore, name: str = SERVICE) -> list[str]:
    return [d.name for d in client.online_deployments.list(store.endpoint_name(name))]


def asset_folder(client: FakeMLClient, store: AmlV2ServiceStore, tmp_path: Path, name: str = SERVICE) -> Path:
    """The live deployment's Model asset downloaded as Azure ML mounts it under AZUREML_MODEL_DIR."""
    asset, _, version = endpoint(client, store, name).tags[v2.TAG_ASSET].rpartition(":")
    target = tmp_path / "mounted" / version
    client.models.download(asset, version, target)
    return target / asset / v2.MODELS_FOLDER


def test_deploy_creates_an_endpoint_with_one_live_deployment_of_the_groups_models(client, store, tmp_path):
    a, b = register(client, tmp_path, "lr_a_1"), register(client, tmp_path, "lr_b_1")
    service = store.deploy(SERVICE, [a, b], MODELS, timeout=60)
    assert (service.name, service.kind, service.state) == (SERVICE, ServiceKind.MANAGED, ServiceState.HEALTHY)
    assert service.models == ("lr_a_1:1", "lr_b_1:1") and service.updated
    assert service.scoring_uri == endpoint(client, store).scoring_uri
    live = endpoint(client, store)
    assert isinstance(live, ManagedOnlineEndpoint) and traffic(client, store) == {"blue": 100}
    assert deployments(client, store) == ["blue"]
    # the layout scoring/model_webservice.py reads: <name>/<version>/ (one folder level more is searched)
    folder = asset_folder(client, store, tmp_path)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("model.json")) == [
        "lr_a_1/1/model/model.json", "lr_b_1/1/model/model.json"]
    deployed = client.online_deployments.get("blue", live.name)
    assert deployed.model.endswith(live.tags[v2.TAG_ASSET])
    assert deployed.environment_variables == {"WORKER_COUNT": "1", "MANYMODELS_MODELS_SUBDIR": v2.MODELS_FOLDER}
    assert store.get(SERVICE) == service


def test_the_models_asset_is_not_a_deployable_model(client, store, tmp_path):
    store.deploy(SERVICE, [register(client, tmp_path, "lr_a_1")], MODELS, timeout=60)
    asset, _, version = endpoint(client, store).tags[v2.TAG_ASSET].rpartition(":")
    assert client.models.get(asset, version).tags["ModelType"] == "_meta_"  # skipped by shared/flows/deploy.py


def test_update_is_blue_green_and_alternates(client, store, tmp_path):
    a1 = register(client, tmp_path, "lr_a_1")
    before = store.deploy(SERVICE, [a1], MODELS, timeout=60)
    a2, b1 = register(client, tmp_path, "lr_a_1"), register(client, tmp_path, "lr_b_1")
    start = len(client.calls)
    after = store.update(SERVICE, [a2, b1], MODELS, timeout=60)
    assert after.models == ("lr_a_1:2", "lr_b_1:1") and after.scoring_uri == before.scoring_uri
    assert after.updated > before.updated
    assert traffic(client, store) == {"green": 100} and deployments(client, store) == ["green"]
    calls = [c for c in client.calls[start:] if c[0].startswith("online_")]
    ep = store.endpoint_name(SERVICE)
    # the new one is healthy before the traffic moves; the old one goes only after that
    assert calls.index(("online_deployments.begin_create_or_update", f"{ep}/green")) < \
        calls.index(("online_endpoints.begin_create_or_update", ep)) < \
        calls.index(("online_deployments.begin_delete", f"{ep}/blue"))
    store.deploy(SERVICE, [a2], MODELS, timeout=60)  # deploying an existing endpoint is an update
    assert traffic(client, store) == {"blue": 100} and deployments(client, store) == ["blue"]
    assert store.get(SERVICE).models == ("lr_a_1:2",)


def test_a_failed_update_leaves_the_traffic_and_models_on_the_old_deployment(client, store, tmp_path):
    a1 = register(client, tmp_path, "lr_a_1")
    store.deploy(SERVICE, [a1], MODELS, timeout=60)
    client.fail_next_deployment("the container crashed in init()")
    with pytest.raises(ManyModelsError, match="the container crashed"):
        store.update(SERVICE, [register(client, tmp_path, "lr_a_1")], MODELS, timeout=60)
    assert traffic(client, store) == {"blue": 100}
    assert deployments(client, store) == ["blue"]  # the failed green was deleted
    assert store.get(SERVICE).models == ("lr_a_1:1",) and store.get(SERVICE).state == ServiceState.HEALTHY
    again = store.update(SERVICE, [register(client, tmp_path, "lr_a_1")], MODELS, timeout=60)
    assert again.models == ("lr_a_1:3",) and deployments(client, store) == ["green"]


def test_a_failed_first_deployment_leaves_an_unhealthy_service_that_a_deploy_repairs(client, store, tmp_path):
    a1 = register(client, tmp_path, "lr_a_1")
    client.fail_next_deployment("image build failed")
    with pytest.raises(ManyModelsError, match="image build failed"):
        store.deploy(SERVICE, [a1], MODELS, timeout=60)
    broken = store.get(SERVICE)
    assert broken.state == ServiceState.UNHEALTHY and broken.models == () and "traffic" in (broken.error or "")
    assert store.deploy(SERVICE, [a1], MODELS, timeout=60).state == ServiceState.HEALTHY


def test_a_deployment_left_over_by_a_failed_update_is_replaced(client, store, tmp_path):
    a1 = register(client, tmp_path, "lr_a_1")
    store.deploy(SERVICE, [a1], MODELS, timeout=60)
    ep = store.endpoint_name(SERVICE)
    leftover = v2.deployment_entity("green", ep, "azureml:whatever:1", MODELS)
    client.online_deployments.begin_create_or_update(leftover).result()  # e.g. a timed-out update
    store.update(SERVICE, [a1], MODELS, timeout=60)
    assert traffic(client, store) == {"green": 100} and deployments(client, store) == ["green"]
    assert client.online_deployments.get("green", ep).model != "azureml:whatever:1"


def test_delete_is_idempotent(client, store, tmp_path):
    store.deploy(SERVICE, [register(client, tmp_path, "lr_a_1")], MODELS, timeout=60)
    store.delete(SERVICE)
    store.delete(SERVICE)
    with pytest.raises(NotFound, match=SERVICE):
        store.get(SERVICE)
    assert store.list() == []


def test_managed_endpoints_have_no_keys_to_give(client, store, tmp_path):
    store.deploy(SERVICE, [register(client, tmp_path, "lr_a_1")], MODELS, timeout=60)
    assert store.get_keys(SERVICE).primary == ""  # shared/flows/deploy.py then gives the router no key
    assert not [c for c in client.calls if c[0] == "online_endpoints.get_keys"]  # never an Entra token here
    with pytest.raises(NotFound):
        store.get_keys("manymodels-nothing-1")


def test_list_maps_our_endpoints_by_kind(client, store, tmp_path):
    a1 = register(client, tmp_path, "lr_a_1")
    store.deploy("manymodels-lr-2", [a1], MODELS, timeout=60)
    store.deploy(SERVICE, [a1], MODELS, timeout=60)
    store.deploy("manymodels-k-1", [a1], KUBERNETES, timeout=60)
    client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="someone-elses")).result()
    assert [s.name for s in store.list()] == ["manymodels-k-1", SERVICE, "manymodels-lr-2"]
    assert [s.name for s in store.list(kind=ServiceKind.MANAGED)] == [SERVICE, "manymodels-lr-2"]
    [kubernetes] = store.list(kind=ServiceKind.AKS)
    assert (kubernetes.name, kubernetes.kind, kubernetes.models) == ("manymodels-k-1", ServiceKind.AKS, ("lr_a_1:1",))
    assert store.list(kind=ServiceKind.ACI) == [] and store.list(kind=ServiceKind.LOCAL) == []


def test_kubernetes_services_use_key_auth_on_aks_name(client, store, tmp_path):
    service = store.deploy(SERVICE, [register(client, tmp_path, "lr_a_1")], KUBERNETES, timeout=60)
    assert service.kind == ServiceKind.AKS
    live = endpoint(client, store)
    assert isinstance(live, KubernetesOnlineEndpoint) and live.compute == "aks-1" and live.auth_mode == "key"
    assert store.get_keys(SERVICE).primary == f"fake-primary-{live.name}"
    without = AmlV2ServiceStore(client, settings())
    with pytest.raises(InvalidValue, match="AKS_NAME"):
        without.deploy("manymodels-k-2", [register(client, tmp_path, "lr_a_1")], KUBERNETES, timeout=60)


def test_configs_the_endpoints_cannot_honour_are_refused_before_anything_changes(client, store, tmp_path):
    a1 = register(client, tmp_path, "lr_a_1")
    with pytest.raises(InvalidValue, match="authEnabled=false is not allowed"):
        store.deploy(SERVICE, [a1], replace(MODELS, auth_enabled=False), timeout=60)
    with pytest.raises(InvalidValue, match="'aci' is not allowed"):
        store.deploy(SERVICE, [a1], load_service_config("aci", "models"), timeout=60)
    with pytest.raises(InvalidValue, match=r"ROUTER_AUTH=entra is not allowed .* Kubernetes"):
        store.deploy("router", [a1], replace(KUBERNETES, environment={"ROUTER_AUTH": "entra"}), timeout=60)
    with pytest.raises(InvalidValue, match="TOKEN look like secrets"):
        store.deploy(SERVICE, [a1], replace(MODELS, environment={"GITHUB_TOKEN": "x"}), timeout=60)
    assert client.online_endpoints.records == {}


def test_the_managed_router_gets_no_keys_and_entra_auth(client, store, tmp_path):
    state = register(client, tmp_path, "deployed_models_info_managed")
    config = replace(ROUTER, environment={**ROUTER.environment, v2.SERVICE_KEYS_ENV: "{}"})
    store.deploy("managed-routing-manymodels", [state], config, timeout=60)
    ep = store.endpoint_name("managed-routing-manymodels")
    env = client.online_deployments.get("blue", ep).environment_variables
    assert env["ROUTER_AUTH"] == "entra" and v2.SERVICE_KEYS_ENV not in env
    with pytest.raises(InvalidValue, match="managed online endpoints use Microsoft Entra tokens"):
        store.update("managed-routing-manymodels", [state],
                     replace(ROUTER, environment={v2.SERVICE_KEYS_ENV: json.dumps({"g": "k"})}), timeout=60)
    assert deployments(client, store, "managed-routing-manymodels") == ["blue"]


# --------------------------------------------------------------------------- a Kubernetes router's keys


class FakeVault(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), VaultHandler)
        self.secrets: dict[str, str] = {}
        self.auth: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class VaultHandler(BaseHTTPRequestHandler):
    server: FakeVault

    def log_message(self, *args) -> None:
        pass

    def do_PUT(self) -> None:  # Key Vault's Set Secret: PUT /secrets/{name}?api-version=7.4 {"value": ...}
        self.server.auth.append(self.headers.get("Authorization", ""))
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        name = self.path.split("?")[0].rsplit("/", 1)[-1]
        self.server.secrets[name] = body["value"]
        data = json.dumps({"value": body["value"], "id": f"{self.server.url}/secrets/{name}/1"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def vault() -> Iterator[FakeVault]:
    server = FakeVault()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Credential:
    """What DefaultAzureCredential answers (azure.core's TokenCredential protocol)."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: object) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("vault-token", 4_000_000_000)


def test_a_kubernetes_routers_keys_go_to_key_vault_not_its_environment(client, tmp_path, vault):
    client._credential = Credential()  # MLClient keeps the credential it was built with here
    store = AmlV2ServiceStore(client, settings(AKS_NAME="aks-1"), key_vault_url=vault.url)
    keys = json.dumps({"manymodels-lr-1": "k1"})
    config = replace(load_service_config("aks", "router"),
                     environment={**load_service_config("aks", "router").environment, v2.SERVICE_KEYS_ENV: keys})
    store.deploy("routing-manymodels", [register(client, tmp_path, "deployed_models_info")], config, timeout=60)
    secret = secret_name("routing-manymodels")
    assert vault.secrets == {secret: keys} and vault.auth == ["Bearer vault-token"]
    assert client._credential.scopes == [("https://vault.azure.net/.default",)]
    env = client.online_deployments.get("blue", store.endpoint_name("routing-manymodels")).environment_variables
    assert env[v2.VAULT_ENV] == vault.url and env[v2.SECRET_ENV] == secret
    assert "k1" not in json.dumps(env) and v2.SERVICE_KEYS_ENV not in env


def test_the_workspaces_key_vault_is_found_from_its_arm_id(client):
    vault_id = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/mmkv01"
    client.workspaces = SimpleNamespace(get=lambda name: SimpleNamespace(name=name, key_vault=vault_id))
    assert AmlV2ServiceStore(client, settings())._vault_url() == "https://mmkv01.vault.azure.net"


UAI = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mm-router"


def test_the_managed_router_runs_as_the_user_assigned_identity_infra_grants_the_score_action(client, tmp_path):
    store = AmlV2ServiceStore(client, settings(ROUTER_IDENTITY_RESOURCE_ID=UAI, ROUTER_IDENTITY_CLIENT_ID="cid-1"))
    state = register(client, tmp_path, "deployed_models_info_managed")
    store.deploy("managed-routing-manymodels", [state], ROUTER, timeout=60)
    router = endpoint(client, store, "managed-routing-manymodels")
    assert router.identity.type == "user_assigned"
    assert [i.resource_id for i in router.identity.user_assigned_identities] == [UAI]
    env = client.online_deployments.get("blue", router.name).environment_variables
    assert env["MANYMODELS_IDENTITY_CLIENT_ID"] == "cid-1" and env["ROUTER_AUTH"] == "entra"
    # the groups keep their system-assigned identities and are not told a client id
    store.deploy(SERVICE, [register(client, tmp_path, "lr_a_1")], MODELS, timeout=60)
    assert endpoint(client, store).identity.type == "system_assigned"
    group_env = client.online_deployments.get("blue", store.endpoint_name(SERVICE)).environment_variables
    assert "MANYMODELS_IDENTITY_CLIENT_ID" not in group_env and "ROUTER_AUTH" not in group_env
    half = AmlV2ServiceStore(client, settings(ROUTER_IDENTITY_RESOURCE_ID=UAI))
    with pytest.raises(InvalidValue, match="ROUTER_IDENTITY_CLIENT_ID is empty"):
        half.deploy("managed-routing-2", [state], ROUTER, timeout=60)
