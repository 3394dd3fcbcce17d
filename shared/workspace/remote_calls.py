"""How the Azure ML adapters (SDK v1 and v2) wait for a run and delete many model versions: the same
rules on both, written once (the port is shared/workspace/base.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from shared.errors import ManyModelsError, OperationTimeout
from shared.workspace.base import Run

log = logging.getLogger(__name__)

POLL_SECONDS = 15.0  # longest pause between two polls of a run; the first is short
FIRST_PAUSE = 0.25
DELETE_WORKERS = 8


def wait_until_final(get_run: Callable[[str], Run], run_id: str, *, timeout: float,
                     clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep) -> Run:
    """Poll ``get_run`` with pauses doubling up to :data:`POLL_SECONDS` until the run is final.

    Raises OperationTimeout after ``timeout`` seconds of ``clock``; the run goes on in Azure ML.
    """
    deadline = clock() + timeout
    pause = FIRST_PAUSE
    while True:
        run = get_run(run_id)
        if run.status.is_final:
            return run
        if clock() >= deadline:
            raise OperationTimeout(f"run {run_id} is still {run.status} after {timeout:g} s; "
                                   "it goes on in Azure ML: check it later with `manymodels status`")
        sleep(min(pause, max(0.0, deadline - clock())))
        pause = min(pause * 2, POLL_SECONDS)


def remove_each(versions: Iterable[tuple[str, int]],
                remove: Callable[[str, int], bool], *, verb: str) -> list[tuple[str, int]]:
    """Call ``remove(name, version)`` for every distinct version, in parallel; returns those removed.

    ``remove`` returns False for a version already gone (skipped). One the service refuses (a
    ManyModelsError) is logged and kept; only when every one is refused is the first refusal raised,
    so retention goes on past a model still in use.
    """
    wanted = sorted({(str(n), int(v)) for n, v in versions})

    def one(ref: tuple[str, int]) -> tuple[str, int] | ManyModelsError | None:
        try:
            return ref if remove(*ref) else None
        except ManyModelsError as e:
            return e

    with ThreadPoolExecutor(max_workers=DELETE_WORKERS) as pool:
        results = list(pool.map(one, wanted))
    removed = [r for r in results if isinstance(r, tuple)]
    errors = [r for r in results if isinstance(r, ManyModelsError)]
    for error in errors[:10]:
        log.warning("model version kept: %s", error.message)
    if errors and not removed:
        raise type(errors[0])(f"{len(errors)} model version(s) could not be {verb}; first: "
                              f"{errors[0].message}") from errors[0]
    return removed
