"""Server-side test metrics equal scikit-learn's definitions."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from fedge.metrics import f1_and_balanced_accuracy


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize("seed", range(5))
def test_f1_and_balanced_accuracy_equal_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.choice([0, 2, 3, 5], size=200)  # classes 1 and 4 absent from the truth
    predicted = np.where(rng.random(200) < 0.6, y, rng.integers(0, 6, size=200))  # and sometimes guessed
    f1, balanced = f1_and_balanced_accuracy(y, predicted, n_classes=6)
    assert f1 == pytest.approx(f1_score(y, predicted, labels=np.unique(y), average="macro", zero_division=0))
    assert balanced == pytest.approx(balanced_accuracy_score(y, predicted))


def test_a_class_never_predicted_scores_zero_f1() -> None:
    y, predicted = np.array([0, 0, 1, 1]), np.array([0, 0, 0, 0])
    f1, balanced = f1_and_balanced_accuracy(y, predicted, n_classes=2)
    assert f1 == pytest.approx((2 * 2 / (2 + 4) + 0) / 2)
    assert balanced == pytest.approx(0.5)
