"""A tampered device and a device with the wrong data do not break a real run on 127.0.0.1."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from fedge.processes import free_port
from fedge.results import read_metrics
from tests.processes import demo_client

pytestmark = pytest.mark.slow
TAMPERED = Path(__file__).parent / "tampered"


def test_nan_updates_are_rejected_and_a_misfit_device_is_told_why(fedge, tmp_path: Path):
    address = f"127.0.0.1:{free_port()}"
    server = fedge.start(["server", "--address", address, "--rounds", "2", "--min-clients", "3",
                          "--dataset", "digits", "--out", str(tmp_path / "runs"), "--name", "faults",
                          "--wait-timeout", "180"], tmp_path / "server.log")
    for i in range(2):
        fedge.start(demo_client(address, i, 3), tmp_path / f"client{i}.log")
    pythonpath = os.pathsep.join([str(TAMPERED), os.environ.get("PYTHONPATH", "")])
    fedge.start(demo_client(address, 2, 3), tmp_path / "tampered.log",
                env={"PYTHONPATH": pythonpath, "FEDGE_TAMPER": "nan"})
    misfit = tmp_path / "three-columns.csv"
    misfit.write_text("a,b,c,label\n1,2,3,0\n4,5,6,1\n")
    refused = fedge.start(["client", "--server", address, "--data", str(misfit)], tmp_path / "misfit.log")

    assert server.wait(timeout=600) == 0, (tmp_path / "server.log").read_text()
    assert refused.wait(timeout=60) == 2
    assert (tmp_path / "misfit.log").read_text().splitlines()[-1] == (
        f"fedge client: error: {misfit}: the server refused this device: 3 features where the run has 64; "
        "missing 'pixel_0_0', 'pixel_0_1', 'pixel_0_2', 'pixel_0_3', 'pixel_0_4' and 59 more; "
        "unexpected 'a', 'b', 'c'")
    assert misfit.read_text() == "a,b,c,label\n1,2,3,0\n4,5,6,1\n"  # the user's file is untouched

    output = (tmp_path / "server.log").read_text()
    assert output.count("rejected the reply of node") == 2
    assert "holds 4096 non-finite value(s)" in output  # the 64x64 first layer, all NaN
    rows = read_metrics(tmp_path / "runs" / "faults")
    assert [(r["train-clients"], r["train-failures"], r["rejected"]) for r in rows] == [(2, 1, 1), (2, 1, 1)]
    assert np.isfinite(rows[-1]["test-loss"]) and rows[-1]["test-accuracy"] >= 0.85
    status = json.loads((tmp_path / "runs" / "faults" / "status.json").read_text())
    assert (status["status"], status["failures"]) == ("completed-with-failures", 2)


def test_a_straggler_is_named_and_the_round_goes_on_without_it(fedge, tmp_path: Path):
    address = f"127.0.0.1:{free_port()}"
    server = fedge.start(["server", "--address", address, "--rounds", "2", "--min-clients", "3",
                          "--round-timeout", "10", "--dataset", "digits", "--out", str(tmp_path / "runs"),
                          "--name", "slow", "--wait-timeout", "180"], tmp_path / "server.log")
    for i in range(2):
        fedge.start(demo_client(address, i, 3), tmp_path / f"client{i}.log")
    pythonpath = os.pathsep.join([str(TAMPERED), os.environ.get("PYTHONPATH", "")])
    fedge.start(demo_client(address, 2, 3), tmp_path / "slow.log",  # trains, then takes 30 s to answer
                env={"PYTHONPATH": pythonpath, "FEDGE_TAMPER": "slow"})

    assert server.wait(timeout=600) == 0, (tmp_path / "server.log").read_text()
    output = (tmp_path / "server.log").read_text()
    assert len(re.findall(r"no reply within --round-timeout 10s from node\(s\) \d+$", output, re.M)) >= 2
    rows = read_metrics(tmp_path / "runs" / "slow")
    assert [(r["train-clients"], r["train-failures"]) for r in rows] == [(2, 1), (2, 1)]
    assert all(r["seconds"] < 10 + 5 for r in rows)  # the round waited out the timeout, not the straggler
    assert rows[-1]["test-accuracy"] >= 0.85
    status = json.loads((tmp_path / "runs" / "slow" / "status.json").read_text())
    assert status["status"] == "completed-with-failures"
