"""Start, stop and inspect the project's Azurite (the real Azure Storage emulator, from npm).

Azurite listens on 127.0.0.1 only, keeps its data under ``<MANYMODELS_HOME>/azurite`` and runs
with telemetry off. Its PID and ports are written to ``azurite.json`` there, so a later command
(or ``manymodels down``) can find and stop it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from shared.errors import OperationTimeout, Unavailable
from shared.paths import REPO_ROOT
from shared.processes import free_port, pid_alive, port_open
from shared.storage.account import dev_connection_string

DEFAULT_PORTS = (10000, 10001, 10002)


@dataclass(frozen=True, slots=True)
class AzuriteProcess:
    pid: int
    host: str
    blob_port: int
    queue_port: int
    table_port: int
    location: str

    @property
    def connection_string(self) -> str:
        return dev_connection_string(host=self.host, blob_port=self.blob_port,
                                     queue_port=self.queue_port, table_port=self.table_port)

    def is_running(self) -> bool:
        return pid_alive(self.pid) and port_open(self.host, self.blob_port)


def azurite_binary() -> Path:
    """``node_modules/.bin/azurite`` of this checkout (installed by ``make setup``)."""
    override = os.environ.get("AZURITE_BIN")
    candidates = [Path(override)] if override else []
    candidates.append(REPO_ROOT / "node_modules" / ".bin" / "azurite")
    for c in candidates:
        if c.exists():
            return c
    found = shutil.which("azurite")
    if found:
        return Path(found)
    raise Unavailable("Azurite is not installed: run `make setup` (it runs `npm ci` from package.json)")


def _state_file(home: Path) -> Path:
    return home / "azurite" / "azurite.json"


def start(
    home: Path,
    *,
    ports: tuple[int, int, int] | None = DEFAULT_PORTS,
    in_memory: bool = False,
    timeout: float = 30.0,
) -> AzuriteProcess:
    """Start Azurite (or return the one already running for ``home``).

    ``ports=None`` picks free ports (what tests do). The process is detached from the caller's
    session so it survives the CLI exiting; :func:`stop` ends it.
    """
    existing = status(home)
    if existing:
        return existing
    location = home / "azurite"
    location.mkdir(parents=True, exist_ok=True)
    host = "127.0.0.1"
    blob, queue, table = ports or (free_port(), free_port(), free_port())
    for p in (blob, queue, table):
        if port_open(host, p):
            raise Unavailable(f"port {host}:{p} is already in use: stop what listens there, or set other "
                              "ports (another Azurite? try `manymodels storage status`)")
    cmd = [
        str(azurite_binary()), "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
        "--blobHost", host, "--blobPort", str(blob),
        "--queueHost", host, "--queuePort", str(queue), "--tableHost", host, "--tablePort", str(table),
    ]
    # in-memory storage (tests) and --location exclude each other; the log and state stay in location
    cmd += ["--inMemoryPersistence"] if in_memory else ["--location", str(location)]
    log = open(location / "azurite.log", "ab")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    log.close()
    state = AzuriteProcess(proc.pid, host, blob, queue, table, str(location))
    deadline = time.monotonic() + timeout
    while not all(port_open(host, p) for p in (blob, queue, table)):
        if proc.poll() is not None:
            raise Unavailable(f"Azurite exited at start (code {proc.returncode}); see {location / 'azurite.log'}")
        if time.monotonic() > deadline:
            proc.kill()
            raise OperationTimeout(f"Azurite did not listen within {timeout:.0f}s; see {location / 'azurite.log'}")
        time.sleep(0.1)
    _state_file(home).write_text(json.dumps(asdict(state)))
    return state


def status(home: Path) -> AzuriteProcess | None:
    """The running Azurite of ``home``, or None (a stale state file is removed)."""
    path = _state_file(home)
    if not path.exists():
        return None
    try:
        state = AzuriteProcess(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if state.is_running():
        return state
    path.unlink(missing_ok=True)
    return None


def stop(home: Path, *, timeout: float = 10.0) -> bool:
    """Stop the Azurite of ``home``; True when one was running."""
    state = status(home)
    if state is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(state.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(state.pid):
        os.killpg(state.pid, signal.SIGKILL)
    _state_file(home).unlink(missing_ok=True)
    return True
