"""Run fedge's ServerApp logic against the real ClientApp in one process, without Flower's engine.

Flower builds a `Message` only inside a runtime that has set the task identity; the
`federation` fixture sets it, and `InProcessGrid` delivers each message by calling
`clients.app.app` (mods included) with the context a simulated SuperNode would give.
Strategies, DP and metrics are then tested in seconds instead of one Ray start each.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from uuid import uuid4

from flwr.app import Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from clients.app import app as client_app
from fedge.config import RunConfig
from fedge.federation import serve
from fedge.results import read_metrics

RUN_ID = 7


class InProcessGrid:
    """The part of Flower's Grid that fedge uses, delivering messages to in-process clients."""

    def __init__(self, cfg: RunConfig) -> None:
        self.run_config = cfg.to_flower()
        self.nodes = list(range(1, cfg.clients + 1))
        self.states = {node: RecordDict() for node in self.nodes}
        self.replies: list[Message] = []  # everything the server received, for tests to inspect
        self._waiting: dict[str, Message] = {}  # replies not pulled yet, by the id of the message they answer

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        """Deliver each message at once; its reply waits for `pull_messages`, as on a SuperLink."""
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = str(uuid4())  # what Flower's grids do on push
            node = message.metadata.dst_node_id
            context = Context(run_id=RUN_ID, node_id=node, state=self.states[node], run_config=self.run_config,
                              node_config={"partition-id": node - 1, "num-partitions": len(self.nodes)})
            reply = client_app(copy.deepcopy(message), context)  # a transport hands each node its own copy
            self.replies.append(copy.deepcopy(reply))  # as it arrived: the server unpacks in place
            self._waiting[message.metadata.message_id] = reply
            ids.append(message.metadata.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        return [self._waiting.pop(i) for i in list(message_ids) if i in self._waiting]

    def send_and_receive(self, messages: Iterable[Message], timeout: float | None = None) -> list[Message]:
        return self.pull_messages(self.push_messages(messages))


def run_federation(cfg: RunConfig, run_dir: Path, grid: InProcessGrid | None = None) -> list[dict]:
    """Run every round of `cfg` in process; return the rows of metrics.json."""
    cfg = cfg.replace(min_clients=cfg.clients)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = RUN_ID, 0, 0
    try:
        serve(grid or InProcessGrid(cfg), cfg, run_dir)
    finally:
        TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = None
    return read_metrics(run_dir)
