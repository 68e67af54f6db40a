"""Split a data set across virtual clients: iid, dirichlet(alpha) or label shards.

iid and dirichlet are flwr-datasets' partitioners over a table of (row, label):
fedge hands them row numbers and reads back each client's rows.  Shards are
fedge's own (see `_shards`).  flwr-datasets is imported lazily: it costs ~3 s.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from fedge.data import DataError



def partition_rows(labels: np.ndarray, num_partitions: int, partition_id: int, method: str,
                   alpha: float = 0.5, shards_per_client: int = 2, seed: int = 0) -> np.ndarray:
    """Row numbers (into `labels`) that client `partition_id` of `num_partitions` holds."""
    if not 0 <= partition_id < num_partitions:
        raise DataError(f"partition-id {partition_id} is outside 0..{num_partitions - 1}")
    partitions = all_partitions(tuple(labels.tolist()), num_partitions, method, alpha,
                                shards_per_client, seed)
    return partitions[partition_id]


@functools.lru_cache(maxsize=8)
def all_partitions(labels: tuple[str, ...], num_partitions: int, method: str, alpha: float,
                   shards_per_client: int, seed: int) -> tuple[np.ndarray, ...]:
    """Every client's rows, computed once per process and cached (clients ask one by one)."""
    rows = len(labels)
    if num_partitions > rows:
        raise DataError(f"{num_partitions} clients but only {rows} training rows: every client "
                        f"needs at least one row; use --clients {rows} or fewer")
    if method == "shards":
        return _shards(labels, num_partitions, shards_per_client, seed)
    partitioner = _partitioner(method, num_partitions, alpha, seed)
    import datasets

    order = np.random.default_rng(seed).permutation(rows) if method == "iid" else np.arange(rows)
    partitioner.dataset = datasets.Dataset.from_dict(
        {"row": order, "label": [labels[i] for i in order]})
    with warnings.catch_warnings():  # flwr-datasets warns on every Dirichlet re-draw
        warnings.simplefilter("ignore")
        parts = [np.asarray(partitioner.load_partition(i)["row"], dtype=np.int64)
                 for i in range(num_partitions)]
    return tuple(_top_up_empty(parts))


def _top_up_empty(parts: list[np.ndarray]) -> list[np.ndarray]:
    """Give each empty client one row from the currently largest client.

    A Dirichlet draw with small alpha over many clients leaves some clients empty
    (flwr-datasets' own minimum-size retry gives up with an error instead: alpha 0.1
    over 100 digits clients fails).  A client without data cannot train, so fedge
    moves single rows; the skew of everyone else's label mix is untouched.
    """
    for empty in [i for i, p in enumerate(parts) if len(p) == 0]:
        largest = max(range(len(parts)), key=lambda i: len(parts[i]))
        parts[empty], parts[largest] = parts[largest][-1:], parts[largest][:-1]
    return parts


def _shards(labels: tuple[str, ...], num_partitions: int, shards_per_client: int, seed: int
            ) -> tuple[np.ndarray, ...]:
    """The FedAvg paper's pathological split: sort by label, cut into equal shards, deal k each.

    fedge's own, because flwr-datasets' ShardPartitioner drops the rows that do not
    fill a whole shard (37 of 1,437 digits rows over 100 clients; more with
    keep_incomplete_shard=True), and partitions must cover the data.
    """
    count = num_partitions * shards_per_client
    if count > len(labels):
        raise DataError(f"{num_partitions} clients × {shards_per_client} shards needs at least "
                        f"{count} rows; there are {len(labels)}")
    by_label = np.argsort(np.asarray(labels), kind="stable")
    shards = np.array_split(by_label, count)
    dealt = np.random.default_rng(seed).permutation(count)
    return tuple(np.concatenate([shards[s] for s in dealt[i::num_partitions]]) for i in range(num_partitions))


def _partitioner(method: str, num_partitions: int, alpha: float, seed: int):
    from flwr_datasets import partitioner as fp

    if method == "iid":
        return fp.IidPartitioner(num_partitions)
    if method == "dirichlet":
        return fp.DirichletPartitioner(num_partitions, "label", alpha, min_partition_size=0, seed=seed)
    raise DataError(f"unknown partition method {method!r}; use iid, dirichlet or shards")
