"""Model, data and loops, as in Flower's quickstart-pytorch task.py."""

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

_cache = {}


class Net(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def _digits():
    if "digits" not in _cache:
        x, y = load_digits(return_X_y=True)
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=42)
        scaler = StandardScaler().fit(x_train)
        _cache["digits"] = (scaler.transform(x_train).astype(np.float32), y_train,
                            scaler.transform(x_test).astype(np.float32), y_test)
    return _cache["digits"]


def load_data(partition_id: int, num_partitions: int):
    """This client's IID share: 90% to train on, 10% to evaluate on."""
    from flwr_datasets.partitioner import IidPartitioner
    import datasets

    x, y, _, _ = _digits()
    key = ("partitioner", num_partitions)
    if key not in _cache:
        order = np.random.default_rng(0).permutation(len(y))
        partitioner = IidPartitioner(num_partitions)
        partitioner.dataset = datasets.Dataset.from_dict({"row": order})
        _cache[key] = partitioner
    rows = np.asarray(_cache[key].load_partition(partition_id)["row"])
    n_val = len(rows) // 10
    return (torch.from_numpy(x[rows[n_val:]]), torch.from_numpy(y[rows[n_val:]]),
            torch.from_numpy(x[rows[:n_val]]), torch.from_numpy(y[rows[:n_val]]))


def test_data():
    _, _, x_test, y_test = _digits()
    return torch.from_numpy(x_test), torch.from_numpy(y_test)


def train(net, x, y, epochs: int, batch_size: int, lr: float) -> float:
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    net.train()
    total, steps = 0.0, 0
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for start in range(0, len(y), batch_size):
            batch = order[start:start + batch_size]
            loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
    return total / max(steps, 1)


def test(net, x, y) -> tuple[float, float]:
    net.eval()
    with torch.no_grad():
        logits = net(x)
        return (nn.functional.cross_entropy(logits, y).item(),
                (logits.argmax(1) == y).float().mean().item())
