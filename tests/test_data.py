"""`load_file` reads a device's CSV and names file, line and column when it cannot."""

from pathlib import Path

import numpy as np
import pytest

from fedge.data import DataError, load_file


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def test_reads_features_and_labels(tmp_path: Path) -> None:
    table = load_file(_csv(tmp_path, "a,label,b\n1,x,2\n\n3,y,4\n"))
    assert table.feature_names == ("a", "b")
    np.testing.assert_array_equal(table.features, [[1, 2], [3, 4]])
    assert table.labels.tolist() == ["x", "y"]


@pytest.mark.parametrize("text, message", [
    ("", "file is empty; expected a header row and data rows"),
    ("a,label\n\n", "no data rows after the header"),
    ("a,label\n1\n", "line 2: 1 fields, expected 2 (as in the header)"),
    ("a,b\n1,2\n", "line 1: no label column 'label'; columns are a, b. Name the label column with --label-column."),
    ("a,label\nzz,x\n", "line 2, column 1 ('a'): 'zz' is not a number"),
    ("a,label\n1,x\ninf,y\n", "line 3, column 1 ('a'): 'inf' is not a finite number"),
])
def test_bad_csv_names_where(tmp_path: Path, text: str, message: str) -> None:
    path = _csv(tmp_path, text)
    with pytest.raises(DataError) as err:
        load_file(path)
    assert str(err.value) in (f"{path}: {message}", f"{path}, {message}")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file does not exist"):
        load_file(tmp_path / "nope.csv")
