"""Twenty real client processes on 127.0.0.1 through five rounds; nothing left running afterwards."""

import json
import re
import time
from pathlib import Path

import pytest

from fedge.processes import free_port
from fedge.results import read_metrics
from tests.processes import PeakMemory, demo_client

pytestmark = pytest.mark.slow
CLIENTS = 20
BATCH = 5  # devices started together


def enrolled(progress: Path) -> int:
    """Devices the server has enrolled so far, from its progress lines."""
    text = progress.read_text() if progress.exists() else ""
    first = re.search(r"^(\d+) client\(s\) enrolled", text, re.MULTILINE)
    return (int(first.group(1)) if first else 0) + len(re.findall(r"^node \d+ joined$", text, re.MULTILINE))


def _wait_until(condition, server, tmp_path: Path, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
        time.sleep(0.5)


def test_twenty_clients_five_rounds(fedge, tmp_path: Path):
    address = f"127.0.0.1:{free_port()}"
    server = fedge.start(["server", "--address", address, "--rounds", "5", "--min-clients", str(CLIENTS),
                          "--fraction-train", "0.5", "--fraction-evaluate", "0.25", "--dataset", "digits",
                          "--out", str(tmp_path / "runs"), "--name", "load", "--wait-timeout", "600"], tmp_path / "server.log")
    # Devices start once the server is waiting for them, as in a deployment, and five at a time,
    # each five enrolled before the next: 20 devices (60 processes importing torch) starting at once
    # on these 2 cores starved a SuperNode's heartbeat past Flower's 60 s, and starting them with the
    # ServerApp kept it from reaching its SuperLink within Flower's 30 s (test_launch.py).
    progress = tmp_path / "runs" / "load" / "progress.log"
    clients = []
    for batch in range(0, CLIENTS, BATCH):
        _wait_until(lambda: progress.exists() and "waiting for" in progress.read_text()
                    and enrolled(progress) >= batch, server, tmp_path)
        for i in range(batch, batch + BATCH):
            clients.append(fedge.start(demo_client(address, i, CLIENTS), tmp_path / f"client{i}.log"))
    memory = PeakMemory([c.pid for c in clients])
    memory.start()
    assert server.wait(timeout=1500) == 0, (tmp_path / "server.log").read_text()
    peaks = memory.stop()

    rows = read_metrics(tmp_path / "runs" / "load")
    assert [(r["train-clients"], r["train-failures"]) for r in rows] == [(10, 0)] * 5  # all sampled trained
    assert all(r["client-accuracy"] >= 0.5 for r in rows[1:])  # sampled clients evaluated what they received
    assert rows[-1]["eval-failures"] == 0  # the final evaluation-only exchange (fraction-evaluate 0.25)
    assert rows[-1]["test-accuracy"] >= 0.80  # 10 of 20 devices a round, 3 local epochs
    assert json.loads((tmp_path / "runs" / "load" / "status.json").read_text())["status"] == "completed"
    assert all(c.poll() is None for c in clients)  # every client served to the end
    mib = sorted(peak / 2**20 for peak in peaks.values())
    print(f"peak memory (PSS) per client (fedge client + SuperNode + ClientApp): min {mib[0]:.0f} MiB, "
          f"median {mib[len(mib) // 2]:.0f} MiB, max {mib[-1]:.0f} MiB; round seconds "
          f"{[r['seconds'] for r in rows]}")
    assert mib[-1] < 1024
