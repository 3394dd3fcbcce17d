"""shared/processes.py: /proc/<pid>/stat read right whatever the process name holds; one liveness rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.processes import pid_alive, pids_with_environment, proc_stat, process_cmdline, runs_command, start_ticks
from tests.support.polling import wait_until

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


# Run in a child that, when the tests run as root, drops to "nobody" first (after its imports):
# pid 1 then exists but belongs to another user, so kill(1, 0) says PermissionError.
_OTHER_USERS_PROCESS = """
import os, sys
from shared.processes import pid_alive, runs_command
from shared.workspace.local import service_process
if os.getuid() == 0:
    os.setgid(65534)
    os.setuid(65534)
try:
    os.kill(1, 0)
except PermissionError:
    pass
else:
    sys.exit("pid 1 can be signalled: not another user's process")
print(pid_alive(1), runs_command(1, "--run-id"), service_process.is_alive(1))
"""


def test_another_users_process_is_alive_but_not_ours() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", _OTHER_USERS_PROCESS], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=60)
    assert done.returncode == 0, done.stderr
    # alive: it exists; but neither a runner (of any run) nor a scoring service of ours
    assert done.stdout.split() == ["True", "False", "False"]


def test_runs_command_needs_the_marker_on_a_live_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "--run-id", "run-7"])
    try:
        assert runs_command(child.pid, "run-7")  # even while its arguments are not set yet (empty)
        wait_until(lambda: process_cmdline(child.pid), timeout=10, interval=0.01, what="the child's arguments")
        assert not runs_command(child.pid, "run-8")  # a pid reused by some other command
    finally:
        child.kill()
        child.wait()
    assert not runs_command(child.pid, "run-7")


def test_a_kernel_thread_reusing_a_pid_is_not_trusted_for_its_empty_command_line() -> None:
    kernel = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
              if (stat := proc_stat(pid)) is not None and stat.ppid == 2 and process_cmdline(pid) == b""]
    if not kernel:
        pytest.skip("no kernel threads visible (a container's own pid namespace)")
    assert pid_alive(kernel[0]) and not runs_command(kernel[0], "kworker")
