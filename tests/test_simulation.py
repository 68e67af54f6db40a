"""`fedge simulate` end to end on Flower's simulation engine (real SuperLink, Ray, apps)."""

import json
import math
import signal
import time
from pathlib import Path

import pytest

from fedge.model import load_model
from fedge.results import read_metrics
from tests.processes import Tagged

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
NPY_HEADER = 128  # bytes Flower's Array adds to each serialised numpy array


def _simulate(fedge: Tagged, out: Path, *args: str) -> tuple[Path, list[dict]]:
    result = fedge.run(["simulate", *args, "--out", str(out), "--name", "run"], timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = out / "run"
    rows = read_metrics(run_dir)
    progress = [line for line in result.stdout.splitlines() if line.startswith("round ")]
    assert len(progress) == len(rows)
    assert "fedge: completed: final accuracy" in result.stdout
    return run_dir, rows


def test_digits_iid_ten_clients_reaches_90_percent(fedge, tmp_path: Path):
    run_dir, rows = _simulate(fedge, tmp_path, str(ROOT / "simulations" / "digits-iid.toml"))
    assert len(rows) == 10
    assert rows[-1]["test-accuracy"] >= 0.90
    assert all(r["train-clients"] == 10 and r["train-failures"] == 0 for r in rows)
    for name in ("metrics.json", "metrics.csv", "model.pt", "config.json", "status.json"):
        assert (run_dir / name).stat().st_size > 0, name
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 11
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "completed" and status["rounds"] == 10
    model = load_model(run_dir / "model.pt")
    assert model.classes == tuple(str(i) for i in range(10)) and len(model.feature_names) == 64
    _assert_only_model_arrays_and_scalars_left_clients(run_dir, model)


def _assert_only_model_arrays_and_scalars_left_clients(run_dir: Path, model) -> None:
    expected = {name: list(t.shape) for name, t in model.state_dict.items()}
    replies = [json.loads(line) for line in (run_dir / "replies.jsonl").read_text().splitlines()]
    assert {r["type"] for r in replies} == {"query", "train", "evaluate"}
    for reply in replies:
        if reply["type"] == "query":  # schema and additive statistics only
            assert set(reply) == {"type", "node", "schema", "stats"}
            assert reply["stats"] == {"num-examples": "int", "sums": "list", "squares": "list"}
            continue
        records = {k: v for k, v in reply.items() if k not in ("type", "node", "array-bytes")}
        if reply["type"] == "train":
            assert set(records) == {"arrays", "metrics"}
            assert {k: v["shape"] for k, v in records["arrays"].items()} == expected
            # what arrived is the float32 weights in one flat array (fedge.wire) and its header, no more
            assert reply["array-bytes"] == sum(4 * math.prod(shape) for shape in expected.values()) + NPY_HEADER
        else:
            assert set(records) == {"metrics"}
        assert set(records["metrics"].values()) <= {"int", "float"}


def test_iris_reaches_90_percent(fedge, tmp_path: Path):
    _, rows = _simulate(fedge, tmp_path, str(ROOT / "simulations" / "iris.toml"))
    assert rows[-1]["test-accuracy"] >= 0.90


def test_dirichlet_run_completes_and_writes_all_files(fedge, tmp_path: Path):
    run_dir, rows = _simulate(fedge, tmp_path, "--partition", "dirichlet", "--alpha", "0.3", "--clients", "8",
                              "--rounds", "3")
    assert [r["round"] for r in rows] == [1, 2, 3]
    for name in ("metrics.json", "metrics.csv", "model.pt", "config.json", "status.json", "replies.jsonl"):
        assert (run_dir / name).exists(), name
    assert json.loads((run_dir / "config.json").read_text())["partition"] == "dirichlet"


def test_ctrl_c_stops_every_process_it_started(fedge, tmp_path: Path):
    log = tmp_path / "out.log"
    process = fedge.start(["simulate", "--rounds", "50", "--out", str(tmp_path), "--name", "stopped"], log)
    deadline = time.time() + 120
    while "round 1/50" not in log.read_text() and time.time() < deadline:
        time.sleep(0.5)
    assert "round 1/50" in log.read_text()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert "fedge: interrupted; every process fedge started has been stopped" in log.read_text()
    assert fedge.leftovers() == []


def test_plain_flwr_run_uses_the_app_from_pyproject(fedge, tmp_path: Path):
    """`flwr run .` against a SuperLink, as Flower users do, without fedge's CLI."""
    from fedge.launch import start_superlink, write_connection
    from fedge.processes import ProcessSet, flower_env, free_port

    home = tmp_path / "flwr-home"
    with ProcessSet({**flower_env(home), **{k: v for k, v in fedge.env.items() if k == "FEDGE_TEST_TAG"}},
                    tmp_path / "logs") as processes:
        port = start_superlink(processes, "127.0.0.1", free_port(), ["--insecure", "--simulation"])
        write_connection(home, f"127.0.0.1:{port}")
        runner = processes.start(["flwr", "run", str(ROOT), "fedge", "--stream", "--run-config",
                                  f"num-rounds=2 dataset='iris' out='{tmp_path}' name='plain'",
                                  "--federation-config", "num-supernodes=3"], "flwr-run.log")
        assert runner.wait(timeout=300) == 0
    status = json.loads((tmp_path / "plain" / "status.json").read_text())
    assert status["status"] == "completed" and status["rounds"] == 2
    assert len(read_metrics(tmp_path / "plain")) == 2
