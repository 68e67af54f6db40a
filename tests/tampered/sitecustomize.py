"""Test-only: turns the device that starts with this folder on PYTHONPATH into a tampered one.

Python imports `sitecustomize` when any process starts, so the device's SuperNode and
every ClientApp process it spawns load this, the way a modified install on a real
device would change its code.  fedge's product code holds no test switch: the server
has to catch the tampered replies on its own.  FEDGE_TAMPER picks the fault.
"""

import os
import time

import numpy as np
from flwr.app import Array

import fedge.client

FAULTS = {
    "nan": lambda arrays, metrics: arrays.__setitem__(
        next(iter(arrays)), Array(np.full(arrays[next(iter(arrays))].shape, np.nan, np.float32))),
    "zero-examples": lambda arrays, metrics: metrics.__setitem__("num-examples", 0),
    "slow": lambda arrays, metrics: time.sleep(float(os.environ.get("FEDGE_TAMPER_SECONDS", "30"))),
}

_honest = fedge.client.train_reply


def _tampered(*args, **kwargs):
    reply = _honest(*args, **kwargs)
    FAULTS[os.environ["FEDGE_TAMPER"]](reply["arrays"], reply["metrics"])
    return reply


if os.environ.get("FEDGE_TAMPER"):
    fedge.client.train_reply = _tampered
