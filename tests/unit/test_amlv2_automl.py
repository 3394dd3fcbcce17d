"""TRAINING_METHOD=automl on SDK v2, the product's half: AutoML's models adopted under the product's names
and tags (pipelines/amlv2/steps/adopt_automl_models.py), AutoML's forecasts as the product's predictions CSV
(pipelines/amlv2/steps/automl_predictions.py), both wired into the graphs (checked through their REST form).
The step's MLClient use runs against tests/unit/workspace_contract/amlv2_backend.py's fake (real entities)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Job, Model, PipelineJob

from pipelines.aml.steps import register_models
from pipelines.amlv2.steps import adopt_automl_models as adopt
from pipelines.amlv2.steps import automl_predictions as convert
from scoring.forecaster.automl import AUTOML_TYPE, pickle_file
from scoring.model_names import model_name
from shared.data.schema import DatasetSchema
from shared.errors import InvalidValue
from shared.settings import Settings
from shared.workspace.amlv2 import pipeline_graph as build
from shared.workspace.amlv2.models import AmlV2ModelRegistry
from shared.workspace.amlv2.pipeline_graph import V2BuildOptions, automl_settings
from shared.workspace.amlv2.runs import to_run
from shared.workspace.base import PipelineKind
from shared.workspace.step_properties import COUNT_PROPERTIES, PROPERTY_FAILURES

sys.path.insert(0, str(Path(__file__).resolve().parent / "workspace_contract"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from amlv2_backend import FakeMLClient
from test_amlv2_pipelines import FakeRegistry, registry_component, rest_jobs

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "pipelines" / "configuration" / "script_settings.json"
IDS = ["Store", "Brand"]
PIPELINE_JOB = "quiet_fox_0001"  # our pipeline job
AUTOML_NODE_JOB = "quiet_fox_0001_automl_train"  # the AutoML pipeline component's job inside it
AUTOML_STEP_JOB = "quiet_fox_0001_mm_train"  # its parallel step (AutoML's StepRunId)


def options(**changes) -> V2BuildOptions:
    values = {"compute_name": "cpu-compute", "landing_datastore": "landing", "predictions_datastore": "predictions",
              "predictions_container": "predictions", **changes}
    return V2BuildOptions(**values)


def automl_tags(store: str, brand: str, *, run_id: str = AUTOML_NODE_JOB, **extra: str) -> dict[str, str]:
    """The tags AutoML's train driver writes (AutoMLPRSTrainDriver.get_tag_dict)."""
    return {"ModelType": "AutoML", "Store": store, "Brand": brand, "InputData": f"Store{store}_{brand}.csv",
            "StepRunId": AUTOML_STEP_JOB, "RunId": run_id, "ExperimentName": "manymodels-training",
            "Hash": "0" * 64, **extra}


def automl_name(store: str, brand: str) -> str:
    import hashlib

    return "automl_many_models_v2_" + hashlib.sha256(f"Store_{store}_Brand_{brand}".encode()).hexdigest()


def register_automl(client: FakeMLClient, tmp_path: Path, store: str, brand: str, **tag_changes: str) -> Model:
    """What ``best_child_run.register_model(model_path="outputs/model.pkl")`` leaves: a model of one pickle."""
    folder = tmp_path / "automl-runs" / f"{store}-{brand}-{len(list(tmp_path.glob('automl-runs/*')))}" / "outputs"
    folder.mkdir(parents=True)
    (folder / "model.pkl").write_bytes(b"pickled " + f"{store}/{brand}".encode())
    return client.models.create_or_update(Model(name=automl_name(store, brand), path=str(folder / "model.pkl"),
                                                type=AssetTypes.CUSTOM_MODEL,
                                                tags={**automl_tags(store, brand), **tag_changes}))


def with_job_tree(client: FakeMLClient, children: dict[str, list[str]]) -> None:
    """``client.jobs.list(parent_job_name=...)`` answering real Job entities of the given tree."""
    for parent, names in children.items():
        for name in [parent, *names]:
            try:
                client.jobs.get(name)
            except Exception:
                client.jobs._store(name, experiment="manymodels-training", tags={}, properties={}, status="Running",
                                   submitted=dt.datetime.now(dt.UTC))

    def list_jobs(*, parent_job_name: str | None = None, **_):
        return iter([client.jobs.get(n) for n in children.get(parent_job_name or "", [])])

    client.jobs.list = list_jobs  # type: ignore[method-assign]


# --------------------------------------------------------------------------- selection and naming


def test_job_tree_walks_every_descendant_once():
    tree = {"p": ["a", "b"], "a": ["a1"], "a1": ["p"]}  # a cycle must not loop
    assert adopt.job_tree("p", lambda n: tree.get(n, [])) == {"p", "a", "b", "a1"}
    assert adopt.job_tree("p", lambda n: tree.get(n, []), depth=1) == {"p", "a", "b"}


def test_only_this_jobs_automl_models_are_adopted_under_the_product_name(tmp_path):
    versions = [
        Model(name=automl_name("1000", "dominicks"), version="3", tags=automl_tags("1000", "dominicks")),
        Model(name=automl_name("1000", "dominicks"), version="2", tags=automl_tags("1000", "dominicks")),  # retry
        Model(name=automl_name("1000", "dominicks"), version="1", tags=automl_tags("1000", "dominicks",
                                                                                   run_id="an_older_run")),
        Model(name=automl_name("1001", "minute maid"), version="1", tags=automl_tags("1001", "minute maid")),
        Model(name="automl_1002_tropicana", version="1", tags={"ModelType": "automl", "Store": "1002",
                                                               "Brand": "tropicana", "RunId": AUTOML_NODE_JOB}),
    ]
    chosen, rejected = adopt.select_adoptions(versions, run_ids={PIPELINE_JOB, AUTOML_NODE_JOB}, id_columns=IDS)
    assert rejected == []
    assert [(a.name, a.source) for a in chosen] == sorted([
        ("automl_dominicks_1000", f"{automl_name('1000', 'dominicks')}:3"),  # the higher version of the retry
        (model_name("automl", {"Store": "1001", "Brand": "minute maid"}), f"{automl_name('1001', 'minute maid')}:1"),
    ])
    assert chosen[0].name == model_name(AUTOML_TYPE, {"Brand": "dominicks", "Store": "1000"})  # the router's name
    tags = adopt.product_tags(chosen[0], run_id=PIPELINE_JOB, dataset_version=" 7 ")
    assert tags == {"ModelType": "automl", "Store": "1000", "Brand": "dominicks", "DatasetVersion": "7",
                    "RunId": PIPELINE_JOB, "automl_model": f"{automl_name('1000', 'dominicks')}:3"}


def test_automl_models_that_cannot_be_one_series_are_reported_not_adopted():
    versions = [
        Model(name="automl_many_models_v2_x", version="1",
              tags={k: v for k, v in automl_tags("1000", "dominicks").items() if k != "Brand"}),
        Model(name="automl_many_models_v2_y", version="1", tags=automl_tags("1000+1001", "dominicks")),
        Model(name="automl_many_models_v2_z", version="1", tags=automl_tags(" ", "dominicks")),
    ]
    chosen, rejected = adopt.select_adoptions(versions, run_ids={AUTOML_NODE_JOB}, id_columns=IDS)
    assert chosen == []
    reasons = [r["reason"] for r in rejected]
    assert "has no tag for id column(s) Brand" in reasons[0]
    assert "covers several series (Store=1000+1001)" in reasons[1] and "allow_multi_partitions: false" in reasons[1]
    assert "id Store=' ' is not allowed" in reasons[2]
    assert rejected[0]["file"] == "Store1000_dominicks.csv"


def test_properties_are_the_ones_the_run_store_reads():
    properties = adopt.run_properties(found=3, registered=2, failed=[("automl_a_1", "HttpResponseError: boom")],
                                      rejected=[{"file": "f.csv", "series": "s:1", "reason": "not adopted: x"}])
    assert set(properties) - {PROPERTY_FAILURES} <= set(COUNT_PROPERTIES)
    assert (properties["models_registered"], properties["models_not_registered"], properties["series"],
            properties["failed"]) == ("2", "2", "4", "2")
    assert [f["series"] for f in json.loads(properties[PROPERTY_FAILURES])] == ["s:1", "automl_a_1"]


# --------------------------------------------------------------------------- the step against the SDK's entities


def test_adopt_all_registers_servable_models_and_fills_the_model_store(tmp_path):
    client = FakeMLClient(tmp_path / "aml")
    with_job_tree(client, {PIPELINE_JOB: [AUTOML_NODE_JOB, "quiet_fox_0001_adopt"], AUTOML_NODE_JOB: [AUTOML_STEP_JOB]})
    register_automl(client, tmp_path, "1000", "dominicks")
    register_automl(client, tmp_path, "1001", "minute maid")
    register_automl(client, tmp_path, "1000", "dominicks", RunId="an_older_run")  # another run's version 2
    store = tmp_path / "store"
    result = adopt.adopt_all(client, pipeline_job=PIPELINE_JOB, id_columns=IDS, dataset_version="7",
                             model_store=store, scratch=tmp_path / "scratch", workers=2)
    assert (result.adopted, result.not_registered) == (2, 0)
    assert result.properties["models_registered"] == "2" and result.properties["models_not_registered"] == "0"
    assert AUTOML_NODE_JOB in result.run_ids and AUTOML_STEP_JOB in result.run_ids

    dominicks = client.models.get("automl_dominicks_1000", version="1")
    assert dominicks.tags == {"ModelType": "automl", "Store": "1000", "Brand": "dominicks", "DatasetVersion": "7",
                              "RunId": PIPELINE_JOB, "automl_model": f"{automl_name('1000', 'dominicks')}:1"}
    version_dir = store / "automl_dominicks_1000" / "1"
    assert sorted(p.name for p in version_dir.iterdir()) == [register_models.DATASET_VERSION_FILE, "model.pkl"]
    assert (version_dir / "model.pkl").read_bytes() == b"pickled 1000/dominicks"  # this run's, not the older one
    assert (version_dir / register_models.DATASET_VERSION_FILE).read_text() == "7"
    assert pickle_file(version_dir) == version_dir / "model.pkl"  # what scoring/model_webservice.py serves

    # the adapter's registry lists it with the tags grouping, the router and newest.py read
    settings = Settings.from_env({"MANYMODELS_BACKEND": "local"})
    records = {r.name: r for r in AmlV2ModelRegistry(client, settings).list(latest=True)}
    maid = model_name("automl", {"Store": "1001", "Brand": "minute maid"})
    assert records[maid].tags["ModelType"] == "automl" and records[maid].tags["DatasetVersion"] == "7"
    assert automl_name("1000", "dominicks") in records  # AutoML's own model stays as it was


def test_a_failed_registration_is_counted_and_the_others_still_land(tmp_path):
    client = FakeMLClient(tmp_path / "aml")
    with_job_tree(client, {PIPELINE_JOB: [AUTOML_NODE_JOB]})
    register_automl(client, tmp_path, "1000", "dominicks")
    broken = register_automl(client, tmp_path, "1001", "tropicana")
    stored = client.models._stored(broken.name, broken.version, None)[1]
    stored.unlink()  # its artifact is gone: the download answers no model.pkl
    result = adopt.adopt_all(client, pipeline_job=PIPELINE_JOB, id_columns=IDS, dataset_version="3",
                             model_store=tmp_path / "store", scratch=tmp_path / "scratch", workers=2)
    assert (result.adopted, result.not_registered) == (1, 1)
    failures = json.loads(result.properties[PROPERTY_FAILURES])
    assert failures[0]["series"] == "automl_tropicana_1001"
    assert (tmp_path / "store" / "automl_dominicks_1000" / "1" / "model.pkl").is_file()


# --------------------------------------------------------------------------- AutoML's forecasts


def automl_forecast(stores: list[str], prediction: list[float]) -> pd.DataFrame:
    """What AutoMLPRSInferenceDriver writes for a recursive forecast: the input rows without the target,
    plus ``automl_prediction``."""
    return pd.DataFrame({"WeekStarting": pd.to_datetime(["2026-01-05", "2026-01-12"][:len(stores)]),
                         "Store": [int(s) for s in stores], "Brand": ["dominicks"] * len(stores),
                         "Advert": [1] * len(stores), "Price": [2.5] * len(stores), "automl_prediction": prediction})


def test_automl_forecasts_become_the_products_predictions_csv(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    automl_forecast(["1000", "1000"], [10.5, float("nan")]).to_parquet(raw / "Store1000_raw_predictions.parquet")
    pd.DataFrame(columns=["Store", "Brand"]).to_parquet(raw / "Store1001_raw_predictions.parquet")  # no model
    files = convert.prediction_files(raw)
    header, rows, failures = convert.convert([(f.name, convert._read(f)) for f in files],
                                             timestamp="WeekStarting", target="Quantity", ids=IDS)
    assert header == ["WeekStarting", "Prediction", "Store", "Brand"]  # copy_predictions.py's layout
    assert rows == [["2026-01-05", "10.5", "1000", "dominicks"]]
    assert failures == [{"file": "Store1000_raw_predictions.parquet", "series": "Store=1000, Brand=dominicks",
                         "reason": "AutoML gave no forecast for 2026-01-12"}]


def test_a_rolling_or_unexpected_forecast_is_refused_with_its_columns():
    rolling = automl_forecast(["1000"], [1.0]).assign(forecast_origin=pd.Timestamp("2026-01-01"))
    with pytest.raises(ValueError, match=r"rolling forecast.*forecast_mode: recursive"):
        convert.convert([("a.parquet", rolling)], timestamp="WeekStarting", target="Quantity", ids=IDS)
    other = automl_forecast(["1000"], [1.0]).drop(columns=["automl_prediction", "Brand"])
    with pytest.raises(ValueError, match=r"a.parquet: column\(s\) Brand, automl_prediction or Predictions missing; "
                                         "it has WeekStarting, Store, Advert, Price"):
        convert.convert([("a.parquet", other)], timestamp="WeekStarting", target="Quantity", ids=IDS)


# --------------------------------------------------------------------------- staging and the graphs


def test_staged_steps_import_only_their_own_folder(tmp_path):
    steps = build.stage_automl_steps(SCHEMA_FILE, tmp_path)
    assert {"adopt_automl_models.py", "automl_predictions.py", "register_models.py", "copy_predictions.py",
            "model_names.py", build.STAGED_SETTINGS_NAME} <= {p.name for p in steps.iterdir()}
    probe = ("import adopt_automl_models as a, automl_predictions as p; "
             "print(a.model_names.__file__, a.register_models.__file__, p.copy_predictions.__file__); "
             "print(a.read_id_columns('script_settings.json'))")
    done = subprocess.run([sys.executable, "-S", "-c", probe], cwd=steps, capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(steps)})
    assert done.returncode == 0, done.stderr
    paths, columns = done.stdout.splitlines()
    assert all(Path(p).parent == steps for p in paths.split())
    assert columns == "['Store', 'Brand']"


def test_automl_training_adopts_after_the_automl_step(tmp_path):
    component = build.build_automl_component(PipelineKind.TRAINING, options(default_datastore="wsblob"),
                                             FakeRegistry().get(build.AUTOML_TRAINING_COMPONENT),
                                             settings=automl_settings(DatasetSchema.load(SCHEMA_FILE)),
                                             staging_dir=tmp_path)
    rest = rest_jobs(component)
    node = rest[build.ADOPT_STEP]
    assert node["type"] == "command"
    assert node["inputs"]["automl_output"]["value"] == "${{parent.jobs.automl_train.outputs.run_output}}"
    assert node["inputs"]["dataset_version"]["value"] == "${{parent.inputs.dataset_version}}"
    assert node["outputs"]["model_store"]["uri"] == "azureml://datastores/wsblob/paths/manymodels/models/"
    assert node["outputs"]["model_store"]["mode"] == "ReadWriteMount"
    assert "identity" not in node  # the default job identity: mounts as the other steps'; MLClient: the cluster's
    step = component.jobs[build.ADOPT_STEP].component
    assert step.command.startswith("python adopt_automl_models.py --automl-output ${{inputs.automl_output}} ")
    assert "--settings-file script_settings.json" in step.command
    assert (Path(step.code) / "adopt_automl_models.py").is_file() and (Path(step.code) / "model_names.py").is_file()
    assert set(component.inputs) == {"data", "dataset_version"}


def test_automl_forecasting_converts_the_raw_predictions(tmp_path):
    component = build.build_automl_component(PipelineKind.FORECASTING, options(predictions_container="preds"),
                                             FakeRegistry().get(build.AUTOML_INFERENCE_COMPONENT),
                                             settings=automl_settings(DatasetSchema.load(SCHEMA_FILE)),
                                             staging_dir=tmp_path)
    rest = rest_jobs(component)
    node = rest[build.AUTOML_PREDICTIONS_STEP]
    assert node["inputs"]["automl_predictions"]["value"] == "${{parent.jobs.automl_forecast.outputs.raw_predictions}}"
    assert node["outputs"]["predictions"]["uri"] == "azureml://datastores/predictions/paths/"
    command = component.jobs[build.AUTOML_PREDICTIONS_STEP].component.command
    assert "python automl_predictions.py --automl-predictions ${{inputs.automl_predictions}}" in command
    assert "--predictions-container preds" in command


@pytest.mark.parametrize("kind, name, output", [
    (PipelineKind.TRAINING, build.AUTOML_TRAINING_COMPONENT, "run_output"),
    (PipelineKind.FORECASTING, build.AUTOML_INFERENCE_COMPONENT, "raw_predictions"),
])
def test_a_registry_component_without_the_output_a_step_reads_is_refused(tmp_path, kind, name, output):
    inputs = ("raw_data", "automl_config") if kind == PipelineKind.TRAINING else ("raw_data",)
    broken = registry_component(name, inputs, ("something_else",))
    with pytest.raises(InvalidValue, match=f"has no output '{output}'.*its outputs are something_else"):
        build.build_automl_component(kind, options(), broken, settings=automl_settings(DatasetSchema.load(SCHEMA_FILE)),
                                     staging_dir=tmp_path)


def test_the_job_entity_carries_the_adopt_steps_counts():
    properties = adopt.run_properties(found=2, registered=2, failed=[], rejected=[])
    job = Job._from_rest_object(PipelineJob(experiment_name="manymodels-training", properties=properties,
                                            tags={})._to_rest_object())
    assert to_run(job).counts == {"models_registered": 2, "models_not_registered": 0, "series": 2, "failed": 0,
                                  "fallback": 0}


def test_the_documented_inference_outputs_feed_the_collected_forecasts_file(tmp_path):
    # the outputs the registry's docs wire (run_output, evaluation_configs, evaluation_data): no raw_predictions
    documented = registry_component(build.AUTOML_INFERENCE_COMPONENT, ("raw_data", "partition_column_names"),
                                    ("run_output", "evaluation_configs", "evaluation_data"))
    component = build.build_automl_component(PipelineKind.FORECASTING, options(), documented,
                                             settings=automl_settings(DatasetSchema.load(SCHEMA_FILE)),
                                             staging_dir=tmp_path)
    node = rest_jobs(component)[build.AUTOML_PREDICTIONS_STEP]
    assert node["inputs"]["automl_predictions"]["value"] == "${{parent.jobs.automl_forecast.outputs.evaluation_data}}"
    step_input = component.jobs[build.AUTOML_PREDICTIONS_STEP].component.inputs["automl_predictions"]
    assert (step_input.type, step_input.mode) == ("uri_file", "download")


def test_forecast_files_are_read_by_their_content(tmp_path):
    frame = automl_forecast(["1000"], [4.0])
    frame.to_parquet(tmp_path / "evaluation_data")  # a downloaded uri_file keeps no suffix
    frame.to_json(tmp_path / "lines", orient="records", lines=True, date_format="iso")
    frame.to_csv(tmp_path / "table", index=False)
    for name in ("evaluation_data", "lines", "table"):
        read = convert._read(tmp_path / name)
        _, rows, _ = convert.convert([(name, read)], timestamp="WeekStarting", target="Quantity", ids=IDS)
        assert rows == [["2026-01-05", "4.0", "1000", "dominicks"]], name
    assert convert.prediction_files(tmp_path / "lines") == [tmp_path / "lines"]


@pytest.mark.parametrize("line, message", [
    ("forecast_mode: rolling", "field 'forecast_mode' is 'rolling': expected 'recursive'"),
    ("allow_multi_partitions: true", "field 'allow_multi_partitions' is True: expected False"),
])
def test_settings_the_product_steps_cannot_take_are_refused(tmp_path, line, message):
    path = tmp_path / "automl.yml"
    path.write_text(f"task: forecasting\nprimary_metric: r2_score\n{line}\n")
    with pytest.raises(InvalidValue, match=message):
        automl_settings(DatasetSchema.load(SCHEMA_FILE), path)


class FakeStepRun:
    """``azureml.core.Run.get_context()`` in a pipeline step: its parent is the pipeline job."""

    def __init__(self, parent: FakeStepRun | None = None, run_id: str = PIPELINE_JOB) -> None:
        self.parent = parent
        self.id = run_id
        self.properties: dict[str, str] = {}

    def add_properties(self, properties: dict[str, str]) -> None:
        self.properties.update(properties)


@pytest.fixture
def step_context(monkeypatch):
    import types

    pipeline = FakeStepRun()
    module = types.ModuleType("azureml.core")
    module.Run = types.SimpleNamespace(get_context=lambda: FakeStepRun(parent=pipeline, run_id="step"))
    monkeypatch.setitem(sys.modules, "azureml.core", module)
    return pipeline


def test_the_step_writes_its_counts_on_the_pipeline_job(tmp_path, monkeypatch, step_context):
    client = FakeMLClient(tmp_path / "aml")
    with_job_tree(client, {PIPELINE_JOB: [AUTOML_NODE_JOB]})
    register_automl(client, tmp_path, "1000", "dominicks")
    monkeypatch.setattr(adopt, "connect", lambda: client)
    code = adopt.main(["--automl-output", str(tmp_path), "--model-store", str(tmp_path / "store"),
                       "--dataset-version", "5", "--settings-file", str(SCHEMA_FILE)])
    assert code == 0
    assert step_context.properties["models_registered"] == "1" and step_context.properties["series"] == "1"
    assert client.models.get("automl_dominicks_1000", version="1").tags["RunId"] == PIPELINE_JOB


def test_the_step_fails_when_none_of_automls_models_is_this_jobs(tmp_path, monkeypatch, step_context, capsys):
    client = FakeMLClient(tmp_path / "aml")
    with_job_tree(client, {PIPELINE_JOB: [AUTOML_NODE_JOB]})
    register_automl(client, tmp_path, "1000", "dominicks", RunId="another_pipeline")
    monkeypatch.setattr(adopt, "connect", lambda: client)
    code = adopt.main(["--automl-output", str(tmp_path), "--model-store", str(tmp_path / "store"),
                       "--settings-file", str(SCHEMA_FILE)])
    assert code == 1
    assert f"with a RunId among {PIPELINE_JOB}, {AUTOML_NODE_JOB} was found" in capsys.readouterr().err
    assert step_context.properties["models_registered"] == "0"


def test_the_predictions_step_writes_the_csv_and_its_properties(tmp_path, step_context):
    raw = tmp_path / "raw"
    raw.mkdir()
    automl_forecast(["1000", "1000"], [10.5, 11.0]).to_parquet(raw / "Store1000_raw_predictions.parquet")
    code = convert.main(["--automl-predictions", str(raw), "--predictions", str(tmp_path / "out"),
                         "--settings-file", str(SCHEMA_FILE), "--predictions-container", "preds"])
    assert code == 0
    (written,) = (tmp_path / "out").iterdir()
    assert written.name.startswith("forecasts_") and written.name.endswith(f"_{PIPELINE_JOB}.csv")
    assert written.read_text().splitlines() == ["WeekStarting,Prediction,Store,Brand", "2026-01-05,10.5,1000,dominicks",
                                                "2026-01-12,11.0,1000,dominicks"]
    assert step_context.properties == {"predictions": f"preds/{written.name}", "rows": "2", "failed": "0"}
