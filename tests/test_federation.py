"""The server's round loop, in process: how it counts and names replies that went wrong."""

import json
import time
from pathlib import Path

from flwr.app import Error, Message
from flwr.common import Metadata

from fedge import federation
from fedge.config import RunConfig
from tests.inprocess import InProcessGrid, run_federation

SERVER_NODE = 0  # the node id Flower's grid puts on error replies it makes itself
LOST_UPLOAD = "Reply message objects are unavailable. The sender may not have completed the upload"


class LostUploadGrid(InProcessGrid):
    """Node 3's training replies arrive the way Flower reports an upload that never completed."""

    def pull_messages(self, message_ids):
        return [self._lost(reply) if reply.metadata.src_node_id == 3 and reply.metadata.message_type == "train"
                else reply for reply in super().pull_messages(message_ids)]

    @staticmethod
    def _lost(reply: Message) -> Message:
        metadata = Metadata(run_id=reply.metadata.run_id, message_id="", src_node_id=SERVER_NODE,
                            dst_node_id=SERVER_NODE, message_type="system", group_id="", ttl=0,
                            reply_to_message_id=reply.metadata.reply_to_message_id, created_at=time.time())
        return Message(metadata=metadata, error=Error(code=1, reason=LOST_UPLOAD))


def test_an_error_reply_made_by_flower_is_counted_against_the_node_it_was_sent_to(tmp_path: Path):
    cfg = RunConfig(clients=4, num_rounds=2, local_epochs=1)
    rows = run_federation(cfg, tmp_path, LostUploadGrid(cfg.replace(min_clients=4)))
    assert [(r["train-clients"], r["train-failures"]) for r in rows] == [(3, 1), (3, 1)]
    progress = (tmp_path / "progress.log").read_text()
    assert progress.count(f"node 3 failed: {LOST_UPLOAD}") == 2
    assert "no reply within" not in progress  # it did reply, with an error: it was not late


class QueryCountingGrid(InProcessGrid):
    """Records how many schema queries each push carried."""

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        self.query_pushes: list[int] = []

    def push_messages(self, messages):
        messages = list(messages)
        queries = [m for m in messages if m.metadata.message_type == "query" and not m.content]
        if queries:
            self.query_pushes.append(len(queries))
        return super().push_messages(messages)


def test_the_schema_query_asks_a_batch_at_a_time_and_enrols_everyone(tmp_path: Path, monkeypatch):
    """Thousands of simulated clients: the engine holds every query until answered, so few at a time."""
    monkeypatch.setattr(federation, "QUERY_BATCH", 3)
    cfg = RunConfig(clients=7, num_rounds=1, local_epochs=1)
    grid = QueryCountingGrid(cfg.replace(min_clients=7))
    rows = run_federation(cfg, tmp_path, grid)
    assert grid.query_pushes == [3, 3, 1]
    assert rows[0]["train-clients"] == 7
    assert "7 client(s) enrolled" in (tmp_path / "progress.log").read_text()


class MisfitFirstGrid(InProcessGrid):
    """Node 1 connects alone first and reports one feature too few; the others connect after it is refused."""

    def get_node_ids(self) -> list[int]:
        return list(self.nodes) if self.misfit_refused else [1]

    @property
    def misfit_refused(self) -> bool:
        return any(r.metadata.src_node_id == 1 and "schema" not in r.content for r in self.replies)

    def push_messages(self, messages):
        ids = super().push_messages(messages)
        for message_id in ids:
            reply = self._waiting.get(message_id)
            if reply is not None and reply.metadata.src_node_id == 1 and "schema" in reply.content:
                reply.content["schema"]["feature-names"] = reply.content["schema"]["feature-names"][:-1]
        return ids


def test_a_misfit_device_that_connects_first_is_refused_and_the_run_waits_for_others(tmp_path: Path):
    cfg = RunConfig(clients=3, num_rounds=1, local_epochs=1)  # the server's digits test set fixes the features
    rows = run_federation(cfg, tmp_path, MisfitFirstGrid(cfg.replace(clients=4)))
    progress = (tmp_path / "progress.log").read_text().splitlines()
    assert "node 1 refused: 63 features where the run has 64; missing 'pixel_7_7'" in progress
    assert "3 client(s) enrolled: 64 features, classes 0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in progress
    assert [r["train-clients"] for r in rows] == [3]
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "completed"
