"""`fedge server` and three `fedge client` processes on 127.0.0.1, each client with its own CSV."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from fedge.data import load_builtin
from fedge.processes import free_port
from fedge.results import read_metrics
from tests.conftest import write_csv

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("secure", [[], ["--secagg", "true"]], ids=["fedavg", "secagg"])
def test_server_and_three_clients_with_their_own_files(fedge, tmp_path: Path, secure: list[str]):
    train, test = load_builtin("breast-cancer")
    slices = np.array_split(np.random.default_rng(0).permutation(len(train)), 3)
    files = [write_csv(tmp_path / f"device{i}.csv", train.take(rows)) for i, rows in enumerate(slices)]
    write_csv(tmp_path / "test.csv", test)
    address = f"127.0.0.1:{free_port()}"

    server = fedge.start(["server", "--address", address, "--rounds", "3", "--min-clients", "3",
                          "--test-data", str(tmp_path / "test.csv"), "--out", str(tmp_path / "runs"),
                          "--name", "dep", "--wait-timeout", "120", *secure], tmp_path / "server.log")
    for i, path in enumerate(files):
        fedge.start(["client", "--server", address, "--data", str(path)], tmp_path / f"client{i}.log")
    assert server.wait(timeout=400) == 0, (tmp_path / "server.log").read_text()

    output = (tmp_path / "server.log").read_text()
    # the devices connect in their own time: enrolled together, or some join after the first
    enrolled = re.search(r"^(\d) client\(s\) enrolled: 30 features, classes benign, malignant$", output, re.M)
    assert enrolled and int(enrolled.group(1)) + len(re.findall(r"^node \d+ joined$", output, re.M)) == 3, output
    run_dir = tmp_path / "runs" / "dep"
    rows = read_metrics(run_dir)
    assert [r["train-clients"] for r in rows] == [3, 3, 3]
    assert rows[-1]["test-accuracy"] >= 0.85
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    for name in ("metrics.csv", "model.pt", "config.json", "state.db"):
        assert (run_dir / name).exists(), name
    if secure:  # Flower's SecAgg+ rounds: the server held masked vectors only, never fitres.parameters
        uploads = [json.loads(line) for line in (run_dir / "replies.jsonl").read_text().splitlines()]
        train = [u for u in uploads if u["type"] == "train"]
        assert sum("masked_params" in u.get("secaggplus_configs", {}) for u in train) == 3 * 3
        assert all(u.get("array-bytes", 0) == 0 for u in train)
    for path in files:  # the devices' files are untouched
        assert path.read_text().startswith("mean radius,")
