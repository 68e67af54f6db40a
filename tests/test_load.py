"""Twenty real client processes on 127.0.0.1 through five rounds; nothing left running afterwards."""

import json
import time
from pathlib import Path

import pytest

from fedge.processes import free_port
from fedge.results import read_metrics
from tests.processes import PeakMemory, demo_client

pytestmark = pytest.mark.slow
CLIENTS = 20


def test_twenty_clients_five_rounds(fedge, tmp_path: Path):
    address = f"127.0.0.1:{free_port()}"
    server = fedge.start(["server", "--address", address, "--rounds", "5", "--min-clients", str(CLIENTS),
                          "--fraction-train", "0.5", "--fraction-evaluate", "0.25", "--dataset", "digits",
                          "--out", str(tmp_path / "runs"), "--name", "load", "--wait-timeout", "300"], tmp_path / "server.log")
    # Devices start once the server is waiting for them, as in a deployment: 20 of them starting on
    # these 2 cores while the ServerApp starts could keep it from reaching its SuperLink within Flower's
    # 30 s, and Flower then refuses it (fedge reports why: test_launch.py).
    progress = tmp_path / "runs" / "load" / "progress.log"
    deadline = time.monotonic() + 300
    while not (progress.exists() and "waiting for 20 client(s)" in progress.read_text()):
        assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
        time.sleep(0.5)
    clients = []
    for i in range(CLIENTS):  # devices come up one after another, not in one burst
        clients.append(fedge.start(demo_client(address, i, CLIENTS), tmp_path / f"client{i}.log"))
        time.sleep(0.5)
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
