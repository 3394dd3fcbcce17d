"""The local workspace: Azure ML's stand-in on one machine (SQLite + files under MANYMODELS_HOME).

Layout of ``home``::

    workspace.db            datasets, pipelines, runs, models, services (db.py)
    models/<name>/<v>/      registered model artifacts (the registered-model layout)
    runs/<run_id>/          pipeline run folders (the runner)
    eventgrid/outbox/       events waiting for the local Event Grid (outbox.py)
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from shared.settings import Settings
from shared.workspace.base import EventSink, Workspace
from shared.workspace.local.datasets import LocalDatasetStore
from shared.workspace.local.db import connect
from shared.workspace.local.models import LocalModelRegistry
from shared.workspace.local.runs import LocalRunStore
from shared.workspace.local.services import LocalServiceStore
from shared.workspace.outbox import FolderEventSink, outbox_dir

if TYPE_CHECKING:
    from shared.storage.account import StorageAccount
    from shared.workspace.local.pipelines import LocalPipelineStore

EVENTS_TOPIC = "workspace"  # outbox folder of workspace (Azure ML) events


class LocalWorkspace(Workspace):
    # the local stores (the runner calls their local-only methods, e.g. register_many(move=True))
    datasets: LocalDatasetStore
    runs: LocalRunStore
    models: LocalModelRegistry
    services: LocalServiceStore

    def __init__(self, settings: Settings, *, events: EventSink | None = None) -> None:
        self.settings = settings
        self.home = Path(settings.home).expanduser().resolve()
        self.db = connect(self.home)
        self.datasets = LocalDatasetStore(self.db)
        self._runs = LocalRunStore(self.db, notice_dead_runner=lambda run: self.pipelines.notice_dead_runner(run))
        self.runs = self._runs
        self.models = LocalModelRegistry(self.db, self.models_dir)
        self.events = events if events is not None else FolderEventSink(outbox_dir(self.home, EVENTS_TOPIC))
        self.services = LocalServiceStore(self.db, home=self.home)

    @property
    def name(self) -> str:
        return f"local:{self.home}"

    @property
    def models_dir(self) -> Path:
        """Registered models in the layout scoring reads: ``<models_dir>/<name>/<version>/``."""
        return self.home / "models"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @functools.cached_property
    def storage(self) -> StorageAccount:
        """The product's storage account, imported on first use: the Azure storage SDK takes ~0.6 s to
        import and most runner processes never need it."""
        from shared.storage.account import StorageAccount

        return StorageAccount(self.settings.storage_connection)

    @functools.cached_property
    def pipelines(self) -> LocalPipelineStore:  # type: ignore[override]
        # imported on first use: it pulls pandas (the schema check of run parameters), which the
        # runner's own workspace (register models, publish the run's end) never needs
        from shared.workspace.local.pipelines import LocalPipelineStore

        return LocalPipelineStore(self.db, runs=self._runs, events=self.events, settings=self.settings,
                                  home=self.home)

    def close(self) -> None:
        for store in ("pipelines", "services"):
            closer = getattr(self.__dict__.get(store), "close", None)
            if callable(closer):
                closer()
        self.db.close()

    def __repr__(self) -> str:
        return f"LocalWorkspace({self.home})"
