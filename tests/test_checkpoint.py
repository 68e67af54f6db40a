"""A checkpoint brings back the model, the schema, the metrics and the server optimizer's state."""

import json
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord
from flwr.serverapp.strategy import FedAdam, FedAvg, FedAvgM

from fedge.checkpoint import Checkpoint, load_checkpoint, restore_strategy, save_checkpoint, strategy_state
from fedge.data import Scaler
from fedge.results import CHECKPOINT_FILE
from fedge.schema import RunSchema
from fedge.validation import ValidatedStrategy

SCHEMA = RunSchema(("a", "b"), ("x", "y"), Scaler(np.array([1.0, 2.0]), np.array([0.5, 3.0])), (), {})


def _arrays(value: float) -> ArrayRecord:
    return ArrayRecord({"layers.0.weight": Array(np.full((2, 3), value, np.float32)),
                        "layers.0.bias": Array(np.full(2, value, np.float32))})


def _save(tmp_path: Path, strategy) -> Checkpoint:
    save_checkpoint(tmp_path, Checkpoint(3, _arrays(0.25), SCHEMA, [{"round": 1}, {"round": 2}, {"round": 3}],
                                         strategy_state(strategy)))
    return load_checkpoint(tmp_path)


def test_model_round_schema_and_rows_come_back(tmp_path: Path):
    loaded = _save(tmp_path, ValidatedStrategy(FedAvg()))
    assert loaded.round == 3 and [r["round"] for r in loaded.rows] == [1, 2, 3]
    assert list(loaded.arrays.keys()) == ["layers.0.weight", "layers.0.bias"]
    np.testing.assert_array_equal(loaded.arrays["layers.0.weight"].numpy(), np.full((2, 3), 0.25, np.float32))
    assert (loaded.schema.feature_names, loaded.schema.classes) == (("a", "b"), ("x", "y"))
    np.testing.assert_array_equal(loaded.schema.scaler.std, [0.5, 3.0])
    assert loaded.strategy_state == {}
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_FILE]  # no temporary file left


def test_fedadam_moments_survive_a_restart(tmp_path: Path):
    before = ValidatedStrategy(FedAdam())
    before.inner.m_t = {"w": np.array([0.1, -0.2])}
    before.inner.v_t = {"w": np.array([0.01, 0.04])}
    before.inner.current_arrays = {"w": np.array([1.0, 2.0])}
    after = ValidatedStrategy(FedAdam())
    restore_strategy(after, _save(tmp_path, before).strategy_state)
    np.testing.assert_array_equal(after.inner.m_t["w"], [0.1, -0.2])
    np.testing.assert_array_equal(after.inner.v_t["w"], [0.01, 0.04])
    np.testing.assert_array_equal(after.inner.current_arrays["w"], [1.0, 2.0])


def test_fedavgm_momentum_survives_a_restart(tmp_path: Path):
    before = ValidatedStrategy(FedAvgM(server_momentum=0.9))
    before.inner.momentum_vector = [np.ones((2, 3)), np.zeros(2)]
    before.inner.current_arrays = _arrays(0.5)
    after = ValidatedStrategy(FedAvgM(server_momentum=0.9))
    restore_strategy(after, _save(tmp_path, before).strategy_state)
    assert [v.shape for v in after.inner.momentum_vector] == [(2, 3), (2,)]
    np.testing.assert_array_equal(after.inner.current_arrays["layers.0.bias"].numpy(), [0.5, 0.5])


def test_a_run_without_checkpoint_has_nothing_to_resume(tmp_path: Path):
    assert load_checkpoint(tmp_path) is None


def test_rows_given_as_json_are_stored_as_given(tmp_path: Path):
    rows = [{"round": 1, "note": "é"}, {"round": 2}]
    state = strategy_state(ValidatedStrategy(FedAvg()))
    save_checkpoint(tmp_path, Checkpoint(2, _arrays(0.5), SCHEMA, rows, state), json.dumps(rows))
    assert load_checkpoint(tmp_path).rows == rows
