"""Too few devices, a device killed mid-round, and the same device back: the server's answers."""

import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from fedge.processes import free_port
from fedge.results import read_metrics
from tests.processes import Tagged, demo_client, wait_for_line

pytestmark = pytest.mark.slow


def _server(fedge: Tagged, tmp_path: Path, address: str, *args: str):
    return fedge.start(["server", "--address", address, "--dataset", "digits", "--out", str(tmp_path / "runs"),
                        "--name", "run", *args], tmp_path / "server.log")


def test_too_few_clients_end_the_run_with_a_clear_message(fedge, tmp_path: Path):
    address = f"127.0.0.1:{free_port()}"
    server = _server(fedge, tmp_path, address, "--wait-timeout", "40")  # --min-clients defaults to 2
    fedge.start(demo_client(address, 0, 2), tmp_path / "client.log")
    assert server.wait(timeout=180) == 1
    assert (tmp_path / "server.log").read_text().splitlines()[-1] == (
        "fedge: run failed: only 1 usable client(s) connected within --wait-timeout 40s; --min-clients is 2. "
        "Start more clients, or lower --min-clients")
    assert json.loads((tmp_path / "runs" / "run" / "status.json").read_text())["status"] == "failed"


def test_a_killed_client_is_dropped_and_rejoins_when_restarted(fedge, tmp_path: Path):
    address = f"127.0.0.1:{free_port()}"
    server = _server(fedge, tmp_path, address, "--rounds", "3", "--round-timeout", "60", "--wait-timeout", "180")
    clients = [fedge.start(demo_client(address, i, 3), tmp_path / f"client{i}.log") for i in range(3)]
    victim_log = tmp_path / "client2.log"
    wait_for_line(tmp_path / "server.log", "round 1/3", server, timeout=300)
    supernode = int(re.search(r"SuperNode \(PID (\d+)\)", victim_log.read_text()).group(1))
    os.kill(supernode, signal.SIGKILL)  # the device dies during round 2, without a word
    assert clients[2].wait(timeout=60) == 1
    # what Flower wrote on the device stays for a look; the client says where
    kept = Path(re.search(r"^fedge: this device's logs are kept in (.+)$", victim_log.read_text(), re.M).group(1))
    try:
        assert "SuperNode exited with code -9" in victim_log.read_text() and (kept / "supernode.log").is_file()
    finally:
        shutil.rmtree(kept.parent)
    fedge.start(demo_client(address, 2, 3), tmp_path / "client2-again.log")  # and comes back

    assert server.wait(timeout=600) == 0, (tmp_path / "server.log").read_text()
    output = (tmp_path / "server.log").read_text()
    rows = read_metrics(tmp_path / "runs" / "run")
    assert [r["train-clients"] for r in rows] == [3, 2, 3]
    assert rows[1]["train-failures"] == 1 and rows[1]["seconds"] < 3 * 60 + 30
    # Flower answers for the dead node once its heartbeat has expired (2 × 30 s), before --round-timeout
    assert re.search(r"node \d+ failed: Error: Node Unavailable", output)
    assert re.search(r"node \d+ joined", output)
    status = json.loads((tmp_path / "runs" / "run" / "status.json").read_text())
    assert status["status"] == "completed-with-failures" and status["failures"] >= 1
    assert "fedge: completed-with-failures:" in output
