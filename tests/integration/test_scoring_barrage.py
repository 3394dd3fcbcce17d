"""Hostile requests against a real router in front of a real model-group service (both azmlinfsrv on
127.0.0.1): every one gets a 4xx or per-record errors in strict JSON, never a 500 or a dropped
connection, and afterwards both still answer a valid request correctly from the same processes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import forecaster as fc
import numpy as np
import pandas as pd
import pytest
import requests
from test_model_webservice import REPO, serve, write_models

pytestmark = pytest.mark.integration

DEEP = 100_000


def rec(store: int = 1, **override: Any) -> dict[str, Any]:
    record = {"id": {"Store": store, "Brand": "tropicana"}, "model_type": "lr", "forecast_start": "1992-02-27",
              "forecast_freq": "W-THU", "forecast_horizon": 2,
              "data": {"future": {"WeekStarting": ["1992-02-27", "1992-03-05"], "Price": [2.0, 3.0]}}}
    record.update(override)
    return record


def body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def with_token(token: str, *, where: str = "price") -> bytes:
    """A record list whose price (or other field) is a raw JSON token such as NaN or 1e999."""
    marker = "__TOKEN__"
    if where == "price":
        record = rec(data={"future": {"WeekStarting": ["1992-02-27", "1992-03-05"], "Price": [2.0, marker]}})
    elif where == "history":
        record = rec(data={"historical": {"WeekStarting": ["1992-02-20"], "Quantity": [marker]},
                           "future": {"WeekStarting": ["1992-02-27", "1992-03-05"], "Price": [2.0, 3.0]}})
    elif where == "store":
        record = rec(id={"Store": marker, "Brand": "tropicana"})
    else:
        record = rec(**{where: marker})
    return body([rec(2), record]).replace(f'"{marker}"'.encode(), token.encode())


HOSTILE: list[tuple[str, bytes]] = [
    ("empty list", b"[]"), ("empty object", b"{}"), ("string", b'"records"'), ("number", b"42"),
    ("null", b"null"), ("true", b"true"), ("empty body", b""), ("numbers", b"[1, 2]"), ("strings", b'["x"]'),
    ("nulls", b"[null]"), ("nested lists", b"[[]]"), ("empty record", b"[{}]"),
    ("unknown model", body([rec(99)])), ("one unknown record", body(rec(99))),
    ("no id", body([{"model_type": "lr"}])), ("no id, one record", body({"model_type": "lr"})),
    *[(f"id {v!r}", body([rec(id=v)])) for v in (5, [1], {}, None, "1", True, 1.5)],
    *[(f"model_type {v!r}", body([rec(model_type=v)])) for v in (5, ["lr"], {"a": 1}, None, True)],
    ("id value a list", body([rec(id={"Store": [1], "Brand": "tropicana"})])),
    ("id value an object", body([rec(id={"Store": {"x": 1}, "Brand": "tropicana"})])),
    ("id value null", body([rec(id={"Store": None, "Brand": "tropicana"})])),
    ("empty id value", body([rec(id={"Store": "", "Brand": "tropicana"})])),
    ("lone surrogate id", b'[{"id": {"Store": "\\ud800", "Brand": "x"}, "model_type": "lr"}]'),
    ("deep lists", b"[" * DEEP + b"]" * DEEP), ("deep objects", b'{"a":' * DEEP + b"1" + b"}" * DEEP),
    ("deep in a record", b'[{"id": {"Store": 1, "Brand": "tropicana"}, "model_type": "lr", "x": '
     + b"[" * DEEP + b"]" * DEEP + b"}]"),
    ("deep below the limit", b'[{"id": {"Store": 1, "Brand": "tropicana"}, "model_type": "lr", "x": '
     + b"[" * 900 + b"]" * 900 + b"}]"),
    ("deep unknown record", b'[{"id": {"Store": 99, "Brand": "tropicana"}, "model_type": "lr", "x": '
     + b"[" * 900 + b"]" * 900 + b"}]"),
    *[(f"price {t}", with_token(t)) for t in ("NaN", "Infinity", "-Infinity", "1e308", "-1e308", "1e999")],
    *[(f"history {t}", with_token(t, where="history")) for t in ("NaN", "Infinity", "1e308")],
    *[(f"store {t}", with_token(t, where="store")) for t in ("NaN", "Infinity", "1e999")],
    *[(f"horizon {t}", with_token(t, where="forecast_horizon")) for t in ("NaN", "1e999", "1e308", "-1", "2.0")],
    ("price 1e308 both weeks", body([rec(data={"future": {"WeekStarting": ["1992-02-27", "1992-03-05"],
                                                          "Price": [1e308, 1e308]}})])),
    ("unknown NaN record", body([rec(99)]).replace(b"3.0", b"NaN")),
    ("top-level NaN", b"NaN"), ("list of NaN", b"[NaN, Infinity]"),
    ("invalid UTF-8", b"[\xff\xfe]"), ("UTF-16", json.dumps([rec()]).encode("utf-16")),
    ("BOM", b"\xef\xbb\xbf" + body([rec()])), ("truncated", b'[{"id": {'), ("not JSON", b"not json"),
    ("start not a date", body([rec(forecast_start="someday")])),
    ("start far away", body([rec(forecast_start="9999-12-30")])),
    ("horizon huge", body([rec(forecast_horizon=10**30)])),
    ("data a string", body([rec(data="x")])), ("future a list", body([rec(data={"future": []})])),
    ("price a word", body([rec(data={"future": {"WeekStarting": ["1992-02-27", "1992-03-05"],
                                                "Price": [2.0, "cheap"]}})])),
    ("price an object", body([rec(data={"future": {"WeekStarting": ["1992-02-27", "1992-03-05"],
                                                   "Price": [2.0, {"a": 1}]}})])),
    ("a valid and every kind of bad", body([rec(1), rec(99), {"id": 3}, 7, rec(2)]).replace(b"3.0", b"Infinity")),
]


def strict_loads(data: bytes) -> Any:
    def reject(token: str) -> None:
        raise ValueError(f"{token} is not strict JSON")

    return json.loads(data, parse_constant=reject)


def check_answer(name: str, response: requests.Response) -> None:
    assert response.status_code < 500, f"{name}: {response.status_code} {response.text[:300]}"
    answer = strict_loads(response.content)  # strict JSON, even for the errors
    if response.status_code != 200:
        assert response.status_code in (400, 404, 405), name
        return
    items = answer if isinstance(answer, list) else [answer]
    for item in items:
        assert isinstance(item, dict), f"{name}: {item!r}"
        if "forecast" in item and "error" not in item:
            assert all(np.isfinite(item["forecast"]["values"])), name
        else:
            assert item.get("status") in (400, 404) and item.get("error"), f"{name}: {item!r}"


def session_pids(leader: int) -> set[int]:
    """Every process of the server's own process group (its gunicorn master and workers)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[2]) == leader:  # field 5: the process group
                pids.add(int(entry.name))
    return pids


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[str, str, dict[str, fc.Forecaster], list[int]]]:
    models = write_models(tmp_path / "models")
    with serve(REPO / "scoring" / "model_webservice.py", tmp_path / "models", tmp_path / "group") as (group, gpid):
        state = {name: {"version": 10, "group": "modelgroup-1", "webservice": "svc-1", "endpoint": group}
                 for name in models}
        folder = tmp_path / "state" / "deployed_models_info_local" / "1"
        folder.mkdir(parents=True)
        (folder / "deployed_models_info.json").write_text(json.dumps(state))
        with serve(REPO / "scoring" / "routing_webservice.py", tmp_path / "state", tmp_path / "router",
                   {"WORKER_COUNT": "2"}) as (router, rpid):
            yield router, group, models, [gpid, rpid]


def expected(models: dict[str, fc.Forecaster], store: int) -> list[float]:
    _, values = models[f"lr_tropicana_{store}"].forecast(pd.Timestamp("1992-02-27"), steps=2,
                                                         exog=np.array([[2.0], [3.0]]))
    return values.tolist()


def test_hostile_requests_get_4xx_or_per_record_errors_and_the_services_keep_serving(services) -> None:
    router, group, models, leaders = services
    before = {leader: session_pids(leader) for leader in leaders}
    assert all(len(p) >= 2 for p in before.values())  # azmlinfsrv, gunicorn master and workers
    headers = {"Content-Type": "application/json"}
    failures = []
    with requests.Session() as http:
        for url in (group, router):
            for name, data in HOSTILE:
                try:
                    check_answer(name, http.post(url, data=data, headers=headers, timeout=60))
                except requests.ConnectionError as e:
                    failures.append(f"{name} at {url}: the connection broke ({e})")
                except (AssertionError, ValueError) as e:
                    failures.append(f"{name} at {url}: {e}")
            assert http.put(url, data=b"[]", timeout=10).status_code < 500
    assert not failures, f"{len(failures)} of {2 * len(HOSTILE)}:\n" + "\n".join(failures)

    for url in (group, router):
        answers = requests.post(url, json=[rec(1), rec(3), rec(99)], timeout=10).json()
        assert [a.get("status") for a in answers] == [None, None, 404]
        assert answers[0]["forecast"]["values"] == pytest.approx(expected(models, 1), rel=1e-12)
        assert answers[1]["forecast"]["values"] == pytest.approx(expected(models, 3), rel=1e-12)
    assert {leader: session_pids(leader) for leader in leaders} == before  # nothing crashed or restarted
    assert all(os.path.exists(f"/proc/{pid}") for pids in before.values() for pid in pids)


def test_non_finite_inputs_are_per_record_400s_naming_the_field_and_value(services) -> None:
    router, group, _, _ = services
    for url in (group, router):
        for token in ("NaN", "Infinity", "-Infinity"):
            answers = strict_loads(requests.post(url, data=with_token(token), timeout=10,
                                                 headers={"Content-Type": "application/json"}).content)
            assert "forecast" in answers[0]
            assert answers[1]["status"] == 400
            assert "Price" in answers[1]["error"] and token in answers[1]["error"], answers[1]
        answers = strict_loads(requests.post(url, data=with_token("1e308"), timeout=10).content)
        assert answers[1]["status"] == 400 and "not finite" in answers[1]["error"], answers[1]
        deep = requests.post(url, data=b"[" * DEEP + b"]" * DEEP, timeout=10)
        assert deep.status_code == 400 and "deep" in strict_loads(deep.content)["error"]
