"""Fail the bootstrap early, with a clear message, when a variable of manymodels-vg is missing or invalid.

Azure DevOps exposes the variable group's variables to scripts as environment variables of the
same (upper-case) names; bootstrap.yml adds its two run parameters, ``backend`` and ``deployManaged``, as
MANYMODELS_BACKEND and DEPLOY_MANAGED. Run as ``python3 pipelines/ado/scripts/check_variables.py``;
prints one ``##vso[task.logissue type=error]`` line per problem and exits 1 when there is any. The
combinations refused are the ones shared/settings.py would refuse when the Function App starts.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping

# The variable group of docs/deploy-azure.md, in its order.
VARIABLE_GROUP = "manymodels-vg"
VARIABLES = (
    "DATASET_MAXFILES", "NAMESPACE", "LOCATION", "RESOURCE_GROUP", "SERVICECONNECTION_GROUP",
    "TRAINING_METHOD", "DEPLOY_ACI", "DEPLOY_AKS", "AKS_NAME", "AKS_RESOURCE_GROUP", "MAX_CONTAINER_SIZE",
    "RESET_DEPLOYMENT", "UPDATE_DEPLOYMENT",
)
OPTIONAL = {"AKS_NAME", "AKS_RESOURCE_GROUP"}  # required only when DEPLOY_AKS=true
BOOLEANS = {"true", "false"}
# bootstrap.yml's run parameters, as it passes them to this script
PARAMETERS = {"MANYMODELS_BACKEND": "backend", "DEPLOY_MANAGED": "deployManaged"}
BACKENDS = ("amlv2", "aml")


def _whole(lo: int, hi: int) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if not re.fullmatch(r"\d+", value) or not lo <= int(value) <= hi:
            return f"a whole number from {lo} to {hi}"
        return None

    return check


def _pattern(regex: str, allowed: str) -> Callable[[str], str | None]:
    return lambda value: None if re.fullmatch(regex, value) else allowed


def _choice(*options: str) -> Callable[[str], str | None]:
    return lambda value: None if value.lower() in options else " or ".join(repr(o) for o in options)


CHECKS: dict[str, Callable[[str], str | None]] = {
    "DATASET_MAXFILES": _whole(1, 1_000_000),
    # {ns}sa must be a valid storage account name (3-24 lower-case letters and digits)
    "NAMESPACE": _pattern(r"[a-z][a-z0-9]{2,17}", "3-18 lower-case letters and digits, starting with a letter"),
    "LOCATION": _pattern(r"[a-z0-9]+", "an Azure region name like westeurope"),
    "RESOURCE_GROUP": _pattern(r"[-\w.()]{1,90}", "a resource group name"),
    "SERVICECONNECTION_GROUP": _pattern(r".+", "the name of an Azure Resource Manager service connection"),
    "TRAINING_METHOD": _choice("customscript", "automl"),
    "DEPLOY_ACI": _choice(*BOOLEANS),
    "DEPLOY_AKS": _choice(*BOOLEANS),
    "AKS_NAME": _pattern(r"[a-zA-Z][-a-zA-Z0-9]{1,15}", "an AKS compute target name (2-16 characters)"),
    "AKS_RESOURCE_GROUP": _pattern(r"[-\w.()]{1,90}", "a resource group name"),
    "MAX_CONTAINER_SIZE": _whole(1, 1000),
    "RESET_DEPLOYMENT": _choice(*BOOLEANS),
    "UPDATE_DEPLOYMENT": _choice(*BOOLEANS),
}


def problems(env: Mapping[str, str]) -> list[str]:
    """Every missing or invalid variable, as a message naming it, its value and what is allowed."""
    found = []
    aks = env.get("DEPLOY_AKS", "").strip().lower() == "true"
    for name in VARIABLES:
        value = env.get(name, "").strip()
        if value.startswith("$("):  # an undefined macro is passed through literally
            value = ""
        if not value:
            if name not in OPTIONAL or aks:
                why = " (needed because DEPLOY_AKS=true)" if name in OPTIONAL else ""
                found.append(f"variable {name} is missing from variable group {VARIABLE_GROUP}{why}")
            continue
        allowed = CHECKS[name](value)
        if allowed:
            found.append(f"variable {name}={value!r} is not allowed: expected {allowed}")
    return found + combination_problems(env)


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() == "true"


def combination_problems(env: Mapping[str, str]) -> list[str]:
    """What the backend parameter and the variables cannot be together."""
    backend = env.get("MANYMODELS_BACKEND", "amlv2").strip().lower()
    if backend not in BACKENDS:
        return [f"parameter backend={backend!r} is not allowed: expected " + " or ".join(map(repr, BACKENDS))]
    found = []
    if backend == "amlv2" and _flag(env, "DEPLOY_ACI"):
        found.append("variable DEPLOY_ACI=true is not allowed with backend amlv2: SDK v2 has no ACI webservices; "
                     "set DEPLOY_ACI=false and run with deployManaged=true (managed online endpoints)")
    if backend == "aml" and _flag(env, "DEPLOY_MANAGED"):
        found.append("parameter deployManaged=true needs backend amlv2: managed online endpoints are an Azure ML "
                     "SDK v2 resource")
    if backend == "aml" and env.get("TRAINING_METHOD", "").strip().lower() == "automl":
        found.append("variable TRAINING_METHOD=automl needs backend amlv2: on SDK v1 only customscript trains "
                     "(the AutoML v1 runtime does not install beside the product's pins)")
    return found


def main() -> int:
    found = problems(os.environ)
    for message in found:
        print(f"##vso[task.logissue type=error]{message}")
    if found:
        print(f"{len(found)} problem(s) with variable group {VARIABLE_GROUP}: see docs/deploy-azure.md",
              file=sys.stderr)
        return 1
    print(f"variable group {VARIABLE_GROUP}: all {len(VARIABLES)} variables are set and valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
