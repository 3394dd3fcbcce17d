"""Deployment configs per target and the names each target uses."""

from __future__ import annotations

import pytest

from shared.deploy_config import concurrency, load_service_config
from shared.errors import InvalidValue
from shared.flows.deploy import deploy_target
from shared.workspace.base import ServiceKind


@pytest.mark.parametrize("target", ["local", "aci", "aks"])
def test_every_target_has_models_and_router_configs(target):
    models = load_service_config(target, "models")
    router = load_service_config(target, "router")
    assert models.kind == ServiceKind(target) and router.kind == ServiceKind(target)
    assert models.entry_script == "scoring/model_webservice.py"
    assert router.entry_script == "scoring/routing_webservice.py"
    assert models.environment["WORKER_COUNT"] == "1"
    if target == "local":
        assert not models.auth_enabled and not router.auth_enabled
    else:  # as the original: models 1 CPU / 1 GB, router 0.1 CPU / 0.5 GB, auth on
        assert (models.cpu_cores, models.memory_gb, models.auth_enabled) == (1.0, 1.0, True)
        assert (router.cpu_cores, router.memory_gb, router.auth_enabled) == (0.1, 0.5, True)
    assert not any("KEY" in k.upper() for k in {**models.environment, **router.environment})


def test_bad_configs_are_refused_with_the_field_named(tmp_path):
    path = tmp_path / "aci-deploy-config.yml"
    path.write_text("computeType: ACI\nmodels:\n  entryScript: scoring/model_webservice.py\n"
                    "  containerResourceRequirements: {cpu_cores: lots}\n")
    with pytest.raises(InvalidValue, match="cpu_cores"):
        load_service_config("aci", "models", path=path)
    with pytest.raises(InvalidValue, match="missing section 'router'"):
        load_service_config("aci", "router", path=path)
    path.write_text("computeType: AKS\nmodels: {entryScript: x.py}\n")
    with pytest.raises(InvalidValue, match="does not match target 'aci'"):
        load_service_config("aci", "models", path=path)
    with pytest.raises(InvalidValue, match="expected one of local, aci, managed, aks"):
        load_service_config("gke", "models")
    with pytest.raises(InvalidValue, match="'models' or 'router'"):
        load_service_config("aci", "batch")


def test_targets_are_named_as_the_original(settings):
    aci, aks, local = (deploy_target(settings, t) for t in ("aci", "aks", "local"))
    assert (aci.prefix, aci.state_model, aci.router_service) == (
        "test-manymodels-", "test-deployed_models_info", "test-routing-manymodels")
    assert (aks.prefix, aks.state_model, aks.router_service) == (
        "manymodels-", "deployed_models_info", "routing-manymodels")
    assert local.state_model == "deployed_models_info_local" and local.prefix == "manymodels-"
    assert len({aci.state_model, aks.state_model, local.state_model}) == 3


def _write(tmp_path, target: str, section: str):
    path = tmp_path / f"{target}-deploy-config.yml"
    path.write_text(f"computeType: {target}\nmodels:\n  entryScript: scoring/model_webservice.py\n{section}")
    return path


def test_auth_enabled_is_read_and_refused_where_the_target_has_no_keys(tmp_path):
    assert load_service_config("aci", "models", path=_write(tmp_path, "aci", "  authEnabled: false\n")).auth_enabled \
        is False
    with pytest.raises(InvalidValue, match="authEnabled=true is not allowed on the local target"):
        load_service_config("local", "models", path=_write(tmp_path, "local", "  authEnabled: true\n"))
    with pytest.raises(InvalidValue, match="authEnabled='yes'"):
        load_service_config("aks", "models", path=_write(tmp_path, "aks", "  authEnabled: 'yes'\n"))


@pytest.mark.parametrize(("section", "message"), [
    ("  maxConcurrentRequestsPerContainer: 4\n", "follows from environmentVariables.WORKER_COUNT"),
    ("  tokenAuthEnabled: true\n", "key auth"),
    ("  authEnable: false\n", "authEnable is not a field"),
    ("  environmentVariables: {WORKER_COUNT: '0'}\n", "WORKER_COUNT='0'"),
    ("  environmentVariables: {GUNICORN_CMD_ARGS: '--threads many'}\n", "--threads='many'"),
])
def test_fields_the_product_sets_itself_or_does_not_know_are_refused(tmp_path, section, message):
    with pytest.raises(InvalidValue, match=message):
        load_service_config("aks", "models", path=_write(tmp_path, "aks", section))


def test_concurrency_is_workers_times_threads():
    assert concurrency({}) == 1
    assert concurrency({"WORKER_COUNT": "2", "GUNICORN_CMD_ARGS": "--threads 8 --keep-alive 75"}) == 16
    assert concurrency({"WORKER_COUNT": "3", "GUNICORN_CMD_ARGS": "--threads=2"}) == 6
    assert concurrency(load_service_config("aks", "router").environment) == 1


def test_managed_endpoints_run_on_a_vm_size_with_entra_auth():
    models = load_service_config("managed", "models")
    router = load_service_config("managed", "router")
    assert models.kind == router.kind == ServiceKind.MANAGED
    assert (models.instance_type, models.instance_count, models.auth_enabled) == ("Standard_DS2_v2", 1, True)
    assert router.instance_type == "Standard_F2s_v2" and router.environment["ROUTER_AUTH"] == "entra"
    assert not any("KEY" in k.upper() for k in {**models.environment, **router.environment})
    # the other targets have no VM size: their size is containerResourceRequirements
    assert load_service_config("aks", "models").instance_type == ""


def _managed(tmp_path, section: str):
    path = tmp_path / "managed-deploy-config.yml"
    path.write_text("computeType: Managed\nmodels:\n  entryScript: scoring/model_webservice.py\n" + section)
    return path


@pytest.mark.parametrize(("section", "message"), [
    ("  instanceType: Standard_DS2_v2\n  authEnabled: false\n", "authEnabled=false is not allowed on managed"),
    ("  authEnabled: true\n", "instanceType=None is not allowed"),
    ("  instanceType: big\n", "instanceType='big' is not allowed"),
    ("  instanceType: Standard_DS2_v2\n  instanceCount: 0\n", "instanceCount=0 is not allowed"),
    ("  instanceType: Standard_DS2_v2\n  instanceCount: true\n", "instanceCount=True is not allowed"),
    ("  instanceType: Standard_DS2_v2\n  containerResourceRequirements: {cpu_cores: 1}\n",
     "containerResourceRequirements is not allowed on target 'managed'"),
])
def test_managed_configs_are_refused_with_the_field_named(tmp_path, section, message):
    with pytest.raises(InvalidValue, match=message):
        load_service_config("managed", "models", path=_managed(tmp_path, section))


def test_vm_sizes_are_refused_on_targets_without_them(tmp_path):
    for field in ("instanceType: Standard_DS2_v2", "instanceCount: 2"):
        with pytest.raises(InvalidValue, match=f"{field.split(':')[0]} is not allowed on target 'aks'"):
            load_service_config("aks", "models", path=_write(tmp_path, "aks", f"  {field}\n"))


def test_the_managed_target_has_its_own_names(settings):
    managed, aks = deploy_target(settings, "managed"), deploy_target(settings, "aks")
    assert managed.kind == ServiceKind.MANAGED
    assert (managed.prefix, managed.state_model, managed.router_service) == (
        "managed-manymodels-", "deployed_models_info_managed", "managed-routing-manymodels")
    # an amlv2 workspace may serve both: no service or state model shared
    assert managed.router_service != aks.router_service and managed.state_model != aks.state_model
