"""Every user-facing option of a federated run, defined once.

One `RunConfig` travels from the CLI (or an experiment TOML file) to the ServerApp
and every ClientApp as Flower's run config (`context.run_config`).  Flower wants flat
TOML scalars with kebab-case keys, so tuples travel as comma-separated strings.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STRATEGIES = ("fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "fedadagrad", "fedmedian",
              "fedtrimmedavg", "krum", "multikrum", "bulyan")
DP_MODES = ("none", "server", "client", "local")
DP_STRATEGIES = ("fedavg", "fedprox")  # strategies whose aggregate is a plain average
PARTITIONS = ("iid", "dirichlet", "shards")
OPTIMIZERS = ("sgd", "adam")
DEFAULT_POLL_INTERVAL = 1.0  # `fedge client --poll-interval`: seconds between a device's checks for messages (Flower: 3)
ACTIVATIONS = ("relu", "tanh", "gelu")
COMPRESSION = ("none", "fp16", "int8")


class ConfigError(ValueError):
    """A user-facing option has a value fedge cannot run with."""


def _opt(default: Any, help_text: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help_text, **extra})


@dataclass(frozen=True)
class RunConfig:
    """Options of one federated run; defaults give a good digits run in well under a minute."""

    # What to learn from.
    dataset: str = _opt("digits", "built-in data set for simulation and server-side test "
                        "(iris, wine, breast-cancer, digits, mnist, shuttle, basicmotions; see docs/datasets.md); "
                        "empty when clients bring files")
    label_column: str = _opt("label", "name of the label column in CSV files")
    classes: tuple[str, ...] = _opt((), "class list, comma separated; empty: the union "
                                    "of the labels the clients report")
    test_data: str = _opt("", "server-side held-out test file (CSV or NPZ)")
    # Federation.
    num_rounds: int = _opt(10, "number of federated rounds", cli="rounds")
    clients: int = _opt(10, "number of virtual clients (simulation only)")
    min_clients: int = _opt(2, "clients that must be connected before a round starts")
    fraction_train: float = _opt(1.0, "fraction of connected clients sampled for training")
    fraction_evaluate: float = _opt(1.0, "fraction of connected clients sampled for evaluation")
    strategy: str = _opt("fedavg", "aggregation strategy: " + ", ".join(STRATEGIES))
    # Strategy parameters (each used only by the strategies named in its help).
    proximal_mu: float = _opt(0.01, "fedprox: weight of the proximal term clients add to their loss")
    server_lr: float = _opt(0.0, "fedavgm: server learning rate; fedadam/fedyogi/fedadagrad: eta. "
                            "0: Flower's default (fedavgm 1.0, fedadam/fedadagrad 0.1, fedyogi 0.01)")
    server_momentum: float = _opt(0.9, "fedavgm: server momentum")
    beta_1: float = _opt(0.9, "fedadam/fedyogi: first-moment decay")
    beta_2: float = _opt(0.99, "fedadam/fedyogi: second-moment decay")
    tau: float = _opt(1e-3, "fedadam/fedyogi/fedadagrad: adaptivity (added to the root of the second moment)")
    trim_beta: float = _opt(0.2, "fedtrimmedavg: fraction cut from each end before averaging")
    malicious_clients: int = _opt(0, "krum/multikrum/bulyan: number of malicious clients to tolerate")
    krum_select: int = _opt(2, "multikrum: number of clients whose updates are averaged")
    # Privacy and secure aggregation.
    dp: str = _opt("none", "differential privacy: none; server (server clips and adds noise); client "
                   "(clients clip, server adds noise); local (each client clips and adds noise)")
    clip_norm: float = _opt(1.0, "DP: L2 bound on each client's model update")
    noise_multiplier: float = _opt(1.0, "DP: Gaussian noise std as a multiple of clip-norm "
                                   "(server/client: for the sum of updates; local: per client)")
    dp_delta: float = _opt(1e-5, "DP: delta at which epsilon is reported")
    secagg: bool = _opt(False, "secure aggregation (Flower's SecAgg+): the server learns only the sum")
    round_timeout: float = _opt(600.0, "seconds a round waits for replies; late clients count as failed")
    wait_timeout: float = _opt(120.0, "seconds to wait for min-clients to connect before giving up")
    compress: str = _opt("none", "how clients send updates: none, fp16 or int8 (quantised difference "
                         "from the global model)")
    max_update_norm: float = _opt(0.0, "reject a client's update whose L2 distance from the global "
                                  "model exceeds this; 0: no limit")
    # Partitioning (simulation only).
    partition: str = _opt("iid", "how the data set is split across clients: " + ", ".join(PARTITIONS))
    alpha: float = _opt(0.5, "Dirichlet concentration; smaller is more skewed")
    shards_per_client: int = _opt(2, "labels-sorted shards each client gets (partition=shards)")
    # Model.
    hidden: tuple[int, ...] = _opt((64, 64), "hidden layer sizes, comma separated")
    activation: str = _opt("relu", "hidden activation: " + ", ".join(ACTIVATIONS))
    dropout: float = _opt(0.0, "dropout probability after each hidden layer")
    # Local training.
    local_epochs: int = _opt(3, "local epochs per round")
    batch_size: int = _opt(16, "local mini-batch size; 0 means the whole local data set")
    lr: float = _opt(0.05, "local learning rate")
    optimizer: str = _opt("sgd", "local optimizer: " + ", ".join(OPTIMIZERS))
    momentum: float = _opt(0.9, "SGD momentum")
    seed: int = _opt(0, "seed for model initialisation, partitions and batching")
    # Output.
    out: str = _opt("runs", "folder under which the run folder is created")
    name: str = _opt("", "run folder name; empty: <dataset>-<partition>-<time> (simulation), "
                   "server-<time> (server)")

    def validate(self) -> RunConfig:
        """Raise ConfigError naming the first bad option; return self when all are sound."""
        _require(self.num_rounds >= 1, "rounds", self.num_rounds, "a whole number ≥ 1")
        _require(self.clients >= 1, "clients", self.clients, "a whole number ≥ 1")
        _require(self.min_clients >= 1, "min-clients", self.min_clients, "a whole number ≥ 1")
        for key, value in (("fraction-train", self.fraction_train),
                           ("fraction-evaluate", self.fraction_evaluate)):
            _require(0.0 < value <= 1.0, key, value, "a number in (0, 1]")
        _require(self.strategy in STRATEGIES, "strategy", self.strategy, "one of " + ", ".join(STRATEGIES))
        for key, value in (("proximal-mu", self.proximal_mu), ("server-lr", self.server_lr),
                           ("tau", self.tau), ("malicious-clients", self.malicious_clients)):
            _require(value >= 0 and math.isfinite(value), key, value, "a number ≥ 0")
        for key, value in (("server-momentum", self.server_momentum), ("beta-1", self.beta_1),
                           ("beta-2", self.beta_2)):
            _require(0.0 <= value < 1.0, key, value, "a number in [0, 1)")
        _require(0.0 <= self.trim_beta < 0.5, "trim-beta", self.trim_beta, "a number in [0, 0.5)")
        _require(self.krum_select >= 1, "krum-select", self.krum_select, "a whole number ≥ 1")
        _require(self.dp in DP_MODES, "dp", self.dp, "one of " + ", ".join(DP_MODES))
        _require(self.clip_norm > 0 and math.isfinite(self.clip_norm), "clip-norm", self.clip_norm,
                 "a number > 0")
        _require(self.noise_multiplier >= 0 and math.isfinite(self.noise_multiplier), "noise-multiplier",
                 self.noise_multiplier, "a number ≥ 0")
        _require(0.0 < self.dp_delta < 1.0, "dp-delta", self.dp_delta, "a number in (0, 1)")
        if self.dp != "none" and self.strategy not in DP_STRATEGIES:
            raise ConfigError(f"--dp {self.dp} works with --strategy {' or '.join(DP_STRATEGIES)} only: "
                              f"the noise is calibrated to a plain average, which {self.strategy} "
                              "does not compute")
        if self.secagg and (self.strategy != "fedavg" or self.dp != "none"):
            raise ConfigError("--secagg true works with --strategy fedavg and --dp none only: Flower's SecAgg+ "
                              "workflow drives its own FedAvg, and the server never sees single updates to clip")
        if self.secagg and self.min_clients < 2:
            raise ConfigError("--secagg true needs at least 2 clients per round (--min-clients, or --clients "
                              "in a simulation): a sum over one client is that client's update")
        if self.compress != "none" and (self.secagg or self.dp in ("client", "local")):
            raise ConfigError(f"--compress {self.compress} cannot be combined with "
                              f"{'--secagg true' if self.secagg else '--dp ' + self.dp}: clipping, noise and "
                              "masking act on the update clients send; use --compress none")
        if self.dp == "local" and self.noise_multiplier == 0:
            raise ConfigError("--dp local needs --noise-multiplier > 0: Flower's LocalDpMod "
                              "cannot add zero noise")
        _require(self.compress in COMPRESSION, "compress", self.compress, "one of " + ", ".join(COMPRESSION))
        _require(self.partition in PARTITIONS, "partition", self.partition, "one of " + ", ".join(PARTITIONS))
        _require(self.alpha > 0 and math.isfinite(self.alpha), "alpha", self.alpha, "a number > 0")
        _require(self.shards_per_client >= 1, "shards-per-client", self.shards_per_client, "a whole number ≥ 1")
        _require(len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "hidden",
                 ",".join(map(str, self.hidden)), "comma-separated sizes ≥ 1, e.g. 64,64")
        _require(self.activation in ACTIVATIONS, "activation", self.activation, "one of " + ", ".join(ACTIVATIONS))
        _require(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "a number in [0, 1)")
        _require(self.local_epochs >= 1, "local-epochs", self.local_epochs, "a whole number ≥ 1")
        _require(self.batch_size >= 0, "batch-size", self.batch_size, "a whole number ≥ 0")
        _require(self.lr > 0 and math.isfinite(self.lr), "lr", self.lr, "a number > 0")
        _require(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, "one of " + ", ".join(OPTIMIZERS))
        _require(0.0 <= self.momentum < 1.0, "momentum", self.momentum, "a number in [0, 1)")
        _require(self.round_timeout > 0, "round-timeout", self.round_timeout, "a number of seconds > 0")
        _require(self.max_update_norm >= 0 and math.isfinite(self.max_update_norm), "max-update-norm",
                 self.max_update_norm, "a number ≥ 0 (0: no limit)")
        _require(self.wait_timeout > 0, "wait-timeout", self.wait_timeout, "a number of seconds > 0")
        _require(len(set(self.classes)) == len(self.classes), "classes", ",".join(self.classes),
                 "distinct class names")
        if self.dataset:
            from fedge.data import BUILTIN_DATASETS  # local: config must not pull in numpy users

            _require(self.dataset in BUILTIN_DATASETS, "dataset", self.dataset,
                     "one of " + ", ".join(BUILTIN_DATASETS))
        return self

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    # --- Flower's run config: flat, kebab-case, TOML scalars -------------------------
    def to_flower(self) -> dict[str, bool | int | float | str]:
        return {_flower_key(f.name): _to_scalar(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_flower(cls, run_config: dict[str, Any]) -> RunConfig:
        """Build from `context.run_config`; unknown keys are ignored, missing ones default.

        A client reads it several times per message (its mods and handlers): parsed once
        per distinct run config, since a RunConfig is frozen.
        """
        return _from_flower_items(cls, tuple(sorted(run_config.items())))

    @classmethod
    def from_toml(cls, path: Path) -> RunConfig:
        """Read an experiment file into a RunConfig.

        Its keys are the CLI option names; Flower's run-config names (`num-rounds`) are
        accepted too, so a run folder's run-config.toml runs the same experiment again.
        """
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"experiment file {path} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from None
        by_cli = {option_name(f): f for f in dataclasses.fields(cls)}
        by_key = {**{_flower_key(f.name): f for f in dataclasses.fields(cls)}, **by_cli}
        unknown = sorted(set(data) - set(by_key))
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; "
                              f"known keys: {', '.join(sorted(by_cli))}")
        twice = [f"{option_name(f)} and {_flower_key(f.name)}" for f in dataclasses.fields(cls)
                 if option_name(f) != _flower_key(f.name) and {option_name(f), _flower_key(f.name)} <= set(data)]
        if twice:
            raise ConfigError(f"{path}: {twice[0]} name the same option; keep one")
        try:
            return cls(**{by_key[k].name: parse_option(by_key[k], v) for k, v in data.items()})
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None


@functools.lru_cache(maxsize=16)
def _from_flower_items(cls: type[RunConfig], items: tuple[tuple[str, Any], ...]) -> RunConfig:
    run_config = dict(items)
    values = {}
    for f in dataclasses.fields(cls):
        key = _flower_key(f.name)
        if key in run_config:
            values[f.name] = parse_option(f, run_config[key])
    return cls(**values)


def option_name(f: dataclasses.Field) -> str:
    """The CLI / experiment-file name of a RunConfig field (kebab-case)."""
    return f.metadata.get("cli", _flower_key(f.name))


def _flower_key(name: str) -> str:
    return name.replace("_", "-")


def _require(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"--{key} {value!r} is not valid: expected {expected}")


def _to_scalar(value: Any) -> bool | int | float | str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return value


_KIND_NAMES = {tuple: "comma-separated values", bool: "true or false"}


def parse_option(f: dataclasses.Field, value: Any) -> Any:
    """Convert a TOML / CLI scalar to the field's type, with a clear error on mismatch."""
    kind = type(f.default)
    try:
        if kind is tuple:
            items = value if isinstance(value, list) else [v for v in str(value).split(",") if v.strip()]
            item_type = int if f.name == "hidden" else str
            return tuple(item_type(str(v).strip()) for v in items)
        if kind is bool:
            if isinstance(value, str):
                return {"true": True, "false": False}[value.strip().lower()]
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        return kind(value)
    except (TypeError, ValueError, KeyError):
        raise ConfigError(f"--{option_name(f)} {value!r} is not valid: expected "
                          f"{_KIND_NAMES.get(kind, kind.__name__)}") from None
