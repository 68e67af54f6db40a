"""Agree on one schema and one scaler from what clients report before round 1.

Pure functions over plain values: the ServerApp gathers the reports, this module
decides which clients fit the run, the feature names, the class list and the scaler.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedge.data import FeatureStats, Scaler, sorted_classes


@dataclass(frozen=True)
class ClientReport:
    """One client's answer to the query: its schema and additive feature statistics."""

    node_id: int
    feature_names: tuple[str, ...]
    labels: frozenset[str]
    stats: FeatureStats


@dataclass(frozen=True)
class RunSchema:
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    scaler: Scaler
    accepted: tuple[int, ...]
    refused: dict[int, str]  # node id -> why


class SchemaError(ValueError):
    """No client (or no schema) the run can use."""


class EveryClientRefused(SchemaError):
    """Every client that answered was refused; others may still connect."""

    def __init__(self, refused: dict[int, str]) -> None:
        super().__init__("every client was refused: " + "; ".join(f"node {node}: {why}"
                                                                  for node, why in refused.items()))
        self.refused = refused


def agree(reports: Sequence[ClientReport], classes: Sequence[str] = (),
          expected_features: Sequence[str] = ()) -> RunSchema:
    """Accept clients whose features match the reference and whose labels are known classes.

    The reference feature list is `expected_features` (the server's test data) when
    given, otherwise the list most clients report.  Classes are `classes` when given,
    otherwise the union of accepted clients' labels.
    """
    if not reports:
        raise SchemaError("no client answered the schema query")
    reference = tuple(expected_features) or Counter(r.feature_names for r in reports).most_common(1)[0][0]
    refused: dict[int, str] = {}
    for report in reports:
        difference = feature_difference(reference, report.feature_names)
        if difference:
            refused[report.node_id] = difference
        elif classes and not report.labels <= set(classes):
            unknown = sorted(report.labels - set(classes))
            refused[report.node_id] = (f"labels {', '.join(unknown)} are not among the run's classes "
                                       f"({', '.join(classes)})")
    accepted = [r for r in reports if r.node_id not in refused]
    if not accepted:
        raise EveryClientRefused(refused)
    run_classes = tuple(classes) or sorted_classes(set().union(*(r.labels for r in accepted)))
    if len(run_classes) < 2:
        raise SchemaError(f"the clients' data hold only the class {run_classes[0]!r}; a classifier "
                          "needs at least two (give the full list with --classes)")
    total = accepted[0].stats
    for report in accepted[1:]:
        total = total + report.stats
    return RunSchema(reference, run_classes, Scaler.from_stats(total),
                     tuple(r.node_id for r in accepted), refused)


def feature_difference(expected: Sequence[str], actual: Sequence[str]) -> str:
    """Say how `actual` differs from `expected`; empty when they are the same list."""
    if tuple(expected) == tuple(actual):
        return ""
    missing = [f for f in expected if f not in actual]
    extra = [f for f in actual if f not in expected]
    parts = [f"{len(actual)} features where the run has {len(expected)}"] if len(actual) != len(expected) else []
    if missing:
        parts.append("missing " + _some(missing))
    if extra:
        parts.append("unexpected " + _some(extra))
    if not missing and not extra:
        first = next(i for i, (a, b) in enumerate(zip(expected, actual)) if a != b)
        parts.append(f"columns in a different order (column {first + 1} is {actual[first]!r}, "
                     f"expected {expected[first]!r})")
    return "; ".join(parts)


def _some(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def stats_from_record(count: int, sums: Sequence[float], squares: Sequence[float]) -> FeatureStats:
    return FeatureStats(int(count), np.asarray(sums, dtype=np.float64), np.asarray(squares, dtype=np.float64))
