"""The running host's state file ``<home>/devhost/host.json``: pid, URL, and whether it started
Azurite. Light on purpose: the publishers of the local topics (shared/devhost/topics.py) read the
host's URL from it, and the host itself (shared/devhost/process.py) writes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from shared.processes import pid_alive, start_ticks


@dataclass(frozen=True, slots=True)
class HostState:
    pid: int
    url: str
    app: str
    started: float
    azurite_started: bool = False
    start_ticks: int = 0  # /proc/<pid>/stat start time (0: unknown): a later process reusing the pid is not the host


def state_file(home: Path) -> Path:
    return home / "devhost" / "host.json"


def log_file(home: Path) -> Path:
    return home / "logs" / "host.log"


def running(home: Path) -> HostState | None:
    """The host of ``home`` if its process lives (a stale pid file is removed)."""
    path = state_file(home)
    try:
        state = HostState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if pid_alive(state.pid) and not (state.start_ticks and start_ticks(state.pid) != state.start_ticks):
        return state
    path.unlink(missing_ok=True)
    return None


def host_url(home: Path) -> str | None:
    state = running(home)
    return state.url if state else None


def write_state(home: Path, state: HostState) -> None:
    path = state_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state)))
    tmp.replace(path)
