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
from fedge import predict
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
    assert props["fedge.weights"] == {"onnx_float": "float32", "onnx_int8": "int8"}[variant]
    model = EdgeModel(path)
    assert (model.feature_names, model.classes) == (digits_model.feature_names, digits_model.classes)


@pytest.mark.parametrize(("variant", "packed"), [("onnx_float", False), ("onnx_int8", True)])
def test_weights_are_prepacked_only_where_it_pays(variant: str, packed: bool, request: pytest.FixtureRequest) -> None:
    """int8 kernels need pre-packed weights (2NN: 10.7 against 19.6 µs a sample); float ones are faster without."""
    options = EdgeModel(request.getfixturevalue(variant)).session.get_session_options()
    assert options.get_session_config_entry("session.disable_prepacking") == ("0" if packed else "1")


def test_a_file_without_the_weights_key_gets_onnx_runtimes_defaults(onnx_float: Path, tmp_path: Path) -> None:
    """Files exported before fedge recorded its weights' type load as before, pre-packed."""
    proto = onnx.load(onnx_float)
    kept = [p for p in proto.metadata_props if p.key != "fedge.weights"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, tmp_path / "old.onnx")
    _, test = load_builtin("digits")
    old, new = EdgeModel(tmp_path / "old.onnx"), EdgeModel(onnx_float)
    assert old.session.get_session_options().get_session_config_entry("session.disable_prepacking") == "0"
    np.testing.assert_allclose(old.predict_proba(test.features), new.predict_proba(test.features), atol=1e-6)


class _WithoutBinding:
    """An ONNX Runtime session whose binding is not where EdgeModel looks (a future rename)."""

    def __init__(self, session: object) -> None:
        self._session = session

    def __getattr__(self, name: str) -> object:
        if name == "_sess":
            raise AttributeError(name)
        return getattr(self._session, name)


def test_predictions_the_same_through_the_binding_and_the_public_run(
        onnx_float: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, test = load_builtin("digits")
    direct = EdgeModel(onnx_float).predict_proba(test.features)
    np.testing.assert_array_equal(direct, EdgeModel(onnx_float).session.run(None, {"features": test.features})[0])
    session = predict._session
    monkeypatch.setattr(predict, "_session", lambda *args, **kwargs: _WithoutBinding(session(*args, **kwargs)))
    np.testing.assert_array_equal(direct, EdgeModel(onnx_float).predict_proba(test.features))


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
