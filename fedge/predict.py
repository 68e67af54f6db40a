"""`fedge predict`: class probabilities for a CSV file from an exported ONNX model.

Runs on ONNX Runtime and imports only numpy, onnxruntime and light fedge modules (no
torch, no Flower), so it works on a device that cannot install them.  The CSV's
columns are matched to the model's features by name, in any order.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, InvalidProtobuf

from fedge.data import DataError, parse_number, read_csv, user_file
from fedge.onnx_format import INPUT, OUTPUT, WEIGHTS_KEY, ModelFileError, read_metadata
from fedge.results import write_atomic


class EdgeModel:
    """An exported model on ONNX Runtime, with the features and classes it was trained on.

    Tuned for one sample per call, a device's usual load (2NN, one thread, µs a call):
    float weights run faster unpacked (17.0 -> 15.7) and int8 ones only pre-packed
    (10.7 against 19.6), so the session is built for the weights the file says it holds;
    and a call goes straight to ONNX Runtime's binding with one reused RunOptions: the
    public `run` re-checks the feed on every call (1.3-1.6 µs) after `predict_proba`
    has checked it, and without RunOptions the binding builds one per call (1.2 µs).
    """

    def __init__(self, path: Path, threads: int = 0) -> None:
        """`threads`: ONNX Runtime's intra-op threads; 0 lets it choose."""
        self.session = _session(path, threads, prepack=False)
        props = self.session.get_modelmeta().custom_metadata_map
        self.feature_names, self.classes = read_metadata(props, str(path))
        if props.get(WEIGHTS_KEY) != "float32":  # int8, or written before fedge recorded it
            self.session = _session(path, threads, prepack=True)
        self._run = getattr(self.session, "_sess", self.session).run  # the public run if ORT renames it
        self._run_options = ort.RunOptions()

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probabilities, shape (rows, classes), for raw (unscaled) features in feature order."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != len(self.feature_names):
            raise ValueError(f"features must have shape (rows, {len(self.feature_names)}), "
                             f"got {features.shape}")
        return self._run([OUTPUT], {INPUT: features}, self._run_options)[0]


def _session(path: Path, threads: int, prepack: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.disable_prepacking", "0" if prepack else "1")
    with user_file(path):
        try:
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except (Fail, InvalidGraph, InvalidProtobuf) as err:
            raise ModelFileError(f"{path}: not an ONNX model ONNX Runtime can load ({err}); "
                                 "write one with `fedge export RUN --format onnx`") from None


def predict_file(model_path: Path, data_path: Path, out: Path | None, label_column: str) -> int:
    """Write one prediction row per data row to `out` (stdout if None); return the row count."""
    if out is not None and out.resolve() == data_path.resolve():
        raise DataError(f"{out}: --out names the input data file; choose another file for predictions")
    model = EdgeModel(model_path)
    features = read_features(data_path, model.feature_names, label_column)
    text = predictions_csv(model.classes, model.predict_proba(features))
    if out is None:
        sys.stdout.write(text)
    else:
        write_atomic(out, text)
    return len(features)


def read_features(path: Path, feature_names: Sequence[str], label_column: str) -> np.ndarray:
    """The CSV's feature columns, found by name and put in model order; float32."""
    with user_file(path):
        header, rows = read_csv(path)
    columns = _feature_columns(path, header, feature_names, label_column)
    features = np.empty((len(rows), len(columns)), dtype=np.float32)
    for r, (line_no, row) in enumerate(rows):
        features[r] = [parse_number(path, line_no, header[c], c + 1, row[c]) for c in columns]
    return features


def _feature_columns(path: Path, header: list[str], feature_names: Sequence[str],
                     label_column: str) -> list[int]:
    """Index in `header` of each feature; any other column except the label is an error."""
    position: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in position:
            raise DataError(f"{path}, line 1, column {i + 1} ({name!r}): same name as column "
                            f"{position[name] + 1}; give every column a distinct name")
        position[name] = i
    missing = [name for name in feature_names if name not in position]
    if missing:
        shown = ", ".join(map(repr, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        plural = "s" if len(missing) > 1 else ""
        raise DataError(f"{path}, line 1: no column for feature{plural} {shown}; the model needs all "
                        f"{len(feature_names)} features it was trained on, as named columns in any order")
    features = set(feature_names)
    for i, name in enumerate(header):
        if name not in features and name != label_column:
            raise DataError(f"{path}, line 1, column {i + 1} ({name!r}): not a feature of the model; "
                            "remove the column, or name it with --label-column if it holds labels")
    return [position[name] for name in feature_names]


def predictions_csv(classes: Sequence[str], probabilities: np.ndarray) -> str:
    """Header `prediction,prob_<class>...`, then the most likely class and every probability."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["prediction", *(f"prob_{c}" for c in classes)])
    for row in probabilities:
        writer.writerow([classes[int(row.argmax())], *(f"{p:.6g}" for p in row)])
    return buffer.getvalue()
