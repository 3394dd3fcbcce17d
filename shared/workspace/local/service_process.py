"""One local scoring service process: azureml-inference-server-http on 127.0.0.1.

``azmlinfsrv`` always binds ``0.0.0.0``; the launcher below runs the very same server
(``azureml_inference_server_http.amlserver.run``) with its host set to ``127.0.0.1`` and takes the
``azmlinfsrv`` command-line flags unchanged. It runs with ``python -c`` from the scoring
directory, which becomes the app root as in an Azure ML container, so nothing of ``shared`` is
importable by the scoring script.

Every service listens on two ports: its stable scoring port, opened with ``SO_REUSEPORT`` so a
new process can open it while the old one still answers (a rolling restart keeps the endpoint),
and a private health port that only this process owns (so a health check never reaches the old
process).

A started process is recorded before it can take traffic: it waits on its stdin for ``go`` (sent
once the caller has written down its pid and start time, see ``services.py``) and exits when the
pipe closes without it - so a caller killed between starting and recording it (a ``SIGKILL`` of the
local host during a rolling update) leaves no unrecorded server on the shared port. Every process
also carries :data:`HOME_ENV` / :data:`NAME_ENV` in its environment, so the strays of one home (a
process no record points at) are found in ``/proc/<pid>/environ``, never another home's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shared.errors import OperationTimeout, Unavailable
from shared.processes import pids_with_environment, proc_stat, process_environ, runs_command, start_ticks

HOST = "127.0.0.1"
REQUEST_LOG_ENV = "MANYMODELS_REQUEST_LOG"  # "true": log every request in the service's log
MARKER = "manymodels-local-service"
HOME_ENV = "MANYMODELS_SERVICE_HOME"  # the home whose services table owns the process
NAME_ENV = "MANYMODELS_SERVICE_NAME"  # the service it serves
GO = b"go\n"
NOT_RECORDED_EXIT = 75  # the launcher's code when its starter went away before recording it
# gunicorn formats every access-log line (headers, times: a measurable share of a local call's CPU)
# before the logger's level drops it; this logger class (gunicorn's --logger-class) asks the level first.
LAUNCHER = (
    f"# {MARKER}\n"
    "import logging, os, sys\n"
    f"if sys.stdin.buffer.readline() != {GO!r}:\n"
    f"    sys.exit({NOT_RECORDED_EXIT})  # nobody recorded this process: it must not serve\n"
    "_null = os.open(os.devnull, os.O_RDONLY)\n"
    "os.dup2(_null, 0)\n"
    "os.close(_null)\n"
    "from gunicorn import glogging\n"
    "from azureml_inference_server_http import amlserver\n"
    "class QuietAccessLogger(glogging.Logger):\n"
    "    def access(self, resp, req, environ, request_time):\n"
    "        if self.access_log.isEnabledFor(logging.INFO):\n"
    "            super().access(resp, req, environ, request_time)\n"
    f"amlserver.DEFAULT_HOST = {HOST!r}\n"
    "sys.argv[0] = 'azmlinfsrv'\n"
    "sys.exit(amlserver.run())\n"
)
# Variables of the parent that must not leak into a service (they would change what it serves).
_DROP_ENV = ("AZUREML_MODEL_DIR", "AZUREML_ENTRY_SCRIPT", "AML_APP_ROOT", "SERVER_PORT", "HEALTH_PORT",
             "GUNICORN_CMD_ARGS", "WORKER_COUNT", "AZUREML_CONFIG_FILE", HOME_ENV, NAME_ENV)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What the services table keeps of a running service (never a key)."""

    pid: int
    port: int
    health_port: int
    entry_script: str
    app_root: str
    model_dir: str
    log: str
    started: float
    start_ticks: int = 0  # /proc/<pid>/stat start time: a later process reusing the pid is not this one
    home: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessInfo | None:
        try:
            return cls(int(data["pid"]), int(data["port"]), int(data["health_port"]), str(data["entry_script"]),
                       str(data["app_root"]), str(data["model_dir"]), str(data.get("log", "")),
                       float(data.get("started", 0)), int(data.get("start_ticks", 0)), str(data.get("home", "")))
        except (KeyError, TypeError, ValueError):
            return None


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def start(*, entry_script: Path, model_dir: Path, port: int, health_port: int, log_file: Path,
          environment: Mapping[str, str], home: Path, name: str,
          record: Callable[[int, int], None]) -> subprocess.Popen[bytes]:
    """Start the server in its own session (it outlives the CLI); returns once ``record(pid, start_ticks)``
    has returned and the process was let go (before that it cannot open its ports). When ``record``
    raises, the process is stopped."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env.update({k: v for k, v in environment.items() if k not in (HOME_ENV, NAME_ENV)})
    env[HOME_ENV] = str(Path(home).resolve())
    env[NAME_ENV] = name
    gunicorn_args = environment.get("GUNICORN_CMD_ARGS", "")
    # --no-control-socket: gunicorn 27 would share one control socket (~/.gunicorn/gunicorn.ctl) between
    # every service; --reuse-port: the rolling restart opens the port beside the old process.
    env["GUNICORN_CMD_ARGS"] = (f"{gunicorn_args} --reuse-port --graceful-timeout 5 --no-control-socket "
                                "--logger-class __main__.QuietAccessLogger").strip()
    env["SEPERATE_HEALTH_ENDPOINT"] = "true"  # (sic) the server's name for a second listening port
    env.setdefault("WORKER_COUNT", "1")
    env["PYTHONUNBUFFERED"] = "1"
    app_root = entry_script.parent
    log_file.parent.mkdir(parents=True, exist_ok=True)
    # The server reads logging.json from its app root: a per-service one keeps the per-request lines
    # (three log records a call, a measurable share of a local call's CPU) out unless asked for.
    # The scoring directory stays importable: it is the working directory.
    env["AML_APP_ROOT"] = str(_logging_root(log_file.parent, request_log=_truthy(environment.get(REQUEST_LOG_ENV))))
    with open(log_file, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, "--entry_script", str(entry_script), "--model_dir", str(model_dir),
             "--port", str(port), "--health_port", str(health_port)],
            cwd=app_root, env=env, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    assert process.stdin is not None
    try:
        record(process.pid, start_ticks(process.pid))
    except BaseException:
        with contextlib.suppress(OSError):
            process.stdin.close()  # the launcher exits on EOF without "go"; killed too, to be sure
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    try:
        process.stdin.write(GO)
        process.stdin.close()
    except BrokenPipeError:  # it exited already: the health check reports that, with its log
        with contextlib.suppress(OSError):
            process.stdin.close()
    return process


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _logging_root(folder: Path, *, request_log: bool) -> Path:
    import azureml_inference_server_http

    config = json.loads((Path(azureml_inference_server_http.__file__).parent / "logging.json").read_text())
    if not request_log:
        config["loggers"]["azmlinfsrv"]["level"] = "WARNING"
        config["loggers"]["gunicorn.access"]["level"] = "WARNING"
    root = folder / "app"
    root.mkdir(parents=True, exist_ok=True)
    (root / "logging.json").write_text(json.dumps(config, indent=1))
    return root


def is_alive(pid: int, *, ticks: int = 0, home: Path | str | None = None) -> bool:
    """True when ``pid`` is a running service process of ours (a reaped zombie counts as dead).

    ``ticks`` (its recorded start time, 0: unknown) and ``home`` rule out a later process that
    reuses the pid, and another home's service.
    """
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    # alive, and a service (the launcher's command line holds MARKER; another user's process reusing
    # the pid does not), and the one meant: started at `ticks`, of `home`
    return runs_command(pid, MARKER) and _is_ours(pid, ticks=ticks, home=home)


def _is_ours(pid: int, *, ticks: int = 0, home: Path | str | None = None) -> bool:
    stat = proc_stat(pid)
    if stat is not None and ticks and stat.start_ticks != ticks:
        return False  # the pid was reused by a later process
    if stat is not None and home is not None:
        env = process_environ(pid)
        if env is not None and env.get(HOME_ENV) != str(Path(home).resolve()):
            return False  # another home's service (or not a service at all)
    return True


def wait_healthy(proc_pid: int, health_port: int, *, timeout: float, log_file: Path | None = None) -> None:
    """Wait until the process answers on its private health port (its ``init()`` has run)."""
    deadline = time.monotonic() + timeout
    url = f"http://{HOST}:{health_port}/"
    while True:
        if not is_alive(proc_pid):
            raise Unavailable(f"scoring service process {proc_pid} exited while starting: see "
                              f"{log_file or 'its log'}{_tail(log_file)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise OperationTimeout(f"scoring service process {proc_pid} did not answer on {url} within "
                                   f"{timeout:.0f}s: see {log_file or 'its log'}{_tail(log_file)}")
        time.sleep(0.1)


def _tail(log_file: Path | None, lines: int = 8) -> str:
    if log_file is None or not log_file.exists():
        return ""
    text = log_file.read_text(errors="replace").splitlines()[-lines:]
    return "\n  " + "\n  ".join(text) if text else ""


def stop(pid: int, *, timeout: float = 15.0, wait: bool = True, ticks: int = 0,
         home: Path | str | None = None) -> None:
    """Stop the service's process group (gunicorn master and its worker): TERM, then KILL.

    TERM is gunicorn's graceful stop: requests in flight finish (up to ``--graceful-timeout``).
    With ``wait=False`` it only asks, for a rolling restart that need not wait for the old process.
    ``ticks`` and ``home`` as for :func:`is_alive`: a process that is not the one meant is left alone.
    """
    if not is_alive(pid, ticks=ticks, home=home):
        return
    _signal(pid, signal.SIGTERM)
    if not wait:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid, ticks=ticks, home=home):
            return
        time.sleep(0.05)
    _signal(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)


def _signal(pid: int, sig: int) -> None:
    """Signal the process group ``pid`` leads (gunicorn master and workers); a process that leads
    none (a worker left behind by a killed master) alone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def describe(info: ProcessInfo) -> str:
    return json.dumps(info.to_dict(), sort_keys=True)


def running_in(home: Path | str, name: str | None = None) -> dict[int, tuple[str, int]]:
    """Every live service process of ``home`` (of service ``name`` only, when given), found by the
    marker variables in ``/proc/<pid>/environ``: {pid: (service name, start ticks)}. Only process
    group leaders (gunicorn masters): stopping one stops its group, its workers with it."""
    wanted = {HOME_ENV: str(Path(home).resolve())}
    if name is not None:
        wanted[NAME_ENV] = name
    found = {}
    for pid in pids_with_environment(**wanted):
        stat = proc_stat(pid)
        env = process_environ(pid)
        if stat is None or env is None or stat.state == "Z":
            continue
        if stat.pgrp != pid and proc_stat(stat.pgrp) is not None:
            continue  # a worker of a live master: stopped with its group
        found[pid] = (env.get(NAME_ENV, ""), stat.start_ticks)
    return found
