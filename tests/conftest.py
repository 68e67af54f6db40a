"""Shared fixtures: the `fedge` command for end-to-end tests, small real data sets written the
way a device would hold them, and one model trained in-process on digits (no Flower) with its
ONNX exports."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from fedge.cli import main
from fedge.data import Table, load_builtin
from fedge.model import TrainedModel, save_model
from fedge.results import MODEL_FILE
from fedge.training import TrainSettings, train_central
from tests.processes import Tagged


@pytest.fixture
def fedge():
    """Runs the real `fedge` command; afterwards stops what it started and checks nothing is left."""
    tagged = Tagged()
    yield tagged
    tagged.stop_all()
    assert tagged.leftovers() == []


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


@pytest.fixture(scope="session")
def digits_model(digits: tuple[Table, Table]) -> TrainedModel:
    return train_central(digits[0], (64, 64), TrainSettings(epochs=10))


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory, digits_model: TrainedModel) -> Path:
    """A run folder holding only the final model, as a finished run leaves it."""
    folder = tmp_path_factory.mktemp("run")
    save_model(folder / MODEL_FILE, digits_model)
    return folder


@pytest.fixture(scope="session")
def onnx_float(digits_run: Path) -> Path:
    assert main(["export", str(digits_run), "--format", "onnx"]) == 0
    return digits_run / "model.onnx"


@pytest.fixture(scope="session")
def onnx_int8(digits_run: Path) -> Path:
    assert main(["export", str(digits_run / MODEL_FILE), "--format", "onnx", "--quantize", "int8"]) == 0
    return digits_run / "model.int8.onnx"
