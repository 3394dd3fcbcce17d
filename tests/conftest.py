"""Shared fixtures. Integration tests get a real Azurite (free ports, stopped after the session)
and settings with per-test container/queue/table names, so tests never see each other's data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import Settings, get_settings
from shared.storage import azurite as azurite_process

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS_FILE = REPO_ROOT / "pipelines" / "configuration" / "script_settings.json"
DOMINICKS_DIR = REPO_ROOT / "shared" / "data" / "samples" / "dominicks_oj"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[azurite_process.AzuriteProcess]:
    """A real Azurite on free loopback ports for the whole test session."""
    home = tmp_path_factory.mktemp("azurite-home")
    proc = azurite_process.start(home, ports=None, in_memory=True)
    try:
        yield proc
    finally:
        azurite_process.stop(home)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def env(home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment of an isolated local product: its own home and storage names."""
    values = {
        "MANYMODELS_BACKEND": "local",
        "MANYMODELS_HOME": str(home),
        "LANDING_CONTAINER": _unique("landing"),
        "PREDICTIONS_CONTAINER": _unique("predictions"),
        "DEPLOY_QUEUE": _unique("deploy-tasks-"),
        "LEDGER_TABLE": _unique("ledger"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield values
    get_settings.cache_clear()


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    """Settings of an isolated local product (no storage needed)."""
    return get_settings()


@pytest.fixture
def storage_settings(azurite: azurite_process.AzuriteProcess, env: dict[str, str],
                     monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings of an isolated local product on the session's Azurite."""
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    get_settings.cache_clear()
    return get_settings()
