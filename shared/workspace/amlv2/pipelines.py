"""Published pipelines on SDK v2: versioned pipeline components, and pipeline jobs submitted from them.

- ``publish``: build the graph (shared/workspace/amlv2/pipeline_graph.py), name its steps ``<pipeline>_<step>`` and
  register the pipeline component at the next version (``client.components.create_or_update``; the SDK
  registers the step components with it). Nothing is disabled: a component version is immutable and
  ``get``/``submit`` read the latest one, so an older version simply stops being used.
- ``get``: the latest version (``client.components.list(name)``, highest version number).
- ``submit``: a ``PipelineJob`` running that component on the dataset version's job inputs
  (shared/workspace/amlv2/datasets.py ``job_inputs``), created with ``client.jobs.create_or_update``
  under the experiment named after the pipeline, with the tags the run store reads (same names and
  values as v1, shared/workspace/amlv2/tags.py). Returns a queued :class:`~shared.workspace.base.Run`.

Run parameters (shared/workspace/run_parameters.py): only ``mode`` (training) changes a v2 run; the
schema and the parallel settings are baked into the component at publish, as on v1.

``TRAINING_METHOD=automl``: the graph is built around the ``azureml`` registry's many-models components
(read with a registry ``MLClient`` under the same ``DefaultAzureCredential``), trains every file of
one folder, so a partial dataset version or ``mode=changed`` is refused with the reason.

Resume: azure-ai-ml 1.35 has no call to resume a failed pipeline or parallel job (``JobOperations``
has create, cancel, archive, restore, stream, download): a failed run is submitted again.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azure.ai.ml.entities import PipelineJob, PipelineJobSettings

from shared.data.schema import DatasetSchema
from shared.errors import InvalidValue, NotFound
from shared.run_parameters import TrainingMode
from shared.settings import Settings
from shared.workspace.amlv2.datasets import AmlV2DatasetStore, datastore_name
from shared.workspace.amlv2.pipeline_graph import (
    AUTOML_INFERENCE_COMPONENT,
    AUTOML_REGISTRY,
    AUTOML_TRAINING_COMPONENT,
    INPUT_DATASET_VERSION,
    V2BuildOptions,
    automl_settings,
    build_automl_component,
    build_pipeline_component,
    component_name,
    name_steps,
)
from shared.workspace.amlv2.sdk_errors import sdk_call
from shared.workspace.amlv2.tags import (
    INPUT_DATA,
    TAG_DATASET,
    TAG_DATASET_VERSION,
    TAG_KIND,
    TAG_PIPELINE,
    TAG_PIPELINE_VERSION,
    parameter_tag,
)
from shared.workspace.base import (
    DatasetMode,
    DatasetVersion,
    PipelineKind,
    PipelineStore,
    PublishedPipeline,
    Run,
    RunStatus,
)
from shared.workspace.run_parameters import run_parameters as checked_run_parameters

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import Component, PipelineComponent

TAG_METHOD = "manymodels_training_method"  # on the component: customscript | automl
TAG_STEPS = "manymodels_steps"  # on the component: "node=name:version,..." of its step components
PUBLISH_PARAMETERS = ("settings_file", "config_file", "automl_settings_file")
BACKEND = "Azure ML (SDK v2)"
CUSTOM_SCRIPT = "customscript"
AUTOML = "automl"


def _version_number(text: object) -> int:
    return int(str(text)) if str(text).isdigit() else 0


def connect_registry(name: str) -> MLClient:
    """An ``MLClient`` on an Azure ML registry (``azureml``: Microsoft's components), same identity rule."""
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    with sdk_call(f"open Azure ML registry {name!r}"):
        return MLClient(DefaultAzureCredential(), registry_name=name)


class AmlV2PipelineStore(PipelineStore):
    def __init__(self, client: MLClient, settings: Settings, *, datasets: AmlV2DatasetStore,
                 registry: MLClient | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """``registry`` is the ``azureml`` registry's client (default: opened on first use, only for
        TRAINING_METHOD=automl); ``clock`` dates the records."""
        self._client = client
        self._settings = settings
        self._datasets = datasets
        self._registry = registry
        self._clock = clock

    # ------------------------------------------------------------------ port

    def publish(self, name: str, kind: PipelineKind, *, parameters: Mapping[str, Any] | None = None,
                description: str = "") -> PublishedPipeline:
        kind = PipelineKind(kind)
        options = self._options(parameters or {})
        base = component_name(name)
        version = str(max((_version_number(c.version) for c in self._versions(base)), default=0) + 1)
        method = self._settings.training_method
        with tempfile.TemporaryDirectory(prefix="manymodels-publish-v2-") as staging:
            if method == AUTOML:
                component = self._automl_component(kind, options, staging_dir=Path(staging), name=base)
            else:
                component = build_pipeline_component(kind, options, staging_dir=Path(staging), name=base)
            component.version = version
            steps = name_steps(component, version=version)
            component.description = description or f"manymodels {kind} pipeline ({method}, SDK v2)"
            component.tags = {TAG_KIND: str(kind), TAG_PIPELINE: name, TAG_METHOD: method,
                              TAG_STEPS: ",".join(f"{k}={v}" for k, v in sorted(steps.items())),
                              **{f"manymodels_{k}": str(v) for k, v in sorted(dict(parameters or {}).items())}}
            with sdk_call(f"register pipeline component {base!r} version {version}"):
                registered = self._client.components.create_or_update(component)
        return self._record(registered, name=name)

    def get(self, name: str) -> PublishedPipeline:
        return self._record(self._latest(name), name=name)

    def submit(self, name: str, dataset: DatasetVersion, *, parameters: Mapping[str, Any] | None = None,
               tags: Mapping[str, str] | None = None) -> Run:
        component = self._latest(name)
        component_tags = dict(component.tags or {})
        kind = PipelineKind(component_tags.get(TAG_KIND, PipelineKind.TRAINING))
        method = component_tags.get(TAG_METHOD, CUSTOM_SCRIPT)
        params = checked_run_parameters(kind, parameters or {}, base={}, default_mode=self._settings.training_mode,
                                        allowed=("mode",) if kind == PipelineKind.TRAINING else (), backend=BACKEND)
        only_changed = kind == PipelineKind.TRAINING and params.get("mode") == TrainingMode.CHANGED
        if method == AUTOML:
            self._check_automl(kind, dataset, params)
            inputs: dict[str, Any] = {INPUT_DATA: self._datasets.job_input(dataset)}
            if kind == PipelineKind.TRAINING:  # the adopted models are tagged with it (pipeline_graph.py)
                inputs[INPUT_DATASET_VERSION] = str(dataset.version)
        else:
            inputs = dict(self._datasets.job_inputs(dataset, only_changed=only_changed))
            if kind == PipelineKind.TRAINING:
                inputs[INPUT_DATASET_VERSION] = str(dataset.version)
        run_tags = {**(tags or {}), TAG_KIND: str(kind), TAG_DATASET: dataset.name,
                    TAG_DATASET_VERSION: str(dataset.version), TAG_PIPELINE: name,
                    TAG_PIPELINE_VERSION: str(component.version),
                    **{parameter_tag(k): str(v) for k, v in params.items()}}
        job = PipelineJob(
            component=component, inputs=inputs, tags=run_tags, experiment_name=name,
            display_name=f"{name} {dataset.name} v{dataset.version}",
            settings=PipelineJobSettings(default_compute=self._settings.compute_name, continue_on_step_failure=False),
        )
        with sdk_call(f"submit pipeline {name!r} on dataset {dataset.name!r} version {dataset.version}"):
            created = self._client.jobs.create_or_update(job, experiment_name=name, tags=run_tags)
        return Run(run_id=str(created.name), pipeline=name, kind=kind, experiment=name, status=RunStatus.QUEUED,
                   dataset_name=dataset.name, dataset_version=dataset.version, parameters=params, tags=run_tags,
                   submitted=self._clock().isoformat())

    # ------------------------------------------------------------------ internals

    def _options(self, parameters: Mapping[str, Any]) -> V2BuildOptions:
        unknown = sorted(set(parameters) - set(PUBLISH_PARAMETERS))
        if unknown:
            raise InvalidValue(f"unknown publish parameter(s) {', '.join(map(repr, unknown))}; allowed: "
                               f"{', '.join(PUBLISH_PARAMETERS)}")
        s = self._settings
        files = {k: Path(str(v)).expanduser().resolve() for k, v in parameters.items() if v}
        default_store = self._default_datastore()
        return V2BuildOptions(
            compute_name=s.compute_name,
            landing_datastore=datastore_name(f"azureblob://{s.landing_container}"),
            predictions_datastore=datastore_name(f"azureblob://{s.predictions_container}"),
            predictions_container=s.predictions_container,
            default_datastore=default_store,
            training_pipeline_name=s.training_pipeline_name,
            **files,
        )

    def _default_datastore(self) -> str:
        with sdk_call("read the workspace's default datastore"):
            return str(self._client.datastores.get_default().name)

    def _automl_component(self, kind: PipelineKind, options: V2BuildOptions, *, staging_dir: Path,
                          name: str) -> PipelineComponent:
        settings = automl_settings(DatasetSchema.load(options.settings_file), options.automl_settings_file)
        wanted = AUTOML_TRAINING_COMPONENT if kind == PipelineKind.TRAINING else AUTOML_INFERENCE_COMPONENT
        registry = self._registry_client()
        with sdk_call(f"read component {wanted!r} (label latest) of the azureml registry"):
            registry_component = registry.components.get(wanted, label="latest")
        return build_automl_component(kind, options, registry_component, settings=settings,
                                      staging_dir=staging_dir, name=name)

    def _registry_client(self) -> MLClient:
        if self._registry is None:
            self._registry = connect_registry(AUTOML_REGISTRY)
        return self._registry

    def _check_automl(self, kind: PipelineKind, dataset: DatasetVersion, params: Mapping[str, Any]) -> None:
        if kind == PipelineKind.TRAINING and params.get("mode") == TrainingMode.CHANGED:
            raise InvalidValue("run parameter mode='changed' (TRAINING_MODE) cannot apply to TRAINING_METHOD=automl: "
                               "AutoML many models trains every partition of the data folder; set TRAINING_MODE=all "
                               "in the app settings (or submit with mode='all')")
        if dataset.mode == DatasetMode.PARTIAL:
            raise InvalidValue(f"dataset {dataset.name!r} version {dataset.version} is partial: AutoML many models "
                               "reads every file of one folder, and a partial version's folder also holds the "
                               "older batches' files of the same series; upload a full batch (with a manifest) "
                               "or use TRAINING_METHOD=customscript")

    def _versions(self, base: str) -> list[Component]:
        try:
            with sdk_call(f"list the versions of pipeline component {base!r}"):
                return list(self._client.components.list(name=base))
        except NotFound:
            return []

    def _latest(self, name: str) -> Component:
        base = component_name(name)
        versions = [c for c in self._versions(base) if _version_number(c.version)]
        if not versions:
            raise NotFound(f"no published pipeline is called {name!r} (pipeline component {base!r}): publish it "
                           "with `python -m pipelines.amlv2.publish --kind training|forecasting`")
        newest = str(max(versions, key=lambda c: _version_number(c.version)).version)
        with sdk_call(f"read pipeline component {base!r} version {newest}"):  # a list item is a summary
            component: Component = self._client.components.get(base, version=newest)
        return component

    def _record(self, component: Component, *, name: str) -> PublishedPipeline:
        tags = dict(component.tags or {})
        context = getattr(component, "creation_context", None)
        created = getattr(context, "created_at", None)
        return PublishedPipeline(
            name=name,
            kind=PipelineKind(tags.get(TAG_KIND, PipelineKind.TRAINING)),
            pipeline_id=str(component.id or f"azureml:{component.name}:{component.version}"),
            version=_version_number(component.version),
            created=created.astimezone(UTC).isoformat() if isinstance(created, datetime) else self._clock().isoformat(),
            parameters={k[len("manymodels_"):]: v for k, v in tags.items()
                        if k.startswith("manymodels_") and k[len("manymodels_"):] in (*PUBLISH_PARAMETERS,
                                                                                      "training_method")},
            enabled=True,
        )
