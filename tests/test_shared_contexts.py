"""fedge.shared_contexts: every virtual client's stored Context holds the one run config, not a copy."""

import pickle
import sys

import pytest
from flwr.app import Context, RecordDict
from flwr.compat.client.run_info_store import DeprecatedRunInfoStore, RunInfo
from flwr.server.superlink.fleet.vce import vce_api  # noqa: F401  (the engine is loaded, as in a simulation)

from fedge import shared_contexts
from fedge.dispatch import ENGINE_MODULE

RUN_ID = 7
RUN_CONFIG = {"dataset": "digits", "local-epochs": 1, "lr": 0.05}


def _client(node_id: int) -> DeprecatedRunInfoStore:
    """A virtual client's store as the engine registers it: its own copy of the run config."""
    store = DeprecatedRunInfoStore(node_id=node_id, node_config={"partition-id": node_id})
    store.run_infos[RUN_ID] = RunInfo(initial_run_config=dict(RUN_CONFIG), context=Context(
        run_id=RUN_ID, node_id=node_id, node_config={}, state=RecordDict(), run_config=dict(RUN_CONFIG)))
    return store


def _returned_by_actor(store: DeprecatedRunInfoStore) -> Context:
    """The Context a Ray actor sends back: an unpickled copy, run config included."""
    return pickle.loads(pickle.dumps(store.retrieve_context(RUN_ID)))


def _flowers_own(monkeypatch) -> None:
    """Flower's update_context, as before install (an imported ClientApp may have installed it)."""
    current = DeprecatedRunInfoStore.update_context
    monkeypatch.setattr(DeprecatedRunInfoStore, "update_context", getattr(current, "flower_update", current))


@pytest.fixture
def installed(monkeypatch):
    _flowers_own(monkeypatch)
    assert shared_contexts.install() is True
    assert shared_contexts.install() is False  # already in place


def test_clients_called_share_one_run_config(installed):
    clients = [_client(n) for n in range(3)]
    for store in clients:
        store.update_context(RUN_ID, _returned_by_actor(store))
    shared = clients[0].retrieve_context(RUN_ID).run_config
    assert shared == RUN_CONFIG
    for store in clients:
        assert store.retrieve_context(RUN_ID).run_config is shared
        assert store.run_infos[RUN_ID].initial_run_config is shared


def test_a_changed_run_config_is_still_refused_and_the_stored_context_kept(installed):
    store = _client(1)
    before = store.retrieve_context(RUN_ID)
    changed = _returned_by_actor(store)
    changed.run_config["lr"] = 1.0
    with pytest.raises(ValueError, match="The `run_config` field of the `Context` object cannot be modified"):
        store.update_context(RUN_ID, changed)
    assert store.retrieve_context(RUN_ID) is before
    assert before.run_config == RUN_CONFIG


def test_outside_the_engine_nothing_changes(monkeypatch):
    _flowers_own(monkeypatch)
    monkeypatch.delitem(sys.modules, ENGINE_MODULE)
    flower_update = DeprecatedRunInfoStore.update_context
    assert shared_contexts.install() is False
    assert DeprecatedRunInfoStore.update_context is flower_update
