"""Pipeline runs: Azure ML jobs (SDK v2) mapped to :class:`shared.workspace.base.Run`.

A job entity (``client.jobs.get`` / ``client.jobs.list``) has the status, the tags the pipeline
store set at submission (shared/workspace/amlv2/tags.py), the properties the steps set and the
creation time (``creation_context.created_at``: when the job was submitted). It has no start or
end time and no error message: those are in the job's run-history record, which the SDK itself
reads through ``client.jobs._runs_operations.get_run`` (azure/ai/ml/operations/_job_operations.py
uses it for child jobs); the store reads it the same way, one call per job, and leaves the times
empty if a later SDK drops that operation (the status and tags still come from the public API).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Any

from shared.settings import Settings
from shared.workspace.amlv2.sdk_errors import sdk_call
from shared.workspace.amlv2.tags import (
    PARAMETER_PREFIX,
    TAG_DATASET,
    TAG_DATASET_VERSION,
    TAG_KIND,
)
from shared.workspace.base import PipelineKind, Run, RunStatus, RunStore
from shared.workspace.remote_calls import wait_until_final
from shared.workspace.step_properties import run_counts, run_failures, run_outputs

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import Job

log = logging.getLogger(__name__)

# Azure ML v2 job statuses (azure.ai.ml.constants.JobStatus) -> the product's.
STATUS: dict[str, RunStatus] = {
    "NotStarted": RunStatus.QUEUED,
    "Queued": RunStatus.QUEUED,
    "Preparing": RunStatus.QUEUED,
    "Provisioning": RunStatus.QUEUED,
    "Starting": RunStatus.QUEUED,
    "Running": RunStatus.RUNNING,
    "Finalizing": RunStatus.RUNNING,
    "CancelRequested": RunStatus.RUNNING,  # not canceled until Azure ML says so
    "NotResponding": RunStatus.RUNNING,  # may recover; the reconcile timer polls again
    "Paused": RunStatus.RUNNING,  # a paused job resumes where it stopped
    "Unknown": RunStatus.RUNNING,  # not final: asked again later
    "Completed": RunStatus.COMPLETED,
    "Failed": RunStatus.FAILED,
    "Canceled": RunStatus.CANCELED,
}
LIST_LIMIT = 200  # product jobs read by list() (newest first), like v1's runs per experiment
LIST_SCAN_LIMIT = 2000  # workspace jobs looked at to find them
DETAIL_WORKERS = 16  # parallel run-history reads in list()


def map_status(status: object) -> RunStatus:
    text = str(getattr(status, "value", status) or "")
    return STATUS.get(text, RunStatus.RUNNING)


@dataclass(frozen=True, slots=True)
class RunTimes:
    """What the run-history record adds to a job: when it started and ended, and why it failed."""

    started: str | None = None
    ended: str | None = None
    error: str | None = None


def to_run(job: Job, times: RunTimes | None = None) -> Run:
    """A product Run from a v2 job entity (and its run-history times)."""
    times = times or RunTimes()
    tags = {str(k): str(v) for k, v in (job.tags or {}).items()}
    properties = {str(k): str(v) for k, v in (job.properties or {}).items()}
    kind = tags.get(TAG_KIND, "")
    try:
        version = int(tags.get(TAG_DATASET_VERSION, "0"))
    except ValueError:
        version = 0
    experiment = str(job.experiment_name or "")
    created = getattr(getattr(job, "creation_context", None), "created_at", None)
    return Run(
        run_id=str(job.name),
        pipeline=experiment,
        kind=PipelineKind(kind) if kind in {str(k) for k in PipelineKind} else PipelineKind.TRAINING,
        experiment=experiment,
        status=map_status(job.status),
        dataset_name=tags.get(TAG_DATASET, ""),
        dataset_version=version,
        parameters={k[len(PARAMETER_PREFIX):]: v for k, v in tags.items() if k.startswith(PARAMETER_PREFIX)},
        tags=tags,
        # when the job was submitted, not when it started: a job queued behind another starts later
        # although it is older (shared/ledger/rollouts.py supersedes)
        submitted=_time(created) or "",
        started=times.started,
        ended=times.ended,
        counts=run_counts(properties),
        failures=run_failures(properties),
        outputs=run_outputs(properties),
        error=times.error,
    )


def _time(value: object) -> str | None:
    if value is None or value == "":
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _error_message(error: Any) -> str | None:
    """The message of a run-history ``ErrorResponse`` (``error.error.message``)."""
    inner = getattr(error, "error", None)
    message = getattr(inner, "message", None) or getattr(error, "message", None)
    return str(message) if message else None


class AmlV2RunStore(RunStore):
    def __init__(self, client: MLClient, settings: Settings, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """``clock``/``sleep`` are what :meth:`wait` measures and pauses with (tests pass fakes)."""
        self._client = client
        self._settings = settings
        self._clock = clock
        self._sleep = sleep

    def get(self, run_id: str) -> Run:
        with sdk_call(f"get job {run_id!r}"):
            job = self._client.jobs.get(run_id)
        return to_run(job, self._times(run_id))

    def list(self, *, status: RunStatus | None = None, kind: PipelineKind | None = None) -> list[Run]:
        experiments = {str(self._settings.training_pipeline_name), str(self._settings.forecasting_pipeline_name)}
        with sdk_call("list the workspace's jobs"):
            # ``tag`` is passed to the REST list (Jobs_List ?tag=<key>): the service answers only the jobs
            # carrying the product's kind tag; the filter below also checks the experiment
            jobs = [j for j in islice(self._client.jobs.list(tag=TAG_KIND), LIST_SCAN_LIMIT)
                    if TAG_KIND in (j.tags or {}) and j.experiment_name in experiments]
        runs = [to_run(j) for j in jobs]
        if kind is not None:
            runs = [r for r in runs if r.kind == kind]
        if status is not None:
            runs = [r for r in runs if r.status == status]
        runs = sorted(runs, key=lambda r: r.submitted, reverse=True)[:LIST_LIMIT]
        by_id = {j.name: j for j in jobs}
        with ThreadPoolExecutor(max_workers=DETAIL_WORKERS) as pool:
            times = list(pool.map(self._times, [r.run_id for r in runs]))
        return [to_run(by_id[r.run_id], t) for r, t in zip(runs, times, strict=True)]

    def wait(self, run_id: str, *, timeout: float) -> Run:
        return wait_until_final(self.get, run_id, timeout=timeout, clock=self._clock, sleep=self._sleep)

    def _times(self, run_id: str) -> RunTimes:
        operations = getattr(self._client.jobs, "_runs_operations", None)
        if operations is None or not hasattr(operations, "get_run"):
            log.warning("this azure-ai-ml has no run-history operation: run %s is listed without start/end times",
                        run_id)
            return RunTimes()
        with sdk_call(f"get the run-history record of job {run_id!r}"):
            record = operations.get_run(run_id)
        return RunTimes(started=_time(getattr(record, "start_time_utc", None)),
                        ended=_time(getattr(record, "end_time_utc", None)),
                        error=_error_message(getattr(record, "error", None)))

