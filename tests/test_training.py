import numpy as np

from fedge.data import FeatureStats, Scaler, encode_labels, sorted_classes
from fedge.model import ModelSpec, build
from fedge.training import TrainSettings, evaluate, fit


def _scaled(digits):
    train, test = digits
    scaler = Scaler.from_stats(FeatureStats.of(train.features))
    classes = sorted_classes(set(train.labels))
    return (scaler.transform(train.features), encode_labels(train.labels, classes, "train"),
            scaler.transform(test.features), encode_labels(test.labels, classes, "test"))


def test_local_training_lowers_the_loss_and_learns(digits):
    x, y, xt, yt = _scaled(digits)
    model = build(ModelSpec(64, (64, 64), 10), seed=0)
    loss_before, acc_before = evaluate(model, xt, yt)
    fit(model, x, y, TrainSettings(epochs=3, batch_size=32, lr=0.05))
    loss_after, acc_after = evaluate(model, xt, yt)
    assert loss_after < loss_before / 5
    assert acc_before < 0.3 and acc_after > 0.93


def test_adam_and_full_batch_fedsgd_also_learn(digits):
    x, y, xt, yt = _scaled(digits)
    for settings in (TrainSettings(epochs=2, batch_size=32, lr=0.01, optimizer="adam"),
                     TrainSettings(epochs=30, batch_size=0, lr=0.5, momentum=0.0)):
        model = build(ModelSpec(64, (64,), 10), seed=0)
        fit(model, x, y, settings)
        assert evaluate(model, xt, yt)[1] > 0.85, settings


def test_training_is_deterministic_for_a_seed(digits):
    x, y, _, _ = _scaled(digits)
    runs = []
    for _ in range(2):
        model = build(ModelSpec(64, (16,), 10), seed=0)
        runs.append(fit(model, x[:200], y[:200], TrainSettings(seed=7)))
    assert runs[0] == runs[1]


def test_proximal_term_keeps_weights_closer_to_the_global_model(digits):
    x, y, _, _ = _scaled(digits)
    distances = []
    for mu in (0.0, 1.0):
        model = build(ModelSpec(64, (16,), 10), seed=0)
        start = [p.detach().clone() for p in model.parameters()]
        fit(model, x[:300], y[:300], TrainSettings(epochs=3, proximal_mu=mu))
        distances.append(sum(float((p.detach() - s).pow(2).sum()) for p, s in zip(model.parameters(), start)))
    assert distances[1] < distances[0] * 0.8
    assert np.isfinite(distances).all()
