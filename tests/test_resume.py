"""A server stopped during round 3 of 6 is resumed with `fedge server --resume` and finishes the run."""

import json
import signal
from pathlib import Path

import pytest

from fedge.processes import free_port
from fedge.results import read_metrics
from tests.processes import demo_client, wait_for_line

pytestmark = pytest.mark.slow


def test_a_stopped_server_resumes_from_its_last_completed_round(fedge, tmp_path: Path):
    address = f"127.0.0.1:{free_port()}"
    run_dir = tmp_path / "runs" / "resumed"
    server = fedge.start(["server", "--address", address, "--rounds", "6", "--dataset", "digits",
                          "--out", str(tmp_path / "runs"), "--name", "resumed", "--wait-timeout", "120"],
                         tmp_path / "server.log")
    for i in range(2):
        fedge.start(demo_client(address, i, 2), tmp_path / f"client{i}.log")
    wait_for_line(tmp_path / "server.log", "round 2/6", server, timeout=240)
    server.send_signal(signal.SIGTERM)  # during round 3
    assert server.wait(timeout=60) != 0
    assert [r["round"] for r in read_metrics(run_dir)] == [1, 2]
    assert not (run_dir / "status.json").exists()

    again = fedge.start(["server", "--address", address, "--resume", str(run_dir)], tmp_path / "resume.log")
    assert again.wait(timeout=400) == 0, (tmp_path / "resume.log").read_text()
    output = (tmp_path / "resume.log").read_text()
    assert "resuming after round 2 of 6" in output
    assert "round 1/6" not in output and "round 3/6" in output
    rows = read_metrics(run_dir)
    assert [r["round"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["train-clients"] for r in rows[2:]] == [2, 2, 2, 2]
    assert rows[-1]["test-accuracy"] >= 0.9  # an uninterrupted 6-round run reaches 0.93-0.95
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
