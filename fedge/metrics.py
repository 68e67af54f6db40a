"""Server-side test metrics: accuracy alone hides a model that never flags the rare class.

On imbalanced sets (shuttle: ~7% anomalies) a model that always answers "normal"
scores ~93% accuracy; macro F1 and balanced accuracy (mean per-class recall) expose it.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score
from torch import nn


def held_out_metrics(model: nn.Module, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """test-loss, test-accuracy, test-f1 (macro over classes present) and test-balanced-accuracy."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    loss = nn.functional.cross_entropy(logits, torch.from_numpy(y)).item()
    predicted = logits.argmax(dim=1).numpy()
    return {"test-loss": loss,
            "test-accuracy": float(np.mean(predicted == y)),
            "test-f1": float(f1_score(y, predicted, labels=np.unique(y), average="macro", zero_division=0)),
            "test-balanced-accuracy": float(balanced_accuracy_score(y, predicted))}
