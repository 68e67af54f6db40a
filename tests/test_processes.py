"""ProcessSet stops what it started, including descendants that dropped fedge's run token."""

import os
import signal
import sys
import subprocess
import time
from pathlib import Path

from fedge.processes import ProcessSet, flower_env, run_pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_descendant_without_the_token_is_found_by_its_session_and_stopped(tmp_path: Path):
    pid_file = tmp_path / "grandchild.pid"
    processes = ProcessSet(flower_env(tmp_path / "home"), tmp_path / "logs")
    # like Ray's renamed agents: a descendant whose environment no longer shows the token
    processes.start(["sh", "-c", f"env -i sleep 300 & echo $! > {pid_file}; wait"], "sh.log")
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    while not Path(f"/proc/{grandchild}/cmdline").read_bytes().startswith(b"sleep"):  # `env -i` has exec'd
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert f"FEDGE_RUN_TOKEN={processes.token}".encode() not in Path(f"/proc/{grandchild}/environ").read_bytes()
    assert grandchild in run_pids(processes.token, {p.pid for p in processes.processes})
    processes.stop()
    assert not _alive(grandchild)
    assert os.getpid() not in run_pids(processes.token, {os.getpid()})  # never the caller itself


def test_a_process_holding_files_in_the_ray_folder_is_stopped(tmp_path: Path):
    processes = ProcessSet(flower_env(tmp_path / "home"), tmp_path / "logs")
    log = processes.ray_tmp / "agent.out"
    # like Ray's agents: no token to see, a session of its own, but its log open in RAY_TMPDIR
    agent = subprocess.Popen(["env", "-i", "sh", "-c", f"exec sleep 300 >> {log}"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not any(os.readlink(fd) == str(log) for fd in Path(f"/proc/{agent.pid}/fd").iterdir()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        processes.stop()
        assert agent.wait(timeout=5) == -9
    finally:
        agent.kill()  # by its own PID, whatever happened above
        agent.wait()


def test_what_a_fedge_process_started_ends_when_it_is_killed_outright(tmp_path: Path):
    """SIGKILL leaves no chance to stop anything: the children go with their parent all the same."""
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom pathlib import Path\nfrom fedge.processes import ProcessSet, flower_env\n"
        f"processes = ProcessSet(flower_env(Path({str(tmp_path)!r}) / 'home'), Path({str(tmp_path)!r}) / 'logs')\n"
        "child = processes.start(['sleep', '300'], 'sleep.log')\n"
        f"Path({str(pid_file)!r}).write_text(str(child.pid))\ntime.sleep(300)\n")])
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert _alive(child)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        parent.kill()
        parent.wait()
        if pid_file.exists() and pid_file.read_text() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)  # stop it even when the test fails
