"""``supervise.ChildProcess`` with real short-lived children (``python -c``): readiness, failing fast,
stopping (SIGTERM, SIGKILL, the group), and the spawn options."""

from __future__ import annotations

import os
import pwd
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest
from waiting import wait_until

from algofs_jupyter.supervise import ChildProcess

#: A grandchild in the child's process group that records a SIGTERM in a file, then sleeps.
GRANDCHILD = """
import signal, sys, time
def on_term(*_):
    open(sys.argv[1], "w").write("TERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
open(sys.argv[2], "w").write("ready")
time.sleep(60)
"""


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def gone(pid: int) -> bool:
    """Exited (a zombie not yet reaped by whoever inherited it counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def child(tmp_path):
    started = ChildProcess("test child", tmp_path / "child.log")
    yield started
    started.stop(term_timeout=1, kill_leftovers=True)


def with_grandchild(tmp_path: Path, leader_ignores_term: bool) -> list[str]:
    """A leader that starts ``GRANDCHILD`` in its own group, writes the grandchild's pid, then sleeps."""
    code = f"""
import signal, subprocess, sys, time
if {leader_ignores_term}:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c", {GRANDCHILD!r}, sys.argv[1], sys.argv[2]])
open(sys.argv[3], "w").write(str(grandchild.pid))
time.sleep(60)
"""
    return python(code, str(tmp_path / "got-term"), str(tmp_path / "grandchild-ready"), str(tmp_path / "pid"))


def start_with_grandchild(child: ChildProcess, tmp_path: Path, leader_ignores_term: bool = False) -> int:
    child.spawn(with_grandchild(tmp_path, leader_ignores_term))
    child.wait_ready(lambda: (tmp_path / "pid").exists() and (tmp_path / "grandchild-ready").exists(), 20)
    return int((tmp_path / "pid").read_text())


def test_wait_ready_returns_once_the_probe_is_true(child, tmp_path):
    flag = tmp_path / "flag"
    child.spawn(python("import sys, time; time.sleep(0.3); open(sys.argv[1], 'w').close(); time.sleep(60)",
                       str(flag)))
    child.wait_ready(flag.exists, 20)
    assert flag.exists() and child.alive() and child.pid is not None


def test_a_child_that_exits_before_ready_fails_fast_with_the_log_tail(child):
    child.spawn(python("import sys; print('line one'); print('fatal: no config', file=sys.stderr); "
                       "sys.exit(3)"))
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exited with 3") as raised:
        child.wait_ready(lambda: False, 30)
    assert time.monotonic() - started < 10, "it waited for the timeout instead of noticing the exit"
    assert "line one" in str(raised.value) and "fatal: no config" in str(raised.value)
    assert child.returncode == 3 and not child.alive()


def test_a_child_that_never_gets_ready_times_out_with_the_log_tail(child):
    child.spawn(python("print('still starting', flush=True); import time; time.sleep(60)"))
    child.wait_ready(lambda: "still starting" in child.log_tail(), 20)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="not ready after 0.3 s") as raised:
        child.wait_ready(lambda: False, 0.3)
    assert 0.3 <= time.monotonic() - started < 5
    assert "still starting" in str(raised.value) and child.alive()


def test_stop_escalates_to_sigkill_for_a_child_that_ignores_sigterm(child, tmp_path):
    armed = tmp_path / "armed"
    child.spawn(python("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                       "open(sys.argv[1], 'w').close(); time.sleep(60)", str(armed)))
    child.wait_ready(armed.exists, 20)
    popen = child.popen
    assert popen is not None
    started = time.monotonic()
    child.stop(term_timeout=0.5)
    assert time.monotonic() - started < 10
    assert popen.returncode == -signal.SIGKILL
    assert child.popen is None and not child.alive()


def test_stop_kills_grandchildren_in_the_group_when_it_escalates(child, tmp_path):
    grandchild = start_with_grandchild(child, tmp_path, leader_ignores_term=True)
    child.stop(term_timeout=0.5)
    assert wait_until(lambda: gone(grandchild)), "the grandchild outlived the SIGKILL of the group"


def test_kill_leftovers_kills_a_grandchild_the_exited_leader_left(child, tmp_path):
    grandchild = start_with_grandchild(child, tmp_path)
    child.stop(term_timeout=5, kill_leftovers=True)  # the leader dies of SIGTERM at once
    assert wait_until(lambda: gone(grandchild)), "the grandchild outlived its leader"
    assert not (tmp_path / "got-term").exists(), "SIGTERM went to the leader only, the grandchild was killed"


def test_term_group_sends_sigterm_to_the_whole_group(child, tmp_path):
    grandchild = start_with_grandchild(child, tmp_path)
    child.stop(term_timeout=5, term_group=True)
    assert wait_until(lambda: gone(grandchild))
    assert (tmp_path / "got-term").read_text() == "TERM"


def test_stop_is_safe_twice_before_start_and_after_the_child_exited(child):
    child.stop()  # never started
    child.spawn(python("import time; time.sleep(60)"))
    popen = child.popen
    assert popen is not None
    child.stop(term_timeout=5)
    child.stop(term_timeout=5)
    assert popen.returncode == -signal.SIGTERM
    child.spawn(python("pass"))  # stopped children can be started again
    assert wait_until(lambda: not child.alive())
    child.stop()
    child.stop()
    assert child.popen is None and child.returncode is None


def test_spawn_twice_is_refused(child):
    child.spawn(python("import time; time.sleep(60)"))
    with pytest.raises(RuntimeError, match="already started"):
        child.spawn(python("pass"))


def test_spawn_in_a_working_directory_with_an_environment(child, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    child.spawn(python("import os; print(os.getcwd(), os.environ.get('MARK'), flush=True)"),
                {**os.environ, "MARK": "m-42"}, cwd=workdir)
    assert wait_until(lambda: not child.alive())
    assert child.log_tail().strip() == f"{workdir} m-42"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing uid and gid needs root")
def test_spawn_as_another_account_without_the_parents_groups(child):
    nobody = pwd.getpwnam("nobody")
    before = os.getgroups()
    os.setgroups([4, 27])  # supplementary groups the child must not inherit
    try:
        child.spawn(["/bin/sh", "-c", "echo $(id -u) $(id -g) $(id -G)"], user=nobody.pw_uid,
                    group=nobody.pw_gid)
    finally:
        os.setgroups(before)
    assert wait_until(lambda: not child.alive())
    assert child.returncode == 0, child.log_tail()
    ids = str(nobody.pw_uid), str(nobody.pw_gid)
    assert child.log_tail().split() == [*ids, ids[1]]
