"""The deploy flow on the local target: real services behind the real router."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from deploy_helpers import kill_group, kill_services_of, record, register_trained_models, score, service_pids

from shared.cli import main
from shared.flows import deploy as flow
from shared.grouping import GroupAction
from shared.workspace.base import ServiceState
from shared.workspace.local import service_process
from shared.workspace.local.workspace import LocalWorkspace
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration
STORES = [1, 2, 3, 4, 5, 6, 7]


@pytest.fixture
def local(settings, tmp_path) -> Iterator[tuple[LocalWorkspace, object]]:
    """A workspace with 7 real models, container size 3 (3 groups), every service stopped afterwards.

    The groups run the real scoring/model_webservice.py, the router the real routing_webservice.py.
    """
    settings = settings.replace(max_container_size=3)
    ws = LocalWorkspace(settings)
    register_trained_models(ws, tmp_path / "art", STORES)
    try:
        yield ws, settings
    finally:
        pids = [info.pid for s in ws.services.list() if (info := ws.services.process_info(s.name))]
        ws.services.delete_all()
        ws.close()
        assert not [pid for pid in pids if service_process.is_alive(pid)]
        with contextlib.suppress(AssertionError):  # a worker may outlive its master by a moment; recorded or not
            wait_until(lambda: not service_pids(ws.home), timeout=10, interval=0.1, what="no service process left")
        left = service_pids(ws.home)
        kill_services_of(ws.home)
        assert not left, f"service processes left running: {sorted(left)}"


def values(answers: list[dict]) -> list[float]:
    return [a["forecast"]["values"][0] for a in answers]


def pids(ws: LocalWorkspace) -> dict[str, int]:
    return {s.name: ws.services.process_info(s.name).pid for s in ws.services.list()}


def test_first_deploy_then_one_retrained_series_updates_one_group_and_the_router(local, tmp_path):
    ws, settings = local
    first = flow.deploy(ws, settings, "local")
    assert first.plan.counts() == {"new": 3, "update": 0, "unchanged": 0, "delete": 0}
    router = first.router
    assert router.name == "routing-manymodels" and router.state == ServiceState.HEALTHY
    assert flow.router_endpoint(ws, settings, "local") == router.scoring_uri
    answers = score(router.scoring_uri, [record(s) for s in reversed(STORES)])
    assert [a["id"]["Store"] for a in answers] == list(reversed(STORES))
    assert all(len(a["forecast"]["values"]) == 1 and "error" not in a for a in answers)
    direct = score(ws.services.get("manymodels-modelgroup-2").scoring_uri, [record(4)])
    assert direct == [answers[STORES[::-1].index(4)]]  # the router answers what the group answers
    before_values = values(score(router.scoring_uri, [record(s) for s in STORES]))
    # GET: model -> service name only
    listing = requests.get(router.scoring_uri, timeout=10).json()
    assert listing["lr_dominicks_4"] == "manymodels-modelgroup-2"
    assert "127.0.0.1" not in json.dumps(listing)
    # the deployment state is a _meta_ model with no keys, and is not deployed as a model
    state_record = ws.models.get("deployed_models_info_local")
    assert state_record.tags["ModelType"] == "_meta_"
    state = json.loads((Path(state_record.path) / "deployed_models_info.json").read_text())
    assert state["lr_dominicks_4"]["group"] == "modelgroup-2" and set(state["lr_dominicks_4"]) == {
        "version", "group", "webservice", "endpoint"}
    before = pids(ws)
    router_port = ws.services.process_info("routing-manymodels").port

    # nothing changed: nothing restarts
    again = flow.deploy(ws, settings, "local")
    assert again.plan.changes == () and pids(ws) == before

    register_trained_models(ws, tmp_path / "art", [4], seed=1)  # series 4 retrained
    result = flow.deploy(ws, settings, "local")
    assert [(g.group, g.action) for g in result.plan.changes] == [("modelgroup-2", GroupAction.UPDATE)]
    after = pids(ws)
    restarted = {name for name in before if after[name] != before[name]}
    assert restarted == {"manymodels-modelgroup-2", "routing-manymodels"}
    assert ws.services.process_info("routing-manymodels").port == router_port  # same endpoint
    assert result.router.scoring_uri == router.scoring_uri
    after_values = values(score(router.scoring_uri, [record(s) for s in STORES]))
    assert [a != b for a, b in zip(before_values, after_values, strict=True)] == [
        False, False, False, True, False, False, False]
    assert result.state_version == first.state_version + 1


def test_killing_one_group_fails_only_its_models(local):
    ws, settings = local
    result = flow.deploy(ws, settings, "local")
    group_1 = ws.services.process_info("manymodels-modelgroup-1")
    kill_group(group_1.pid)
    answers = score(result.router.scoring_uri, [record(s) for s in STORES] + [record(99)])
    by_store = {a["id"]["Store"]: a for a in answers}
    for store in (1, 2, 3):  # group 1
        assert by_store[store]["status"] == 503 and "manymodels-modelgroup-1" in by_store[store]["error"]
    for store in (4, 5, 6, 7):
        assert len(by_store[store]["forecast"]["values"]) == 1
    assert by_store[99]["status"] == 404
    # the next deployment repairs the dead group only
    repaired = flow.deploy(ws, settings, "local")
    assert [(g.group, g.action) for g in repaired.plan.changes] == [("modelgroup-1", GroupAction.UPDATE)]
    assert all("forecast" in a for a in score(result.router.scoring_uri, [record(s) for s in STORES]))


def test_a_group_killed_under_load_fails_only_its_records_and_the_router_keeps_answering(local):
    ws, settings = local
    result = flow.deploy(ws, settings, "local")
    group_1 = ws.services.process_info("manymodels-modelgroup-1")
    records = [record(s) for s in STORES]
    answers: list[list[dict]] = []
    problems: list[str] = []
    stop = threading.Event()

    def caller() -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                response = session.post(result.router.scoring_uri, json=records, timeout=30)
                if response.status_code != 200:
                    problems.append(f"{response.status_code}: {response.text[:200]}")
                else:
                    answers.append(response.json())
            except requests.RequestException as e:
                problems.append(repr(e))

    callers = [threading.Thread(target=caller) for _ in range(4)]
    for t in callers:
        t.start()
    try:
        wait_until(lambda: len(answers) >= 8, timeout=30, interval=0.05, what="8 answers before the kill")
        kill_group(group_1.pid)  # in the middle of calls
        killed_at = len(answers)
        wait_until(lambda: len(answers) >= killed_at + 12, timeout=60, interval=0.05, what="12 answers after the kill")
    finally:
        stop.set()
        for t in callers:
            t.join(60)
    assert not problems  # the router itself never failed a call
    assert killed_at >= 8 and len(answers) >= killed_at + 12
    for batch in answers:
        by_store = {a["id"]["Store"]: a for a in batch}
        for store in (4, 5, 6, 7):  # the other groups answer throughout
            assert len(by_store[store]["forecast"]["values"]) == 1, by_store[store]
        for store in (1, 2, 3):  # group 1: a forecast before the kill, a 503 naming it after
            a = by_store[store]
            assert "forecast" in a or (a["status"] == 503 and "manymodels-modelgroup-1" in a["error"]), a
    for batch in answers[killed_at + 4:]:  # well after the kill: group 1's records all 503
        assert all(a["status"] == 503 for a in batch if a["id"]["Store"] in (1, 2, 3))
    assert not service_process.is_alive(group_1.pid)


def test_half_done_plan_is_finished_by_running_it_again(local):
    ws, settings = local
    plan = flow.plan(ws, settings, "local")
    flow.execute_group(ws, settings, "local", plan.groups[0])  # the rollout stopped after one group
    done = pids(ws)
    flow.execute_group(ws, settings, "local", plan.groups[0])  # a replayed task does nothing
    assert pids(ws) == done
    for group in plan.groups:
        flow.execute_group(ws, settings, "local", group)
    router = flow.finish(ws, settings, "local", plan)
    router_pid = pids(ws)[router.name]
    again = flow.finish(ws, settings, "local", plan)  # replayed: same state version, same router
    assert again.scoring_uri == router.scoring_uri and pids(ws)[router.name] == router_pid
    assert len(ws.models.list(latest=False, name="deployed_models_info_local")) == 1
    assert all("forecast" in a for a in score(router.scoring_uri, [record(s) for s in STORES]))


def test_a_failed_group_leaves_the_router_and_state_as_they_were(local, tmp_path, monkeypatch):
    ws, settings = local
    first = flow.deploy(ws, settings, "local")
    before = pids(ws)
    register_trained_models(ws, tmp_path / "art", [4], seed=1)
    real = flow.load_service_config

    def broken(target, role, **kwargs):
        loaded = real(target, role, **kwargs)
        return replace(loaded, entry_script="scoring/no_such_script.py") if role == "models" else loaded

    monkeypatch.setattr(flow, "load_service_config", broken)
    result = flow.deploy(ws, settings, "local")
    assert len(result.errors) == 1 and "manymodels-modelgroup-2" in result.errors[0]
    assert "no_such_script.py" in result.errors[0]
    assert pids(ws) == before  # nothing restarted, the router kept its state
    assert ws.models.get("deployed_models_info_local").version == first.state_version
    assert all("forecast" in a for a in score(first.router.scoring_uri, [record(s) for s in STORES]))


def test_deploy_cli_dry_run_delete_and_delete_all(local, capsys, monkeypatch):
    ws, settings = local
    monkeypatch.setenv("MAX_CONTAINER_SIZE", "3")
    from shared.settings import get_settings

    get_settings.cache_clear()
    assert main(["deploy", "--target", "local", "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["targets"][0]["dry_run"] and out["targets"][0]["counts"]["new"] == 3
    assert ws.services.list() == []
    assert main(["deploy", "--target", "local", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["endpoint"].startswith("http://127.0.0.1:") and len(ws.services.list()) == 4
    # a model removed from the registry is not deployed any more; its emptied group would be deleted
    assert main(["deploy", "--target", "local", "--delete-all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"target": "local", "deleted": 4}
    assert ws.services.list() == []
    # the next deploy sees the services gone and deploys everything again
    assert flow.plan(ws, settings, "local").counts()["new"] == 3
