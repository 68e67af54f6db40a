"""Update compression: a client sends its update (new weights minus the global ones)
quantised to fp16 or int8; the server rebuilds full weights before aggregation.

The update travels as one flat array (layers in the model's order), so that it pays
one array header.  int8 is symmetric per layer: q = round(delta / scale) with
scale = max|delta| / 127; the layers' float32 scales ride at the end of the same int8
array, as their raw bytes (4 per layer), instead of in an array (and header) of their
own.  Updates are small and centred on zero, so 8 bits lose little; whole weights
would lose more.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedge.fast_arrays import array_record

UPDATE = "update"  # the flat quantised update (int8: then the layers' scales, as bytes)
SCALE_BYTES = np.dtype(np.float32).itemsize


def encode(trained: ArrayRecord, sent: ArrayRecord, method: str) -> ArrayRecord:
    """What a client sends back: its weights as they are, or its quantised update."""
    if method == "none":
        return trained
    deltas = [trained[name].numpy() - sent[name].numpy() for name in sent]
    if method == "fp16":
        return array_record({UPDATE: np.concatenate([d.ravel() for d in deltas]).astype(np.float16)})
    scales = np.array([np.abs(d).max() / 127 or 1.0 for d in deltas], dtype=np.float32)
    update = np.concatenate([np.round(d.ravel() / scale) for d, scale in zip(deltas, scales)]).astype(np.int8)
    return array_record({UPDATE: np.concatenate([update, scales.view(np.int8)])})


def decode(received: ArrayRecord, sent: ArrayRecord, method: str) -> ArrayRecord:
    """Full float32 weights from what a client sent; the inverse of `encode`.

    Anything that is not an encoded update of this model (other names, sizes or
    dtypes) is passed on as it came, for validation to reject.
    """
    sizes = [int(np.prod(sent[name].shape)) for name in sent]
    total = sum(sizes)
    expected = {"fp16": (np.float16, total), "int8": (np.int8, total + SCALE_BYTES * len(sizes))}.get(method)
    if expected is None or list(received) != [UPDATE]:
        return received
    payload = received[UPDATE].numpy()
    if payload.dtype != expected[0] or payload.shape != (expected[1],):
        return received
    flat = payload[:total].astype(np.float32)
    scales = payload[total:].view(np.float32) if method == "int8" else np.ones(len(sizes), np.float32)
    pieces = np.split(flat, np.cumsum(sizes)[:-1])
    return array_record({name: (sent[name].numpy() + piece.reshape(sent[name].shape) * scale).astype(np.float32)
                         for name, piece, scale in zip(sent, pieces, scales)})


class DecompressUpdates(Strategy):
    """Wrap a strategy so that it aggregates rebuilt weights, whatever clients sent."""

    def __init__(self, inner: Strategy, method: str) -> None:
        self.inner, self.method = inner, method
        self.sent = ArrayRecord()

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self.sent = arrays
        config["compress"] = self.method
        return self.inner.configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        for reply in replies:
            if not reply.has_error() and "arrays" in reply.content:
                content = reply.content
                reply.content = RecordDict({**content, "arrays": decode(content["arrays"], self.sent,
                                                                           self.method)})
        return self.inner.aggregate_train(server_round, replies)

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        self.inner.summary()
