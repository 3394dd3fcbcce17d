"""The ledger on a real Azurite: conditional writes let exactly one of many concurrent callers act."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from shared.flows.context import Context
from shared.ledger import (
    BatchFile,
    BatchState,
    GroupTask,
    Ledger,
    Plan,
    PlanState,
    RunEntry,
    RunState,
    TaskState,
    encode_key,
    utcnow,
)
from shared.settings import Settings

pytestmark = pytest.mark.integration
THREADS = 8


@pytest.fixture
def ledger(storage_settings: Settings) -> Ledger:
    return Context(storage_settings).ledger


def race(work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` on THREADS threads released at the same moment."""
    start = threading.Barrier(THREADS)
    results: list[Any] = [None] * THREADS
    errors: list[BaseException] = []

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = work(i)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def test_one_closer_wins_a_batch(ledger: Ledger) -> None:
    ledger.record_file("train", "b1", BatchFile("a.csv", "train/b1/a.csv", "0x1", 10))
    claims = race(lambda i: ledger.claim_batch("train", "b1", token=f"t{i}", manifest=True, stale_after=300))
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1 and winners[0].state == BatchState.CLOSING
    # Blobs landing while it closes do not reopen it, and a stale claim can be taken over.
    assert ledger.record_file("train", "b1", BatchFile("b.csv", "train/b1/b.csv", "0x2", 5)).state == "closing"
    assert ledger.claim_batch("train", "b1", token="late", manifest=False, stale_after=300) is None
    taken = ledger.claim_batch("train", "b1", token="rescuer", manifest=False, stale_after=0)
    assert taken is not None and taken.token == "rescuer"


def test_concurrent_blobs_are_all_recorded(ledger: Ledger) -> None:
    race(lambda i: ledger.record_file("inference", "b2", BatchFile(f"f{i}.csv", f"inference/b2/f{i}.csv",
                                                                    f"0x{i}", i)))
    files = ledger.batch_files("inference", "b2")
    assert sorted(f.name for f in files) == sorted(f"f{i}.csv" for i in range(THREADS))
    assert ledger.get_batch("inference", "b2").state == BatchState.OPEN


def test_one_delivery_completes_a_run(ledger: Ledger) -> None:
    entry = RunEntry("run-1", "training", RunState.SUBMITTED, submitted=utcnow())
    ledger.record_run(entry)
    outcomes = race(lambda i: ledger.finish_run(entry, state=RunState.COMPLETED)[1])
    assert outcomes.count(True) == 1
    assert ledger.get_run("run-1").state == RunState.COMPLETED


def test_plan_finish_has_one_winner(ledger: Ledger) -> None:
    models = tuple((f"lr_store_{i:05d}_with_a_long_brand_name", i) for i in range(1000))  # > one 64 KB property
    tasks = [GroupTask("p1", "modelgroup-1", "svc-1", "new", models, TaskState.PENDING),
             GroupTask("p1", "modelgroup-2", "svc-2", "unchanged", (), TaskState.SKIPPED)]
    assert ledger.create_plan(Plan("p1", "local", PlanState.EXECUTING, created=utcnow(), groups=2, to_execute=1),
                              tasks)
    assert not ledger.create_plan(Plan("p1", "local", PlanState.EXECUTING, created=utcnow()), tasks)
    assert ledger.get_task("p1", "modelgroup-1").models == models

    won = race(lambda i: ledger.update_plan("p1", expect=[PlanState.EXECUTING], state=PlanState.FINISHING)[1])
    assert won.count(True) == 1


def test_targets_run_one_plan_and_queue_the_next(ledger: Ledger) -> None:
    assert ledger.claim_target("local", "plan-a", stale_after=3600)
    assert not ledger.claim_target("local", "plan-b", stale_after=3600)
    ledger.queue_request("local", {"plan_id": "plan-b", "run_id": "r2"})
    ledger.queue_request("local", {"plan_id": "plan-c", "run_id": "r3", "reset": True})
    queued = ledger.release_target("local", "plan-a")
    assert queued["plan_id"] == "plan-c" and queued["reset"] is True
    assert ledger.get_target("local").active_plan == "" and ledger.get_target("local").queued is None


def test_newer_run_supersedes_older(ledger: Ledger) -> None:
    assert ledger.supersedes("local", run_id="new", submitted="2026-11-27T10:00:00Z")
    assert ledger.supersedes("local", run_id="new", submitted="2026-11-27T10:00:00Z")  # a replay
    assert not ledger.supersedes("local", run_id="old", submitted="2026-11-27T09:00:00Z")
    assert ledger.get_target("local").last_run_id == "new"


def test_keys_with_forbidden_characters() -> None:
    assert encode_key("train/batch#1?x\\y%") == "train%2Fbatch%231%3Fx%5Cy%25"
