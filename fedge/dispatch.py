"""Message dispatch in Flower's simulation engine, at one pass per sweep instead of one per client.

Flower 1.42's simulation runtime (`vce_api.add_messages_to_queue`) hands messages to
its workers in sweeps, every 0.1 s: for each of the N virtual clients it asks the
in-memory LinkState for that client's next message, and each ask scans (and re-checks
the expiry and federation of) every stored message.  A sweep costs N × stored
messages: with 10,000 clients and 100 messages a round that is a million checks,
seconds of every round, and enrolling all 10,000 clients costs 10^8.

`add_messages_to_queue` below is the same loop with one pass over the stored
messages per sweep: the same checks, the same rule (at most one message per client
per sweep, marked delivered).  It queues each sweep's messages together, for
`fedge.actor_calls.worker` (installed with it, in place of Flower's worker) to send
each worker's share to its Ray actor in one call.  It also sweeps as
soon as the ServerApp stores a message instead of at the next tick, and it makes the
LinkState set `reply_stored` for every reply, which fedge's ServerApp (in the same
process) waits on between looks for replies: together 20-25 ms of every round.  `install()` puts
it in place of Flower's; fedge's ClientApp calls it at import, which in a simulation
happens in the engine's process before the loop starts; in a device's process the
engine is not loaded and nothing changes.  Only the in-memory LinkState is handled
this way; any other goes on through Flower's own function.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from queue import Queue
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # fedge.launch reads KEEP_FLOWERS without importing Flower
    from flwr.app import Message

ENGINE_MODULE = "flwr.server.superlink.fleet.vce.vce_api"
KEEP_FLOWERS = "FEDGE_FLOWER_DISPATCH"  # "1": leave Flower's loop in place
SWEEP_SECONDS = 0.02  # Flower's: 0.1; a sweep is cheap now, so messages start sooner

reply_stored = threading.Event()  # set by the engine's LinkState on every stored reply (simulation only)


def install() -> bool:
    """Replace the engine's dispatch loop if this process runs Flower's simulation engine
    (and `fedge simulate --flower-dispatch` did not ask to keep Flower's)."""
    engine = sys.modules.get(ENGINE_MODULE)
    if engine is None or hasattr(engine.add_messages_to_queue, "flower_loop") or os.environ.get(KEEP_FLOWERS):
        return False
    from fedge.actor_calls import Sweep, worker  # imports Flower: only where its engine runs

    flower_loop = engine.add_messages_to_queue

    def add_messages_to_queue(state: Any, queue: Queue[Message], nodes_mapping: dict[int, int],
                              f_stop: threading.Event) -> None:
        if not _is_in_memory(state):
            return flower_loop(state, queue, nodes_mapping, f_stop)
        message_stored = _signal_stores(state)
        while not f_stop.is_set():
            message_stored.clear()  # before the sweep: a message stored during it wakes the next one
            messages = next_messages(state, nodes_mapping)
            if messages:
                queue.put(Sweep(messages))  # shared out among the workers by fedge.actor_calls.worker
            message_stored.wait(SWEEP_SECONDS)

    add_messages_to_queue.flower_loop = flower_loop  # type: ignore[attr-defined]
    engine.add_messages_to_queue = add_messages_to_queue
    engine.worker = worker
    return True


def next_messages(state: Any, nodes: dict[int, int]) -> list[Message]:
    """One sweep: the first undelivered, valid message of each client, marked delivered."""
    from flwr.supercore.date import now

    taken: dict[int, Message] = {}
    with state.lock:
        state._check_stored_messages(set(state.message_ins_store))  # drops expired and orphaned ones
        for message in state.message_ins_store.values():
            node = message.metadata.dst_node_id
            if node in nodes and node not in taken and message.metadata.delivered_at == "":
                taken[node] = message
        delivered_at = now().isoformat()
        for message in taken.values():
            message.metadata.delivered_at = delivered_at
    return list(taken.values())


def _signal_stores(state: Any) -> threading.Event:
    """Make `state` set the returned event on every stored message and `reply_stored` on every reply."""
    message_stored = threading.Event()

    def signalling(store: Callable[[Message], str | None], event: threading.Event
                   ) -> Callable[[Message], str | None]:
        def store_and_signal(message: Message) -> str | None:
            message_id = store(message)
            event.set()
            return message_id
        return store_and_signal

    state.store_message_ins = signalling(state.store_message_ins, message_stored)
    state.store_message_res = signalling(state.store_message_res, reply_stored)
    return message_stored


def _is_in_memory(state: Any) -> bool:
    from flwr.server.superlink.linkstate.in_memory_linkstate import InMemoryLinkState

    return isinstance(state, InMemoryLinkState)
