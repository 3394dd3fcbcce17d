"""In-memory stand-ins for workspace stores, used by the flow tests (tests/integration/test_flows_*.py).

They run through the workspace contract suite (tests/unit/workspace_contract/, backend
"local+fakes"), so a fake answers what every real backend answers and cannot drift from the port
in shared/workspace/base.py:

- :class:`FakeServices` records scoring services instead of starting them (the flow tests are
  about events, the ledger and the rollout protocol; tests/integration/test_local_services.py
  runs real ones);
- :class:`RecordingPipelines` is the local pipeline store without its compute: ``submit`` checks
  and records the run exactly like the local backend, but starts no runner process.

:func:`install_fakes` puts them into a local workspace, the same way for the flow tests and the
contract suite.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import InvalidValue, NotFound
from shared.workspace.base import (
    DatasetVersion,
    ModelRecord,
    PipelineKind,
    Run,
    Service,
    ServiceConfig,
    ServiceKeys,
    ServiceKind,
    ServiceState,
    ServiceStore,
)
from shared.workspace.local.pipelines import LocalPipelineStore
from shared.workspace.local.runs import LocalRunStore
from shared.workspace.local.workspace import LocalWorkspace

Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class FakeServices(ServiceStore):
    """In-memory :class:`ServiceStore` that counts what it was asked to do (``calls``).

    Answers like the real stores: services listed by name, ``get``/``update``/``get_keys`` of an
    unknown service raise NotFound, ``delete`` is idempotent, ``updated`` moves on every deploy
    and update (``clock`` is injectable; two changes in the same tick still get distinct times),
    a service needs at least one model, and a key only ever leaves through :meth:`get_keys`.
    """

    def __init__(self, *, clock: Clock = _utc_now) -> None:
        self.services: dict[str, Service] = {}
        self.calls: list[tuple[str, str]] = []
        self._keys: dict[str, ServiceKeys] = {}
        self._clock = clock
        self._last: dt.datetime | None = None
        self._lock = threading.Lock()

    def list(self, *, kind: ServiceKind | None = None) -> list[Service]:
        with self._lock:
            return [s for _, s in sorted(self.services.items()) if kind is None or s.kind == kind]

    def get(self, name: str) -> Service:
        with self._lock:
            if name not in self.services:
                raise NotFound(f"service {name!r} does not exist: deploy it first")
            return self.services[name]

    def _tick(self) -> str:
        now = self._clock()
        if self._last is not None and now <= self._last:
            now = self._last + dt.timedelta(microseconds=1)
        self._last = now
        return now.isoformat(timespec="microseconds").replace("+00:00", "Z")

    def _put(self, verb: str, name: str, models: Sequence[ModelRecord], config: ServiceConfig) -> Service:
        if not models:
            raise InvalidValue(f"service {name!r}: a scoring service needs at least one model")
        with self._lock:
            self.calls.append((verb, name))
            if verb == "update" and name not in self.services:
                raise NotFound(f"service {name!r} does not exist: deploy it before updating it")
            service = Service(name=name, kind=config.kind, state=ServiceState.HEALTHY,
                              scoring_uri=f"http://127.0.0.1:9/{name}/score",
                              models=tuple(f"{m.name}:{m.version}" for m in models), updated=self._tick())
            self.services[name] = service
            self._keys.setdefault(name, ServiceKeys(primary=f"key-of-{name}", secondary=f"key2-of-{name}"))
            return service

    def deploy(self, name: str, models: Sequence[ModelRecord], config: ServiceConfig, *,
               timeout: float = 600) -> Service:
        return self._put("deploy", name, models, config)

    def update(self, name: str, models: Sequence[ModelRecord], config: ServiceConfig, *,
               timeout: float = 600) -> Service:
        return self._put("update", name, models, config)

    def delete(self, name: str) -> None:
        with self._lock:
            self.calls.append(("delete", name))
            self.services.pop(name, None)
            self._keys.pop(name, None)

    def get_keys(self, name: str) -> ServiceKeys:
        with self._lock:
            if name not in self._keys:
                raise NotFound(f"service {name!r} does not exist: it has no keys")
            return self._keys[name]


@dataclass(frozen=True, slots=True)
class Submission:
    """What the app asked ``pipelines.submit`` for, next to the run it got."""

    run_id: str
    pipeline: str
    kind: PipelineKind
    dataset_name: str
    dataset_version: int
    parameters: Mapping[str, Any]  # as given (the run's own parameters add the pipeline's defaults)
    tags: Mapping[str, str]  # as given (the run's own tags add the backend's)
    run: Run


class RecordingPipelines(LocalPipelineStore):
    """The local pipeline store without compute: ``submit`` publishes the default pipelines on
    first use, checks the run parameters (shared/workspace/run_parameters.py) and records a queued
    run like the local backend, then starts no runner; each submission is kept in ``submitted``.
    For tests about what the app submits, not about training: the test moves the runs on."""

    def __init__(self, workspace: LocalWorkspace) -> None:
        runs = workspace.runs
        assert isinstance(runs, LocalRunStore), f"a local workspace's run store, not {type(runs).__name__}"
        super().__init__(workspace.db, runs=runs, events=workspace.events, settings=workspace.settings,
                         home=workspace.home)
        self.workspace = workspace
        self.submitted: list[Submission] = []

    def submit(self, name: str, dataset: DatasetVersion, *, parameters: Mapping[str, Any] | None = None,
               tags: Mapping[str, str] | None = None) -> Run:
        run = super().submit(name, dataset, parameters=parameters, tags=tags)
        self.submitted.append(Submission(run_id=run.run_id, pipeline=run.pipeline, kind=run.kind,
                                         dataset_name=run.dataset_name, dataset_version=run.dataset_version,
                                         parameters=dict(parameters or {}), tags=dict(tags or {}), run=run))
        return run

    def _start_runner(self, run: Run) -> None:
        """No compute: the run stays queued until the test moves it on."""

    def notice_dead_runner(self, run: Run) -> Run:
        """Runs recorded here have no runner process: the test moves them on."""
        return run


def install_fakes(workspace: LocalWorkspace, *, services: bool = True, pipelines: bool = True) -> LocalWorkspace:
    """``workspace`` with :class:`FakeServices` and/or :class:`RecordingPipelines` as its stores."""
    if services:
        workspace.services = FakeServices()
    if pipelines:
        workspace.pipelines = RecordingPipelines(workspace)
    return workspace

