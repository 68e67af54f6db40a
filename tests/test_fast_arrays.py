"""fedge.fast_arrays writes exactly what np.save writes and reads exactly what np.load reads."""

import io

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord

from fedge import fast_arrays

ARRAYS = [np.arange(12, dtype=np.float32).reshape(3, 4), np.array(2.5, dtype=np.float32),
          np.zeros((0, 5), dtype=np.float64), np.array([-128, 0, 127], dtype=np.int8),
          np.array([1, 2], dtype=np.int64), np.array([True, False]), np.ones((2, 3, 4), dtype=np.float16),
          np.array([1 + 2j], dtype=np.complex64), np.arange(199_210, dtype=np.float32)]


def _np_save(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, values, allow_pickle=False)
    return buffer.getvalue()


@pytest.fixture(autouse=True, scope="module")
def installed():
    fast_arrays.install()  # clients.app installs it too; installing twice changes nothing
    assert fast_arrays.install() is False


@pytest.mark.parametrize("values", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_written_bytes_are_np_saves_and_read_back_as_np_load_reads_them(values: np.ndarray) -> None:
    array = Array(values)
    assert array.data == _np_save(values)
    assert (array.dtype, array.shape) == (str(values.dtype), tuple(values.shape))
    read = array.numpy()
    expected = np.load(io.BytesIO(array.data), allow_pickle=False)
    assert read.dtype == expected.dtype and read.shape == expected.shape
    np.testing.assert_array_equal(read, expected)
    if read.size:  # writable, like np.load's, and a copy: the Array's bytes stay as they were
        read.flat[0] = 0 if read.flat[0] else 1
        np.testing.assert_array_equal(array.numpy(), values)


def test_torch_state_dicts_round_trip() -> None:
    state = torch.nn.Linear(5, 3).state_dict()
    back = ArrayRecord(state).to_torch_state_dict()
    assert all(torch.equal(back[name], state[name]) for name in state)


def test_arrays_np_save_would_write_differently_go_through_np_save() -> None:
    fortran = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    strided = np.arange(10, dtype=np.float32)[::2]
    for values in (fortran, strided):
        array = Array(values)
        assert array.data == _np_save(values)
        np.testing.assert_array_equal(array.numpy(), values)


def test_bytes_that_are_not_that_npy_file_are_read_by_np_load() -> None:
    """A sender that lies about dtype or shape, or sends a broken file, gets np.load's verdict."""
    good = Array(np.arange(6, dtype=np.float32).reshape(2, 3))
    lying_shape = Array(dtype="float32", shape=(3, 2), stype="numpy.ndarray", data=good.data)
    assert lying_shape.numpy().shape == (2, 3)  # what the bytes say, as np.load reads them
    lying_dtype = Array(dtype="int32", shape=(2, 3), stype="numpy.ndarray", data=good.data)
    assert lying_dtype.numpy().dtype == np.float32
    huge = Array(dtype="float32", shape=(10**12,), stype="numpy.ndarray", data=good.data)
    assert huge.numpy().shape == (2, 3)  # nothing allocated for the declared size
    truncated = Array(dtype="float32", shape=(2, 3), stype="numpy.ndarray", data=good.data[:-4])
    with pytest.raises(ValueError, match="EOF: reading array data, expected 24 bytes got 20"):
        truncated.numpy()
    buffer = io.BytesIO()
    np.save(buffer, np.array([None], dtype=object), allow_pickle=True)
    pickled = Array(dtype="object", shape=(1,), stype="numpy.ndarray", data=buffer.getvalue())
    with pytest.raises(ValueError, match="allow_pickle=False"):
        pickled.numpy()


def test_well_formed_arrays_skip_np_save_and_np_load(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    fast_arrays.npy_header("<f4", (2, 3))  # built with np.save, once per dtype and shape
    monkeypatch.setattr(np, "save", lambda *args, **kwargs: pytest.fail("np.save called"))
    monkeypatch.setattr(np, "load", lambda *args, **kwargs: pytest.fail("np.load called"))
    np.testing.assert_array_equal(Array(values).numpy(), values)


def test_array_record_holds_what_flowers_constructor_would_in_the_same_order() -> None:
    arrays = {"b.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "a.bias": np.array([1.5, -2.0])}
    ours, flowers = fast_arrays.array_record(arrays), ArrayRecord({k: Array(v) for k, v in arrays.items()})
    assert list(ours.keys()) == ["b.weight", "a.bias"]
    assert [(a.dtype, a.shape, a.stype, a.data) for a in ours.values()] == \
        [(a.dtype, a.shape, a.stype, a.data) for a in flowers.values()]
