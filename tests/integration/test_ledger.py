"""The ledger on a real Azurite: conditional writes let exactly one of many concurrent callers act."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from shared.errors import Conflict
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
    ledger.batches.record_file("train", "b1", BatchFile("a.csv", "train/b1/a.csv", "0x1", 10))
    claims = race(lambda i: ledger.batches.claim("train", "b1", token=f"t{i}", manifest=True, stale_after=300))
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1 and winners[0].state == BatchState.CLOSING
    # Blobs landing while it closes do not reopen it, and a stale claim can be taken over.
    assert ledger.batches.record_file("train", "b1", BatchFile("b.csv", "train/b1/b.csv", "0x2", 5)).state == "closing"
    assert ledger.batches.claim("train", "b1", token="late", manifest=False, stale_after=300) is None
    taken = ledger.batches.claim("train", "b1", token="rescuer", manifest=False, stale_after=0)
    assert taken is not None and taken.token == "rescuer"


def test_concurrent_blobs_are_all_recorded(ledger: Ledger) -> None:
    race(lambda i: ledger.batches.record_file("inference", "b2", BatchFile(f"f{i}.csv", f"inference/b2/f{i}.csv",
                                                                            f"0x{i}", i)))
    files = ledger.batches.files("inference", "b2")
    assert sorted(f.name for f in files) == sorted(f"f{i}.csv" for i in range(THREADS))
    assert ledger.batches.get("inference", "b2").state == BatchState.OPEN


def test_one_delivery_completes_a_run(ledger: Ledger) -> None:
    entry = RunEntry("run-1", "training", RunState.SUBMITTED, submitted=utcnow())
    ledger.runs.record(entry)
    outcomes = race(lambda i: ledger.runs.finish(entry, state=RunState.COMPLETED)[1])
    assert outcomes.count(True) == 1
    assert ledger.runs.get("run-1").state == RunState.COMPLETED


def test_plan_finish_has_one_winner(ledger: Ledger) -> None:
    models = tuple((f"lr_store_{i:05d}_with_a_long_brand_name", i) for i in range(1000))  # > one 64 KB property
    tasks = [GroupTask("p1", "modelgroup-1", "svc-1", "new", models, TaskState.PENDING),
             GroupTask("p1", "modelgroup-2", "svc-2", "unchanged", (), TaskState.SKIPPED)]
    assert ledger.plans.create(Plan("p1", "local", PlanState.EXECUTING, created=utcnow(), groups=2, to_execute=1),
                               tasks)
    assert not ledger.plans.create(Plan("p1", "local", PlanState.EXECUTING, created=utcnow()), tasks)
    assert ledger.plans.get_task("p1", "modelgroup-1").models == models

    won = race(lambda i: ledger.plans.update("p1", expect=[PlanState.EXECUTING], state=PlanState.FINISHING)[1])
    assert won.count(True) == 1


def test_targets_run_one_plan_and_queue_the_next(ledger: Ledger) -> None:
    assert ledger.targets.claim("local", "plan-a", stale_after=3600)
    assert not ledger.targets.claim("local", "plan-b", stale_after=3600)
    ledger.targets.queue_request("local", {"plan_id": "plan-b", "run_id": "r2"})
    ledger.targets.queue_request("local", {"plan_id": "plan-c", "run_id": "r3", "reset": True})
    queued = ledger.targets.release("local", "plan-a")
    assert queued["plan_id"] == "plan-c" and queued["reset"] is True
    assert ledger.targets.get("local").active_plan == "" and ledger.targets.get("local").queued is None


def test_newer_run_supersedes_older(ledger: Ledger) -> None:
    assert ledger.targets.supersedes("local", run_id="new", submitted="2026-11-27T10:00:00Z")
    assert ledger.targets.supersedes("local", run_id="new", submitted="2026-11-27T10:00:00Z")  # a replay
    assert not ledger.targets.supersedes("local", run_id="old", submitted="2026-11-27T09:00:00Z")
    assert ledger.targets.get("local").last_run_id == "new"


def test_a_closer_moves_its_batch_through_typed_transitions(ledger: Ledger) -> None:
    ledger.batches.record_file("train", "b3", BatchFile("a.csv", "train/b3/a.csv", "0x1", 10))
    assert ledger.batches.claim("train", "b3", token="mine", manifest=False, stale_after=300) is not None
    assert ledger.batches.reopen("train", "b3", token="mine").state == BatchState.OPEN  # manifest not there yet
    assert ledger.batches.claim("train", "b3", token="mine", manifest=True, stale_after=300) is not None
    batch = ledger.batches.record_dataset("train", "b3", token="mine", dataset_name="train", dataset_version=3,
                                          file_count=1, problems=["x.txt: not a data file"])
    assert (batch.state, batch.dataset_version, batch.problems) == (BatchState.CLOSING, 3, ("x.txt: not a data file",))
    with pytest.raises(Conflict, match="another instance"):  # a closer taken over may not finish it
        ledger.batches.close("train", "b3", token="theirs", run_id="run-x")
    closed = ledger.batches.close("train", "b3", token="mine", run_id="run-3")
    assert (closed.state, closed.run_id, closed.manifest) == (BatchState.CLOSED, "run-3", True) and closed.closed
    assert ledger.batches.get("train", "b3") == closed


def test_a_task_transition_applies_once_and_keeps_unnamed_fields(ledger: Ledger) -> None:
    task = GroupTask("p2", "modelgroup-1", "svc-1", "new", (("lr_a_1", 1),), TaskState.PENDING)
    assert ledger.plans.create(Plan("p2", "local", PlanState.EXECUTING, created=utcnow(), groups=1), [task])
    noted, _ = ledger.plans.update_task("p2", "modelgroup-1", attempts=1, error="busy")
    assert noted is not None and (noted.state, noted.attempts, noted.error) == (TaskState.PENDING, 1, "busy")
    won = race(lambda i: ledger.plans.update_task("p2", "modelgroup-1", expect=[TaskState.PENDING],
                                                  state=TaskState.DONE, error="", attempts=2)[1])
    assert won.count(True) == 1
    done = ledger.plans.get_task("p2", "modelgroup-1")
    assert done is not None and (done.state, done.attempts, done.error, done.models) == (
        TaskState.DONE, 2, "", (("lr_a_1", 1),))


def test_keys_with_forbidden_characters() -> None:
    assert encode_key("train/batch#1?x\\y%") == "train%2Fbatch%231%3Fx%5Cy%25"
