"""AutoML training step 2: adopt the models Azure AutoML many models registered in this pipeline job.

AutoML (the ``azureml`` registry's ``automl_many_models_training``; its runtime
``AutoMLPRSTrainDriver.get_tag_dict`` and ``AutoMLPRSDriverBase.get_model_name``) registers one model per
partition as ``automl_many_models_v2_<sha256>`` with the tags ``ModelType=AutoML``, one tag per partition
column (the schema's id columns, shared/workspace/amlv2/pipeline_graph.py ``automl_settings``),
``InputData``, ``StepRunId``, ``RunId`` (the parent of its parallel step: a job INSIDE this pipeline job,
not the pipeline job itself), ``ExperimentName`` and ``Hash``. Neither grouping nor the router can serve
that: they find a model by ``scoring/model_names.py`` ``model_name(model_type, ids)`` and pick its newest
version by the ``DatasetVersion`` and ``RunId`` tags (shared/workspace/newest.py).

Selection (decided here): the models of
THIS job are the versions named ``automl_many_models_v2_*`` tagged ``ModelType=AutoML`` whose ``RunId`` is
this pipeline job or one of its descendant jobs (``MLClient.jobs.list(parent_job_name=...)``, walked down).
The tags alone cannot tell two runs apart otherwise: AutoML re-registers a partition's name every run.

Each selected version becomes the product's model ``model_name("automl", ids)`` (a ``custom_model`` folder
holding only ``model.pkl``, what scoring/model_webservice.py serves as an AutoML model) tagged
``ModelType=automl``, the id columns, ``DatasetVersion`` (the job's ``dataset_version`` input), ``RunId``
(this pipeline job) and ``automl_model=<name>:<version>``, and is copied into the model store exactly
like pipelines/aml/steps/register_models.py ``copy_to_store``. The step writes the counts the custom-script
register step writes on the pipeline job (``models_registered``, ``models_not_registered``, ``series``,
``failed``, ``fallback``, ``failures``), so the run store reads them the same way.

Identity: a compute cluster's managed identity, ``ManagedIdentityCredential`` (client id
``DEFAULT_IDENTITY_CLIENT_ID``, which Azure ML sets on a cluster with a user-assigned identity; the
system-assigned one otherwise). ``azure.ai.ml.identity.AzureMLOnBehalfOfCredential`` only works in a job
submitted with a *user* identity, and the product's jobs are submitted by the Function app's managed
identity. The cluster's identity needs AzureML Data Scientist on the workspace (read jobs, read/write models);
the job itself keeps the default identity, so its mounts use the datastores' credentials like the other steps.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # staged: register_models.py and model_names.py sit beside this script
    import model_names  # type: ignore[import-not-found]
    import register_models  # type: ignore[import-not-found]
except ImportError:  # in the repository (tests): the same files where they live
    from pipelines.aml.steps import register_models
    from scoring import model_names

AUTOML_NAME_PREFIX = "automl_many_models_v2_"  # AutoMLPRSDriverBase.get_model_name with RUN_TYPE_MM
AUTOML_MODEL_TYPE = "AutoML"  # the ModelType tag AutoML writes
PRODUCT_MODEL_TYPE = "automl"  # scoring/forecaster/automl.py AUTOML_TYPE: the webservice's and router's model type
SOURCE_TAG = "automl_model"
PICKLE_FILE = "model.pkl"
MULTI_PARTITION_SEPARATOR = "+"  # AutoML joins the values of a multi-partition model with "+"
MAX_JOB_DEPTH = 4  # pipeline job -> AutoML pipeline component -> its steps -> (a nested level, if any)
WORKERS = 16


@dataclass(frozen=True, slots=True)
class Adoption:
    """One AutoML model version to register under the product's name."""

    name: str  # model_name("automl", ids)
    ids: Mapping[str, str]
    source_name: str  # AutoML's model name and version
    source_version: str

    @property
    def source(self) -> str:
        return f"{self.source_name}:{self.source_version}"


def job_tree(root: str, children: Callable[[str], Iterable[str]], *, depth: int = MAX_JOB_DEPTH) -> set[str]:
    """``root`` and the names of every job below it (``children(name)`` lists a job's child job names)."""
    found = {root}
    level = [root]
    for _ in range(depth):
        below = [c for name in level for c in children(name) if c and c not in found]
        if not below:
            break
        found.update(below)
        level = below
    return found


def _version_number(text: object) -> int:
    return int(str(text)) if str(text).isdigit() else -1


def select_adoptions(versions: Iterable[Any], *, run_ids: Collection[str],
                     id_columns: Sequence[str]) -> tuple[list[Adoption], list[dict[str, str]]]:
    """(the AutoML versions of this job to adopt, one per series, by name; why the others of this job cannot be).

    ``versions`` are model entities (``name``, ``version``, ``tags``). A version belongs to this job when it
    is tagged ``ModelType=AutoML`` with a ``RunId`` in ``run_ids``; of two for the same series (a retried
    partition) the higher version wins. Versions of other runs are ignored, not reported.
    """
    best: dict[str, tuple[Adoption, int]] = {}
    rejected: list[dict[str, str]] = []
    for version in versions:
        tags = {str(k): str(v) for k, v in (getattr(version, "tags", None) or {}).items()}
        if tags.get("ModelType") != AUTOML_MODEL_TYPE or tags.get("RunId") not in run_ids:
            continue
        source = f"{version.name}:{version.version}"
        missing = [c for c in id_columns if c not in tags]
        if missing:
            rejected.append({"file": tags.get("InputData", ""), "series": source,
                             "reason": f"not adopted: AutoML model {source} has no tag for id column(s) "
                                       f"{', '.join(missing)} (its partition columns must be the schema's id columns)"})
            continue
        ids = {c: tags[c] for c in id_columns}
        merged = [c for c, v in ids.items() if MULTI_PARTITION_SEPARATOR in v]
        if merged:
            rejected.append({"file": tags.get("InputData", ""), "series": source,
                             "reason": f"not adopted: AutoML model {source} covers several series "
                                       f"({', '.join(f'{c}={ids[c]}' for c in merged)}); set "
                                       "allow_multi_partitions: false"})
            continue
        try:
            name = model_names.model_name(PRODUCT_MODEL_TYPE, ids)
        except model_names.InvalidModelName as e:
            rejected.append({"file": tags.get("InputData", ""), "series": source, "reason": f"not adopted: {e}"})
            continue
        number = _version_number(version.version)
        if name not in best or number > best[name][1]:
            best[name] = (Adoption(name=name, ids=ids, source_name=str(version.name),
                                   source_version=str(version.version)), number)
    return [best[n][0] for n in sorted(best)], rejected


def product_tags(adoption: Adoption, *, run_id: str, dataset_version: str) -> dict[str, str]:
    """The tags grouping, the router and shared/workspace/newest.py read (the custom script's, train.py)."""
    return {"ModelType": PRODUCT_MODEL_TYPE, **dict(adoption.ids), "DatasetVersion": dataset_version.strip(),
            "RunId": run_id, SOURCE_TAG: adoption.source}


def find_pickle(folder: Path) -> Path:
    """The ``model.pkl`` a downloaded AutoML model holds (AutoML registers ``outputs/model.pkl``)."""
    found = sorted(folder.rglob(PICKLE_FILE))
    if not found:
        raise FileNotFoundError(f"no {PICKLE_FILE} in the downloaded AutoML model ({folder})")
    return found[0]


def automl_versions(client: Any, *, workers: int = WORKERS) -> list[Any]:
    """Every active version of every ``automl_many_models_v2_*`` model (the v2 API lists one name's
    versions, or the names: no tag filter), read in parallel."""
    names = sorted({str(m.name) for m in client.models.list() if str(m.name).startswith(AUTOML_NAME_PREFIX)})
    with ThreadPoolExecutor(max_workers=workers) as pool:
        per_name = list(pool.map(lambda n: list(client.models.list(name=n)), names))
    return [v for versions in per_name for v in versions]


def adopt(client: Any, adoption: Adoption, *, run_id: str, dataset_version: str, model_store: Path,
          scratch: Path) -> int:
    """Register one adoption (download AutoML's model, register the ``model.pkl`` folder under the product's
    name) and copy it into the model store; returns the new version number."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    work = Path(tempfile.mkdtemp(prefix=f"{adoption.name[:40]}-", dir=scratch))
    try:
        client.models.download(name=adoption.source_name, version=adoption.source_version,
                               download_path=str(work / "download"))
        folder = work / "artifact" / adoption.name
        folder.mkdir(parents=True)
        shutil.copy2(find_pickle(work / "download"), folder / PICKLE_FILE)
        registered = client.models.create_or_update(Model(
            name=adoption.name, path=str(folder), type=AssetTypes.CUSTOM_MODEL,
            description=f"Azure AutoML many models {adoption.source}",
            tags=product_tags(adoption, run_id=run_id, dataset_version=dataset_version)))
        version = int(str(registered.version))
        register_models.copy_to_store(folder, model_store, str(registered.name), version,
                                      dataset_version=dataset_version)
        return version
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_properties(*, found: int, registered: int, failed: Sequence[tuple[str, str]],
                   rejected: Sequence[dict[str, str]]) -> dict[str, str]:
    """The pipeline job's properties, named as register_models.py writes them (shared/workspace/amlv2/tags.py)."""
    failures = [*rejected, *({"file": "", "series": name, "reason": f"not registered: {error}"}
                             for name, error in failed)]
    return {"models_registered": str(registered), "models_not_registered": str(len(failed) + len(rejected)),
            "series": str(found + len(rejected)), "failed": str(len(failed) + len(rejected)), "fallback": "0",
            "failures": json.dumps(failures[:register_models.MAX_RECORDED_FAILURES])}


def read_id_columns(settings_file: str) -> list[str]:
    path = Path(settings_file)
    if not path.is_absolute() and not path.exists():
        path = Path(__file__).resolve().parent / path
    columns = json.loads(path.read_text()).get("id_columns")
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns):
        raise ValueError(f"{path.name}: field 'id_columns' is {columns!r}: expected a list of column names")
    return columns


def connect() -> Any:
    """An ``MLClient`` on this job's workspace under the compute's managed identity (module docstring)."""
    from azure.ai.ml import MLClient
    from azure.identity import ManagedIdentityCredential

    missing = [v for v in ("AZUREML_ARM_SUBSCRIPTION", "AZUREML_ARM_RESOURCEGROUP", "AZUREML_ARM_WORKSPACE_NAME")
               if not os.environ.get(v)]
    if missing:
        raise RuntimeError(f"environment variable(s) {', '.join(missing)} are not set: this step runs as an "
                           "Azure ML job, which sets them")
    client_id = os.environ.get("DEFAULT_IDENTITY_CLIENT_ID")
    credential = ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    return MLClient(credential, os.environ["AZUREML_ARM_SUBSCRIPTION"], os.environ["AZUREML_ARM_RESOURCEGROUP"],
                    os.environ["AZUREML_ARM_WORKSPACE_NAME"])


@dataclass(frozen=True, slots=True)
class AdoptionResult:
    properties: Mapping[str, str]  # for the pipeline job
    adopted: int
    not_registered: int  # registrations that failed (the step fails after trying every other one)
    run_ids: frozenset[str]  # the jobs whose AutoML models were looked for


def adopt_all(client: Any, *, pipeline_job: str, id_columns: Sequence[str], dataset_version: str,
              model_store: Path, scratch: Path, workers: int = WORKERS) -> AdoptionResult:
    """Select, register and store this job's AutoML models (downloads go under ``scratch``)."""
    scratch.mkdir(parents=True, exist_ok=True)
    run_ids = job_tree(pipeline_job, lambda n: [str(j.name) for j in client.jobs.list(parent_job_name=n)])
    adoptions, rejected = select_adoptions(automl_versions(client, workers=workers), run_ids=run_ids,
                                           id_columns=id_columns)
    by_name = {a.name: a for a in adoptions}
    registered, failed = register_models.register_all(
        [{"name": a.name} for a in adoptions],
        lambda entry: adopt(client, by_name[entry["name"]], run_id=pipeline_job, dataset_version=dataset_version,
                            model_store=model_store, scratch=scratch),
        workers=workers)
    for name, error in failed:
        print(f"model {name} ({by_name[name].source}) was not registered: {error}", file=sys.stderr)
    for entry in rejected:
        print(entry["reason"], file=sys.stderr)
    return AdoptionResult(
        properties=run_properties(found=len(adoptions), registered=len(registered), failed=failed, rejected=rejected),
        adopted=len(registered), not_registered=len(failed), run_ids=frozenset(run_ids))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--automl-output", required=True, type=Path,
                        help="the AutoML training's run_output (a dependency: this step runs after it)")
    parser.add_argument("--model-store", required=True, type=Path)
    parser.add_argument("--dataset-version", default="")
    parser.add_argument("--settings-file", required=True)
    args, _ = parser.parse_known_args(argv)

    from azureml.core import Run  # only on Azure ML compute: the job context and its properties

    run = Run.get_context()
    pipeline_run = run.parent or run
    with tempfile.TemporaryDirectory(prefix="adopt-automl-") as scratch:
        result = adopt_all(connect(), pipeline_job=pipeline_run.id, id_columns=read_id_columns(args.settings_file),
                           dataset_version=args.dataset_version, model_store=args.model_store, scratch=Path(scratch))
    pipeline_run.add_properties(dict(result.properties))
    print(json.dumps({k: v for k, v in result.properties.items() if k != "failures"}))
    if result.properties["series"] == "0":
        # AutoML's step succeeded (this step depends on it) yet nothing here is its: the selection missed
        print(f"no AutoML model tagged ModelType={AUTOML_MODEL_TYPE} with a RunId among "
              f"{', '.join(sorted(result.run_ids))} was found", file=sys.stderr)
        return 1
    return 1 if result.not_registered else 0


if __name__ == "__main__":
    sys.exit(main())
