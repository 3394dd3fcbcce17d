"""shared/devhost/process.py: the host's pid file is not fooled by a later process reusing the pid."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from shared.devhost import process
from shared.processes import start_ticks

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def _write(home: Path, ticks: int) -> None:
    state = process.HostState(os.getpid(), "http://127.0.0.1:1", "app", 0.0, False, ticks)
    path = process.state_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(state)))


def test_the_recorded_host_process_is_running(tmp_path: Path) -> None:
    _write(tmp_path, start_ticks(os.getpid()))
    state = process.running(tmp_path)
    assert state is not None and state.pid == os.getpid()


def test_a_live_pid_with_another_start_time_is_not_the_host_and_down_leaves_it_alone(tmp_path: Path) -> None:
    _write(tmp_path, start_ticks(os.getpid()) + 1)  # this pid now belongs to another process (this test)
    assert process.running(tmp_path) is None
    assert not process.state_file(tmp_path).exists()  # the stale pid file is removed
    assert process.stop_host(tmp_path) is None  # and nothing is signalled: the test still runs
