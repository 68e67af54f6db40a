"""The model travels as one flat array; both ends see the named arrays."""

from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord

from fedge.config import RunConfig
from fedge.model import ModelSpec, build
from fedge.wire import FLAT, Layout, pack, unpack
from tests.inprocess import InProcessGrid, run_federation


def _model() -> ArrayRecord:
    return ArrayRecord(build(ModelSpec(4, (3,), 2)).state_dict())


def test_pack_and_unpack_round_trip_exactly():
    arrays = _model()
    layout = Layout.of(arrays)
    assert layout == Layout.from_config(ConfigRecord(layout.to_config()))
    packed = pack(arrays, layout)
    assert list(packed.keys()) == [FLAT] and packed[FLAT].shape == (4 * 3 + 3 + 3 * 2 + 2,)
    restored = unpack(packed, layout)
    assert list(restored.keys()) == list(arrays.keys())
    for name in arrays:
        np.testing.assert_array_equal(restored[name].numpy(), arrays[name].numpy())


def test_what_does_not_fit_the_layout_travels_as_it_is():
    arrays = _model()
    layout = Layout.of(arrays)
    compressed = ArrayRecord({"update": Array(np.zeros(23, np.int8))})
    assert pack(compressed, layout) is compressed
    too_short = ArrayRecord({FLAT: Array(np.zeros(22, np.float32))})  # a tampered reply: validation rejects it
    assert unpack(too_short, layout) is too_short
    wrong_dtype = ArrayRecord({FLAT: Array(np.zeros(23, np.float64))})
    assert unpack(wrong_dtype, layout) is wrong_dtype
    assert Layout.of(ArrayRecord({"w": Array(np.zeros(3, np.float64))})) is None  # only float32 is packed


def test_clients_receive_and_send_one_flat_array_and_the_model_still_learns(tmp_path: Path):
    cfg = RunConfig(clients=3, num_rounds=2, local_epochs=1)
    grid = InProcessGrid(cfg.replace(min_clients=3))
    rows = run_federation(cfg, tmp_path, grid)
    train = [r for r in grid.replies if r.metadata.message_type == "train"]
    assert len(train) == 6
    assert all(list(r.content["arrays"].keys()) == [FLAT] for r in train)  # what left each client
    assert rows[-1]["test-accuracy"] >= 0.7 and rows[-1]["train-failures"] == 0
