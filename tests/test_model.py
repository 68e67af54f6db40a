from pathlib import Path

import numpy as np
import torch

from fedge.data import FeatureStats, Scaler
from fedge.model import ModelSpec, TrainedModel, build, load_model, save_model


def test_mlp_layers_have_the_spec_shapes():
    net = build(ModelSpec(n_features=64, hidden=(64, 32), n_classes=10))
    shapes = {name: tuple(p.shape) for name, p in net.state_dict().items()}
    assert shapes == {"0.weight": (64, 64), "0.bias": (64,), "2.weight": (32, 64), "2.bias": (32,),
                      "4.weight": (10, 32), "4.bias": (10,)}
    assert net(torch.zeros(5, 64)).shape == (5, 10)


def test_dropout_and_activation_come_from_the_spec():
    net = build(ModelSpec(4, (8,), 3, activation="tanh", dropout=0.5))
    assert [type(m).__name__ for m in net] == ["Linear", "Tanh", "Dropout", "Linear"]


def test_same_seed_same_initial_weights_on_every_node():
    spec = ModelSpec(10, (16,), 2)
    a, b, c = build(spec, seed=3), build(spec, seed=3), build(spec, seed=4)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.state_dict()["0.weight"], c.state_dict()["0.weight"])


def test_model_file_round_trips_with_identical_predictions(tmp_path: Path, digits):
    train, test = digits
    spec = ModelSpec(64, (32,), 10)
    model = TrainedModel(spec, build(spec, seed=1).state_dict(),
                         Scaler.from_stats(FeatureStats.of(train.features)),
                         tuple(str(i) for i in range(10)), train.feature_names)
    save_model(tmp_path / "model.pt", model)
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.spec == spec and loaded.classes == model.classes
    assert loaded.feature_names == train.feature_names
    np.testing.assert_array_equal(loaded.predict_proba(test.features), model.predict_proba(test.features))
    assert not (tmp_path / "model.pt.tmp").exists()


def test_numpy_string_classes_still_load(tmp_path: Path):
    spec = ModelSpec(2, (3,), 2)
    classes = tuple(np.array(["no", "yes"]))  # numpy str_, as sorting a label array gives
    model = TrainedModel(spec, build(spec).state_dict(), Scaler(np.zeros(2), np.ones(2)), classes, ("a", "b"))
    save_model(tmp_path / "m.pt", model)
    assert load_model(tmp_path / "m.pt").classes == ("no", "yes")
