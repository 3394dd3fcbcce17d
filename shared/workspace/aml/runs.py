"""Pipeline runs: the SDK's ``Run`` records mapped to :class:`shared.workspace.base.Run`."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from typing import Any

from azureml.core import Experiment
from azureml.core import Run as SdkRun
from azureml.core import Workspace as SdkWorkspace

from shared.errors import ManyModelsError
from shared.settings import Settings
from shared.workspace.aml.sdk_errors import sdk_call
from shared.workspace.base import PipelineKind, Run, RunStatus, RunStore
from shared.workspace.remote_calls import wait_until_final
from shared.workspace.step_properties import run_counts, run_failures, run_outputs

# Azure ML run statuses (azureml.core.run.RunStatus) -> the product's.
STATUS = {
    "NotStarted": RunStatus.QUEUED,
    "Queued": RunStatus.QUEUED,
    "Preparing": RunStatus.QUEUED,
    "Provisioning": RunStatus.QUEUED,
    "Starting": RunStatus.QUEUED,
    "Running": RunStatus.RUNNING,
    "Finalizing": RunStatus.RUNNING,
    "CancelRequested": RunStatus.RUNNING,
    "NotResponding": RunStatus.RUNNING,  # may recover; the reconcile timer polls again
    "Completed": RunStatus.COMPLETED,
    "Failed": RunStatus.FAILED,
    "Canceled": RunStatus.CANCELED,
}
TAG_KIND = "manymodels_kind"
TAG_DATASET = "dataset_name"
TAG_DATASET_VERSION = "dataset_version"
# run properties the pipeline steps set (pipelines/aml/steps): counts, outputs, failures
LIST_LIMIT = 100  # runs read per experiment by list()


def map_status(status: str | None) -> RunStatus:
    return STATUS.get(status or "", RunStatus.RUNNING)


def to_run(record: Mapping[str, Any], *, experiment: str) -> Run:
    """A product Run from the SDK's run record, ``Run._run_dto``: ``RunDto.as_dict()``, whose keys
    are the DTO's attribute names (``run_id``, ``created_utc``, ``start_time_utc``; times as ISO 8601
    strings). ``Run.get_details()`` is not used: it has neither the tags nor the creation time."""
    tags = {str(k): str(v) for k, v in (record.get("tags") or {}).items()}
    properties = {str(k): str(v) for k, v in (record.get("properties") or {}).items()}
    kind = tags.get(TAG_KIND, "")
    try:
        version = int(tags.get(TAG_DATASET_VERSION, "0"))
    except ValueError:
        version = 0
    error = record.get("error") or {}
    message = (error.get("error") or {}).get("message") if isinstance(error, Mapping) else str(error)
    return Run(
        run_id=str(record["run_id"]),
        pipeline=experiment,
        kind=PipelineKind(kind) if kind in {str(k) for k in PipelineKind} else PipelineKind.TRAINING,
        experiment=experiment,
        status=map_status(record.get("status")),
        dataset_name=tags.get(TAG_DATASET, ""),
        dataset_version=version,
        parameters={k[len("param_"):]: v for k, v in tags.items() if k.startswith("param_")},
        tags=tags,
        # when the run was submitted (its record created), not when it started: a run queued
        # behind another starts later although it is older (shared/ledger/rollouts.py supersedes)
        submitted=_time(record.get("created_utc")) or "",
        started=_time(record.get("start_time_utc")),
        ended=_time(record.get("end_time_utc")),
        counts=run_counts(properties),
        failures=run_failures(properties),
        outputs=run_outputs(properties),
        error=message or None,
    )


def _time(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value.isoformat()) if hasattr(value, "isoformat") else str(value)


class AmlRunStore(RunStore):
    def __init__(self, ws: SdkWorkspace, *, settings: Settings) -> None:
        self._ws = ws
        self._settings = settings

    def get(self, run_id: str) -> Run:
        with sdk_call(f"get run {run_id!r}"):
            run = SdkRun.get(self._ws, run_id)  # fetches the run's record afresh
            record = _record(run)
        return to_run(record, experiment=run.experiment.name)

    def list(self, *, status: RunStatus | None = None, kind: PipelineKind | None = None) -> list[Run]:
        settings = self._settings
        names = {PipelineKind.TRAINING: settings.training_pipeline_name,
                 PipelineKind.FORECASTING: settings.forecasting_pipeline_name}
        runs: list[Run] = []
        for pipeline_kind, name in names.items():
            if kind is not None and kind != pipeline_kind:
                continue
            with sdk_call(f"list the runs of experiment {name!r}"):
                for sdk_run in islice(Experiment(self._ws, name).get_runs(), LIST_LIMIT):
                    runs.append(to_run(_record(sdk_run), experiment=name))
        if status is not None:
            runs = [r for r in runs if r.status == status]
        return sorted(runs, key=lambda r: r.submitted, reverse=True)

    def wait(self, run_id: str, *, timeout: float) -> Run:
        return wait_until_final(self.get, run_id, timeout=timeout)


def _record(sdk_run: Any) -> Mapping[str, Any]:
    """The run's record as the SDK keeps it (``RunBase._run_dto``, azureml/_run_impl/run_base.py in
    azureml-core): a dict with snake_case keys, already fetched by ``Run.get`` and ``get_runs``."""
    record = sdk_run._run_dto
    if not isinstance(record, Mapping) or "run_id" not in record:
        raise ManyModelsError(f"run {sdk_run.id}: the SDK's run record is not a RunDto dict ({type(record).__name__}); "
                        "this azureml-core version is not supported (requirements.txt pins the one that is)")
    return record
