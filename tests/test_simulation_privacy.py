"""DP and SecAgg+ through Flower's real simulation engine (mods run inside Flower's ClientApp runtime)."""

import json
from pathlib import Path

import pytest

from fedge.results import read_metrics
from tests.processes import Tagged

pytestmark = pytest.mark.slow


def _simulate(fedge: Tagged, out: Path, *args: str) -> tuple[Path, str]:
    result = fedge.run(["simulate", "--clients", "5", "--rounds", "3", "--local-epochs", "1", *args,
                        "--out", str(out), "--name", "run"], timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "run", result.stdout


def test_fedprox_with_client_side_dp_reports_epsilon_each_round(fedge, tmp_path: Path):
    run_dir, stdout = _simulate(fedge, tmp_path, "--strategy", "fedprox", "--dp", "client",
                                "--noise-multiplier", "0.1", "--clip-norm", "2", "--fraction-train", "0.6")
    rows = read_metrics(run_dir)
    eps = [r["epsilon"] for r in rows]
    assert len(eps) == 3 and eps[0] < eps[1] < eps[2]
    assert sum("epsilon" in line for line in stdout.splitlines() if line.startswith("round ")) == 3
    assert all(r["train-clients"] == 3 for r in rows)
    assert rows[-1]["test-accuracy"] > 0.5  # 0.88 in process; noise this small buys a huge epsilon (~220)


def test_secagg_simulation_completes_with_only_masked_uploads(fedge, tmp_path: Path):
    run_dir, _ = _simulate(fedge, tmp_path, "--secagg", "true")
    rows = read_metrics(run_dir)
    assert [r["train-clients"] for r in rows] == [5, 5, 5]
    assert rows[-1]["test-accuracy"] > 0.8
    audit = [json.loads(line) for line in (run_dir / "replies.jsonl").read_text().splitlines()]
    uploads = [e for e in audit if e["type"] == "train" and "fitres.parameters" in e]
    assert len(uploads) == 15 and all(e["fitres.parameters"] == {} for e in uploads)
