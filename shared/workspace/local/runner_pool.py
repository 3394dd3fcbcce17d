"""ParallelRunStep on one machine: worker processes, mini-batches, timeouts, retries, thresholds.

Behaves like Azure ML's ParallelRunStep (``ParallelRunConfig`` semantics):

- ``process_count_per_node`` worker processes, each imports the entry script and calls ``init()``
  once, then ``run(mini_batch)`` for one mini-batch at a time;
- a ``run()`` call longer than ``run_invocation_timeout`` seconds has its process killed and
  replaced (the new process runs ``init()`` again); a mini-batch whose ``run()`` raised, timed out
  or whose process died is queued again until it has had ``run_max_try`` tries;
- a process that dies in ``init()`` (killed, out of memory) is replaced like that too: the job
  fails only when ``run_max_try`` processes in a row died in ``init()`` (an ``init()`` that
  *raises* fails the job at once: the script is broken, another process would fail the same way);
- ``error_threshold`` counts failed items (files of mini-batches that used up their tries, plus the
  failure rows run() returned); ``allowed_failed_count`` counts such mini-batches; going above
  either (when not -1) aborts the job;
- with ``output_action: append_row`` every row run() returns is appended to
  ``append_row_file_name`` (space separated, no header), in completion order.

Worker processes are forked from a fork server (:mod:`multiprocessing`) that imported the entry
script's heavy libraries (numpy, pandas...) once, so N workers do not pay N times for that import
on a machine with few cores. Each worker still imports the entry script itself and runs its
``init()``, as on Azure ML.

Logs follow Azure ML's layout under ``<run>/logs``: ``user/stdout|stderr/processNNN.*.txt``,
``user/error/`` (tracebacks), ``sys/job_report/processed_mini-batches.csv``.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import logging
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.paths import REPO_ROOT
from shared.workspace.local import runner_worker
from shared.workspace.parallel_config import OutputAction, ParallelRunConfig

if TYPE_CHECKING:  # the contexts that have .Process (BaseContext has not); ForkServerContext is not on Windows
    from multiprocessing.context import ForkServerContext, SpawnContext

log = logging.getLogger(__name__)

WORKER_MODULE = "shared.workspace.local.runner_worker"
# Libraries worth importing once in the fork server: slow to import, and safe to fork after import
# (they start no threads then). Preloaded only when the entry script (or a module beside it) uses them.
PRELOADABLE = ("numpy", "pandas", "pyarrow", "scipy", "sklearn", "joblib")
_KILL_GRACE = 5.0
_TICK = 1.0  # longest wait between progress reports


@dataclass(frozen=True, slots=True)
class MiniBatchFailure:
    """A mini-batch that used up its tries: each of its files becomes a failure row."""

    batch_id: int
    files: tuple[str, ...]
    reason: str
    tries: int


@dataclass(frozen=True, slots=True)
class Progress:
    batches_total: int
    batches_done: int  # succeeded or given up
    files_total: int
    files_done: int
    failed_items: int
    retries: int
    processes: int


@dataclass(slots=True)
class ParallelOutcome:
    results: dict[int, Any] = field(default_factory=dict)  # batch id -> what run() returned
    failed_batches: list[MiniBatchFailure] = field(default_factory=list)
    failed_items: int = 0
    retries: int = 0
    aborted: str | None = None  # why the job stopped early (threshold, init failure)


@dataclass(slots=True)
class _Worker:
    index: int
    process: BaseProcess
    conn: Connection
    started: float
    ready: bool = False
    batch: int | None = None
    deadline: float = 0.0


def count_failed_rows(result: Any) -> int:
    """Failure rows in a run() result: rows whose ``status`` column is ``failed``."""
    if isinstance(result, runner_worker.RowBatch):
        return sum(str(s) == "failed" for s in result.column("status") or ())
    columns = getattr(result, "columns", None)
    if columns is None or "status" not in columns:
        return 0
    return int((result["status"].astype(str) == "failed").sum())


class LocalParallelRun:
    """One ParallelRunStep execution. ``run(batches)`` blocks until every mini-batch is done."""

    def __init__(
        self,
        config: ParallelRunConfig,
        *,
        script: Path,
        arguments: Sequence[str],
        run_dir: Path,
        failed_rows: Callable[[Any], int] = count_failed_rows,
        on_result: Callable[[int, Any], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.config = config
        self.script = script
        self.arguments = list(arguments)
        self.run_dir = run_dir
        self.logs = run_dir / "logs"
        self._failed_rows = failed_rows
        self._on_result = on_result
        self.on_progress = on_progress
        self._workers: list[_Worker] = []
        self._next_index = 0
        self._context: ForkServerContext | SpawnContext | None = None
        # init() gets longer than run(): it may load many models
        self._init_timeout = max(3 * config.run_invocation_timeout, 120)
        self._init_deaths = 0  # processes in a row that died in init() (one getting ready resets it)

    # ------------------------------------------------------------------ public

    def start(self) -> None:
        """Start the fork server now: it imports the entry script's libraries while the caller prepares.

        The workers are forked from it by :meth:`run` (the first fork waits for those imports).
        """
        (self.logs / "user").mkdir(parents=True, exist_ok=True)
        self._fork_server()

    def close(self) -> None:
        """Stop every worker process (idempotent)."""
        self._stop_all()

    def run(self, batches: Sequence[Sequence[str]]) -> ParallelOutcome:
        self._batches = [tuple(b) for b in batches]
        self._tries = [0] * len(self._batches)
        self._pending: deque[int] = deque(range(len(self._batches)))
        self._done = 0
        self._files_done = 0
        self._init_deaths = 0
        self.outcome = ParallelOutcome()
        for folder in ("user/error", "sys/job_report"):
            (self.logs / folder).mkdir(parents=True, exist_ok=True)
        output = self.run_dir / self.config.append_row_file_name
        output.touch()
        self._report_file = open(self.logs / "sys" / "job_report" / "processed_mini-batches.csv", "a", newline="")  # noqa: SIM115
        self._report = csv.writer(self._report_file)
        self._report.writerow(["time", "mini_batch", "files", "try", "status", "seconds", "process", "reason"])
        try:
            with open(output, "a") as self._output:
                while (self._pending or self._busy()) and not self.outcome.aborted:
                    self._step()
        finally:
            self._stop_all()
            self._report_file.close()
            self._progress()
        return self.outcome

    # ------------------------------------------------------------------ loop

    def _busy(self) -> list[_Worker]:
        return [w for w in self._workers if w.batch is not None]

    def _step(self) -> None:
        wanted = min(self.config.process_count_per_node, len(self._pending) + len(self._busy()))
        while len(self._workers) < wanted:
            self._spawn()
        # pre-started workers beyond the work left are stopped rather than left idle
        for w in [w for w in self._workers if w.batch is None and w.ready][:max(0, len(self._workers) - wanted)]:
            self._release(w)
        for w in self._workers:
            if w.ready and w.batch is None and self._pending:
                self._dispatch(w, self._pending.popleft())
        now = time.monotonic()
        deadlines = [w.started + self._init_timeout if not w.ready else w.deadline
                     for w in self._workers if not w.ready or w.batch is not None]
        timeout = max(0.0, min([_TICK, *(d - now for d in deadlines)]))
        # a worker that dies closes its end of the socket: its connection turns readable (EOF)
        ready = set(wait([w.conn for w in self._workers], timeout)) if self._workers else set()
        for w in list(self._workers):
            if w.conn in ready:
                self._receive(w)
        self._expire()
        self._progress()

    def _fork_server(self) -> ForkServerContext | SpawnContext:
        if self._context is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                self._context = multiprocessing.get_context("forkserver")
                preload = preload_modules(self.script)
                self._context.set_forkserver_preload(preload)
                from multiprocessing import forkserver

                forkserver.ensure_running()
                log.info("fork server started; it imports %s once for every worker process", ", ".join(preload))
            else:  # no fork (Windows): every worker is a fresh interpreter
                self._context = multiprocessing.get_context("spawn")
        return self._context

    def _spawn(self) -> None:
        index = self._next_index
        self._next_index += 1
        context = self._fork_server()
        conn, child = context.Pipe()
        process = context.Process(target=runner_worker.serve, name=f"process{index:03d}",
                                  args=(child, index, str(self.script), self.arguments, str(self.logs),
                                        str(REPO_ROOT)))
        try:
            process.start()
        except (OSError, EOFError) as e:  # the fork server died (out of memory?)
            conn.close()
            self.outcome.aborted = f"cannot start a worker process for {self.script.name}: {type(e).__name__}: {e}"
            return
        finally:
            child.close()
        log.info("started process%03d (pid %s) for %s", index, process.pid, self.script.name)
        self._workers.append(_Worker(index, process, conn, time.monotonic()))

    def _dispatch(self, w: _Worker, batch_id: int) -> None:
        self._tries[batch_id] += 1
        w.batch = batch_id
        w.deadline = time.monotonic() + self.config.run_invocation_timeout
        w.conn.send((batch_id, list(self._batches[batch_id])))

    def _receive(self, w: _Worker) -> None:
        try:
            message = w.conn.recv()
        except (EOFError, OSError):
            w.process.join(_KILL_GRACE)
            self._lost(w, f"its process exited with code {w.process.exitcode} (crashed or out of memory?)")
            return
        kind = message[0]
        if kind == "ready":
            w.ready = True
            self._init_deaths = 0
            log.info("process%03d ready (init() done) %.2fs after its start", w.index, time.monotonic() - w.started)
        elif kind == "init_failed":
            self._write_error(f"process{w.index:03d}.init.txt", message[1])
            self.outcome.aborted = (f"init() of {self.script.name} failed: {_last_line(message[1])} "
                                    f"(traceback in logs/user/error/process{w.index:03d}.init.txt)")
            self._retire(w)
        elif kind == "done":
            _, batch_id, result, seconds = message
            w.batch = None
            self._succeeded(w, batch_id, result, seconds)
        elif kind == "error":
            _, batch_id, trace, seconds = message
            w.batch = None
            name = f"mini-batch-{batch_id:05d}.try{self._tries[batch_id]}.txt"
            self._write_error(name, trace)
            self._failed(batch_id, f"run() raised {_last_line(trace)}", seconds, w)

    def _expire(self) -> None:
        now = time.monotonic()
        for w in list(self._workers):
            if w.ready and w.batch is not None and now > w.deadline:
                batch_id = w.batch
                self._retire(w)
                self._failed(batch_id, f"run() did not return within run_invocation_timeout="
                                       f"{self.config.run_invocation_timeout}s; its process was killed",
                             self.config.run_invocation_timeout, w)
            elif not w.ready and now > w.started + self._init_timeout:
                self._retire(w)
                self.outcome.aborted = (f"init() of {self.script.name} did not finish within "
                                        f"{self._init_timeout:.0f}s")

    def _lost(self, w: _Worker, reason: str) -> None:
        batch_id = w.batch
        self._retire(w)
        if batch_id is not None:
            self._failed(batch_id, f"run() was interrupted: {reason}", 0.0, w)
        elif not w.ready:
            self._init_deaths += 1
            tries = self.config.run_max_try
            log_name = f"logs/user/stderr/process{w.index:03d}.stderr.txt"
            if self._init_deaths >= tries:
                self.outcome.aborted = (
                    f"{self._init_deaths} worker processes running {self.script.name} in a row died in init() "
                    f"(run_max_try={tries}); the last one: {reason}; see {log_name}")
                return
            log.warning("process%03d died in init() (%s of run_max_try=%s in a row): %s; starting another",
                        w.index, self._init_deaths, tries, reason)

    # ------------------------------------------------------------------ outcomes

    def _succeeded(self, w: _Worker, batch_id: int, result: Any, seconds: float) -> None:
        files = self._batches[batch_id]
        self.outcome.results[batch_id] = result
        self._done += 1
        self._files_done += len(files)
        self._report.writerow([_now(), batch_id, len(files), self._tries[batch_id], "ok", f"{seconds:.3f}",
                               f"process{w.index:03d}", ""])
        if self.config.output_action == OutputAction.APPEND_ROW:
            _append_rows(self._output, result)
        if self._on_result:
            self._on_result(batch_id, result)
        self.outcome.failed_items += self._failed_rows(result)
        self._check_thresholds()

    def _failed(self, batch_id: int, reason: str, seconds: float, w: _Worker) -> None:
        files = self._batches[batch_id]
        tries = self._tries[batch_id]
        final = tries >= self.config.run_max_try
        self._report.writerow([_now(), batch_id, len(files), tries, "failed" if final else "retry",
                               f"{seconds:.3f}", f"process{w.index:03d}", reason])
        if not final:
            log.warning("mini-batch %s (%s files) failed on try %s of %s, queued again: %s",
                        batch_id, len(files), tries, self.config.run_max_try, reason)
            self.outcome.retries += 1
            self._pending.append(batch_id)
            return
        log.error("mini-batch %s (%s files) failed after %s tries: %s", batch_id, len(files), tries, reason)
        self.outcome.failed_batches.append(MiniBatchFailure(batch_id, files, reason, tries))
        self.outcome.failed_items += len(files)
        self._done += 1
        self._files_done += len(files)
        self._check_thresholds()

    def _check_thresholds(self) -> None:
        c = self.config
        if c.error_threshold != -1 and self.outcome.failed_items > c.error_threshold:
            self.outcome.aborted = (f"{self.outcome.failed_items} failed files/series is above "
                                    f"error_threshold={c.error_threshold}")
        elif c.allowed_failed_count != -1 and len(self.outcome.failed_batches) > c.allowed_failed_count:
            self.outcome.aborted = (f"{len(self.outcome.failed_batches)} failed mini-batches is above "
                                    f"allowed_failed_count={c.allowed_failed_count}")

    def _progress(self) -> None:
        if self.on_progress:
            self.on_progress(Progress(
                batches_total=len(self._batches), batches_done=self._done,
                files_total=sum(len(b) for b in self._batches), files_done=self._files_done,
                failed_items=self.outcome.failed_items, retries=self.outcome.retries,
                processes=len(self._workers)))

    # ------------------------------------------------------------------ processes

    def _retire(self, w: _Worker, *, grace: float = 0.0) -> None:
        """Kill a worker (hung, dead, broken, or done after ``grace`` seconds) and forget it."""
        w.process.join(grace)
        if w.process.exitcode is None:
            w.process.kill()
            w.process.join(_KILL_GRACE)
        w.conn.close()
        with contextlib.suppress(ValueError):  # still running after SIGKILL + grace: leave it to the OS
            w.process.close()
        self._workers.remove(w)

    def _release(self, w: _Worker) -> None:
        """Let an idle worker finish (its script's shutdown() runs), then forget it."""
        with contextlib.suppress(OSError):
            w.conn.send(None)
        self._retire(w, grace=_KILL_GRACE)

    def _stop_all(self) -> None:
        for w in self._workers:
            with contextlib.suppress(OSError):
                w.conn.send(None)
        deadline = time.monotonic() + _KILL_GRACE
        for w in list(self._workers):
            self._retire(w, grace=max(0.0, deadline - time.monotonic()) if w.batch is None else 0.0)

    def _write_error(self, name: str, text: str) -> None:
        (self.logs / "user" / "error" / name).write_text(text)


def preload_modules(script: Path) -> list[str]:
    """What the fork server imports: the worker module, and the :data:`PRELOADABLE` libraries that
    the entry script or the modules beside it import (anywhere in the file: scripts import lazily too)."""
    found: set[str] = set()
    todo, seen = [script], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        try:
            tree = ast.parse(path.read_bytes())
        except (OSError, SyntaxError, ValueError):  # a broken script fails in its worker, with its traceback
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for top in (name.partition(".")[0] for name in names):
                beside = script.parent / f"{top}.py"
                if beside.is_file():
                    todo.append(beside)
                else:
                    found.add(top)
    return [WORKER_MODULE, *(m for m in PRELOADABLE if m in found)]


def _append_rows(handle: Any, result: Any) -> None:
    if isinstance(result, runner_worker.RowBatch):
        handle.write(result.text)
    elif hasattr(result, "to_csv"):
        if len(result):
            result.to_csv(handle, sep=" ", header=False, index=False)
    else:
        handle.writelines(f"{row}\n" for row in result)
    handle.flush()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


def _last_line(trace: str) -> str:
    lines = [line for line in trace.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "an error"
