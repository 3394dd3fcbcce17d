"""AutoML forecasting step 2: the product's predictions CSV from Azure AutoML many models' forecasts.

The ``azureml`` registry's ``automl_many_models_inference`` writes, per input file,
``<file>_raw_predictions.parquet`` (its runtime's ``AutoMLPRSInferenceDriver``): the forecast rows of the
input with the target column dropped and the forecast in ``automl_prediction`` (recursive forecast mode;
``rolling`` mode writes other columns and is refused). The graph hands this step that folder when the
component declares it as an output (``raw_predictions``), else the collected ``evaluation_data`` file
(the output its docs wire to ``compute_metrics``): a folder of parquet/CSV/JSON-lines files or one file.
This step keeps the time column, the prediction
and the id columns (the target too when a file has it), writes them as ``forecasts_<YYYYMMDD>_<runid>.csv``
with the header pipelines/aml/steps/copy_predictions.py writes (``<timestamp>,Prediction,[<target>,]<ids>``)
into the predictions output, and records ``predictions``, ``rows`` and ``failed`` (rows without a
forecast) on the pipeline job, as the custom-script step does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:  # staged: copy_predictions.py sits beside this script
    import copy_predictions  # type: ignore[import-not-found]
except ImportError:  # in the repository (tests)
    from pipelines.aml.steps import copy_predictions

# AutoML's prediction column (HTSConstants.PREDICTION_COLUMN), then the v1 runtime's ("Predictions")
PREDICTION_COLUMNS = ("automl_prediction", "Predictions")
ROLLING_COLUMNS = ("forecast_origin",)  # AutoMLPRSInferenceDriver.FORECAST_ORIGIN_COLUMN: rolling mode's output
SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")


def prediction_files(folder: Path) -> list[Path]:
    """The forecast files under ``folder`` (a uri_folder output), or the one file a uri_file input is."""
    if folder.is_file():
        return [folder]
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def _read(path: Path) -> Any:
    """A forecast file by its content (a downloaded uri_file keeps whatever name it was written with):
    parquet (``PAR1``), JSON lines, or CSV."""
    import pandas as pd

    with path.open("rb") as f:
        head = f.read(4)
    if head == b"PAR1":
        return pd.read_parquet(path)
    if head.lstrip()[:1] in (b"{", b"["):
        return pd.read_json(path, lines=head.lstrip()[:1] == b"{")
    return pd.read_csv(path)


def _text(value: Any) -> str:
    import pandas as pd

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.isoformat()
    return str(value)


def _dates(column: Any) -> Any:
    import pandas as pd

    return pd.to_datetime(column)


def convert(frames: Sequence[tuple[str, Any]], *, timestamp: str, target: str,
            ids: Sequence[str]) -> tuple[list[str], list[list[str]], list[dict[str, str]]]:
    """(header, rows, failures) of AutoML's forecast frames (``(file name, DataFrame)`` pairs).

    Raises:
        ValueError: a frame lacks the time or an id column, has no prediction column, or is a rolling
        forecast; the message names the file, the columns it has and what was expected.
    """
    has_target = any(target in frame.columns for _, frame in frames)
    header = [timestamp, "Prediction", *([target] if has_target else []), *ids]
    rows: list[list[str]] = []
    failures: list[dict[str, str]] = []
    for name, frame in frames:
        columns = [str(c) for c in frame.columns]
        if frame.empty:  # AutoML writes an empty frame for a file none of whose series it has a model for
            continue
        if any(c in columns for c in ROLLING_COLUMNS):
            raise ValueError(f"{name}: a rolling forecast (column {ROLLING_COLUMNS[0]!r}): set forecast_mode: "
                             "recursive in automl-many-models-settings.yml, the batch forecast of the next horizon")
        prediction = next((c for c in PREDICTION_COLUMNS if c in columns), None)
        missing = [c for c in (timestamp, *ids) if c not in columns]
        if prediction is None or missing:
            wanted = [*missing, *([] if prediction else [" or ".join(PREDICTION_COLUMNS)])]
            raise ValueError(f"{name}: column(s) {', '.join(wanted)} missing; it has {', '.join(columns)}")
        if not str(frame[timestamp].dtype).startswith("datetime"):  # CSV / JSON text: the same dates as parquet
            with contextlib.suppress(ValueError, TypeError):  # not dates: written as they are
                frame = frame.assign(**{timestamp: _dates(frame[timestamp])})
        for record in frame.to_dict("records"):
            value = record[prediction]
            series = ", ".join(f"{c}={_text(record[c])}" for c in ids)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                failures.append({"file": name, "series": series,
                                 "reason": f"AutoML gave no forecast for {_text(record[timestamp])}"})
                continue
            rows.append([_text(record[timestamp]), repr(float(value)),
                         *([_text(record.get(target))] if has_target else []), *(_text(record[c]) for c in ids)])
    return header, rows, failures


def read_schema(settings_file: str) -> dict[str, Any]:
    path = Path(settings_file)
    if not path.is_absolute() and not path.exists():
        path = Path(__file__).resolve().parent / path
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--automl-predictions", required=True, type=Path)
    parser.add_argument("--predictions", required=True, type=Path)
    parser.add_argument("--settings-file", required=True)
    parser.add_argument("--predictions-container", default="predictions")
    args, _ = parser.parse_known_args(argv)

    schema = read_schema(args.settings_file)
    files = prediction_files(args.automl_predictions)
    if not files:
        print(f"no .parquet or .csv forecast file in {args.automl_predictions}", file=sys.stderr)
        return 1
    header, rows, failures = convert([(f.name, _read(f)) for f in files], timestamp=schema["timestamp_column"],
                                     target=schema["target_column"], ids=list(schema["id_columns"]))

    from azureml.core import Run  # only on Azure ML compute

    run = Run.get_context()
    pipeline_run = run.parent or run
    name = copy_predictions.output_name(pipeline_run.id)
    copy_predictions.write_csv(args.predictions / name, header, rows)
    for failure in failures[:100]:
        print(f"forecast failed for {failure['series']}: {failure['reason']}", file=sys.stderr)
    pipeline_run.add_properties({"predictions": f"{args.predictions_container}/{name}", "rows": str(len(rows)),
                                 "failed": str(len(failures))})
    print(json.dumps({"predictions": name, "rows": len(rows), "failed": len(failures)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
