"""Run the real `fedge` command in tests and prove that it left no process behind."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import threading
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
        self.began = _clock_ticks_since_boot()

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
        """Command lines of live (non-zombie) processes that still carry this tag, and of Ray
        processes started since this test began (they rename themselves, which overwrites the
        environment /proc shows, tag included)."""
        needle = f"{TAG_VAR}={self.tag}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                tagged = needle in (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            started_since = int(fields[19]) >= self.began  # field 22 of stat: start time in clock ticks
            if fields[0] != "Z" and (tagged or (command.startswith("ray::") and started_since)):
                found.append(command)
        return found


def _clock_ticks_since_boot() -> int:
    """Now, in the unit /proc/PID/stat gives process start times in."""
    return int(float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK"))


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


class PeakMemory(threading.Thread):
    """Samples the memory of each root process plus its descendants; keeps the peaks.

    Memory is PSS (proportional set size): a forked ClientApp shares its warm parent's
    pages, and summing RSS would count those pages twice.
    """

    def __init__(self, roots: list[int], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.roots, self.interval = roots, interval
        self.peaks = {root: 0 for root in roots}  # bytes
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            parents = _parents()
            for root in self.roots:
                tree, frontier = {root}, {root}
                while frontier:
                    frontier = {pid for pid, parent in parents.items() if parent in frontier}
                    tree |= frontier
                self.peaks[root] = max(self.peaks[root], sum(map(_pss, tree)))

    def stop(self) -> dict[int, int]:
        self.done.set()
        self.join()
        return self.peaks


def _parents() -> dict[int, int]:
    """Parent PID of every live process."""
    parents = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit():
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:  # ended meanwhile
            continue
    return parents


def _pss(pid: int) -> int:
    """PSS of one process in bytes; 0 once it has ended."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0
    return sum(int(line.split()[1]) * 1024 for line in rollup if line.startswith("Pss:"))


def listening_addresses(tag: str) -> set[str]:
    """Local addresses (host:port) on which processes carrying this tag listen for TCP."""
    needle = f"{TAG_VAR}={tag}".encode()
    inodes = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and needle in (entry / "environ").read_bytes().split(b"\0"):
                inodes.update(link.readlink().name[8:-1] for link in (entry / "fd").iterdir()
                              if link.readlink().name.startswith("socket:["))
        except OSError:
            continue
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.add(_address(fields[1]))
    return found


def _address(hex_address: str) -> str:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = ".".join(str(b) for b in reversed(raw))
    else:  # IPv6 as four little-endian 32-bit words
        words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
        ip = ipaddress.IPv6Address(b"".join(words)).compressed
        ip = str(ipaddress.IPv6Address(ip).ipv4_mapped or ip)
    return f"{ip}:{int(port, 16)}"
