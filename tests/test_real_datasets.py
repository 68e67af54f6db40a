"""Real data sets shipped inside installed packages: shapes, classes, and a split that never moves."""

import hashlib

import numpy as np
import pytest

from fedge.data import load_builtin

# name: (train shape, test shape, classes, test rows per class)
EXPECTED = {
    "mnist": ((4000, 784), (1000, 784), [str(d) for d in range(10)], [100] * 10),
    "shuttle": ((39277, 9), (9820, 9), ["anomaly", "normal"], [702, 9118]),
    "basicmotions": ((64, 600), (16, 600), ["badminton", "running", "standing", "walking"], [4] * 4),
}


@pytest.mark.parametrize("name", EXPECTED)
def test_shapes_and_classes(name: str):
    train_shape, test_shape, classes, per_class = EXPECTED[name]
    train, test = load_builtin(name)
    assert (train.features.shape, test.features.shape) == (train_shape, test_shape)
    assert sorted(set(train.labels)) == sorted(set(test.labels)) == classes
    assert np.unique(test.labels, return_counts=True)[1].tolist() == per_class
    assert np.isfinite(train.features).all() and train.features.dtype == np.float32
    assert len(train.feature_names) == train_shape[1]


def test_shuttle_is_imbalanced_binary_anomaly_detection():
    train, test = load_builtin("shuttle")
    both = np.concatenate([train.labels, test.labels])
    assert len(both) == 49097 and (both == "anomaly").sum() == 3511  # ~7.2%


def test_mnist_is_real_28x28_pixels():
    train, _ = load_builtin("mnist")
    assert train.features.min() == 0 and train.features.max() == 255
    assert train.feature_names[0] == "pixel_0" and train.feature_names[-1] == "pixel_783"


@pytest.mark.parametrize("name,digest", [("mnist", "591c91e5a5e7c172"), ("shuttle", "446197fdb0529774"),
                                         ("basicmotions", "08b4cc71d4ae3042")])
def test_split_is_fixed(name: str, digest: str):
    _, test = load_builtin(name)
    fingerprint = hashlib.sha256(test.features.tobytes() + "|".join(test.labels).encode()).hexdigest()[:16]
    assert fingerprint == digest
