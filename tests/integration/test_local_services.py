"""LocalServiceStore with real azureml-inference-server-http processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from deploy_helpers import (
    kill_group,
    kill_services_of,
    listening_addresses,
    record,
    register_fake_models,
    score,
    service_pids,
    write_stand_in,
)

from shared.errors import NotFound, Unavailable
from shared.workspace.base import ServiceConfig, ServiceKind, ServiceState
from shared.workspace.local import service_process
from shared.workspace.local.workspace import LocalWorkspace
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration


def settled(condition: Callable[[], object], timeout: float = 30) -> bool:
    return bool(wait_until(condition, timeout=timeout, interval=0.05, what="the service processes to settle"))


@pytest.fixture
def workspace(settings) -> Iterator[LocalWorkspace]:
    ws = LocalWorkspace(settings)
    try:
        yield ws
    finally:
        pids = [info.pid for s in ws.services.list() if (info := ws.services.process_info(s.name))]
        ws.services.delete_all()
        ws.close()
        assert not [pid for pid in pids if service_process.is_alive(pid)]
        with contextlib.suppress(AssertionError):  # a worker may outlive its master by a moment; recorded or not
            wait_until(lambda: not service_pids(ws.home), timeout=10, interval=0.1, what="no service process left")
        left = service_pids(ws.home)
        kill_services_of(ws.home)
        assert not left, f"service processes left running: {sorted(left)}"


@pytest.fixture
def config(tmp_path: Path) -> ServiceConfig:
    script = write_stand_in(tmp_path / "scoring")
    return ServiceConfig(ServiceKind.LOCAL, str(script), auth_enabled=False,
                         environment={"WORKER_COUNT": "1", "GUNICORN_CMD_ARGS": "--threads 2"})


def test_deploy_update_delete_with_a_rolling_restart_on_the_same_port(workspace, config, tmp_path):
    models = register_fake_models(workspace, tmp_path / "art", [1, 2, 3])
    service = workspace.services.deploy("svc-a", models, config, timeout=60)
    assert service.state == ServiceState.HEALTHY
    assert service.models == ("lr_dominicks_1:1", "lr_dominicks_2:1", "lr_dominicks_3:1")
    first = workspace.services.process_info("svc-a")
    assert service.scoring_uri == f"http://127.0.0.1:{first.port}/score"
    assert listening_addresses(first.port) == {"127.0.0.1"}  # loopback only
    assert requests.get(service.scoring_uri, timeout=10).json() == ["lr_dominicks_1", "lr_dominicks_2",
                                                                     "lr_dominicks_3"]
    assert workspace.services.get_keys("svc-a").primary == ""

    newer = register_fake_models(workspace, tmp_path / "art", [2], version_hint=2)
    updated = workspace.services.update("svc-a", [models[0], newer[0]], config, timeout=60)
    second = workspace.services.process_info("svc-a")
    assert second.pid != first.pid and second.port == first.port  # new process, same endpoint
    assert updated.scoring_uri == service.scoring_uri
    assert settled(lambda: not service_process.is_alive(first.pid))  # the old one stops after the switch
    assert not Path(first.model_dir).exists()
    answers = score(updated.scoring_uri, [record(2), record(3)])
    assert answers[0]["forecast"]["values"] == [2]
    assert "unknown model" in answers[1]["error"]

    workspace.services.delete("svc-a")
    workspace.services.delete("svc-a")  # idempotent
    assert not service_process.is_alive(second.pid)
    with pytest.raises(NotFound):
        workspace.services.get("svc-a")


def test_a_service_that_fails_to_start_is_not_deployed_and_the_old_one_keeps_answering(workspace, config,
                                                                                       tmp_path):
    models = register_fake_models(workspace, tmp_path / "art", [1])
    workspace.services.deploy("svc-b", models, config, timeout=60)
    before = workspace.services.process_info("svc-b")
    broken = ServiceConfig(config.kind, config.entry_script, environment={**config.environment,
                                                                         "STAND_IN_FAIL": "1"})
    with pytest.raises(Unavailable, match="exited while starting"):
        workspace.services.update("svc-b", models, broken, timeout=60)
    assert workspace.services.process_info("svc-b") == before
    assert workspace.services.get("svc-b").state == ServiceState.HEALTHY
    assert score(workspace.services.get("svc-b").scoring_uri, [record(1)])[0]["forecast"]["values"] == [1]
    with pytest.raises(Unavailable):
        workspace.services.deploy("svc-c", models, broken, timeout=60)
    with pytest.raises(NotFound):
        workspace.services.get("svc-c")


def test_stale_services_are_detected_and_restarted_on_their_port(workspace, config, tmp_path, settings):
    models = register_fake_models(workspace, tmp_path / "art", [1, 2])
    workspace.services.deploy("svc-d", models, config, timeout=60)
    workspace.services.deploy("svc-e", models[:1], config, timeout=60)
    d = workspace.services.process_info("svc-d")
    kill_group(d.pid)  # as if the machine had rebooted
    # another process (the next CLI run) sees it stale
    other = LocalWorkspace(settings)
    try:
        stale = other.services.get("svc-d")
        assert stale.state == ServiceState.UNHEALTHY and "not running" in stale.error
        assert other.services.get("svc-e").state == ServiceState.HEALTHY
        assert other.services.restart_stale(timeout=60) == ["svc-d"]
    finally:
        other.close()
    again = workspace.services.process_info("svc-d")
    assert again.pid != d.pid and again.port == d.port
    assert workspace.services.get("svc-d").state == ServiceState.HEALTHY
    assert [a["forecast"]["values"] for a in score(workspace.services.get("svc-d").scoring_uri,
                                                  [record(1), record(2)])] == [[1], [1]]


def test_stop_all_keeps_records_and_delete_all_removes_them(workspace, config, tmp_path):
    models = register_fake_models(workspace, tmp_path / "art", [1])
    workspace.services.deploy("svc-f", models, config, timeout=60)
    workspace.services.deploy("svc-g", models, config, timeout=60)
    pids = [workspace.services.process_info(n).pid for n in ("svc-f", "svc-g")]
    assert sorted(workspace.services.stop_all()) == ["svc-f", "svc-g"]
    assert not [p for p in pids if service_process.is_alive(p)]
    assert {s.name: s.state for s in workspace.services.list()} == {"svc-f": ServiceState.UNHEALTHY,
                                                                    "svc-g": ServiceState.UNHEALTHY}
    assert workspace.services.list(kind=ServiceKind.ACI) == []
    assert sorted(workspace.services.delete_all()) == ["svc-f", "svc-g"]
    assert workspace.services.list() == []
