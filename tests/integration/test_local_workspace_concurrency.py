"""Several processes writing one local workspace at once (the host, the runner and the CLI do).

Each worker is a real process (spawned, like the runner), all starting at the same moment.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PROCESSES = 4
ROUNDS = 5


def _workspace(home: str):
    from shared.settings import Settings
    from shared.workspace.local.workspace import LocalWorkspace

    return LocalWorkspace(Settings.from_env({"MANYMODELS_HOME": home}))


def _wait_until(start: float) -> None:
    time.sleep(max(0.0, start - time.time()))


def _register_datasets(home: str, worker: int, start: float) -> list[int]:
    from shared.workspace.base import DatasetFile

    ws = _workspace(home)
    same = [DatasetFile(name=f"Store{i}_a.csv", path=f"train/b1/Store{i}_a.csv", etag=str(i), size=1, md5=f"m{i}")
            for i in range(200)]
    _wait_until(start)
    try:
        versions = []
        for n in range(ROUNDS):
            versions.append(ws.datasets.register("train", same, datastore="azureblob://landing").version)
            own = [DatasetFile(name="x.csv", path="x.csv", etag="e", size=1, md5=f"{worker}-{n}")]
            versions.append(ws.datasets.register("inference", own, datastore="azureblob://landing").version)
        return versions
    finally:
        ws.close()


def _register_models(home: str, artifact: str, start: float) -> list[tuple[str, int]]:
    from shared.workspace.base import NewModel

    ws = _workspace(home)
    batch = [NewModel(f"lr_s_{i}", artifact, tags={"Store": str(i), "Brand": "a"}) for i in range(30)]
    _wait_until(start)
    try:
        out = []
        for _ in range(ROUNDS):
            out += [(r.name, r.version) for r in ws.models.register_many(batch)]
        return out
    finally:
        ws.close()


def _run_all(target, args_per_worker) -> list:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        try:
            return pool.starmap(target, args_per_worker)
        finally:
            pool.terminate()


def test_processes_registering_the_same_dataset_content_get_one_version(tmp_path: Path):
    home = str(tmp_path / "home")
    _workspace(home).close()  # schema created up front; creating it concurrently is its own test below
    start = time.time() + 2.0
    results = _run_all(_register_datasets, [(home, w, start) for w in range(PROCESSES)])
    ws = _workspace(home)
    try:
        assert [v.version for v in ws.datasets.list("train")] == [1]
        assert all(v == 1 for r in results for v in r[0::2])
        # Distinct content from every round of every worker: consecutive versions, none lost or doubled.
        inference = ws.datasets.list("inference")
        assert [v.version for v in inference] == list(range(1, PROCESSES * ROUNDS + 1))
        assert sorted(v for r in results for v in r[1::2]) == list(range(1, PROCESSES * ROUNDS + 1))
    finally:
        ws.close()


def test_processes_registering_models_get_consecutive_versions(tmp_path: Path):
    home = str(tmp_path / "home")
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "model.json").write_text("{}")
    start = time.time() + 2.0  # also races the schema creation: nobody opened this home yet
    results = _run_all(_register_models, [(home, str(artifact), start) for _ in range(PROCESSES)])
    registered = [pair for r in results for pair in r]
    assert len(registered) == len(set(registered)) == PROCESSES * ROUNDS * 30
    ws = _workspace(home)
    try:
        total = PROCESSES * ROUNDS
        assert [m.version for m in ws.models.list(latest=False, name="lr_s_7")] == list(range(1, total + 1))
        latest = ws.models.list(tags={"Brand": "a"})
        assert len(latest) == 30 and {m.version for m in latest} == {total}
        assert all((Path(m.path) / "model.json").is_file() for m in ws.models.list(latest=False))
    finally:
        ws.close()


def test_a_forked_child_opens_its_own_connection(tmp_path: Path):
    from shared.workspace.local.db import connect

    db = connect(tmp_path)
    parent = db.connection()
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's connection
        ok = db.connection() is not parent and db.connection().execute("SELECT 1").fetchone()[0] == 1
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert parent.execute("SELECT COUNT(*) FROM models").fetchone()[0] == 0
    db.close()
