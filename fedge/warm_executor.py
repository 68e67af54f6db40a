"""A SuperExec for a device that forks each ClientApp from a warm parent process.

Flower 1.42 runs every message a SuperNode receives in a fresh `flwr-clientapp`
process: it re-imports torch and Flower, reloads the device's data and pays torch's
first-call cost, seconds per message on an edge CPU.  With `flower-supernode
--isolation process`, the SuperNode leaves launching to an outside SuperExec; this
one is Flower's own SuperExec loop (`run_superexec`) with one part swapped: its
executor forks a child of a parent that has already imported everything, loaded the
data and run one training step.  The child then runs Flower's own
`run_clientapp` for the task, exactly as the cold process would.

The child reuses the ClientApp module the parent imported (Flower's loader takes a
module already in `sys.modules`), so a device runs its own installed fedge.

Run by `fedge client`; by hand:
    python -m fedge.warm_executor --runtime-api-address 127.0.0.1:9094 --node-config '{"data-path": "d.csv"}'
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from flwr.supercore.constant import TaskType
from flwr.supercore.superexec import run_superexec as superexec
from flwr.supercore.superexec.executor.subprocess_executor import SubprocessExecutor
from flwr.supercore.superexec.executor.types import ExecutionSpec, LaunchResult


class ForkingExecutor(SubprocessExecutor):
    """Fork ClientApp tasks from this warm process; anything else as Flower would."""

    def __init__(self) -> None:
        self.children: set[int] = set()

    def launch(self, spec: ExecutionSpec) -> LaunchResult:
        if spec.task_type != TaskType.CLIENT_APP:
            return super().launch(spec)
        pid = os.fork()
        if pid == 0:
            os._exit(_run_task(spec))
        self.children.add(pid)
        return LaunchResult.accepted()

    def reconcile(self) -> None:
        """Reap finished children so they do not linger as zombies."""
        for pid in list(self.children):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                self.children.discard(pid)


def _run_task(spec: ExecutionSpec) -> int:
    """In the forked child: Flower's ClientApp runner for this one task, then exit."""
    from flwr.supernode.runtime.run_clientapp import run_clientapp

    try:
        run_clientapp(runtime_api_address=spec.runtime_api_address, token=spec.token,
                      insecure=spec.insecure, parent_pid=spec.parent_pid,
                      runtime_dependency_install=False)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    except BaseException:  # noqa: BLE001 - a child must never return into the parent's loop
        return 1
    return 0


def warm_up(node_config: dict[str, str | int]) -> None:
    """Import the ClientApp, load this device's data and run one training step, once."""
    import numpy as np

    import clients.app  # noqa: F401 - imports torch and Flower's app API
    from fedge import client
    from fedge.config import RunConfig
    from fedge.model import ModelSpec, build
    from fedge.training import TrainSettings, fit

    rows = client.local_data(client.data_source(node_config, RunConfig())).train
    width = rows.features.shape[1]
    fit(build(ModelSpec(width, (8,), 2)), np.zeros((4, width), np.float32), np.array([0, 1, 0, 1]),
        TrainSettings(batch_size=4))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Warm SuperExec for `flower-supernode --isolation process`")
    parser.add_argument("--runtime-api-address", required=True, help="the SuperNode's runtime API HOST:PORT")
    parser.add_argument("--node-config", required=True, help="the SuperNode's node config, as JSON")
    parser.add_argument("--parent-pid", type=int, help="exit when this process (the SuperNode) exits")
    args = parser.parse_args(argv)
    warm_up(json.loads(args.node_config))
    superexec.get_executor = lambda *_, **__: ForkingExecutor()
    superexec.run_superexec(runtime_api_address=args.runtime_api_address, insecure=True,
                            parent_pid=args.parent_pid)


if __name__ == "__main__":
    sys.exit(main())
