"""Memory of one scoring process serving N models through ``scoring/model_webservice.py``.

Trains N small ``lr`` models (simulated weekly series, fitted in one batched call), writes them in
the registered-model layout ``<name>/<version>/model.json``, then starts a fresh Python process that
imports the scoring script and calls its ``init()`` with ``AZUREML_MODEL_DIR`` pointing there, and
reads that process's resident memory before and after. With ``--server`` it also starts the real
``azmlinfsrv`` (on 127.0.0.1) on the same models and reads its worker's memory once it answers.

    .venv/bin/python benchmarks/model_memory.py --models 1000 [--server]

The last line is JSON: ``{"models", "artifact_kb", "rss_before_mb", "rss_after_mb", "per_model_kb",
"init_seconds", ["server_worker_rss_mb"]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scoring"))
import forecaster

REPO = Path(__file__).resolve().parents[1]
SETTINGS = forecaster.ScriptSettings(id_columns=("Store", "Brand"), target_column="Quantity",
                                     timestamp_column="WeekStarting", test_size=20, freq="W-THU", horizon=8)
PROBE = """
import json, os, sys, time
def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
sys.path.insert(0, sys.argv[1])
import model_webservice
before = rss_kb()
started = time.perf_counter()
model_webservice.init()
seconds = time.perf_counter() - started
print(json.dumps({"before_kb": before, "after_kb": rss_kb(), "seconds": seconds,
                  "served": len(model_webservice._models)}))
"""


def write_models(root: Path, n: int, *, weeks: int = 102, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    stamps = np.tile(pd.date_range("1990-06-14", periods=weeks, freq="W-THU"), n)
    price = rng.uniform(1.5, 3.5, (n, weeks))
    advert = rng.integers(0, 2, (n, weeks))
    quantity = 9000 - 1500 * price + 900 * advert + rng.normal(0, 300, (n, weeks))
    frame = pd.DataFrame({"WeekStarting": stamps, "Store": np.repeat(np.arange(1000, 1000 + n).astype(str), weeks),
                          "Brand": "dominicks", "Advert": advert.ravel(), "Price": price.ravel(),
                          "Quantity": quantity.ravel().round()})
    series, _ = forecaster.split_series(frame, SETTINGS)
    for result in forecaster.fit_many(series, SETTINGS, ["Advert", "Price"]):
        result.model.save(root / result.model.name / "1")


def rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def server_worker_rss_mb(models: Path, tmp: Path) -> float:
    """RSS of the azmlinfsrv worker (gunicorn's child) once it answers GET /score."""
    import requests

    cwd = tmp / "app"
    cwd.mkdir()
    (cwd / "gunicorn.conf.py").write_text(
        'import os\n\ndef on_starting(server):\n    server.cfg.set("bind", ["127.0.0.1:" + os.environ["SERVER_PORT"]])'
        "\n\ncontrol_socket_disable = True\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "azmlinfsrv"), "--entry_script",
                             str(REPO / "scoring" / "model_webservice.py"), "--model_dir", str(models),
                             "--port", str(port)], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "AZUREML_MODEL_DIR": str(models)}, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if len(requests.get(f"http://127.0.0.1:{port}/score", timeout=5).json()) > 0:
                    break
            except (requests.ConnectionError, requests.Timeout, ValueError):
                time.sleep(0.3)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        return round(max(rss_of(int(c)) for c in children) / 1024, 1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--server", action="store_true", help="also measure a real azmlinfsrv worker")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="model-memory-") as tmp:
        models = Path(tmp) / "models"
        write_models(models, args.models)
        artifact_bytes = sum(p.stat().st_size for p in models.rglob("model.json"))
        probe = subprocess.run([sys.executable, "-c", PROBE, str(REPO / "scoring")], check=True, capture_output=True,
                               text=True, env={**os.environ, "AZUREML_MODEL_DIR": str(models)})
        measured = json.loads(probe.stdout.strip().splitlines()[-1])
        result: dict[str, object] = {
            "models": measured["served"], "artifact_kb": round(artifact_bytes / 1024, 1),
            "rss_before_mb": round(measured["before_kb"] / 1024, 1),
            "rss_after_mb": round(measured["after_kb"] / 1024, 1),
            "per_model_kb": round((measured["after_kb"] - measured["before_kb"]) / max(measured["served"], 1), 2),
            "init_seconds": round(measured["seconds"], 3)}
        if args.server:
            result["server_worker_rss_mb"] = server_worker_rss_mb(models, Path(tmp))
    print(f"{result['models']} models: RSS {result['rss_before_mb']} MB after import -> {result['rss_after_mb']} MB "
          f"after init ({result['per_model_kb']} KB per model, init {result['init_seconds']} s)")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
