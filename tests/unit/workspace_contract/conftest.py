"""Backends the workspace contract suite runs against (like MLflow's one suite over every store).

To add a backend, write a factory and add it to :data:`WORKSPACE_FACTORIES`. A factory is a
generator taking the test's ``tmp_path``: it yields a :class:`ContractBackend` and cleans up
after the ``yield``. Everything a contract test does goes through ``backend.workspace`` (the port
in ``shared/workspace/base.py``); the hooks below only set up state the port cannot create
itself (runs appear through ``pipelines.submit`` and finish on the backend's compute, which the
contract tests do not start). For the Azure ML adapter, build the workspace on a mocked SDK and
let the hooks put runs into the mock, e.g.::

    def aml_backend(tmp_path):
        sdk = FakeAzureMLSdk()  # mocked at the azureml-core boundary
        ws = AmlWorkspace(settings, sdk=sdk)
        yield ContractBackend(workspace=ws, add_run=sdk.add_run, set_run_status=sdk.set_run_status)

    WORKSPACE_FACTORIES["aml"] = aml_backend
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.settings import Settings
from shared.workspace.base import Run, RunStatus, Workspace


@dataclass
class ContractBackend:
    workspace: Workspace
    add_run: Callable[[Run], None]  # make ``run`` exist as if a pipeline had been submitted
    set_run_status: Callable[[str, RunStatus], None]  # the run moved on (running, completed, failed)


def local_backend(tmp_path: Path) -> Iterator[ContractBackend]:
    from shared.workspace.local.runs import LocalRunStore
    from shared.workspace.local.workspace import LocalWorkspace

    settings = Settings.from_env({"MANYMODELS_HOME": str(tmp_path / "home")})
    workspace = LocalWorkspace(settings)
    # The hooks stand in for compute: these runs have no runner process whose death the store
    # would otherwise notice (tested in tests/integration/test_local_pipelines.py).
    workspace.runs = LocalRunStore(workspace.db)
    try:
        yield ContractBackend(
            workspace=workspace,
            add_run=workspace.runs.create,
            set_run_status=lambda run_id, status: workspace.runs.update(run_id, status=status),
        )
    finally:
        workspace.close()


from aml_backend import aml_backend  # noqa: E402 - needs ContractBackend above; pytest puts this folder on sys.path

WORKSPACE_FACTORIES: dict[str, Callable[[Path], Iterator[ContractBackend]]] = {
    "local": local_backend,
    "aml": aml_backend,
}


@pytest.fixture(params=sorted(WORKSPACE_FACTORIES))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ContractBackend]:
    yield from WORKSPACE_FACTORIES[request.param](tmp_path)


@pytest.fixture
def workspace(backend: ContractBackend) -> Workspace:
    return backend.workspace
