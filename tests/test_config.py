import tomllib
from pathlib import Path

import pytest
import tomli_w

from fedge.config import ConfigError, RunConfig

ROOT = Path(__file__).resolve().parent.parent


def test_pyproject_run_config_matches_the_defaults_in_code():
    app_config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    assert app_config == RunConfig().to_flower()


def test_flower_round_trip_keeps_every_value():
    cfg = RunConfig(hidden=(200, 200), classes=("a", "b"), lr=0.3, num_rounds=7, name="x")
    assert RunConfig.from_flower(cfg.to_flower()) == cfg


@pytest.mark.parametrize("changes,message", [
    ({"num_rounds": -1}, "--rounds -1 is not valid: expected a whole number ≥ 1"),
    ({"fraction_train": 0.0}, "--fraction-train 0.0 is not valid: expected a number in (0, 1]"),
    ({"fraction_evaluate": 1.5}, "--fraction-evaluate 1.5 is not valid: expected a number in (0, 1]"),
    ({"dataset": "imagenet"}, "--dataset 'imagenet' is not valid: expected one of iris, wine, breast-cancer, digits, "
     "mnist, shuttle, basicmotions"),
    ({"strategy": "fedfoo"}, "--strategy 'fedfoo' is not valid: expected one of fedavg, fedprox, "
     "fedavgm, fedadam, fedyogi, fedadagrad, fedmedian, fedtrimmedavg, krum, multikrum, bulyan"),
    ({"dp": "laplace"}, "--dp 'laplace' is not valid: expected one of none, server, client, local"),
    ({"dp": "server", "strategy": "krum"}, "--dp server works with --strategy fedavg or fedprox only: "
     "the noise is calibrated to a plain average, which krum does not compute"),
    ({"dp": "local", "noise_multiplier": 0.0}, "--dp local needs --noise-multiplier > 0: Flower's "
     "LocalDpMod cannot add zero noise"),
    ({"clip_norm": 0.0}, "--clip-norm 0.0 is not valid: expected a number > 0"),
    ({"trim_beta": 0.5}, "--trim-beta 0.5 is not valid: expected a number in [0, 0.5)"),
    ({"partition": "random"}, "--partition 'random' is not valid: expected one of iid, dirichlet, shards"),
    ({"hidden": (64, 0)}, "--hidden '64,0' is not valid: expected comma-separated sizes ≥ 1, e.g. 64,64"),
    ({"alpha": 0.0}, "--alpha 0.0 is not valid: expected a number > 0"),
])
def test_bad_options_are_refused_with_the_option_name(changes, message):
    with pytest.raises(ConfigError) as err:
        RunConfig(**changes).validate()
    assert str(err.value) == message


def test_experiment_file_keys_are_the_cli_option_names(tmp_path: Path):
    path = tmp_path / "exp.toml"
    path.write_text('dataset = "iris"\nrounds = 4\nhidden = "8,8"\npartition = "dirichlet"\n')
    cfg = RunConfig.from_toml(path)
    assert (cfg.dataset, cfg.num_rounds, cfg.hidden, cfg.partition) == ("iris", 4, (8, 8), "dirichlet")


def test_a_run_folders_run_config_toml_reads_back_as_the_same_options(tmp_path: Path):
    cfg = RunConfig(dataset="iris", num_rounds=7, hidden=(8, 4), strategy="fedprox", name="again")
    path = tmp_path / "run-config.toml"
    path.write_text(tomli_w.dumps(cfg.to_flower()))
    assert "num-rounds = 7" in path.read_text().splitlines()
    assert RunConfig.from_toml(path) == cfg


def test_experiment_file_errors_name_the_file_and_key(tmp_path: Path):
    path = tmp_path / "exp.toml"
    path.write_text("roundz = 3\n")
    with pytest.raises(ConfigError, match=r"exp.toml: unknown key\(s\) roundz; known keys: "):
        RunConfig.from_toml(path)
    path.write_text("rounds = 'many'\n")
    with pytest.raises(ConfigError) as err:
        RunConfig.from_toml(path)
    assert str(err.value) == f"{path}: --rounds 'many' is not valid: expected int"
    path.write_text("rounds = \n")
    with pytest.raises(ConfigError, match="exp.toml: not valid TOML"):
        RunConfig.from_toml(path)
    path.write_text("rounds = 3\nnum-rounds = 4\n")
    with pytest.raises(ConfigError) as err:
        RunConfig.from_toml(path)
    assert str(err.value) == f"{path}: rounds and num-rounds name the same option; keep one"


def test_every_shipped_experiment_file_is_valid():
    files = sorted((ROOT / "simulations").glob("*.toml"))
    assert files
    for path in files:
        RunConfig.from_toml(path).validate()
