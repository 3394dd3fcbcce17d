"""The Azure ML adapter as a contract-suite backend: ``AmlWorkspace`` on a fake azureml-core SDK.

The fake stands in for the SDK classes the adapter calls (Dataset, Datastore, Model, Run,
Experiment, Webservice) and keeps what the service would keep in memory, answering the way
the service does (numeric versions, "not found" messages, tag filters). The metadata container
of dataset file lists is an in-memory blob store. To run the suite against it, the folder's
conftest registers it (pytest puts this folder on ``sys.path``)::

    from aml_backend import aml_backend
    WORKSPACE_FACTORIES["aml"] = aml_backend
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

from azureml._restclient.clientbase import ClientBase
from azureml._restclient.models import RunDetailsDto, RunDto
from azureml._restclient.utils import camel_case_transformer

from shared.errors import NotFound
from shared.settings import Settings
from shared.workspace.aml.runs import STATUS, TAG_DATASET, TAG_DATASET_VERSION, TAG_KIND
from shared.workspace.base import Run, RunStatus

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

        return Experiment

    # ------------------------------------------------------------------ Webservice

    def webservice_class(self):
        class Webservice:
            def __new__(cls, workspace, name):
                raise SdkError(f"WebserviceNotFound: There is no service with name {name}")

            @staticmethod
            def list(workspace, compute_type=None):
                return []

        return Webservice


def _utc(text: str | None) -> dt.datetime | None:
    """A time as the SDK deserializes it into a DTO (msrest's iso-8601: an aware datetime)."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def aml_backend(tmp_path: Path) -> Iterator:
    from shared.workspace.aml import datasets, models, runs, services
    from shared.workspace.aml.workspace import AmlWorkspace
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
        mock.patch.object(services, "Webservice", fake.webservice_class()),
    ]
    for p in patches:
        p.start()
    try:
        workspace = AmlWorkspace(settings, mock.Mock(name="Workspace"))
        # the fields of conftest.ContractBackend (not imported: conftest imports this module)
        yield SimpleNamespace(workspace=workspace, add_run=fake.add_run, set_run_status=fake.set_run_status)
    finally:
        for p in reversed(patches):
            p.stop()
