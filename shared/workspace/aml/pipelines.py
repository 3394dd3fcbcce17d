"""Published pipelines: build (shared/workspace/aml/pipeline_graph.py), publish, disable older ones, submit."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azureml.core import Experiment
from azureml.core import Workspace as SdkWorkspace
from azureml.pipeline.core import PublishedPipeline as SdkPublishedPipeline

from shared.errors import NotFound
from shared.settings import Settings
from shared.workspace.aml.datasets import AmlDatasetStore
from shared.workspace.aml.pipeline_graph import (
    DATASET_PARAMETER,
    DATASET_VERSION_PARAMETER,
    BuildOptions,
    build_pipeline,
)
from shared.workspace.aml.runs import TAG_DATASET, TAG_DATASET_VERSION, TAG_KIND
from shared.workspace.aml.sdk_errors import sdk_call
from shared.workspace.base import (
    DatasetVersion,
    PipelineKind,
    PipelineStore,
    PublishedPipeline,
    Run,
    RunStatus,
    TrainingMode,
)
from shared.workspace.run_parameters import run_parameters as checked_run_parameters


def _version_number(text: str | None) -> int:
    try:
        return int(str(text))
    except (TypeError, ValueError):
        return 0


def _description(kind: PipelineKind, description: str) -> str:
    """A published pipeline's description starts with its kind (Azure ML keeps no kind): see :func:`_kind_of`."""
    return f"manymodels {kind} pipeline" + (f": {description}" if description else "")


def _kind_of(published: SdkPublishedPipeline, settings: Settings) -> PipelineKind:
    description = (published.description or "").lower()
    for kind in PipelineKind:
        if description.startswith(f"manymodels {kind} pipeline"):
            return kind
    # published before descriptions started with the kind
    if published.name == settings.forecasting_pipeline_name or PipelineKind.FORECASTING in description:
        return PipelineKind.FORECASTING
    return PipelineKind.TRAINING


class AmlPipelineStore(PipelineStore):
    def __init__(self, ws: SdkWorkspace, *, settings: Settings, datasets: AmlDatasetStore,
                 workflow_provider: Any = None) -> None:
        self._ws = ws
        self._settings = settings
        self._datasets = datasets  # turns a dataset version into what a submission consumes
        self._workflow_provider = workflow_provider  # tests pass a mock of the SDK's service client

    def publish(
        self,
        name: str,
        kind: PipelineKind,
        *,
        parameters: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> PublishedPipeline:
        kind = PipelineKind(kind)
        options = BuildOptions.from_settings(self._settings, **dict(parameters or {}))
        older = self._published(name)
        version = max((_version_number(p.version) for p in older), default=0) + 1
        with tempfile.TemporaryDirectory(prefix="manymodels-publish-") as staging:
            pipeline = build_pipeline(self._ws, kind, options, staging_dir=Path(staging),
                                      workflow_provider=self._workflow_provider)
            with sdk_call(f"publish pipeline {name!r}"):
                published = pipeline.publish(name=name, description=_description(kind, description),
                                             version=str(version), continue_on_step_failure=False)
        # disable the older ones only once the new one exists: a submit never finds none
        for old in older:
            with sdk_call(f"disable published pipeline {old.name!r} {old.id}"):
                old.disable()
        return self._record(published, kind=kind)

    def get(self, name: str) -> PublishedPipeline:
        published = self._latest(name)
        return self._record(published, kind=_kind_of(published, self._settings))

    def submit(
        self,
        name: str,
        dataset: DatasetVersion,
        *,
        parameters: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Run:
        settings = self._settings
        published = self._latest(name)
        kind = _kind_of(published, settings)
        params = checked_run_parameters(kind, parameters or {}, base={}, default_mode=settings.training_mode,
                                        allowed=("mode",), backend="Azure ML")
        mode = params.get("mode", "")
        only_changed = kind == PipelineKind.TRAINING and mode == TrainingMode.CHANGED
        files = self._datasets.submission(dataset, only_changed=only_changed)
        pipeline_parameters: dict[str, Any] = {DATASET_PARAMETER: files}
        if kind == PipelineKind.TRAINING:
            pipeline_parameters[DATASET_VERSION_PARAMETER] = str(dataset.version)
        run_tags = {**(tags or {}), TAG_KIND: str(kind), TAG_DATASET: dataset.name,
                    TAG_DATASET_VERSION: str(dataset.version),
                    **{f"param_{k}": str(v) for k, v in params.items()}}
        with sdk_call(f"submit pipeline {name!r} on dataset {dataset.name!r} version {dataset.version}"):
            pipeline_run = Experiment(self._ws, name).submit(published, tags=run_tags,
                                                             pipeline_parameters=pipeline_parameters)
        return Run(run_id=pipeline_run.id, pipeline=name, kind=kind, experiment=name, status=RunStatus.QUEUED,
                   dataset_name=dataset.name, dataset_version=dataset.version,
                   parameters=params, tags=run_tags,
                   submitted=datetime.now(UTC).isoformat())

    # ------------------------------------------------------------------ internals

    def _published(self, name: str) -> list[SdkPublishedPipeline]:
        with sdk_call("list published pipelines"):
            return [p for p in SdkPublishedPipeline.list(self._ws, active_only=True) if p.name == name]

    def _latest(self, name: str) -> SdkPublishedPipeline:
        published = self._published(name)
        if not published:
            raise NotFound(f"no enabled published pipeline is called {name!r}: publish it with "
                           "`python -m pipelines.aml.publish --kind training|forecasting` (the bootstrap does)")
        return max(published, key=lambda p: _version_number(p.version))

    @staticmethod
    def _record(published: SdkPublishedPipeline, *, kind: PipelineKind) -> PublishedPipeline:
        return PublishedPipeline(
            name=published.name, kind=kind, pipeline_id=published.id,
            version=_version_number(published.version), created=datetime.now(UTC).isoformat(),
            enabled=str(getattr(published, "status", "Active")) == "Active",
        )
