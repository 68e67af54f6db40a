"""fedge's dispatch in Flower's engine: what Flower's per-client sweep hands out, on its real LinkState, sooner."""

import inspect
import threading
import time
from queue import Queue
from types import SimpleNamespace

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

from fedge import actor_calls, dispatch, federation

RUN_ID, TASK_ID = 11, 12


@pytest.fixture
def runtime():
    """Flower builds messages only where a task identity is set: here the ServerApp's."""
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = RUN_ID, SUPERLINK_NODE_ID, TASK_ID
    yield
    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = None


def _engine_state(messages_per_node: list[int]):
    """The engine's in-memory LinkState with len(messages_per_node) virtual clients and their messages."""
    state, nodes, _ = _engine(messages_per_node)
    return state, nodes


def _engine(messages_per_node: list[int]):
    """`_engine_state`, and the ServerApp's grid onto that state."""
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
    return state, nodes, grid


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


def _flowers_engine(monkeypatch) -> None:
    """The engine module as Flower ships it, whatever an earlier test installed."""
    flower_loop = getattr(vce_api.add_messages_to_queue, "flower_loop", vce_api.add_messages_to_queue)
    monkeypatch.setattr(vce_api, "add_messages_to_queue", flower_loop)
    monkeypatch.setattr(vce_api, "worker", vce_api.worker)  # restored after the test
    push = InMemoryGrid.push_messages
    monkeypatch.setattr(InMemoryGrid, "push_messages", getattr(push, "flower_push", push))


def test_install_replaces_loop_and_worker_once_and_the_loop_queues_whole_sweeps(runtime, monkeypatch):
    _flowers_engine(monkeypatch)
    assert dispatch.install() is True
    assert dispatch.install() is False  # already in place
    assert vce_api.worker is actor_calls.worker and hasattr(InMemoryGrid.push_messages, "flower_push")
    state, nodes = _engine_state([1, 1])
    queue, stop = Queue(), threading.Event()
    loop = threading.Thread(target=vce_api.add_messages_to_queue, args=(state, queue, nodes, stop))
    loop.start()
    sweep = queue.get(timeout=5)
    stop.set()
    loop.join(timeout=5)
    assert isinstance(sweep, actor_calls.Sweep)
    assert sorted(m.metadata.dst_node_id for m in sweep.messages) == sorted(nodes)


def test_flowers_engine_still_dispatches_the_way_fedge_replaces():
    """A Flower upgrade that changes the loop must fail here, not run on the old assumptions."""
    assert "target=add_messages_to_queue" in inspect.getsource(vce_api.run_api)
    assert "executor.submit(\n                    worker," in inspect.getsource(vce_api.run_api)
    flower_loop = getattr(vce_api.add_messages_to_queue, "flower_loop", vce_api.add_messages_to_queue)
    source = inspect.getsource(flower_loop)
    assert "for node_id in nodes_mapping.keys():" in source
    assert "state.get_message_ins(node_id=node_id, limit=1)" in source


def test_flower_dispatch_keeps_flowers_loop_and_worker(monkeypatch):
    _flowers_engine(monkeypatch)
    flower_loop, flower_worker = vce_api.add_messages_to_queue, vce_api.worker
    monkeypatch.setenv(dispatch.KEEP_FLOWERS, "1")  # what `fedge simulate --flower-dispatch` sets
    assert dispatch.install() is False
    assert vce_api.add_messages_to_queue is flower_loop and vce_api.worker is flower_worker


def test_the_loop_sweeps_a_whole_push_when_it_is_pushed_not_at_the_next_tick(runtime, monkeypatch):
    """The grid stores a push's messages one by one; the sweep after it must hold them all
    (one woken by the first store took one to three of a round's ten)."""
    _flowers_engine(monkeypatch)
    monkeypatch.setattr(dispatch, "SWEEP_SECONDS", 600.0)  # a tick would never come within the test
    dispatch.install()
    state, nodes, grid = _engine([0] * 10)
    store = grid.state.store_message_ins
    monkeypatch.setattr(grid.state, "store_message_ins", lambda m: (time.sleep(0.01), store(m))[1])  # a busy host
    queue, stop = Queue(), threading.Event()
    loop = threading.Thread(target=vce_api.add_messages_to_queue, args=(state, queue, nodes, stop), daemon=True)
    loop.start()
    node = next(iter(nodes))
    try:
        time.sleep(0.2)  # the loop has swept the empty state and waits
        pushed = grid.push_messages([Message(RecordDict(), dst_node_id=n, message_type="query") for n in nodes])
        assert sorted(m.metadata.message_id for m in queue.get(timeout=10).messages) == sorted(pushed)
    finally:
        stop.set()
        grid.push_messages([Message(RecordDict(), dst_node_id=node, message_type="query")])  # wakes it to stop
        loop.join(timeout=10)
    assert not loop.is_alive()


class _RecordingState:
    def __init__(self) -> None:
        self.stored: list[str] = []

    def store_message_res(self, message: str) -> str:
        self.stored.append(message)
        return f"id-{message}"


def test_a_stored_reply_signals_and_is_still_stored_with_its_id():
    state = _RecordingState()
    dispatch._signal_replies(state)
    dispatch.reply_stored.clear()
    assert state.store_message_res("b") == "id-b" and dispatch.reply_stored.is_set()
    assert state.stored == ["b"]


class _LateReplyGrid:
    """One message; its reply turns up (and is signalled) only after the server's first look."""

    def __init__(self) -> None:
        self.looks = 0

    def push_messages(self, messages):
        return ["m1"]

    def pull_messages(self, message_ids):
        self.looks += 1
        if self.looks == 1:
            threading.Timer(0.1, dispatch.reply_stored.set).start()
            return []
        return [SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id="m1"))]


def test_the_server_looks_for_replies_when_one_is_signalled_not_after_its_poll(monkeypatch):
    monkeypatch.setattr(federation, "REPLY_POLL_SECONDS", (600.0, 600.0))
    grid, replies = _LateReplyGrid(), []
    waiting = threading.Thread(target=lambda: replies.extend(federation.send_and_receive(grid, [], 900.0)),
                               daemon=True)
    dispatch.reply_stored.clear()
    waiting.start()
    waiting.join(timeout=10)
    assert not waiting.is_alive() and grid.looks == 2 and len(replies) == 1
