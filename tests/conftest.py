"""Shared fixtures: one model trained in-process on digits (no Flower) and its ONNX exports."""

from pathlib import Path

import pytest

from fedge.cli import main
from fedge.data import load_builtin
from fedge.model import TrainedModel, save_model
from fedge.results import MODEL_FILE
from fedge.training import TrainSettings, train_central


@pytest.fixture(scope="session")
def digits_model() -> TrainedModel:
    train, _ = load_builtin("digits")
    return train_central(train, (64, 64), TrainSettings(epochs=10))


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
