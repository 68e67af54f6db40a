"""The MLP every node builds from the same spec, and the trained model file.

A trained model is more than weights: a device needs the architecture to rebuild it,
the scaler to standardise raw features, and the class list to name its predictions.
`save_model` and `load_model` keep all four together in one file.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fedge.data import Scaler

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild the network: the same on the server and every client."""

    n_features: int
    hidden: tuple[int, ...]
    n_classes: int
    activation: str = "relu"
    dropout: float = 0.0


def build(spec: ModelSpec, seed: int = 0) -> nn.Sequential:
    """An MLP: [Linear -> activation -> dropout] per hidden size, then a Linear to logits."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = spec.n_features
    for size in spec.hidden:
        layers += [nn.Linear(width, size), ACTIVATIONS[spec.activation]()]
        if spec.dropout > 0:
            layers.append(nn.Dropout(spec.dropout))
        width = size
    layers.append(nn.Linear(width, spec.n_classes))
    return nn.Sequential(*layers)


@dataclass
class TrainedModel:
    """A global model ready for prediction on raw features."""

    spec: ModelSpec
    state_dict: dict[str, torch.Tensor]
    scaler: Scaler
    classes: tuple[str, ...]
    feature_names: tuple[str, ...]

    def network(self) -> nn.Sequential:
        net = build(self.spec)
        net.load_state_dict(self.state_dict)
        return net.eval()

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = self.network()(torch.from_numpy(self.scaler.transform(features)))
            return torch.softmax(logits, dim=1).numpy()

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes)[self.predict_proba(features).argmax(axis=1)]


def save_model(path: Path, model: TrainedModel) -> None:
    """Write atomically (temporary file, then rename) so a crash never leaves half a model."""
    payload = {
        "spec": {**asdict(model.spec), "hidden": list(model.spec.hidden)},
        "state_dict": model.state_dict,
        "scaler_mean": torch.from_numpy(np.asarray(model.scaler.mean, dtype=np.float64)),
        "scaler_std": torch.from_numpy(np.asarray(model.scaler.std, dtype=np.float64)),
        "classes": [str(c) for c in model.classes],  # numpy strings would not load with weights_only
        "feature_names": [str(n) for n in model.feature_names],
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_model(path: str | Path) -> TrainedModel:
    """Load a model written by `save_model` (only tensors and plain values are unpickled)."""
    payload = torch.load(Path(path), weights_only=True)
    spec = payload["spec"]
    return TrainedModel(
        spec=ModelSpec(**{**spec, "hidden": tuple(spec["hidden"])}),
        state_dict=payload["state_dict"],
        scaler=Scaler(payload["scaler_mean"].numpy(), payload["scaler_std"].numpy()),
        classes=tuple(payload["classes"]),
        feature_names=tuple(payload["feature_names"]),
    )
