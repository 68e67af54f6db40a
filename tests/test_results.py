"""The run folder's metrics files: what `fedge plot`, resumes and users read back."""

import csv
import json
from pathlib import Path

from fedge.results import RunFolder, read_metrics

ROWS = [{"round": 1, "train-clients": 3, "test-accuracy": 0.5},
        {"round": 2, "train-clients": 2, "test-accuracy": 0.75, "client-accuracy": 0.625, "note": "a \"quoted\" é"}]


def test_metrics_round_trip_one_round_per_line(tmp_path: Path) -> None:
    RunFolder(tmp_path).write_metrics(ROWS)
    assert read_metrics(tmp_path) == ROWS
    lines = (tmp_path / "metrics.json").read_text().splitlines()
    assert lines[0] == '{"rounds": [' and lines[-1] == "]}" and len(lines) == 2 + len(ROWS)
    assert [json.loads(line.strip().rstrip(",")) for line in lines[1:-1]] == ROWS
    with (tmp_path / "metrics.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["round", "train-clients", "test-accuracy", "client-accuracy", "note"]
    assert table[1]["client-accuracy"] == "0.625" and table[0]["client-accuracy"] == ""


def test_no_rounds_yet(tmp_path: Path) -> None:
    RunFolder(tmp_path).write_metrics([])
    assert read_metrics(tmp_path) == []
