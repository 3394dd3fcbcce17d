"""The one rule for "latest": the newest data's model, not the highest version."""

from __future__ import annotations

from shared.workspace.base import ModelRecord
from shared.workspace.newest import newest_per_name


def _m(version: int, *, dataset: str | None, run: str = "") -> ModelRecord:
    tags = {"RunId": run} | ({"DatasetVersion": dataset} if dataset is not None else {})
    return ModelRecord("lr_a_1", version, tags, f"/m/{version}")


def test_the_dataset_version_wins_over_the_version_number() -> None:
    chosen = newest_per_name([_m(1, dataset="3", run="a"), _m(2, dataset="2", run="b")], {"a": "", "b": ""})
    assert chosen["lr_a_1"].version == 1


def test_on_the_same_dataset_version_the_later_submitted_run_wins() -> None:
    submitted = {"late-finisher": "2026-11-27T09:00:00Z", "newer": "2026-11-27T10:00:00+00:00"}
    records = [_m(1, dataset="2", run="newer"), _m(2, dataset="2", run="late-finisher")]
    assert newest_per_name(records, submitted)["lr_a_1"].version == 1


def test_untagged_models_and_unknown_runs_fall_back_to_the_version_number() -> None:
    assert newest_per_name([_m(1, dataset=None), _m(2, dataset=None)], {})["lr_a_1"].version == 2
    assert newest_per_name([_m(1, dataset="x", run="gone"), _m(2, dataset="x", run="gone")], {})["lr_a_1"].version == 2
    # a tagged model is newer than an untagged one (made before the tags existed)
    assert newest_per_name([_m(2, dataset=None), _m(1, dataset="1")], {})["lr_a_1"].version == 1
