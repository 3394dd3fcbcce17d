"""The SDK v2 adapter as a contract-suite backend: ``AmlV2Workspace`` on a fake ``MLClient``.

``FakeMLClient`` stands in for ``azure.ai.ml.MLClient`` at the SDK boundary: it keeps what Azure ML
would keep in memory and answers with the SDK's REAL entity classes, built the way the SDK builds
them from the service's answer (``Data._from_rest_object(DataVersionBase)``,
``Model._from_rest_object(ModelVersion)``, ``Job._from_rest_object(JobBase)``,
``OnlineEndpoint._from_rest_object(...)``, ...), and raising the real
``azure.core.exceptions.ResourceNotFoundError`` / ``ResourceExistsError`` / ``HttpResponseError``.

API (for the store tests of other modules: ``from amlv2_backend import FakeMLClient``)::

    client = FakeMLClient(tmp_path)                 # .subscription_id / .resource_group_name / .workspace_name
    client.data.create_or_update(Data) / get(name, version=None, label=None) / list(name=None) / archive(name, version)
    client.models.create_or_update(Model)           # copies the local folder; no version -> next number
    client.models.get / list(name=None) / download(name, version, download_path) / archive(name, version)
    client.jobs.create_or_update(job, *, experiment_name=None, tags=None, compute=None, description=None)
        -> the job as the service answers it (status "NotStarted", a generated name unless job.name is set);
           the submitted entity itself is kept in client.jobs.submitted[name] for assertions
    client.jobs.get(name) / list(tag=None) (newest first) / begin_cancel(name).result()
    client.jobs._runs_operations.get_run(name)   # run-history record: start/end times, error
    client.components.create_or_update(component, version=None)  # no version -> next number; kept as given
    client.components.get(name, version=None, label=None) / list(name=None)
    client.online_endpoints.begin_create_or_update(endpoint).result() / get(name) / list() / begin_delete(name)
    client.online_endpoints.get_keys(name)          # EndpointAuthKeys for key auth, EndpointAuthToken for aad_token
    client.online_deployments.begin_create_or_update(deployment).result() / get(name, endpoint_name)
    client.online_deployments.list(endpoint_name) / begin_delete(name, endpoint_name)
    client.online_deployments.get_logs(name, endpoint_name, lines)
    client.datastores.get(name) / list() / get_default()  # "landing", "predictions", "workspaceblobstore"

Hooks standing in for the service's own progress:
    client.add_run(run)                  # a base.Run as if a pipeline had been submitted (contract hook)
    client.set_run_status(run_id, status)  # base.RunStatus (or an Azure ML status name) and run-history times
    client.fail_next_deployment("reason")  # the next deployment's poller.result() raises HttpResponseError
    client.calls                         # every operation called, as ("data.create_or_update", name) tuples

To run the contract suite against it, the folder's conftest registers ``amlv2_backend``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import azure.ai.ml._restclient.arm_ml_service.models as rest
from azure.ai.ml._restclient.runhistory.models import RootError, RunHistoryErrorResponse
from azure.ai.ml._restclient.runhistory.models import Run as RunHistoryRun
from azure.ai.ml.entities import (
    AzureBlobDatastore,
    Data,
    EndpointAuthKeys,
    EndpointAuthToken,
    Job,
    Model,
    OnlineDeployment,
    OnlineEndpoint,
    PipelineJob,
)
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from shared.errors import NotFound
from shared.settings import Settings
from shared.workspace.amlv2.runs import STATUS
from shared.workspace.amlv2.tags import TAG_DATASET, TAG_DATASET_VERSION, TAG_KIND, parameter_tag
from shared.workspace.base import Run, RunStatus, ServiceConfig, ServiceKind
from shared.workspace.step_properties import PROPERTY_FAILURES

AML_STATUS = {ours: aml for aml, ours in reversed(list(STATUS.items()))}  # first Azure ML name of each status
FINAL = {"Completed", "Failed", "Canceled"}
LOCATION = "westeurope"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _utc(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _not_found(what: str) -> ResourceNotFoundError:
    # what the service answers: 404 with a UserError code (the SDK raises ResourceNotFoundError)
    return ResourceNotFoundError(message=f"(UserError) {what} could not be found.")


class FakePoller:
    """The part of ``azure.core.polling.LROPoller`` the stores use."""

    def __init__(self, result: Callable[[], Any]) -> None:
        self._result = result
        self._done = False
        self._value: Any = None

    def result(self, timeout: float | None = None) -> Any:
        if not self._done:
            self._value = self._result()
            self._done = True
        return self._value

    def wait(self, timeout: float | None = None) -> None:
        self.result(timeout)

    def done(self) -> bool:
        return self._done

    def status(self) -> str:
        return "Succeeded" if self._done else "InProgress"


class _Operations:
    def __init__(self, client: FakeMLClient) -> None:
        self._client = client

    def _arm_id(self, kind: str, *parts: str) -> str:
        c = self._client
        return (f"/subscriptions/{c.subscription_id}/resourceGroups/{c.resource_group_name}/providers/"
                f"Microsoft.MachineLearningServices/workspaces/{c.workspace_name}/{kind}/" + "/".join(parts))

    def _call(self, operation: str, name: str = "") -> None:
        self._client.calls.append((operation, name))


# --------------------------------------------------------------------------- data assets


class FakeDataOperations(_Operations):
    def __init__(self, client: FakeMLClient) -> None:
        super().__init__(client)
        self._versions: dict[str, dict[str, Any]] = {}  # name -> version -> DataVersionBase
        self._archived: set[tuple[str, str]] = set()

    def create_or_update(self, data: Data) -> Data:
        self._call("data.create_or_update", str(data.name))
        with self._client.lock:
            versions = self._versions.setdefault(str(data.name), {})
            version = str(data.version) if data.version else str(1 + max((int(v) for v in versions if v.isdigit()),
                                                                           default=0))
            body = data._to_rest_object()
            assert body is not None, f"data type {data.type!r} has no REST model"
            if version in versions:
                before = versions[version].properties
                if (before.data_uri, before.tags) != (body.properties.data_uri, body.properties.tags):
                    raise ResourceExistsError(message=f"(UserError) Conflict: data {data.name}:{version} already "
                                                      "exists with other content; asset versions are immutable")
                return Data._from_rest_object(versions[version])
            body.id = self._arm_id("data", str(data.name), "versions", version)
            body.system_data = rest.SystemData(created_at=_now(), created_by="fake")
            versions[version] = body
            return Data._from_rest_object(body)

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Data:
        self._call("data.get", name)
        versions = self._versions.get(name) or {}
        if version is None:
            if label != "latest" or not versions:
                raise _not_found(f"data {name} (label {label})")
            version = max(versions, key=lambda v: versions[v].system_data.created_at)
        if str(version) not in versions:
            raise _not_found(f"data {name}:{version}")
        return Data._from_rest_object(versions[str(version)])

    def list(self, name: str | None = None, **_: Any) -> Iterator[Data]:
        self._call("data.list", name or "")
        if name:
            return iter([Data._from_rest_object(v) for k, v in (self._versions.get(name) or {}).items()
                         if (name, k) not in self._archived])
        containers = []
        for n, versions in sorted(self._versions.items()):
            latest = max(versions, key=lambda v: versions[v].system_data.created_at)
            container = rest.DataContainer(properties=rest.DataContainerProperties(
                data_type=versions[latest].properties.data_type, latest_version=latest))
            container.name = n
            container.id = self._arm_id("data", n)
            container.system_data = rest.SystemData(created_at=versions[latest].system_data.created_at)
            containers.append(Data._from_container_rest_object(container))
        return iter(containers)

    def archive(self, name: str, version: str | None = None, label: str | None = None, **_: Any) -> None:
        self.get(name, version, label)
        self._archived.add((name, str(version)))


# --------------------------------------------------------------------------- models


class FakeModelOperations(_Operations):
    def __init__(self, client: FakeMLClient) -> None:
        super().__init__(client)
        self._versions: dict[str, dict[str, Any]] = {}  # name -> version -> ModelVersion
        self._archived: set[tuple[str, str]] = set()
        self._next: dict[str, int] = {}  # the model container's next version (archiving does not lower it)

    def create_or_update(self, model: Model) -> Model:
        name = str(model.name)
        self._call("models.create_or_update", name)
        source = Path(str(model.path))
        if not source.exists():
            raise HttpResponseError(message=f"(UserError) model path {source} does not exist")  # SDK: upload fails
        with self._client.lock:
            version = str(model.version) if model.version else str(self._next.get(name, 1))
            versions = self._versions.setdefault(name, {})
            if version in versions:
                raise ResourceExistsError(message=f"(UserError) model {name}:{version} already exists")
            if version.isdigit():
                self._next[name] = max(self._next.get(name, 1), int(version) + 1)
            # what the SDK does before the REST call: upload the folder, then point the asset at it
            digest = hashlib.sha256(f"{name}/{version}/{source}".encode()).hexdigest()[:16]
            stored = self._client.root / "workspaceblobstore" / "LocalUpload" / digest / source.name
            if source.is_dir():
                shutil.copytree(source, stored)
            else:
                stored.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, stored)
            uploaded = Model(name=name, version=version, type=model.type, path=(
                f"azureml://subscriptions/{self._client.subscription_id}/resourcegroups/"
                f"{self._client.resource_group_name}/workspaces/{self._client.workspace_name}/datastores/"
                f"workspaceblobstore/paths/LocalUpload/{digest}/{source.name}"),
                tags=model.tags, properties=model.properties, description=model.description)
            body = uploaded._to_rest_object()
            if body.properties.flavors is None:
                body.properties.flavors = {}  # the service answers an empty map for a custom model
            body.id = self._arm_id("models", name, "versions", version)
            body.system_data = rest.SystemData(created_at=_now(), created_by="fake")
            versions[version] = (body, stored)
            return Model._from_rest_object(body)

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Model:
        self._call("models.get", name)
        return Model._from_rest_object(self._stored(name, version, label)[0])

    def _stored(self, name: str, version: str | None, label: str | None) -> tuple[Any, Path]:
        versions = self._versions.get(name) or {}
        if version is None and label == "latest" and versions:
            version = max(versions, key=lambda v: versions[v][0].system_data.created_at)
        if version is None or str(version) not in versions:
            raise _not_found(f"model {name}:{version or label}")
        return versions[str(version)]

    def list(self, name: str | None = None, stage: str | None = None, **_: Any) -> Iterator[Model]:
        self._call("models.list", name or "")
        if name:
            return iter([Model._from_rest_object(body) for v, (body, _) in (self._versions.get(name) or {}).items()
                         if (name, v) not in self._archived])
        containers = []
        for n, versions in sorted(self._versions.items()):
            active = [v for v in versions if (n, v) not in self._archived]
            if not active:
                continue
            container = rest.ModelContainer(properties=rest.ModelContainerProperties(latest_version=active[-1]))
            container.name = n
            container.id = self._arm_id("models", n)
            container.system_data = rest.SystemData(created_at=_now())
            containers.append(Model._from_container_rest_object(container))
        return iter(containers)

    def download(self, name: str, version: str, download_path: str | Path = ".") -> None:
        """Like the SDK: a folder model lands in ``<download_path>/<name>/<folder name>/``."""
        self._call("models.download", name)
        _, stored = self._stored(name, version, None)
        target = Path(download_path) / name
        if stored.is_dir():
            shutil.copytree(stored, target / stored.name, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(stored, target / stored.name)

    def archive(self, name: str, version: str | None = None, label: str | None = None, **_: Any) -> None:
        self._call("models.archive", name)
        self._stored(name, version, label)
        self._archived.add((name, str(version)))


# --------------------------------------------------------------------------- jobs


class FakeRunOperations:
    """``client.jobs._runs_operations``: the run-history records (start/end times, error)."""

    def __init__(self) -> None:
        self.records: dict[str, RunHistoryRun] = {}

    def get_run(self, run_id: str) -> RunHistoryRun:
        if run_id not in self.records:
            raise _not_found(f"run {run_id}")
        return self.records[run_id]


class FakeJobOperations(_Operations):
    def __init__(self, client: FakeMLClient) -> None:
        super().__init__(client)
        self._jobs: dict[str, Any] = {}  # name -> JobBase
        self.submitted: dict[str, Job] = {}  # name -> the entity the caller submitted
        self._runs_operations = FakeRunOperations()
        self._names = itertools.count(1)

    def create_or_update(self, job: Job, *, description: str | None = None, compute: str | None = None,
                         tags: dict | None = None, experiment_name: str | None = None, skip_validation: bool = False,
                         **_: Any) -> Job:
        name = str(job.name or f"fake_job_{next(self._names):04d}")
        self._call("jobs.create_or_update", name)
        all_tags = {**(job.tags or {}), **(tags or {})}
        self.submitted[name] = job
        self._store(name, experiment=str(experiment_name or job.experiment_name or "Default"), tags=all_tags,
                    properties=dict(job.properties or {}), status="NotStarted", submitted=_now(),
                    display_name=job.display_name or name, description=description or job.description)
        return self.get(name)

    def _store(self, name: str, *, experiment: str, tags: dict, properties: dict, status: str,
               submitted: dt.datetime, display_name: str | None = None, description: str | None = None,
               started: dt.datetime | None = None, ended: dt.datetime | None = None) -> None:
        # the service's record of a pipeline job (its graph is not needed to answer get/list)
        record = PipelineJob(experiment_name=experiment, tags=tags, properties=properties,
                             display_name=display_name, description=description)._to_rest_object()
        record.name = name
        record.id = self._arm_id("jobs", name)
        record.properties.status = status
        record.system_data = rest.SystemData(created_at=submitted, created_by="fake")
        with self._client.lock:
            self._jobs[name] = record
            self._runs_operations.records[name] = RunHistoryRun(run_id=name, status=status, created_utc=submitted,
                                                                start_time_utc=started, end_time_utc=ended)

    def get(self, name: str) -> Job:
        self._call("jobs.get", name)
        if name not in self._jobs:
            raise _not_found(f"job {name}")
        return Job._from_rest_object(self._jobs[name])

    def list(self, *, parent_job_name: str | None = None, tag: str | None = None, **_: Any) -> Iterator[Job]:
        """Newest first; ``tag`` (passed through to the REST list) keeps jobs that have that tag key."""
        self._call("jobs.list", tag or "")
        records = sorted((r for r in self._jobs.values() if tag is None or tag in (r.properties.tags or {})),
                         key=lambda r: r.system_data.created_at, reverse=True)
        return iter([Job._from_rest_object(r) for r in records])

    def begin_cancel(self, name: str, **_: Any) -> FakePoller:
        self.get(name)

        def cancel() -> None:
            if self._jobs[name].properties.status not in FINAL:
                self._client.set_run_status(name, "Canceled")

        return FakePoller(cancel)


# --------------------------------------------------------------------------- components


class FakeComponentOperations(_Operations):
    def __init__(self, client: FakeMLClient) -> None:
        super().__init__(client)
        self.versions: dict[str, dict[str, Any]] = {}  # name -> version -> the component as registered

    def create_or_update(self, component: Any, version: str | None = None, **_: Any) -> Any:
        name = str(component.name)
        self._call("components.create_or_update", name)
        with self._client.lock:
            versions = self.versions.setdefault(name, {})
            number = str(version or component.version or 1 + max((int(v) for v in versions if v.isdigit()),
                                                                  default=0))
            if number in versions:
                raise ResourceExistsError(message=f"(UserError) component {name}:{number} already exists")
            component.version = number
            versions[number] = component
            return component

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Any:
        self._call("components.get", name)
        versions = self.versions.get(name) or {}
        if version is None and versions and label in (None, "latest"):
            version = max(versions, key=lambda v: int(v) if v.isdigit() else 0)
        if version is None or str(version) not in versions:
            raise _not_found(f"component {name}:{version or label}")
        return versions[str(version)]

    def list(self, name: str | None = None, **_: Any) -> Iterator[Any]:
        if name:
            return iter(list((self.versions.get(name) or {}).values()))
        return iter([v[max(v, key=lambda x: int(x) if x.isdigit() else 0)] for _, v in sorted(self.versions.items())])


# --------------------------------------------------------------------------- online endpoints


class FakeOnlineEndpointOperations(_Operations):
    def __init__(self, client: FakeMLClient) -> None:
        super().__init__(client)
        self.records: dict[str, Any] = {}  # name -> OnlineEndpoint (REST)

    def begin_create_or_update(self, endpoint: Any, **_: Any) -> FakePoller:
        self._call("online_endpoints.begin_create_or_update", str(endpoint.name))

        def create() -> OnlineEndpoint:
            body = endpoint._to_rest_online_endpoint(LOCATION)
            body.name = endpoint.name
            body.id = self._arm_id("onlineEndpoints", endpoint.name)
            body.properties.provisioning_state = "Succeeded"
            body.properties.scoring_uri = f"https://{endpoint.name}.{LOCATION}.inference.ml.azure.com/score"
            with self._client.lock:
                self.records[endpoint.name] = body
            return self.get(endpoint.name)

        return FakePoller(create)

    def get(self, name: str, **_: Any) -> OnlineEndpoint:
        self._call("online_endpoints.get", name)
        if name not in self.records:
            raise _not_found(f"online endpoint {name}")
        return OnlineEndpoint._from_rest_object(self.records[name])

    def list(self, **_: Any) -> Iterator[OnlineEndpoint]:
        return iter([OnlineEndpoint._from_rest_object(r) for _, r in sorted(self.records.items())])

    def begin_delete(self, name: str, **_: Any) -> FakePoller:
        self._call("online_endpoints.begin_delete", name)
        if name not in self.records:
            raise _not_found(f"online endpoint {name}")

        def delete() -> None:
            with self._client.lock:
                self.records.pop(name, None)
                self._client.online_deployments.records.pop(name, None)

        return FakePoller(delete)

    def get_keys(self, name: str, **_: Any) -> EndpointAuthKeys | EndpointAuthToken:
        endpoint = self.get(name)
        if str(endpoint.auth_mode).lower() == "key":
            return EndpointAuthKeys(primary_key=f"fake-primary-{name}", secondary_key=f"fake-secondary-{name}")
        return EndpointAuthToken(access_token=f"fake-token-{name}", expiry_time_utc=0, refresh_after_time_utc=0,
                                 token_type="Bearer")


class FakeOnlineDeploymentOperations(_Operations):
    def __init__(self, client: FakeMLClient) -> None:
        super().__init__(client)
        self.records: dict[str, dict[str, Any]] = {}  # endpoint -> deployment -> OnlineDeployment (REST)
        self.failures: list[str] = []  # reasons the next deployments fail with

    def begin_create_or_update(self, deployment: Any, **_: Any) -> FakePoller:
        endpoint, name = str(deployment.endpoint_name), str(deployment.name)
        self._call("online_deployments.begin_create_or_update", f"{endpoint}/{name}")
        if endpoint not in self._client.online_endpoints.records:
            raise _not_found(f"online endpoint {endpoint}")
        failure = self.failures.pop(0) if self.failures else None

        def create() -> OnlineDeployment:
            body = deployment._to_rest_object(LOCATION)
            body.name = name
            body.id = self._arm_id("onlineEndpoints", endpoint, "deployments", name)
            body.properties.provisioning_state = "Failed" if failure else "Succeeded"
            if body.properties.scale_settings is None:
                body.properties.scale_settings = rest.DefaultScaleSettings()
            with self._client.lock:
                self.records.setdefault(endpoint, {})[name] = body
            if failure:
                raise HttpResponseError(message=f"(DeploymentFailed) deployment {name} of {endpoint} failed: {failure}")
            return self.get(name, endpoint)

        return FakePoller(create)

    def get(self, name: str, endpoint_name: str, **_: Any) -> OnlineDeployment:
        self._call("online_deployments.get", f"{endpoint_name}/{name}")
        body = (self.records.get(endpoint_name) or {}).get(name)
        if body is None:
            raise _not_found(f"deployment {name} of online endpoint {endpoint_name}")
        return OnlineDeployment._from_rest_object(body)

    def list(self, endpoint_name: str, **_: Any) -> Iterator[OnlineDeployment]:
        return iter([OnlineDeployment._from_rest_object(b) for _, b in
                     sorted((self.records.get(endpoint_name) or {}).items())])

    def begin_delete(self, name: str, endpoint_name: str, **_: Any) -> FakePoller:
        self._call("online_deployments.begin_delete", f"{endpoint_name}/{name}")
        if name not in (self.records.get(endpoint_name) or {}):
            raise _not_found(f"deployment {name} of online endpoint {endpoint_name}")
        return FakePoller(lambda: self.records[endpoint_name].pop(name, None) and None)

    def get_logs(self, name: str, endpoint_name: str, lines: int, **_: Any) -> str:
        self.get(name, endpoint_name)
        return f"fake logs of {endpoint_name}/{name}"


# --------------------------------------------------------------------------- datastores


class FakeDatastoreOperations(_Operations):
    def __init__(self, client: FakeMLClient, names: tuple[str, ...]) -> None:
        super().__init__(client)
        self._stores = {n: AzureBlobDatastore(name=n, account_name="fakeaccount", container_name=n.replace("_", "-"))
                        for n in names}

    def get(self, name: str, **_: Any) -> AzureBlobDatastore:
        if name not in self._stores:
            raise _not_found(f"datastore {name}")
        return self._stores[name]

    def get_default(self, **_: Any) -> AzureBlobDatastore:
        return self._stores["workspaceblobstore"]

    def list(self, **_: Any) -> Iterator[AzureBlobDatastore]:
        return iter(list(self._stores.values()))


# --------------------------------------------------------------------------- the client


class FakeMLClient:
    def __init__(self, root: Path, *, subscription_id: str = "sub", resource_group_name: str = "rg",
                 workspace_name: str = "contractamlv2") -> None:
        self.root = root
        self.subscription_id = subscription_id
        self.resource_group_name = resource_group_name
        self.workspace_name = workspace_name
        self.lock = threading.RLock()
        self.calls: list[tuple[str, str]] = []
        self.data = FakeDataOperations(self)
        self.models = FakeModelOperations(self)
        self.jobs = FakeJobOperations(self)
        self.components = FakeComponentOperations(self)
        self.online_endpoints = FakeOnlineEndpointOperations(self)
        self.online_deployments = FakeOnlineDeploymentOperations(self)
        self.datastores = FakeDatastoreOperations(self, ("landing", "predictions", "workspaceblobstore"))

    # ------------------------------------------------------------------ hooks

    def add_run(self, run: Run) -> None:
        tags = {**run.tags, TAG_KIND: str(run.kind), TAG_DATASET: run.dataset_name,
                TAG_DATASET_VERSION: str(run.dataset_version),
                **{parameter_tag(k): str(v) for k, v in run.parameters.items()}}
        properties = {PROPERTY_FAILURES: json.dumps(
            [{"file": f.file, "series": f.series, "reason": f.reason} for f in run.failures])}
        self.jobs._store(run.run_id, experiment=run.experiment, tags=tags, properties=properties,
                         status=AML_STATUS[run.status], submitted=_utc(run.submitted) or _now(),
                         started=_utc(run.started), ended=_utc(run.ended))

    def set_run_status(self, run_id: str, status: RunStatus | str, *, error: str | None = None) -> None:
        aml = AML_STATUS[status] if isinstance(status, RunStatus) else str(status)
        with self.lock:
            self.jobs._jobs[run_id].properties.status = aml
            record = self.jobs._runs_operations.records[run_id]
            record.status = aml
            started = STATUS.get(aml) is not RunStatus.QUEUED
            if started and not record.start_time_utc:
                record.start_time_utc = _now()
            if aml in FINAL and not record.end_time_utc:
                record.end_time_utc = _now()
            if error:
                record.error = RunHistoryErrorResponse(error=RootError(message=error))

    def fail_next_deployment(self, reason: str) -> None:
        self.online_deployments.failures.append(reason)


class MemoryBlobs:
    """The ``datasets`` container of dataset file lists (the part of BlobStore the store uses)."""

    def __init__(self) -> None:
        self.container = "datasets"
        self.blobs: dict[str, bytes] = {}

    def ensure_container(self) -> None:
        pass

    def upload_bytes(self, name: str, data: bytes, *, content_type: str | None = None) -> None:
        self.blobs[name] = data

    def download_bytes(self, name: str) -> bytes:
        try:
            return self.blobs[name]
        except KeyError:
            raise NotFound(f"blob {self.container}/{name} does not exist") from None


def amlv2_settings() -> Settings:
    return Settings.from_env({"MANYMODELS_BACKEND": "amlv2", "AZURE_SUBSCRIPTION_ID": "sub", "RESOURCE_GROUP": "rg",
                              "AML_WORKSPACE_NAME": "contractamlv2",
                              "AzureWebJobsStorage": "https://contractsa.blob.core.windows.net"})


def amlv2_backend(tmp_path: Path) -> Iterator:
    from shared.workspace.amlv2.workspace import AmlV2Workspace

    client = FakeMLClient(tmp_path / "fake-azureml-v2")
    workspace = AmlV2Workspace(amlv2_settings(), client, metadata=MemoryBlobs())  # type: ignore[arg-type]
    # the fields of tests/support/workspace_contract.ContractBackend: services are managed online endpoints
    yield SimpleNamespace(workspace=workspace, add_run=client.add_run, set_run_status=client.set_run_status,
                          service_config=ServiceConfig(ServiceKind.MANAGED, "scoring/model_webservice.py",
                                                   instance_type="Standard_DS2_v2"),
                          other_service_kind=ServiceKind.AKS)
