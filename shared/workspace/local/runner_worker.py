"""One ParallelRunStep worker process: import the entry script, ``init()`` once, then ``run()``
each mini-batch the runner sends.

Run exactly as Azure ML runs entry scripts (contracts §3): the script's directory first on
``sys.path``, ``sys.argv = [script, *arguments]``, the script imported as a module. The process's
stdout/stderr go to ``logs/user/stdout|stderr/processNNN.*.txt`` of the run, like Azure ML's.

A worker is a fresh interpreter (``python -m shared.workspace.local.runner_worker``) that imports
nothing of the product but this module, so it starts as fast as the entry script's own imports
allow. Messages to the runner (pickled, over a socket pair): ``("ready", pid)``,
``("init_failed", traceback)``, ``("done", batch_id, result, seconds)``,
``("error", batch_id, traceback, seconds)``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import traceback
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


def _picklable(result: Any) -> Any:
    """A DataFrame or a list of rows: what ParallelRunStep accepts from run()."""
    if result is None:
        return []
    if hasattr(result, "to_dict") and hasattr(result, "columns"):
        return result
    return list(result)


def serve(conn: Connection, worker: int, script: str, arguments: list[str], logs: str) -> None:
    """Serve mini-batches on ``conn`` until the runner sends None or goes away."""
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one ParallelRunStep worker process (started by the runner)")
    parser.add_argument("--fd", type=int, required=True, help="inherited socket to the runner")
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--script", required=True)
    parser.add_argument("--arguments", required=True, help="JSON list: the entry script's arguments")
    parser.add_argument("--logs", required=True)
    args = parser.parse_args(argv)
    serve(Connection(args.fd), args.worker, args.script, json.loads(args.arguments), args.logs)


if __name__ == "__main__":
    main()
