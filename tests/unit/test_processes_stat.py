"""shared/processes.py: /proc/<pid>/stat read right whatever the process name holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.processes import pid_alive, pids_with_environment, proc_stat, start_ticks

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


@pytest.mark.parametrize("name", ["a Z b", "x) Z (y", "((", "sl eep) R 1 2"])
def test_a_process_named_with_spaces_and_parentheses_is_parsed_right(tmp_path: Path, name: str) -> None:
    program = tmp_path / name  # the kernel names a process after its executable (15 characters at most)
    program.symlink_to(sys.executable)
    child = subprocess.Popen([str(program), "-c", "import time; time.sleep(60)"], env={**os.environ, "HX_MARK": name})
    try:
        stat = proc_stat(child.pid)
        assert stat is not None
        assert stat.state in ("R", "S") and stat.ppid == os.getpid()
        assert stat.start_ticks == start_ticks(child.pid) > start_ticks(os.getpid()) - 1
        assert pid_alive(child.pid)  # a name holding " Z " is not a zombie
        assert child.pid in set(pids_with_environment(HX_MARK=name))
    finally:
        child.kill()
        child.wait()
    assert not pid_alive(child.pid) and proc_stat(child.pid) is None and start_ticks(child.pid) == 0


def test_a_zombie_counts_as_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        assert proc_stat(child.pid).state == "Z"
        assert not pid_alive(child.pid)
    finally:
        child.wait()
