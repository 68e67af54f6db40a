"""Shared fixtures: small real data sets written the way a device would hold them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from fedge.data import Table, load_builtin


def write_csv(path: Path, table: Table, label_column: str = "label") -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*table.feature_names, label_column])
        for row, label in zip(table.features, table.labels):
            writer.writerow([*(repr(float(v)) for v in row), label])
    return path


@pytest.fixture(scope="session")
def digits() -> tuple[Table, Table]:
    return load_builtin("digits")


@pytest.fixture
def digits_csv(tmp_path: Path, digits: tuple[Table, Table]) -> Path:
    train, _ = digits
    return write_csv(tmp_path / "device.csv", train.take(np.arange(60)))
