"""Run the host in the foreground, or as a background process found through its pid file.

The pid file ``<home>/devhost/host.json`` (shared/devhost/host_state.py) holds the pid, URL and
whether this host started Azurite; ``manymodels down`` reads it to stop the host, then stops the
rest of the local stack (scoring services, pipeline runners, Azurite).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from shared.devhost.host_state import HostState, log_file, running, state_file, write_state
from shared.errors import Conflict, OperationTimeout, Unavailable
from shared.paths import REPO_ROOT
from shared.processes import pid_alive, port_open, start_ticks
from shared.settings import Settings
from shared.storage import azurite
from shared.workspace.base import RunStatus
from shared.workspace.local.workspace import LocalWorkspace

if TYPE_CHECKING:
    from shared.devhost.host import HostOptions, LocalHost

log = logging.getLogger(__name__)



def ensure_storage(settings: Settings) -> bool:
    """Start Azurite for ``UseDevelopmentStorage=true`` when nothing listens yet; True if started here."""
    if settings.storage_connection.strip().lower().replace(" ", "") != "usedevelopmentstorage=true":
        return False  # an explicit account (a test's Azurite, or Azure): not ours to start
    if azurite.status(settings.home) or port_open("127.0.0.1", azurite.DEFAULT_PORTS[0]):
        return False  # ours already, or another Azurite on the default ports: use it
    azurite.start(settings.home)
    return True


# --------------------------------------------------------------------------- foreground


def serve(settings: Settings, options: HostOptions, *, on_ready: Callable[[LocalHost], None] | None = None,
          stop_stack: bool = False) -> int:
    """Run the host until SIGINT/SIGTERM. ``stop_stack`` also stops what ``down`` stops on exit."""
    from shared.devhost.host import LocalHost  # the host imports the Azure SDKs: only when serving

    existing = running(settings.home)
    if existing and existing.pid != os.getpid():
        raise Conflict(f"a host already runs for {settings.home} (pid {existing.pid}, {existing.url}): "
                       "stop it with `manymodels down` first")
    started_azurite = ensure_storage(settings)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    host = None
    try:
        host = LocalHost(settings, options)
        host.start()
        write_state(settings.home, HostState(os.getpid(), host.url, str(options.app_path), time.time(),
                                             started_azurite, start_ticks(os.getpid())))
        threading.Thread(target=restart_services, args=(settings,), name="restart-services", daemon=True).start()
        if on_ready:
            on_ready(host)
        stop.wait()
    finally:
        if host is not None:
            host.stop()
        state_file(settings.home).unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if stop_stack:
            stop_stack_parts(settings, azurite_too=started_azurite)
    return 0


def restart_services(settings: Settings) -> list[str]:
    """Start again the local scoring services a ``down`` (or a reboot) stopped, so the router answers."""
    try:
        workspace = LocalWorkspace(settings)
    except Exception as e:
        log.debug("no local workspace yet: %s", e)
        return []
    try:
        restarted = list(workspace.services.restart_stale())
    except Exception:
        log.exception("restarting local scoring services failed")
        return []
    finally:
        workspace.close()
    if restarted:
        log.info("restarted local scoring services: %s", ", ".join(restarted))
    return restarted


# --------------------------------------------------------------------------- background


def start_detached(settings: Settings, args: Sequence[str], *, timeout: float = 90.0,
                   env: dict[str, str] | None = None) -> HostState:
    """Start ``python -m shared.devhost ARGS`` in its own session; return once it answers."""
    existing = running(settings.home)
    if existing:
        return existing
    path = log_file(settings.home)
    path.parent.mkdir(parents=True, exist_ok=True)
    environment = dict(env if env is not None else os.environ)
    environment["MANYMODELS_HOME"] = str(settings.home.resolve())  # the host runs from the repo root
    with open(path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "shared.devhost", *args], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=environment,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = running(settings.home)
        if state and state.pid == proc.pid and _answers(state.url):
            return state
        if proc.poll() is not None:
            raise Unavailable(f"the host exited at start (code {proc.returncode}):\n{_tail(path)}\n"
                              f"full log: {path}")
        time.sleep(0.2)
    stop_pid(proc.pid)
    raise OperationTimeout(f"the host did not answer within {timeout:.0f}s; see {path}")


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/admin/host/ping", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_pid(pid: int, *, timeout: float = 30.0) -> None:
    """SIGTERM ``pid`` (its whole process group when it leads one, as a detached host or runner does),
    SIGKILL after ``timeout``. A foreground ``manymodels up`` shares its terminal's group: only it is signalled."""
    try:
        leads_group = os.getpgid(pid) == pid
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            if leads_group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not pid_alive(pid):
            return


def stop_host(home: Path, *, timeout: float = 30.0) -> HostState | None:
    state = running(home)
    if state is None:
        return None
    stop_pid(state.pid, timeout=timeout)
    state_file(home).unlink(missing_ok=True)
    return state


def stop_stack_parts(settings: Settings, *, azurite_too: bool = True) -> dict[str, Any]:
    """Stop the local scoring services, running pipeline runners and (optionally) Azurite."""
    stopped: dict[str, Any] = {"services": [], "runners": [], "azurite": False}
    try:
        workspace = LocalWorkspace(settings)
    except Exception as e:  # the workspace may not exist yet on a fresh machine
        log.debug("no local workspace to stop: %s", e)
        workspace = None
    if workspace is not None:
        try:
            stopped["services"] = list(workspace.services.stop_all())
            stopped["runners"] = _stop_runners(workspace)
        finally:
            workspace.close()
    if azurite_too:
        stopped["azurite"] = azurite.stop(settings.home)
    return stopped


def _stop_runners(workspace: Any) -> list[str]:
    stopped = []
    for status in (RunStatus.QUEUED, RunStatus.RUNNING):
        for run in workspace.runs.list(status=status):
            pid = workspace.pipelines.runner_pid(run.run_id)
            if pid is None or not workspace.pipelines.runner_alive(run.run_id):
                continue
            stop_pid(pid, timeout=10)
            stopped.append(run.run_id)
    return stopped
