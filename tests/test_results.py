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


def _files(folder: Path) -> tuple[str, str]:
    return (folder / "metrics.json").read_text(), (folder / "metrics.csv").read_text()


def test_rows_written_round_by_round_equal_rows_written_at_once(tmp_path: Path) -> None:
    """As a run writes them: each round completes the previous round's row (client-*
    keys, new CSV columns at round 2) before adding its own; the final evaluation
    completes the last row."""
    folder = RunFolder(tmp_path / "by-round")
    rows: list[dict] = []
    returned = ""
    for rnd in range(1, 8):
        if rows:
            rows[-1].update({"client-accuracy": rnd / 10, "client-examples": rnd})
        rows.append({"round": rnd, "test-accuracy": rnd / 8, **({"rejected": 1} if rnd == 5 else {})})
        returned = folder.write_metrics(rows)
    rows[-1].update({"client-accuracy": 0.9, "eval-failures": 0})
    returned = folder.write_metrics(rows)
    RunFolder(tmp_path / "at-once").write_metrics(rows)
    assert _files(tmp_path / "by-round") == _files(tmp_path / "at-once")
    assert read_metrics(tmp_path / "by-round") == rows and json.loads(returned) == rows
    with (tmp_path / "by-round" / "metrics.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["round", "test-accuracy", "client-accuracy", "client-examples", "rejected",
                              "eval-failures"]
    assert [t["rejected"] for t in table] == ["", "", "", "", "1", "", ""]
    assert table[-1]["eval-failures"] == "0" and table[3]["client-accuracy"] == "0.5"


def test_a_new_shorter_list_of_rows_is_written_whole(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.write_metrics([{"round": r, "a": r} for r in range(1, 6)])
    resumed = [{"round": r, "b": -r} for r in range(1, 4)]
    folder.write_metrics(resumed)
    assert read_metrics(tmp_path) == resumed
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["round,b", "1,-1", "2,-2", "3,-3"]
