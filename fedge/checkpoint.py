"""Everything a run needs to go on after its server stopped: one file, replaced atomically.

After every completed round the server writes `checkpoint.npz`: the global model, the
round number, the agreed schema (features, classes, scaler), the metrics rows so far
and the strategy's state.  Strategy state is every array-valued attribute of the
strategy (Flower's FedOpt family keeps `current_arrays`, `m_t`, `v_t`; FedAvgM keeps
`current_arrays`, `momentum_vector`), so strategies added later are covered without
a table here.  NumPy's npz with `allow_pickle=False`: loading never runs code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord
from flwr.serverapp.strategy import Strategy

from fedge.data import Scaler
from fedge.fast_arrays import array_record
from fedge.results import CHECKPOINT_FILE
from fedge.schema import RunSchema

ROWS_ENTRY = "rows"  # the metrics rows so far, as UTF-8 JSON


@dataclass
class Checkpoint:
    round: int
    arrays: ArrayRecord
    schema: RunSchema
    rows: list[dict[str, Any]]
    strategy_state: dict[str, Any]


def save_checkpoint(run_dir: Path, checkpoint: Checkpoint, rows_json: str | None = None) -> None:
    """`rows_json`: the rows already encoded as a JSON list (what RunFolder.write_metrics
    returns), so that a long run does not encode every row once more each round."""
    rows = (json.dumps(checkpoint.rows) if rows_json is None else rows_json).encode()
    entries = {f"model/{name}": array.numpy() for name, array in checkpoint.arrays.items()}
    entries[ROWS_ENTRY] = np.frombuffer(rows, dtype=np.uint8)  # UTF-8: a str array takes 4 bytes a character
    layout = {}
    for attr, value in checkpoint.strategy_state.items():
        kind, items = _flatten(value)
        layout[attr] = {"kind": kind, "keys": list(items)}
        entries.update({f"strategy/{attr}/{key}": array for key, array in items.items()})
    schema = checkpoint.schema
    meta = {"round": checkpoint.round, "model": list(checkpoint.arrays.keys()),
            "strategy": layout, "features": list(schema.feature_names), "classes": list(schema.classes),
            "scaler-mean": schema.scaler.mean.tolist(), "scaler-std": schema.scaler.std.tolist()}
    path = Path(run_dir) / CHECKPOINT_FILE
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta)), **entries)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The last completed round of the run in `run_dir`, or None when it has none."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        rows = json.loads(data[ROWS_ENTRY].tobytes())
        arrays = array_record({name: data[f"model/{name}"] for name in meta["model"]})
        state = {attr: _unflatten(spec["kind"], {key: data[f"strategy/{attr}/{key}"] for key in spec["keys"]})
                 for attr, spec in meta["strategy"].items()}
    schema = RunSchema(tuple(meta["features"]), tuple(meta["classes"]),
                       Scaler(np.asarray(meta["scaler-mean"]), np.asarray(meta["scaler-std"])), (), {})
    return Checkpoint(meta["round"], arrays, schema, rows, state)


def strategy_state(strategy: Any) -> dict[str, Any]:
    """The public array-valued attributes of a strategy and of the strategies it wraps.

    Wrappers hold their inner strategy in an attribute (fedge's as `inner`, Flower's DP
    wrappers as `strategy`); its state is stored under that attribute's name.
    """
    state = {}
    for attr, value in vars(strategy).items():
        if attr.startswith("_"):
            continue
        if isinstance(value, Strategy):
            state.update({f"{attr}.{k}": v for k, v in strategy_state(value).items()})
        elif _flatten(value)[0]:
            state[attr] = value
    return state


def restore_strategy(strategy: Any, state: dict[str, Any]) -> None:
    for attr, value in state.items():
        owner = strategy
        *path, name = attr.split(".")
        for step in path:
            owner = getattr(owner, step)
        setattr(owner, name, value)


def _flatten(value: Any) -> tuple[str, dict[str, np.ndarray]]:
    """(kind, named arrays) for the array containers strategies use; kind "" for anything else."""
    if isinstance(value, ArrayRecord):
        return "arrayrecord", {k: a.numpy() for k, a in value.items()}
    if isinstance(value, np.ndarray):
        return "array", {"0": value}
    if isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
        return "dict", dict(value)
    if isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
        return "list", {str(i): v for i, v in enumerate(value)}
    return "", {}


def _unflatten(kind: str, items: dict[str, np.ndarray]) -> Any:
    if kind == "arrayrecord":
        return array_record(items)
    if kind == "array":
        return items["0"]
    if kind == "dict":
        return items
    return [items[str(i)] for i in range(len(items))]
