"""Malformed replies never reach the strategy: the handed cases, checked with Flower's own FedAvg.

Flower refuses `Message(content, ...)` outside its runtime, but accepts a message built
from explicit `Metadata`: these are real reply messages, as a ServerApp receives them.
"""

import time

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.common import Metadata
from flwr.serverapp.strategy import FedAvg

from fedge.validation import ArraySpec, ValidatedStrategy, array_specs, reply_problem

EXPECTED = {"w": ArraySpec((1, 2), "float32")}


def _content(w, examples=10, dtype=np.float32, **metrics) -> RecordDict:
    arrays = ArrayRecord({"w": Array(np.asarray(w, dtype=dtype))})
    return RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": examples, **metrics})})


def _reply(node: int, content: RecordDict) -> Message:
    metadata = Metadata(run_id=1, message_id=f"m{node}", src_node_id=node, dst_node_id=0,
                        reply_to_message_id=f"q{node}", group_id="1", created_at=time.time(), ttl=60.0,
                        message_type=MessageType.TRAIN)
    return Message(content=content, metadata=metadata)


class _Sent:
    """The strategy's view of round 1: it sent out a zero model of one (1, 2) layer."""

    def __init__(self, max_update_norm: float = 0.0) -> None:
        self.rejected: list[tuple[int, int, str]] = []
        self.strategy = ValidatedStrategy(FedAvg(), max_update_norm,
                                          on_reject=lambda *args: self.rejected.append(args))
        self.strategy.expect(ArrayRecord({"w": Array(np.zeros((1, 2), np.float32))}))

    def aggregate(self, *contents: RecordDict):
        arrays, _ = self.strategy.aggregate_train(1, [_reply(i + 1, c) for i, c in enumerate(contents)])
        return None if arrays is None else arrays["w"].numpy()


def test_two_replies_with_zero_examples_keep_the_previous_model():
    sent = _Sent()
    assert sent.aggregate(_content([[1, 2]], 0), _content([[3, 4]], 0)) is None
    assert [(node, why) for _, node, why in sent.rejected] == [
        (1, "metric 'num-examples' is 0, expected at least 1"),
        (2, "metric 'num-examples' is 0, expected at least 1")]


def test_a_nan_reply_is_dropped_and_the_rest_is_averaged():
    sent = _Sent()
    result = sent.aggregate(_content([[1, 2]], 10), _content([[np.nan, 4]], 10))
    np.testing.assert_array_equal(result, [[1.0, 2.0]])
    assert sent.rejected == [(1, 2, "array w holds 1 non-finite value(s)")]


def test_a_wrongly_shaped_layer_is_rejected():
    sent = _Sent()
    assert sent.aggregate(_content([1])) is None
    assert sent.rejected == [(1, 1, "array w is float32[1], expected float32[1, 2]")]


@pytest.mark.parametrize("content,problem", [
    (_content([[1, 2]], 10.5), "metric 'num-examples' is 10.5, expected a whole number"),
    (_content([[1, 2]], -3), "metric 'num-examples' is -3, expected at least 1"),
    (RecordDict({"arrays": ArrayRecord({"w": Array(np.zeros((1, 2), np.float32))}),
                 "metrics": MetricRecord({})}), "metric 'num-examples' is missing"),
    (_content([[1, 2]], 10, **{"train-loss": float("inf")}), "metric 'train-loss' is inf, expected finite numbers"),
    (_content([[1, 2]], 10, spread=[1.0, float("nan")]), "metric 'spread' is [1.0, nan], expected finite numbers"),
    (_content([[1, 2]], dtype=np.float64), "array w is float64[1, 2], expected float32[1, 2]"),
    (RecordDict({"arrays": ArrayRecord({"w": Array(np.zeros((1, 2), np.float32)),
                                        "b": Array(np.zeros(1, np.float32))}),
                 "metrics": MetricRecord({"num-examples": 1})}), "carries unexpected array(s) b"),
    (RecordDict({"arrays": ArrayRecord({"v": Array(np.zeros((1, 2), np.float32))}),
                 "metrics": MetricRecord({"num-examples": 1})}),
     "misses array(s) w; carries unexpected array(s) v"),
    (RecordDict({"metrics": MetricRecord({"num-examples": 1})}),
     "holds records ['metrics'], expected ['arrays', 'metrics']"),
    (RecordDict({"arrays": ArrayRecord({"w": Array(np.zeros((1, 2), np.float32))}),
                 "metrics": ConfigRecord({"num-examples": 1})}),
     "'metrics' is a ConfigRecord, expected a MetricRecord"),
])
def test_every_malformed_reply_gets_a_reason(content, problem):
    assert reply_problem(content, EXPECTED) == problem


def test_a_sound_reply_passes():
    assert reply_problem(_content([[1, 2]], 7, **{"train-loss": 0.5}), EXPECTED) == ""


def test_the_update_norm_limit_rejects_a_far_update_and_keeps_the_near_one():
    sent = _Sent(max_update_norm=5.0)
    result = sent.aggregate(_content([[3, 4]]), _content([[30, 40]]))  # norms 5 and 50
    np.testing.assert_array_equal(result, [[3.0, 4.0]])
    assert sent.rejected == [(1, 2, "update norm 50 exceeds --max-update-norm 5")]


def test_replies_whose_metric_names_differ_from_the_majority_are_rejected():
    sent = _Sent()
    result = sent.aggregate(_content([[1, 1]], 1, loss=1.0), _content([[3, 3]], 1, loss=1.0),
                            _content([[9, 9]], 1, other=1.0))
    np.testing.assert_array_equal(result, [[2.0, 2.0]])
    assert sent.rejected == [(1, 3, "metric names ['num-examples', 'other'] differ from the other "
                                    "replies' ['loss', 'num-examples']")]


def test_evaluation_replies_with_zero_examples_do_not_crash():
    strategy = ValidatedStrategy(FedAvg())
    replies = [_reply(1, RecordDict({"metrics": MetricRecord({"num-examples": 0, "accuracy": 1.0})}))]
    assert strategy.aggregate_evaluate(1, replies) is None


def test_array_specs_describe_the_global_model():
    assert array_specs(ArrayRecord({"w": Array(np.zeros((1, 2), np.float32))})) == EXPECTED
