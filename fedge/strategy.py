"""Build the server strategy named in the run config from Flower's implementations.

fedge adds no aggregation of its own: `STRATEGIES` maps each name to Flower's class
and to the run options that class takes, so a new strategy is one table row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flwr.serverapp.strategy import (
    Bulyan,
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    MultiKrum,
    Strategy,
)

from fedge.compression import DecompressUpdates
from fedge.config import RunConfig
from fedge.privacy import UNIFORM_WEIGHT, sampled_clients
from fedge.validation import RejectHook, ValidatedStrategy

Params = Callable[[RunConfig], dict[str, Any]]


def _eta(key: str) -> Params:
    """--server-lr under Flower's name for it; 0 keeps Flower's default."""
    return lambda c: {key: c.server_lr} if c.server_lr else {}


def _adaptive(with_betas: bool) -> Params:
    def params(c: RunConfig) -> dict[str, Any]:
        betas = {"beta_1": c.beta_1, "beta_2": c.beta_2} if with_betas else {}
        return {**_eta("eta")(c), "tau": c.tau, **betas}

    return params


STRATEGIES: dict[str, tuple[type[Strategy], Params]] = {
    "fedavg": (FedAvg, lambda c: {}),
    "fedprox": (FedProx, lambda c: {"proximal_mu": c.proximal_mu}),
    "fedavgm": (FedAvgM, lambda c: {**_eta("server_learning_rate")(c), "server_momentum": c.server_momentum}),
    "fedadam": (FedAdam, _adaptive(with_betas=True)),
    "fedyogi": (FedYogi, _adaptive(with_betas=True)),
    "fedadagrad": (FedAdagrad, _adaptive(with_betas=False)),
    "fedmedian": (FedMedian, lambda c: {}),
    "fedtrimmedavg": (FedTrimmedAvg, lambda c: {"beta": c.trim_beta}),
    "krum": (Krum, lambda c: {"num_malicious_nodes": c.malicious_clients}),
    "multikrum": (MultiKrum, lambda c: {"num_malicious_nodes": c.malicious_clients,
                                        "num_nodes_to_select": c.krum_select}),
    "bulyan": (Bulyan, lambda c: {"num_malicious_nodes": c.malicious_clients}),
}

_DP_WRAPPERS = {"server": DifferentialPrivacyServerSideFixedClipping,
                "client": DifferentialPrivacyClientSideFixedClipping}


def build_strategy(cfg: RunConfig, on_reject: RejectHook | None = None) -> Strategy:
    """The strategy the server runs: Flower's, fed only valid, decompressed replies.

    The layers, outermost first: DecompressUpdates (rebuild weights from a compressed
    update), ValidatedStrategy (reject malformed replies), then `flower_strategy`.
    """
    strategy: Strategy = ValidatedStrategy(flower_strategy(cfg), cfg.max_update_norm, on_reject)
    if cfg.compress != "none":
        strategy = DecompressUpdates(strategy, cfg.compress)
    return strategy


def flower_strategy(cfg: RunConfig) -> Strategy:
    """Flower's strategy named in the run config, wrapped in Flower's central-DP wrapper if asked.

    Sampling takes `fraction` of the connected clients, at least one; the run-wide
    minimum of connected clients is enforced by fedge before each round (bounded by
    --wait-timeout) so that Flower's own unbounded wait never triggers.  Under DP every
    client weighs the same: the noise is calibrated to a plain mean of clipped updates.
    """
    sampling = dict(fraction_train=cfg.fraction_train, fraction_evaluate=cfg.fraction_evaluate,
                    min_train_nodes=1, min_evaluate_nodes=1, min_available_nodes=1)
    if cfg.dp != "none":
        sampling["weighted_by_key"] = UNIFORM_WEIGHT
    cls, params = STRATEGIES[cfg.strategy]
    strategy: Strategy = cls(**sampling, **params(cfg))
    if cfg.dp in _DP_WRAPPERS:
        strategy = _DP_WRAPPERS[cfg.dp](strategy, noise_multiplier=cfg.noise_multiplier,
                                        clipping_norm=cfg.clip_norm, num_sampled_clients=sampled_clients(cfg))
    return strategy
