"""The workspace contract's service tests on the local backend's real services.

The local service store starts an azureml-inference-server-http process per service (seconds
each), too slow for the unit contract suite (tests/unit/workspace_contract/), whose "local"
backend says so (``service_config=None``, ``services_elsewhere`` names this module). The same
test functions run here on a local workspace serving a stand-in entry script
(tests/integration/deploy_helpers.py); every process a test starts is stopped by pid.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_helpers import kill_services_of, service_pids, write_stand_in

from shared.settings import Settings
from shared.workspace.base import ServiceConfig, ServiceKind, Workspace
from shared.workspace.local import service_process
from shared.workspace.local.workspace import LocalWorkspace
from tests.support.workspace_contract import ContractBackend
from tests.unit.workspace_contract.test_workspace_contract import (  # noqa: F401 - collected here
    test_delete_is_idempotent_and_the_service_is_then_not_found,
    test_deploy_returns_a_healthy_service_serving_the_models,
    test_get_keys_answers_keys_that_never_print,
    test_services_are_listed_by_name,
    test_unknown_service_is_not_found,
    test_update_replaces_the_models_and_moves_updated,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[ContractBackend]:
    settings = Settings.from_env({"MANYMODELS_HOME": str(tmp_path / "home")})
    workspace = LocalWorkspace(settings)
    script = write_stand_in(tmp_path / "scoring")
    config = ServiceConfig(ServiceKind.LOCAL, str(script), auth_enabled=False,
                           environment={"WORKER_COUNT": "1", "GUNICORN_CMD_ARGS": "--threads 2"})
    try:
        yield ContractBackend(workspace=workspace, add_run=workspace.runs.create,
                              set_run_status=lambda run_id, status: workspace.runs.update(run_id, status=status),
                              service_config=config, other_service_kind=ServiceKind.AKS)
    finally:
        pids = [info.pid for s in workspace.services.list() if (info := workspace.services.process_info(s.name))]
        workspace.services.delete_all()
        workspace.close()
        deadline = time.monotonic() + 10  # a worker may outlive its master by a moment
        while (left := service_pids(workspace.home)) and time.monotonic() < deadline:
            time.sleep(0.1)
        kill_services_of(workspace.home)
        assert not [pid for pid in pids if service_process.is_alive(pid)]
        assert not left, f"service processes left running: {sorted(left)}"


@pytest.fixture
def workspace(backend: ContractBackend) -> Workspace:
    return backend.workspace
