"""Differential privacy: the client-side mods a run asks for, and what the run has spent.

Flower attaches client mods when the ClientApp is built (at import), before any run
config exists; `RunConfigDpMod` is always attached and delegates to Flower's
`fixedclipping_mod` or `LocalDpMod` only when the run's `--dp` asks for them.

Accounting uses Flower's RDP accountant (a wrapper of Google's dp-accounting) for the
subsampled Gaussian mechanism at client level: with central DP (server/client) a
round releases the mean of `sampled_clients` clipped updates plus Gaussian noise of
std noise-multiplier × clip-norm / sampled, so one client's influence is one Gaussian
release amplified by sampling at rate sampled / population.  Flower samples a fixed
number of clients without replacement; fedge accounts it as Poisson sampling at the
same rate, the usual approximation of DP-FedAvg (McMahan et al. 2018).  With local DP
each client's own upload is the release, visible to the server whenever it is
sampled, so no amplification is claimed and every round counts.
"""

from __future__ import annotations

import logging
import math

from flwr.app import Context, Message, MessageType
from flwr.clientapp.mod import LocalDpMod, fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable

from fedge.config import RunConfig

UNIFORM_WEIGHT = "uniform-weight"  # train-reply metric every client sets to 1 under DP


def sampled_clients(cfg: RunConfig) -> int:
    """Clients Flower samples per round (its rule: int(available × fraction), at least 1)."""
    return max(1, int(cfg.min_clients * cfg.fraction_train))


def epsilon(cfg: RunConfig, rounds: int, orders: tuple[float, ...] | None = None) -> float:
    """ε at --dp-delta after `rounds` rounds of this run's DP; inf when no noise is added."""
    if cfg.dp == "local":
        return gaussian_epsilon(cfg.noise_multiplier, 1.0, rounds, cfg.dp_delta, orders)
    population = cfg.min_clients
    return gaussian_epsilon(cfg.noise_multiplier, sampled_clients(cfg) / population, rounds, cfg.dp_delta,
                            orders)


def gaussian_epsilon(noise_multiplier: float, sample_rate: float, releases: int, delta: float,
                     orders: tuple[float, ...] | None = None) -> float:
    """ε of `releases` Poisson-subsampled Gaussian releases (sample_rate 1: no amplification)."""
    if noise_multiplier == 0:
        return math.inf
    from flwr.supercore.privacy_accounting import (GaussianPrivacyEvent, NeighboringRelation, PrivacyConfig,
                                                   SamplingMethod)
    from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

    population = 1_000_000  # only the ratio sample / population matters
    sample = max(1, round(sample_rate * population))
    method = SamplingMethod.NO_AMPLIFICATION if sample == population else SamplingMethod.POISSON
    accountant = RdpAccountant(PrivacyConfig(delta, population, NeighboringRelation.ADD_OR_REMOVE_ONE, method),
                               orders=orders)
    absl = logging.getLogger("absl")  # dp-accounting warns for every low RDP order it cannot use
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        accountant.compose(GaussianPrivacyEvent(noise_multiplier, sample, population), releases)
        return accountant.get_epsilon(delta)
    finally:
        absl.setLevel(level)


class RunConfigDpMod:
    """Client mod: clip (and for local DP, add noise to) train replies when the run asks."""

    def __call__(self, msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        cfg = RunConfig.from_flower(context.run_config)
        if msg.metadata.message_type != MessageType.TRAIN or cfg.dp not in ("client", "local"):
            return call_next(msg, context)
        if cfg.dp == "client":  # the clipping norm comes with the message from Flower's DP wrapper
            return fixedclipping_mod(msg, context, call_next)
        return local_dp_mod(cfg)(msg, context, call_next)


def local_dp_mod(cfg: RunConfig) -> LocalDpMod:
    """Flower's LocalDpMod set so its noise std is noise-multiplier × clip-norm.

    LocalDpMod takes (ε, δ) of the classic Gaussian mechanism, std = sensitivity ×
    sqrt(2 ln(1.25/δ)) / ε; fedge solves that for ε so one option means one thing.
    """
    per_release = math.sqrt(2 * math.log(1.25 / cfg.dp_delta)) / cfg.noise_multiplier
    return LocalDpMod(clipping_norm=cfg.clip_norm, sensitivity=cfg.clip_norm, epsilon=per_release,
                      delta=cfg.dp_delta)
