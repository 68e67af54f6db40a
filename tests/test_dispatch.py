"""fedge's sweep hands out exactly what Flower's per-client sweep would, on Flower's real LinkState."""

import inspect
import threading
from queue import Queue

import pytest
from flwr.app import Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.proto.task_pb2 import Task  # pylint: disable=E0611
from flwr.server.superlink.fleet.vce import vce_api
from flwr.server.superlink.linkstate import LinkStateFactory
from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.superlink.federation import NoOpFederationManager
from flwr.superlink.grid.inmemory_grid import InMemoryGrid

from fedge import dispatch

RUN_ID, TASK_ID = 11, 12


@pytest.fixture
def runtime():
    """Flower builds messages only where a task identity is set: here the ServerApp's."""
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = RUN_ID, SUPERLINK_NODE_ID, TASK_ID
    yield
    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = None


def _engine_state(messages_per_node: list[int]):
    """The engine's in-memory LinkState with len(messages_per_node) virtual clients and their messages."""
    factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory())
    nodes = vce_api._register_nodes(len(messages_per_node), factory)
    state = factory.state()
    run = Run.create_empty(RUN_ID)
    run.primary_task_id, run.federation_id = TASK_ID, NOOP_FEDERATION_ID
    state.run_ids[RUN_ID] = RunRecord(run=run)  # as Flower's run_simulation registers its run
    state.task_store[TASK_ID] = Task(task_id=TASK_ID, run_id=RUN_ID)
    grid = InMemoryGrid(state_factory=factory)
    grid.set_run(run)
    grid.push_messages([Message(RecordDict(), dst_node_id=node, message_type="query")
                        for node, count in zip(nodes, messages_per_node) for _ in range(count)])
    return state, nodes


def _flower_sweep(state, nodes) -> list[str]:
    """What one pass of Flower's own add_messages_to_queue takes."""
    return [m.metadata.message_id for node in nodes for m in state.get_message_ins(node_id=node, limit=1)]


def test_each_sweep_takes_one_undelivered_message_per_client_like_flowers(runtime):
    ours_state, ours_nodes = _engine_state([2, 1, 0, 3])
    flower_state, flower_nodes = _engine_state([2, 1, 0, 3])
    sweeps = []
    for _ in range(4):
        ours = dispatch.next_messages(ours_state, ours_nodes)
        assert all(m.metadata.delivered_at for m in ours)  # handed out once only
        sweeps.append(sorted(ours_nodes[m.metadata.dst_node_id] for m in ours))
        flower = _flower_sweep(flower_state, flower_nodes)
        assert len(flower) == len(ours)
    assert sweeps == [[0, 1, 3], [0, 3], [3], []]  # by client index


def test_install_replaces_the_engine_loop_once_and_the_loop_feeds_the_queue(runtime, monkeypatch):
    flower_loop = getattr(vce_api.add_messages_to_queue, "flower_loop", vce_api.add_messages_to_queue)
    monkeypatch.setattr(vce_api, "add_messages_to_queue", flower_loop)  # as the engine starts
    assert dispatch.install() is True
    assert dispatch.install() is False  # already in place
    state, nodes = _engine_state([1, 1])
    queue, stop = Queue(), threading.Event()
    loop = threading.Thread(target=vce_api.add_messages_to_queue, args=(state, queue, nodes, stop))
    loop.start()
    first, second = queue.get(timeout=5), queue.get(timeout=5)
    stop.set()
    loop.join(timeout=5)
    assert {first.metadata.dst_node_id, second.metadata.dst_node_id} == set(nodes)


def test_flowers_engine_still_dispatches_the_way_fedge_replaces():
    """A Flower upgrade that changes the loop must fail here, not run on the old assumptions."""
    assert "target=add_messages_to_queue" in inspect.getsource(vce_api.run_api)
    flower_loop = getattr(vce_api.add_messages_to_queue, "flower_loop", vce_api.add_messages_to_queue)
    source = inspect.getsource(flower_loop)
    assert "for node_id in nodes_mapping.keys():" in source
    assert "state.get_message_ins(node_id=node_id, limit=1)" in source


def test_flower_dispatch_keeps_flowers_loop(monkeypatch):
    flower_loop = getattr(vce_api.add_messages_to_queue, "flower_loop", vce_api.add_messages_to_queue)
    monkeypatch.setattr(vce_api, "add_messages_to_queue", flower_loop)
    monkeypatch.setenv(dispatch.KEEP_FLOWERS, "1")  # what `fedge simulate --flower-dispatch` sets
    assert dispatch.install() is False
    assert vce_api.add_messages_to_queue is flower_loop
