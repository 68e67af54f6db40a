"""fedge.actor_calls: a sweep shared out among the engine's workers, each share one actor call.

Flower's own actor code (`VirtualClientEngineActor.run`) and actor pool
(`BasicActorPool`) run here; only Ray's transport is replaced by a pickled copy of
the call's arguments and result, which is what Ray hands the actor and back.
"""

import pickle
import threading
from queue import Queue
from types import SimpleNamespace
from uuid import uuid4

import cloudpickle
import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.compat.client.run_info_store import DeprecatedRunInfoStore, RunInfo
from flwr.server.superlink.fleet.vce.metrics import VceMetrics
from flwr.simulation.ray_transport import ray_actor
from flwr.supercore.task_identity import TaskIdentity

from fedge import actor_calls
from fedge.actor_calls import Sweep, shares

RUN_ID = 5
FAILING_NODE = 3
RECONFIGURING_NODE = 4  # changes its run config, which Flower refuses to store

client_app = ClientApp()


@client_app.query()
def count_calls(msg: Message, context: Context) -> Message:
    """Counts this client's calls in its Context's state; node FAILING_NODE raises after counting."""
    calls = context.state["calls"]["n"] + 1 if "calls" in context.state else 1
    context.state["calls"] = ConfigRecord({"n": calls})
    if context.node_id == FAILING_NODE:
        raise ValueError(f"row 7 of node {FAILING_NODE} is not a number")
    if context.node_id == RECONFIGURING_NODE:
        context.run_config["lr"] = 1.0
    seen = sorted(msg.content.keys())
    msg.content["changed-by-a-mod"] = ConfigRecord({"node": context.node_id})  # as mods do to what arrives
    return Message(RecordDict({"seen": ConfigRecord({"node": context.node_id, "records": seen})}), reply_to=msg)


def load_client_app() -> ClientApp:
    return client_app


class _Done:
    """A finished Ray call: `ray.get` returns its result or raises its error."""

    def __init__(self, result=None, error: Exception | None = None) -> None:
        self.result, self.error = result, error

    def get(self):
        if self.error:
            raise self.error
        return self.result


class _LocalActor:
    """A Ray actor handle: `run.remote(...)` runs Flower's actor code on pickled copies, as Ray does."""

    def __init__(self, dies: bool = False) -> None:
        self.calls, self.dies = 0, dies
        self.run = SimpleNamespace(remote=self._run)

    def _run(self, *args):
        self.calls += 1
        if self.dies:
            return _Done(error=RuntimeError("the actor died"))  # Ray raises it at ray.get
        load_app, messages, cid, contexts = cloudpickle.loads(cloudpickle.dumps(args))
        result = ray_actor.VirtualClientEngineActor.run(self, load_app, messages, cid, contexts)
        return _Done(pickle.loads(pickle.dumps(result)))


def _backend(actors: list[_LocalActor]) -> SimpleNamespace:
    pool = ray_actor.BasicActorPool.__new__(ray_actor.BasicActorPool)  # Flower's pool, without starting Ray
    pool.pool, pool.num_actors, pool._future_to_actor = list(actors), len(actors), {}
    return SimpleNamespace(pool=pool, app_fn=load_client_app, num_workers=len(actors))


@pytest.fixture
def engine(monkeypatch):
    """The ServerApp's task identity (messages are built there) and Ray's `get` for local calls."""
    monkeypatch.setattr(ray_actor.ray, "get", _Done.get)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = RUN_ID, SUPERLINK_NODE_ID, 1
    yield
    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = None


def _clients(nodes: range) -> dict[int, DeprecatedRunInfoStore]:
    stores = {}
    for node in nodes:
        store = DeprecatedRunInfoStore(node_id=node, node_config={"partition-id": node})
        store.run_infos[RUN_ID] = RunInfo(initial_run_config={}, context=Context(
            run_id=RUN_ID, node_id=node, node_config={}, state=RecordDict(), run_config={}))
        stores[node] = store
    return stores


def _messages(nodes: range, content: RecordDict | None = None) -> list[Message]:
    messages = [Message(content if content is not None else RecordDict(), dst_node_id=node, message_type="query")
                for node in nodes]
    for message in messages:
        message.metadata.__dict__["_message_id"] = str(uuid4())  # as the grid does on push
    return messages


def _calls_of(store: DeprecatedRunInfoStore) -> int:
    state = store.retrieve_context(RUN_ID).state
    return state["calls"]["n"] if "calls" in state else 0


def test_shares_are_consecutive_near_equal_one_per_worker_and_capped():
    assert shares(list(range(10)), 2) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert shares(list(range(3)), 2) == [[0], [1, 2]]
    assert shares([0], 2) == [[0]]
    assert shares(list(range(3)), 5) == [[0], [1], [2]]
    big = shares(list(range(40)), 2)  # 40 > 2 x MAX_SHARE (16): three shares
    assert [len(s) for s in big] == [13, 13, 14] and sum(big, []) == list(range(40))


def test_a_sweep_goes_out_in_one_call_per_worker_and_every_client_keeps_its_context(engine):
    nodes = range(10, 20)
    stores, actors = _clients(nodes), [_LocalActor(), _LocalActor()]
    backend, metrics = _backend(actors), VceMetrics()
    inbox, outbox, stop = Queue(), Queue(), threading.Event()
    workers = [threading.Thread(target=actor_calls.worker, args=(inbox, outbox, stores, backend, stop, metrics))
               for _ in actors]
    for thread in workers:
        thread.start()
    messages = _messages(nodes)
    inbox.put(Sweep(messages))
    try:
        replies = [outbox.get(timeout=10) for _ in messages]
    finally:
        stop.set()
        for thread in workers:
            thread.join(timeout=10)
    assert sum(actor.calls for actor in actors) == 2  # one per worker's share, not ten
    assert sorted(r.metadata.reply_to_message_id for r in replies) == sorted(m.metadata.message_id for m in messages)
    assert {r.content["seen"]["node"] for r in replies} == set(nodes)
    assert len({r.metadata.message_id for r in replies} - {""}) == 10  # each reply its own new id
    assert [_calls_of(stores[n]) for n in nodes] == [1] * 10  # each Context came back and was stored
    assert metrics.clientapp_runtime > 0
    assert backend.pool.pool and len(backend.pool.pool) == 2  # both actors back in the pool


def test_messages_sharing_one_content_object_each_arrive_as_their_own_copy(engine):
    """A round sends one model object to every client; pickled together, a share would
    deliver one object to all of them, changed by the first client's mods (SecAgg+'s
    failed every round that way)."""
    nodes = range(10, 14)
    shared = RecordDict({"model": ConfigRecord({"round": 1})})
    replies = actor_calls.run_share(_messages(nodes, shared), _clients(nodes), _backend([_LocalActor()]),
                                    VceMetrics())
    assert [list(r.content["seen"]["records"]) for r in replies] == [["model"]] * 4


def test_a_client_app_that_raises_or_changes_its_run_config_fails_only_its_own_message(engine):
    nodes = range(1, 6)
    stores = _clients(nodes)
    messages = _messages(nodes)
    replies = actor_calls.run_share(messages, stores, _backend([_LocalActor()]), VceMetrics())
    failed = [r for r in replies if r.has_error()]
    assert [r.metadata.reply_to_message_id for r in failed] == [messages[n - 1].metadata.message_id
                                                                for n in (FAILING_NODE, RECONFIGURING_NODE)]
    assert failed[0].error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert f"row 7 of node {FAILING_NODE} is not a number" in failed[0].error.reason
    assert failed[1].error.code == ErrorCode.UNKNOWN and "cannot be modified" in failed[1].error.reason
    assert [_calls_of(stores[n]) for n in nodes] == [1, 1, 0, 0, 1]  # the failed clients' Contexts not stored


def test_a_failed_call_fails_its_whole_share_and_gives_the_actor_back(engine):
    nodes = range(1, 4)
    stores, messages = _clients(nodes), _messages(nodes)
    dying = _LocalActor(dies=True)
    backend = _backend([dying])
    replies = actor_calls.run_share(messages, stores, backend, VceMetrics())
    assert [r.error.code for r in replies] == [ErrorCode.UNKNOWN] * 3
    assert all("the actor died" in r.error.reason for r in replies)
    assert [r.metadata.reply_to_message_id for r in replies] == [m.metadata.message_id for m in messages]
    assert backend.pool.pool == [dying]


def test_a_single_message_from_flowers_own_loop_is_a_share_of_one(engine):
    stores, [message] = _clients(range(7, 8)), _messages(range(7, 8))
    actor = _LocalActor()
    inbox, outbox, stop = Queue(), Queue(), threading.Event()
    thread = threading.Thread(target=actor_calls.worker,
                              args=(inbox, outbox, stores, _backend([actor]), stop, VceMetrics()))
    thread.start()
    inbox.put(message)
    try:
        reply = outbox.get(timeout=10)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert reply.metadata.reply_to_message_id == message.metadata.message_id and actor.calls == 1
