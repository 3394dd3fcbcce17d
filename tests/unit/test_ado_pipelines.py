"""pipelines/ado/: the YAML parses, uses the variable group of the issue, references only files
that exist, runs its stages in order, takes the backend as a run parameter (SDK v2 components or SDK v1
pipelines), and its variable checks fail early and clearly."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ADO = REPO / "pipelines" / "ado"
BOOTSTRAP = ADO / "bootstrap.yml"
# The variable group of docs/deploy-azure.md §3, exactly.
VARIABLE_GROUP = "manymodels-vg"
ISSUE_VARIABLES = {
    "DATASET_MAXFILES", "NAMESPACE", "LOCATION", "RESOURCE_GROUP", "SERVICECONNECTION_GROUP", "TRAINING_METHOD",
    "DEPLOY_ACI", "DEPLOY_AKS", "AKS_NAME", "AKS_RESOURCE_GROUP", "MAX_CONTAINER_SIZE", "RESET_DEPLOYMENT",
    "UPDATE_DEPLOYMENT",
}
STAGES = ["checks", "infra", "environment", "publish", "functions", "data", "smoke"]


def _load_check_variables():
    spec = importlib.util.spec_from_file_location("check_variables", ADO / "scripts" / "check_variables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_variables"] = module
    spec.loader.exec_module(module)
    return module


check_variables = _load_check_variables()


def pipeline() -> dict:
    return yaml.safe_load(BOOTSTRAP.read_text())


BACKEND_IS_V2 = "${{ if eq(parameters.backend, 'amlv2') }}"
ELSE = "${{ else }}"


def flat(items: list[dict]) -> list[dict]:
    """Steps with template conditionals (``- ${{ if ... }}:`` / ``- ${{ else }}:``) expanded, every branch."""
    out = []
    for item in items:
        conditional = [k for k in item if k.startswith("${{")]
        if conditional:
            for key in conditional:
                out.extend(flat(item[key]))
        else:
            out.append(item)
    return out


def steps(doc: dict) -> list[dict]:
    return [s for stage in doc["stages"] for job in stage["jobs"] for s in flat(job["steps"])]


def stage(doc: dict, name: str) -> dict:
    return next(s for s in doc["stages"] if s["stage"] == name)


@pytest.mark.parametrize("name", ["bootstrap.yml", "ci.yml"])
def test_yaml_parses(name):
    assert isinstance(yaml.safe_load((ADO / name).read_text()), dict)


def test_bootstrap_reads_the_variable_group_and_only_known_variables():
    doc = pipeline()
    assert {"group": VARIABLE_GROUP} in doc["variables"]
    own = {v["name"] for v in doc["variables"] if "name" in v}
    used = set(re.findall(r"\$\((\w+)\)", BOOTSTRAP.read_text()))
    predefined = {"Build"}  # $(Build.ArtifactStagingDirectory) and friends
    unknown = {u for u in used if u not in ISSUE_VARIABLES | own and u.split(".")[0] not in predefined}
    assert not unknown, f"bootstrap.yml uses variables outside {VARIABLE_GROUP}: {sorted(unknown)}"


def test_checks_cover_exactly_the_issue_table_and_the_run_parameters():
    assert set(check_variables.VARIABLES) == ISSUE_VARIABLES
    env = pipeline()["stages"][0]["jobs"][0]["steps"][1]["env"]
    assert set(env) == ISSUE_VARIABLES | set(check_variables.PARAMETERS)


def test_backend_is_a_run_parameter_with_the_bicep_and_settings_choices():
    from tests.unit.test_infra_bicep import MAIN, allowed_values, param_default, text

    doc = pipeline()
    parameters = {p["name"]: p for p in doc["parameters"]}
    assert set(parameters) == set(check_variables.PARAMETERS.values())
    backend = parameters["backend"]
    assert backend["type"] == "string" and backend["default"] == "amlv2" == param_default(text(MAIN), "backend")
    assert set(backend["values"]) == set(allowed_values(text(MAIN), "backend")) == set(check_variables.BACKENDS)
    assert parameters["deployManaged"]["type"] == "boolean" and parameters["deployManaged"]["default"] is False
    # the parameters become pipeline variables: every script (deploy_infra.sh, attach_aks.py) sees them
    variables = {v["name"]: v["value"] for v in doc["variables"] if "name" in v}
    assert variables["MANYMODELS_BACKEND"] == "${{ parameters.backend }}"
    assert variables["DEPLOY_MANAGED"] == "${{ lower(parameters.deployManaged) }}"


def _publish_commands(branch: str) -> list[str]:
    job_steps = stage(pipeline(), "publish")["jobs"][0]["steps"]
    branches = {k: v for item in job_steps for k, v in item.items() if k.startswith("${{")}
    return [line.strip() for s in branches[branch] for line in s["inputs"]["inlineScript"].splitlines()
            if "publish" in line]


def test_sdk_v2_registers_components_and_sdk_v1_publishes_pipelines():
    assert _publish_commands(BACKEND_IS_V2) == ["python -m pipelines.amlv2.publish --kind training --json",
                                                "python -m pipelines.amlv2.publish --kind forecasting --json"]
    assert _publish_commands(ELSE) == ["python -m pipelines.aml.publish --kind training --json",
                                       "python -m pipelines.aml.publish --kind forecasting --json"]


def test_deploy_infra_passes_only_declared_bicep_params_including_the_backend():
    from tests.unit.test_infra_bicep import MAIN, params, text

    script = (ADO / "scripts" / "deploy_infra.sh").read_text()
    passed = set(re.findall(r"\b(\w+)=\"\$", script)) - {"subscriptions", "deployer"}
    assert {"backend", "deployManaged", "deployAci", "trainingMethod"} <= passed
    undeclared = passed - set(params(text(MAIN)))
    assert not undeclared, f"deploy_infra.sh passes params infra/main.bicep does not declare: {undeclared}"
    assert 'backend="${MANYMODELS_BACKEND:-amlv2}"' in script


def test_stages_run_in_order_each_after_the_previous():
    doc = pipeline()
    assert [s["stage"] for s in doc["stages"]] == STAGES
    for previous, stage in zip(doc["stages"], doc["stages"][1:], strict=False):
        assert stage["dependsOn"] == previous["stage"]


def _referenced_paths(doc: dict) -> set[str]:
    paths = set()
    for step in steps(doc):
        inputs = step.get("inputs", {})
        if "scriptPath" in inputs:
            paths.add(inputs["scriptPath"])
        for command in (step.get("script", ""), inputs.get("inlineScript", "")):
            paths.update(re.findall(r"(?:bash|python3?)\s+((?:pipelines|infra|scripts)/[\w./-]+)", command))
            paths.update(m.replace(".", "/") + ".py" for m in re.findall(r"python3? -m ([\w.]+)", command)
                         if m.startswith("pipelines"))
            if "-r requirements.txt" in command:
                paths.add("requirements.txt")
    return paths


def test_every_script_or_path_the_yaml_references_exists():
    referenced = _referenced_paths(pipeline())
    assert {"pipelines/ado/scripts/deploy_infra.sh", "pipelines/aml/publish.py",
            "pipelines/amlv2/publish.py"} <= referenced
    for path in referenced:
        assert (REPO / path).is_file(), f"bootstrap.yml references {path}, which does not exist"


def test_every_path_the_scripts_reference_exists():
    for script in (ADO / "scripts").glob("*.sh"):
        for path in re.findall(r"((?:infra|pipelines)/[\w./-]+\.(?:bicep|json|sh|py))", script.read_text()):
            assert (REPO / path).is_file(), f"{script.name} references {path}, which does not exist"


def test_azure_steps_use_the_service_connection_variable():
    azure = [s for s in steps(pipeline()) if s.get("task") == "AzureCLI@2"]
    assert azure and all(s["inputs"]["azureSubscription"] == "$(SERVICECONNECTION_GROUP)" for s in azure)


def test_ci_runs_make_test():
    doc = yaml.safe_load((ADO / "ci.yml").read_text())
    scripts = [s.get("script", "") for job in doc["jobs"] for s in job["steps"]]
    assert any(s.startswith("make test") for s in scripts)


# a v1 variable group (DEPLOY_ACI=true) with backend aml; the v2 combinations are in the tests below
VALID = {"MANYMODELS_BACKEND": "aml",
         "DATASET_MAXFILES": "100", "NAMESPACE": "contosomm", "LOCATION": "westeurope", "RESOURCE_GROUP": "mm-rg",
         "SERVICECONNECTION_GROUP": "mm-connection", "TRAINING_METHOD": "customscript", "DEPLOY_ACI": "true",
         "DEPLOY_AKS": "false", "MAX_CONTAINER_SIZE": "500", "RESET_DEPLOYMENT": "false",
         "UPDATE_DEPLOYMENT": "false"}


def test_valid_variable_group_passes():
    assert check_variables.problems(VALID) == []


def test_missing_and_invalid_variables_are_named_with_what_is_allowed():
    env = {**VALID, "NAMESPACE": "Contoso-MM", "MAX_CONTAINER_SIZE": "5000", "LOCATION": "$(LOCATION)"}
    del env["TRAINING_METHOD"]
    found = check_variables.problems(env)
    assert any("TRAINING_METHOD is missing" in p for p in found)
    assert any("NAMESPACE='Contoso-MM' is not allowed" in p and "lower-case" in p for p in found)
    assert any("MAX_CONTAINER_SIZE='5000'" in p and "1 to 1000" in p for p in found)
    assert any("LOCATION is missing" in p for p in found)


@pytest.mark.parametrize(("env", "expected"), [
    ({"MANYMODELS_BACKEND": "amlv2", "DEPLOY_ACI": "true"}, "DEPLOY_ACI=true is not allowed with backend amlv2"),
    ({"MANYMODELS_BACKEND": "aml", "DEPLOY_ACI": "false", "DEPLOY_MANAGED": "True"},
     "deployManaged=true needs backend amlv2"),
    ({"MANYMODELS_BACKEND": "aml", "DEPLOY_ACI": "false", "TRAINING_METHOD": "automl"},
     "TRAINING_METHOD=automl needs backend amlv2"),
    ({"MANYMODELS_BACKEND": "v3"}, "parameter backend='v3' is not allowed: expected 'amlv2' or 'aml'"),
])
def test_backend_combinations_shared_settings_refuses_are_refused_early(env, expected):
    found = check_variables.problems({**VALID, **env})
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize("env", [{"MANYMODELS_BACKEND": "amlv2", "DEPLOY_ACI": "false", "DEPLOY_MANAGED": "true",
                                  "TRAINING_METHOD": "automl"},
                                 {"MANYMODELS_BACKEND": "aml"}])
def test_valid_backend_combinations_pass(env):
    assert check_variables.problems({**VALID, **env}) == []


def test_aks_variables_are_required_only_when_deploying_to_aks():
    found = check_variables.problems({**VALID, "DEPLOY_AKS": "true"})
    assert sorted(p.split()[1] for p in found) == ["AKS_NAME", "AKS_RESOURCE_GROUP"]
    assert all("DEPLOY_AKS=true" in p for p in found)


def test_publish_command_line():
    from pipelines.aml import publish

    args = publish.parse_args(["--kind", "forecasting", "--workspace-name", "nsaml", "--json"])
    settings = publish.settings_for(args, {"AZURE_SUBSCRIPTION_ID": "s", "RESOURCE_GROUP": "rg"})
    assert (settings.backend, settings.workspace_name) == ("aml", "nsaml")
    with pytest.raises(SystemExit):
        publish.parse_args(["--kind", "scoring"])


def _load_attach_aks():
    spec = importlib.util.spec_from_file_location("attach_aks", ADO / "scripts" / "attach_aks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Poller:
    def __init__(self, value):
        self._value = value

    def result(self):
        return self._value


class _FakeComputeOperations:
    """``MLClient.compute`` at the SDK boundary: ``get`` raises azure.core's ResourceNotFoundError for a
    name it does not hold and returns the SDK's entity otherwise; ``begin_attach`` returns a poller."""

    def __init__(self, existing=None):
        self.held = {c.name: c for c in existing or ()}
        self.attached = []

    def get(self, name):
        from azure.core.exceptions import ResourceNotFoundError

        if name not in self.held:
            raise ResourceNotFoundError(f"compute {name} not found")
        return self.held[name]

    def begin_attach(self, compute):
        self.attached.append(compute)
        self.held[compute.name] = compute
        return _Poller(compute)


class _FakeClient:
    def __init__(self, existing=None):
        self.compute = _FakeComputeOperations(existing)


AKS_ENV = {"DEPLOY_AKS": "true", "MANYMODELS_BACKEND": "amlv2", "AKS_NAME": "mm-aks", "AKS_RESOURCE_GROUP": "aks-rg",
           "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001", "NAMESPACE": "contosomm",
           "RESOURCE_GROUP": "mm-rg"}


def test_sdk_v2_attaches_the_cluster_as_a_kubernetes_compute_once():
    attach_aks = _load_attach_aks()
    client = _FakeClient()
    assert "attached as Kubernetes compute mm-aks" in attach_aks.attach_v2(AKS_ENV, client)
    [compute] = client.compute.attached
    rest = compute._to_rest_object().as_dict()
    assert rest["properties"]["computeType"] == "Kubernetes"
    assert rest["properties"]["resourceId"] == ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/"
                                                "aks-rg/providers/Microsoft.ContainerService/managedClusters/mm-aks")
    assert rest["properties"]["properties"]["namespace"] == "azureml"
    assert "already attached" in attach_aks.attach_v2(AKS_ENV, client)  # a rerun of the bootstrap
    assert len(client.compute.attached) == 1


def test_sdk_v2_refuses_a_v1_aks_target_of_the_same_name():
    from azure.ai.ml.entities import AmlCompute

    from shared.errors import InvalidValue

    attach_aks = _load_attach_aks()
    client = _FakeClient([AmlCompute(name="mm-aks")])  # any compute that is not a Kubernetes one
    with pytest.raises(InvalidValue, match=r"mm-aks is attached as 'amlcompute'.*need a Kubernetes compute"):
        attach_aks.attach_v2(AKS_ENV, client)
    assert client.compute.attached == []


def test_attach_does_nothing_without_deploy_aks(monkeypatch, capsys):
    attach_aks = _load_attach_aks()
    monkeypatch.setenv("DEPLOY_AKS", "false")
    assert attach_aks.main() == 0
    assert "no AKS cluster to attach" in capsys.readouterr().out


def test_the_function_app_package_holds_every_pipelines_package_the_product_imports():
    """shared/ imports pipeline graphs lazily (at publish/submit time): a package missing from the zip
    would only fail on Azure, at the first training run."""
    script = (ADO / "scripts" / "package_function_app.sh").read_text()
    include = set(re.findall(r'"([\w./]+)"', re.search(r"include = \[([^\]]*)\]", script).group(1)))
    imported = {f"pipelines/{m}" for path in (REPO / "shared").rglob("*.py")
                for m in re.findall(r"^\s*(?:from|import) pipelines\.(\w+)", path.read_text(), re.MULTILINE)}
    assert imported, "expected the adapters to import their pipeline graphs from pipelines/"
    assert imported <= include, f"package_function_app.sh leaves out {sorted(imported - include)}"
