"""Parallel-job entry script shim: run ``scoring/train.py`` or ``scoring/forecast.py`` on a version's files only.

Staged into the parallel job's code folder beside the entry scripts
(shared/workspace/amlv2/pipeline_graph.py ``stage``), so it runs where they run and, like them, imports
nothing of the project (docs/architecture.md §4).

On SDK v2 a dataset version is one mounted folder plus the JSON list of the files (relative to that
folder) the run must process (shared/workspace/amlv2/datasets.py ``job_inputs``): a partial version's
folder also holds older batches' files, and ``TRAINING_MODE=changed`` trains only the changed ones.
The parallel job hands every file of the folder out in mini-batches; this shim drops the files that
are not on the list and passes the rest to the real entry script, whose ``init()``/``run()`` contract is
unchanged::

    --entry-script train.py --data-dir ${{inputs.data}} --only-files ${{inputs.only_files}} <train.py's arguments>

An empty list file (or ``--only-files`` absent) keeps every file. A mini-batch left with no file
returns no rows (an empty list: not a failure for the parallel job). With a non-negative
``error_threshold`` the dropped files would count as failed items, so keep it at -1 for partial versions.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

_target: ModuleType | None = None
_keep: frozenset[str] | None = None  # None: keep every file
_data_dir: Path | None = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="many-models parallel entry shim", allow_abbrev=False)
    parser.add_argument("--entry-script", required=True, help="train.py or forecast.py, beside this file")
    parser.add_argument("--data-dir", default="", help="the mounted dataset folder the list is relative to")
    parser.add_argument("--only-files", default="", help="JSON list of relative file paths to process")
    args, _ = parser.parse_known_args(argv)
    return args


def read_list(path: str) -> frozenset[str] | None:
    """The relative paths of ``path``'s JSON list (``None``: no list, or an empty one: every file)."""
    if not path:
        return None
    file = Path(path)
    if file.is_dir():  # a uri_file input downloads to a file; a folder holds exactly one
        files = [f for f in file.iterdir() if f.is_file()]
        if len(files) != 1:
            raise ValueError(f"--only-files {path} is a folder with {len(files)} files: expected one JSON list")
        file = files[0]
    names = json.loads(file.read_text(encoding="utf-8") or "[]")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"--only-files {path}: expected a JSON list of file paths")
    return frozenset(_normal(n) for n in names) or None


def _normal(name: str) -> str:
    return Path(name.replace("\\", "/")).as_posix().lstrip("/")


def _load(script: str) -> ModuleType:
    path = Path(__file__).resolve().parent / script
    if path.parent != Path(__file__).resolve().parent or path.suffix != ".py" or not path.is_file():
        raise ValueError(f"--entry-script {script!r} is not an entry script beside {Path(__file__).name}")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"--entry-script {script!r} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def kept(mini_batch: list[str], *, data_dir: Path | None, keep: frozenset[str] | None) -> list[str]:
    """The files of ``mini_batch`` on the list (paths relative to ``data_dir``, or bare names without it)."""
    if keep is None:
        return list(mini_batch)
    chosen = []
    for item in mini_batch:
        path = Path(item)
        if data_dir is not None:
            try:
                relative = Path(os.path.relpath(path.resolve(), data_dir.resolve())).as_posix()
            except ValueError:  # another drive (Windows): not under the folder
                continue
        else:
            relative = path.name
        if relative in keep:
            chosen.append(item)
    return chosen


def init(argv: list[str] | None = None) -> None:
    global _target, _keep, _data_dir
    args = parse_args(argv)
    _keep = read_list(args.only_files)
    _data_dir = Path(args.data_dir) if args.data_dir else None
    _target = _load(args.entry_script)
    if argv is None:
        _target.init()
    else:
        _target.init(argv)


def run(mini_batch: list[str]):
    if _target is None:
        raise RuntimeError("init() was not called")
    files = kept(list(mini_batch), data_dir=_data_dir, keep=_keep)
    if not files:
        return []
    return _target.run(files)
