"""ParallelRunStep settings files: loaded once for both backends, every bad value named clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import InvalidValue
from shared.workspace.base import PipelineKind
from shared.workspace.parallel_config import (
    LoggingLevel,
    OutputAction,
    ParallelRunConfig,
    config_path,
    load_parallel_config,
)

GOOD = {"entry_script": "train.py", "mini_batch_size": 5}


def _write(tmp_path: Path, text: str, name: str = "train-parallelrunstep-config.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("kind", "script"), [(PipelineKind.TRAINING, "train.py"),
                                               (PipelineKind.FORECASTING, "forecast.py")])
def test_repository_files_load(kind: PipelineKind, script: str) -> None:
    config = load_parallel_config(kind)
    assert config.entry_script == script
    assert config.source_directory == "scoring"
    assert config.entry_script_path().parent.name == "scoring"
    assert config.output_action == OutputAction.APPEND_ROW
    assert config.append_row_file_name == "parallel_run_step.txt"
    assert config.run_max_try == 2  # a failed mini-batch is retried once
    assert config.error_threshold == -1  # bad series never abort the job
    assert config_path(kind).name.startswith({"training": "train", "forecasting": "forecast"}[kind])


def test_sdk_yaml_wrapper_and_string_numbers(tmp_path: Path) -> None:
    # ParallelRunConfig.save_to_yaml writes a "parallel_run_config:" mapping; the original
    # accelerator's files quote mini_batch_size ("1").
    path = _write(tmp_path, 'parallel_run_config:\n  entry_script: train.py\n  mini_batch_size: "3"\n'
                            "  logging_level: debug\n  output_action: SUMMARY_ONLY\n")
    config = ParallelRunConfig.load(path)
    assert config.mini_batch_size == 3
    assert config.logging_level == LoggingLevel.DEBUG
    assert config.output_action == OutputAction.SUMMARY_ONLY


def test_round_trips_through_a_dict() -> None:
    config = ParallelRunConfig.from_dict({**GOOD, "process_count_per_node": 4, "run_invocation_timeout": 30})
    assert ParallelRunConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["output_action"] == "append_row"


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("mini_batch_size", 0, "whole number of files >= 1"),
    ("mini_batch_size", "10MB", "TabularDataset"),
    ("process_count_per_node", 0, "processes >= 1"),
    ("node_count", "two", "nodes >= 1"),
    ("error_threshold", -2, ">= -1"),
    ("allowed_failed_count", 1.5, ">= -1"),
    ("run_invocation_timeout", 0, "seconds >= 1"),
    ("run_max_try", 0, ">= 1"),
    ("run_max_try", True, ">= 1"),
    ("output_action", "append", "append_row, summary_only"),
    ("append_row_file_name", "out/rows.txt", "plain file name"),
    ("logging_level", "LOUD", "WARNING, INFO, DEBUG"),
    ("entry_script", "/abs/train.py", "relative to source_directory"),
    ("entry_script", "train.sh", ".py file"),
    ("environment", "", "non-empty string"),
])
def test_bad_values_name_file_field_value_and_what_is_allowed(tmp_path: Path, field: str, value: object,
                                                              allowed: str) -> None:
    import yaml

    path = _write(tmp_path, yaml.safe_dump({**GOOD, field: value}))
    with pytest.raises(InvalidValue) as caught:
        ParallelRunConfig.load(path)
    message = caught.value.message
    assert path.name in message
    assert repr(field) in message
    assert repr(value) in message
    assert allowed in message


def test_unknown_field_lists_the_allowed_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, "entry_script: train.py\nmini_batch: 5\n")
    with pytest.raises(InvalidValue, match=r"unknown field\(s\) 'mini_batch'; allowed: entry_script, "):
        ParallelRunConfig.load(path)


def test_missing_entry_script(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue, match="'entry_script' is missing"):
        ParallelRunConfig.load(_write(tmp_path, "mini_batch_size: 5\n"))


@pytest.mark.parametrize("text", ["- a\n- b\n", "entry_script: [\n"])
def test_not_a_mapping_or_not_yaml(tmp_path: Path, text: str) -> None:
    with pytest.raises(InvalidValue, match=r"train-parallelrunstep-config\.yml"):
        ParallelRunConfig.load(_write(tmp_path, text))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue, match="does not exist"):
        load_parallel_config(PipelineKind.TRAINING, tmp_path / "nope.yml")


def test_replace_checks_the_new_values() -> None:
    config = ParallelRunConfig.from_dict(GOOD)
    assert config.replace(mini_batch_size=50).mini_batch_size == 50
    with pytest.raises(InvalidValue, match="'run_max_try' is 0"):
        config.replace(run_max_try=0)


def test_absolute_source_directory_is_kept(tmp_path: Path) -> None:
    config = ParallelRunConfig.from_dict({**GOOD, "source_directory": str(tmp_path)})
    assert config.entry_script_path() == tmp_path / "train.py"
