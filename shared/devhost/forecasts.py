"""Ask the router for forecasts of a few series, the way a client application would, and draw one.

A request record carries the series ids, the recent history (timestamp + target) from the train
file and the future exogenous features from the inference file (the request format: docs/architecture.md §6).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from shared.data.schema import DatasetSchema
from shared.errors import Unavailable

HISTORY_WEEKS = 8
PLOTTED_HISTORY_WEEKS = 52  # the last year: the forecast weeks stay readable


@dataclass(frozen=True, slots=True)
class SeriesFiles:
    train: Path
    inference: Path


def request_record(files: SeriesFiles, schema: DatasetSchema, *, horizon: int | None = None) -> dict[str, Any]:
    history = pd.read_csv(files.train)
    future = pd.read_csv(files.inference)
    steps = min(horizon or schema.horizon, schema.horizon, len(future))
    ts = schema.timestamp_column
    features = schema.feature_columns(future.columns)
    tail = history.tail(HISTORY_WEEKS)
    ids = {c: _plain(history[c].iloc[0]) for c in schema.id_columns}
    return {
        "id": ids,
        "model_type": schema.model_type,
        "forecast_start": str(future[ts].iloc[0]),
        "forecast_freq": schema.freq,
        "forecast_horizon": int(steps),
        "data": {
            "historical": {ts: [str(v) for v in tail[ts]], schema.target_column: [float(v) for v in
                                                                                    tail[schema.target_column]]},
            "future": {ts: [str(v) for v in future[ts].iloc[:steps]],
                       **{c: [float(v) for v in future[c].iloc[:steps]] for c in features}},
        },
    }


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def ask_router(router_url: str, records: list[dict[str, Any]], *, timeout: float = 60.0) -> list[dict[str, Any]]:
    try:
        answer = requests.post(router_url, json=records, timeout=timeout)
    except requests.RequestException as e:
        raise Unavailable(f"the router at {router_url} does not answer: {e}") from e
    if answer.status_code >= 500 and not answer.content:
        raise Unavailable(f"the router answered {answer.status_code}")
    body = answer.json()
    if not isinstance(body, list):
        raise Unavailable(f"the router answered {answer.status_code} with {str(body)[:300]}")
    return body


def table_rows(answers: list[dict[str, Any]], schema: DatasetSchema) -> list[dict[str, Any]]:
    rows = []
    for a in answers:
        ids = " ".join(f"{c}={a.get('id', {}).get(c)}" for c in schema.id_columns)
        forecast = a.get("forecast") or {}
        values = forecast.get("values") or []
        stamps = forecast.get("timestamps") or []
        rows.append({"series": ids, "weeks": len(values), "from": str(stamps[0])[:10] if stamps else "",
                     "first values": ", ".join(f"{v:,.0f}" for v in values[:4]),
                     "status": "ok" if values else f"error: {a.get('error')}"})
    return rows


def plot_series(files: SeriesFiles, answer: dict[str, Any], schema: DatasetSchema, path: Path) -> Path:
    """PNG of the series' history, its actuals in the forecast weeks, and the router's forecast."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts, target = schema.timestamp_column, schema.target_column
    history = pd.read_csv(files.train, parse_dates=[ts]).tail(PLOTTED_HISTORY_WEEKS)
    actual = pd.read_csv(files.inference, parse_dates=[ts])
    forecast = answer.get("forecast") or {}
    stamps = pd.to_datetime(forecast.get("timestamps") or [])
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(history[ts], history[target], label="history", color="tab:blue", linewidth=1)
    ax.plot(actual[ts].iloc[:len(stamps)], actual[target].iloc[:len(stamps)], label="actual", color="tab:gray",
            linewidth=1, linestyle="--")
    ax.plot(stamps, forecast.get("values") or [], label="forecast (router)", color="tab:orange", marker="o")
    ids = ", ".join(f"{c} {answer.get('id', {}).get(c)}" for c in schema.id_columns)
    ax.set_title(f"{ids}: weekly {target}")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
