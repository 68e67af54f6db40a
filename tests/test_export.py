"""`fedge export`: the ONNX model predicts what the torch model predicts, from raw features."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import fedge
from fedge.cli import main
from fedge.data import FeatureStats, Scaler, load_builtin
from fedge.export import export_onnx
from fedge.model import ModelSpec, TrainedModel, build
from fedge.predict import EdgeModel


@pytest.fixture(scope="module")
def digits_test() -> tuple[np.ndarray, np.ndarray]:
    _, test = load_builtin("digits")
    return test.features, test.labels


def test_float_probabilities_equal_torch(onnx_float: Path, digits_model: TrainedModel, digits_test) -> None:
    features, _ = digits_test
    onnx_proba = EdgeModel(onnx_float).predict_proba(features)
    assert onnx_proba.dtype == np.float32
    np.testing.assert_allclose(onnx_proba, digits_model.predict_proba(features), rtol=0, atol=1e-5)


def test_float_graph_has_the_scaler_folded_in_and_int8_keeps_it(onnx_float: Path, onnx_int8: Path) -> None:
    assert [n.op_type for n in onnx.load(onnx_float).graph.node] == ["Gemm", "Relu", "Gemm", "Relu", "Gemm", "Softmax"]
    assert [n.op_type for n in onnx.load(onnx_int8).graph.node][:2] == ["Sub", "Div"]


def test_int8_keeps_predictions_and_accuracy(onnx_float: Path, onnx_int8: Path, digits_test) -> None:
    features, labels = digits_test
    float_model, int8_model = EdgeModel(onnx_float), EdgeModel(onnx_int8)
    classes = np.asarray(float_model.classes)
    float_pred = classes[float_model.predict_proba(features).argmax(axis=1)]
    int8_pred = classes[int8_model.predict_proba(features).argmax(axis=1)]
    assert (float_pred == int8_pred).mean() >= 0.99
    assert abs((int8_pred == labels).mean() - (float_pred == labels).mean()) <= 0.005
    assert onnx_int8.stat().st_size < onnx_float.stat().st_size


@pytest.mark.parametrize("variant", ["onnx_float", "onnx_int8"])
def test_metadata_round_trips(variant: str, request: pytest.FixtureRequest, digits_model: TrainedModel) -> None:
    path = request.getfixturevalue(variant)
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert props["fedge.version"] == fedge.__version__
    assert json.loads(props["fedge.feature_names"]) == list(digits_model.feature_names)
    assert json.loads(props["fedge.classes"]) == list(digits_model.classes)
    model = EdgeModel(path)
    assert (model.feature_names, model.classes) == (digits_model.feature_names, digits_model.classes)


@pytest.mark.parametrize("activation", ["tanh", "gelu"])
def test_other_activations_and_dropout(activation: str, tmp_path: Path) -> None:
    """Untrained weights suffice: the check is that the graph computes what torch computes."""
    train, test = load_builtin("iris")
    spec = ModelSpec(n_features=4, hidden=(8, 8), n_classes=3, activation=activation, dropout=0.3)
    model = TrainedModel(spec, build(spec).state_dict(), Scaler.from_stats(FeatureStats.of(train.features)),
                         ("setosa", "versicolor", "virginica"), train.feature_names)
    export_onnx(model, tmp_path / "iris.onnx")
    np.testing.assert_allclose(EdgeModel(tmp_path / "iris.onnx").predict_proba(test.features),
                               model.predict_proba(test.features), rtol=0, atol=1e-5)


def test_out_option(digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "device.onnx"
    assert main(["export", str(digits_run), "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"fedge: wrote {out} (")
    assert EdgeModel(out).classes == tuple(str(d) for d in range(10))


def test_run_without_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"fedge export: error: {tmp_path}: no model.pt there; give the folder of a finished run "
        "(e.g. runs/NAME) or the path of its model.pt\n")


def test_not_a_model_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "model.pt").write_text("not a model")
    assert main(["export", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"fedge export: error: {tmp_path / 'model.pt'}: not a model file written by a fedge run\n")
    assert not list(tmp_path.glob("*.onnx"))
