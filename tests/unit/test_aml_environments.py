"""Azure ML environments (pipelines/configuration/environment-*.yml) pin what requirements.txt pins."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pipelines.aml.environments import PRS_RUNTIME, load_environment
from shared.errors import InvalidValue

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENTS = sorted((REPO / "pipelines" / "configuration").glob("environment-*.yml"))


def pins(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        m = re.match(r"\s*([A-Za-z0-9_.-]+)(?:\[[\w,]+\])?==([^\s#]+)", line)
        if m:
            found[m.group(1).lower()] = m.group(2)
    return found


def pip_lines(path: Path) -> list[str]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    return next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)


@pytest.mark.parametrize("path", ENVIRONMENTS, ids=lambda p: p.name)
def test_environment_pins_match_requirements(path: Path):
    required = pins((REPO / "requirements.txt").read_text().splitlines())
    declared = pins(pip_lines(path))
    assert declared, f"{path.name} pins nothing"
    mismatched = {k: (v, required[k]) for k, v in declared.items() if k in required and required[k] != v}
    assert not mismatched, f"{path.name} pins differ from requirements.txt: {mismatched}"
    assert "python=3.11" in yaml.safe_load(path.read_text())["dependencies"]


def test_environments_carry_the_parallelrunstep_runtime():
    for path in ENVIRONMENTS:
        packages = " ".join(pip_lines(path))
        assert all(p.split("[")[0] in packages for p in PRS_RUNTIME), path.name


def test_pip_requirements_files_get_the_parallelrunstep_runtime_added(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("numpy==2.3.2\n")
    packages = " ".join(load_environment("x", req).python.conda_dependencies.pip_packages)
    assert "azureml-dataset-runtime[fuse]" in packages and "numpy==2.3.2" in packages
    with pytest.raises(InvalidValue, match="does not exist"):
        load_environment("x", tmp_path / "missing.yml")
