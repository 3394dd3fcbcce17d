"""Backends the workspace contract suite runs against (like MLflow's one suite over every store).

To add a backend, write a factory and add it to :data:`WORKSPACE_FACTORIES`. A factory is a
generator taking the test's ``tmp_path``: it yields a :class:`ContractBackend` (or any object
with its fields; fields left out take their defaults) and cleans up after the ``yield``.
Everything a contract test does goes through ``backend.workspace`` (the port in
``shared/workspace/base.py``); the hooks only set up state the port cannot create itself (runs
appear through ``pipelines.submit`` and finish on the backend's compute, which the contract
tests do not start). For the Azure ML adapter, build the workspace on a mocked SDK and let the
hooks put runs into the mock, e.g.::

    def aml_backend(tmp_path):
        sdk = FakeAzureMLSdk()  # mocked at the azureml-core boundary
        ws = AmlWorkspace(settings, sdk=sdk)
        yield ContractBackend(workspace=ws, add_run=sdk.add_run, set_run_status=sdk.set_run_status)

    WORKSPACE_FACTORIES["aml"] = aml_backend

Where backends differ on purpose, the difference is a capability field of ContractBackend
(tests/support/workspace_contract.py, so the integration suite can build one too) that the tests
read, never a backend name:

- ``default_pipelines``: pipeline names ``submit`` publishes itself on first use (the local
  backend's two defaults, shared/workspace/local/pipelines.py); elsewhere an unpublished name is
  NotFound;
- ``service_config``: what a service is deployed with here (its kind and entry script). None
  means this suite cannot deploy on the backend, and ``services_elsewhere`` names the test module
  that runs the same service tests (the local backend's services are real processes:
  tests/integration/test_workspace_contract_local_services.py);
- ``other_service_kind``: a kind ``services.list(kind=...)`` must leave this backend's services out of.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.settings import Settings
from shared.workspace.base import ServiceKind, Workspace
from tests.support.workspace_contract import ContractBackend


def local_backend(tmp_path: Path) -> Iterator[ContractBackend]:
    from shared.workspace.local.runs import LocalRunStore
    from shared.workspace.local.workspace import LocalWorkspace

    settings = Settings.from_env({"MANYMODELS_HOME": str(tmp_path / "home")})
    workspace = LocalWorkspace(settings)
    # The hooks stand in for compute: these runs have no runner process whose death the store
    # would otherwise notice (tested in tests/integration/test_local_pipelines.py), and submit
    # starts none (the runner's start is the one step left out of the real pipeline store).
    workspace.runs = LocalRunStore(workspace.db)
    workspace.pipelines.runs = workspace.runs  # type: ignore[attr-defined]
    workspace.pipelines._start_runner = lambda run: None  # type: ignore[attr-defined]
    try:
        yield ContractBackend(
            workspace=workspace,
            add_run=workspace.runs.create,
            set_run_status=lambda run_id, status: workspace.runs.update(run_id, status=status),
            default_pipelines=(settings.training_pipeline_name, settings.forecasting_pipeline_name),
            services_elsewhere="tests/integration/test_workspace_contract_local_services.py",
        )
    finally:
        workspace.close()


def local_with_fakes_backend(tmp_path: Path) -> Iterator[ContractBackend]:
    """The local workspace with the flow tests' fakes (tests/support/fakes.py) as its stores,
    installed the way tests/integration/test_flows_support.py installs them."""
    from shared.workspace.base import ServiceConfig
    from shared.workspace.local.workspace import LocalWorkspace
    from tests.support.fakes import install_fakes

    settings = Settings.from_env({"MANYMODELS_HOME": str(tmp_path / "home")})
    workspace = install_fakes(LocalWorkspace(settings))
    try:
        yield ContractBackend(
            workspace=workspace,
            add_run=workspace.runs.create,
            set_run_status=lambda run_id, status: workspace.runs.update(run_id, status=status),
            default_pipelines=(settings.training_pipeline_name, settings.forecasting_pipeline_name),
            service_config=ServiceConfig(ServiceKind.LOCAL, "scoring/model_webservice.py", auth_enabled=False),
            other_service_kind=ServiceKind.AKS,
        )
    finally:
        workspace.close()


from aml_backend import aml_backend  # noqa: E402 - pytest puts this folder on sys.path
from amlv2_backend import amlv2_backend  # noqa: E402 - the SDK v2 adapter on a fake MLClient

WORKSPACE_FACTORIES: dict[str, Callable[[Path], Iterator[object]]] = {
    "local": local_backend,
    "local+fakes": local_with_fakes_backend,
    "aml": aml_backend,
    "amlv2": amlv2_backend,
}


@pytest.fixture(params=sorted(WORKSPACE_FACTORIES))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ContractBackend]:
    factory = WORKSPACE_FACTORIES[request.param](tmp_path)
    yield ContractBackend.of(next(factory))
    next(factory, None)  # its cleanup


@pytest.fixture
def workspace(backend: ContractBackend) -> Workspace:
    return backend.workspace
