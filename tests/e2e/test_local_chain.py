"""The whole product on one machine, driven only from outside: files land in Azurite, the local host
(``manymodels up --detach``) delivers the events to ``function_app.py``, and the test watches
``GET /api/status``, asks the router, and reads the predictions container. No flow is called
directly.

Reliability: every Event Grid delivery duplicated, the host SIGKILLed and restarted mid-training,
one scoring service killed; the chain still ends with every good series deployed exactly once and
answering, and ``manymodels status`` says why the bad series failed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.data.schema import DatasetSchema
from shared.data.simulate import write_simulated
from shared.data.upload import upload_batch
from shared.devhost import process
from shared.devhost.chain import ChainWatcher, HostClient
from shared.devhost.eventgrid import dead_letters
from shared.devhost.forecasts import SeriesFiles, ask_router, request_record
from shared.settings import Settings
from shared.storage.account import StorageAccount
from shared.storage.blobs import BlobStore
from tests.support.polling import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

REPO_ROOT = Path(__file__).resolve().parents[2]
SERIES = 12
CONTAINER_SIZE = 5
BAD_FILE = "Store9999_broken.csv"


def _cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def stack(storage_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Settings + environment of an isolated stack; everything it starts is stopped at the end."""
    monkeypatch.setenv("MAX_CONTAINER_SIZE", str(CONTAINER_SIZE))
    monkeypatch.setenv("DATA_QUIET_SECONDS", "600")  # manifests close the batches, not the quiet timer
    from shared.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    env = dict(os.environ)
    data = tmp_path / "data"
    write_simulated(data, series=SERIES, seed=7)
    header = (data / "train" / "Store1000_dominicks.csv").read_text().splitlines()[0]
    (data / "train" / BAD_FILE).write_text(header + "\n" + "\n".join(
        f"1990-06-{14 + i:02d},9999,broken,lots,0,2.0,1.0,999X,99XX,9XXX" for i in range(0, 14, 7)) + "\n")

    def up(*extra: str) -> process.HostState:
        result = _cli(env, "up", "--detach", "--port", "0", "--poll-interval", "0.3", "--retry-backoff", "0.5",
                      "--queue-lease", "10", "--json", *extra)
        assert result.returncode == 0, result.stderr
        state = process.running(settings.home)
        assert state is not None
        return state

    try:
        yield {"settings": settings, "env": env, "data": data, "up": up}
    finally:
        down = _cli(env, "down", "--keep-storage", "--json")
        assert down.returncode == 0, down.stderr
        assert process.running(settings.home) is None


def _watcher(settings: Settings) -> ChainWatcher:
    return ChainWatcher(HostClient.for_home(settings.home), poll=0.5, timeout=240, progress=print)


def _answers_for(router: str, data: Path, names: list[str]) -> list[dict[str, Any]]:
    schema = DatasetSchema.load()
    records = [request_record(SeriesFiles(data / "train" / n, data / "inference" / n), schema) for n in names]
    return ask_router(router, records)


def _good_files(data: Path) -> list[str]:
    return sorted(p.name for p in (data / "train").glob("*.csv") if p.name != BAD_FILE)


def _upload(settings: Settings, folder: Path, kind: str, **kwargs: Any) -> str:
    return upload_batch(settings, folder, kind=kind, validate=False, **kwargs).batch


def test_upload_to_predictions_through_the_local_host(stack: dict[str, Any]) -> None:
    settings, data = stack["settings"], stack["data"]
    stack["up"]()
    watcher = _watcher(settings)

    batch = _upload(settings, data / "train", "train")
    trained = watcher.follow_training(batch, expected_models=SERIES)
    assert trained.models == SERIES
    assert trained.plan["groups"] == -(-SERIES // CONTAINER_SIZE)

    good = _good_files(data)
    answers = _answers_for(trained.router, data, good)
    assert [a.get("error") for a in answers] == [None] * len(good)
    assert all(len(a["forecast"]["values"]) == a["forecast_horizon"] for a in answers)

    inference = _upload(settings, data / "inference", "inference")
    result = watcher.follow_inference(inference)
    predictions = BlobStore(StorageAccount(settings.storage_connection), settings.predictions_container)
    name = result.predictions.split("/", 1)[1] if result.predictions.startswith(
        f"{settings.predictions_container}/") else result.predictions
    text = predictions.download_bytes(name).decode()
    stores = {line.split(",")[0] for line in text.splitlines()[1:] if line}
    assert len(text.splitlines()) > SERIES  # a forecast row per series and week
    assert stores

    status = json.loads(_cli(stack["env"], "status", "--json").stdout.strip().splitlines()[-1])
    failures = json.dumps(status["runs"]["failures"])
    assert BAD_FILE in failures or "9999" in failures  # the bad series failed, and status says why


def test_duplicates_host_kill_and_service_kill_still_end_with_every_series_answering(
        stack: dict[str, Any]) -> None:
    settings, data = stack["settings"], stack["data"]
    first = stack["up"]("--duplicate-deliveries")
    watcher = _watcher(settings)

    batch = _upload(settings, data / "train", "train")
    watcher.wait("training run submitted", lambda s: next((b.get("run_id") for b in s.get("batches") or []
                                                           if b.get("batch") == batch and b.get("run_id")), None))
    os.kill(first.pid, signal.SIGKILL)  # mid-training: the runner goes on, its events wait in the outbox
    _wait_dead(first.pid)
    stack["up"]("--duplicate-deliveries")
    trained = _watcher(settings).follow_training(batch, expected_models=SERIES)

    services = _group_services(settings)
    served = [m for s in services for m in s.models]
    assert len(served) == SERIES and len(set(served)) == SERIES  # every good series deployed exactly once

    victim = services[0]
    _kill_service(settings, victim.name)
    status = HostClient.for_home(settings.home).status()
    broken = next(s for s in status["services"] if s["name"] == victim.name)
    assert broken["state"] != "healthy" and broken.get("error")  # status says why it does not answer

    # new data for one series of another group: its rollout also repairs the dead group
    changed = data / "changed"
    changed.mkdir()
    name = next(n for n in _good_files(data) if _model_of(n) not in {m.split(":")[0] for m in victim.models})
    rows = (data / "train" / name).read_text().splitlines()
    (changed / name).write_text("\n".join(rows[:-1]) + "\n")
    partial = _upload(settings, changed, "train", mode="partial")
    repaired = _watcher(settings).follow_training(partial, expected_models=SERIES)

    services = _group_services(settings)
    served = [m.split(":")[0] for s in services for m in s.models]
    assert sorted(served) == sorted(set(served)) and len(served) == SERIES
    assert all(s.state == "healthy" for s in services)
    answers = _answers_for(repaired.router, data, _good_files(data))
    assert [a.get("error") for a in answers] == [None] * SERIES
    assert trained.plan["plan_id"] != repaired.plan["plan_id"]
    assert dead_letters(settings.home) == []  # duplicates were acknowledged, nothing given up


def _model_of(file_name: str) -> str:
    store, brand = file_name.removesuffix(".csv").removeprefix("Store").split("_", 1)
    from shared.data.schema import DatasetSchema

    return f"{DatasetSchema.load().model_type}_{brand}_{store}"  # the repo's settings name the models


def _group_services(settings: Settings) -> list[Any]:
    from shared.workspace.local.workspace import LocalWorkspace

    workspace = LocalWorkspace(settings)
    try:
        return [s for s in workspace.services.list() if s.name != settings.routing_service_name]
    finally:
        workspace.close()


def _kill_service(settings: Settings, name: str) -> None:
    from shared.workspace.local.workspace import LocalWorkspace

    workspace = LocalWorkspace(settings)
    try:
        info = workspace.services.process_info(name)
    finally:
        workspace.close()
    assert info is not None
    os.killpg(info.pid, signal.SIGKILL)
    _wait_dead(info.pid)


def _wait_dead(pid: int, timeout: float = 15) -> None:
    def ended() -> bool:
        try:
            os.kill(pid, 0)
            return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        except (ProcessLookupError, FileNotFoundError):
            return True

    wait_until(ended, timeout=timeout, interval=0.1, what=f"process {pid} to end")

