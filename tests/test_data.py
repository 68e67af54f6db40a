from pathlib import Path

import numpy as np
import pytest

from fedge.data import DataError, FeatureStats, Scaler, encode_labels, load_builtin, load_file, sorted_classes
from tests.conftest import write_csv


@pytest.mark.parametrize("name,rows,features,classes", [
    ("iris", 150, 4, 3), ("wine", 178, 13, 3), ("breast-cancer", 569, 30, 2), ("digits", 1797, 64, 10)])
def test_builtin_split_is_fixed_and_stratified(name, rows, features, classes):
    train, test = load_builtin(name)
    assert len(train) + len(test) == rows
    assert train.features.shape[1] == test.features.shape[1] == features
    assert len(set(train.labels)) == len(set(test.labels)) == classes
    assert abs(len(test) - round(rows * 0.2)) <= 1
    load_builtin.cache_clear()
    again, _ = load_builtin(name)
    np.testing.assert_array_equal(again.features, train.features)


def test_federated_scaler_equals_pooled_scaler(digits):
    train, _ = digits
    pieces = np.array_split(np.random.default_rng(0).permutation(len(train)), 7)
    total = FeatureStats.of(train.features[pieces[0]])
    for rows in pieces[1:]:
        total = total + FeatureStats.of(train.features[rows])
    federated = Scaler.from_stats(total)
    pooled = train.features.astype(np.float64)
    std = pooled.std(axis=0)
    np.testing.assert_allclose(federated.mean, pooled.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(federated.std, np.where(std > 1e-12, std, 1.0), atol=1e-6)
    np.testing.assert_allclose(federated.transform(train.features),
                               (pooled - pooled.mean(axis=0)) / np.where(std > 1e-12, std, 1.0), atol=1e-5)


def test_csv_round_trip_keeps_features_labels_and_names(tmp_path: Path, digits):
    train, _ = digits
    table = load_file(write_csv(tmp_path / "d.csv", train.take(np.arange(30))))
    np.testing.assert_allclose(table.features, train.features[:30])
    assert table.labels.tolist() == train.labels[:30].tolist()
    assert table.feature_names == train.feature_names


def test_npz_file_is_read(tmp_path: Path):
    np.savez(tmp_path / "d.npz", x=np.arange(6.0).reshape(3, 2), y=np.array(["a", "b", "a"]))
    table = load_file(tmp_path / "d.npz")
    assert table.features.shape == (3, 2) and table.labels.tolist() == ["a", "b", "a"]
    assert table.feature_names == ("x0", "x1")


def _bad(tmp_path: Path, text: str, name: str = "bad.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as err:
        load_file(path)
    assert path.read_text() == text  # the user's file is never modified
    return str(err.value).replace(str(tmp_path) + "/", "")


def test_bad_csv_files_get_errors_naming_file_line_and_column(tmp_path: Path):
    assert _bad(tmp_path, "") == "bad.csv: file is empty; expected a header row and data rows"
    assert _bad(tmp_path, "a,b,label\n") == "bad.csv: no data rows after the header"
    assert _bad(tmp_path, "a,b,y\n1,2,0\n") == ("bad.csv, line 1: no label column 'label'; columns are a, b, y. "
                                                "Name the label column with --label-column.")
    assert _bad(tmp_path, "a,b,label\n1,2,0\n1,x,1\n") == "bad.csv, line 3, column 2 ('b'): 'x' is not a number"
    assert _bad(tmp_path, "a,b,label\n1,nan,0\n") == "bad.csv, line 2, column 2 ('b'): 'nan' is not a finite number"
    assert _bad(tmp_path, "a,b,label\n1,inf,0\n") == "bad.csv, line 2, column 2 ('b'): 'inf' is not a finite number"
    assert _bad(tmp_path, "a,b,label\n1,2\n") == "bad.csv, line 2: 2 fields, expected 3 (as in the header)"


def test_missing_and_unreadable_files(tmp_path: Path):
    with pytest.raises(DataError, match="nope.csv: file does not exist"):
        load_file(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="not a file"):
        load_file(tmp_path)
    (tmp_path / "bin.csv").write_bytes(b"a,label\n\xff\xfe,1\n")
    with pytest.raises(DataError, match="not a text CSV file"):
        load_file(tmp_path / "bin.csv")


def test_bad_npz_files(tmp_path: Path):
    np.savez(tmp_path / "a.npz", x=np.ones((2, 2)))
    with pytest.raises(DataError, match="NPZ needs arrays 'x' and 'y'; missing y"):
        load_file(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x=np.array([[1.0, np.nan]]), y=np.array([0]))
    with pytest.raises(DataError, match=r"x\[0, 1\] \('x1'\) is nan, not a finite number"):
        load_file(tmp_path / "b.npz")


def test_labels_are_encoded_through_the_run_class_list():
    labels = np.array(["b", "a", "b"])
    assert encode_labels(labels, ("a", "b"), "f.csv").tolist() == [1, 0, 1]
    with pytest.raises(DataError) as err:
        encode_labels(np.array(["a", "c"]), ("a", "b"), "f.csv")
    assert str(err.value) == "f.csv, data row 2: label 'c' is not one of the run's classes (a, b)"


def test_classes_sort_numerically_when_numeric():
    assert sorted_classes({"10", "2", "1"}) == ("1", "2", "10")
    assert sorted_classes({"cat", "ant"}) == ("ant", "cat")


def test_label_column_may_stand_anywhere_and_blank_lines_are_skipped(tmp_path: Path):
    path = tmp_path / "data.csv"
    path.write_text("a,label,b\n1,x,2\n\n3,y,4\n")
    table = load_file(path)
    assert table.feature_names == ("a", "b")
    np.testing.assert_array_equal(table.features, [[1, 2], [3, 4]])
    assert table.labels.tolist() == ["x", "y"]
