"""Build the server strategy named in the run config from Flower's implementations."""

from __future__ import annotations

from flwr.serverapp.strategy import FedAvg, Strategy

from fedge.compression import DecompressUpdates
from fedge.config import RunConfig
from fedge.validation import RejectHook, ValidatedStrategy


def build_strategy(cfg: RunConfig, on_reject: RejectHook | None = None) -> Strategy:
    """Flower's strategy with fedge's sampling settings, fed only valid, decompressed replies.

    Sampling takes `fraction` of the connected clients, at least one; the run-wide
    minimum of connected clients is enforced by fedge before each round (bounded by
    --wait-timeout) so that Flower's own unbounded wait never triggers.
    """
    sampling = dict(fraction_train=cfg.fraction_train, fraction_evaluate=cfg.fraction_evaluate,
                    min_train_nodes=1, min_evaluate_nodes=1, min_available_nodes=1)
    strategy: Strategy = ValidatedStrategy(FedAvg(**sampling), cfg.max_update_norm, on_reject)
    if cfg.compress != "none":
        strategy = DecompressUpdates(strategy, cfg.compress)  # rebuild weights first, then validate
    return strategy
