"""Run the real `fedge` command in tests and prove that it left no process behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

FEDGE = str(Path(sys.executable).with_name("fedge"))
TAG_VAR = "FEDGE_TEST_TAG"


class Tagged:
    """Processes started with one tag in their environment; their descendants inherit it."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex
        self.env = {**os.environ, TAG_VAR: self.tag}
        self.started: list[subprocess.Popen] = []

    def run(self, args: list[str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([FEDGE, *args], env=self.env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)

    def start(self, args: list[str], log: Path, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        with log.open("w") as out:
            process = subprocess.Popen([FEDGE, *args], env={**self.env, **(env or {})}, cwd=cwd, stdout=out,
                                       stderr=subprocess.STDOUT)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        """Stop what this test started, by its own PIDs (SIGTERM, then SIGKILL)."""
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def leftovers(self) -> list[str]:
        """Command lines of live (non-zombie) processes that still carry this tag."""
        needle = f"{TAG_VAR}={self.tag}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if needle not in (entry / "environ").read_bytes().split(b"\0"):
                    continue
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
        return found


def wait_for_line(path: Path, text: str, process: subprocess.Popen, timeout: float) -> str:
    """Wait until `text` appears in the log at `path`; fail early if `process` ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        if process.poll() is not None:
            raise AssertionError(f"process ended (code {process.returncode}) before {text!r}:\n{content}")
        time.sleep(0.2)
    raise AssertionError(f"{text!r} did not appear in {path} within {timeout:g}s")


def demo_client(server: str, partition: int, partitions: int) -> list[str]:
    """`fedge client` on one partition of the digits demo data: no file to write."""
    return ["client", "--server", server, "--dataset", "digits", "--partition-id", str(partition),
            "--num-partitions", str(partitions)]
