"""Reject malformed client replies before any strategy sees them.

Flower's strategies trust every reply: 0 examples everywhere divides by zero, one NaN
turns the global model into NaN, a wrongly shaped layer is broadcast to everyone.
`ValidatedStrategy` wraps any strategy (like Flower's DP wrappers do) and hands it
only replies that pass `reply_problem`, a pure function the tests call directly.

The optional update-norm limit *rejects* a reply whose update is too large instead
of scaling it down: an update that large comes from a broken or hostile device, and
a scaled copy would still pull the model in its direction.  Bounding honest
contributions (clipping) is the job of Flower's differential-privacy wrappers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from logging import WARNING

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedge.fast_arrays import array_record

WEIGHT_KEY = "num-examples"
ARRAYS_KEY = "arrays"
METRICS_KEY = "metrics"

RejectHook = Callable[[int, int, str], None]  # (server round, node id, reason)


@dataclass(frozen=True)
class ArraySpec:
    shape: tuple[int, ...]
    dtype: str


def array_specs(arrays: ArrayRecord) -> dict[str, ArraySpec]:
    """What every training reply must send back: the global model's names, shapes and dtypes."""
    return {name: ArraySpec(tuple(a.shape), str(a.dtype)) for name, a in arrays.items()}


def reply_problem(content: RecordDict, expected: Mapping[str, ArraySpec] | None,
                  reference: Mapping[str, np.ndarray] | None = None, max_update_norm: float = 0.0) -> str:
    """Why this reply cannot be aggregated, or "" when it can.

    `expected` is None for evaluation replies (metrics only).  `reference` is the
    model the client was sent; with `max_update_norm` > 0 the L2 norm of the whole
    update (reply minus reference) must not exceed it.
    """
    wanted = {METRICS_KEY} | ({ARRAYS_KEY} if expected is not None else set())
    if set(content.keys()) != wanted:
        return f"holds records {sorted(content.keys())}, expected {sorted(wanted)}"
    metrics = content[METRICS_KEY]
    if not isinstance(metrics, MetricRecord):
        return f"'{METRICS_KEY}' is a {type(metrics).__name__}, expected a MetricRecord"
    problem = _metrics_problem(metrics)
    if problem or expected is None:
        return problem
    arrays = content[ARRAYS_KEY]
    if not isinstance(arrays, ArrayRecord):
        return f"'{ARRAYS_KEY}' is a {type(arrays).__name__}, expected an ArrayRecord"
    return _arrays_problem(arrays, expected, reference, max_update_norm)


def _metrics_problem(metrics: MetricRecord) -> str:
    count = metrics.get(WEIGHT_KEY)
    if count is None:
        return f"metric '{WEIGHT_KEY}' is missing"
    if not isinstance(count, int):
        return f"metric '{WEIGHT_KEY}' is {count!r}, expected a whole number"
    if count <= 0:
        return f"metric '{WEIGHT_KEY}' is {count}, expected at least 1"
    for key, value in metrics.items():
        values = value if isinstance(value, list) else [value]
        if not all(math.isfinite(v) for v in values):  # MetricRecord admits only numbers
            return f"metric '{key}' is {value!r}, expected finite numbers"
    return ""


def _arrays_problem(arrays: ArrayRecord, expected: Mapping[str, ArraySpec],
                    reference: Mapping[str, np.ndarray] | None, max_update_norm: float) -> str:
    missing = [name for name in expected if name not in arrays]
    extra = [name for name in arrays if name not in expected]
    if missing or extra:
        return "; ".join(([f"misses array(s) {', '.join(missing)}"] if missing else [])
                         + ([f"carries unexpected array(s) {', '.join(extra)}"] if extra else []))
    squares = 0.0
    for name, spec in expected.items():
        got = ArraySpec(tuple(arrays[name].shape), str(arrays[name].dtype))
        if got != spec:
            return f"array {name} is {got.dtype}{list(got.shape)}, expected {spec.dtype}{list(spec.shape)}"
        values = arrays[name].numpy()
        if not np.all(np.isfinite(values)):
            return f"array {name} holds {int(np.size(values) - np.isfinite(values).sum())} non-finite value(s)"
        if reference is not None and max_update_norm > 0:  # the norm is only needed to bound it
            squares += float(np.sum((values.astype(np.float64) - reference[name]) ** 2))
    norm = math.sqrt(squares)
    if max_update_norm > 0 and norm > max_update_norm:
        return f"update norm {norm:.4g} exceeds --max-update-norm {max_update_norm:g}"
    return ""


class ValidatedStrategy(Strategy):
    """Any strategy, fed only replies that pass `reply_problem`; a bad round keeps the old model."""

    def __init__(self, inner: Strategy, max_update_norm: float = 0.0, on_reject: RejectHook | None = None
                 ) -> None:
        self.inner = inner
        self.max_update_norm = max_update_norm
        self.on_reject = on_reject
        self._expected: dict[str, ArraySpec] = {}
        self._reference: dict[str, np.ndarray] = {}

    def summary(self) -> None:
        self.inner.summary()

    def expect(self, arrays: ArrayRecord) -> None:
        """Training replies must match this global model (the one just sent out)."""
        self._expected = array_specs(arrays)
        self._reference = ({name: a.numpy().astype(np.float64) for name, a in arrays.items()}
                           if self.max_update_norm > 0 else {})

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self.expect(arrays)
        return self.inner.configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        valid = self._valid(server_round, replies, self._expected)
        if not valid:
            log(WARNING, "fedge: round %s: no valid training reply; the global model stays as it was",
                server_round)
            return None, None
        arrays, metrics = self.inner.aggregate_train(server_round, valid)
        if arrays is None:
            return None, metrics
        if not all(np.all(np.isfinite(a.numpy())) for a in arrays.values()):
            log(WARNING, "fedge: round %s: aggregation produced non-finite values; the global model stays "
                "as it was", server_round)
            return None, metrics
        return self._in_model_dtypes(arrays), metrics

    def _in_model_dtypes(self, arrays: ArrayRecord) -> ArrayRecord:
        """The aggregate in the dtypes of the model sent out: Flower's FedOpt family returns float64,
        which would make every later (float32) client reply look malformed."""
        if all(str(a.dtype) == self._expected[name].dtype for name, a in arrays.items()):
            return arrays
        return array_record({name: a.numpy().astype(self._expected[name].dtype) for name, a in arrays.items()})

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        valid = self._valid(server_round, replies, None)
        return self.inner.aggregate_evaluate(server_round, valid) if valid else None

    def _valid(self, server_round: int, replies: Iterable[Message],
               expected: Mapping[str, ArraySpec] | None) -> list[Message]:
        """Replies without errors that pass every check and agree on their metric names."""
        candidates = []
        for reply in replies:
            if reply.has_error():
                continue  # already a failure; the caller logs it
            why = reply_problem(reply.content, expected, self._reference if expected else None,
                                self.max_update_norm)
            if why:
                self._reject(server_round, reply, why)
            else:
                candidates.append(reply)
        if not candidates:
            return []
        usual = Counter(frozenset(r.content[METRICS_KEY].keys()) for r in candidates).most_common(1)[0][0]
        valid = []
        for reply in candidates:
            keys = frozenset(reply.content[METRICS_KEY].keys())
            if keys == usual:
                valid.append(reply)
            else:
                self._reject(server_round, reply, f"metric names {sorted(keys)} differ from the other "
                             f"replies' {sorted(usual)}")
        return valid

    def _reject(self, server_round: int, reply: Message, why: str) -> None:
        node = reply.metadata.src_node_id
        log(WARNING, "fedge: round %s: rejected the reply of node %s: %s", server_round, node, why)
        if self.on_reject:
            self.on_reject(server_round, node, why)
