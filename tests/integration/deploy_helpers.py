"""Helpers of the local deployment tests and benchmarks: models, a stand-in scoring script, calls.

The real multi-model scoring script (``scoring/model_webservice.py``) is used when it exists;
until then, and for the service-machinery tests, a tiny stand-in with the same request format
answers each record with its model's version.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests

from shared.workspace.base import ModelRecord, NewModel, ServiceConfig

REPO = Path(__file__).resolve().parents[2]
REAL_SCRIPT = REPO / "scoring" / "model_webservice.py"

STAND_IN = '''
import json, os, time
from pathlib import Path
from azureml_inference_server_http.api.aml_request import rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse

MODELS = {}


def init():
    root = Path(os.environ["AZUREML_MODEL_DIR"])
    for folder in root.iterdir():
        versions = [int(v.name) for v in folder.iterdir() if v.name.isdigit()]
        MODELS[folder.name] = max(versions)
    time.sleep(float(os.environ.get("STAND_IN_INIT_SECONDS", "0")))  # a slow init(): many models
    if os.environ.get("STAND_IN_FAIL"):
        raise RuntimeError("asked to fail")


@rawhttp
def run(request):
    if request.method == "GET":
        return AMLResponse(json.dumps(sorted(MODELS)), 200, {"Content-Type": "application/json"})
    answers = []
    for r in json.loads(request.get_data()):
        name = r["model_type"] + "_" + "_".join(str(r["id"][k]) for k in sorted(r["id"]))
        if name in MODELS:
            answers.append({**r, "forecast": {"timestamps": ["2020-01-02T00:00:00"], "values": [MODELS[name]]}})
        else:
            answers.append({**r, "error": "unknown model " + name})
    return AMLResponse(json.dumps(answers), 200, {"Content-Type": "application/json"})
'''


def write_stand_in(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "stand_in_webservice.py"
    script.write_text(STAND_IN)
    return script


def fake_artifact(folder: Path, name: str, version_hint: int = 1) -> Path:
    """An artifact directory for the stand-in (it only reads the layout)."""
    path = folder / f"{name}-{version_hint}"
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.json").write_text(json.dumps({"name": name}))
    return path


def register_fake_models(workspace: Any, folder: Path, stores: Sequence[int], *, brand: str = "dominicks",
                         version_hint: int = 1) -> list[ModelRecord]:
    news = []
    for store in stores:
        name = f"lr_{brand}_{store}"
        news.append(NewModel(name, str(fake_artifact(folder, name, version_hint)),
                             {"ModelType": "lr", "Store": str(store), "Brand": brand}))
    return workspace.models.register_many(news)


def train_models(folder: Path, stores: Sequence[int], *, seed: int = 0, brand: str = "dominicks",
                 weeks: int = 60) -> dict[str, Path]:
    """Real ``lr`` models (scoring/forecaster.py) on simulated weekly sales: {model name: artifact dir}."""
    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(REPO / "scoring"))
    import forecaster

    settings = forecaster.ScriptSettings(id_columns=("Store", "Brand"), target_column="Quantity",
                                         timestamp_column="WeekStarting", test_size=8, freq="W-THU", horizon=8)
    rng = np.random.default_rng(seed)
    n = len(stores)
    price = rng.uniform(1.5, 3.5, (n, weeks))
    advert = rng.integers(0, 2, (n, weeks))
    quantity = 9000 - 1500 * price + 900 * advert + rng.normal(0, 300, (n, weeks))
    frame = pd.DataFrame({
        "WeekStarting": np.tile(pd.date_range("1990-06-14", periods=weeks, freq="W-THU"), n),
        "Store": np.repeat(np.array([str(s) for s in stores]), weeks), "Brand": brand,
        "Advert": advert.ravel(), "Price": price.ravel(), "Quantity": quantity.ravel().round()})
    series, _ = forecaster.split_series(frame, settings)
    out = {}
    for result in forecaster.fit_many(series, settings, ["Advert", "Price"]):
        path = folder / f"seed{seed}" / result.model.name
        result.model.save(path)
        out[result.model.name] = path
    return out


def register_trained_models(workspace: Any, folder: Path, stores: Sequence[int], *, seed: int = 0,
                            brand: str = "dominicks") -> list[ModelRecord]:
    trained = train_models(folder, stores, seed=seed, brand=brand)
    news = [NewModel(name, str(path), {"ModelType": "lr", "Store": name.rsplit("_", 1)[1], "Brand": brand})
            for name, path in trained.items()]
    return workspace.models.register_many(news)


def with_entry_script(config: ServiceConfig, script: Path) -> ServiceConfig:
    return replace(config, entry_script=str(script))


def record(store: int, brand: str = "dominicks") -> dict[str, Any]:
    """A request record for one model, one week ahead (the request format: docs/architecture.md §6)."""
    return {"id": {"Store": store, "Brand": brand}, "model_type": "lr", "forecast_freq": "W-THU",
            "forecast_horizon": 1, "data": {"future": {"Price": [2.5], "Advert": [1]}}}


def score(uri: str, records: list[dict[str, Any]], *, timeout: float = 30) -> list[dict[str, Any]]:
    response = requests.post(uri, json=records, timeout=timeout)
    response.raise_for_status()
    return response.json()


def kill_group(pid: int) -> None:
    """Kill a service process group we started (the test's own process)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp), e.g. {"127.0.0.1"}."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            octets = [str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)]
            found.add(".".join(octets))
    return found


def service_pids(home: Path) -> dict[int, list[str]]:
    """Every live scoring service process (masters and workers) of ``home``, found by command line
    alone (whatever the code under test records): {pid: its arguments}."""
    found = {}
    needle = str(Path(home).resolve() / "services").encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if b"manymodels-local-service" in cmdline and needle in cmdline and state != "Z":
            found[int(entry.name)] = [a.decode() for a in cmdline.split(b"\0") if a]
    return found


def kill_services_of(home: Path) -> None:
    """Kill (by pid) every service process of ``home`` still running: a test's last resort."""
    for pid in service_pids(home):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
