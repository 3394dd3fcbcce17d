"""Follow the event chain from outside, through the host's HTTP API only (``GET /api/status``).

Used by ``manymodels demo``, the e2e tests and the benchmarks: each stage of a batch's journey
(batch closed -> dataset version -> run -> models registered -> plan -> groups deployed ->
router ready; or, for inference, -> forecasting run -> predictions) is a condition on the status
document, waited for with a deadline. When a stage fails (a failed run, a failed plan) the error
says why, with the status' own reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from shared.devhost import keys as host_keys
from shared.devhost import process
from shared.errors import NotFound, OperationTimeout, Unavailable

Progress = Callable[[str], None]


class HostClient:
    """The local host's HTTP API with its function key."""

    def __init__(self, url: str, key: str, *, timeout: float = 60.0, home: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self._key = key
        self.timeout = timeout
        self.home = home
        self._session = requests.Session()

    @classmethod
    def for_home(cls, home: Path) -> HostClient:
        state = process.running(home)
        if state is None:
            raise NotFound(f"no host runs for {home}: start it with `manymodels up --detach`")
        return cls(state.url, host_keys.load_or_create(home).function, home=home)

    def call(self, method: str, route: str, *, body: Any = None) -> Any:
        if self.home is not None:  # a restarted host may listen on another port: follow its pid file
            state = process.running(self.home)
            if state is not None:
                self.url = state.url
        try:
            answer = self._session.request(method, f"{self.url}/api/{route}", json=body, timeout=self.timeout,
                                           headers={"x-functions-key": self._key})
        except requests.RequestException as e:
            raise Unavailable(f"the host at {self.url} does not answer ({e}); is it running? `manymodels up`") from e
        if answer.status_code >= 400:
            raise Unavailable(f"{method} /api/{route} answered {answer.status_code}: {answer.text[:500]}")
        return answer.json() if answer.content else None

    def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.call("GET", "status")  # the status function answers a JSON object
        return answer


@dataclass
class StageClock:
    """Seconds per stage, measured from the previous stage's end."""

    started: float = field(default_factory=time.perf_counter)
    stages: dict[str, float] = field(default_factory=dict)
    _last: float = field(default_factory=time.perf_counter)

    def mark(self, name: str) -> float:
        now = time.perf_counter()
        self.stages[name] = round(now - self._last, 2)
        self._last = now
        return self.stages[name]

    def restart(self) -> None:
        self._last = time.perf_counter()


@dataclass(frozen=True, slots=True)
class TrainingOutcome:
    batch: dict[str, Any]
    run: dict[str, Any]
    plan: dict[str, Any]
    models: int
    router: str


@dataclass(frozen=True, slots=True)
class InferenceOutcome:
    batch: dict[str, Any]
    run: dict[str, Any]
    predictions: str


class ChainWatcher:
    def __init__(self, client: HostClient, *, poll: float = 1.0, timeout: float = 1800.0,
                 progress: Progress | None = None, clock: StageClock | None = None) -> None:
        self.client = client
        self.poll = poll
        self.timeout = timeout
        self.progress = progress or (lambda _: None)
        self.clock = clock or StageClock()
        self.last_status: dict[str, Any] = {}

    # ------------------------------------------------------------------ generic waiting

    def wait(self, what: str, check: Callable[[dict[str, Any]], Any], *, timeout: float | None = None,
             describe: Callable[[dict[str, Any]], str] | None = None) -> Any:
        """Poll status until ``check(status)`` is truthy (its value is returned); ``check`` raises to fail."""
        deadline = time.monotonic() + (timeout or self.timeout)
        shown = ""
        while True:
            try:
                status = self.client.status()
            except Unavailable as e:  # the host may be restarting: keep polling until the deadline
                status, note = {}, f"host not answering ({e.message[:80]})"
            else:
                note = describe(status) if describe else ""
                self.last_status = status
                value = check(status)
                if value:
                    self.progress(f"{what}: done in {self.clock.mark(what):.1f}s")
                    return value
            if note and note != shown:
                self.progress(f"{what}: {note}")
                shown = note
            if time.monotonic() > deadline:
                raise OperationTimeout(f"waited {timeout or self.timeout:.0f}s for '{what}' ({note or 'no change'})")
            time.sleep(self.poll)

    # ------------------------------------------------------------------ training chain

    def follow_training(self, batch_id: str, *, expected_models: int | None = None) -> TrainingOutcome:
        batch = self.wait("batch closed", lambda s: _closed_batch(s, "train", batch_id),
                          describe=lambda s: _batch_note(s, "train", batch_id))
        self.wait("dataset version", lambda s: batch.get("dataset_version") is not None and batch)
        run_id = batch.get("run_id") or self.wait("run submitted", lambda s: _batch_field(s, "train", batch_id,
                                                                                          "run_id"))
        run = self.wait("training run", lambda s: _finished_run(s, run_id), describe=lambda s: _run_note(s, run_id))
        want = expected_models if expected_models is not None else _good_series(run)
        models = self.wait("models registered", lambda s: _model_count(s) >= want and _model_count(s),
                           describe=lambda s: f"{_model_count(s)} of {want}")
        plan = self.wait("plan", lambda s: _plan_for(s, run_id))
        plan = self.wait("groups deployed", lambda s: _done_plan(s, plan["plan_id"]),
                         describe=lambda s: _plan_note(s, plan["plan_id"]))
        router = self.wait("router ready", lambda s: _router(s))
        return TrainingOutcome(batch=batch, run=run, plan=plan, models=models, router=router)

    def follow_inference(self, batch_id: str) -> InferenceOutcome:
        batch = self.wait("inference batch closed", lambda s: _closed_batch(s, "inference", batch_id),
                          describe=lambda s: _batch_note(s, "inference", batch_id))
        run_id = batch.get("run_id") or self.wait("forecasting run submitted",
                                                  lambda s: _batch_field(s, "inference", batch_id, "run_id"))
        run = self.wait("forecasting run", lambda s: _finished_run(s, run_id), describe=lambda s: _run_note(s, run_id))
        predictions = run.get("predictions") or ""
        if not predictions:
            raise Unavailable(f"forecasting run {run_id} completed without a predictions output: {run}")
        return InferenceOutcome(batch=batch, run=run, predictions=predictions)


# --------------------------------------------------------------------------- status readers


def _section(status: dict[str, Any], name: str, default: Any) -> Any:
    value = status.get(name, default)
    return default if isinstance(value, dict) and "error" in value and isinstance(default, list) else value


def _batch(status: dict[str, Any], kind: str, batch_id: str) -> dict[str, Any] | None:
    for row in _section(status, "batches", []) or []:
        if isinstance(row, dict) and row.get("kind") == kind and row.get("batch") == batch_id:
            return row
    return None


def _batch_field(status: dict[str, Any], kind: str, batch_id: str, name: str) -> Any:
    row = _batch(status, kind, batch_id)
    return row.get(name) if row else None


def _closed_batch(status: dict[str, Any], kind: str, batch_id: str) -> dict[str, Any] | None:
    row = _batch(status, kind, batch_id)
    if row and row.get("state") == "failed":
        raise Unavailable(f"batch {kind}/{batch_id} failed: {row.get('reason') or row.get('problems')}")
    return row if row and row.get("state") == "closed" else None


def _batch_note(status: dict[str, Any], kind: str, batch_id: str) -> str:
    row = _batch(status, kind, batch_id)
    return f"{row.get('state')}, {row.get('file_count', 0)} file(s)" if row else "waiting for the first blob event"


def _run(status: dict[str, Any], run_id: str) -> dict[str, Any] | None:
    runs = status.get("runs") or {}
    for row in runs.get("recent", []) if isinstance(runs, dict) else []:
        if row.get("run_id") == run_id:
            found: dict[str, Any] = row  # the status page's run rows are JSON objects
            return found
    return None


def _finished_run(status: dict[str, Any], run_id: str) -> dict[str, Any] | None:
    row = _run(status, run_id)
    if row and row.get("status") in ("failed", "canceled"):
        raise Unavailable(f"run {run_id} {row['status']}: {row.get('error')}")
    return row if row and row.get("status") == "completed" else None


def _run_note(status: dict[str, Any], run_id: str) -> str:
    row = _run(status, run_id)
    if not row:
        return "submitted"
    counts = row.get("counts") or {}
    done = ", ".join(f"{k} {v}" for k, v in counts.items())
    return f"{row.get('status')}" + (f" ({done})" if done else "")


def _good_series(run: dict[str, Any]) -> int:
    counts = run.get("counts") or {}
    for key in ("registered", "models"):
        if key in counts:
            return int(counts[key])
    return int(counts.get("succeeded", 0)) + int(counts.get("fallback", 0))


def _model_count(status: dict[str, Any]) -> int:
    models = status.get("models") or {}
    return int(models.get("count", 0)) if isinstance(models, dict) else 0


def _plans(status: dict[str, Any]) -> list[dict[str, Any]]:
    deployments = status.get("deployments") or {}
    return list(deployments.get("plans", [])) if isinstance(deployments, dict) else []


def _plan_for(status: dict[str, Any], run_id: str) -> dict[str, Any] | None:
    return next((p for p in _plans(status) if p.get("run_id") == run_id), None)


def _done_plan(status: dict[str, Any], plan_id: str) -> dict[str, Any] | None:
    plan = next((p for p in _plans(status) if p.get("plan_id") == plan_id), None)
    if plan and plan.get("state") == "failed":
        raise Unavailable(f"deployment plan {plan_id} failed: {plan.get('reason')}; "
                          f"failed groups: {plan.get('failed_groups')}")
    return plan if plan and plan.get("state") == "done" else None


def _plan_note(status: dict[str, Any], plan_id: str) -> str:
    plan = next((p for p in _plans(status) if p.get("plan_id") == plan_id), None)
    if not plan:
        return "waiting"
    tasks = plan.get("tasks") or {}
    return f"{plan.get('state')}: " + ", ".join(f"{k} {v}" for k, v in sorted(tasks.items()))


def _router(status: dict[str, Any]) -> str | None:
    routers = status.get("routers") or {}
    return routers.get("local") if isinstance(routers, dict) else None
