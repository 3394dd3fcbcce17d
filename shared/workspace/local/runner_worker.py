"""One ParallelRunStep worker process: import the entry script, ``init()`` once, then ``run()``
each mini-batch the runner sends.

Run exactly as Azure ML runs entry scripts (docs/architecture.md §4): the script's directory first on
``sys.path``, ``sys.argv = [script, *arguments]``, the script imported as a module. The process's
stdout/stderr go to ``logs/user/stdout|stderr/processNNN.*.txt`` of the run, like Azure ML's.

The runner forks workers from a fork server (:mod:`runner_pool`) and calls :func:`serve` in each;
this module imports nothing of the product, so the fork server stays small. Messages to the
runner (pickled, over a socket pair): ``("ready", pid)``, ``("init_failed", traceback)``,
``("done", batch_id, result, seconds)``, ``("error", batch_id, traceback, seconds)``.

A DataFrame result travels as a :class:`RowBatch`: its columns as plain Python lists plus its
``append_row`` text, rendered here (in parallel) rather than by the runner. So the runner reads
a training run's results without importing pandas.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


def _redirect_output(logs: Path, worker: int) -> None:
    for stream, fd in (("stdout", 1), ("stderr", 2)):
        folder = logs / "user" / stream
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / f"process{worker:03d}.{stream}.txt", "a", buffering=1)  # noqa: SIM115 - lives as long as the process
        os.dup2(handle.fileno(), fd)
        setattr(sys, stream, handle)


def _import_entry_script(script: Path, arguments: list[str]) -> Any:
    sys.path.insert(0, str(script.parent))
    sys.argv = [str(script), *arguments]
    spec = importlib.util.spec_from_file_location(script.stem, script)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[script.stem] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise AttributeError(f"{script.name} has no run(mini_batch) function")
    return module


@dataclass(frozen=True, slots=True)
class RowBatch:
    """The DataFrame one run() call returned, column by column.

    Values are plain Python (missing text is None, missing numbers NaN); timestamps stay pandas
    Timestamps, so only results holding them need pandas to be read.
    """

    names: tuple[str, ...]
    values: tuple[list[Any], ...]  # one list per column, same order as names
    text: str  # the rows as ParallelRunStep's append_row writes them (space separated, no header)

    def __len__(self) -> int:
        return len(self.values[0]) if self.values else 0

    def column(self, name: str) -> list[Any] | None:
        """The values of the first column called ``name`` (None when there is none)."""
        return self.values[self.names.index(name)] if name in self.names else None


def row_batch(frame: Any) -> RowBatch:
    import numpy as np  # a worker has it already (pandas needs it); the runner never calls this

    values = []
    for j in range(frame.shape[1]):
        column = frame.iloc[:, j]
        items = column.tolist()
        if not (isinstance(column.dtype, np.dtype) and column.dtype.kind in "fiub"):
            # text, objects, nullable numbers: pandas' missing-value markers would need pandas to unpickle
            missing = column.isna().tolist()
            items = [None if gone else v for v, gone in zip(items, missing, strict=True)]
        values.append(items)
    text = frame.to_csv(sep=" ", header=False, index=False) if len(frame) else ""
    return RowBatch(tuple(str(c) for c in frame.columns), tuple(values), text)


def _picklable(result: Any) -> Any:
    """A :class:`RowBatch` (for a DataFrame) or a list of rows: what ParallelRunStep accepts from run()."""
    if result is None:
        return []
    if hasattr(result, "to_csv") and hasattr(result, "columns"):
        return row_batch(result)
    return list(result)


def serve(conn: Connection, worker: int, script: str, arguments: list[str], logs: str, cwd: str) -> None:
    """Serve mini-batches on ``conn`` until the runner sends None or goes away."""
    os.chdir(cwd)
    _redirect_output(Path(logs), worker)
    try:
        module = _import_entry_script(Path(script), arguments)
        if callable(getattr(module, "init", None)):
            module.init()
    except BaseException:
        conn.send(("init_failed", traceback.format_exc()))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the runner went away
            break
        if message is None:
            break
        batch_id, files = message
        started = time.perf_counter()
        try:
            result = _picklable(module.run(list(files)))
        except Exception:
            print(f"mini-batch {batch_id} failed:\n{traceback.format_exc()}", file=sys.stderr)
            conn.send(("error", batch_id, traceback.format_exc(), time.perf_counter() - started))
            continue
        conn.send(("done", batch_id, result, time.perf_counter() - started))
    if callable(getattr(module, "shutdown", None)):
        module.shutdown()
