"""What a device sends: only schema, additive statistics, model-shaped arrays and scalars."""

from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedge import client
from fedge.config import RunConfig
from fedge.data import DataError, FeatureStats, Scaler, load_file
from fedge.model import ModelSpec, build
from fedge.refusal import REFUSAL, REPORT_FILE

CFG = RunConfig(hidden=(16,), local_epochs=1)


def _round_content(table, classes, seed=0) -> RecordDict:
    scaler = Scaler.from_stats(FeatureStats.of(table.features))
    net = build(ModelSpec(table.features.shape[1], CFG.hidden, len(classes)), seed)
    return RecordDict({"arrays": ArrayRecord(net.state_dict()),
                       "config": ConfigRecord({"scaler-mean": scaler.mean.tolist(), "scaler-std": scaler.std.tolist(),
                                               "classes": list(classes), "server-round": 1})})


def test_data_source_comes_from_the_node_config(digits_csv: Path):
    assert client.data_source({"data-path": str(digits_csv)}, CFG).path == str(digits_csv)
    source = client.data_source({"partition-id": 2, "num-partitions": 5}, CFG)
    assert (source.dataset, source.partition_id, source.num_partitions) == ("digits", 2, 5)
    with pytest.raises(DataError, match="this client has no data: give it a file"):
        client.data_source({}, CFG.replace(dataset=""))


def test_query_reply_holds_schema_and_sums_not_rows(digits_csv: Path):
    source = client.data_source({"data-path": str(digits_csv)}, CFG)
    reply = client.query_reply(source)
    assert set(reply) == {"schema", "stats"}
    table = load_file(digits_csv)
    assert reply["schema"]["feature-names"] == list(table.feature_names)
    assert reply["schema"]["labels"] == sorted(set(table.labels.tolist()))
    stats = reply["stats"]
    assert stats["num-examples"] == 60
    np.testing.assert_allclose(stats["sums"], table.features.astype(np.float64).sum(axis=0))
    assert len(stats["sums"]) == len(stats["squares"]) == 64


def test_train_reply_holds_only_model_shaped_arrays_and_scalars(digits_csv: Path):
    source = client.data_source({"data-path": str(digits_csv)}, CFG)
    classes = tuple(str(i) for i in range(10))
    content = _round_content(load_file(digits_csv), classes)
    reply = client.train_reply(content, source, CFG)
    assert set(reply) == {"arrays", "metrics"}
    sent = {k: tuple(v.shape) for k, v in content["arrays"].items()}
    got = {k: tuple(v.shape) for k, v in reply["arrays"].items()}
    assert got == sent == {"0.weight": (16, 64), "0.bias": (16,), "2.weight": (10, 16), "2.bias": (10,)}
    assert isinstance(reply["metrics"], MetricRecord)
    assert reply["metrics"]["num-examples"] == 54  # 60 rows less the 10% held out for validation
    assert all(isinstance(v, (int, float)) for v in reply["metrics"].values())
    changed = [not torch.equal(a, b) for a, b in zip(content["arrays"].to_torch_state_dict().values(),
                                                      reply["arrays"].to_torch_state_dict().values())]
    assert all(changed)


def test_train_reply_first_evaluates_the_incoming_model(digits_csv: Path):
    source = client.data_source({"data-path": str(digits_csv)}, CFG)
    content = _round_content(load_file(digits_csv), tuple(str(i) for i in range(10)))
    trained = client.train_reply(content, source, CFG)["metrics"]
    evaluated = client.evaluate_reply(content, source, CFG)["metrics"]
    assert evaluated["num-examples"] == evaluated["eval-examples"] == trained["eval-examples"] == 6
    assert trained["eval-loss"] == evaluated["eval-loss"] > 0
    assert trained["eval-accuracy"] == evaluated["eval-accuracy"] <= 0.5  # an untrained model


def test_labels_outside_the_run_classes_are_refused_with_file_and_row(digits_csv: Path):
    source = client.data_source({"data-path": str(digits_csv)}, CFG)
    content = _round_content(load_file(digits_csv), ("0", "1"))
    with pytest.raises(DataError, match=r"device.csv, data row \d+: label '\d' is not one of the run's classes \(0, 1\)"):
        client.train_reply(content, source, CFG)


def _refusal(reason: str, classes) -> RecordDict:
    return RecordDict({REFUSAL: ConfigRecord({"reason": reason, "classes": list(classes)})})


def test_a_refused_device_writes_why_in_terms_of_its_own_file(digits_csv: Path, tmp_path: Path):
    source = client.data_source({"data-path": str(digits_csv)}, CFG)
    report = tmp_path / "refused.txt"
    assert client.refusal_reply(_refusal("64 features where the run has 3", map(str, range(10))), source,
                                {REPORT_FILE: str(report)}) == RecordDict()
    assert report.read_text() == f"{digits_csv}: the server refused this device: 64 features where the run has 3\n"


def test_a_device_refused_for_its_labels_is_told_the_first_row(digits_csv: Path, tmp_path: Path):
    source = client.data_source({"data-path": str(digits_csv)}, CFG)
    report = tmp_path / "refused.txt"
    client.refusal_reply(_refusal("labels 2, 3 are not among the run's classes", ("0", "1")), source,
                         {REPORT_FILE: str(report)})
    row = next(i for i, label in enumerate(load_file(digits_csv).labels) if label not in ("0", "1"))
    label = load_file(digits_csv).labels[row]
    assert report.read_text() == (f"{digits_csv}, data row {row + 1}: label '{label}' is not one of the run's "
                                  "classes (0, 1); the server refused this device\n")


def test_the_supernode_waits_at_most_the_poll_interval(monkeypatch):
    from fedge import supernode

    slept: list[float] = []
    monkeypatch.setattr(supernode.time, "sleep", slept.append)
    capped = supernode.CappedSleep(1.0)
    capped.sleep(3)  # Flower's idle wait
    capped.sleep(0.5)  # its wait for a reply
    assert slept == [1.0, 0.5]
    assert capped.monotonic is supernode.time.monotonic  # everything else is the real time module


def test_flowers_supernode_loop_still_sleeps_through_its_time_module():
    """fedge.supernode relies on this; a Flower upgrade that changes it must fail here, not slow rounds."""
    import inspect

    from fedge import supernode

    source = inspect.getsource(supernode.supernode_loop)
    assert "\nimport time\n" in source and "time.sleep(3)" in source


def test_the_client_app_pickles_as_a_reference_to_the_module_app() -> None:
    """Flower's simulation engine pickles the app along with every message (see clients.app)."""
    import ray.cloudpickle

    from clients.app import app

    data = ray.cloudpickle.dumps(app)
    assert ray.cloudpickle.loads(data) is app and len(data) < 100
