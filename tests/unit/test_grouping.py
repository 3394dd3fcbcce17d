"""The deployment planner: stable assignments, filling, gaps, actions, refusals, names."""

from __future__ import annotations

import json
import re

import pytest

from shared.cli import main
from shared.errors import InvalidValue
from shared.grouping import (
    DeploymentPlan,
    GroupAction,
    PlannedGroup,
    PlannedModel,
    deployment_state,
    plan_deployment,
    service_name,
)
from shared.workspace.base import ModelRecord

PREFIX = "manymodels-"
VALID_SERVICE = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")


def model(name: str, version: int = 1, **tags: str) -> ModelRecord:
    return ModelRecord(name, version, {"ModelType": "lr", **tags}, "")


def models(n: int, *, start: int = 0, version: int = 1, **tags: str) -> list[ModelRecord]:
    return [model(f"lr_{i:04d}", version, **tags) for i in range(start, start + n)]


def plan(registered, deployed=None, *, size=3, **kwargs) -> DeploymentPlan:
    return plan_deployment(registered, deployed or {}, container_size=size, prefix=PREFIX, **kwargs)


def state_of(p: DeploymentPlan) -> dict:
    return deployment_state(p, {g.service: f"http://127.0.0.1/{g.service}" for g in p.groups})


def layout(p: DeploymentPlan) -> dict[str, tuple[str, list[str]]]:
    return {g.group: (str(g.action), [m.name for m in g.models]) for g in p.groups}


def test_first_plan_fills_groups_in_name_order():
    p = plan(models(7))
    assert layout(p) == {
        "modelgroup-1": ("new", ["lr_0000", "lr_0001", "lr_0002"]),
        "modelgroup-2": ("new", ["lr_0003", "lr_0004", "lr_0005"]),
        "modelgroup-3": ("new", ["lr_0006"]),
    }
    assert [g.service for g in p.groups] == [f"manymodels-modelgroup-{i}" for i in (1, 2, 3)]


def test_same_models_again_are_unchanged():
    first = plan(models(7))
    again = plan(models(7), state_of(first))
    assert {g.action for g in again.groups} == {GroupAction.UNCHANGED}
    assert layout(again) == {k: ("unchanged", v[1]) for k, v in layout(first).items()}


def test_one_new_version_updates_exactly_its_group():
    first = plan(models(7))
    registered = models(7)
    registered[4] = model("lr_0004", 2)
    p = plan(registered, state_of(first))
    assert [(g.group, g.action) for g in p.changes] == [("modelgroup-2", GroupAction.UPDATE)]
    assert PlannedModel("lr_0004", 2) in p.by_action(GroupAction.UPDATE)[0].models


def test_new_models_fill_the_last_group_then_open_new_ones():
    first = plan(models(7))
    p = plan(models(11), state_of(first))
    assert layout(p)["modelgroup-3"] == ("update", ["lr_0006", "lr_0007", "lr_0008"])
    assert layout(p)["modelgroup-4"] == ("new", ["lr_0009", "lr_0010"])
    assert layout(p)["modelgroup-1"][0] == "unchanged"


def test_existing_assignments_stay_even_when_names_sort_before_them():
    first = plan(models(3, start=10))
    p = plan([*models(3, start=10), model("lr_0001")], state_of(first))
    assert layout(p)["modelgroup-1"] == ("unchanged", ["lr_0010", "lr_0011", "lr_0012"])
    assert layout(p)["modelgroup-2"] == ("new", ["lr_0001"])


def test_removed_model_updates_its_group_and_an_emptied_group_is_deleted():
    first = plan(models(7))
    registered = [m for m in models(7) if m.name not in ("lr_0001", "lr_0006")]
    p = plan(registered, state_of(first))
    assert layout(p)["modelgroup-1"] == ("update", ["lr_0000", "lr_0002"])
    assert layout(p)["modelgroup-2"][0] == "unchanged"
    deleted = p.by_action(GroupAction.DELETE)
    assert [(g.group, g.service, g.models) for g in deleted] == [("modelgroup-3", "manymodels-modelgroup-3", ())]
    assert p.groups[-1].action == GroupAction.DELETE  # deletes come last


def test_gap_is_reused_before_a_new_index_and_keeps_its_service():
    first = plan(models(9))  # groups 1, 2, 3 full
    registered = [m for m in models(9) if m.name not in ("lr_0003", "lr_0004", "lr_0005")]  # empties group 2
    second = plan(registered, state_of(first))
    assert layout(second)["modelgroup-2"] == ("delete", [])
    state = state_of(second)
    # the old state still names group 2's service when a new model arrives before the delete ran
    p = plan([*registered, model("lr_0100"), model("lr_0101")], state_of(first))
    assert layout(p)["modelgroup-2"] == ("update", ["lr_0100", "lr_0101"])  # same service reused, not delete+new
    assert not p.by_action(GroupAction.DELETE)
    # after the delete, a later model takes the gap as a new group
    p = plan([*registered, model("lr_0100")], state)
    assert layout(p)["modelgroup-2"] == ("new", ["lr_0100"])
    assert "modelgroup-4" not in layout(p)


def test_splitting_tags_make_separate_groups_and_skip_models_without_them():
    registered = [model("lr_a1", StoreGroup10="1"), model("lr_a2", StoreGroup10="1"),
                  model("lr_b1", StoreGroup10="2"), model("lr_none")]
    p = plan(registered, splitting_tags=["StoreGroup10"])
    assert layout(p) == {"1-1": ("new", ["lr_a1", "lr_a2"]), "2-1": ("new", ["lr_b1"])}
    assert p.skipped == ("lr_none",)
    assert {g.service for g in p.groups} == {"manymodels-1-1", "manymodels-2-1"}


def test_changed_splitting_tag_moves_the_model_to_its_new_group():
    first = plan([model("lr_a", G="x"), model("lr_b", G="x")], splitting_tags=["G"])
    p = plan([model("lr_a", G="x"), model("lr_b", G="y")], state_of(first), splitting_tags=["G"])
    assert layout(p) == {"x-1": ("update", ["lr_a"]), "y-1": ("new", ["lr_b"])}


def test_sorting_tags_order_new_models_naturally():
    registered = [model("lr_a", Rank="10"), model("lr_b", Rank="9"), model("lr_c", Rank="1"), model("lr_d", Rank="2")]
    p = plan(registered, size=2, sorting_tags=["Rank"])
    assert layout(p) == {"modelgroup-1": ("new", ["lr_c", "lr_d"]), "modelgroup-2": ("new", ["lr_b", "lr_a"])}


def test_update_all_updates_every_unchanged_group():
    first = plan(models(5))
    p = plan(models(5), state_of(first), update_all=True)
    assert {g.action for g in p.groups} == {GroupAction.UPDATE}


def test_reset_rebuilds_assignments_from_scratch_and_reuses_services():
    first = plan(models(6))
    # model 0 and 1 removed, new ones sort first: without reset they would fill gaps, with reset all move
    registered = [*models(4, start=2), model("lr_0000a")]
    p = plan(registered, state_of(first), size=4, reset=True)
    assert layout(p) == {"modelgroup-1": ("update", ["lr_0000a", "lr_0002", "lr_0003", "lr_0004"]),
                         "modelgroup-2": ("update", ["lr_0005"])}


def test_reset_deletes_groups_it_no_longer_needs():
    first = plan(models(9))
    p = plan(models(9), state_of(first), size=5, reset=True)
    assert layout(p) == {"modelgroup-1": ("update", [f"lr_000{i}" for i in range(5)]),
                         "modelgroup-2": ("update", [f"lr_000{i}" for i in range(5, 9)]),
                         "modelgroup-3": ("delete", [])}


def test_shrinking_the_container_size_is_refused_without_reset():
    first = plan(models(6))
    with pytest.raises(InvalidValue, match=r"container size 2 .*reset"):
        plan(models(6), state_of(first), size=2)
    assert len(plan(models(6), state_of(first), size=2, reset=True).groups) == 3


def test_growing_the_container_size_fills_existing_groups():
    first = plan(models(4), size=2)
    p = plan(models(5), state_of(first), size=4)
    assert layout(p) == {"modelgroup-1": ("update", ["lr_0000", "lr_0001", "lr_0004"]),
                         "modelgroup-2": ("unchanged", ["lr_0002", "lr_0003"])}


def test_meta_models_and_older_versions_are_never_deployed():
    registered = [*models(2), ModelRecord("deployed_models_info", 4, {"ModelType": "_meta_"}, ""),
                  model("lr_0000", 3), model("lr_0000", 2)]
    p = plan(registered)
    assert [(m.name, m.version) for m in p.groups[0].models] == [("lr_0000", 3), ("lr_0001", 1)]


def test_empty_registry_deletes_everything_and_empty_state_plans_nothing():
    first = plan(models(4))
    p = plan([], state_of(first))
    assert {g.action for g in p.groups} == {GroupAction.DELETE} and len(p.groups) == 2
    assert plan([]).groups == ()


@pytest.mark.parametrize("bad", [0, -1])
def test_container_size_must_be_positive(bad):
    with pytest.raises(InvalidValue, match="container size"):
        plan(models(1), size=bad)


def test_malformed_state_is_refused_with_the_model_named():
    with pytest.raises(InvalidValue, match="lr_x"):
        plan(models(1), {"lr_x": {"version": 1, "group": "nogroupindex", "webservice": "s", "endpoint": None}})
    with pytest.raises(InvalidValue, match="lr_y"):
        plan(models(1), {"lr_y": {"group": "modelgroup-1"}})


def test_service_names_are_valid_and_deterministic():
    assert service_name(PREFIX, "modelgroup-1") == "manymodels-modelgroup-1"
    assert service_name(PREFIX, "Group_A-1") == service_name(PREFIX, "Group_A-1")
    names = [service_name(PREFIX, g) for g in ("Group_A-1", "Group A-1", "very long store group name " * 3 + "-12",
                                               "1000-1", "ÄÖ-2", "x" * 40 + "-1", "x" * 41 + "-1")]
    for name in names:
        assert VALID_SERVICE.match(name), name
        assert 3 <= len(name) <= 32
    assert len(set(names)) == len(names)
    assert names[2].endswith("-12") and names[5].endswith("-1")
    assert service_name("test-" + PREFIX, "modelgroup-1") == "test-manymodels-modelgroup-1"


def test_groups_that_would_share_a_service_are_refused():
    registered = [model("lr_a", G="Abc"), model("lr_b", G="abc")]
    with pytest.raises(InvalidValue, match="share the service name"):
        plan(registered, splitting_tags=["G"])


def test_plan_round_trips_through_json():
    p = plan(models(4))
    data = json.loads(json.dumps(p.to_dict()))
    assert set(data) == {"groups"}
    assert set(data["groups"][0]) == {"group", "service", "action", "models"}
    assert data["groups"][0]["models"][0] == {"name": "lr_0000", "version": 1}
    assert DeploymentPlan.from_dict(data) == p
    with pytest.raises(InvalidValue):
        PlannedGroup.from_dict({"group": "g-1", "service": "s", "action": "explode"})


def test_deployment_state_has_no_keys_and_skips_deleted_groups():
    first = plan(models(4))
    p = plan(models(2), state_of(first))
    state = deployment_state(p, {"manymodels-modelgroup-1": "http://a/score"})
    assert state == {"lr_0000": {"version": 1, "group": "modelgroup-1", "webservice": "manymodels-modelgroup-1",
                                 "endpoint": "http://a/score"},
                     "lr_0001": {"version": 1, "group": "modelgroup-1", "webservice": "manymodels-modelgroup-1",
                                 "endpoint": "http://a/score"}}


def test_a_large_registry_is_planned_consistently():
    registered = [model(f"lr_{i}", 1, G=str(i % 7)) for i in range(20_000)]
    first = plan(registered, size=500, splitting_tags=["G"])
    assert sum(len(g.models) for g in first.groups) == 20_000
    assert max(len(g.models) for g in first.groups) == 500
    changed = [model(m.name, 2, **{"G": m.tags["G"]}) if i % 1000 == 0 else m for i, m in enumerate(registered)]
    second = plan(changed, state_of(first), size=500, splitting_tags=["G"])
    updated = second.by_action(GroupAction.UPDATE)
    assert sum(1 for g in updated for m in g.models if m.version == 2) == 20
    assert len(updated) <= 20 and not second.by_action(GroupAction.NEW)


# --------------------------------------------------------------------------- manymodels plan


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_plan_cli_prints_the_plan_as_json(tmp_path, capsys, settings):
    registered = [{"name": f"lr_{i}", "version": 1, "tags": {"ModelType": "lr"}} for i in range(5)]
    registered.append({"name": "deployed_models_info", "version": 2, "tags": {"ModelType": "_meta_"}})
    deployed = {"lr_0": {"version": 1, "group": "modelgroup-1", "webservice": "manymodels-modelgroup-1",
                         "endpoint": "http://x/score"}}
    rc = main(["plan", "--registered", _write(tmp_path, "m.json", registered), "--deployed",
               _write(tmp_path, "s.json", deployed), "--container-size", "2", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0
    assert out == {"groups": [
        {"group": "modelgroup-1", "service": "manymodels-modelgroup-1", "action": "update",
         "models": [{"name": "lr_0", "version": 1}, {"name": "lr_1", "version": 1}]},
        {"group": "modelgroup-2", "service": "manymodels-modelgroup-2", "action": "new",
         "models": [{"name": "lr_2", "version": 1}, {"name": "lr_3", "version": 1}]},
        {"group": "modelgroup-3", "service": "manymodels-modelgroup-3", "action": "new",
         "models": [{"name": "lr_4", "version": 1}]}]}


def test_plan_cli_refusal_exits_non_zero_with_the_reason(tmp_path, capsys, settings):
    registered = [{"name": f"lr_{i}", "version": 1, "tags": {}} for i in range(3)]
    deployed = {f"lr_{i}": {"version": 1, "group": "modelgroup-1", "webservice": "manymodels-modelgroup-1",
                            "endpoint": None} for i in range(3)}
    args = ["plan", "--registered", _write(tmp_path, "m.json", registered), "--deployed",
            _write(tmp_path, "s.json", deployed), "--container-size", "2"]
    assert main([*args, "--json"]) == 1
    captured = capsys.readouterr()
    assert "reset" in json.loads(captured.out.strip().splitlines()[-1])["error"]
    assert main(args) == 1
    assert "shrinking the container size" in capsys.readouterr().err
    assert main([*args, "--reset", "--json"]) == 0


def test_plan_cli_splitting_tags_and_bad_files(tmp_path, capsys, settings):
    registered = [{"name": "lr_a", "version": 1, "tags": {"G": "x"}}, {"name": "lr_b", "version": 1,
                                                                         "tags": {"G": "y"}}]
    assert main(["plan", "--registered", _write(tmp_path, "m.json", registered), "--splitting-tags", "G",
                 "--container-size", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [g["group"] for g in out["groups"]] == ["x-1", "y-1"]
    assert main(["plan", "--registered", _write(tmp_path, "bad.json", {"not": "a list"}), "--json"]) == 1
    assert "expected a JSON list" in capsys.readouterr().out


def test_plan_cli_without_files_plans_the_workspace(tmp_path, capsys, settings):
    from shared.workspace.base import NewModel
    from shared.workspace.local.workspace import LocalWorkspace

    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "model.json").write_text("{}")
    workspace = LocalWorkspace(settings)
    try:
        workspace.models.register_many([NewModel(f"lr_dominicks_{i}", str(artifact), {"ModelType": "lr"})
                                        for i in range(3)])
        state = tmp_path / "state"
        state.mkdir()
        # its service is gone (not in the workspace): the model is planned again, as the original does
        (state / "deployed_models_info.json").write_text(json.dumps({"lr_dominicks_0": {
            "version": 1, "group": "modelgroup-7", "webservice": "manymodels-modelgroup-7", "endpoint": "x"}}))
        workspace.models.register_many([NewModel("deployed_models_info_local", str(state), {"ModelType": "_meta_"})])
    finally:
        workspace.close()
    assert main(["plan", "--container-size", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(g["service"], g["action"], len(g["models"])) for g in out["groups"]] == [
        ("manymodels-modelgroup-1", "new", 2), ("manymodels-modelgroup-2", "new", 1)]
