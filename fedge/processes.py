"""Start, watch and stop Flower's processes; whatever fedge starts, fedge stops.

Flower's processes start more processes (flwr-serverapp, flwr-clientapp, Ray's
raylet, GCS and workers), some in sessions of their own that outlive their parent.
Every process fedge starts carries a run token in its environment, which its
descendants inherit; stopping sends SIGTERM to each process group, then SIGKILL to
every process on the machine that still carries the token.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

TOKEN_VAR = "FEDGE_RUN_TOKEN"


def flower_env(flwr_home: Path) -> dict[str, str]:
    """Environment for Flower's processes: quiet, local, no installs at run time."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["FLWR_HOME"] = str(flwr_home)
    env.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # off unless the user turned it on
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] = "1"
    env.setdefault("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", "0.1")  # default 1 s: start apps sooner
    # Ray listens on every interface unless it treats the machine as a single, non-cluster node;
    # Flower passes no bind address to ray.init, so this is the switch (measured: then all on 127.0.0.1).
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    env["RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO"] = "0"  # silences a Ray FutureWarning
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning,ignore::FutureWarning"
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # bind to every interface
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class LaunchError(RuntimeError):
    """Something fedge needs before starting is missing or wrong."""


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def local_host(host: str) -> str:
    """Where a process on this machine reaches a server bound to `host`: loopback for a wildcard bind.

    `fedge certs` puts 127.0.0.1 in every server certificate for that reason.
    """
    return "127.0.0.1" if host in WILDCARD_HOSTS else host


def split_address(address: str) -> tuple[str, int]:
    """'HOST:PORT' -> (host, port), with a clear error for anything else."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {address!r} is not HOST:PORT (e.g. 127.0.0.1:9092)")
    return host.strip("[]"), int(port)


class ProcessSet:
    """The processes of one fedge command; a context manager that always stops them."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.token = uuid.uuid4().hex
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="fedge-ray-"))  # short: Ray socket paths
        self.env = {**env, TOKEN_VAR: self.token, "RAY_TMPDIR": str(self.ray_tmp)}
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: list[subprocess.Popen] = []

    def start(self, args: list[str], log_name: str) -> subprocess.Popen:
        log = (self.log_dir / log_name).open("ab")
        process = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   preexec_fn=functools.partial(_terminate_with, os.getpid()))
        log.close()
        self.processes.append(process)
        return process

    def stop(self, grace: float = 10.0) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        self._kill_leftovers()
        shutil.rmtree(self.ray_tmp, ignore_errors=True)

    def _kill_leftovers(self, timeout: float = 10.0) -> None:
        """SIGKILL whatever still carries the run token, until nothing does.

        One pass is not enough: Ray's raylet restarts its dashboard and runtime-env
        agents as they die, so the survivors are frozen (SIGSTOP) before any is killed.
        """
        deadline = time.monotonic() + timeout
        sessions = {process.pid for process in self.processes}  # each was started as a session leader
        while (pids := run_pids(self.token, sessions, self.ray_tmp)) and time.monotonic() < deadline:
            for pid in pids:
                _send(pid, signal.SIGSTOP)
            for pid in pids:
                _send(pid, signal.SIGKILL)
            time.sleep(0.05)

    def __enter__(self) -> ProcessSet:
        return self

    def __exit__(self, kind: type | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def run_pids(token: str, sessions: set[int], folder: Path | None = None) -> list[int]:
    """PIDs of live processes of one run (Linux /proc): they carry its token in their
    environment, live in one of the sessions its processes lead, or hold files open in
    its `folder` (RAY_TMPDIR).

    The token alone misses Ray's agents: they rename themselves (setproctitle), which
    overwrites the environment that /proc shows, and Ray starts them in sessions of its
    own; their logs in RAY_TMPDIR give them away.
    """
    needle = f"{TOKEN_VAR}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state, session = _state_and_session(entry)
            if state != "Z" and (session in sessions or needle in (entry / "environ").read_bytes().split(b"\0")
                                 or (folder and _holds_files_in(entry, folder))):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _holds_files_in(entry: Path, folder: Path) -> bool:
    prefix = str(folder) + os.sep
    for fd in (entry / "fd").iterdir():
        try:
            if os.readlink(fd).startswith(prefix):
                return True
        except OSError:
            continue
    return False


def _state_and_session(entry: Path) -> tuple[str, int]:
    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[3])  # after the name: state, ppid, pgrp, session


def wait_healthy(host: str, port: int, process: subprocess.Popen, log: Path, ca: Path | None = None,
                 timeout: float = 60.0) -> None:
    """Wait until a SuperLink answers on /health (over TLS when `ca` is given); fail early if it exits."""
    url = f"{'https' if ca else 'http'}://{local_host(host)}:{port}/health"
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LaunchError(f"flower-superlink exited with code {process.returncode}; "
                               f"last lines of {log}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=1, context=context):
                return
        except OSError:
            time.sleep(0.2)
    raise LaunchError(f"flower-superlink did not become ready within {timeout:g}s; see {log}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _libc_prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up in the parent: a child between fork and exec should not load libraries."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_prctl = _libc_prctl() if sys.platform.startswith("linux") else None


def _terminate_with(parent: int) -> None:
    """In a child, before exec: SIGTERM it when `parent` (this fedge process) dies, even by SIGKILL.

    `stop()` cannot run in a process killed outright; without this its SuperNode, SuperLink
    and warm ClientApp parent lived on (and a killed device's SuperNode went on training).
    Linux only (prctl PR_SET_PDEATHSIG); elsewhere a no-op.
    """
    if _prctl is None:
        return
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _send(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
