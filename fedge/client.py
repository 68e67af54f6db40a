"""What a device does for each server message; the ClientApp only wires these to Flower.

Only three things ever leave a device: its schema (feature names and the set of label
names), additive feature statistics (count, sums, sums of squares) before round 1,
and after that the model's arrays plus scalar metrics.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from logging import ERROR
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from flwr.common import log

from fedge import compression
from fedge.config import RunConfig
from fedge.data import DataError, FeatureStats, Scaler, Table, encode_labels, load_builtin, load_file
from fedge.model import ModelSpec, build
from fedge.partition import partition_rows
from fedge.privacy import UNIFORM_WEIGHT
from fedge.refusal import REFUSAL, REPORT_FILE
from fedge.results import write_atomic
from fedge.training import TrainSettings, evaluate, fit

VALIDATION_FRACTION = 0.1


@dataclass(frozen=True)
class DataSource:
    """Where a client's rows come from: its own file, or one partition of a built-in set."""

    path: str = ""
    label_column: str = "label"
    dataset: str = ""
    partition_id: int = -1
    num_partitions: int = 0
    partition: str = "iid"
    alpha: float = 0.5
    shards_per_client: int = 2
    seed: int = 0

    def describe(self) -> str:
        if self.path:
            return self.path
        return f"{self.dataset} partition {self.partition_id} of {self.num_partitions}"


def data_source(node_config: Mapping[str, Any], cfg: RunConfig) -> DataSource:
    """Read the node config: `data-path`, or `partition-id` + `num-partitions` (+ `dataset`)."""
    if node_config.get("data-path"):
        label_column = str(node_config.get("label-column") or cfg.label_column)
        return DataSource(path=str(node_config["data-path"]), label_column=label_column)
    dataset = str(node_config.get("dataset") or cfg.dataset)
    if "partition-id" in node_config and "num-partitions" in node_config and dataset:
        return DataSource(dataset=dataset, partition_id=int(node_config["partition-id"]),
                          num_partitions=int(node_config["num-partitions"]), partition=cfg.partition,
                          alpha=cfg.alpha, shards_per_client=cfg.shards_per_client, seed=cfg.seed)
    raise DataError("this client has no data: give it a file (node config data-path=FILE, "
                    "`fedge client --data FILE`) or a partition (dataset, partition-id, num-partitions)")


@dataclass(frozen=True)
class LocalData:
    """All of a client's rows, split into the part it trains on and the part it validates on."""

    rows: Table
    train: Table
    validation: Table


@functools.lru_cache(maxsize=4)
def local_data(source: DataSource) -> LocalData:
    """Load and split this client's rows once per process; later messages reuse them."""
    if source.path:
        table = load_file(source.path, source.label_column)
    else:
        train, _ = load_builtin(source.dataset)
        table = train.take(partition_rows(train.labels, source.num_partitions, source.partition_id,
                                          source.partition, source.alpha, source.shards_per_client,
                                          source.seed))
    order = np.random.default_rng(source.seed).permutation(len(table))
    n_val = int(len(table) * VALIDATION_FRACTION)
    return LocalData(table, table.take(order[n_val:]), table.take(order[:n_val]) if n_val else table)


# --- Query: schema and statistics -------------------------------------------------------

def query_reply(source: DataSource) -> RecordDict:
    table = local_data(source).rows
    stats = FeatureStats.of(table.features)
    return RecordDict({
        "schema": ConfigRecord({"feature-names": list(table.feature_names),
                                "labels": sorted(set(table.labels.tolist()))}),
        "stats": MetricRecord({"num-examples": stats.count, "sums": stats.sums.tolist(),
                               "squares": stats.squares.tolist()}),
    })


def refusal_reply(content: RecordDict, source: DataSource, node_config: Mapping[str, Any]) -> RecordDict:
    """Say why the server refused this device, in terms of its own file, where `fedge client` reads it."""
    refusal = content[REFUSAL]
    text = f"{source.describe()}: the server refused this device: {refusal['reason']}"
    try:
        encode_labels(local_data(source).rows.labels, tuple(refusal["classes"]), source.describe())
    except DataError as err:  # names the first row with a label outside the run's classes
        text = f"{err}; the server refused this device"
    log(ERROR, "fedge: %s", text)
    if node_config.get(REPORT_FILE):
        write_atomic(Path(str(node_config[REPORT_FILE])), text + "\n")
    return RecordDict()


# --- Train and evaluate ---------------------------------------------------------------

@dataclass(frozen=True)
class RoundSetup:
    """What the server sends with each model: the shared scaler and class list."""

    scaler: Scaler
    classes: tuple[str, ...]
    server_round: int

    @classmethod
    def from_config(cls, config: ConfigRecord) -> RoundSetup:
        return cls(Scaler(np.asarray(config["scaler-mean"]), np.asarray(config["scaler-std"])),
                   tuple(config["classes"]), int(config["server-round"]))


def train_reply(content: RecordDict, source: DataSource, cfg: RunConfig) -> RecordDict:
    """Evaluate the incoming global model on the validation rows, then train it locally.

    Evaluating first puts federated evaluation into the training message: one round
    trip per round instead of two, which halves a deployed round's overhead.
    """
    setup = RoundSetup.from_config(content["config"])
    model = _model(content["arrays"], setup, cfg)
    evaluation = _evaluation(model, source, setup)
    x, y = _prepared(source, setup.scaler, setup.classes, "train")
    settings = TrainSettings(epochs=cfg.local_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                             optimizer=cfg.optimizer, momentum=cfg.momentum,
                             seed=cfg.seed * 100_003 + setup.server_round * 1009 + source.partition_id,
                             proximal_mu=float(content["config"].get("proximal-mu", 0.0)))  # set by FedProx
    start = time.perf_counter()
    loss = fit(model, x, y, settings)
    seconds = time.perf_counter() - start
    update = compression.encode(ArrayRecord(model.state_dict()), content["arrays"],
                                str(content["config"].get("compress", "none")))
    return RecordDict({"arrays": update,
                       "metrics": MetricRecord({**_weights(len(y), cfg), "train-loss": loss,
                                                "train-seconds": seconds, **evaluation})})


def evaluate_reply(content: RecordDict, source: DataSource, cfg: RunConfig) -> RecordDict:
    setup = RoundSetup.from_config(content["config"])
    evaluation = _evaluation(_model(content["arrays"], setup, cfg), source, setup)
    return RecordDict({"metrics": MetricRecord({"num-examples": evaluation["eval-examples"], **evaluation})})


def _evaluation(model: torch.nn.Module, source: DataSource, setup: RoundSetup) -> dict[str, float | int]:
    x, y = _prepared(source, setup.scaler, setup.classes, "validation")
    loss, accuracy = evaluate(model, x, y)
    return {"eval-examples": len(y), "eval-loss": loss, "eval-accuracy": accuracy}


def _weights(num_examples: int, cfg: RunConfig) -> dict[str, int]:
    """What the server averages by: example counts, and under DP also a weight of 1 (see fedge.strategy.flower_strategy)."""
    return {"num-examples": num_examples, **({UNIFORM_WEIGHT: 1} if cfg.dp != "none" else {})}


def _model(arrays: ArrayRecord, setup: RoundSetup, cfg: RunConfig) -> torch.nn.Module:
    spec = ModelSpec(len(setup.scaler.mean), cfg.hidden, len(setup.classes), cfg.activation, cfg.dropout)
    model = _network(spec)
    model.load_state_dict(arrays.to_torch_state_dict())
    return model


@functools.lru_cache(maxsize=2)
def _network(spec: ModelSpec) -> torch.nn.Module:
    """One network per process, its weights replaced by each message's: building (and
    seeding) a fresh one cost more than half of a small client's call."""
    return build(spec)


def _prepared(source: DataSource, scaler: Scaler, classes: tuple[str, ...], part: str
              ) -> tuple[np.ndarray, np.ndarray]:
    return _prepared_cached(source, tuple(scaler.mean.tolist()), tuple(scaler.std.tolist()), classes, part)


@functools.lru_cache(maxsize=8)
def _prepared_cached(source: DataSource, mean: tuple[float, ...], std: tuple[float, ...],
                     classes: tuple[str, ...], part: str) -> tuple[np.ndarray, np.ndarray]:
    """Scaled features and class indices, computed once per (data, scaler, classes)."""
    table: Table = getattr(local_data(source), part)
    if len(mean) != table.features.shape[1]:
        raise DataError(f"{source.describe()}: {table.features.shape[1]} features, but the run's "
                        f"model expects {len(mean)}")
    scaled = Scaler(np.asarray(mean), np.asarray(std)).transform(table.features)
    return scaled, encode_labels(table.labels, classes, source.describe())
