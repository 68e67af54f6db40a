"""`fedge predict`: ONNX Runtime only, columns matched by name, bad CSVs named precisely."""

import csv
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import fedge
from fedge.cli import main
from fedge.data import load_builtin
from fedge.model import TrainedModel

BLOCKED = ("torch", "flwr", "onnx", "sklearn")  # a device has numpy and onnxruntime only
# What the predict path may import besides the standard library: fedge, numpy, ONNX Runtime and
# the packages ONNX Runtime itself requires (as their top-level modules).
DEVICE_DISTRIBUTIONS = {"numpy", "onnxruntime", *(
    re.split(r"[ ;<>=!~\[]", requirement)[0].lower().replace("-", "_")
    for requirement in importlib.metadata.requires("onnxruntime") or [] if "extra ==" not in requirement)}
DEVICE_MODULES = {"fedge", "__main__", "_distutils_hack"} | {  # the last two: Python's and setuptools' own
    module for module, distributions in importlib.metadata.packages_distributions().items()
    if any(d.lower().replace("-", "_") in DEVICE_DISTRIBUTIONS for d in distributions)}


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def _digits_csv(path: Path, n_rows: int | None = None) -> Path:
    """The digits test set with its columns reversed and the label column in the middle."""
    _, test = load_builtin("digits")
    names = list(reversed(test.feature_names))
    header = names[:30] + ["label"] + names[30:]
    order = [test.feature_names.index(n) for n in names]
    rows = [[f"{v:g}" for v in x[order][:30]] + [y] + [f"{v:g}" for v in x[order][30:]]
            for x, y in zip(test.features[:n_rows], test.labels[:n_rows])]
    return _write_csv(path, header, rows)


def _read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_predict_runs_without_torch(onnx_float: Path, digits_model: TrainedModel, tmp_path: Path) -> None:
    data, out = _digits_csv(tmp_path / "device.csv"), tmp_path / "preds.csv"
    code = (f"import sys\nfor name in {BLOCKED!r}: sys.modules[name] = None\n"
            "from fedge.cli import main\n"
            f"rc = main(['predict', '--model', {str(onnx_float)!r}, '--data', {str(data)!r}, '--out', {str(out)!r}])\n"
            f"assert not [m for m in {BLOCKED!r} if sys.modules[m] is not None]\n"
            "top = {name.split('.')[0] for name, module in sys.modules.items() if module is not None}\n"
            f"extra = sorted(top - set(sys.stdlib_module_names) - set({sorted(DEVICE_MODULES)!r}))\n"
            "extra = [m for m in extra if not m.startswith('__editable___fedge')]  # pip's editable-install hook\n"
            "assert not extra, f'imported beyond numpy and onnxruntime: {extra}'\n"
            "sys.exit(rc)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(fedge.__file__).parents[1])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    _, test = load_builtin("digits")
    assert result.stdout == f"fedge: wrote {len(test)} predictions to {out}\n"
    rows = _read_rows(out)
    assert rows[0] == ["prediction"] + [f"prob_{d}" for d in range(10)]
    assert len(rows) == len(test) + 1
    assert [r[0] for r in rows[1:]] == digits_model.predict(test.features).tolist()
    np.testing.assert_allclose(np.array([r[1:] for r in rows[1:]], dtype=float),
                               digits_model.predict_proba(test.features), atol=1e-5)


def test_predictions_to_stdout_without_label(onnx_int8: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    _, test = load_builtin("digits")
    data = _write_csv(tmp_path / "x.csv", list(test.feature_names), [[f"{v:g}" for v in test.features[0]]])
    assert main(["predict", "--model", str(onnx_int8), "--data", str(data)]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header == "prediction," + ",".join(f"prob_{d}" for d in range(10))
    assert row.split(",")[0] == test.labels[0]


def _bad(tmp_path: Path, case: str) -> tuple[Path, str]:
    """A digits CSV broken in one way, and the error `fedge predict` must give for it."""
    path = _digits_csv(tmp_path / f"{case}.csv", n_rows=5)
    header, *rows = _read_rows(path)
    if case == "missing column":
        at = header.index("pixel_0_5")
        header, rows = header[:at] + header[at + 1:], [r[:at] + r[at + 1:] for r in rows]
        message = ("line 1: no column for feature 'pixel_0_5'; the model needs all 64 features it was "
                   "trained on, as named columns in any order")
    elif case == "extra column":
        header, rows = header + ["temperature"], [r + ["21.5"] for r in rows]
        message = ("line 1, column 66 ('temperature'): not a feature of the model; remove the column, "
                   "or name it with --label-column if it holds labels")
    else:
        cell = {"non-numeric cell": "abc", "NaN": "nan", "Inf": "-inf"}[case]
        rows[2][header.index("pixel_3_4")] = cell
        column = header.index("pixel_3_4") + 1
        kind = "a number" if case == "non-numeric cell" else "a finite number"
        message = f"line 4, column {column} ('pixel_3_4'): '{cell}' is not {kind}"
    _write_csv(path, header, rows)
    return path, f"{path}, {message}"


@pytest.mark.parametrize("case", ["missing column", "extra column", "non-numeric cell", "NaN", "Inf"])
def test_bad_csv_gets_one_clear_error(case: str, onnx_float: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    data, message = _bad(tmp_path, case)
    before, out = data.read_bytes(), tmp_path / "preds.csv"
    assert main(["predict", "--model", str(onnx_float), "--data", str(data), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"fedge predict: error: {message}\n"
    assert data.read_bytes() == before
    assert not out.exists()


def test_model_without_fedge_metadata(onnx_float: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    proto = onnx.load(onnx_float)
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, bare)
    data = _digits_csv(tmp_path / "x.csv", n_rows=2)
    assert main(["predict", "--model", str(bare), "--data", str(data)]) == 2
    assert capsys.readouterr().err == (
        f"fedge predict: error: {bare}: no fedge metadata (feature names and classes) in this ONNX file; "
        "write it with `fedge export RUN --format onnx`\n")


def test_model_that_is_not_onnx(digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _digits_csv(tmp_path / "x.csv", n_rows=2)
    assert main(["predict", "--model", str(digits_run / "model.pt"), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fedge predict: error: {digits_run / 'model.pt'}: not an ONNX model ONNX Runtime "
                          "can load (")
    assert err.endswith("); write one with `fedge export RUN --format onnx`\n")


def test_out_must_not_overwrite_data(onnx_float: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _digits_csv(tmp_path / "x.csv", n_rows=2)
    before = data.read_bytes()
    assert main(["predict", "--model", str(onnx_float), "--data", str(data), "--out", str(data)]) == 2
    assert capsys.readouterr().err == (f"fedge predict: error: {data}: --out names the input data file; "
                                       "choose another file for predictions\n")
    assert data.read_bytes() == before


def test_edge_model_refuses_features_of_the_wrong_width(onnx_float: Path) -> None:
    from fedge.predict import EdgeModel

    with pytest.raises(ValueError, match=r"^features must have shape \(rows, 64\), got \(3, 63\)$"):
        EdgeModel(onnx_float).predict_proba(np.zeros((3, 63), dtype=np.float32))


def test_edge_model_predicts_the_same_from_many_threads(onnx_float: Path) -> None:
    """A device may serve predictions from several threads with one loaded model."""
    from concurrent.futures import ThreadPoolExecutor

    from fedge.predict import EdgeModel

    _, test = load_builtin("digits")
    model = EdgeModel(onnx_float)
    rows = [test.features[i:i + 1 + i % 5] for i in range(200)]  # batches of 1 to 5 rows
    expected = [model.predict_proba(r) for r in rows]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(model.predict_proba, rows))
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
