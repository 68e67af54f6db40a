"""Build the server strategy named in the run config from Flower's implementations."""

from __future__ import annotations

from flwr.serverapp.strategy import FedAvg, Strategy

from fedge.compression import DecompressUpdates
from fedge.config import RunConfig


def build_strategy(cfg: RunConfig) -> Strategy:
    """Flower's strategy with fedge's sampling settings.

    Sampling takes `fraction` of the connected clients, at least one; the run-wide
    minimum of connected clients is enforced by fedge before each round (bounded by
    --wait-timeout) so that Flower's own unbounded wait never triggers.
    """
    sampling = dict(fraction_train=cfg.fraction_train, fraction_evaluate=cfg.fraction_evaluate,
                    min_train_nodes=1, min_evaluate_nodes=1, min_available_nodes=1)
    strategy: Strategy = FedAvg(**sampling)
    if cfg.compress != "none":
        strategy = DecompressUpdates(strategy, cfg.compress)
    return strategy
