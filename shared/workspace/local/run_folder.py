"""Where a local run keeps its files: ``<home>/runs/<run_id>/`` (layout in runner.py's docstring)."""

from __future__ import annotations

from pathlib import Path

RESULTS_FILE = "results.json"  # failures and fallbacks of the run's series


def run_dir(home: Path, run_id: str) -> Path:
    return Path(home) / "runs" / run_id
