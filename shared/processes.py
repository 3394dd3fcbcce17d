"""Local processes and loopback ports: the few checks every local component needs
(Azurite, the local host, scoring services, pipeline runners)."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
_PROC = Path("/proc")
_KTHREADD = 2  # the parent of every kernel thread (which has no command line)


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` that tell a process apart from a later one with its pid."""

    state: str  # R, S, D, Z, ...
    ppid: int
    pgrp: int
    start_ticks: int  # clock ticks after boot: with the pid, identifies one process for the boot's life


def proc_stat(pid: int) -> ProcStat | None:
    """``/proc/<pid>/stat`` parsed, or None (no such process, or no ``/proc``: macOS).

    The process name (field 2) is in parentheses and may itself hold spaces and parentheses
    ("(a b) Z (c)"): the fields are counted after its *last* closing parenthesis.
    """
    if pid <= 0:
        return None
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    try:  # after the name: state is field 3 of proc(5), ppid 4, pgrp 5, starttime 22
        return ProcStat(state=fields[0], ppid=int(fields[1]), pgrp=int(fields[2]), start_ticks=int(fields[19]))
    except (IndexError, ValueError):
        return None


def start_ticks(pid: int) -> int:
    """The start time of ``pid`` (clock ticks after boot); 0 when unknown (gone, or no ``/proc``)."""
    stat = proc_stat(pid)
    return stat.start_ticks if stat else 0


def process_environ(pid: int) -> dict[str, str] | None:
    """The environment ``pid`` was started with (``/proc/<pid>/environ``); None when unreadable
    (gone, another user's, or no ``/proc``)."""
    try:
        raw = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def pids_with_environment(**wanted: str) -> Iterator[int]:
    """Every live process (of this user: others' environments are unreadable) started with all of
    the ``wanted`` environment variables set to those values. Nothing without ``/proc``."""
    with contextlib.suppress(OSError):
        for entry in _PROC.iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            env = process_environ(int(entry.name))
            if env is not None and all(env.get(k) == v for k, v in wanted.items()):
                yield int(entry.name)


def process_cmdline(pid: int) -> bytes | None:
    """The command line of ``pid`` (``/proc/<pid>/cmdline``: NUL-separated arguments, empty while a
    just-started process still execs); None when unreadable (gone, or no ``/proc``)."""
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs; a zombie (exited, not yet reaped) counts as dead.

    A process of another user (``kill`` says ``PermissionError``) is alive: it exists. Whether it is
    the process meant (ours, not a later one reusing the pid) is :func:`runs_command`'s question.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = proc_stat(pid)
    return stat is None or stat.state != "Z"


def runs_command(pid: int, marker: str) -> bool:
    """True when ``pid`` is alive and its command line holds ``marker``: a later process that reuses
    the pid (another user's included) does not count. An empty command line is trusted (``Popen``
    returns before the kernel has set the new program's arguments), unless it is a kernel thread's;
    so is the pid alone where there is no ``/proc`` (macOS)."""
    if not pid_alive(pid):
        return False
    cmdline = process_cmdline(pid)
    if cmdline is None:
        return not _PROC.is_dir()  # gone meanwhile; or no /proc at all
    if not cmdline:
        stat = proc_stat(pid)
        return stat is not None and pid != _KTHREADD and stat.ppid != _KTHREADD
    return marker.encode() in cmdline


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on now (the OS's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, *, timeout: float = 0.3) -> bool:
    """True when something accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0
