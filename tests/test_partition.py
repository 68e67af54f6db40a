import numpy as np
import pytest

from fedge.data import DataError
from fedge.partition import _cached_partitions, partition_rows


@pytest.fixture(scope="module")
def labels(digits):
    return digits[0].labels


def _parts(labels, n, method, seed=0, **kw):
    return [partition_rows(labels, n, i, method, seed=seed, **kw) for i in range(n)]


@pytest.mark.parametrize("method,kw", [("iid", {}), ("dirichlet", {"alpha": 0.1}), ("dirichlet", {"alpha": 1.0})])
def test_partitions_are_disjoint_and_cover_the_data(labels, method, kw):
    parts = _parts(labels, 20, method, **kw)
    rows = np.concatenate(parts)
    assert len(rows) == len(set(rows.tolist())) == len(labels)
    assert min(len(p) for p in parts) >= 1


def test_shards_are_disjoint_and_give_each_client_few_labels(labels):
    parts = _parts(labels, 50, "shards", shards_per_client=2)
    rows = np.concatenate(parts)
    assert len(rows) == len(set(rows.tolist())) == len(labels)
    assert max(len(set(labels[p])) for p in parts) <= 2 * 2  # a shard can straddle one label boundary
    assert np.mean([len(set(labels[p])) for p in parts]) <= 2.5


def test_same_seed_same_partitions_other_seed_other_partitions(labels):
    for method in ("iid", "dirichlet", "shards"):
        a = _parts(labels, 10, method, seed=1)
        _cached_partitions.cache_clear()
        b = _parts(labels, 10, method, seed=1)
        c = _parts(labels, 10, method, seed=2)
        assert all(np.array_equal(x, y) for x, y in zip(a, b)), method
        assert not all(np.array_equal(x, y) for x, y in zip(a, c)), method


def _label_skew(labels, parts) -> float:
    """Mean total-variation distance between a client's label mix and the global mix."""
    classes = sorted(set(labels))
    overall = np.array([np.mean(labels == c) for c in classes])
    return float(np.mean([0.5 * np.abs(np.array([np.mean(labels[p] == c) for c in classes]) - overall).sum()
                          for p in parts]))


def test_non_iid_partitions_are_actually_skewed(labels):
    iid = _label_skew(labels, _parts(labels, 10, "iid"))
    dirichlet = _label_skew(labels, _parts(labels, 10, "dirichlet", alpha=0.1))
    shards = _label_skew(labels, _parts(labels, 10, "shards"))
    assert iid < 0.1
    assert dirichlet > 0.5 and shards > 0.6


def test_small_alpha_over_many_clients_leaves_nobody_empty(labels):
    parts = _parts(labels, 100, "dirichlet", alpha=0.01)
    assert min(len(p) for p in parts) == 1
    assert len(np.concatenate(parts)) == len(labels)


def test_impossible_partitions_say_what_to_change(labels):
    with pytest.raises(DataError, match="2000 clients but only 1437 training rows: every client needs at least "
                                        "one row; use --clients 1437 or fewer"):
        partition_rows(labels, 2000, 0, "iid")
    with pytest.raises(DataError, match="partition-id 10 is outside 0..9"):
        partition_rows(labels, 10, 10, "iid")
    with pytest.raises(DataError, match="1000 clients × 2 shards needs at least 2000 rows; there are 1437"):
        partition_rows(labels, 1000, 0, "shards")


def test_iid_is_what_flwr_datasets_iid_partitioner_makes_of_the_shuffled_rows(labels):
    import datasets
    from flwr_datasets.partitioner import IidPartitioner

    order = np.random.default_rng(3).permutation(len(labels))
    partitioner = IidPartitioner(num_partitions=7)
    partitioner.dataset = datasets.Dataset.from_dict({"row": order})
    theirs = [np.asarray(partitioner.load_partition(i)["row"]) for i in range(7)]
    ours = _parts(labels, 7, "iid", seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))
