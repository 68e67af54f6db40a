"""Every strategy by name: Flower's class with fedge's options, trained in process on IID digits."""

from pathlib import Path

import numpy as np
import pytest
from flwr.serverapp.strategy import (Bulyan, DifferentialPrivacyClientSideFixedClipping,
                                     DifferentialPrivacyServerSideFixedClipping, FedAdam, FedAvgM, FedProx,
                                     FedTrimmedAvg, MultiKrum)

from fedge.config import STRATEGIES as STRATEGY_NAMES
from fedge.config import RunConfig
from fedge.data import FeatureStats, Scaler, encode_labels, load_builtin
from fedge.metrics import held_out_metrics
from fedge.model import ModelSpec, build
from fedge.compression import DecompressUpdates
from fedge.strategy import STRATEGIES, build_strategy, flower_strategy
from fedge.validation import ValidatedStrategy
from tests.inprocess import run_federation


def test_every_configurable_name_has_a_table_row():
    assert tuple(STRATEGIES) == STRATEGY_NAMES


def test_options_reach_flower_under_flowers_names():
    assert flower_strategy(RunConfig(strategy="fedprox", proximal_mu=0.3)).proximal_mu == 0.3
    avgm = flower_strategy(RunConfig(strategy="fedavgm", server_lr=0.5, server_momentum=0.7))
    assert isinstance(avgm, FedAvgM) and (avgm.server_learning_rate, avgm.server_momentum) == (0.5, 0.7)
    adam = flower_strategy(RunConfig(strategy="fedadam", server_lr=0.02, beta_1=0.8, beta_2=0.9, tau=1e-4))
    assert isinstance(adam, FedAdam) and (adam.eta, adam.beta_1, adam.beta_2, adam.tau) == (0.02, 0.8, 0.9, 1e-4)
    assert flower_strategy(RunConfig(strategy="fedyogi")).eta == 1e-2  # --server-lr 0: Flower's default
    assert flower_strategy(RunConfig(strategy="fedtrimmedavg", trim_beta=0.1)).beta == 0.1
    krum = flower_strategy(RunConfig(strategy="multikrum", malicious_clients=1, krum_select=3))
    assert isinstance(krum, MultiKrum) and (krum.num_malicious_nodes, krum.num_nodes_to_select) == (1, 3)
    assert isinstance(flower_strategy(RunConfig(strategy="bulyan")), Bulyan)


def test_replies_are_decompressed_then_validated_then_aggregated():
    stack = build_strategy(RunConfig(strategy="fedadam", compress="int8", max_update_norm=3.0))
    assert isinstance(stack, DecompressUpdates) and stack.method == "int8"
    assert isinstance(stack.inner, ValidatedStrategy) and stack.inner.max_update_norm == 3.0
    assert isinstance(stack.inner.inner, FedAdam)
    assert isinstance(build_strategy(RunConfig()), ValidatedStrategy)  # no compression: no decompressing layer


def test_sampling_takes_at_least_one_client():
    strategy = flower_strategy(RunConfig(strategy="fedtrimmedavg", fraction_train=0.1))
    assert isinstance(strategy, FedTrimmedAvg)
    assert (strategy.fraction_train, strategy.min_train_nodes, strategy.min_available_nodes) == (0.1, 1, 1)


def test_central_dp_wraps_the_strategy_with_flowers_wrapper():
    server = flower_strategy(RunConfig(strategy="fedprox", dp="server", clip_norm=0.5, noise_multiplier=0.8,
                                      min_clients=20, fraction_train=0.25))
    assert isinstance(server, DifferentialPrivacyServerSideFixedClipping)
    assert isinstance(server.strategy, FedProx) and server.strategy.weighted_by_key == "uniform-weight"
    assert (server.clipping_norm, server.noise_multiplier, server.num_sampled_clients) == (0.5, 0.8, 5)
    client = flower_strategy(RunConfig(dp="client"))
    assert isinstance(client, DifferentialPrivacyClientSideFixedClipping)
    assert not isinstance(flower_strategy(RunConfig(dp="local")), DifferentialPrivacyServerSideFixedClipping)


def _initial_accuracy() -> float:
    """Test accuracy of the model every run starts from (seed 0), before any round."""
    train, test = load_builtin("digits")
    scaler = Scaler.from_stats(FeatureStats.of(train.features))
    classes = tuple(str(i) for i in range(10))
    net = build(ModelSpec(64, (64, 64), 10, "relu", 0.0), 0)
    return held_out_metrics(net, scaler.transform(test.features), encode_labels(test.labels, classes, "test"))[
        "test-accuracy"]


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_each_strategy_learns_iid_digits(name: str, tmp_path: Path):
    rows = run_federation(RunConfig(strategy=name, clients=5, num_rounds=3, local_epochs=1), tmp_path)
    accuracies = [r["test-accuracy"] for r in rows]
    assert _initial_accuracy() < 0.2
    assert accuracies[-1] >= 0.7, accuracies  # fedyogi's small default eta is the slowest: 0.77
    assert all(r["train-clients"] == 5 and r["train-failures"] == 0 for r in rows)
    assert np.isfinite(rows[-1]["test-loss"])
