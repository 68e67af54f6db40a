"""SecAgg+: the server gets FedAvg's aggregate, and never one client's update in the clear."""

import json
from pathlib import Path

import numpy as np
import pytest
from flwr.common import bytes_to_ndarray

from fedge.config import ConfigError, RunConfig
from fedge.model import load_model
from fedge.secagg import CLIPPING_RANGE, QUANTIZATION_RANGE
from tests.inprocess import InProcessGrid, run_federation

ONE_ROUND = dict(clients=4, num_rounds=1, local_epochs=1)


def test_aggregate_equals_fedavg_within_quantisation_error(tmp_path: Path):
    plain = run_federation(RunConfig(**ONE_ROUND), tmp_path / "plain")
    secure = run_federation(RunConfig(secagg=True, **ONE_ROUND), tmp_path / "secure")
    a = load_model(tmp_path / "plain" / "model.pt").state_dict
    b = load_model(tmp_path / "secure" / "model.pt").state_dict
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert 0 < worst <= 2 * CLIPPING_RANGE / QUANTIZATION_RANGE * ONE_ROUND["clients"]
    assert secure[0]["train-clients"] == 4 and secure[0]["train-failures"] == 0
    assert secure[0]["train-loss"] == pytest.approx(plain[0]["train-loss"])
    assert secure[0]["test-accuracy"] == pytest.approx(plain[0]["test-accuracy"], abs=1e-3)


def test_server_receives_only_masked_vectors(tmp_path: Path):
    cfg = RunConfig(secagg=True, **ONE_ROUND)
    grid = InProcessGrid(cfg.replace(min_clients=cfg.clients))
    run_federation(cfg, tmp_path, grid)
    train = [r for r in grid.replies if r.metadata.message_type == "train"]
    assert len(train) == 4 * 4  # four SecAgg+ stages, four clients
    assert all(len(record) == 0 for r in train for record in r.content.array_records.values())
    masked = [r.content.config_records["secaggplus_configs"]["masked_params"] for r in train
              if "masked_params" in r.content.config_records["secaggplus_configs"]]
    assert len(masked) == 4
    for vectors in masked:
        values = np.concatenate([bytes_to_ndarray(v).ravel() for v in vectors[1:]]).astype(np.float64)
        # quantised plain weights sit near QUANTIZATION_RANGE / 2 = 2^21; masked ones are uniform in [0, 2^32)
        assert 0.45 < values.mean() / 2**32 < 0.55
    audit = [json.loads(line) for line in (tmp_path / "replies.jsonl").read_text().splitlines()]
    assert all(entry.get("fitres.parameters", {}) == {} for entry in audit if entry["type"] == "train")


def test_secagg_refuses_what_it_cannot_combine():
    with pytest.raises(ConfigError) as err:
        RunConfig(secagg=True, strategy="fedadam").validate()
    assert str(err.value) == ("--secagg true works with --strategy fedavg and --dp none only: Flower's SecAgg+ "
                              "workflow drives its own FedAvg, and the server never sees single updates to clip")
    with pytest.raises(ConfigError) as err:
        RunConfig(secagg=True, min_clients=1).validate()
    assert str(err.value) == ("--secagg true needs at least 2 clients per round (--min-clients, or --clients "
                              "in a simulation): a sum over one client is that client's update")
