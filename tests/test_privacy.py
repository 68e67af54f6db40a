"""Differential privacy: noise really reaches the model, and ε is accounted correctly."""

import math
from pathlib import Path

import pytest

from fedge.config import RunConfig
from fedge.model import load_model
from fedge.privacy import epsilon, gaussian_epsilon, local_dp_mod, sampled_clients
from fedge.results import MODEL_FILE
from tests.inprocess import run_federation

SMALL = dict(clients=4, num_rounds=2, local_epochs=1)


def _final(cfg: RunConfig, run_dir: Path) -> tuple[float, float]:
    rows = run_federation(cfg, run_dir)
    return rows[-1]["test-loss"], rows[-1]["test-accuracy"]


@pytest.mark.parametrize("mode", ["server", "client", "local"])
def test_noise_is_really_added(mode: str, tmp_path: Path):
    """Two runs of one noisy config end with different models (Flower draws its noise
    unseeded); without noise the same config repeats to 3e-8 (the test below).  The
    models, not the test loss: two noisy test losses once came within 1e-3 of each other
    (in 60 pairs measured after, the closest were 0.006 apart)."""
    noisy = RunConfig(dp=mode, noise_multiplier=0.5, **SMALL)
    run_federation(noisy, tmp_path / "a")
    run_federation(noisy, tmp_path / "b")
    a, b = (load_model(tmp_path / run / MODEL_FILE).state_dict for run in "ab")
    assert max(float((a[name] - b[name]).abs().max()) for name in a) > 0.1  # ~1.0 measured


@pytest.mark.parametrize("mode", ["server", "client"])
def test_without_noise_runs_repeat_exactly(mode: str, tmp_path: Path):
    quiet = RunConfig(dp=mode, noise_multiplier=0.0, **SMALL)
    # float32 sums in a different order differ in the 7th digit; noise would show in the 3rd
    assert _final(quiet, tmp_path / "a") == pytest.approx(_final(quiet, tmp_path / "b"), rel=1e-5)


def test_epsilon_is_recorded_every_round_and_grows(tmp_path: Path):
    rows = run_federation(RunConfig(dp="server", noise_multiplier=1.0, clients=5, num_rounds=3,
                                    fraction_train=0.4, local_epochs=1), tmp_path)
    eps = [r["epsilon"] for r in rows]
    assert eps == sorted(eps) and eps[0] < eps[-1]
    assert eps == pytest.approx([epsilon(RunConfig(dp="server", clients=5, min_clients=5, fraction_train=0.4), r)
                                 for r in (1, 2, 3)])
    assert "epsilon" not in run_federation(RunConfig(**SMALL), tmp_path / "plain")[-1]


def test_epsilon_matches_opacus_reference_value():
    # Opacus docs (compute_dp_sgd_privacy): sample rate 1%, noise multiplier 1.0, 300 steps,
    # orders 2 5 10 20 100, delta 1e-5 -> epsilon 2.39 at optimal order 5.
    assert gaussian_epsilon(1.0, 0.01, 300, 1e-5, orders=(2.0, 5.0, 10.0, 20.0, 100.0)) == pytest.approx(2.39, abs=0.005)
    assert gaussian_epsilon(1.0, 0.01, 300, 1e-5) < 2.39  # finer default orders: a tighter bound


def test_sampling_amplifies_and_local_dp_does_not():
    central = RunConfig(dp="server", min_clients=100, fraction_train=0.1)
    assert sampled_clients(central) == 10
    assert epsilon(central, 50) == pytest.approx(gaussian_epsilon(1.0, 0.1, 50, 1e-5))
    assert epsilon(central.replace(dp="local"), 50) == pytest.approx(gaussian_epsilon(1.0, 1.0, 50, 1e-5))
    assert epsilon(central, 50) < epsilon(central.replace(dp="local"), 50)
    assert epsilon(central.replace(noise_multiplier=0.0), 1) == math.inf


def test_local_dp_mod_noise_std_is_multiplier_times_clip_norm():
    mod = local_dp_mod(RunConfig(dp="local", clip_norm=0.7, noise_multiplier=1.3, dp_delta=1e-5))
    std = mod.sensitivity * math.sqrt(2 * math.log(1.25 / mod.delta)) / mod.epsilon
    assert (mod.clipping_norm, std) == (0.7, pytest.approx(0.7 * 1.3))


@pytest.mark.parametrize("mode", ["server", "client"])
def test_updates_are_clipped(mode: str, tmp_path: Path):
    one_round = dict(clients=4, num_rounds=1, local_epochs=1, noise_multiplier=0.0)
    free = run_federation(RunConfig(**one_round), tmp_path / "free")[-1]["test-accuracy"]
    clipped = run_federation(RunConfig(dp=mode, clip_norm=1e-3, **one_round), tmp_path / "clip")[-1]["test-accuracy"]
    assert clipped < 0.25 < free  # an update of norm 0.001 barely moves the initial model (~0.1)
