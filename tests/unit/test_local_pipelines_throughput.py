"""What makes local training fast stays correct: moved artifacts, plain-column results, the fork server's preload."""

from __future__ import annotations

import contextlib
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.workspace.base import DatasetFile, NewModel
from shared.workspace.local.db import connect
from shared.workspace.local.models import LocalModelRegistry
from shared.workspace.local.runner_inputs import RunInputs
from shared.workspace.local.runner_pool import ParallelOutcome, count_failed_rows, preload_modules
from shared.workspace.local.runner_steps import collect_rows, read_manifest, training_series
from shared.workspace.local.runner_worker import RowBatch, row_batch


def _inputs(*names: str) -> RunInputs:
    files = tuple(DatasetFile(name=n, path=f"train/b1/{n}", etag="e", size=1) for n in names)
    return RunInputs(files, tuple(f"/tmp/run/inputs/train/b1/{n}" for n in names))


def _artifacts(root: Path, *names: str) -> list[NewModel]:
    models = []
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "model.json").write_text(f'{{"name": "{name}"}}')
        tags = {"ModelType": "lr", "Store": name.rpartition("_")[2]}
        models.append(NewModel(name, str(root / name), tags, {"mse": "1.0"}))
    return models


def test_register_many_with_move_takes_over_the_artifact_folders(tmp_path: Path) -> None:
    registry = LocalModelRegistry(connect(tmp_path / "home"), tmp_path / "home" / "models")
    models = _artifacts(tmp_path / "out", *(f"lr_s{i}" for i in range(80)))  # enough to move in a thread

    records = registry.register_many(models, move=True)

    assert [(r.name, r.version) for r in records] == [(m.name, 1) for m in models]
    assert (tmp_path / "home" / "models" / "lr_s7" / "1" / "model.json").read_text() == '{"name": "lr_s7"}'
    assert not any((tmp_path / "out").iterdir())  # moved, not copied
    assert [r.name for r in registry.list(tags={"Store": "s7"})] == ["lr_s7"]


def test_a_failed_registration_moves_the_folders_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = LocalModelRegistry(connect(tmp_path / "home"), tmp_path / "home" / "models")
    models = _artifacts(tmp_path / "out", "lr_a", "lr_b")
    real = registry.db.transaction

    def failing_commit():
        with real() as tx:
            yield tx
            raise RuntimeError("disk full")

    monkeypatch.setattr(registry.db, "transaction", contextlib.contextmanager(failing_commit))
    with pytest.raises(RuntimeError, match="disk full"):
        registry.register_many(models, move=True)

    assert (tmp_path / "out" / "lr_a" / "model.json").exists() and (tmp_path / "out" / "lr_b").is_dir()
    assert not (tmp_path / "home" / "models" / "lr_a" / "1").exists() and registry.list() == []


def test_a_dataframe_result_travels_as_plain_columns_readable_without_pandas() -> None:
    frame = pd.DataFrame({"file": ["a.csv", "b.csv"], "series": ["a", None], "model_name": ["lr_a", ""],
                          "status": ["ok", "failed"], "reason": ["", "too short"], "mse": [1.5, np.nan]})
    batch = row_batch(frame)

    assert batch.text == frame.to_csv(sep=" ", header=False, index=False)
    assert batch.column("series") == ["a", None] and len(batch) == 2 and count_failed_rows(batch) == 1
    # no pandas object inside: a process without pandas can unpickle it
    code = ("import pickle, sys; b = pickle.loads(sys.stdin.buffer.read()); "
            "assert 'pandas' not in sys.modules; print(b.column('status'))")
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(batch), capture_output=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.decode().strip() == "['ok', 'failed']"


def test_rows_and_manifest_read_from_row_batches(tmp_path: Path) -> None:
    batch = RowBatch(("file", "series", "model_name", "status", "model_type", "reason"),
                     (["/tmp/run/inputs/train/b1/a.csv", "/tmp/run/inputs/train/b1/b.csv"], ["a", "b"],
                      ["lr_a", "lr_b"], ["ok", "failed"], ["lr", ""], ["", "constant"]), "")
    rows = collect_rows(ParallelOutcome(results={0: batch}), _inputs("a.csv", "b.csv"), series_of=training_series)
    (tmp_path / "manifest").mkdir()
    (tmp_path / "manifest" / "1.jsonl").write_text('{"name": "lr_a", "path": "models/lr_a"}\n'
                                                   '{"name": "lr_b", "path": "models/lr_b"}\n')

    assert rows.counts == {"files": 2, "rows": 2, "succeeded": 1, "fallback": 0, "failed": 1,
                           "warnings": 0, "model_type_lr": 1}  # series per chosen type
    assert [(f.file, f.reason) for f in rows.failures] == [("b.csv", "constant")]
    assert [m.name for m in read_manifest(tmp_path, rows.batches)] == ["lr_a"]


def test_the_fork_server_preloads_the_libraries_the_script_and_its_modules_import(tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("import numpy as np\n\ndef f():\n    import pandas\n")
    (tmp_path / "entry.py").write_text("import json\nimport helper\nfrom os import path\n")
    assert preload_modules(tmp_path / "entry.py") == ["shared.workspace.local.runner_worker", "numpy", "pandas"]
    (tmp_path / "broken.py").write_text("def (:\n")
    assert preload_modules(tmp_path / "broken.py") == ["shared.workspace.local.runner_worker"]
