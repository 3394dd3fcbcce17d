"""pipelines/ado/: the YAML parses, uses the variable group of the issue, references only files
that exist, runs its stages in order, and its variable checks fail early and clearly."""

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


def steps(doc: dict) -> list[dict]:
    return [s for stage in doc["stages"] for job in stage["jobs"] for s in job["steps"]]


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


def test_checks_cover_exactly_the_issue_table():
    assert set(check_variables.VARIABLES) == ISSUE_VARIABLES
    env = pipeline()["stages"][0]["jobs"][0]["steps"][1]["env"]
    assert set(env) == ISSUE_VARIABLES


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
    assert {"pipelines/ado/scripts/deploy_infra.sh", "pipelines/aml/publish.py"} <= referenced
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


VALID = {"DATASET_MAXFILES": "100", "NAMESPACE": "contosomm", "LOCATION": "westeurope", "RESOURCE_GROUP": "mm-rg",
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
