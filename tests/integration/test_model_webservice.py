"""The multi-model scoring script under the real azureml-inference-server-http, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import forecaster as fc  # scoring/ is on pytest's pythonpath (pyproject.toml)
import numpy as np
import pandas as pd
import pytest
import requests

from tests.support.polling import wait_until

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

SETTINGS = fc.ScriptSettings(id_columns=("Store", "Brand"), target_column="Quantity", timestamp_column="WeekStarting",
                             test_size=5, freq="W-THU", horizon=4)
# azmlinfsrv always binds 0.0.0.0; gunicorn reads ./gunicorn.conf.py, whose hook moves the bind to loopback
# before the socket is created. No control socket: it would be shared by every gunicorn of this user.
GUNICORN_CONF = '''
import os


def on_starting(server):
    server.cfg.set("bind", ["127.0.0.1:" + os.environ["SERVER_PORT"]])


control_socket_disable = True
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_models(root: Path) -> dict[str, fc.Forecaster]:
    frames = []
    for store in (1, 2, 3):
        rng = np.random.default_rng(store)
        price = rng.uniform(1.5, 3.5, 60).round(2)
        frames.append(pd.DataFrame({
            "WeekStarting": pd.date_range("1991-01-03", periods=60, freq="W-THU"), "Store": str(store),
            "Brand": "tropicana", "Price": price, "Quantity": (9000 - 1500 * price + rng.normal(0, 200, 60)).round()}))
    series, _ = fc.split_series(pd.concat(frames), SETTINGS)
    models = {r.model.name: r.model for r in fc.fit_many(series, SETTINGS, ["Price"])}
    for name, model in models.items():
        model.save(root / name / "2")
        model.save(root / name / "10")  # the highest version by number wins; both are the same model here
    return models


@contextlib.contextmanager
def serve(script: Path, model_dir: Path, workdir: Path, env: dict[str, str] | None = None,
          ) -> Iterator[tuple[str, int]]:
    """A real azmlinfsrv serving ``script`` on a free loopback port: (scoring URI, server PID), stopped
    (its whole process group) on exit. Also used by tests/integration/test_scoring_barrage.py."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "gunicorn.conf.py").write_text(GUNICORN_CONF)
    port = free_port()
    full_env = {**os.environ, "AZUREML_MODEL_DIR": str(model_dir), "AML_APP_ROOT": str(workdir), **(env or {})}
    log_path = workdir / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "azmlinfsrv"), "--entry_script", str(script), "--model_dir", str(model_dir),
         "--port", str(port)],
        cwd=workdir, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/score"
    try:
        def answering() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"azmlinfsrv exited with {proc.returncode}: {log_path.read_text()}")
            try:
                return requests.get(url, timeout=5).status_code == 200
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or the worker still booting
                return False

        try:
            wait_until(answering, timeout=90, interval=0.1, what=f"azmlinfsrv to answer GET {url}")
        except AssertionError as e:
            pytest.fail(f"{e}: {log_path.read_text()}")
        yield url, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own session: its gunicorn master and workers
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, dict[str, fc.Forecaster]]]:
    models = write_models(tmp_path / "models")
    with serve(REPO / "scoring" / "model_webservice.py", tmp_path / "models", tmp_path / "app") as (url, _):
        yield url, models


def test_served_models_answer_per_record_and_get_lists_them(service: tuple[str, dict[str, fc.Forecaster]]) -> None:
    url, models = service
    assert requests.get(url, timeout=10).json() == sorted(models)

    def record(store: int, horizon: int) -> dict[str, object]:
        return {"id": {"Store": store, "Brand": "tropicana"}, "model_type": "lr", "forecast_start": "1992-02-27",
                "forecast_freq": "W-THU", "forecast_horizon": horizon,
                "data": {"future": {"WeekStarting": ["1992-02-27", "1992-03-05"], "Price": [2.0, 3.0]}}}

    records = [record(1, 2), record(42, 2), record(2, fc.MAX_HORIZON + 1), record(3, 2)]
    response = requests.post(url, json=records, timeout=10)
    assert response.status_code == 200
    answers = response.json()
    assert [a["id"]["Store"] for a in answers] == [1, 42, 2, 3]
    assert [a.get("status") for a in answers] == [None, 404, 400, None]
    assert "unknown model lr_tropicana_42" in answers[1]["error"]
    assert f"forecast_horizon {fc.MAX_HORIZON + 1} is not allowed" in answers[2]["error"]  # past the maximum
    for answer in (answers[0], answers[3]):
        model = models[fc.model_name("lr", answer["id"])]
        stamps, values = model.forecast(pd.Timestamp("1992-02-27"), steps=2, exog=np.array([[2.0], [3.0]]))
        assert answer["forecast"] == {"timestamps": ["1992-02-27T00:00:00", "1992-03-05T00:00:00"],
                                      "values": pytest.approx(values.tolist(), rel=1e-12)}
        assert stamps[0] == pd.Timestamp("1992-02-27")
    assert requests.post(url, data="not json", timeout=10).status_code == 400
