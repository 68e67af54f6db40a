"""Local training and evaluation: plain torch, no Flower, so tests call them directly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedge.data import FeatureStats, Scaler, Table, encode_labels, sorted_classes
from fedge.model import ModelSpec, TrainedModel, build


@dataclass(frozen=True)
class TrainSettings:
    """How a client trains in one round."""

    epochs: int = 1
    batch_size: int = 32  # 0: the whole local data set in one batch (FedSGD)
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    seed: int = 0
    proximal_mu: float = 0.0  # FedProx: weight of ||w - w_global||^2 / 2


def fit(model: nn.Module, x: np.ndarray, y: np.ndarray, settings: TrainSettings) -> float:
    """Train `model` in place on (x, y); return the mean training loss over all steps."""
    features, targets = torch.from_numpy(x), torch.from_numpy(y)
    batch_size = settings.batch_size or len(targets)
    global_params = [p.detach().clone() for p in model.parameters()] if settings.proximal_mu else []
    optimizer = _optimizer(model, settings)
    generator = torch.Generator().manual_seed(settings.seed)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    total_loss, steps = 0.0, 0
    for _ in range(settings.epochs):
        order = torch.randperm(len(targets), generator=generator)
        for start in range(0, len(targets), batch_size):
            batch = order[start:start + batch_size]
            loss = loss_fn(model(features[batch]), targets[batch])
            total_loss += loss.item()
            if global_params:
                loss = loss + settings.proximal_mu / 2 * sum(
                    (p - g).pow(2).sum() for p, g in zip(model.parameters(), global_params))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
    return total_loss / max(steps, 1)


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Return (mean cross-entropy loss, accuracy) of `model` on (x, y)."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
        targets = torch.from_numpy(y)
        loss = nn.functional.cross_entropy(logits, targets).item()
        accuracy = (logits.argmax(dim=1) == targets).float().mean().item()
    return loss, accuracy


def _optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=settings.lr)
    return torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum)


def train_central(table: Table, hidden: tuple[int, ...], settings: TrainSettings) -> TrainedModel:
    """Train on one table as if it held all the federation's data: a centralised baseline.

    Gives tests and benchmarks a real trained model in a second, without Flower.
    """
    classes = sorted_classes(set(table.labels.tolist()))  # plain str: save_model pickles them
    scaler = Scaler.from_stats(FeatureStats.of(table.features))
    spec = ModelSpec(n_features=table.features.shape[1], hidden=hidden, n_classes=len(classes))
    network = build(spec, seed=settings.seed)
    fit(network, scaler.transform(table.features), encode_labels(table.labels, classes, "training data"),
        settings)
    return TrainedModel(spec, network.state_dict(), scaler, classes, table.feature_names)
