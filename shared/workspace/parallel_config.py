"""ParallelRunStep settings: ``pipelines/configuration/{train,forecast}-parallelrunstep-config.yml``.

One loader for both backends: the Azure ML adapter builds ``azureml.pipeline.steps.ParallelRunConfig``
from a :class:`ParallelRunConfig`, the local runner runs the entry script with the same numbers.
Field names and meanings are the SDK's (``mini_batch_size`` is a number of files: the input is a
FileDataset). A bad value fails with the file, the field, the value and what is allowed::

    InvalidValue: train-parallelrunstep-config.yml: field 'run_max_try' is 0: expected a whole number >= 1
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml  # untyped: mypy.ini types it as Any

from shared.errors import InvalidValue
from shared.paths import REPO_ROOT
from shared.workspace.base import PipelineKind

CONFIG_DIR = REPO_ROOT / "pipelines" / "configuration"
CONFIG_FILES = {
    PipelineKind.TRAINING: "train-parallelrunstep-config.yml",
    PipelineKind.FORECASTING: "forecast-parallelrunstep-config.yml",
}
# the SDK's rule for append_row_file_name: a plain UNIX file name
_BAD_FILE_NAME = re.compile(r'[~"#%&*:<>?/\\{|}]')


class OutputAction(StrEnum):
    APPEND_ROW = "append_row"  # every row run() returns goes to one file
    SUMMARY_ONLY = "summary_only"  # rows only count successes; the script writes its own output


class LoggingLevel(StrEnum):
    WARNING = "WARNING"
    INFO = "INFO"
    DEBUG = "DEBUG"


@dataclass(frozen=True, slots=True)
class ParallelRunConfig:
    """The settings of one ParallelRunStep (names and defaults of the SDK's ``ParallelRunConfig``)."""

    entry_script: str  # relative to source_directory
    source_directory: str = "scoring"  # relative to the repository root, or absolute
    mini_batch_size: int = 10  # files per run() call
    process_count_per_node: int = 1
    node_count: int = 1  # Azure ML only: the local runner is one node
    error_threshold: int = -1  # failed files/series tolerated before the job aborts; -1 ignores all
    allowed_failed_count: int = -1  # failed mini-batches tolerated (after their retries); -1 ignores all
    run_invocation_timeout: int = 60  # seconds one run() call may take before its process is replaced
    run_max_try: int = 3  # tries of a failed or timed-out mini-batch
    output_action: OutputAction = OutputAction.APPEND_ROW
    append_row_file_name: str = "parallel_run_step.txt"
    logging_level: LoggingLevel = LoggingLevel.INFO
    environment: str = "manymodels"  # Azure ML environment name
    environment_file: str = ""  # its conda .yml or pip .txt, from the repo root ("": the adapter's default)
    description: str = ""

    @classmethod
    def load(cls, path: str | Path) -> ParallelRunConfig:
        """Read and check a config file (flat keys, or the SDK's ``parallel_run_config:`` wrapper)."""
        path = Path(path)
        try:
            body = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise InvalidValue(f"ParallelRunStep config {path} does not exist") from None
        except yaml.YAMLError as e:
            raise InvalidValue(f"{path.name}: not valid YAML ({e})") from None
        if isinstance(body, dict) and set(body) == {"parallel_run_config"}:
            body = body["parallel_run_config"]
        if not isinstance(body, dict):
            raise InvalidValue(f"{path.name}: expected a mapping of ParallelRunConfig fields, "
                               f"got {type(body).__name__}")
        return cls.from_dict(body, source=path.name)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "ParallelRunConfig") -> ParallelRunConfig:
        """Check every field; :class:`InvalidValue` names ``source``, the field, the value and what is allowed."""
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise InvalidValue(f"{source}: unknown field(s) {', '.join(map(repr, unknown))}; "
                               f"allowed: {', '.join(allowed)}")
        if "entry_script" not in values:
            raise InvalidValue(f"{source}: field 'entry_script' is missing: give the script's path inside "
                               "source_directory, e.g. train.py")
        checked = {name: _CHECKS[name](values[name], name, source) for name in values if values[name] is not None}
        return cls(**checked)

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, StrEnum) else v for k, v in asdict(self).items()}

    def replace(self, **changes: Any) -> ParallelRunConfig:
        """A checked copy with some fields changed (run-time overrides, like PipelineParameters)."""
        return ParallelRunConfig.from_dict({**self.to_dict(), **changes}, source="parameters")

    def source_path(self, root: Path = REPO_ROOT) -> Path:
        path = Path(self.source_directory)
        return path if path.is_absolute() else root / path

    def entry_script_path(self, root: Path = REPO_ROOT) -> Path:
        return self.source_path(root) / self.entry_script


def config_path(kind: PipelineKind | str) -> Path:
    """The repository's config file of a pipeline kind."""
    return CONFIG_DIR / CONFIG_FILES[PipelineKind(kind)]


def load_parallel_config(kind: PipelineKind | str, path: str | Path | None = None) -> ParallelRunConfig:
    """The ParallelRunStep settings of ``kind`` (from ``path``, or the repository's file)."""
    return ParallelRunConfig.load(path or config_path(kind))


# --------------------------------------------------------------------------- field checks


def _fail(source: str, name: str, value: Any, allowed: str) -> InvalidValue:
    return InvalidValue(f"{source}: field {name!r} is {value!r}: expected {allowed}")


def _whole(lo: int, allowed: str) -> Callable[[Any, str, str], int]:
    def check(value: Any, name: str, source: str) -> int:
        number: object = value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            number = int(value)  # the SDK accepts "5" as well as 5
        if isinstance(number, bool) or not isinstance(number, int) or number < lo:
            raise _fail(source, name, value, allowed)
        return number

    return check


def _mini_batch_size(value: Any, name: str, source: str) -> int:
    if isinstance(value, str) and re.fullmatch(r"\d+\s*[kKmMgG][bB]", value.strip()):
        raise _fail(source, name, value, "a whole number of files >= 1 (sizes like 10MB are for TabularDataset "
                                         "inputs; these pipelines read files)")
    return _whole(1, "a whole number of files >= 1")(value, name, source)


def _text(*, required: bool) -> Callable[[Any, str, str], str]:
    def check(value: Any, name: str, source: str) -> str:
        if not isinstance(value, str) or (required and not value.strip()):
            raise _fail(source, name, value, "a non-empty string" if required else "a string")
        return value.strip()

    return check


def _script(value: Any, name: str, source: str) -> str:
    text = _text(required=True)(value, name, source)
    if not text.endswith(".py") or Path(text).is_absolute() or ".." in Path(text).parts:
        raise _fail(source, name, value, "a .py file path relative to source_directory, e.g. train.py")
    return text


def _choice(enum: type[StrEnum], *, upper: bool = False) -> Callable[[Any, str, str], StrEnum]:
    def check(value: Any, name: str, source: str) -> StrEnum:
        text = str(value).strip()
        text = text.upper() if upper else text.lower()
        if text not in {str(m) for m in enum}:
            raise _fail(source, name, value, "one of " + ", ".join(str(m) for m in enum))
        return enum(text)

    return check


def _file_name(value: Any, name: str, source: str) -> str:
    text = _text(required=True)(value, name, source)
    if _BAD_FILE_NAME.search(text):
        raise _fail(source, name, value, 'a plain file name without any of ~"#%&*:<>?/\\{|}')
    return text


_CHECKS: dict[str, Callable[[Any, str, str], Any]] = {
    "entry_script": _script,
    "source_directory": _text(required=True),
    "mini_batch_size": _mini_batch_size,
    "process_count_per_node": _whole(1, "a whole number of processes >= 1"),
    "node_count": _whole(1, "a whole number of nodes >= 1"),
    "error_threshold": _whole(-1, "a whole number >= -1 (-1 ignores every failed file or series)"),
    "allowed_failed_count": _whole(-1, "a whole number >= -1 (-1 ignores every failed mini-batch)"),
    "run_invocation_timeout": _whole(1, "a whole number of seconds >= 1"),
    "run_max_try": _whole(1, "a whole number >= 1"),
    "output_action": _choice(OutputAction),
    "append_row_file_name": _file_name,
    "logging_level": _choice(LoggingLevel, upper=True),
    "environment": _text(required=True),
    "environment_file": _text(required=False),
    "description": _text(required=False),
}
