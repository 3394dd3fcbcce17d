"""The Azure ML adapter as a contract-suite backend: ``AmlWorkspace`` on a fake azureml-core SDK.

The fake stands in for the SDK classes the adapter calls (Dataset, Datastore, Model, Run,
Experiment, PublishedPipeline, Webservice) and keeps what the service would keep in memory,
answering the way the service does (numeric versions, "not found" messages, tag filters). The
metadata container of dataset file lists is an in-memory blob store.

Where the SDK has real classes for what the service answers, the fake hands those out: runs are
``RunDto``/``RunDetailsDto``, published pipelines the SDK's own ``PublishedPipeline`` (its REST
provider is the fake, so ``disable()`` runs the SDK's code), webservices ``AciWebservice`` /
``AksWebservice`` made by ``Webservice.deserialize`` from the JSON the model management service
returns (their REST calls - wait, update, delete, get_keys - answered by the fake). Building a
pipeline graph (shared/workspace/aml/pipeline_graph.py) needs a compute target and uploads step
sources: the fake's ``build_pipeline`` returns a pipeline whose ``publish`` answers like the
service. To run the suite against it, the folder's
conftest registers it (pytest puts this folder on ``sys.path``)::

    from aml_backend import aml_backend
    WORKSPACE_FACTORIES["aml"] = aml_backend
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

from azureml._restclient.clientbase import ClientBase
from azureml._restclient.models import RunDetailsDto, RunDto
from azureml._restclient.utils import camel_case_transformer
from azureml.core.webservice import AciWebservice, AksWebservice
from azureml.pipeline.core import PublishedPipeline as SdkPublishedPipeline

from shared.errors import NotFound
from shared.settings import Settings
from shared.workspace.aml.runs import STATUS, TAG_DATASET, TAG_DATASET_VERSION, TAG_KIND
from shared.workspace.base import Run, RunStatus
from tests.support.workspace_contract import ContractBackend

AML_STATUS = {ours: aml for aml, ours in reversed(list(STATUS.items()))}  # first AML name of each status


class SdkError(Exception):
    """Stands in for azureml's UserErrorException / WebserviceException."""


class FakeAzureML:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.datasets: dict[str, list[SimpleNamespace]] = {}
        self.models: dict[str, list[SimpleNamespace]] = {}
        self.runs: dict[str, SimpleNamespace] = {}
        self.blobs: dict[str, bytes] = {}
        self.pipelines: list[dict] = []  # the service's published pipeline records
        self.submissions: list[dict] = []  # what each Experiment.submit was given
        self.webservices: dict[str, dict] = {}  # name -> the model management service's JSON
        self.keys: dict[str, tuple[str, str]] = {}
        self.inference_configs: dict[str, object] = {}
        self._last_time: dt.datetime | None = None
        # The SDK's Workspace: the adapter only passes it on; the SDK's own classes read its names,
        # its portal (from the discovery service) and its auth (the tenant, from the token).
        self.sdk_workspace = mock.Mock(name="Workspace", subscription_id="sub", resource_group="rg")
        self.sdk_workspace.name = "contractaml"
        self.sdk_workspace.service_context._get_workspace_portal_url.return_value = "https://ml.azure.com"
        self.sdk_workspace._auth_object._get_arm_token.side_effect = RuntimeError("no token offline")

    def now(self) -> dt.datetime:
        """The service's clock: strictly increasing, so two updates in one tick differ."""
        now = dt.datetime.now(dt.UTC)
        if self._last_time is not None and now <= self._last_time:
            now = self._last_time + dt.timedelta(microseconds=1)
        self._last_time = now
        return now

    # ------------------------------------------------------------------ Dataset / Datastore

    def dataset_class(self):
        fake = self

        class File:
            @staticmethod
            def from_files(path, validate=True):
                def register(ws, name, description=None, tags=None, create_new_version=False):
                    with fake.lock:
                        versions = fake.datasets.setdefault(name, [])
                        record = SimpleNamespace(name=name, version=len(versions) + 1, tags=dict(tags or {}),
                                                 paths=list(path))
                        versions.append(record)
                        return record

                return SimpleNamespace(paths=list(path), register=register)

        class Dataset:
            @staticmethod
            def get_by_name(ws, name, version="latest"):
                versions = fake.datasets.get(name) or []
                if version == "latest" and versions:
                    return versions[-1]
                if str(version).isdigit() and 1 <= int(version) <= len(versions):
                    return versions[int(version) - 1]
                raise SdkError(f"Cannot find dataset registered with name '{name}' (version: {version})")

            @staticmethod
            def get_all(ws):
                return {name: versions[-1] for name, versions in fake.datasets.items()}

        Dataset.File = File
        return Dataset

    def blob_store_class(self):
        fake = self

        class Blobs:
            def __init__(self, account, container):
                self.container = container

            def ensure_container(self):
                pass

            def upload_bytes(self, name, data, *, content_type=None):
                fake.blobs[f"{self.container}/{name}"] = data

            def download_bytes(self, name):
                try:
                    return fake.blobs[f"{self.container}/{name}"]
                except KeyError:
                    raise NotFound(f"blob {self.container}/{name} does not exist") from None

        return Blobs

    # ------------------------------------------------------------------ Model

    def model_class(self):
        fake = self

        class Model:
            def __new__(cls, workspace, name=None, version=None):
                versions = fake.models.get(name) or []
                if version is None and versions:
                    return versions[-1]
                if version is not None and 1 <= int(version) <= len(versions):
                    return versions[int(version) - 1]
                raise SdkError(f"ModelNotFound: Model with name {name} (version {version}) not found")

            @staticmethod
            def register(workspace, model_path, model_name, tags=None, properties=None):
                with fake.lock:
                    versions = fake.models.setdefault(model_name, [])
                    version = len(versions) + 1
                    stored = fake.root / "models" / model_name / str(version)
                    shutil.copytree(model_path, stored / Path(model_path).name)
                    model = SimpleNamespace(name=model_name, version=version, tags=dict(tags or {}),
                                            properties=dict(properties or {}), created_time=None,
                                            url=f"aml://asset/{model_name}/{version}")

                    def download(target_dir=".", exist_ok=False, _stored=stored):
                        source = next(_stored.iterdir())
                        target = Path(target_dir) / source.name
                        shutil.copytree(source, target, dirs_exist_ok=exist_ok)
                        return str(target)

                    model.download = download
                    versions.append(model)
                    return model

            @staticmethod
            def deploy(workspace, name, models, inference_config=None, deployment_config=None,
                       deployment_target=None, overwrite=False, show_output=False):
                return fake.deploy_webservice(name, models, inference_config=inference_config,
                                              deployment_config=deployment_config,
                                              deployment_target=deployment_target, overwrite=overwrite)

            @staticmethod
            def list(workspace, name=None, tags=None, latest=False):
                found = []
                for model_name, versions in sorted(fake.models.items()):
                    if name is not None and model_name != name:
                        continue
                    for model in versions[-1:] if latest else versions:
                        if all(model.tags.get(k) == v for k, v in (tags or [])):
                            found.append(model)
                return found

        return Model

    # ------------------------------------------------------------------ Run / Experiment

    def add_run(self, run: Run) -> None:
        tags = {**run.tags, TAG_KIND: str(run.kind), TAG_DATASET: run.dataset_name,
                TAG_DATASET_VERSION: str(run.dataset_version),
                **{f"param_{k}": str(v) for k, v in run.parameters.items()}}
        properties = {"failures": json.dumps(
            [{"file": f.file, "series": f.series, "reason": f.reason} for f in run.failures])}
        self.runs[run.run_id] = SimpleNamespace(id=run.run_id, experiment=SimpleNamespace(name=run.experiment),
                                                status=AML_STATUS[run.status], tags=tags, properties=properties,
                                                submitted=_utc(run.submitted), started=_utc(run.started),
                                                ended=_utc(run.ended))

    def set_run_status(self, run_id: str, status: RunStatus) -> None:
        self.runs[run_id].status = AML_STATUS[status]

    def _sdk_run(self, record: SimpleNamespace):
        """A run as ``Run.get`` / ``Experiment.get_runs`` hand it out: its record is the service's
        RunDto (fetched once, here) which ``_run_dto`` returns as ``dto_to_dictionary`` makes it
        (snake_case keys, ISO times); ``get_details()`` answers the RunDetailsDto in camelCase,
        without tags and without the creation time, like azureml-core's ``Run.get_details``."""
        dto = RunDto(run_id=record.id, status=record.status, created_utc=record.submitted,
                     start_time_utc=record.started, end_time_utc=record.ended, tags=dict(record.tags),
                     properties=dict(record.properties))
        details = RunDetailsDto(run_id=record.id, status=record.status, start_time_utc=record.started,
                                end_time_utc=record.ended, properties=dict(record.properties), log_files={})
        return SimpleNamespace(id=record.id, experiment=record.experiment, _run_dto=ClientBase.dto_to_dictionary(dto),
                               get_details=lambda: details.as_dict(key_transformer=camel_case_transformer),
                               get_tags=lambda: dict(record.tags), get_properties=lambda: dict(record.properties))

    def run_class(self):
        fake = self

        class SdkRun:
            @staticmethod
            def get(workspace, run_id):
                if run_id not in fake.runs:
                    raise SdkError(f"RunNotFound: run {run_id} not found")
                return fake._sdk_run(fake.runs[run_id])

        return SdkRun

    def experiment_class(self):
        fake = self

        class Experiment:
            def __init__(self, workspace, name):
                self.name = name

            def get_runs(self):
                runs = [r for r in fake.runs.values() if r.experiment.name == self.name]
                return iter([fake._sdk_run(r) for r in sorted(runs, key=lambda r: r.submitted, reverse=True)])

            def submit(self, config, tags=None, **kwargs):
                """``Experiment.submit(published_pipeline, tags=..., pipeline_parameters=...)``."""
                if not isinstance(config, SdkPublishedPipeline):
                    raise SdkError(f"UserError: cannot submit {type(config).__name__} in this fake")
                record = next((p for p in fake.pipelines if p["id"] == config.id), None)
                if record is None or record["status"] != "Active":
                    raise SdkError(f"UserError: published pipeline {config.id} is not active")
                with fake.lock:
                    run_id = f"{self.name}_{uuid.uuid4()}"
                    fake.submissions.append({"run_id": run_id, "pipeline_id": config.id,
                                             "pipeline_parameters": dict(kwargs.get("pipeline_parameters") or {})})
                    fake.runs[run_id] = SimpleNamespace(
                        id=run_id, experiment=SimpleNamespace(name=self.name), status="NotStarted",
                        tags={str(k): str(v) for k, v in (tags or {}).items()}, properties={},
                        submitted=fake.now(), started=None, ended=None)
                    return fake._sdk_run(fake.runs[run_id])

        return Experiment

    # ------------------------------------------------------------------ Pipeline / PublishedPipeline

    def set_status(self, pipeline_id: str, new_status: str) -> None:
        """The REST provider's call behind ``PublishedPipeline.enable()`` / ``disable()``."""
        for record in self.pipelines:
            if record["id"] == pipeline_id:
                record["status"] = new_status
                return
        raise SdkError(f"PipelineNotFound: published pipeline {pipeline_id} not found")

    def _published(self, record: dict) -> SdkPublishedPipeline:
        return SdkPublishedPipeline(name=record["name"], graph_id=record["graph_id"],
                                    description=record["description"], version=record["version"],
                                    published_pipeline_id=record["id"], status=record["status"],
                                    endpoint=f"https://westeurope.api.azureml.ms/pipelines/v1.0/{record['id']}",
                                    total_run_steps=2, workspace=self.sdk_workspace,
                                    continue_on_step_failure=record["continue_on_step_failure"],
                                    _pipeline_provider=self)

    def published_pipeline_class(self):
        fake = self

        class PublishedPipeline:
            @staticmethod
            def list(workspace, active_only=True, _service_endpoint=None):
                return [fake._published(r) for r in fake.pipelines if not active_only or r["status"] == "Active"]

        return PublishedPipeline

    def build_pipeline(self, ws, kind, options, *, staging_dir, workflow_provider=None):
        """Stands in for shared/workspace/aml/pipeline_graph.py ``build_pipeline``: a pipeline
        whose ``publish`` (``Pipeline.publish``'s signature) records what the service keeps."""
        fake = self

        def publish(name=None, description=None, version=None, continue_on_step_failure=None):
            with fake.lock:
                record = {"id": str(uuid.uuid4()), "graph_id": str(uuid.uuid4()), "name": name,
                          "description": description, "version": version, "status": "Active",
                          "continue_on_step_failure": continue_on_step_failure, "kind": str(kind),
                          "options": options}
                fake.pipelines.append(record)
            return fake._published(record)

        return SimpleNamespace(publish=publish)

    # ------------------------------------------------------------------ Webservice

    def _model_payload(self, model) -> dict:
        """A model as the model management service lists it inside a webservice."""
        return {"createdTime": "2026-01-01T00:00:00.000000+00:00", "id": f"{model.name}:{model.version}",
                "createdBy": {"userObjectId": "00000000-0000-0000-0000-000000000001", "userName": "manymodels"},
                "description": None, "mimeType": "application/octet-stream", "name": model.name,
                "framework": "Custom", "frameworkVersion": None, "tags": dict(model.tags),
                "properties": dict(model.properties), "unpack": False, "url": model.url,
                "version": int(model.version), "experimentName": None, "runId": None, "datasets": []}

    def deploy_webservice(self, name, models, *, inference_config, deployment_config, deployment_target,
                          overwrite):
        if deployment_target is not None:
            raise SdkError("UserError: this fake deploys to ACI only (no deployment target)")
        with self.lock:
            if name in self.webservices and not overwrite:
                raise SdkError(f"Conflict: a service with name {name} already exists")
            if not models:
                raise SdkError("UserError: models must not be empty")
            when = self.now().isoformat()
            self.webservices[name] = {
                "computeType": "ACI", "createdTime": when, "updatedTime": when, "description": None,
                "kvTags": dict(deployment_config.tags or {}), "name": name, "properties": {},
                "state": "Transitioning", "error": None, "authEnabled": bool(deployment_config.auth_enabled),
                "appInsightsEnabled": False, "cname": None,
                "containerResourceRequirements": {"cpu": deployment_config.cpu_cores, "cpuLimit": None,
                                                  "memoryInGB": deployment_config.memory_gb,
                                                  "memoryInGBLimit": None, "gpu": None},
                "location": "westeurope", "publicIp": "20.0.0.1",
                "scoringUri": f"http://{uuid.uuid4()}.westeurope.azurecontainer.io/score",
                "sslCertificate": None, "sslEnabled": False, "sslKey": None, "imageId": None,
                "imageDigest": None, "createdBy": {"userName": "manymodels"},
                "models": [self._model_payload(m) for m in models],
                "environmentImageRequest": None,
            }
            if deployment_config.auth_enabled:
                self.keys[name] = (uuid.uuid4().hex, uuid.uuid4().hex)
            self.inference_configs[name] = inference_config
        return self._sdk_webservice(name)

    def _sdk_webservice(self, name: str):
        """The service's JSON as the SDK hands it out (``Webservice.deserialize``), with the REST
        calls of the object answered from the fake's store."""
        payload = self.webservices[name]
        cls = AciWebservice if payload["computeType"] == "ACI" else AksWebservice
        service = cls.deserialize(self.sdk_workspace, json.loads(json.dumps(payload)))
        fake = self

        def refresh():
            if name not in fake.webservices:
                raise SdkError(f"WebserviceNotFound: Webservice with name {name} not found in provided workspace")
            service._initialize(fake.sdk_workspace, json.loads(json.dumps(fake.webservices[name])))

        def wait_for_deployment(show_output=False, timeout_sec=None):
            with fake.lock:
                if fake.webservices.get(name, {}).get("state") == "Transitioning":
                    fake.webservices[name]["state"] = "Healthy"
            refresh()

        def update(*args, **kwargs):
            inspect.signature(cls.update).bind(service, *args, **kwargs)  # what the real method accepts
            with fake.lock:
                record = fake.webservices[name]
                if kwargs.get("models") is not None:
                    record["models"] = [fake._model_payload(m) for m in kwargs["models"]]
                if kwargs.get("auth_enabled") is not None:
                    record["authEnabled"] = bool(kwargs["auth_enabled"])
                    if record["authEnabled"]:
                        fake.keys.setdefault(name, (uuid.uuid4().hex, uuid.uuid4().hex))
                record["state"] = "Transitioning"
                record["updatedTime"] = fake.now().isoformat()
            refresh()

        def delete():
            with fake.lock:
                if name not in fake.webservices:
                    raise SdkError(f"WebserviceNotFound: Webservice with name {name} not found")
                del fake.webservices[name]
                fake.keys.pop(name, None)

        def get_keys():
            if not fake.webservices.get(name, {}).get("authEnabled"):
                raise SdkError(f"UserError: service {name} does not have key auth enabled")
            return fake.keys[name]

        service.wait_for_deployment = wait_for_deployment
        service.update = update
        service.delete = delete
        service.get_keys = get_keys
        return service

    def webservice_class(self):
        fake = self

        class Webservice:
            def __new__(cls, workspace, name):
                if name not in fake.webservices:
                    raise SdkError(f"WebserviceNotFound: Webservice with name {name} not found in provided "
                                   "workspace")
                return fake._sdk_webservice(name)

            @staticmethod
            def list(workspace, compute_type=None, image_name=None, image_id=None, model_name=None,
                     model_id=None, tags=None, properties=None, image_digest=None):
                return [fake._sdk_webservice(n) for n, p in sorted(fake.webservices.items())
                        if compute_type is None or p["computeType"] == compute_type]

        return Webservice


def _utc(text: str | None) -> dt.datetime | None:
    """A time as the SDK deserializes it into a DTO (msrest's iso-8601: an aware datetime)."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


# Where the SDK builds the model management service's URL from the workspace's discovery
# service (a REST call): the DTOs above only keep it.
_MMS_URL_USERS = ("azureml.core.model", "azureml.core.webservice.webservice", "azureml.core.webservice.aks")
def aml_backend(tmp_path: Path) -> Iterator[ContractBackend]:
    from shared.workspace.aml import datasets, models, pipelines, runs, services
    from shared.workspace.aml.workspace import AmlWorkspace
    from shared.workspace.base import ServiceConfig, ServiceKind

    fake = FakeAzureML(tmp_path / "fake-azureml")
    settings = Settings.from_env({"MANYMODELS_BACKEND": "aml", "AZURE_SUBSCRIPTION_ID": "sub", "RESOURCE_GROUP": "rg",
                                  "AML_WORKSPACE_NAME": "contractaml",
                                  "AzureWebJobsStorage": "https://contractsa.blob.core.windows.net"})
    patches = [
        mock.patch.object(datasets, "Dataset", fake.dataset_class()),
        mock.patch.object(datasets, "Datastore", mock.Mock(name="Datastore")),
        mock.patch.object(datasets, "BlobStore", fake.blob_store_class()),
        mock.patch.object(models, "Model", fake.model_class()),
        mock.patch.object(runs, "SdkRun", fake.run_class()),
        mock.patch.object(runs, "Experiment", fake.experiment_class()),
        mock.patch.object(pipelines, "Experiment", fake.experiment_class()),
        mock.patch.object(pipelines, "SdkPublishedPipeline", fake.published_pipeline_class()),
        # the graph build needs compute and datastores: the adapter calls it by this name
        mock.patch("shared.workspace.aml.pipelines.build_pipeline", fake.build_pipeline),
        mock.patch.object(services, "Model", fake.model_class()),
        mock.patch.object(services, "Webservice", fake.webservice_class()),
        *[mock.patch(f"{module}._get_mms_url", return_value="https://westeurope.api.azureml.ms/modelmanagement/v1.0")
          for module in _MMS_URL_USERS],
    ]
    for p in patches:
        p.start()
    try:
        workspace = AmlWorkspace(settings, fake.sdk_workspace)
        yield ContractBackend(workspace=workspace, add_run=fake.add_run, set_run_status=fake.set_run_status,
                              service_config=ServiceConfig(ServiceKind.ACI, "scoring/model_webservice.py"),
                              other_service_kind=ServiceKind.AKS)
    finally:
        for p in reversed(patches):
            p.stop()
