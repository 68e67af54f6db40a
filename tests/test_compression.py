import numpy as np
import pytest
from flwr.app import ArrayRecord

from fedge.compression import decode, encode
from fedge.fast_arrays import array_record
from fedge.model import ModelSpec, build


def _pair(seed=0):
    spec = ModelSpec(784, (200, 200), 10)
    sent = ArrayRecord(build(spec, seed).state_dict())
    rng = np.random.default_rng(seed)
    trained = array_record({k: v.numpy() + rng.normal(0, 0.01, v.shape).astype(np.float32) for k, v in sent.items()})
    return sent, trained


def _bytes(record: ArrayRecord) -> int:
    return sum(len(a.data) for a in record.values())


def test_none_sends_the_weights_unchanged():
    sent, trained = _pair()
    assert encode(trained, sent, "none") is trained
    assert decode(trained, sent, "none") is trained


@pytest.mark.parametrize("method,max_error,min_ratio", [("fp16", 1e-4, 1.99), ("int8", 0.01 * 6 / 127, 3.9)])
def test_quantised_updates_rebuild_the_weights_closely_and_are_smaller(method, max_error, min_ratio):
    sent, trained = _pair()
    wire = encode(trained, sent, method)
    rebuilt = decode(wire, sent, method)
    assert set(rebuilt) == set(trained)
    for name in trained:
        assert rebuilt[name].numpy().dtype == np.float32
        assert np.abs(rebuilt[name].numpy() - trained[name].numpy()).max() <= max_error
    assert _bytes(trained) / _bytes(wire) >= min_ratio


def test_int8_wire_format_is_one_int8_array_the_update_then_one_scale_per_layer():
    sent, trained = _pair()
    wire = encode(trained, sent, "int8")
    assert {k: (v.numpy().dtype, v.shape) for k, v in wire.items()} == {"update": (np.int8, (199_210 + 6 * 4,))}
    first_layer = trained["0.weight"].numpy() - sent["0.weight"].numpy()
    assert wire["update"].numpy()[199_210:][:4].view(np.float32)[0] == np.float32(np.abs(first_layer).max() / 127)


def test_a_zero_update_survives_int8():
    sent, _ = _pair()
    rebuilt = decode(encode(sent, sent, "int8"), sent, "int8")
    assert all(np.array_equal(rebuilt[k].numpy(), sent[k].numpy()) for k in sent)


@pytest.mark.parametrize("bad", [
    {"update": np.zeros(10, np.int8)},  # wrong length
    {"update": np.zeros(199_210 + 24, np.float32)},  # wrong dtype
    {"update": np.zeros(199_210, np.int8)},  # no scales
    {"update": np.zeros(199_210 + 24, np.int8), "extra": np.ones(6, np.float32)},  # an extra array
])
def test_malformed_updates_pass_through_for_validation_to_reject(bad):
    sent, _ = _pair()
    received = array_record(bad)
    assert decode(received, sent, "int8") is received


def test_uncompressed_weights_from_a_client_are_not_mistaken_for_an_update():
    sent, trained = _pair()
    assert decode(trained, sent, "fp16") is trained
