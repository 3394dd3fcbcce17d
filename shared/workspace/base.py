"""The workspace port: everything the product asks of Azure ML, as one small interface.

Shaped like MLflow's stores: one abstract class per resource with small methods, typed frozen
records in and out, and errors from :mod:`shared.errors` only (adapters translate their own at
the edge). Two adapters implement it: ``local/`` (SQLite + files, the default) and ``aml/``
(azureml-core SDK v1). One contract test suite runs against both.

Conventions for every adapter:

- "already exists with the same content" is success (replays are normal);
- ``delete_*``/``delete`` is idempotent;
- nothing long-running blocks: ``pipelines.submit`` returns a queued :class:`Run`, and the
  adapter publishes ``RunCompleted`` / ``RunStatusChanged`` events to ``workspace.events``
  when it ends, exactly as Azure ML raises them (docs/architecture.md §2);
- no secret is stored in a model, a record or a GET answer: service keys come only from
  :meth:`ServiceStore.get_keys`.
"""

from __future__ import annotations

import abc
import builtins  # builtins.list: in a class body after `def list`, a bare `list[...]` names the method
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from shared.errors import InvalidValue
from shared.run_parameters import TrainingMode  # noqa: F401  (part of the port: run parameters)

# --------------------------------------------------------------------------- records


class PipelineKind(StrEnum):
    TRAINING = "training"
    FORECASTING = "forecasting"


class DatasetMode(StrEnum):
    FULL = "full"  # the files are the whole dataset
    PARTIAL = "partial"  # the files replace files of the same name in the previous version


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)


class ServiceKind(StrEnum):
    LOCAL = "local"
    ACI = "aci"
    MANAGED = "managed"  # a managed online endpoint (SDK v2)
    AKS = "aks"  # an AKS webservice (SDK v1) or a Kubernetes online endpoint on attached AKS (SDK v2)


class ServiceState(StrEnum):
    HEALTHY = "healthy"
    TRANSITIONING = "transitioning"
    UNHEALTHY = "unhealthy"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DatasetFile:
    """One file of a dataset version.

    ``name`` is the file's name relative to its batch folder (``Store1000_dominicks.csv``): a
    partial version replaces files by this name. ``path`` is where the bytes are, relative to the
    dataset's datastore (``train/batch-7/Store1000_dominicks.csv``).
    """

    name: str
    path: str
    etag: str
    size: int
    md5: str | None = None  # base64 Content-MD5 when known; preferred over eTag for change detection

    @property
    def fingerprint(self) -> str:
        return self.md5 or self.etag


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """An immutable, versioned list of files.

    ``datastore`` says where ``DatasetFile.path`` is resolved: ``azureblob://<container>`` for a
    blob container of the product's storage account, or ``file:///abs/dir`` for a local folder.
    ``changed`` holds the names of the files that differ from the previous version (every name
    for the first version); ``TRAINING_MODE=changed`` trains only those.
    """

    name: str
    version: int
    datastore: str
    files: tuple[DatasetFile, ...]
    changed: tuple[str, ...]
    mode: DatasetMode
    tags: Mapping[str, str]
    created: str  # ISO 8601, UTC


@dataclass(frozen=True, slots=True)
class PublishedPipeline:
    name: str
    kind: PipelineKind
    pipeline_id: str
    version: int
    created: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class SeriesFailure:
    """A file or series that did not train/forecast, and why (shown in status, never silent)."""

    file: str
    series: str
    reason: str


@dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    pipeline: str
    kind: PipelineKind
    experiment: str
    status: RunStatus
    dataset_name: str
    dataset_version: int
    parameters: Mapping[str, Any]
    tags: Mapping[str, str]
    submitted: str
    started: str | None = None
    ended: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)  # files, series, succeeded, failed, fallback, ...
    failures: tuple[SeriesFailure, ...] = ()
    outputs: Mapping[str, str] = field(default_factory=dict)  # e.g. {"predictions": "predictions/forecasts_...csv"}
    error: str | None = None


@dataclass(frozen=True, slots=True)
class NewModel:
    """A model to register: what ``train.py`` writes to its models manifest."""

    name: str
    path: str  # the artifact directory produced by the training step
    tags: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)  # metrics, as strings like AML


@dataclass(frozen=True, slots=True)
class ModelRecord:
    name: str
    version: int
    tags: Mapping[str, str]
    path: str  # where the registered artifact directory is (local path, or AML asset path)
    properties: Mapping[str, str] = field(default_factory=dict)
    created: str = ""


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """How to run a scoring service. Built from ``pipelines/configuration/*-deploy-config.yml``."""

    kind: ServiceKind
    entry_script: str  # scoring/model_webservice.py or scoring/routing_webservice.py
    cpu_cores: float = 1.0
    memory_gb: float = 1.0
    auth_enabled: bool = True
    environment: Mapping[str, str] = field(default_factory=dict)  # non-secret variables
    tags: Mapping[str, str] = field(default_factory=dict)
    instance_type: str = ""  # SDK v2 online deployments: the VM size (managed) or instance type (Kubernetes)
    instance_count: int = 1  # SDK v2 online deployments: instances behind the endpoint


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    kind: ServiceKind
    state: ServiceState
    scoring_uri: str
    models: tuple[str, ...] = ()  # "name:version" of every model it serves
    updated: str = ""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceKeys:
    primary: str
    secondary: str = ""

    def __repr__(self) -> str:  # never print a key by accident
        return "ServiceKeys(primary='***', secondary='***')"


def parse_version(what: str, version: int | str) -> int | None:
    """A version argument of ``get``: a whole number, or None for ``"latest"``.

    ``what`` names the thing in the error, e.g. ``"model 'lr_dominicks_1000'"``.
    """
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    text = str(version).strip().lower()
    if text == "latest":
        return None
    if text.isdigit():
        return int(text)
    raise InvalidValue(f"{what}: version {version!r} is not allowed: expected a whole number or 'latest'")


# --------------------------------------------------------------------------- ports


class DatasetStore(abc.ABC):
    @abc.abstractmethod
    def register(
        self,
        name: str,
        files: Sequence[DatasetFile],
        *,
        datastore: str,
        mode: DatasetMode = DatasetMode.FULL,
        tags: Mapping[str, str] | None = None,
    ) -> DatasetVersion:
        """Register a new version of dataset ``name``.

        Args:
            files: the batch's files. With ``mode=PARTIAL`` they replace files of the same
                ``name`` on top of the previous version.
            datastore: where the paths resolve (see :class:`DatasetVersion`).
        Returns:
            The new version; or the latest one when its resulting file list is identical
            (same names and fingerprints), so replays register nothing.
        Raises:
            InvalidValue: empty file list, duplicate names, a partial version with no previous.
        """

    @abc.abstractmethod
    def get(self, name: str, version: int | str = "latest") -> DatasetVersion:
        """Raises NotFound when the dataset or version does not exist."""

    @abc.abstractmethod
    def list(self, name: str | None = None) -> list[DatasetVersion]:
        """Every version (of one dataset, or of all), oldest first."""


class PipelineStore(abc.ABC):
    @abc.abstractmethod
    def publish(
        self,
        name: str,
        kind: PipelineKind,
        *,
        parameters: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> PublishedPipeline:
        """Publish a pipeline; older published pipelines of the same name are disabled."""

    @abc.abstractmethod
    def get(self, name: str) -> PublishedPipeline:
        """The enabled published pipeline called ``name``. Raises NotFound."""

    @abc.abstractmethod
    def submit(
        self,
        name: str,
        dataset: DatasetVersion,
        *,
        parameters: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Run:
        """Start a run of the published pipeline on ``dataset``; returns at once (status queued)."""


class RunStore(abc.ABC):
    @abc.abstractmethod
    def get(self, run_id: str) -> Run:
        """Raises NotFound."""

    @abc.abstractmethod
    def list(self, *, status: RunStatus | None = None, kind: PipelineKind | None = None) -> list[Run]:
        """Runs, newest first."""

    @abc.abstractmethod
    def wait(self, run_id: str, *, timeout: float) -> Run:
        """Block until the run is final. Raises OperationTimeout."""

    def fail_lost(self) -> builtins.list[Run]:
        """Fail the unfinished runs whose executor is gone and publish their end (``RunStatusChanged``
        Failed), as Azure ML does for a lost node; returns them. ``get`` and ``list`` never do it (a
        read never writes): the reconcile flow calls this (shared/flows/runs.py). Azure ML fails such
        runs itself, so by default there is nothing to do."""
        return []

    supports_delete: bool = False  # whether :meth:`delete_runs` removes anything on this backend

    def delete_runs(self, run_ids: Sequence[str]) -> builtins.list[str]:
        """Delete finished runs with their files (retention, shared/flows/retention.py); returns the
        ids deleted. A run that is not final, or no longer exists, is skipped (idempotent).

        Backends that keep run history themselves (Azure ML) do not delete: they raise InvalidValue.
        """
        raise InvalidValue(f"{type(self).__name__} does not delete runs: the backend keeps run history itself")


class ModelRegistry(abc.ABC):
    @abc.abstractmethod
    def register_many(self, models: Iterable[NewModel]) -> list[ModelRecord]:
        """Register every model in one call; each gets the next version of its name."""

    @abc.abstractmethod
    def list(
        self,
        *,
        latest: bool = True,
        tags: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> list[ModelRecord]:
        """Models (only the highest version of each name when ``latest``) whose tags include
        every ``tags`` item, sorted by name then version.

        The highest version is the last registered, not always the newest data's: choosing what
        to serve goes through shared/workspace/newest.py."""

    @abc.abstractmethod
    def get(self, name: str, version: int | str = "latest") -> ModelRecord:
        """Raises NotFound."""

    @abc.abstractmethod
    def download(self, record: ModelRecord, target_dir: str) -> str:
        """Copy the model's artifact directory to ``target_dir``; returns the local path."""

    supports_delete: bool = False  # whether :meth:`delete_versions` removes anything on this backend

    def delete_versions(self, versions: Sequence[tuple[str, int]]) -> builtins.list[tuple[str, int]]:

        """Delete model versions (record and artifacts); returns the (name, version) pairs deleted.
        A version that does not exist is skipped (idempotent); the local registry also skips a
        name's latest version (it numbers from the highest). Callers decide what may go
        (shared/flows/retention.py never passes a deployed, planned or latest version).

        Raises InvalidValue on a backend that cannot delete models.
        """
        raise InvalidValue(f"{type(self).__name__} does not delete model versions")


class ServiceStore(abc.ABC):
    @abc.abstractmethod
    def list(self, *, kind: ServiceKind | None = None) -> list[Service]: ...

    @abc.abstractmethod
    def get(self, name: str) -> Service:
        """Raises NotFound."""

    @abc.abstractmethod
    def deploy(self, name: str, models: Sequence[ModelRecord], config: ServiceConfig, *,
               timeout: float = 600) -> Service:
        """Create the service (or replace it when it exists); returns once it is healthy."""

    @abc.abstractmethod
    def update(self, name: str, models: Sequence[ModelRecord], config: ServiceConfig, *,
               timeout: float = 600) -> Service:
        """Serve ``models`` from an existing service without a gap in answering."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Idempotent."""

    @abc.abstractmethod
    def get_keys(self, name: str) -> ServiceKeys:
        """The service's auth keys: only ever passed to the router's environment."""


class EventSink(Protocol):
    """Where a workspace publishes its events (Event Grid schema dicts, docs/architecture.md §2)."""

    def publish(self, events: Sequence[Mapping[str, Any]]) -> None: ...


class Workspace(abc.ABC):
    """A backend: the five stores and the event sink."""

    datasets: DatasetStore
    pipelines: PipelineStore
    runs: RunStore
    models: ModelRegistry
    services: ServiceStore
    events: EventSink

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Shown in status: ``local:/path/.manymodels`` or ``aml:<workspace>``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and background resources."""
