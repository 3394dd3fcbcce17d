"""Local scoring services whose starter died: no unrecorded ``azmlinfsrv`` may keep the port.

The starter (the local host, a queue worker, the CLI) is killed with SIGKILL in the middle of a
rolling update, in a child process of the test; the services are real azureml-inference-server-http
processes. Every process a test starts is stopped by pid, and /proc is checked afterwards.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from deploy_helpers import REPO, kill_services_of, record, register_fake_models, score, service_pids, write_stand_in

from shared.processes import free_port, port_open, start_ticks
from shared.workspace.base import ServiceConfig, ServiceKind, ServiceState
from shared.workspace.local import service_process
from shared.workspace.local.workspace import LocalWorkspace
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

UPDATE = """
import pickle, sys
from shared.settings import get_settings
from shared.workspace.local.workspace import LocalWorkspace
name, models, config = pickle.loads(open(sys.argv[1], 'rb').read())
LocalWorkspace(get_settings()).services.update(name, models, config, timeout=60)
"""

# A starter that dies (as with SIGKILL: no clean-up) right after the process started, before "go".
DIE_BEFORE_GO = """
import os, sys
from pathlib import Path
from shared.workspace.local import service_process as proc
folder = Path(sys.argv[1])
def record(pid, ticks):
    (folder / "pid").write_text(str(pid))
    os._exit(9)
proc.start(entry_script=Path(sys.argv[2]), model_dir=folder / "models", port=int(sys.argv[3]),
           health_port=int(sys.argv[4]), log_file=folder / "service.log", environment={}, home=Path(sys.argv[5]),
           name="svc-x", record=record)
"""


def settled(condition: Callable[[], object], timeout: float = 30) -> bool:
    return bool(wait_until(condition, timeout=timeout, interval=0.05, what="the service processes to settle"))


def _argument(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def _answers_health(args: list[str]) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{_argument(args, '--health_port')}/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _homes_clean(*homes: Path) -> None:
    """Stop what is left (by pid) and fail when anything was."""
    left = {pid: args for home in homes for pid, args in service_pids(home).items()}
    for home in homes:
        kill_services_of(home)
    assert settled(lambda: not any(service_pids(h) for h in homes), 15)
    assert not left, f"service processes left running: {sorted(left)}"


@pytest.fixture
def workspace(settings) -> Iterator[LocalWorkspace]:
    ws = LocalWorkspace(settings)
    try:
        yield ws
    finally:
        try:
            ws.services.delete_all()
        finally:
            ws.close()
            _homes_clean(ws.home)


@pytest.fixture
def config(tmp_path: Path) -> ServiceConfig:
    script = write_stand_in(tmp_path / "scoring")
    return ServiceConfig(ServiceKind.LOCAL, str(script), auth_enabled=False,
                         environment={"WORKER_COUNT": "1", "GUNICORN_CMD_ARGS": "--threads 2"})


def test_a_starter_killed_in_a_rolling_update_leaves_no_stale_server_on_the_port(workspace, config, tmp_path):
    ws = workspace
    models = register_fake_models(ws, tmp_path / "art", [1])
    ws.services.deploy("svc-k", models, config, timeout=60)
    first = ws.services.process_info("svc-k")
    second = register_fake_models(ws, tmp_path / "art", [1], version_hint=2)
    slow = replace(config, environment={**config.environment, "STAND_IN_INIT_SECONDS": "2"})
    job = tmp_path / "job.pkl"
    job.write_bytes(pickle.dumps(("svc-k", second, slow)))
    starter = subprocess.Popen([sys.executable, "-c", UPDATE, str(job)], cwd=REPO, env=os.environ.copy())
    try:
        assert settled(lambda: set(service_pids(ws.home)) - {first.pid}, 60), "the update started no process"
        time.sleep(0.5)  # well past recording it: the kill lands while the starter waits for its health
        starter.kill()
    finally:
        starter.kill()
        starter.wait()
    strays = {pid: args for pid, args in service_pids(ws.home).items() if pid != first.pid}
    assert strays  # the interrupted start's process runs on: only a record can tell it is there
    # as bad as it gets: the stray finished its init() and takes its share of the port's connections
    assert settled(lambda: all(_answers_health(a) or not service_pids(ws.home).get(p) for p, a in strays.items()))
    assert ws.services.get("svc-k").state == ServiceState.HEALTHY
    assert ws.services.process_info("svc-k") == first

    third = register_fake_models(ws, tmp_path / "art", [1], version_hint=3)
    ws.services.update("svc-k", third, config, timeout=60)
    now = ws.services.process_info("svc-k")
    assert now.port == first.port
    assert settled(lambda: set(service_pids(ws.home)) <= {now.pid} | _workers_of(ws.home, now.pid))
    uri = ws.services.get("svc-k").scoring_uri
    assert {score(uri, [record(1)])[0]["forecast"]["values"][0] for _ in range(30)} == {3}  # never version 2

    ws.services.stop_all()
    assert settled(lambda: not service_pids(ws.home), 20)
    assert not port_open("127.0.0.1", now.port)


def _workers_of(home: Path, master: int) -> set[int]:
    return {pid for pid in service_pids(home) if os.getpgid(pid) == master}


def test_down_and_up_stop_strays_of_their_home_only(workspace, config, tmp_path, settings):
    ws = workspace
    models = register_fake_models(ws, tmp_path / "art", [1])
    ws.services.deploy("svc-m", models, config, timeout=60)
    other = LocalWorkspace(settings.replace(home=tmp_path / "other-home"))
    try:
        other_models = register_fake_models(other, tmp_path / "other-art", [1])
        other.services.deploy("svc-m", other_models, config, timeout=60)  # same name, another home
        theirs = other.services.process_info("svc-m")
        # a stray of this home: a record that no longer points at its process (as after a killed update)
        ours = ws.services.process_info("svc-m")
        with ws.db.transaction() as tx:
            row = tx.execute("SELECT process FROM services WHERE name = 'svc-m'").fetchone()
            data = json.loads(row[0])
            # ... pointing at the other home's pid, with its start time off by one: a reused pid
            data.update(pid=theirs.pid, start_ticks=start_ticks(theirs.pid) + 1)
            tx.execute("UPDATE services SET process = ? WHERE name = 'svc-m'", (json.dumps(data),))
        assert ws.services.get("svc-m").state == ServiceState.UNHEALTHY  # not its process
        assert service_process.is_alive(ours.pid)

        assert ws.services.stop_all() == []  # the recorded process is not running ...
        assert settled(lambda: not service_pids(ws.home), 20)  # ... but the stray is stopped
        assert service_process.is_alive(theirs.pid, ticks=theirs.start_ticks)  # the other home's is not
        assert other.services.get("svc-m").state == ServiceState.HEALTHY
        # `manymodels up` starts this home's service again and leaves the other one be
        assert ws.services.restart_stale(timeout=60) == ["svc-m"]
        assert ws.services.get("svc-m").state == ServiceState.HEALTHY
        assert service_process.is_alive(theirs.pid, ticks=theirs.start_ticks)
        assert score(other.services.get("svc-m").scoring_uri, [record(1)])[0]["forecast"]["values"] == [1]
    finally:
        try:
            other.services.delete_all()
        finally:
            other.close()
            _homes_clean(other.home)


def test_a_service_process_whose_starter_dies_before_recording_it_never_listens(tmp_path, settings):
    script = write_stand_in(tmp_path / "scoring")
    folder = tmp_path / "gen"
    (folder / "models").mkdir(parents=True)
    port, health = free_port(), free_port()
    starter = subprocess.run([sys.executable, "-c", DIE_BEFORE_GO, str(folder), str(script), str(port), str(health),
                              str(settings.home)], cwd=REPO, env=os.environ.copy(), timeout=60, check=False)
    assert starter.returncode == 9
    pid = int((folder / "pid").read_text())
    try:
        assert settled(lambda: not Path(f"/proc/{pid}").exists()
                          or Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z", 30)
        assert not port_open("127.0.0.1", port) and not port_open("127.0.0.1", health)
    finally:
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
