import numpy as np
import pytest

from fedge.data import FeatureStats
from fedge.schema import ClientReport, SchemaError, agree, feature_difference


def _report(node, names=("a", "b"), labels=("x", "y"), rows=((1.0, 2.0), (3.0, 4.0))):
    return ClientReport(node, tuple(names), frozenset(labels), FeatureStats.of(np.array(rows)))


def test_clients_agree_on_features_classes_and_a_pooled_scaler():
    schema = agree([_report(1), _report(2, labels=("y", "z"), rows=((5.0, 6.0),))])
    assert schema.feature_names == ("a", "b") and schema.classes == ("x", "y", "z")
    assert schema.accepted == (1, 2) and schema.refused == {}
    np.testing.assert_allclose(schema.scaler.mean, [3.0, 4.0])


def test_a_client_with_other_features_is_refused_with_the_difference():
    schema = agree([_report(1), _report(2), _report(3, names=("a", "c"))])
    assert schema.accepted == (1, 2)
    assert schema.refused == {3: "missing 'b'; unexpected 'c'"}


def test_feature_differences_are_spelled_out():
    assert feature_difference(("a", "b"), ("a", "b")) == ""
    assert feature_difference(("a", "b"), ("a", "b", "c")) == "3 features where the run has 2; unexpected 'c'"
    assert feature_difference(("a", "b"), ("b", "a")) == ("columns in a different order (column 1 is 'b', "
                                                          "expected 'a')")


def test_given_classes_refuse_clients_with_unknown_labels():
    schema = agree([_report(1), _report(2, labels=("x", "q"))], classes=("x", "y"))
    assert schema.classes == ("x", "y")
    assert schema.refused == {2: "labels q are not among the run's classes (x, y)"}


def test_server_test_data_sets_the_reference_features():
    schema = agree([_report(1, names=("a", "c")), _report(2, names=("a", "c")), _report(3)],
                   expected_features=("a", "b"))
    assert schema.accepted == (3,)


def test_no_usable_client_is_an_error_that_names_them():
    with pytest.raises(SchemaError, match="every client was refused: node 1: 1 features where the run has 2; missing 'b'"):
        agree([_report(1, names=("a",))], expected_features=("a", "b"))
    with pytest.raises(SchemaError, match="hold only the class 'x'"):
        agree([_report(1, labels=("x",))])
